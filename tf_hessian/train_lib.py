"""Training a classifier at one batch size (optionally robust), with evaluation and export.

Entry point of ``python -m tf_hessian.train``: ``train_and_evaluate(config, workdir, strategy)``.
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np
import tensorflow as tf

import tf_runtime
from input_pipelines import classification
from tf_hessian import adversarial, models
from tf_hessian import data as data_lib
from tf_hessian.tracking import SpectrumTracker
from tf_hessian.trainer import ClassifierTrainer

METRICS_NAME = "metrics.json"
SPECTRUM_NAME = "spectrum.json"  # the tracked spectrum (config.track_spectrum_every > 0)
SPECTRUM_LOG_DIR = os.path.join("tensorboard", "spectrum")
SPECTRUM_DTYPES = ("float32", "float64")


def build_network(config, dtype: str | None = None) -> keras.Model:
    """The classifier named by ``config.model`` for ``config.data.name``'s image shape."""
    info = classification.dataset_info(config.data.name)
    kwargs = dict(config.model_kwargs.to_dict()) if hasattr(config.model_kwargs, "to_dict") else {}
    return models.build_model(
        config.model, info.image_shape, info.num_classes, dtype=dtype, **kwargs
    )


# Every field of a training config (tf_hessian/configs/default.py), checked in one pass by
# ``validate_config`` before anything is read or written.
CONFIG_RULES = {
    "seed": tf_runtime.integer(at_least=0),
    "model": tf_runtime.one_of(models.BUILDERS),
    "data.name": tf_runtime.one_of(classification.NAMES),
    "data.data_dir": tf_runtime.string(optional=True),
    "data.normalize": tf_runtime.one_of(classification.NORMALIZATIONS),
    "data.augment": tf_runtime.boolean(),
    "data.validation_fraction": tf_runtime.number(at_least=0, below=1),
    "data.train_limit": tf_runtime.integer(at_least=1, optional=True),
    "batch_size": tf_runtime.integer(at_least=1),
    "accumulate": tf_runtime.boolean(),
    "micro_batch_size": tf_runtime.integer(at_least=1),
    "epochs": tf_runtime.number(above=0),
    "num_steps": tf_runtime.integer(at_least=1, optional=True),
    "optimizer.learning_rate": tf_runtime.number(above=0),
    "optimizer.momentum": tf_runtime.number(at_least=0, below=1),
    "optimizer.weight_decay": tf_runtime.number(at_least=0),
    "optimizer.lr_decay": tf_runtime.number(above=0, at_most=1),
    "optimizer.lr_decay_epochs": tf_runtime.sequence_of(tf_runtime.number(at_least=0)),
    "optimizer.scale_lr_with_batch": tf_runtime.boolean(),
    "optimizer.lr_reference_batch": tf_runtime.integer(at_least=1),
    "robust.enabled": tf_runtime.boolean(),
    "robust.attack": tf_runtime.one_of(("fgsm", "pgd")),
    "robust.epsilon": tf_runtime.number(above=0),
    "robust.adv_ratio": tf_runtime.number(above=0, at_most=1),
    "robust.scale_ratio_with_batch": tf_runtime.boolean(),
    "robust.stop_fraction": tf_runtime.number(at_least=0, at_most=1),
    "robust.pgd_steps": tf_runtime.integer(at_least=1),
    "robust.pgd_step_size": tf_runtime.number(above=0),
    "robust.clip": tf_runtime.one_of(("range", "batch")),
    "eval.split": tf_runtime.one_of(classification.SPLITS),
    "eval.batch_size": tf_runtime.integer(at_least=1),
    "eval.limit": tf_runtime.integer(at_least=1, optional=True),
    "eval.fgsm_epsilon": tf_runtime.number(at_least=0),
    "export": tf_runtime.boolean(),
}


