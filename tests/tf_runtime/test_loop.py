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


class _KilledError(Exception):
    pass


def _kill_after(kill_step):
    def after_step(step, logs):
        if step == kill_step:
            raise _KilledError()  # before this step's checkpoint, like a SIGKILL mid-run

    return after_step


@pytest.mark.parametrize("kill_step", [4, 5])
def test_train_logs_after_a_resume_equal_the_uninterrupted_run(
    tmp_path, default_strategy, kill_step
):
    # checkpoint_every=3 is off the summary grid (2): the trackers hold the running mean of
    # step 3 (kill at 4, resume from ckpt-3) or of steps 3-4 (kill at 5, resume from ckpt-3
    # after a summary reset at 4) when the checkpoint is taken.
    _, straight_logs = _train(default_strategy, tmp_path / "straight", 7, checkpoint_every=3)
    with pytest.raises(_KilledError):
        _train(
            default_strategy,
            tmp_path / "resumed",
            7,
            checkpoint_every=3,
            after_step=_kill_after(kill_step),
        )
    _, resumed_logs = _train(default_strategy, tmp_path / "resumed", 7, checkpoint_every=3)
    straight = tf_runtime.load_history(tmp_path / "straight")["train"]
    resumed = tf_runtime.load_history(tmp_path / "resumed")["train"]
    assert [s for s, _ in resumed] == [s for s, _ in straight] == [2, 3, 4, 6, 7]
    for (_, a), (_, b) in zip(straight, resumed):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)
    np.testing.assert_allclose(straight_logs["loss"], resumed_logs["loss"], rtol=1e-6)


def test_train_logs_of_an_extended_run_equal_the_uninterrupted_run(tmp_path, default_strategy):
    # A finished 3-step run extended to 7 steps continues the tracker means of step 3.
    _train(default_strategy, tmp_path / "straight", 7, checkpoint_every=3)
    _train(default_strategy, tmp_path / "extended", 3, checkpoint_every=3)
    _train(default_strategy, tmp_path / "extended", 7, checkpoint_every=3)
    straight = tf_runtime.load_history(tmp_path / "straight")["train"]
    extended = tf_runtime.load_history(tmp_path / "extended")["train"]
    for (_, a), (_, b) in zip(straight, extended):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)


def test_checkpoints_without_metric_state_still_resume(tmp_path, default_strategy):
    model = _build(default_strategy)
    helper = tf_runtime.CheckpointHelper(str(tmp_path), model=model, optimizer=model.optimizer)
    helper.save(2)  # as written before the trackers were checkpointed
    _, logs = _train(default_strategy, tmp_path, 4)
    assert logs["step"] == 4


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


class FlaggingClassifier(TinyClassifier):
    """Logs `give_up` = 1.0 from its `stop_at`-th step on (as MADAN's `no_suitable_discriminator`)."""

    def __init__(self, stop_at, **kwargs):
        super().__init__(**kwargs)
        self.stop_at = stop_at

    def train_step(self, batch):
        logs = super().train_step(batch)
        # optimizer.iterations already counts this step.
        logs["give_up"] = tf.cast(self.optimizer.iterations >= self.stop_at, tf.float32)
        return logs


def _train_flagging(strategy, workdir, num_steps=6, stop_at=3, **kwargs):
    with strategy.scope():
        model = FlaggingClassifier(stop_at)
        model(tf.zeros((1, 8, 8, 1)))
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        model.optimizer.build(model.trainable_variables)
    logs = tf_runtime.run_training(
        model,
        _dataset_fn,
        strategy=strategy,
        workdir=str(workdir),
        num_steps=num_steps,
        checkpoint_every=2,
        summary_every=2,
        log_every=0,
        stop_when=lambda logs: logs["give_up"] >= 1.0,
        **kwargs,
    )
    return model, logs


def _checkpoint_names(workdir):
    return sorted(os.path.basename(p) for p in glob.glob(f"{workdir}/checkpoints/ckpt-*.index"))


