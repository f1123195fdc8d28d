"""Smoke tests of the library entry points behind train / analyze / study (1-2 steps)."""

import glob
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import tf_runtime
from tf_hessian import analyze_lib, study_lib, train_lib
from tf_hessian import data as data_lib
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
    # The reported clean accuracy is that of the exported network on the 32 evaluation images.
    config = tf_runtime.read_config(workdir)
    (images, labels), *rest = list(
        data_lib.build(config, config.eval.split, batch_size=32, limit=config.eval.limit)
    )
    assert not rest and images.shape[0] == 32
    loaded = tf.saved_model.load(f"{workdir}/saved_model")  # owns the variables
    correct = int(np.sum(np.argmax(loaded.serve(images).numpy(), -1) == labels.numpy()))
    assert results["test_accuracy"] == correct / 32
    assert (results["fgsm_accuracy"] * 32) % 1 == 0  # a count of the same 32 images
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


@pytest.fixture(scope="module")
def one_run_study(tmp_path_factory):
    """A finished smoke study of one run (b16), made once; tests work on copies of its folder."""
    workdir = tmp_path_factory.mktemp("one_run_study")
    config = _one_run_config()
    (row,) = study_lib.run_study(config, str(workdir), tf.distribute.get_strategy())["rows"]
    return workdir, row


def _one_run_config():
    config = study.get_config("smoke")
    config.robust_batch_sizes = ()
    return config


def _copy_of(one_run_study, tmp_path):
    workdir, row = one_run_study
    shutil.copytree(workdir, tmp_path / "study")
    return _one_run_config(), tmp_path / "study", json.loads(json.dumps(row, default=float))


def _without_timing(rows):
    return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in rows]


def test_study_runs_every_seed_and_robust_radius():
    config = study.get_config("demo")
    runs = study_lib._runs(config)
    assert len(runs) == 2 * (3 + 2)
    assert runs[:5] == [
        (16, False, None, 0),
        (256, False, None, 0),
        (2048, False, None, 0),
        (256, True, 0.05, 0),
        (256, True, 0.1, 0),
    ]
    names = {study_lib._run_name(*r) for r in runs}
    assert names >= {"b16", "b2048", "b16_s1", "b256_robust_eps0.05", "b256_robust_eps0.05_s1"}
    rows = [
        dict(batch_size=16, robust=False, robust_epsilon=None, seed=s, steps=3, test_accuracy=a)
        for s, a in ((0, 0.5), (1, 0.7))
    ]
    (summary,) = study_lib.aggregate(rows)
    assert summary["seeds"] == [0, 1]
    assert summary["test_accuracy"] == pytest.approx(0.6)
    assert summary["test_accuracy_sd"] == pytest.approx(np.sqrt(0.02))  # sample sd of 0.5, 0.7
    line = study_lib.markdown_table(rows, config).splitlines()[2]
    assert line.startswith("| 16 | no | 0,1 | 3 | 0.6000 ± 0.14 |")


def test_study_writes_table_json_plot(tmp_path):
    config = study.get_config("smoke")
    results = study_lib.run_study(config, str(tmp_path), tf.distribute.get_strategy())
    table = open(tmp_path / "study.md").read()
    assert "| batch | robust eps | seeds |" in table and "PGD acc" in table and "rho_adv" in table
    runs = [(r["batch_size"], r["robust"], r["robust_epsilon"], r["seed"]) for r in results["rows"]]
    assert runs == [(16, False, None, 0), (16, True, 0.1, 0)]
    saved = json.load(open(tmp_path / "study.json"))
    assert len(saved["rows"]) == 2 and len(saved["summary"]) == 2
    for row in saved["rows"]:
        assert row["eigen_method"] == "lanczos" and np.isfinite(row["lambda_max"])
        assert 0.0 <= row["pgd_accuracy"] <= row["test_accuracy"] + 1e-12
        assert row["rho_adv"] > 0 and row["input_hessian_min_over_max"] > -1e-3
    for key in ("sweep_plot", "spectrum_plot", "density_plot", "landscape_plot"):
        assert os.path.getsize(results["paths"][key]) > 1000
    # A finished study re-run changes nothing.
    before = {p: open(p, "rb").read() for p in glob.glob(f"{tmp_path}/**/*.json", recursive=True)}
    again = study_lib.run_study(config, str(tmp_path), tf.distribute.get_strategy())
    assert again["rows"] == json.loads(json.dumps(results["rows"], default=float))
    after = {p: open(p, "rb").read() for p in glob.glob(f"{tmp_path}/**/*.json", recursive=True)}
    assert after == before
    # A kill between a trained model and its row: the re-run ends where the first run ended.
    os.remove(tmp_path / "b16_robust_eps0.1" / "row.json")
    resumed = study_lib.run_study(config, str(tmp_path), tf.distribute.get_strategy())
    assert _without_timing(resumed["rows"]) == _without_timing(
        json.loads(json.dumps(results["rows"], default=float))
    )


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


