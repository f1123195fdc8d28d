"""Run folder: atomic files, merged results, workdir lock, config check on resume, flags."""

import json
import multiprocessing
import os
import subprocess
import sys
import time

import ml_collections
import multiprocess_utils as mp
import pytest
from absl import flags

import tf_runtime
from tf_runtime import run as run_lib


def _config(**overrides):
    base = dict(lr=0.1, model=dict(width=8, depth=2), log_every=10)
    base.update(overrides)
    return ml_collections.ConfigDict(base)


# ---- atomic files and markers


def test_atomic_write_leaves_no_temp_and_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "a" / "results.json"
    tf_runtime.atomic_write_json(path, {"x": 1})
    with pytest.raises(TypeError, match="results.json"):
        tf_runtime.atomic_write_json(path, {"x": object()})
    assert json.loads(path.read_text()) == {"x": 1}
    assert os.listdir(path.parent) == ["results.json"]  # the failed write's temp file is gone


def test_read_json_names_the_truncated_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"accuracy": 0.9')
    with pytest.raises(ValueError, match=r"results\.json is not valid JSON"):
        tf_runtime.read_json(path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        tf_runtime.read_json(tmp_path / "missing.json")


def test_markers(tmp_path):
    marker = tmp_path / "stage" / "DONE"
    assert not tf_runtime.has_marker(marker)
    tf_runtime.write_marker(marker, {"step": 4})
    assert tf_runtime.has_marker(marker)
    assert json.loads(marker.read_text()) == {"done": True, "step": 4}
    marker.write_text('{"do')  # a half-written marker of a foreign writer never counts as done
    assert not tf_runtime.has_marker(marker)
    tf_runtime.remove_marker(marker)
    tf_runtime.remove_marker(marker)  # absent: no error
    assert not marker.exists()


def test_atomic_directory_replaces_only_on_success(tmp_path):
    target = tmp_path / "saved_model"
    with tf_runtime.atomic_directory(target) as tmp:
        (tmp_path / tmp / "v1").write_text("1")
    assert sorted(os.listdir(target)) == ["v1"]
    with pytest.raises(RuntimeError, match="boom"):
        with tf_runtime.atomic_directory(target) as tmp:
            (tmp_path / tmp / "v2").write_text("2")
            raise RuntimeError("boom")
    assert sorted(os.listdir(target)) == ["v1"]  # the failed write changed nothing
    with tf_runtime.atomic_directory(target) as tmp:
        (tmp_path / tmp / "v3").write_text("3")
    assert sorted(os.listdir(target)) == ["v3"]
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]  # no temp or old folder left


# ---- results


def test_merge_results_keeps_stored_values_over_missing_ones(tmp_path):
    path = tmp_path / "results.json"
    tf_runtime.merge_results(path, {"step": 4, "eval": {"accuracy": 0.75, "loss": 0.5}})
    merged = tf_runtime.merge_results(
        path, {"step": 4, "eval": {"accuracy": float("nan"), "loss": 0.25}, "extra": None}
    )
    assert merged == {"step": 4, "eval": {"accuracy": 0.75, "loss": 0.25}, "extra": None}
    assert json.loads(path.read_text()) == merged
    assert tf_runtime.load_results(tmp_path / "none.json") is None


# ---- workdir lock


def test_lock_names_workdir_and_live_pid_and_frees_itself_when_the_holder_dies(tmp_path):
    with mp.LockHolder(tmp_path) as holder:
        with pytest.raises(tf_runtime.WorkdirLockedError, match=rf"{tmp_path}.*pid {holder.pid}"):
            tf_runtime.WorkdirLock(tmp_path).acquire()
        holder.kill()  # SIGKILL: no clean-up code runs, the kernel drops the flock
        with tf_runtime.WorkdirLock(tmp_path):
            assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()


def test_lock_file_of_a_reused_or_dead_pid_does_not_block(tmp_path):
    # The pid recorded by a dead holder now belongs to an unrelated live process (pid 1 after a
    # container restart): only a held flock counts, not the file's content.
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": unrelated.pid, "host": os.uname()[1]}
        (tmp_path / ".lock").write_text(json.dumps(lock))
        with tf_runtime.WorkdirLock(tmp_path):
            assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    finally:
        unrelated.kill()
        unrelated.wait()


def _race_for_lock(workdir, barrier, holders, most):
    run_lib._HELD.clear()
    barrier.wait()
    try:
        lock = tf_runtime.WorkdirLock(workdir).acquire()
    except tf_runtime.WorkdirLockedError:
        return
    with holders.get_lock():
        holders.value += 1
        most.value = max(most.value, holders.value)
    time.sleep(0.3)
    with holders.get_lock():
        holders.value -= 1
    lock.release()


