"""tf_hessian.train on the shared run folder: re-run no-op, checks, checkpoint errors, binary."""

import glob
import json
import os
import subprocess
import sys

import keras
import multiprocess_utils as mp
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import tf_runtime
from tf_hessian import HessianOperator, train, train_lib
from tf_hessian import data as data_lib
from tf_hessian.configs import default
from tf_hessian.testing import loss64


def _config(**overrides):
    config = default.get_config("smoke")
    config.log_every = 0
    config.export = False
    for key, value in overrides.items():
        config[key] = value
    return config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("hessian_run"))
    results = train_lib.train_and_evaluate(_config(), workdir, tf.distribute.get_strategy())
    return workdir, results


def test_rerun_of_a_finished_run_is_a_noop_reporting_stored_metrics(finished_run):
    workdir, first = finished_run
    files = {
        n: open(os.path.join(workdir, n)).read() for n in ("metrics.json", "DONE", "history.json")
    }
    again = train_lib.train_and_evaluate(_config(), workdir, tf.distribute.get_strategy())
    assert again == first and again["step"] == 2
    assert again["test_accuracy"] == first["test_accuracy"]
    for name, text in files.items():  # nothing rewritten, not even the DONE marker's time
        assert open(os.path.join(workdir, name)).read() == text, name


def test_killed_after_final_checkpoint_still_reports_accuracy(finished_run, tmp_path):
    # A run killed after its last checkpoint but before metrics.json: the re-run takes the
    # final train and eval logs from the history instead of failing on missing keys.
    workdir, first = finished_run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", workdir, str(copy)], check=True)
    (copy / "metrics.json").unlink()
    (copy / "DONE").unlink()
    again = train_lib.train_and_evaluate(_config(), str(copy), tf.distribute.get_strategy())
    assert again == first


def test_missing_data_folder_names_the_real_flag(tmp_workdir):
    config = _config()
    config.data.name = "cifar10"
    with pytest.raises(ValueError, match=r"pass --config\.data\.data_dir=DIR"):
        train_lib.train_and_evaluate(config, str(tmp_workdir), tf.distribute.get_strategy())
    assert list(tmp_workdir.iterdir()) == []


def test_restore_network_rejects_a_foreign_checkpoint(finished_run, tmp_path):
    workdir, _ = finished_run
    other = keras.Sequential([keras.layers.Input((3,)), keras.layers.Dense(5)])
    foreign = tf.train.Checkpoint(model=other).write(str(tmp_path / "foreign" / "ckpt-1"))
    with pytest.raises(ValueError, match=r"foreign/ckpt-1 does not hold this run's 'mlp' network"):
        train_lib.restore_network(workdir, checkpoint=foreign)


def test_restore_network_names_a_truncated_checkpoint(finished_run, tmp_path):
    workdir, _ = finished_run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", workdir, str(copy)], check=True)
    (data,) = (copy / "checkpoints").glob("ckpt-2.data-*")
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(ValueError, match=r"Cannot read checkpoint .*ckpt-2 \(ckpt-2\.data-00000"):
        train_lib.restore_network(str(copy))


def test_binary_flags_parse_on_a_private_flag_values(tmp_path):
    values = tf_runtime.parse_flags(
        [
            "tf_hessian.train",
            f"--config={train.DEFAULT_CONFIG}:smoke",
            f"--workdir={tmp_path}",
            "--config.num_steps=1",
            "--config.export=False",
            "--config.log_every=0",
        ],
        train.define_flags,
    )
    train.main([], flag_values=values)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (
        metrics["step"] == 1
        and json.loads((tmp_path / "config.json").read_text())["num_steps"] == 1
    )