def validate_config(config, prefix: str = "config") -> None:
    """Types, ranges and choices of every field, then the data and spectrum-tracking checks.

    Raises:
      ValueError: naming every invalid field (``prefix.<field>``), before anything is written.
    """
    tf_runtime.check_fields(config, CONFIG_RULES, prefix=prefix)
    tf_runtime.check_run_settings(config, prefix=prefix)
    check_data(config)
    check_spectrum_tracking(config)


def check_data(config) -> None:
    """Raises ValueError naming the flag when ``config.data`` needs files but has no folder."""
    info = classification.dataset_info(config.data.name)
    if info.needs_data_dir and not config.data.data_dir:
        raise ValueError(
            f"config.data.name={config.data.name!r} is read from files: pass "
            "--config.data.data_dir=DIR (the folder holding its original files)."
        )


def resolve_schedule(config, num_train: int, num_replicas: int) -> dict:
    """Derived training quantities, validated against the config.

    Returns:
      Dict with ``num_steps``, ``steps_per_epoch``, ``micro_batch_size`` (global),
      ``num_micro_batches``, ``num_adversarial_global`` (per GLOBAL micro-batch,
      whatever the replica count),
      ``adversarial_steps``, ``learning_rate``, ``boundaries``.

    Raises:
      ValueError: naming the config field at fault.
    """
    batch = config.batch_size
    if batch < 1:
        raise ValueError(f"config.batch_size must be >= 1. Received: {batch}.")
    if batch > num_train:
        raise ValueError(
            f"config.batch_size={batch} exceeds the {num_train} training examples of {config.data.name}."
        )
    micro = min(config.micro_batch_size, batch) if config.accumulate else batch
    if micro < 1 or batch % micro:
        raise ValueError(
            f"config.batch_size={batch} must be a multiple of "
            f"config.micro_batch_size={config.micro_batch_size}."
        )
    if micro % num_replicas:
        raise ValueError(
            f"The micro-batch ({micro}) must divide evenly over {num_replicas} replicas."
        )
    steps_per_epoch = num_train / batch
    num_steps = config.num_steps or max(1, int(round(config.epochs * steps_per_epoch)))
    opt = config.optimizer
    learning_rate = opt.learning_rate * (
        batch / opt.lr_reference_batch if opt.scale_lr_with_batch else 1.0
    )
    boundaries = sorted({max(1, int(round(e * steps_per_epoch))) for e in opt.lr_decay_epochs})
    robust = config.robust
    num_adversarial_global, adversarial_steps = 0, 0
    if robust.enabled:
        if not 0.0 < robust.adv_ratio <= 1.0:
            raise ValueError(
                f"config.robust.adv_ratio must be in (0, 1]. Received: {robust.adv_ratio}."
            )
        if robust.epsilon <= 0:
            raise ValueError(f"config.robust.epsilon must be > 0. Received: {robust.epsilon}.")
        ratio = robust.adv_ratio
        if robust.scale_ratio_with_batch and batch > 128:
            ratio /= batch / 128
        num_adversarial_global = max(1, int(round(ratio * micro)))
        adversarial_steps = int(math.ceil(robust.stop_fraction * num_steps))
    return dict(
        num_steps=num_steps,
        steps_per_epoch=steps_per_epoch,
        micro_batch_size=micro,
        num_micro_batches=batch // micro,
        num_adversarial_global=num_adversarial_global,
        adversarial_steps=adversarial_steps,
        learning_rate=learning_rate,
        boundaries=boundaries,
    )


def _attack_kwargs(config) -> dict:
    robust = config.robust
    kwargs = data_lib.attack_kwargs(config.data.name, config.data.normalize, robust.clip)
    kwargs["epsilon"] = data_lib.pixel_epsilon(
        robust.epsilon, config.data.name, config.data.normalize
    )
    if robust.attack == "pgd":
        kwargs["step_size"] = data_lib.pixel_epsilon(
            robust.pgd_step_size, config.data.name, config.data.normalize
        )
        kwargs["num_steps"] = robust.pgd_steps
    return kwargs