def test_lock_is_never_held_twice_when_eight_processes_race_over_a_stale_file(tmp_path):
    context = multiprocessing.get_context("fork")
    for trial in range(8):
        workdir = tmp_path / f"trial{trial}"
        workdir.mkdir()
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        (workdir / ".lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname()[1]}))
        barrier = context.Barrier(8)
        holders, most = context.Value("i", 0), context.Value("i", 0)
        racers = [
            context.Process(target=_race_for_lock, args=(workdir, barrier, holders, most))
            for _ in range(8)
        ]
        for p in racers:
            p.start()
        for p in racers:
            p.join(60)
        assert most.value == 1, f"trial {trial}: {most.value} processes held the lock at once"


def test_lock_is_reentrant_in_one_process(tmp_path):
    with tf_runtime.WorkdirLock(tmp_path):
        with tf_runtime.WorkdirLock(f"{tmp_path}/."):  # the same folder, spelt differently
            pass
        assert (tmp_path / ".lock").exists()  # the outer holder still has it
    assert not (tmp_path / ".lock").exists()


# ---- config check and the run folder


def test_config_json_is_written_only_after_the_check(tmp_path):
    with tf_runtime.open_run(tmp_path, _config()) as run:
        run.finish({"accuracy": 0.5})
    before = (tmp_path / "config.json").read_text()
    changed = _config(lr=0.2, model=dict(width=16, depth=2, act="relu"), log_every=1)
    with pytest.raises(tf_runtime.ConfigMismatchError) as error:
        with tf_runtime.open_run(tmp_path, changed):
            pass
    message = str(error.value)
    assert "3 key(s)" in message and "lr: 0.1 -> 0.2" in message
    assert "model.width: 8 -> 16" in message and "model.act: '<missing>' -> 'relu'" in message
    assert "log_every" not in message  # a run setting, free to change on resume
    assert "--allow_config_change" in message
    assert (tmp_path / "config.json").read_text() == before
    assert not (tmp_path / ".lock").exists()


def test_allowed_config_change_records_config_and_reopens_the_run(tmp_path):
    with tf_runtime.open_run(tmp_path, _config()) as run:
        run.finish({"accuracy": 0.5})
    with tf_runtime.open_run(tmp_path, _config()) as run:
        assert run.done and run.results == {"accuracy": 0.5}
    with tf_runtime.open_run(tmp_path, _config(lr=0.3), allow_config_change=True) as run:
        assert not run.done
        assert run.results == {"accuracy": 0.5}
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 0.3


def test_run_is_done_only_after_finish(tmp_path):
    with tf_runtime.open_run(tmp_path, _config()) as run:
        run.write_results({"step": 3})
        assert not run.done  # partial results are not a finished run
        assert run.finish({"accuracy": 0.25}) == {"step": 3, "accuracy": 0.25}
        assert run.done


# ---- run settings


def test_run_setting_reads_runtime_then_top_level_then_default():
    config = ml_collections.ConfigDict(dict(log_every=7, runtime=tf_runtime.runtime_config()))
    assert tf_runtime.run_setting(config, "log_every") == 10  # the runtime section wins
    config.runtime.checkpoint_every = 3
    assert tf_runtime.run_setting(config, "checkpoint_every") == 3
    assert tf_runtime.run_setting(ml_collections.ConfigDict(dict(log_every=7)), "log_every") == 7
    assert tf_runtime.run_setting(ml_collections.ConfigDict(), "summary_every") == 10
    with pytest.raises(KeyError, match="checkpoint_evry"):
        tf_runtime.run_setting(config, "checkpoint_evry")
    with pytest.raises(KeyError, match="log_evry"):
        tf_runtime.runtime_config(log_evry=1)


# ---- flags

CONFIG_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "tf_hessian",
    "configs",
    "default.py",
)


def _define(flag_values, sys_argv):
    tf_runtime.define_flags(CONFIG_FILE, flag_values=flag_values, sys_argv=sys_argv)


def test_parse_flags_uses_a_private_flag_values():
    values = tf_runtime.parse_flags(
        [
            "prog",
            f"--config={CONFIG_FILE}:smoke",
            "--workdir=/tmp/w",
            "--config.batch_size=8",
            "--strategy=mirrored",
            "--num_cpu_devices=2",
            "--allow_config_change",
        ],
        _define,
    )
    run = tf_runtime.run_flags(values)
    assert (run.workdir, run.strategy, run.num_cpu_devices) == ("/tmp/w", "mirrored", 2)
    assert run.allow_config_change is True and run.config.batch_size == 8
    assert "workdir" not in flags.FLAGS and "config" not in flags.FLAGS


def test_unknown_config_field_is_a_clear_flag_error():
    with pytest.raises(
        flags.IllegalFlagValueError,
        match=r"--config\.batch_sise=3: the config has "
        r"no field 'batch_sise'",
    ):
        tf_runtime.parse_flags(
            ["prog", f"--config={CONFIG_FILE}:smoke", "--workdir=/tmp/w", "--config.batch_sise=3"],
            _define,
        )


# ---- replica loss scaling


def test_scale_loss_divides_by_the_replica_count(mirrored_strategy):
    import tensorflow as tf

    per_replica = mirrored_strategy.run(lambda: tf_runtime.scale_loss(tf.constant(6.0)))
    assert [float(v) for v in mirrored_strategy.experimental_local_results(per_replica)] == [
        3.0,
        3.0,
    ]
    assert float(tf_runtime.scale_loss(tf.constant(6.0, tf.float64))) == 6.0  # one device
    assert tf_runtime.num_replicas() == 1 and tf_runtime.replica_scale() == 1.0


