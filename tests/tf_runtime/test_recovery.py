"""Checkpoint fallback, garbage state file, history across resume, atomic checked export."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import logging as absl_logging

import tf_runtime


def _helper(workdir, value=0.0):
    variable = tf.Variable(value, dtype=tf.float64)
    return variable, tf_runtime.CheckpointHelper(str(workdir), max_to_keep=5, w=variable)


def _save_steps(workdir, steps):
    variable, ckpt = _helper(workdir)
    for step in steps:
        variable.assign(10.0 * step)
        ckpt.save(step)


def _corrupt_data(workdir, step):
    (data,) = glob.glob(f"{workdir}/checkpoints/ckpt-{step}.data-*")
    with open(data, "r+b") as f:
        f.truncate(3)
    return os.path.basename(data)


@pytest.fixture
def warnings_seen(monkeypatch):
    seen = []
    monkeypatch.setattr(absl_logging, "warning", lambda msg, *a: seen.append(msg % a))
    return seen


def test_corrupt_latest_falls_back_to_previous_with_warning(tmp_path, warnings_seen):
    _save_steps(tmp_path, [1, 2, 3])
    data_name = _corrupt_data(tmp_path, 3)
    variable, ckpt = _helper(tmp_path)
    assert ckpt.restore_latest() == 2
    assert variable.numpy() == 20.0
    assert any(data_name in w and "ckpt-3" in w for w in warnings_seen), warnings_seen
    # The state file now names the restored checkpoint; the next save overwrites ckpt-3.
    assert ckpt.latest_path.endswith("ckpt-2")
    variable.assign(33.0)
    ckpt.save(3)
    again, ckpt2 = _helper(tmp_path)
    assert ckpt2.restore_latest() == 3 and again.numpy() == 33.0


def test_garbage_state_file_is_recovered_from_checkpoint_files(tmp_path, warnings_seen):
    _save_steps(tmp_path, [2, 4])
    (tmp_path / "checkpoints" / "checkpoint").write_text("garbage {{{")
    variable, ckpt = _helper(tmp_path)
    assert ckpt.restore_latest() == 4
    assert variable.numpy() == 40.0
    assert any("unreadable" in w and "checkpoints/checkpoint" in w for w in warnings_seen)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")


def test_garbage_state_file_without_checkpoints_is_an_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint").write_text("garbage")
    _, ckpt = _helper(tmp_path)
    with pytest.raises(ValueError, match=r"checkpoints/checkpoint is unreadable"):
        ckpt.restore_latest()


def test_all_checkpoints_corrupt_is_an_error_naming_files_not_step_zero(tmp_path):
    _save_steps(tmp_path, [1, 2])
    names = [_corrupt_data(tmp_path, 1), _corrupt_data(tmp_path, 2)]
    _, ckpt = _helper(tmp_path)
    with pytest.raises(ValueError, match="No readable checkpoint") as error:
        ckpt.restore_latest()
    assert all(name in str(error.value) for name in names)
    assert sorted(os.path.basename(p) for p in glob.glob(f"{tmp_path}/checkpoints/*.index")) == [
        "ckpt-1.index",
        "ckpt-2.index",
    ]  # nothing was overwritten


class _Counter(keras.Model):
    """One weight moved by a constant each step: the logs name the step exactly."""

    def __init__(self):
        super().__init__()
        self.w = self.add_weight(shape=(), initializer="zeros", name="w")
        self.tracker = keras.metrics.Mean(name="w_value")

    def call(self, x):
        return x * self.w

    @property
    def metrics(self):
        return [self.tracker]

    def train_step(self, batch):
        self.w.assign_add(tf.reduce_mean(batch))
        self.tracker.update_state(self.w)
        return {"w_value": self.tracker.result()}


def _run_counter(workdir, num_steps, eval_calls):
    model = _Counter()
    model(tf.zeros(()))
    model.compile(optimizer=keras.optimizers.SGD(0.1))

    def eval_fn(step):
        eval_calls.append(step)
        return {"w": float(model.w.numpy())}

    return tf_runtime.run_training(
        model,
        lambda ctx: tf.data.Dataset.from_tensors(tf.ones((2,))).repeat(),
        strategy=tf.distribute.get_strategy(),
        workdir=str(workdir),
        num_steps=num_steps,
        checkpoint_every=2,
        summary_every=1,
        log_every=0,
        eval_fn=eval_fn,
        eval_every=2,
    )


def test_history_covers_the_whole_run_across_a_resume(tmp_path):
    calls = []
    _run_counter(tmp_path, 4, calls)
    logs = _run_counter(tmp_path, 6, calls)
    history = tf_runtime.load_history(tmp_path)
    assert [s for s, _ in history["eval"]] == [2, 4, 6]
    assert [e["w"] for _, e in history["eval"]] == [2.0, 4.0, 6.0]
    assert [s for s, _ in history["train"]] == [1, 2, 3, 4, 5, 6]
    assert logs == {"w_value": 6.0, "eval_w": 6.0, "step": 6}
    # Re-run at the end: the final logs come from the history, no evaluation is repeated.
    calls.clear()
    assert _run_counter(tmp_path, 6, calls) == logs and calls == []
    # Entries after the restored checkpoint are dropped (they will be logged again).
    assert [s for s, _ in tf_runtime.load_history(tmp_path, up_to_step=3)["eval"]] == [2]


def _dense():
    model = keras.Sequential([keras.layers.Input((3,)), keras.layers.Dense(2)])
    return model


def test_export_and_check_at_two_batch_sizes(tmp_path):
    model = _dense()
    spec = [tf.TensorSpec([None, 3], tf.float32)]
    path = tf_runtime.export_and_check(model, tmp_path / "saved_model", spec)
    assert path == str(tmp_path / "saved_model") and tf_runtime.is_exported(path)
    loaded = tf.saved_model.load(path)
    x = tf.ones((4, 3))
    np.testing.assert_allclose(loaded.serve(x), model(x), atol=1e-6)
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]


def test_failed_reload_check_leaves_no_export(tmp_path):
    model = _dense()
    spec = [tf.TensorSpec([None, 3], tf.float32)]
    offset = tf.Variable(1.0)
    with pytest.raises(ValueError, match=r"saved_model failed its reload check at batch size 1"):
        tf_runtime.export_and_check(
            model,
            tmp_path / "saved_model",
            spec,
            fn=lambda x: model(x, training=False) + offset,  # serves the model + 1
            reference=lambda x: model(x, training=False),
        )
    assert not tf_runtime.is_exported(tmp_path / "saved_model")
    assert os.listdir(tmp_path) == []


def test_weights_saved_atomically_and_load_errors_name_the_file(tmp_path):
    model = _dense()
    path = tf_runtime.save_weights_atomic(model, tmp_path / "net.weights.h5")
    assert sorted(os.listdir(tmp_path)) == ["net.weights.h5"]
    fresh = _dense()
    tf_runtime.load_weights(fresh, path)
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    raw = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(raw[: len(raw) // 2])
    with pytest.raises(
        ValueError, match=rf"Cannot load weights from {path} \({len(raw) // 2} bytes"
    ):
        tf_runtime.load_weights(fresh, path)
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        tf_runtime.load_weights(fresh, tmp_path / "missing.weights.h5")
    with pytest.raises(ValueError, match=r"must end in \.weights\.h5"):
        tf_runtime.save_weights_atomic(model, tmp_path / "net.h5")
