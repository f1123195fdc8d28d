"""tf_ode.train on the shared run folder: re-run no-op, whole-run results after resume, checks.

One straight run (`fault_script.ode_config()`: 6 steps, checkpoints every 2, evaluations at steps
2, 4 and 6) is shared by the tests that compare against it.
"""

import os
import sys

import multiprocess_utils as mp
import numpy as np
import pytest

import tf_runtime
from tf_ode import train_lib

sys.path.insert(0, os.path.dirname(mp.FAULT_SCRIPT))
import fault_script  # noqa: E402


def _config(**overrides):
    config = fault_script.ode_config()  # what the kill test's subprocesses train
    for key, value in overrides.items():
        config[key] = value
    return config


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, default_strategy):
    workdir = tmp_path_factory.mktemp("straight")
    results = train_lib.train_and_evaluate(_config(), str(workdir), default_strategy)
    return workdir, results


def test_rerun_of_a_finished_run_is_a_noop_reporting_stored_results(straight_run, default_strategy):
    workdir, first = straight_run
    files = {n: (workdir / n).read_text() for n in ("results.json", "DONE", "history.json")}
    again = train_lib.train_and_evaluate(_config(), str(workdir), default_strategy)
    assert again == first and "eval_accuracy" in again and again["step"] == 6
    for name, text in files.items():  # nothing rewritten, not even the DONE marker's time
        assert (workdir / name).read_text() == text, name


def test_resume_under_another_config_is_an_error_then_results_cover_the_whole_run(
    tmp_workdir, straight_run, default_strategy
):
    _, straight = straight_run
    # Interrupted after step 2 (simulated by a shorter run).
    train_lib.train_and_evaluate(_config(num_train_steps=2), str(tmp_workdir), default_strategy)
    before = (tmp_workdir / "config.json").read_text()
    with pytest.raises(
        tf_runtime.ConfigMismatchError,
        match=r"learning_rate: 0\.1 -> 0\.5.*"
        r"num_train_steps: 2 -> 6",
    ):
        train_lib.train_and_evaluate(_config(learning_rate=0.5), str(tmp_workdir), default_strategy)
    assert (tmp_workdir / "config.json").read_text() == before
    # Resumed to step 6: the results cover the whole run, also the evaluation before the resume.
    resumed = train_lib.train_and_evaluate(
        _config(), str(tmp_workdir), default_strategy, allow_config_change=True
    )
    assert [s for s, _ in resumed["eval_accuracy_history"]] == [2, 4, 6]
    assert resumed["eval_accuracy_history"] == straight["eval_accuracy_history"]
    assert resumed["best_eval_accuracy"] == straight["best_eval_accuracy"]
    for key in ("loss", "accuracy", "eval_accuracy", "eval_loss", "step", "num_params"):
        assert resumed[key] == straight[key], key


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


def test_killed_in_checkpoint_write_resumes_to_the_same_run(straight_run, tmp_path):
    # Killed while ckpt-6 is written (after the evaluation at step 6): the history must be cut
    # back to ckpt-4 and logged again. (A kill inside a step goes through the same
    # tf_runtime loop and is exercised by tests/tf_hessian/test_train_runtime.py.)
    straight_dir, straight = straight_run
    victim = tmp_path / "victim"
    outputs, latest, resumed = mp.run_killed_then_resumed("ode", victim, [("checkpoint_write", 6)])
    assert latest == [4], latest
    assert _first_step(outputs[1]) == 5  # resumed from the kill point, not from scratch
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
