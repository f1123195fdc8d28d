"""Subprocess trainer for the multi-worker and kill-and-resume tests (not collected by pytest).

Usage: python train_tiny_script.py WORKDIR NUM_STEPS STRATEGY [CHECKPOINT_EVERY]
Writes WORKDIR/final_weights.npz on the chief when training ends.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_runtime  # noqa: E402
from input_pipelines import classification  # noqa: E402


class TinyMLP(keras.Model):
    def __init__(self):
        super().__init__()
        self.flatten = keras.layers.Flatten()
        self.hidden = keras.layers.Dense(
            16, activation="tanh", kernel_initializer=keras.initializers.GlorotUniform(seed=1)
        )
        self.out = keras.layers.Dense(10, kernel_initializer="zeros")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, x, training=False):
        return self.out(self.hidden(self.flatten(x)))

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, batch):
        x, y = batch
        with tf.GradientTape() as tape:
            logits = self(x, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            )
            scaled_loss = tf_runtime.scale_loss(loss)  # gradients are all-reduced by SUM
        grads = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def main(workdir, num_steps, strategy_name, checkpoint_every=2):
    strategy = tf_runtime.build_strategy(strategy_name)
    with strategy.scope():
        model = TinyMLP()
        model(tf.zeros((1, 8, 8, 1)))
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        model.optimizer.build(model.trainable_variables)

    def dataset_fn(input_context):
        return classification.build_dataset(
            "digits", "train", batch_size=64, input_context=input_context, repeat=True, seed=5
        )

    logs = tf_runtime.run_training(
        model,
        dataset_fn,
        strategy=strategy,
        workdir=workdir,
        num_steps=num_steps,
        checkpoint_every=checkpoint_every,
        summary_every=5,
        log_every=1,
    )
    if tf_runtime.is_chief(strategy):
        np.savez(os.path.join(workdir, "final_weights.npz"), *model.get_weights())
    print("FINAL", logs, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], *(int(a) for a in sys.argv[4:]))