def test_stop_when_stops_at_the_step_checkpoints_it_and_rerun_trains_no_further(
    tmp_path, default_strategy, mirrored_strategy
):
    evals = []
    model, logs = _train_flagging(
        default_strategy, tmp_path / "one", eval_fn=lambda step: evals.append(step) or {"s": step}
    )
    assert logs["step"] == 3 and logs["stopped_early_at"] == 3
    assert logs["eval_s"] == 3 and evals == [3]  # the stop step is evaluated like a last step
    assert int(model.optimizer.iterations.numpy()) == 3
    assert _checkpoint_names(tmp_path / "one") == ["ckpt-2.index", "ckpt-3.index"]
    history = tf_runtime.load_history(tmp_path / "one")
    assert history["stopped_early_at"] == 3
    assert [step for step, _ in history["train"]] == [2, 3]
    assert history["train"][-1][1]["give_up"] == 1.0
    weights = model.get_weights()

    # Re-run (even asking for more steps): restores step 3 and trains no further.
    again, again_logs = _train_flagging(default_strategy, tmp_path / "one", num_steps=8)
    assert again_logs["step"] == 3 and again_logs["stopped_early_at"] == 3
    assert again_logs["loss"] == logs["loss"]
    assert int(again.optimizer.iterations.numpy()) == 3
    for a, b in zip(weights, again.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert _checkpoint_names(tmp_path / "one") == ["ckpt-2.index", "ckpt-3.index"]
    assert tf_runtime.load_history(tmp_path / "one") == history

    # Two replicas stop at the same step with the same weights.
    two, two_logs = _train_flagging(mirrored_strategy, tmp_path / "two")
    assert two_logs["stopped_early_at"] == 3
    assert _checkpoint_names(tmp_path / "two") == ["ckpt-2.index", "ckpt-3.index"]
    for a, b in zip(weights, two.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_stop_resumes_exactly_after_a_kill_before_the_stop(tmp_path, default_strategy):
    straight, _ = _train_flagging(default_strategy, tmp_path / "straight", stop_at=4)
    _train(default_strategy, tmp_path / "resumed", 2)  # a run killed after its step-2 checkpoint
    resumed, logs = _train_flagging(default_strategy, tmp_path / "resumed", stop_at=4)
    assert logs["stopped_early_at"] == 4
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_stop_recorded_only_up_to_the_restored_checkpoint(tmp_path):
    # A kill between history.json and the stop step's checkpoint resumes from the previous one.
    tf_runtime.atomic_write_json(
        tmp_path / "history.json",
        {"train": [[2, {"l": 1.0}], [3, {"l": 0.5}]], "eval": [], "stopped_early_at": 3},
    )
    assert "stopped_early_at" not in tf_runtime.load_history(tmp_path, up_to_step=2)
    assert tf_runtime.load_history(tmp_path, up_to_step=3)["stopped_early_at"] == 3


def test_model_stop_training_set_by_eval_fn_stops(tmp_path, default_strategy):
    model = _build(default_strategy)

    def eval_fn(step):
        model.stop_training = step >= 2
        return {"s": step}

    logs = tf_runtime.run_training(
        model,
        _dataset_fn,
        strategy=default_strategy,
        workdir=str(tmp_path),
        num_steps=5,
        checkpoint_every=5,
        log_every=0,
        eval_fn=eval_fn,
        eval_every=1,
    )
    assert logs["stopped_early_at"] == 2 and logs["eval_s"] == 2
    assert _checkpoint_names(tmp_path) == ["ckpt-2.index"]
    assert [s for s, _ in tf_runtime.load_history(tmp_path)["train"]] == [2]


def test_no_stop_key_without_a_stop(tmp_path, default_strategy):
    _, logs = _train_flagging(default_strategy, tmp_path, num_steps=2, stop_at=5)
    assert "stopped_early_at" not in logs and logs["step"] == 2
    assert "stopped_early_at" not in tf_runtime.load_history(tmp_path)


def test_after_step_sees_every_step_once_and_again_after_a_resume(tmp_path, default_strategy):
    calls = []
    _train(default_strategy, tmp_path, 3, after_step=lambda step, logs: calls.append((step, logs)))
    assert [s for s, _ in calls] == [1, 2, 3]
    assert calls[-1][1]["loss"] == tf_runtime.load_history(tmp_path)["train"][-1][1]["loss"]
    # Resumed from the step-3 checkpoint: steps 4, 5 are seen; re-running the finished run none.
    calls.clear()
    _train(default_strategy, tmp_path, 5, after_step=lambda step, logs: calls.append(step))
    assert calls == [4, 5]
    calls.clear()
    _train(default_strategy, tmp_path, 5, after_step=lambda step, logs: calls.append(step))
    assert calls == []
