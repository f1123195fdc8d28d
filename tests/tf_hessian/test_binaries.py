"""Smoke tests of the library entry points behind train / analyze / study (1-2 steps)."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tf_runtime
from tf_hessian import analyze_lib, study_lib, train_lib
from tf_hessian.configs import analyze, default, study


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("train"))
    config = default.get_config("smoke")
    config.log_every = 0
    tf_runtime.write_config(config, workdir)  # as the binary does
    results = train_lib.train_and_evaluate(config, workdir, tf.distribute.get_strategy())
    return workdir, results


def test_train_writes_checkpoint_events_savedmodel_metrics(trained_run):
    workdir, results = trained_run
    assert results["step"] == 2
    assert 0.0 <= results["test_accuracy"] <= 1.0 and 0.0 <= results["fgsm_accuracy"] <= 1.0
    assert results["train"]["adversarial_fraction"] == pytest.approx(0.25)
    assert json.load(open(os.path.join(workdir, "config.json")))["model"] == "mlp"
    assert sorted(
        os.path.basename(p) for p in glob.glob(f"{workdir}/checkpoints/ckpt-*.index")
    ) == [
        "ckpt-1.index",
        "ckpt-2.index",
    ]
    assert glob.glob(f"{workdir}/tensorboard/train/events.out.tfevents.*")
    assert os.path.exists(f"{workdir}/saved_model/saved_model.pb")
    loaded = tf.saved_model.load(
        f"{workdir}/saved_model"
    )  # keep a reference: it owns the variables
    served = loaded.serve(tf.zeros((2, 8, 8, 1)))
    assert served.shape == (2, 10)
    assert json.load(open(f"{workdir}/metrics.json"))["step"] == 2


def test_restore_network_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        train_lib.restore_network(str(tmp_path))
    tf_runtime.write_config(default.get_config("smoke"), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        train_lib.restore_network(str(tmp_path))


def test_analyze_writes_json_and_plots(trained_run, tmp_path):
    workdir, _ = trained_run
    results = analyze_lib.analyze_checkpoint(analyze.get_config("smoke"), workdir, str(tmp_path))
    saved = json.load(open(tmp_path / "analysis.json"))
    assert len(saved["eigenvalues"]) == 2 and abs(saved["eigenvalues"][0]) >= abs(
        saved["eigenvalues"][1]
    )
    assert saved["num_parameters"] == 64 * 8 + 8 + 8 * 10 + 10
    assert saved["trace_hvps"] == 2 and np.isfinite(saved["trace"])
    assert saved["checkpoint"].endswith("ckpt-2")
    assert set(saved["blocks"]) == {"dense_0", "logits"}
    assert len(saved["landscape"]["curves"]["top eigenvector"]) == 3
    # The middle landscape point is the unperturbed loss.
    assert saved["landscape"]["curves"]["top eigenvector"][1] == pytest.approx(
        saved["loss"], rel=1e-6
    )
    assert saved["robustness"]["epsilons"] == [0.0, 0.1]
    assert saved["robustness"]["fgsm_accuracy"][1] <= saved["robustness"]["fgsm_accuracy"][0]
    assert saved["input_space"]["input_gradient_norm"] > 0
    for name in ("spectrum", "density", "landscape_1d", "landscape_2d", "robustness"):
        assert os.path.getsize(results["plots"][name]) > 1000
    density = np.load(tmp_path / "density.npz")
    assert np.sum(density["density"]) * (density["grid"][1] - density["grid"][0]) == pytest.approx(
        1.0
    )


def test_study_writes_table_json_plot(tmp_path):
    config = study.get_config("smoke")
    results = study_lib.run_study(config, str(tmp_path), tf.distribute.get_strategy())
    table = open(tmp_path / "study.md").read()
    assert "| batch | robust |" in table
    assert [(r["batch_size"], r["robust"]) for r in results["rows"]] == [
        (4, False),
        (16, False),
        (16, True),
    ]
    saved = json.load(open(tmp_path / "study.json"))
    assert len(saved["rows"]) == 3 and all(
        r["lambda_max"] == r["lambda_max"] for r in saved["rows"]
    )
    for key in ("sweep_plot", "spectrum_plot", "density_plot", "landscape_plot"):
        assert os.path.getsize(results["paths"][key]) > 1000
    # A second call reuses the finished runs.
    again = study_lib.run_study(config, str(tmp_path), tf.distribute.get_strategy())
    assert again["rows"] == json.loads(json.dumps(results["rows"], default=float))


def test_analyze_rejects_checkpoint_of_another_trainer(trained_run, tmp_path):
    # A tf_ode run's checkpoint under this run's config: restoring it matches no weight.
    from tf_ode import train_lib as ode_train_lib
    from tf_ode.configs import default as ode_default

    workdir, _ = trained_run
    foreign = tmp_path / "foreign"
    tf_runtime.write_config(default.get_config("smoke"), str(foreign))
    ode_config = ode_default.get_config("smoke")
    ode_model = ode_train_lib.build_model(ode_config, 10, (8, 8, 1))
    ode_model(tf.zeros((1, 8, 8, 1)))
    path = tf.train.Checkpoint(model=ode_model, step=tf.Variable(2, dtype=tf.int64)).write(
        str(foreign / "checkpoints" / "ckpt-2")
    )
    with pytest.raises(ValueError, match=r"ckpt-2 does not hold this run's 'mlp' network"):
        analyze_lib.analyze_checkpoint(
            analyze.get_config("smoke"), str(foreign), str(tmp_path / "out"), checkpoint=path
        )
    assert not (tmp_path / "out" / "analysis.json").exists()