def build_trainer(config, strategy, schedule: dict) -> ClassifierTrainer:
    """Network, trainer and SGD optimizer, all created and built in ``strategy.scope()``."""
    info = classification.dataset_info(config.data.name)
    opt = config.optimizer
    keras.utils.set_random_seed(config.seed)  # same initial weights on any strategy
    with strategy.scope():
        network = build_network(config)
        trainer = ClassifierTrainer(
            network,
            num_micro_batches=schedule["num_micro_batches"],
            weight_decay=opt.weight_decay,
            num_adversarial=schedule["num_adversarial_global"],
            adversarial_steps=schedule["adversarial_steps"],
            attack=config.robust.attack,
            attack_kwargs=_attack_kwargs(config),
        )
        trainer(tf.zeros((1, *info.image_shape)))
        values = [
            schedule["learning_rate"] * opt.lr_decay**i
            for i in range(len(schedule["boundaries"]) + 1)
        ]
        learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            schedule["boundaries"], values
        )
        trainer.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=opt.momentum))
        trainer.optimizer.build(network.trainable_variables)
    return trainer


def check_spectrum_tracking(config) -> None:
    """Raises ValueError naming the field when the spectrum-tracking settings are invalid."""
    every = config.track_spectrum_every
    if not isinstance(every, int) or every < 0:
        raise ValueError(
            f"config.track_spectrum_every must be an int >= 0 (0 = off). Received: {every!r}."
        )
    if not every:
        return
    opts = config.track_spectrum
    if opts.dtype not in SPECTRUM_DTYPES:
        raise ValueError(
            f"config.track_spectrum.dtype must be one of {SPECTRUM_DTYPES}. Received: {opts.dtype!r}."
        )
    for field in ("examples", "max_iter", "trace_probes"):
        if opts[field] < 1:
            raise ValueError(
                f"config.track_spectrum.{field} must be >= 1. Received: {opts[field]}."
            )
    if not opts.tol > 0:
        raise ValueError(f"config.track_spectrum.tol must be > 0. Received: {opts.tol}.")
    available = data_lib.num_examples(config, opts.split)
    if opts.examples > available:
        raise ValueError(
            f"config.track_spectrum.examples={opts.examples} exceeds the {available} examples of "
            f"{config.data.name} {opts.split} (config.track_spectrum.split)."
        )


class TrainingSpectrum:
    """``run_training``'s ``after_step`` hook: the data-loss Hessian spectrum while training.

    Every ``config.track_spectrum_every`` steps and at the last step, the trained network's
    weights are copied into a copy built in ``config.track_spectrum.dtype`` (on the current
    strategy, so every worker computes the same numbers) and ``SpectrumTracker`` records
    lambda_max (Lanczos) and the Hutchinson trace over a fixed subset of
    ``config.track_spectrum.examples`` examples (``data.fixed_batch``, seed ``config.seed``).
    Only the chief writes ``spectrum.json`` (atomically) and ``tensorboard/spectrum`` events.
    Resume: records are keyed by step; the first step a (resumed) process runs drops the
    records of that step and later ones (they belong to a killed run past its last checkpoint)
    and the run tracks them again, so entries are neither duplicated nor lost.
    """

    def __init__(self, config, network: keras.Model, workdir: str, num_steps: int, chief: bool):
        opts = config.track_spectrum
        dtype = tf.as_dtype(opts.dtype)
        info = classification.dataset_info(config.data.name)
        self.every = config.track_spectrum_every
        self.num_steps = num_steps
        self.source = network
        self.copy = build_network(config, dtype=opts.dtype)
        self.copy(tf.zeros((1, *info.image_shape), dtype))
        data = data_lib.fixed_batch(
            config, opts.split, opts.examples, dtype=dtype, seed=config.seed
        )
        self.tracker = SpectrumTracker(
            data,
            every_steps=self.every,
            network=self.copy,
            loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype),
            log_dir=os.path.join(workdir, SPECTRUM_LOG_DIR) if chief else None,
            json_path=os.path.join(workdir, SPECTRUM_NAME) if chief else None,
            max_iter=opts.max_iter,
            tol=opts.tol,
            trace_probes=opts.trace_probes,
            seed=config.seed,
        )
        self._first_step = True

    def __call__(self, step: int, logs=None) -> None:
        if self._first_step:
            self._first_step = False
            self.tracker.records = [r for r in self.tracker.records if r["step"] < step]
        if step % self.every == 0 or step == self.num_steps:
            dtype = self.copy.trainable_variables[0].dtype
            self.copy.set_weights([np.asarray(w, dtype) for w in self.source.get_weights()])
            self.tracker.track(step)

    @property
    def records(self) -> list:
        return list(self.tracker.records)

    def close(self) -> None:
        self.tracker.on_train_end()


