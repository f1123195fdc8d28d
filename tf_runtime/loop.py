"""The distributed custom training loop every trainer of the project runs.

Keras 3 `fit` does not work under `MultiWorkerMirroredStrategy` (keras-team/keras#20585), so the
three papers' trainers call their Keras models' own `train_step` through `strategy.run` here. The
loop owns what all trainers share: resume (model, every optimizer, step, RNG, dataset position),
periodic checkpoints, TensorBoard scalars, progress lines, NaN/Inf stops and profiler traces.

Exact resume relies on a deterministic input pipeline (seeded shuffles): on restart the dataset is
rebuilt and the batches consumed before the checkpoint are skipped.
"""

import math
import os

import keras
import numpy as np
import tensorflow as tf

from tf_runtime import files
from tf_runtime import strategy as strategy_lib
from tf_runtime.checkpointing import CheckpointHelper
from tf_runtime.summaries import ProgressLogger, SummaryWriters, flatten_dict


def collect_optimizers(model):
    """`{name: optimizer}` for `model.optimizer` and every optimizer held as a model attribute."""
    found = {}
    for name, value in sorted(vars(model).items()):
        if isinstance(value, keras.optimizers.Optimizer) and all(
            value is not o for o in found.values()
        ):
            found[f"optimizer_{name.lstrip('_')}"] = value
    optimizer = getattr(model, "optimizer", None)
    if isinstance(optimizer, keras.optimizers.Optimizer) and all(
        optimizer is not o for o in found.values()
    ):
        found["optimizer"] = optimizer
    return found


def _skipping_dataset_fn(dataset_fn, start_step):
    def fn(input_context):
        dataset = dataset_fn(input_context)
        # Each local replica draws one element of its worker's dataset per step.
        per_worker = input_context.num_replicas_in_sync // input_context.num_input_pipelines
        return dataset.skip(start_step * per_worker) if start_step else dataset

    return fn


def _metric_variables(model):
    """The variables of `model.metrics` (Keras' trackers are not in the model's checkpoint)."""
    found = []
    for metric in getattr(model, "metrics", None) or ():
        for variable in metric.variables:
            if all(variable is not v for v in found):
                found.append(variable)
    return found


HISTORY_NAME = "history.json"
STOPPED_KEY = "stopped_early_at"


def load_history(workdir, up_to_step=None):
    """The run's logged history `{"train": [[step, logs], ...], "eval": [[step, logs], ...]}`.

    A run that stopped early (`run_training(stop_when=...)` or `model.stop_training`) also has
    `"stopped_early_at": step`.

    `run_training` writes it atomically just before each checkpoint, so after a resume it covers
    the whole run: entries later than the restored checkpoint (`up_to_step`) are dropped, because
    the resumed run logs them again.

    Raises:
      ValueError: naming the file if it is not valid JSON or not a history's structure.
    """
    path = os.path.join(os.fspath(workdir), HISTORY_NAME)
    stored = files.read_json(path) if os.path.exists(path) else {}
    _check_history(stored, path)
    history = {split: [list(e) for e in stored.get(split, [])] for split in ("train", "eval")}
    if up_to_step is not None:
        history = {k: [e for e in v if e[0] <= up_to_step] for k, v in history.items()}
    stopped = stored.get(STOPPED_KEY)
    if stopped is not None and (up_to_step is None or int(stopped) <= up_to_step):
        history[STOPPED_KEY] = int(stopped)
    return history


def _check_history(stored, path):
    """Raises ValueError naming `path` when it is not the structure `run_training` writes."""

    def bad(detail):
        return ValueError(
            f'{path} is not a training history ({detail}); expected {{"train": [[step, '
            '{name: value}], ...], "eval": [...]}. Restore it, or delete it (the logs of '
            "the steps before the last checkpoint are then lost; training resumes exactly)."
        )

    if not isinstance(stored, dict):
        raise bad(f"a JSON {type(stored).__name__} at the top")
    for split in ("train", "eval"):
        entries = stored.get(split, [])
        if not isinstance(entries, list):
            raise bad(f"{split!r} is a {type(entries).__name__}")
        for entry in entries:
            if (
                not isinstance(entry, list)
                or len(entry) != 2
                or not isinstance(entry[0], int)
                or not isinstance(entry[1], dict)
            ):
                raise bad(f"{split!r} holds the entry {str(entry)[:60]}")
    stopped = stored.get(STOPPED_KEY)
    if stopped is not None and not isinstance(stopped, int):
        raise bad(f"{STOPPED_KEY!r} is {stopped!r}")


