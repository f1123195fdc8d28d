"""Training an ANODE / ANODEV2 classifier with the shared distributed loop, evaluation, export."""

import os
import time

import keras
import numpy as np
import tensorflow as tf

import tf_runtime
from input_pipelines import classification
from tf_ode import integrate, models


def solver_num_steps(config):
    """`config.num_steps` for fixed-step methods, None for adaptive ones (which take none)."""
    return None if integrate.is_adaptive(config.method) else config.num_steps


def normalization(config):
    """`{"mean": ..., "std": ...}` overrides of the pipeline's "standard" statistics (or None).

    `config.normalize_mean`/`config.normalize_std` (per channel, images in [0, 1]); empty = the
    dataset's own statistics. The `:cifar10` comparison preset sets ANODE's CIFAR-10 constants.
    """
    mean, std = tuple(config.normalize_mean), tuple(config.normalize_std)
    return {"mean": mean or None, "std": std or None}


# Types and ranges of the numeric and boolean fields (tf_ode/configs/default.py), checked in
# one pass before the choices and the solver options below.
CONFIG_RULES = {
    "seed": tf_runtime.integer(at_least=0),
    "train_limit": tf_runtime.integer(at_least=0),
    "eval_limit": tf_runtime.integer(at_least=0),
    "eval_split": tf_runtime.one_of(classification.SPLITS),
    "width": tf_runtime.integer(at_least=1),
    "batch_size": tf_runtime.integer(at_least=1),
    "eval_batch_size": tf_runtime.integer(at_least=1),
    "num_epochs": tf_runtime.number(at_least=0),
    "num_train_steps": tf_runtime.integer(at_least=0),
    "learning_rate": tf_runtime.number(above=0),
    "lr_boundaries_epochs": tf_runtime.sequence_of(tf_runtime.number(at_least=0)),
    "lr_decay": tf_runtime.number(above=0, at_most=1),
    "momentum": tf_runtime.number(at_least=0, below=1),
    "weight_decay": tf_runtime.number(at_least=0),
    "rtol": tf_runtime.number(above=0),
    "atol": tf_runtime.number(above=0),
    "max_num_steps": tf_runtime.integer(at_least=1),
    "eval_every_epochs": tf_runtime.integer(at_least=0),
    "jit_compile": tf_runtime.boolean(),
    "export": tf_runtime.boolean(),
}


def validate_config(config):
    """Raises ValueError naming the invalid config fields, before anything is written."""
    tf_runtime.check_fields(config, CONFIG_RULES)
    tf_runtime.check_run_settings(config)
    checks = [
        ("dataset", config.dataset in classification.NAMES, classification.NAMES),
        ("architecture", config.architecture in models.ARCHITECTURES, models.ARCHITECTURES),
        ("variant", config.variant in models.VARIANTS, models.VARIANTS),
        ("method", config.method in integrate.METHODS, integrate.METHODS),
        ("gradient", config.gradient in integrate.GRADIENTS, integrate.GRADIENTS),
        ("batch_size", config.batch_size >= 1, ">= 1"),
        ("eval_batch_size", config.eval_batch_size >= 1, ">= 1"),
        ("num_steps", integrate.is_adaptive(config.method) or config.num_steps >= 1, ">= 1"),
        ("width", config.width >= 1, ">= 1"),
        ("num_epochs", config.num_epochs >= 1 or config.num_train_steps >= 1, ">= 1"),
        ("learning_rate", config.learning_rate > 0, "> 0"),
        ("weight_decay", config.weight_decay >= 0, ">= 0"),
    ]
    for field, ok, expected in checks:
        if not ok:
            raise ValueError(f"Invalid config.{field}={config[field]!r}; expected {expected}.")
    try:
        integrate.validate_options(config.method, solver_num_steps(config), config.gradient)
    except ValueError as e:
        raise ValueError(
            f"Invalid config.method={config.method!r} / config.gradient={config.gradient!r}: {e}"
        ) from e
    try:
        classification.normalization_statistics(
            classification.dataset_info(config.dataset), "standard", **normalization(config)
        )
    except ValueError as e:
        raise ValueError(f"Invalid config.normalize_mean / config.normalize_std: {e}") from e


