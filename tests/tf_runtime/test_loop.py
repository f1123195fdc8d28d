"""The shared distributed loop: replicas, resume, NaN stop, summaries."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_runtime
from input_pipelines import classification


class TinyClassifier(keras.Model):
    """Softmax regression with a custom `train_step` that scales its loss per replica."""

    def __init__(self, num_classes=10, **kwargs):
        super().__init__(**kwargs)
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(num_classes, kernel_initializer="zeros")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, x, training=False):
        return self.dense(self.flatten(x))

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, batch):
        # 1. forward; 2. loss averaged over the GLOBAL batch; 3. gradient + apply; 4. trackers.
        x, y = batch
        with tf.GradientTape() as tape:
            per_example = keras.losses.sparse_categorical_crossentropy(
                y, self(x, training=True), from_logits=True
            )
            loss = tf.reduce_mean(per_example)
            scaled = tf_runtime.scale_loss(loss)  # gradients are all-reduced by SUM
        grads = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def _build(strategy, learning_rate=0.5):
    with strategy.scope():
        model = TinyClassifier()
        model(tf.zeros((1, 8, 8, 1)))
        model.compile(optimizer=keras.optimizers.SGD(learning_rate))
        model.optimizer.build(model.trainable_variables)
    return model


def _dataset_fn(input_context):
    return classification.build_dataset(
        "digits", "train", batch_size=32, input_context=input_context, repeat=True, seed=3
    )


def _train(strategy, workdir, num_steps, **kwargs):
    model = _build(strategy)
    logs = tf_runtime.run_training(
        model,
        _dataset_fn,
        strategy=strategy,
        workdir=str(workdir),
        num_steps=num_steps,
        checkpoint_every=kwargs.pop("checkpoint_every", 2),
        summary_every=2,
        log_every=0,
        **kwargs,
    )
    return model, logs


def test_two_replicas_equal_one_device(tmp_path, default_strategy, mirrored_strategy):
    one, one_logs = _train(default_strategy, tmp_path / "one", 3)
    two, two_logs = _train(mirrored_strategy, tmp_path / "two", 3)
    for a, b in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert one_logs["loss"] == pytest.approx(two_logs["loss"], rel=1e-5)
    assert np.abs(one.get_weights()[0]).max() > 1e-3  # it trained


def test_resume_gives_the_uninterrupted_weights(tmp_path, default_strategy):
    straight, _ = _train(default_strategy, tmp_path / "straight", 6)
    _train(default_strategy, tmp_path / "resumed", 4)
    resumed, logs = _train(default_strategy, tmp_path / "resumed", 6)
    assert logs["step"] == 6
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert sorted(
        os.path.basename(p) for p in glob.glob(str(tmp_path / "resumed/checkpoints/ckpt-*.index"))
    ) == ["ckpt-2.index", "ckpt-4.index", "ckpt-6.index"]
    assert glob.glob(str(tmp_path / "resumed/tensorboard/train/events.out.tfevents.*"))


def test_optimizer_state_is_restored(tmp_path, default_strategy):
    with default_strategy.scope():
        model = TinyClassifier()
        model(tf.zeros((1, 8, 8, 1)))
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        model.optimizer.build(model.trainable_variables)
    tf_runtime.run_training(
        model,
        _dataset_fn,
        strategy=default_strategy,
        workdir=str(tmp_path),
        num_steps=2,
        log_every=0,
    )
    fresh = TinyClassifier()
    fresh(tf.zeros((1, 8, 8, 1)))
    fresh.compile(optimizer=keras.optimizers.Adam(0.01))
    fresh.optimizer.build(fresh.trainable_variables)
    helper = tf_runtime.CheckpointHelper(str(tmp_path), model=fresh, optimizer=fresh.optimizer)
    assert helper.restore_latest() == 2
    assert int(fresh.optimizer.iterations.numpy()) == 2
    for a, b in zip(model.optimizer.variables, fresh.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_nan_stops_with_step_and_keeps_last_good_checkpoint(tmp_path, default_strategy):
    def poisoned(input_context):
        def poison(x, y):
            return x * float("nan"), y

        good = _dataset_fn(input_context).take(2)
        return good.concatenate(_dataset_fn(input_context).map(poison))

    model = _build(default_strategy)
    with pytest.raises(FloatingPointError, match=r"Non-finite loss=nan at step 3; .*ckpt-2"):
        tf_runtime.run_training(
            model,
            poisoned,
            strategy=default_strategy,
            workdir=str(tmp_path),
            num_steps=5,
            checkpoint_every=2,
            log_every=0,
        )
    assert os.path.basename(tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))) == "ckpt-2"


def test_eval_and_hparams_are_written(tmp_path, default_strategy):
    model = _build(default_strategy)
    logs = tf_runtime.run_training(
        model,
        _dataset_fn,
        strategy=default_strategy,
        workdir=str(tmp_path),
        num_steps=2,
        log_every=0,
        eval_fn=lambda step: {"accuracy": 0.25 * step},
        hparams={"optimizer": {"lr": 0.5}},
    )
    assert logs["eval_accuracy"] == 0.5
    assert glob.glob(str(tmp_path / "tensorboard/eval/events.out.tfevents.*"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        tf_runtime.run_training(None, None, strategy=None, workdir="x", num_steps=0)
    with pytest.raises(ValueError, match="checkpoint_every and summary_every"):
        tf_runtime.run_training(
            None, None, strategy=None, workdir="x", num_steps=1, checkpoint_every=0
        )


def test_profiler_trace_on_request(tmp_path, default_strategy):
    model = _build(default_strategy)
    tf_runtime.run_training(
        model,
        _dataset_fn,
        strategy=default_strategy,
        workdir=str(tmp_path),
        num_steps=3,
        log_every=0,
        profile_steps=(2, 3),
    )
    traces = glob.glob(str(tmp_path / "tensorboard/profile/plugins/profile/*/*.xplane.pb"))
    assert len(traces) == 1 and os.path.getsize(traces[0]) > 0
    with pytest.raises(ValueError, match=r"profile_steps must be \(first, last\)"):
        tf_runtime.run_training(
            model,
            _dataset_fn,
            strategy=default_strategy,
            workdir=str(tmp_path),
            num_steps=3,
            profile_steps=(3, 2),
        )