# ---- one validation pass


def test_check_fields_names_every_bad_field_with_its_expectation():
    rules = {
        "lr": tf_runtime.number(above=0),
        "model.width": tf_runtime.integer(at_least=1),
        "model.depth": tf_runtime.integer(at_least=1, optional=True),
        "model.act": tf_runtime.one_of(("relu", "tanh")),
        "sizes": tf_runtime.sequence_of(tf_runtime.integer(at_least=1), min_length=1),
    }
    good = _config(model=dict(width=8, depth=None, act="relu"), sizes=(1, 2))
    tf_runtime.check_fields(good, rules)
    bad = _config(lr=float("nan"), model=dict(width=True, act="gelu"), sizes=())
    with pytest.raises(ValueError) as error:
        tf_runtime.check_fields(bad, rules)
    message = str(error.value)
    assert "config.lr=nan (expected a finite number > 0)" in message
    assert "config.model.width=True (expected an int >= 1)" in message  # a bool is no int
    assert "config.model.act='gelu' (expected one of ('relu', 'tanh'))" in message
    assert "config.sizes=() (expected a list/tuple of at least 1" in message
    assert "model.depth" not in message  # optional and absent
    with pytest.raises(ValueError, match="expected a config object, received a list"):
        tf_runtime.check_fields([1, 2], rules)


def test_open_run_checks_run_settings_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"config\.checkpoint_every=0 \(expected an int >= 1\)"):
        with tf_runtime.open_run(tmp_path / "run", _config(checkpoint_every=0)):
            pass
    with pytest.raises(ValueError, match=r"config\.runtime\.log_every=-1"):
        config = _config(runtime=tf_runtime.runtime_config(log_every=-1))
        with tf_runtime.open_run(tmp_path / "run", config):
            pass
    assert not (tmp_path / "run").exists()


# ---- files read back


def test_finished_run_whose_artefact_was_deleted_is_not_done(tmp_path, capsys):
    export = tmp_path / "saved_model"
    with tf_runtime.open_run(tmp_path, _config()) as run:
        export.mkdir()
        (export / "saved_model.pb").write_text("x")
        run.finish({"saved_model": str(export), "model": "mlp", "nested": {"spectrum": "s.json"}})
    assert json.loads((tmp_path / "DONE").read_text())["artefacts"] == ["saved_model"]
    with tf_runtime.open_run(tmp_path, _config()) as run:
        assert run.done
    (export / "saved_model.pb").unlink()
    export.rmdir()
    with tf_runtime.open_run(tmp_path, _config()) as run:
        assert not run.done
        assert run.missing_artefacts() == ["saved_model"]
    assert "saved_model, which no longer exist" in capsys.readouterr().out


def test_config_json_of_another_structure_is_named(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(tf_runtime.ConfigMismatchError, match=r"config\.json holds a JSON list"):
        with tf_runtime.open_run(tmp_path, _config()):
            pass
    with pytest.raises(ValueError, match=r"config\.json holds a JSON list"):
        tf_runtime.read_config(tmp_path)


def test_results_json_of_another_structure_is_named(tmp_path):
    with tf_runtime.open_run(tmp_path, _config()) as run:
        (tmp_path / "results.json").write_text("3")
        with pytest.raises(ValueError, match=r"results\.json holds a JSON int"):
            _ = run.results


@pytest.mark.parametrize(
    "text,detail",
    [
        ("7", "a JSON int at the top"),
        ('{"train": 7}', "'train' is a int"),
        ('{"train": [[1, 2]]}', r"'train' holds the entry \[1, 2\]"),
        ('{"eval": [["a", {}]]}', "'eval' holds the entry"),
    ],
)
def test_history_of_another_structure_is_named(tmp_path, text, detail):
    (tmp_path / "history.json").write_text(text)
    with pytest.raises(ValueError, match=rf"history\.json is not a training history \({detail}"):
        tf_runtime.load_history(tmp_path)


def test_variant_of_a_config_file_without_variants_is_a_flag_error(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text(
        "import ml_collections\n\n\ndef get_config():\n"
        "    return ml_collections.ConfigDict(dict(lr=0.1))\n"
    )

    def define(flag_values, sys_argv):
        tf_runtime.define_flags(str(path), flag_values=flag_values, sys_argv=sys_argv)

    with pytest.raises(
        flags.IllegalFlagValueError,
        match=r"Unknown config variant 'fast': .*plain\.py has no variants",
    ):
        tf_runtime.parse_flags(["prog", f"--config={path}:fast", "--workdir=/tmp/x"], define)
    from tf_hessian import train as hessian_train

    with pytest.raises(flags.IllegalFlagValueError) as error:
        tf_runtime.parse_flags(
            ["prog", f"--config={hessian_train.DEFAULT_CONFIG}:bogus", "--workdir=/tmp/x"],
            hessian_train.define_flags,
        )
    assert "Unknown config variant 'bogus'" in str(error.value)
    assert "Traceback" not in str(error.value) and "\n" not in str(error.value)