DATA_DIR_FLAG = "--config.data_dir"


def _data_dir(config):
    return config.data_dir or None


def build_model(config, num_classes, input_shape):
    """The `ODEClassifier` described by `config` (not yet built)."""
    return models.build_model(
        architecture=config.architecture,
        variant=config.variant,
        num_classes=num_classes,
        input_shape=input_shape,
        width=config.width,
        method=config.method,
        num_steps=solver_num_steps(config),
        gradient=config.gradient,
        weight_dynamics=config.weight_dynamics,
        dynamics_config=dict(config.dynamics_config),
        norm=config.norm,
        activation=config.activation,
        rtol=config.rtol,
        atol=config.atol,
        max_num_steps=config.max_num_steps,
        weight_decay=config.weight_decay,
    )


def build_optimizer(config, steps_per_epoch):
    """SGD with momentum and ANODE's piecewise-constant schedule (boundaries in epochs)."""
    boundaries = [int(epoch * steps_per_epoch) for epoch in config.lr_boundaries_epochs]
    if boundaries:
        values = [config.learning_rate * config.lr_decay**i for i in range(len(boundaries) + 1)]
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    else:
        schedule = config.learning_rate
    return keras.optimizers.SGD(learning_rate=schedule, momentum=config.momentum)


def evaluate(model, config, split=None):
    """Accuracy and mean cross-entropy of `model` on `split` (default `config.eval_split`)."""
    dataset = classification.build_dataset(
        config.dataset,
        split or config.eval_split,
        batch_size=config.eval_batch_size,
        data_dir=_data_dir(config),
        normalize="standard",
        **normalization(config),
        limit=config.eval_limit or None,
        data_dir_flag=DATA_DIR_FLAG,
    )

    info = classification.dataset_info(config.dataset)
    signature = [
        tf.TensorSpec([None, *info.image_shape], tf.float32),
        tf.TensorSpec([None], tf.int32),
    ]

    @tf.function(input_signature=signature)  # one trace for full and last partial batches
    def batch_stats(images, labels):
        logits = model(images, training=False)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        return tf.reduce_sum(loss), tf.reduce_sum(correct)

    total_loss = total_correct = count = 0.0
    for images, labels in dataset:
        loss, correct = batch_stats(images, labels)
        total_loss += float(loss)
        total_correct += float(correct)
        count += int(labels.shape[0])
    return {"accuracy": total_correct / count, "loss": total_loss / count}