def evaluate(network: keras.Model, config) -> dict:
    """Clean and FGSM accuracy on ``config.eval.split`` (FGSM radius ``eval.fgsm_epsilon`` in pixel units)."""
    dataset = data_lib.build(
        config, config.eval.split, batch_size=config.eval.batch_size, limit=config.eval.limit
    )
    scale = data_lib.pixel_epsilon(1.0, config.data.name, config.data.normalize)
    accuracy = adversarial.robust_accuracy(
        network,
        dataset,
        [0.0, config.eval.fgsm_epsilon],
        epsilon_scale=scale,
        **data_lib.attack_kwargs(config.data.name, config.data.normalize),
    )
    return {"accuracy": accuracy[0.0], "fgsm_accuracy": accuracy[float(config.eval.fgsm_epsilon)]}


def train_and_evaluate(
    config, workdir: str, strategy: tf.distribute.Strategy, *, allow_config_change: bool = False
) -> dict:
    """Trains ``config.model`` at ``config.batch_size``; evaluates; exports a SavedModel.

    Writes into ``workdir``: config.json (after validation), checkpoints/, tensorboard/,
    history.json, saved_model/ (if ``config.export``), spectrum.json (if
    ``config.track_spectrum_every``; see ``TrainingSpectrum``), metrics.json and DONE. Re-running a
    finished run changes nothing and returns the stored metrics; a killed run resumes exactly.

    Args:
      config: the training config (``tf_hessian/configs/default.py``).
      workdir: run folder.
      strategy: the ``tf.distribute`` strategy.
      allow_config_change: resume ``workdir`` although its config.json differs.

    Returns:
      Dict with ``step``, ``train`` (last training logs), ``test_accuracy``,
      ``fgsm_accuracy`` (on ``config.eval.split``), ``schedule``, ``saved_model`` and, when
      the spectrum is tracked, ``spectrum`` (``{"path", "steps", "last"}``: the last record).

    Raises:
      ValueError: naming the config field at fault, before anything is written.
      tf_runtime.ConfigMismatchError: when ``workdir`` holds a run of another config.
      tf_runtime.WorkdirLockedError: when another process trains in ``workdir``.
    """
    validate_config(config)
    num_train = data_lib.num_examples(config, "train", limit=config.data.train_limit)
    schedule = resolve_schedule(config, num_train, strategy.num_replicas_in_sync)
    with tf_runtime.open_run(
        workdir,
        config,
        strategy=strategy,
        allow_config_change=allow_config_change,
        results_name=METRICS_NAME,
    ) as run:
        if run.done:
            return run.results
        trainer = build_trainer(config, strategy, schedule)

        def dataset_fn(input_context):
            return data_lib.build(
                config,
                "train",
                batch_size=config.batch_size,
                input_context=input_context,
                repeat=True,
                limit=config.data.train_limit,
                drop_remainder=True,
            )

        spectrum = None
        if config.track_spectrum_every:
            spectrum = TrainingSpectrum(
                config, trainer.network, workdir, schedule["num_steps"], run.chief
            )
        try:
            logs = tf_runtime.run_training(
                trainer,
                dataset_fn,
                strategy=strategy,
                workdir=workdir,
                num_steps=schedule["num_steps"],
                checkpoint_every=tf_runtime.run_setting(config, "checkpoint_every"),
                summary_every=tf_runtime.run_setting(config, "summary_every"),
                log_every=tf_runtime.run_setting(config, "log_every"),
                eval_fn=lambda step: evaluate(trainer.network, config),
                hparams=tf_runtime.config_to_dict(config),
                seed=config.seed,
                profile_steps=tuple(tf_runtime.run_setting(config, "profile_steps")) or None,
                after_step=spectrum,
            )
        finally:
            if spectrum is not None:
                spectrum.close()
        results = {
            "step": logs["step"],
            "train": {k: v for k, v in logs.items() if k != "step" and not k.startswith("eval_")},
            "test_accuracy": logs["eval_accuracy"],
            "fgsm_accuracy": logs["eval_fgsm_accuracy"],
            "schedule": schedule,
        }
        if spectrum is not None and spectrum.records:
            results["spectrum"] = {
                "path": SPECTRUM_NAME,
                "steps": [r["step"] for r in spectrum.records],
                "last": spectrum.records[-1],
            }
        if config.export:
            results["saved_model"] = export(
                trainer.network, config, os.path.join(workdir, "saved_model")
            )
        return run.finish(results)


