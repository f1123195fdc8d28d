"""Smoke tests of the binaries (train, compare, gradcheck) and their library entry points."""

import importlib
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import tf_runtime
from input_pipelines import classification
from tf_ode import gradcheck_lib, train_lib
from tf_ode.configs import compare as compare_config
from tf_ode.configs import default as default_config

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run_binary(module_name, argv):
    # Each binary registers its flags on a private FlagValues: no global flag state is touched.
    module = importlib.import_module(module_name)
    values = tf_runtime.parse_flags([module_name, *argv], module.define_flags)
    module.main([], flag_values=values)


def test_importing_a_binary_registers_no_flags():
    for name in ("tf_ode.train", "tf_ode.compare", "tf_ode.gradcheck"):
        importlib.import_module(name)
    assert not {"config", "workdir", "output_dir", "strategy"} & set(flags.FLAGS)


def test_train_binary_writes_config_checkpoints_events_and_saved_model(tmp_workdir):
    _run_binary(
        "tf_ode.train",
        [
            f"--config={ROOT}/tf_ode/configs/default.py:smoke",
            f"--workdir={tmp_workdir}",
            "--config.method=rk2",
            "--config.num_steps=1",
        ],
    )
    config = json.loads((tmp_workdir / "config.json").read_text())
    assert config["method"] == "rk2" and config["num_steps"] == 1 and config["variant"] == "anodev2"
    assert (tmp_workdir / "checkpoints" / "checkpoint").exists()
    assert list((tmp_workdir / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert (tmp_workdir / "saved_model" / "saved_model.pb").exists()
    results = json.loads((tmp_workdir / "results.json").read_text())
    assert results["step"] == 2
    assert results["nfe"] == 4.0  # rk2, Nt = 1: 2 forward + 2 recomputed evaluations
    # The reported accuracy is that of the exported model on the 32 evaluation images.
    config = default_config.get_config("smoke")
    images, labels = next(
        iter(
            classification.build_dataset(
                "digits", config.eval_split, batch_size=32, normalize="standard", limit=32
            )
        )
    )
    loaded = tf.saved_model.load(str(tmp_workdir / "saved_model"))  # owns the variables
    served = loaded.serve(images).numpy()
    correct = int(np.sum(np.argmax(served, -1) == labels.numpy()))
    assert results["eval_accuracy"] == correct / 32
    assert results["best_eval_accuracy"] == results["eval_accuracy"]  # one evaluation, at the end


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("dataset", "imagenet", "config.dataset"),
        ("variant", "node", "config.variant"),
        ("method", "heun", "config.method"),
        ("batch_size", 0, "config.batch_size"),
        ("gradient", "dto", r"config.method='tfp_dopri5'.*only gradient is the continuous adjoint"),
        ("num_steps", 0, "config.num_steps"),
        ("learning_rate", -0.5, r"config\.learning_rate=-0\.5 \(expected a finite number > 0\)"),
        ("train_limit", -10, r"config\.train_limit=-10 \(expected an int >= 0\)"),
        ("num_epochs", -5, r"config\.num_epochs=-5"),
        ("momentum", 1.0, r"config\.momentum=1\.0"),
        ("eval_limit", -1, r"config\.eval_limit=-1 \(expected an int >= 0\)"),
        ("checkpoint_every", 0, r"config\.checkpoint_every=0"),
        ("normalize_mean", (0.5, 0.5, 0.5), "config.normalize_mean .*Pass both mean and std"),
        ("normalize_std", (0.2, 0.2, 0.2), "config.normalize_mean .*Pass both mean and std"),
    ],
)
def test_invalid_config_raises(field, value, match):
    config = default_config.get_config("smoke")
    config[field] = value
    if field == "gradient":
        config.method = "tfp_dopri5"  # TFP's DormandPrince: continuous adjoint only
    with pytest.raises(ValueError, match=match):
        train_lib.validate_config(config)


def test_normalization_constants_must_fit_the_channels():
    config = default_config.get_config("smoke")  # digits: one channel
    config.normalize_mean, config.normalize_std = (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)
    with pytest.raises(ValueError, match=r"config.normalize_mean.*one value per channel of digits"):
        train_lib.validate_config(config)
    config.normalize_mean, config.normalize_std = (0.5,), (0.25,)
    train_lib.validate_config(config)


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "tsit5", "tfp_dopri5"])
def test_adaptive_methods_take_no_num_steps(method):
    # Adaptive methods (ours and TFP's) ignore config.num_steps (it used to be passed on to
    # every method but "dopri5", so bosh3/tsit5 failed when the model was built).
    config = default_config.get_config("smoke")
    config.method, config.num_steps = method, 2
    config.gradient = "adjoint" if method == "tfp_dopri5" else "dto"
    train_lib.validate_config(config)
    assert train_lib.solver_num_steps(config) is None
    config.method = "rk4"
    assert train_lib.solver_num_steps(config) == 2


def test_cifar10_compare_preset_uses_anode_normalisation():
    config = compare_config.get_config("cifar10")
    assert train_lib.normalization(config) == {
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2023, 0.1994, 0.2010),
    }
    train_lib.validate_config(config)
    # The other presets keep the dataset's own statistics.
    assert train_lib.normalization(default_config.get_config()) == {"mean": None, "std": None}