def test_binary_reports_a_misspelt_config_field(tmp_path, monkeypatch, capsys):
    # The binary's own parser (`app.run(main, flags_parser=tf_runtime.flags_parser)`) on a
    # fresh flag registry with this binary's flags, in-process: a subprocess would spend its
    # time importing TensorFlow.
    values = flags.FlagValues()
    monkeypatch.setattr(flags, "FLAGS", values)
    argv = [
        "tf_hessian.train",
        f"--config={train.DEFAULT_CONFIG}:smoke",
        f"--workdir={tmp_path}",
        "--config.batch_sise=3",
    ]
    train.define_flags(flag_values=values, sys_argv=argv)
    with pytest.raises(SystemExit) as exit_info:
        tf_runtime.flags_parser(argv)
    assert exit_info.value.code == 1
    stderr = capsys.readouterr().err
    assert "--config.batch_sise=3: the config has no field 'batch_sise'" in stderr
    assert "AttributeError" not in stderr
    assert list(tmp_path.iterdir()) == []


def _first_step(output):
    return int(output.split("step ", 1)[1].split("/", 1)[0])


def test_killed_mid_step_and_in_export_resumes_to_the_same_run(tmp_path):
    # The uninterrupted run, in this process (the same code the subprocesses run).
    sys.path.insert(0, os.path.dirname(mp.FAULT_SCRIPT))
    import fault_script

    straight_dir = tmp_path / "straight"
    straight = train_lib.train_and_evaluate(
        fault_script.hessian_config(), str(straight_dir), tf.distribute.get_strategy()
    )
    victim = tmp_path / "victim"
    # A kill while a checkpoint is written is the shared loop's (tf_runtime) and is tested
    # on tf_ode's trainer (tests/tf_ode/test_train_runtime.py); each kill here costs a process.
    kills = [("mid_step", 4), ("export", 0)]
    outputs, latest, resumed = mp.run_killed_then_resumed("hessian", victim, kills)
    # mid_step: killed while a batch of step <= 4 was produced, after ckpt-2 at the latest.
    # export: training had finished (ckpt-6), the SavedModel was not yet in place.
    assert latest[0] <= 2 and latest[1] == 6, latest
    assert _first_step(outputs[1]) == latest[0] + 1  # resumed from the kill point
    assert "step " not in outputs[2]  # the final run only exported and wrote the metrics
    assert not list(victim.glob(".saved_model.*"))  # the killed export's temp folder is gone
    for key in ("step", "train", "test_accuracy", "fgsm_accuracy", "schedule"):
        assert resumed[key] == straight[key], key
    a = mp.checkpoint_floats(str(straight_dir / "checkpoints" / "ckpt-6"))
    b = mp.checkpoint_floats(str(victim / "checkpoints" / "ckpt-6"))
    assert sorted(a) == sorted(b) and len(a) >= 4
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert tf_runtime.is_exported(victim / "saved_model")
    assert (
        json.loads((victim / "metrics.json").read_text())["test_accuracy"]
        == straight["test_accuracy"]
    )


def _spectrum_config(**overrides):
    config = _config(**overrides)
    config.track_spectrum_every = 1
    config.track_spectrum.examples = 32
    config.track_spectrum.dtype = "float64"
    config.track_spectrum.max_iter = 200
    config.track_spectrum.tol = 1e-10
    config.track_spectrum.trace_probes = 4
    return config


