"""Training an ANODE / ANODEV2 classifier with the shared distributed loop, evaluation, export."""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

import tf_runtime
from input_pipelines import classification
from tf_ode import integrate, models


def validate_config(config):
    """Raises ValueError naming the first invalid config field."""
    checks = [
        ("dataset", config.dataset in classification.NAMES, classification.NAMES),
        ("architecture", config.architecture in models.ARCHITECTURES, models.ARCHITECTURES),
        ("variant", config.variant in models.VARIANTS, models.VARIANTS),
        ("method", config.method in integrate.METHODS, integrate.METHODS),
        ("gradient", config.gradient in integrate.GRADIENTS, integrate.GRADIENTS),
        ("batch_size", config.batch_size >= 1, ">= 1"),
        ("eval_batch_size", config.eval_batch_size >= 1, ">= 1"),
        ("num_steps", config.method == "dopri5" or config.num_steps >= 1, ">= 1"),
        ("width", config.width >= 1, ">= 1"),
        ("num_epochs", config.num_epochs >= 1 or config.num_train_steps >= 1, ">= 1"),
        ("learning_rate", config.learning_rate > 0, "> 0"),
        ("weight_decay", config.weight_decay >= 0, ">= 0"),
    ]
    for field, ok, expected in checks:
        if not ok:
            raise ValueError(f"Invalid config.{field}={config[field]!r}; expected {expected}.")
    if config.method == "dopri5" and config.gradient != "adjoint":
        raise ValueError(
            "config.method='dopri5' (TFP) supports only config.gradient='adjoint'. "
            f"Received: {config.gradient!r}"
        )


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
        num_steps=None if config.method == "dopri5" else config.num_steps,
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
        limit=config.eval_limit or None,
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


def train_and_evaluate(config, workdir, strategy):
    """Trains `config`'s model under `strategy`, evaluates, exports; writes results.json.

    Returns:
      Dict: final train logs (loss, accuracy, nfe per step), eval accuracy/loss, `train_seconds`,
      `seconds_per_epoch` (wall time incl. tracing / number of epochs), `num_params`,
      `steps`, and `saved_model` when exported.
    """
    validate_config(config)
    os.makedirs(workdir, exist_ok=True)
    info = classification.dataset_info(config.dataset)
    _, train_labels = classification.load_arrays(
        config.dataset, "train", _data_dir(config), limit=config.train_limit or None
    )
    steps_per_epoch = max(1, len(train_labels) // config.batch_size)
    num_train_steps = config.num_train_steps or config.num_epochs * steps_per_epoch
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
            limit=config.train_limit or None,
        )

    eval_every = config.eval_every_epochs * steps_per_epoch
    # (step, time the evaluation started, its duration, accuracy): epoch times between evaluations exclude
    # evaluation and the first epoch's tracing.
    marks = []

    def eval_fn(step):
        began = time.time()
        logs = evaluate(model, config)
        marks.append((step, began, time.time() - began, logs["accuracy"]))
        return logs

    start = time.time()
    logs = tf_runtime.run_training(
        model,
        dataset_fn,
        strategy=strategy,
        workdir=workdir,
        num_steps=num_train_steps,
        checkpoint_every=config.checkpoint_every,
        summary_every=config.summary_every,
        log_every=config.log_every,
        eval_fn=eval_fn,
        eval_every=eval_every,
        hparams=tf_runtime.config_to_dict(config),
        seed=config.seed,
        profile_steps=tuple(config.get("profile_steps", ())) or None,
    )
    train_seconds = time.time() - start
    results = dict(logs)
    results.update(
        train_seconds=train_seconds,
        seconds_per_epoch=steady_seconds_per_epoch(marks, steps_per_epoch)
        or train_seconds * steps_per_epoch / num_train_steps,
        eval_accuracy_history=[(step, accuracy) for step, _, _, accuracy in marks],
        # The official code never updates best_acc (spec section 3): track best and last properly.
        best_eval_accuracy=max((accuracy for *_, accuracy in marks), default=None),
        steps_per_epoch=steps_per_epoch,
        num_params=int(sum(int(np.prod(v.shape)) for v in model.trainable_variables)),
        variant=config.variant,
    )
    if config.export:
        results["saved_model"] = export(model, info, os.path.join(workdir, "saved_model"))
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
    return results


def steady_seconds_per_epoch(marks, steps_per_epoch):
    """Mean training seconds per epoch between consecutive evaluations (None if < 2 marks)."""
    rates = [
        (began - (prev_began + prev_eval)) / (step - prev_step)
        for (prev_step, prev_began, prev_eval, *_), (step, began, *_) in zip(marks, marks[1:])
        if step > prev_step
    ]
    return sum(rates) / len(rates) * steps_per_epoch if rates else None


def export(model, info, path):
    """Exports `serve(images) -> logits`; reloads once and checks batch sizes 1 and 3.

    Raises:
      ValueError: if the reloaded outputs differ from the model's by more than 1e-4.
    """
    spec = tf.TensorSpec([None, *info.image_shape], tf.float32, name="images")
    tf_runtime.export_saved_model(model, path, [spec])
    reloaded = tf.saved_model.load(path)
    for batch in (1, 3):
        x = tf.random.stateless_normal([batch, *info.image_shape], seed=[batch, 0])
        diff = float(np.max(np.abs(reloaded.serve(x).numpy() - model(x, training=False).numpy())))
        if diff > 1e-4:
            raise ValueError(
                f"Export {path}: reloaded logits differ by {diff} > 1e-4 at batch size {batch}"
            )
    return path