def test_training_and_evaluation_read_the_configured_normalisation(
    tmp_workdir, default_strategy, monkeypatch
):
    seen = []
    real = classification.build_dataset

    def spy(name, split, **kwargs):
        seen.append((split, kwargs.get("normalize"), kwargs.get("mean"), kwargs.get("std")))
        return real(name, split, **kwargs)

    monkeypatch.setattr(classification, "build_dataset", spy)
    config = default_config.get_config("smoke")
    config.normalize_mean, config.normalize_std = (0.5,), (0.25,)
    config.export, config.log_every, config.num_train_steps = False, 0, 1
    train_lib.train_and_evaluate(config, str(tmp_workdir), default_strategy)
    assert ("train", "standard", (0.5,), (0.25,)) in seen
    assert (config.eval_split, "standard", (0.5,), (0.25,)) in seen
    assert all(entry[2:] == ((0.5,), (0.25,)) for entry in seen)


def test_compare_binary_writes_table(tmp_workdir):
    argv = [
        f"--config={ROOT}/tf_ode/configs/compare.py:smoke",
        f"--workdir={tmp_workdir}",
        "--config.variants=('baseline','anodev2')",
        "--config.train_limit=16",  # one step per epoch
    ]
    _run_binary("tf_ode.compare", argv)
    table = (tmp_workdir / "comparison.md").read_text()
    assert "| baseline |" in table and "| anodev2 |" in table and "| anode |" not in table
    rows = json.loads((tmp_workdir / "comparison.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["baseline", "anodev2"]
    assert rows[0]["nfe"] == 0.0 and rows[1]["nfe"] == 4.0
    # Re-running the finished comparison reports the same numbers (it used to turn every cell
    # into NaN by re-training nothing and overwriting the results).
    _run_binary("tf_ode.compare", argv)
    again = json.loads((tmp_workdir / "comparison.json").read_text())["rows"]
    for first, second in zip(rows, again):
        for key in ("eval_accuracy", "nfe", "num_params", "step", "loss"):
            assert second[key] == first[key], key
    assert compare_config.get_config().variants == ("baseline", "anode", "anodev2")


def test_gradcheck_binary_writes_table_and_plot(tmp_workdir):
    _run_binary(
        "tf_ode.gradcheck",
        [f"--config={ROOT}/tf_ode/configs/gradcheck.py:smoke", f"--output_dir={tmp_workdir}"],
    )
    rows = json.loads((tmp_workdir / "gradcheck.json").read_text())["rows"]
    assert [r["nt"] for r in rows] == [1, 4]
    assert (tmp_workdir / "gradcheck.png").stat().st_size > 1000
    assert "| Nt |" in (tmp_workdir / "gradcheck.md").read_text()


def test_gradcheck_reproduces_anode_claim():
    rows = {r["nt"]: r for r in gradcheck_lib.run_gradcheck(kind="conv", nt_values=(1, 8, 32))}
    for r in rows.values():
        assert r["dto_vs_fd"] < 1e-6
        assert r["checkpoint_vs_dto"] < 1e-13
    # The adjoint is O(1) wrong at ResNet-like Nt and improves ~1/Nt.
    assert rows[1]["adjoint_vs_dto_weights"] > 0.3
    assert 2.5 < rows[8]["adjoint_vs_dto_weights"] / rows[32]["adjoint_vs_dto_weights"] < 5.5
    assert rows[1]["reconstruction_error"] > 10 * rows[32]["reconstruction_error"]


def test_gradcheck_model_kind_is_float64_exact():
    (row,) = gradcheck_lib.run_gradcheck(kind="resnet4_anodev2", nt_values=(2,), channels=4, size=6)
    assert row["dto_vs_fd"] < 1e-6
    assert row["checkpoint_vs_dto"] < 1e-13
    assert row["adjoint_vs_dto_weights"] > 1e-3
    with pytest.raises(ValueError, match="Unknown gradcheck kind"):
        gradcheck_lib.run_gradcheck(kind="mlp", nt_values=(1,))


def test_train_with_tfp_dopri5_adjoint(tmp_workdir, default_strategy):
    config = default_config.get_config("smoke")
    config.method, config.gradient, config.export = "tfp_dopri5", "adjoint", False
    config.num_train_steps, config.eval_limit = 1, 8
    results = train_lib.train_and_evaluate(config, str(tmp_workdir), default_strategy)
    assert results["step"] == 1
    # Adaptive forward + adjoint solves: 6 evaluations per DormandPrince step, many steps.
    assert results["nfe"] >= 24 and np.isfinite(results["loss"])


def test_train_with_our_dopri5_dto(tmp_workdir, default_strategy):
    # Our embedded Dormand-Prince with backprop through the accepted steps (TFP has no DTO).
    config = default_config.get_config("smoke")
    config.method, config.gradient, config.export = "dopri5", "dto", False
    config.log_every, config.num_train_steps, config.eval_limit = 0, 1, 8
    results = train_lib.train_and_evaluate(config, str(tmp_workdir), default_strategy)
    assert (
        results["step"] == 1 and np.isfinite(results["loss"]) and np.isfinite(results["eval_loss"])
    )
    assert (tmp_workdir / "checkpoints" / "ckpt-1.index").exists()
    # Each ODE block takes at least one accepted Dormand-Prince step (7 evaluations, FSAL):
    # adaptive, not the smoke config's fixed Nt = 2 (config.num_steps is ignored).
    model = train_lib.build_model(config, 10, (8, 8, 1))
    model(np.zeros((1, 8, 8, 1), np.float32))
    assert len(model.ode_blocks()) >= 1
    assert results["nfe"] >= 7 * len(model.ode_blocks())
