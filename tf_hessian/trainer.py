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
      num_adversarial: Adversarial examples per GLOBAL micro-batch (0 = off), as
        ``train_lib.resolve_schedule`` gives it (``num_adversarial_global``): the
        FIRST ``num_adversarial`` examples of every global micro-batch are
        replaced whatever the replica split (see ``_adversarial_mask``), so a
        mirrored run attacks exactly the examples a one-device run attacks, also
        when the count does not divide over the replicas.
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

    def _adversarial_mask(self, num_local: tf.Tensor, start: tf.Tensor, replica_batch: tf.Tensor):
        """Which examples of a replica's micro-batch are replaced, and their global positions.

        The replaced examples are fixed by their position in the GLOBAL batch:
        the first ``num_adversarial`` of every global micro-batch (what one
        device does); a replica may hold more or fewer of them than another.
        A replica holds the global examples
        ``[replica_id * replica_batch, (replica_id + 1) * replica_batch)`` (one
        input pipeline, batches dealt to the replicas in order; every worker of
        a multi-worker run reads a contiguous slice of each global batch), so N replicas
        replace exactly the examples one device replaces.

        Args:
          num_local: Size of this micro-batch on this replica.
          start: Offset of the micro-batch in the replica's batch.
          replica_batch: Size of the replica's batch.

        Returns:
          ``(mask [num_local] bool, global_index [num_local] int32)``.
        """
        context = tf.distribute.get_replica_context()
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        replica_id = tf.cast(context.replica_id_in_sync_group if context else 0, tf.int32)
        global_micro = replica_batch * replicas // self.num_micro_batches
        index = replica_id * replica_batch + start + tf.range(num_local, dtype=tf.int32)
        return tf.math.floormod(index, global_micro) < self.num_adversarial, index

    def _with_adversarial(self, x, y, start, replica_batch):
        """Replaces this micro-batch's share of adversarial examples by attacks (inference mode)."""
        if self.num_adversarial == 0:
            return x, tf.constant(0.0)
        active = self.optimizer.iterations < self.adversarial_steps
        num_local = tf.shape(x)[0]
        mask, index = self._adversarial_mask(num_local, start, replica_batch)
        chosen = tf.where(mask)[:, 0]
        count = tf.shape(chosen)[0]

        def attack(x_sel, y_sel, index_sel):
            kwargs = dict(self.attack_kwargs)
            if self.attack == "pgd" and kwargs.get("random_start", True):
                # The random start of an example depends on its global position and
                # the step only, never on how the batch is split over replicas.
                replicas = tf.distribute.get_strategy().num_replicas_in_sync
                noise = tf.random.stateless_uniform(
                    tf.concat([[replica_batch * replicas], tf.shape(x)[1:]], 0),
                    tf.stack(
                        [
                            tf.cast(kwargs.pop("seed", 0), tf.int64),
                            tf.cast(tf.convert_to_tensor(self.optimizer.iterations), tf.int64),
                        ]
                    ),
                    dtype=x.dtype,
                )
                kwargs["start_noise"] = tf.gather(noise, index_sel)
                return adversarial.pgd(self.network, x_sel, y_sel, **kwargs)
            return adversarial.fgsm(self.network, x_sel, y_sel, **kwargs)

        def replace():
            x_adv = tf.stop_gradient(
                attack(tf.gather(x, chosen), tf.gather(y, chosen), tf.gather(index, chosen))
            )
            return tf.tensor_scatter_nd_update(x, chosen[:, None], x_adv)

        x = tf.cond(tf.logical_and(active, count > 0), replace, lambda: x)
        fraction = tf.cast(active, tf.float32) * tf.cast(count, tf.float32)
        return x, fraction / tf.cast(num_local, tf.float32)

    def _micro_step(self, x, y, scale, start, replica_batch):
        x, fraction = self._with_adversarial(x, y, start, replica_batch)
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
        replica_batch = tf.shape(x)[0]
        if k == 1:
            grads = self._micro_step(x, y, scale, tf.constant(0), replica_batch)
        else:
            micro = replica_batch // k
            grads = [tf.zeros(v.shape, v.dtype) for v in variables]
            for i in tf.range(k):
                start = i * micro
                micro_grads = self._micro_step(
                    x[start : start + micro], y[start : start + micro], scale, start, replica_batch
                )
                grads = [a + g for a, g in zip(grads, micro_grads)]
        self.optimizer.apply(grads, variables)
        return {m.name: m.result() for m in self.metrics}