def export(network: keras.Model, config, path: str) -> str:
    """SavedModel with a ``serve(image)`` -> logits endpoint, checked after reload at two batch sizes."""
    info = classification.dataset_info(config.data.name)
    spec = tf.TensorSpec([None, *info.image_shape], tf.float32, name="image")
    return tf_runtime.export_and_check(network, path, [spec], batch_sizes=(1, 3), atol=1e-4)


def restore_network(workdir: str, checkpoint: str | None = None, dtype: str | None = None):
    """The trained network of a ``train`` run, from its config.json and a checkpoint.

    Args:
      workdir: The training run folder.
      checkpoint: A checkpoint prefix; default the latest in ``workdir/checkpoints``.
      dtype: Build the network in this dtype (e.g. ``"float64"``) and cast the weights.

    Returns:
      ``(network, config, checkpoint_path)``.

    Raises:
      FileNotFoundError: if config.json or the checkpoint is missing.
      ValueError: naming the checkpoint when it is unreadable or holds another network.
    """
    config = tf_runtime.read_config(workdir)
    path = checkpoint or tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if path is None or not tf.io.gfile.glob(path + "*"):
        raise FileNotFoundError(
            f"No checkpoint found: checkpoint={checkpoint!r}, workdir={workdir!r}."
        )
    info = classification.dataset_info(config.data.name)
    network = build_network(config)
    trainer = ClassifierTrainer(network)
    trainer(tf.zeros((1, *info.image_shape)))
    try:
        status = tf.train.Checkpoint(model=trainer).restore(path)
    except (AssertionError, ValueError) as error:
        raise ValueError(
            f"Checkpoint {path} does not hold this run's {config.model!r} network: {error}"
        ) from error
    except Exception as error:  # corrupt or truncated files raise OpError, IndexError, ...
        files = sorted(os.path.basename(p) for p in tf.io.gfile.glob(path + ".*"))
        raise ValueError(
            f"Cannot read checkpoint {path} ({', '.join(files)}): {type(error).__name__}: {error}"
        ) from error
    try:
        # expect_partial: the optimizer and step are not needed; every network weight is.
        status.expect_partial().assert_existing_objects_matched()
    except AssertionError as error:
        raise ValueError(
            f"Checkpoint {path} does not hold this run's {config.model!r} network (is it a "
            f"checkpoint of another trainer?): {error}"
        ) from error
    if dtype is not None:
        cast = build_network(config, dtype=dtype)
        cast.set_weights([np.asarray(w, dtype) for w in network.get_weights()])
        network = cast
    return network, config, path