def _latest_step(workdir):
    path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def train_and_evaluate(config, workdir, strategy, *, allow_config_change=False):
    """Trains `config`'s model under `strategy`, evaluates, exports; writes results.json.

    Writes config.json (after validation), checkpoints/, tensorboard/, history.json,
    saved_model/, results.json and DONE into `workdir`. A killed run resumes exactly and its
    results cover the whole run (the evaluation history is persisted); re-running a finished
    run changes nothing and returns the stored results.

    Args:
      config: the training config (`tf_ode/configs/default.py`).
      workdir: run folder.
      strategy: the `tf.distribute` strategy.
      allow_config_change: resume `workdir` although its config.json differs.

    Returns:
      Dict: final train logs (loss, accuracy, nfe per step), eval accuracy/loss, `train_seconds`
      and `seconds_per_epoch` (wall time of the last process's training, incl. tracing),
      `eval_accuracy_history` and `best_eval_accuracy` (whole run), `num_params`, `step`, and
      `saved_model` when exported.

    Raises:
      ValueError: naming the config field or data at fault, before anything is written.
      tf_runtime.ConfigMismatchError: when `workdir` holds a run of another config.
      tf_runtime.WorkdirLockedError: when another process trains in `workdir`.
    """
    validate_config(config)
    info = classification.dataset_info(config.dataset)
    if info.needs_data_dir and not config.data_dir:
        raise ValueError(
            f"config.dataset={config.dataset!r} is read from files: pass "
            f"--config.data_dir=DIR (the folder holding its original files)."
        )
    _, train_labels = classification.load_arrays(
        config.dataset,
        "train",
        _data_dir(config),
        limit=config.train_limit or None,
        data_dir_flag=DATA_DIR_FLAG,
    )
    if config.batch_size > len(train_labels):
        raise ValueError(
            f"config.batch_size={config.batch_size} exceeds the {len(train_labels)} training "
            f"examples of {config.dataset} (config.train_limit={config.train_limit}); a batch "
            "would repeat examples."
        )
    steps_per_epoch = max(1, len(train_labels) // config.batch_size)
    num_train_steps = config.num_train_steps or config.num_epochs * steps_per_epoch
    with tf_runtime.open_run(
        workdir, config, strategy=strategy, allow_config_change=allow_config_change
    ) as run:
        if run.done:
            return run.results
        # Seeded initial weights: the same start on any strategy and in every process.
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            model = build_model(config, info.num_classes, info.image_shape)
            model(np.zeros((1, *info.image_shape), np.float32))
            optimizer = build_optimizer(config, steps_per_epoch)
            model.compile(optimizer=optimizer)
            optimizer.build(model.trainable_variables)

        def dataset_fn(input_context):
            return classification.build_dataset(
                config.dataset,
                "train",
                batch_size=config.batch_size,
                data_dir=_data_dir(config),
                input_context=input_context,
                seed=config.seed,
                repeat=True,
                drop_remainder=True,
                normalize="standard",
                **normalization(config),
                limit=config.train_limit or None,
                data_dir_flag=DATA_DIR_FLAG,
            )

        eval_every = config.eval_every_epochs * steps_per_epoch
        # (step, time the evaluation started, its duration): epoch times between evaluations
        # exclude evaluation and the first epoch's tracing.
        marks = []

        def eval_fn(step):
            began = time.time()
            logs = evaluate(model, config)
            marks.append((step, began, time.time() - began))
            return logs

        start_step = _latest_step(workdir)
        start = time.time()
        logs = tf_runtime.run_training(
            model,
            dataset_fn,
            strategy=strategy,
            workdir=workdir,
            num_steps=num_train_steps,
            checkpoint_every=tf_runtime.run_setting(config, "checkpoint_every"),
            summary_every=tf_runtime.run_setting(config, "summary_every"),
            log_every=tf_runtime.run_setting(config, "log_every"),
            eval_fn=eval_fn,
            eval_every=eval_every,
            hparams=tf_runtime.config_to_dict(config),
            seed=config.seed,
            profile_steps=tuple(tf_runtime.run_setting(config, "profile_steps")) or None,
        )
        train_seconds = time.time() - start
        # The evaluations of the whole run, also those before a resume.
        history = [(step, e["accuracy"]) for step, e in tf_runtime.load_history(workdir)["eval"]]
        results = dict(logs)
        results.update(
            train_seconds=train_seconds,
            seconds_per_epoch=steady_seconds_per_epoch(marks, steps_per_epoch)
            or train_seconds * steps_per_epoch / max(1, num_train_steps - start_step),
            eval_accuracy_history=history,
            # The official code never updates best_acc (spec section 3): track best and last.
            best_eval_accuracy=max((accuracy for _, accuracy in history), default=None),
            steps_per_epoch=steps_per_epoch,
            num_params=int(sum(int(np.prod(v.shape)) for v in model.trainable_variables)),
            variant=config.variant,
        )
        if config.export:
            results["saved_model"] = export(model, info, os.path.join(workdir, "saved_model"))
        return run.finish(results)


def steady_seconds_per_epoch(marks, steps_per_epoch):
    """Mean training seconds per epoch between consecutive evaluations (None if < 2 marks)."""
    rates = [
        (began - (prev_began + prev_eval)) / (step - prev_step)
        for (prev_step, prev_began, prev_eval, *_), (step, began, *_) in zip(marks, marks[1:])
        if step > prev_step
    ]
    return sum(rates) / len(rates) * steps_per_epoch if rates else None


def export(model, info, path):
    """Exports `serve(images) -> logits`, checked after reload at batch sizes 1 and 3.

    Raises:
      ValueError: if the reloaded outputs differ from the model's by more than 1e-4 (the
        previous export at `path`, if any, is kept).
    """
    spec = tf.TensorSpec([None, *info.image_shape], tf.float32, name="images")
    return tf_runtime.export_and_check(model, path, [spec], batch_sizes=(1, 3), atol=1e-4)