def _check_finite(logs, step, checkpoint_path):
    for name, value in logs.items():
        if not math.isfinite(value):
            raise FloatingPointError(
                f"Non-finite {name}={value} at step {step}; stopped without saving. "
                f"Last good checkpoint: {checkpoint_path}"
            )


def run_training(
    model,
    dataset_fn,
    *,
    strategy,
    workdir,
    num_steps,
    checkpoint_every=100,
    summary_every=10,
    log_every=10,
    extra_trackables=None,
    eval_fn=None,
    eval_every=0,
    hparams=None,
    profile_steps=None,
    seed=0,
    stop_when=None,
    after_step=None,
):
    """Trains `model` with its own `train_step` under `strategy` until `num_steps`.

    Args:
      model: `keras.Model` built in `strategy.scope()` whose `train_step(batch)` returns a dict
        of scalar tensors (its trackers' results); its optimizers must already be built in the scope.
      dataset_fn: `callable(tf.distribute.InputContext) -> tf.data.Dataset` of per-replica
        batches, repeating, deterministic for exact resume.
      strategy: a `tf.distribute.Strategy`.
      workdir: run folder for checkpoints and TensorBoard events.
      num_steps: last training step (global steps, counted from 0 on a fresh run).
      checkpoint_every: checkpoint interval in steps (a final checkpoint is always written).
      summary_every: interval of TensorBoard scalars (metrics are reset after each write on this
        grid; their running state is checkpointed, so a resume continues the same averages).
      log_every: interval of progress lines (0 for none).
      extra_trackables: dict of more objects to checkpoint (e.g. an image pool, EMA weights).
      eval_fn: optional `callable(step) -> dict of floats`, written under the `eval` split.
      eval_every: evaluation interval (0: only at the end when `eval_fn` is given).
      hparams: optional (nested) dict recorded in TensorBoard's HParams tab.
      profile_steps: optional `(first, last)` step range traced by the TensorFlow profiler.
      seed: seed of the checkpointed `tf.random.Generator` (available as `model.rng` if unset).
      stop_when: optional `callable(logs) -> bool` called after every step with that step's
        training logs (floats, reduced over replicas, so every worker decides alike). When it
        returns True, or when `model.stop_training` has been set True (the Keras convention, e.g.
        from `eval_fn`), that step becomes the run's last: it is evaluated, logged and
        checkpointed, and the history records `stopped_early_at`. A re-run of a stopped run
        restores that checkpoint and trains no further (even with a larger `num_steps`).
      after_step: optional `callable(step, logs)` called on every worker after each step (after
        its evaluation, before its checkpoint) for periodic side work such as spectrum tracking;
        its result is ignored. A resumed run calls it again for the steps after the restored
        checkpoint, so it should key what it writes by step (replace, not append).

    Returns:
      Dict with the last training logs (floats), the eval logs prefixed `eval_`, and `step`;
      after an early stop also `stopped_early_at` (equal to `step`).
      The logs of the whole run (also across resumes) are in `load_history(workdir)`.

    Raises:
      ValueError: for a non-positive `num_steps` or interval.
      FloatingPointError: when a log value becomes NaN or Inf (names the step and the value).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1. Received: num_steps={num_steps}")
    if checkpoint_every < 1 or summary_every < 1:
        raise ValueError(
            f"checkpoint_every and summary_every must be >= 1. Received: "
            f"checkpoint_every={checkpoint_every}, summary_every={summary_every}"
        )
    if profile_steps is not None and (
        len(profile_steps) != 2 or not 1 <= profile_steps[0] <= profile_steps[1]
    ):
        raise ValueError(
            f"profile_steps must be (first, last) with 1 <= first <= last. "
            f"Received: profile_steps={profile_steps}"
        )
    chief = strategy_lib.is_chief(strategy)
    trackables = dict(model=model, **collect_optimizers(model), **(extra_trackables or {}))
    # The trackers' running sums (e.g. a Mean's total and count) are state too: a resume from a
    # checkpoint taken between two summaries continues the same averages as the uninterrupted run.
    metric_variables = _metric_variables(model)
    metric_state = {"metric_state": metric_variables} if metric_variables else {}
    ckpt = CheckpointHelper(
        workdir, strategy=strategy, seed=seed, optional_trackables=metric_state, **trackables
    )
    if getattr(model, "rng", None) is None:
        model.rng = ckpt.rng
    writers = SummaryWriters(workdir, enabled=chief)
    progress = ProgressLogger(num_steps, every=log_every, enabled=chief)
    start_step = ckpt.restore_latest()
    history = load_history(workdir, up_to_step=start_step)
    if hparams:
        writers.hparams(flatten_dict(hparams))
    stopped_at = history.get(STOPPED_KEY)
    if start_step >= num_steps or stopped_at is not None:
        # Killed after the final checkpoint, or a run that stopped early: nothing more to train;
        # the logs of that step are in the history.
        logs = dict(history["train"][-1][1]) if history["train"] else {}
        if history["eval"] and history["eval"][-1][0] == start_step:
            eval_logs = dict(history["eval"][-1][1])
        elif eval_fn is not None:
            eval_logs = {k: float(v) for k, v in eval_fn(start_step).items()}
        else:
            eval_logs = {}
        result = {**logs, **{f"eval_{k}": v for k, v in eval_logs.items()}, "step": start_step}
        if stopped_at is not None:
            result[STOPPED_KEY] = stopped_at
        return result

    dataset = strategy.distribute_datasets_from_function(
        _skipping_dataset_fn(dataset_fn, start_step)
    )
    iterator = iter(dataset)

    @tf.function
    def distributed_step(iterator):
        per_replica = strategy.run(model.train_step, args=(next(iterator),))
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in per_replica.items()}

    logs, eval_logs = {}, {}
    profiling = False
    model.stop_training = False
    last_step = num_steps
    for step in range(start_step + 1, num_steps + 1):
        if profile_steps and step == profile_steps[0] and chief:
            tf.profiler.experimental.start(f"{workdir}/tensorboard/profile")
            profiling = True
        logs = {k: float(np.asarray(v)) for k, v in distributed_step(iterator).items()}
        _check_finite(logs, step, ckpt.latest_path)
        if profiling and step >= profile_steps[1]:
            tf.profiler.experimental.stop()
            profiling = False
        stopping = step < num_steps and (
            (stop_when is not None and bool(stop_when(dict(logs)))) or bool(model.stop_training)
        )
        if eval_fn is not None and (
            (eval_every and step % eval_every == 0) or step == num_steps or stopping
        ):
            eval_logs = {k: float(v) for k, v in eval_fn(step).items()}
            writers.scalars("eval", step, eval_logs)
            history["eval"].append([step, eval_logs])
            # eval_fn may ask for the stop too (Keras' model.stop_training).
            stopping = stopping or (step < num_steps and bool(model.stop_training))
        final = step == num_steps or stopping
        saving = step % checkpoint_every == 0 or final
        if step % summary_every == 0 or saving:
            history["train"].append([step, logs])
        if step % summary_every == 0 or final:
            writers.scalars("train", step, logs)
        if step % summary_every == 0:
            # Not at a final step off the summary grid: a later run with a larger num_steps
            # continues those averages like the uninterrupted run.
            model.reset_metrics()
        progress.update(step, logs)
        if after_step is not None:
            after_step(step, dict(logs))
        if stopping:
            history[STOPPED_KEY] = step
        if saving:
            # History first: a kill between the two resumes from the previous checkpoint and
            # drops the newer history entries (see load_history).
            if chief:
                files.atomic_write_json(os.path.join(workdir, HISTORY_NAME), history)
            ckpt.save(step)
        if stopping:
            last_step = step
            if chief:
                print(f"Stopped early at step {step} of {num_steps}.", flush=True)
            break
    if profiling:
        tf.profiler.experimental.stop()
    writers.flush()
    writers.close()
    result = {**logs, **{f"eval_{k}": v for k, v in eval_logs.items()}, "step": last_step}
    if STOPPED_KEY in history:
        result[STOPPED_KEY] = history[STOPPED_KEY]
    return result
