"""Strategy, checkpoint, summary, config and export helpers."""

import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

import tf_runtime
from tf_runtime import strategy as strategy_lib


def test_build_strategy_names(monkeypatch):
    assert tf_runtime.build_strategy("default").num_replicas_in_sync == 1
    mirrored = tf_runtime.build_strategy("mirrored", num_cpu_devices=2)
    assert mirrored.num_replicas_in_sync == 2
    assert strategy_lib.is_chief(mirrored)
    with pytest.raises(ValueError, match=r"--strategy must be one of .* Received: strategy='tpu'"):
        tf_runtime.build_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        tf_runtime.build_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(
        ValueError, match="TF_CONFIG must be JSON with cluster.worker and task.index"
    ):
        tf_runtime.build_strategy("multi_worker")


def test_cpu_split_cannot_change_after_initialization():
    assert tf_runtime.configure_cpu_devices(2) == 2  # what conftest configured
    with pytest.raises(ValueError, match="already initialized with 2"):
        tf_runtime.configure_cpu_devices(3)
    with pytest.raises(ValueError, match="num_cpu_devices must be >= 1"):
        tf_runtime.configure_cpu_devices(0)


def test_write_config_roundtrip(tmp_path):
    import ml_collections

    config = ml_collections.ConfigDict({"model": {"width": 8, "sizes": (1, 2)}, "lr": 0.1})
    path = tf_runtime.write_config(config, str(tmp_path / "run"))
    assert json.load(open(path)) == {"lr": 0.1, "model": {"sizes": [1, 2], "width": 8}}
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        tf_runtime.write_config({"f": object()}, str(tmp_path))


def test_checkpoint_helper_tracks_step_rng_and_rejects_mismatch(tmp_path):
    variable = tf.Variable([1.0, 2.0])
    helper = tf_runtime.CheckpointHelper(str(tmp_path), weights=variable)
    assert helper.restore_latest() == 0 and helper.latest_path is None
    draws_before = helper.rng.normal([3]).numpy()
    helper.save(5)
    after_save = helper.rng.normal([3]).numpy()
    variable.assign([0.0, 0.0])
    again = tf_runtime.CheckpointHelper(str(tmp_path), weights=variable)
    assert again.restore_latest() == 5
    np.testing.assert_array_equal(variable.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(again.rng.normal([3]).numpy(), after_save)
    assert not np.array_equal(draws_before, after_save)
    wrong = tf_runtime.CheckpointHelper(str(tmp_path), weights=tf.Variable([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"Cannot restore checkpoint .*ckpt-5"):
        wrong.restore_latest()
    with pytest.raises(ValueError, match="reserved"):
        tf_runtime.CheckpointHelper(str(tmp_path), step=variable)


def _events(folder):
    tags = {}
    for path in tf.io.gfile.glob(os.path.join(folder, "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


def test_summary_writers_and_progress(tmp_path):
    writers = tf_runtime.SummaryWriters(str(tmp_path))
    writers.scalars("train", 3, {"loss": 1.5})
    writers.images("train", 3, "grid", np.ones((2, 4, 4, 3)))
    writers.hparams({"lr": 0.1, "layers": [1, 2]})
    writers.flush()
    tags = _events(str(tmp_path / "tensorboard/train"))
    assert tags["loss"] == [3] and tags["grid"] == [3] and "_hparams_/session_start_info" in tags
    with pytest.raises(ValueError, match="must be a scalar"):
        writers.scalars("train", 1, {"v": [1.0, 2.0]})
    silent = tf_runtime.SummaryWriters(str(tmp_path / "off"), enabled=False)
    silent.scalars("train", 1, {"loss": 1.0})
    assert not os.path.exists(tmp_path / "off")
    stream = io.StringIO()
    progress = tf_runtime.ProgressLogger(10, every=5, stream=stream)
    assert progress.update(1, {"loss": 2.0}) is None
    line = progress.update(5, {"loss": 1.0})
    assert line.startswith("step 5/10") and "loss=1" in stream.getvalue()
    assert tf_runtime.flatten_dict({"a": {"b": 1}, "c": 2}) == {"a.b": 1, "c": 2}


@pytest.mark.parametrize("batch", [1, 3])
def test_export_and_reload_check(tmp_path, batch):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)]
    )
    path = tf_runtime.export_saved_model(
        model, str(tmp_path / "saved"), [tf.TensorSpec([None, 4], tf.float32)]
    )
    x = tf.random.stateless_normal([batch, 4], seed=[1, 2])
    assert tf_runtime.check_export(path, lambda v: model(v, training=False), (x,)) < 1e-6
    with pytest.raises(ValueError, match="differ from the model by"):
        tf_runtime.check_export(path, lambda v: model(v) + 1.0, (x,))
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="must be built"):
        tf_runtime.export_saved_model(unbuilt, str(tmp_path / "x"), [tf.TensorSpec([None, 4])])


def test_task_progress_prints_elapsed_and_eta(monkeypatch):

    from tf_runtime import summaries

    clock = iter([0.0, 0.0, 10.0, 10.0, 10.0, 30.0])
    monkeypatch.setattr(summaries.time, "perf_counter", lambda: next(clock))
    stream = io.StringIO()
    progress = tf_runtime.TaskProgress(4, "study", stream=stream)
    assert progress.start("b16") == "[study] 1/4 b16 ..."
    assert progress.finish("b16", "acc=0.9") == (
        "[study] 1/4 b16: acc=0.9 (10 s; elapsed 10 s, eta 30 s)"
    )
    assert progress.finish("b32", reused=True) == "[study] 2/4 b32 (reused; elapsed 10 s, eta 20 s)"
    progress.start("b64")
    assert progress.finish("b64").endswith("(20 s; elapsed 30 s, eta 15 s)")
