"""A classifier trainer with micro-batch accumulation and robust (adversarial) training.

Reference: Yao et al. 2018, §3 (large batches, emulated in the official code by
accumulating gradients over 128-example micro-batches) and §5 (robust
optimisation: a fraction of each batch replaced by FGSM examples).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_hessian import adversarial


def cross_entropy(*, labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Mean softmax cross-entropy, scalar. labels int [B], logits [B, K]."""
    return tf.reduce_mean(
        keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    )


def l2_penalty(*, weights, weight_decay: float) -> tf.Tensor:
    """``weight_decay / 2 * sum ||w||^2``: PyTorch's coupled weight decay as a loss term (spec §3)."""
    return 0.5 * weight_decay * tf.add_n([tf.reduce_sum(tf.square(w)) for w in weights])


class ClassifierTrainer(keras.Model):
    """Wraps a classifier ``network`` (logits) with the paper's training step.

    Args:
      network: Functional classifier producing logits.
      num_micro_batches: k; the per-replica batch is split into k micro-batches
        whose gradients are summed before one optimizer step (1 = true large batch).
      weight_decay: Coupled L2 coefficient (loss term wd/2 ||w||^2 on every trainable weight).
      num_adversarial: Examples of each micro-batch replaced by adversarial ones (0 = off).
      adversarial_steps: Optimizer steps during which the replacement is active.
      attack: ``"fgsm"`` or ``"pgd"``.
      attack_kwargs: Keyword arguments of the attack (epsilon, clip range, PGD steps).
    """

    def __init__(
        self,
        network: keras.Model,
        *,
        num_micro_batches: int = 1,
        weight_decay: float = 0.0,
        num_adversarial: int = 0,
        adversarial_steps: int = 0,
        attack: str = "fgsm",
        attack_kwargs: dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_micro_batches < 1:
            raise ValueError(f"num_micro_batches must be >= 1. Received: {num_micro_batches}.")
        if attack not in ("fgsm", "pgd"):
            raise ValueError(f"attack must be 'fgsm' or 'pgd'. Received: attack={attack!r}.")
        self.network = network
        self.num_micro_batches = num_micro_batches
        self.weight_decay = weight_decay
        self.num_adversarial = num_adversarial
        self.adversarial_steps = adversarial_steps
        self.attack = attack
        self.attack_kwargs = dict(attack_kwargs or {})
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.adversarial_tracker = keras.metrics.Mean(name="adversarial_fraction")

    def call(self, x, training=False):
        return self.network(x, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker, self.adversarial_tracker]

    def _with_adversarial(self, x, y):
        """Replaces the first ``num_adversarial`` examples by attacks (inference mode)."""
        if self.num_adversarial == 0:
            return x, tf.constant(0.0)
        n = self.num_adversarial
        active = self.optimizer.iterations < self.adversarial_steps
        attack_fn = adversarial.fgsm if self.attack == "fgsm" else adversarial.pgd

        def replace():
            x_adv = tf.stop_gradient(attack_fn(self.network, x[:n], y[:n], **self.attack_kwargs))
            return tf.concat([x_adv, x[n:]], axis=0)

        fraction = tf.cast(active, tf.float32) * n / tf.cast(tf.shape(x)[0], tf.float32)
        return tf.cond(active, replace, lambda: x), fraction

    def _micro_step(self, x, y, scale):
        x, fraction = self._with_adversarial(x, y)
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.network(x, training=True)
            ce = cross_entropy(labels=y, logits=logits)
            loss = (
                ce + l2_penalty(weights=variables, weight_decay=self.weight_decay)
                if self.weight_decay
                else ce
            )
            scaled = loss * scale
        grads = tape.gradient(scaled, variables)
        self.loss_tracker.update_state(ce)
        self.accuracy_tracker.update_state(y, logits)
        self.adversarial_tracker.update_state(fraction)
        return grads

    def train_step(self, batch):
        # 1. Split the per-replica batch into k micro-batches (BN sees each one: ghost BN).
        # 2. Per micro-batch: adversarial replacement, forward in training mode, loss
        #    scaled by 1 / (k * replicas) because gradients are summed over both.
        # 3. One optimizer step with the summed gradients.
        # 4. Trackers (updated per micro-batch) are returned.
        x, y = batch
        k = self.num_micro_batches
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        scale = 1.0 / (k * replicas)
        variables = self.network.trainable_variables
        if k == 1:
            grads = self._micro_step(x, y, scale)
        else:
            micro = tf.shape(x)[0] // k
            grads = [tf.zeros(v.shape, v.dtype) for v in variables]
            for i in tf.range(k):
                start = i * micro
                micro_grads = self._micro_step(
                    x[start : start + micro], y[start : start + micro], scale
                )
                grads = [a + g for a, g in zip(grads, micro_grads)]
        self.optimizer.apply(grads, variables)
        return {m.name: m.result() for m in self.metrics}