def _tensorboard_scalars(log_dir, tag):
    values = {}
    for path in sorted(glob.glob(f"{log_dir}/events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values.setdefault(event.step, []).append(float(tf.make_ndarray(value.tensor)))
    return values


def _exact_lambda_max(workdir, config):
    # Independent of the tracker: the final checkpoint's weights in float64, the explicit
    # Hessian of the data loss over the same 32 examples, numpy's eigvalsh.
    network, _, path = train_lib.restore_network(workdir, dtype="float64")
    data = data_lib.fixed_batch(config, "train", 32, dtype=tf.float64, seed=config.seed)
    hessian = HessianOperator(network, loss64(), data).full_hessian()
    return float(np.linalg.eigvalsh(hessian)[-1]), path


def test_spectrum_tracked_every_step_to_json_and_tensorboard(finished_run, tmp_workdir):
    config = _spectrum_config()
    metrics = train_lib.train_and_evaluate(config, str(tmp_workdir), tf.distribute.get_strategy())
    records = json.loads((tmp_workdir / "spectrum.json").read_text())
    assert [r["step"] for r in records] == [1, 2]
    assert metrics["spectrum"]["steps"] == [1, 2] and metrics["spectrum"]["last"] == records[-1]
    exact, path = _exact_lambda_max(str(tmp_workdir), config)
    assert path.endswith("ckpt-2")
    assert records[-1]["lambda_max"] == pytest.approx(exact, rel=1e-6)
    assert records[-1]["lambda_max_converged"]
    assert records[0]["lambda_max"] != pytest.approx(records[1]["lambda_max"], rel=1e-6)
    scalars = _tensorboard_scalars(tmp_workdir / "tensorboard" / "spectrum", "hessian/lambda_max")
    assert sorted(scalars) == [1, 2]
    assert scalars[2] == [pytest.approx(records[-1]["lambda_max"], rel=1e-6)]
    # Tracking does not change training: the same metrics as the untracked run.
    _, untracked = finished_run
    for key in ("step", "train", "test_accuracy", "fgsm_accuracy"):
        assert metrics[key] == untracked[key], key


def test_spectrum_tracking_resumes_without_duplicates_or_stale_records(tmp_path):
    strategy = tf.distribute.get_strategy()
    config = _spectrum_config(num_steps=3, checkpoint_every=2)
    straight = tmp_path / "straight"
    train_lib.train_and_evaluate(config, str(straight), strategy)
    expected = json.loads((straight / "spectrum.json").read_text())
    assert [r["step"] for r in expected] == [1, 2, 3]
    # A run killed after tracking step 3 but before its checkpoint: ckpt-2 is the latest and
    # spectrum.json holds a (stale) step-3 record.
    victim = tmp_path / "victim"
    subprocess.run(["cp", "-r", str(straight), str(victim)], check=True)
    for name in ("metrics.json", "DONE"):
        (victim / name).unlink()
    for stale in (victim / "checkpoints").glob("ckpt-3.*"):
        stale.unlink()
    tf.compat.v1.train.update_checkpoint_state(
        str(victim / "checkpoints"), str(victim / "checkpoints" / "ckpt-2")
    )
    records = json.loads((victim / "spectrum.json").read_text())
    records[-1]["lambda_max"] = -1.0
    # And one of a step past the run's end (left by a longer run of an earlier config).
    records.append(dict(records[-1], step=4))
    tf_runtime.atomic_write_json(victim / "spectrum.json", records)
    resumed = train_lib.train_and_evaluate(config, str(victim), strategy)
    again = json.loads((victim / "spectrum.json").read_text())
    assert [r["step"] for r in again] == [1, 2, 3]
    # The resumed process tracked only step 3 (its events are beside the first process's).
    scalars = _tensorboard_scalars(victim / "tensorboard" / "spectrum", "hessian/lambda_max")
    assert {step: len(v) for step, v in scalars.items()} == {1: 1, 2: 1, 3: 2}
    for a, b in zip(expected, again):
        assert a["lambda_max"] == pytest.approx(b["lambda_max"], rel=1e-9)
        assert a["trace"] == pytest.approx(b["trace"], rel=1e-9)
    assert resumed["spectrum"]["steps"] == [1, 2, 3]
    # Re-running the finished run changes nothing.
    text = (victim / "spectrum.json").read_text()
    train_lib.train_and_evaluate(config, str(victim), strategy)
    assert (victim / "spectrum.json").read_text() == text


def test_spectrum_under_two_replicas_equals_one_device(tmp_path, mirrored_strategy):
    config = _spectrum_config()
    train_lib.train_and_evaluate(config, str(tmp_path / "one"), tf.distribute.get_strategy())
    train_lib.train_and_evaluate(config, str(tmp_path / "two"), mirrored_strategy)
    one = json.loads((tmp_path / "one" / "spectrum.json").read_text())
    two = json.loads((tmp_path / "two" / "spectrum.json").read_text())
    assert [r["step"] for r in two] == [1, 2]
    for a, b in zip(one, two):
        assert a["lambda_max"] == pytest.approx(b["lambda_max"], rel=1e-5)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("track_spectrum_every", -1, r"config.track_spectrum_every must be an int >= 0"),
        ("examples", 100000, r"config.track_spectrum.examples=100000 exceeds the \d+ examples"),
        ("dtype", "float16", r"config.track_spectrum.dtype must be one of"),
        ("trace_probes", 0, r"config.track_spectrum.trace_probes must be >= 1"),
    ],
)
def test_bad_spectrum_settings_fail_before_anything_is_written(tmp_workdir, field, value, match):
    config = _spectrum_config()
    if field == "track_spectrum_every":
        config.track_spectrum_every = value
    else:
        config.track_spectrum[field] = value
    with pytest.raises(ValueError, match=match):
        train_lib.train_and_evaluate(config, str(tmp_workdir), tf.distribute.get_strategy())
    assert list(tmp_workdir.iterdir()) == []