def test_study_completes_rows_of_an_older_version(one_run_study, tmp_path):
    config, tmp_path, first = _copy_of(one_run_study, tmp_path)
    row_path = tmp_path / "b16" / "row.json"
    # A row of an older study version: without later measures and without its settings.
    old = {k: v for k, v in first.items() if k not in ("pgd_accuracy", "rho_adv", "seed", "config")}
    old.pop("input_hessian_lambda_min")
    row_path.write_text(json.dumps(old))
    (again,) = study_lib.run_study(config, str(tmp_path), tf.distribute.get_strategy())["rows"]
    assert _without_timing([again]) == _without_timing([json.loads(json.dumps(first))])
    assert json.loads(row_path.read_text())["pgd_accuracy"] == first["pgd_accuracy"]


def test_study_rows_are_keyed_by_the_config_that_produced_them(one_run_study, tmp_path):
    config, tmp_path, first = _copy_of(one_run_study, tmp_path)
    strategy = tf.distribute.get_strategy()
    row_path = tmp_path / "b16" / "row.json"
    metrics_before = (tmp_path / "b16" / "metrics.json").read_text()
    # Another analysis setting: the row is recomputed from the same weights (no retraining).
    config.evaluation.pgd_steps = 3
    (again,) = study_lib.run_study(config, str(tmp_path), strategy)["rows"]
    assert first["pgd_steps"] == 2 and again["pgd_steps"] == 3
    assert json.loads(row_path.read_text())["config"]["evaluation"]["pgd_steps"] == 3
    assert (tmp_path / "b16" / "metrics.json").read_text() == metrics_before
    assert again["test_accuracy"] == first["test_accuracy"]
    # Another training config (the study-level --allow_config_change passed): the model cannot be
    # reused; the study refuses before training anything, naming the folder and the key.
    row_before = row_path.read_text()
    config.train.optimizer.learning_rate = 0.5
    config.batch_sizes = (16, 32)
    with pytest.raises(
        tf_runtime.ConfigMismatchError, match=r"b16 \(optimizer\.learning_rate\).*Delete"
    ):
        study_lib.run_study(config, str(tmp_path), strategy)
    assert row_path.read_text() == row_before
    assert not (tmp_path / "b32").exists()


def test_study_refuses_a_run_folder_trained_under_another_config_without_a_row(
    one_run_study, tmp_path
):
    # Killed between the training and the row, then the config changed.
    config, tmp_path, _ = _copy_of(one_run_study, tmp_path)
    os.remove(tmp_path / "b16" / "row.json")
    config.train.optimizer.momentum = 0.5
    with pytest.raises(tf_runtime.ConfigMismatchError, match=r"b16 \(optimizer\.momentum\)"):
        study_lib.run_study(config, str(tmp_path), tf.distribute.get_strategy())


def test_study_binary_validates_every_model_before_writing(tmp_path):
    from tf_hessian import study as study_binary

    workdir = tmp_path / "study"
    argv = [
        "prog",
        f"--workdir={workdir}",
        f"--config={study_binary.DEFAULT_CONFIG}:smoke",
        "--config.train.optimizer.learning_rate=-0.5",
    ]
    values = tf_runtime.parse_flags(argv, study_binary.define_flags)
    with pytest.raises(ValueError, match=r"config\.train\.optimizer\.learning_rate=-0\.5"):
        study_binary.main([], flag_values=values)
    assert not workdir.exists()
