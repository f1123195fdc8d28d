"""tf_ode.train on the shared run folder: re-run no-op, whole-run results after resume, checks."""

import os
import sys

import multiprocess_utils as mp
import numpy as np
import pytest

import tf_runtime
from tf_ode import train_lib
from tf_ode.configs import default as default_config


def _config(**overrides):
    config = default_config.get_config("smoke")
    config.export = False
    config.log_every = 0
    config.num_train_steps = 4
    config.checkpoint_every = 2
    config.train_limit = 16  # 2 steps per epoch: evaluate at steps 2 and 4
    config.eval_every_epochs = 1
    for key, value in overrides.items():
        config[key] = value
    return config


def test_rerun_of_a_finished_run_is_a_noop_reporting_stored_results(tmp_workdir, default_strategy):
    first = train_lib.train_and_evaluate(_config(), str(tmp_workdir), default_strategy)
    files = {n: (tmp_workdir / n).read_text() for n in ("results.json", "DONE", "history.json")}
    again = train_lib.train_and_evaluate(_config(), str(tmp_workdir), default_strategy)
    assert again == first and "eval_accuracy" in again and again["step"] == 4
    for name, text in files.items():  # nothing rewritten, not even the DONE marker's time
        assert (tmp_workdir / name).read_text() == text, name


def test_results_after_a_resume_cover_the_whole_run(tmp_path, default_strategy):
    straight = train_lib.train_and_evaluate(_config(), str(tmp_path / "straight"), default_strategy)
    # Interrupted after step 2 (simulated by a shorter run), then resumed to step 4.
    train_lib.train_and_evaluate(
        _config(num_train_steps=2), str(tmp_path / "resumed"), default_strategy
    )
    resumed = train_lib.train_and_evaluate(
        _config(), str(tmp_path / "resumed"), default_strategy, allow_config_change=True
    )
    assert [s for s, _ in resumed["eval_accuracy_history"]] == [2, 4]
    assert resumed["eval_accuracy_history"] == straight["eval_accuracy_history"]
    assert resumed["best_eval_accuracy"] == straight["best_eval_accuracy"]
    for key in ("loss", "accuracy", "eval_accuracy", "eval_loss", "step", "num_params"):
        assert resumed[key] == straight[key], key


def test_resume_under_another_config_is_an_error_naming_the_keys(tmp_workdir, default_strategy):
    train_lib.train_and_evaluate(_config(num_train_steps=2), str(tmp_workdir), default_strategy)
    before = (tmp_workdir / "config.json").read_text()
    with pytest.raises(
        tf_runtime.ConfigMismatchError,
        match=r"learning_rate: 0\.1 -> 0\.5.*"
        r"num_train_steps: 2 -> 4",
    ):
        train_lib.train_and_evaluate(_config(learning_rate=0.5), str(tmp_workdir), default_strategy)
    assert (tmp_workdir / "config.json").read_text() == before


def test_invalid_config_writes_nothing(tmp_workdir, default_strategy):
    with pytest.raises(ValueError, match="config.batch_size=17 exceeds the 16 training examples"):
        train_lib.train_and_evaluate(_config(batch_size=17), str(tmp_workdir), default_strategy)
    with pytest.raises(ValueError, match=r"pass --config\.data_dir=DIR"):
        train_lib.train_and_evaluate(_config(dataset="cifar10"), str(tmp_workdir), default_strategy)
    assert list(tmp_workdir.iterdir()) == []  # config.json only after validation


def test_second_run_in_the_same_workdir_is_refused(tmp_workdir, default_strategy):
    with mp.LockHolder(tmp_workdir) as holder:
        with pytest.raises(
            tf_runtime.WorkdirLockedError, match=rf"{tmp_workdir} is in use .*pid {holder.pid}"
        ):
            train_lib.train_and_evaluate(_config(), str(tmp_workdir), default_strategy)
    assert sorted(p.name for p in tmp_workdir.iterdir()) == [".lock"]  # nothing else written


def _first_step(output):
    return int(output.split("step ", 1)[1].split("/", 1)[0])


def test_killed_mid_step_and_in_checkpoint_write_resumes_to_the_same_run(
    tmp_path, default_strategy
):
    sys.path.insert(0, os.path.dirname(mp.FAULT_SCRIPT))
    import fault_script

    straight_dir = tmp_path / "straight"
    straight = train_lib.train_and_evaluate(
        fault_script.ode_config(), str(straight_dir), default_strategy
    )
    victim = tmp_path / "victim"
    # Killed while a batch of step <= 5 is produced, then while ckpt-6 is written (after the
    # evaluation at step 6): the history must be cut back to ckpt-4 and logged again.
    kills = [("mid_step", 5), ("checkpoint_write", 6)]
    outputs, latest, resumed = mp.run_killed_then_resumed("ode", victim, kills)
    assert latest[0] <= 4 and latest[1] == 4, latest
    for output, after in zip(outputs[1:], latest):
        assert _first_step(output) == after + 1  # resumed from the kill point, not from scratch
    assert [s for s, _ in straight["eval_accuracy_history"]] == [2, 4, 6]
    for key, value in straight.items():
        if not key.endswith("seconds") and key not in ("saved_model", "seconds_per_epoch"):
            assert resumed[key] == value, key
    a = mp.checkpoint_floats(str(straight_dir / "checkpoints" / "ckpt-6"))
    b = mp.checkpoint_floats(str(victim / "checkpoints" / "ckpt-6"))
    assert sorted(a) == sorted(b) and len(a) >= 4
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert tf_runtime.has_marker(victim / "DONE")