@pytest.mark.parametrize(
    "field,value,match",
    [
        (
            "optimizer.learning_rate",
            0.0,
            r"config\.optimizer\.learning_rate=0\.0 \(expected a finite number > 0\)",
        ),
        ("optimizer.learning_rate", -0.5, r"config\.optimizer\.learning_rate=-0\.5"),
        ("epochs", -5, r"config\.epochs=-5 \(expected a finite number > 0\)"),
        (
            "data.train_limit",
            -10,
            r"config\.data\.train_limit=-10 \(expected an int >= 1 or None\)",
        ),
        ("num_steps", -3, r"config\.num_steps=-3"),
        ("model", "mpl", r"config\.model='mpl' \(expected one of \("),
        ("robust.adv_ratio", 1.5, r"config\.robust\.adv_ratio=1\.5"),
        ("checkpoint_every", 0, r"config\.checkpoint_every=0 \(expected an int >= 1\)"),
    ],
)
def test_invalid_field_fails_before_anything_is_written(tmp_workdir, field, value, match):
    config = _config()
    section, _, name = field.rpartition(".")
    (config[section] if section else config)[name] = value
    with pytest.raises(ValueError, match=match):
        train_lib.train_and_evaluate(config, str(tmp_workdir), tf.distribute.get_strategy())
    assert list(tmp_workdir.iterdir()) == []


def test_all_invalid_fields_are_named_at_once_and_the_fixed_run_is_not_a_config_change(
    tmp_workdir,
):
    config = _config(num_steps=-3, epochs=-5)
    config.optimizer.learning_rate = 0.0
    with pytest.raises(ValueError, match=r"epochs=-5.*num_steps=-3.*learning_rate=0\.0"):
        train_lib.train_and_evaluate(config, str(tmp_workdir), tf.distribute.get_strategy())
    results = train_lib.train_and_evaluate(
        _config(), str(tmp_workdir), tf.distribute.get_strategy()
    )
    assert results["step"] == 2


def test_finished_run_whose_saved_model_was_deleted_exports_it_again(tmp_workdir):
    import shutil

    config = _config(export=True)
    strategy = tf.distribute.get_strategy()
    first = train_lib.train_and_evaluate(config, str(tmp_workdir), strategy)
    shutil.rmtree(tmp_workdir / "saved_model")
    again = train_lib.train_and_evaluate(config, str(tmp_workdir), strategy)
    assert (tmp_workdir / "saved_model" / "saved_model.pb").exists()
    assert again["step"] == first["step"] == 2  # restored from the final checkpoint, no training
    assert again["test_accuracy"] == first["test_accuracy"]
