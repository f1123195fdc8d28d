"""Segmenter training: supervised (source-only / adapted) and feature-level alignment.

Reference: MADAN §3.3 (FLA): L_task on adapted images with source labels plus
L_feat = E log D(F_f(x')) + E log(1 - D(F_f(x_T))), an ADDA-style feature
discriminator on fc7 (paper) or on the score map (the code's
`--discrim_score`).

FLA follows the official `scripts/train_fcn_adda.py` (Luodian/MADAN, from CyCADA) with
`--weights_shared`, per iteration:
  1. D step, always: D_F on detached F features of the source and target batches, loss =
     ONE mean CE over the concatenated batch (source = 1, target = 0), x lambda_d.
  2. Domain accuracy over the concatenated batch appended to a window of the last
     `gate_window` iterations; the gate is open when the mean of the FILLED entries
     (a deque: no zeros at the start) exceeds `gate_threshold`.
  3. Gate open: an adversarial F step (lambda_g * CE(D(F_f(x_T)), source label)), then a
     separate supervised CE step on the source batch with the F it just produced (two
     optimizer updates). Gate closed: no F update at all.
  4. "No suitable discriminator found": after `patience` consecutive iterations without
     an F update the step reports `no_suitable_discriminator = 1` for the loop to stop on.
"""

import keras
import tensorflow as tf

from tf_madan import losses


def _replica_context_sum(value):
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return value
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def _keep_if(gate, variables, old_values):
    """Sets every variable back to `old_values` unless `gate` (identical on all replicas).

    Optimizer updates cannot sit in a `tf.cond` under MirroredStrategy (they merge-call),
    so a gated update is applied unconditionally and undone here, in cross-replica
    context, on every device copy: a closed gate leaves weights and optimizer state
    exactly as they were.
    """

    def restore(strategy, gate, old_values):
        for variable, old in zip(variables, old_values):
            strategy.extended.update(
                variable,
                lambda var, o, g: var.assign(tf.where(g, var, o)),
                args=(old, gate),
                group=False,
            )

    variables = [v.value if isinstance(v, keras.Variable) else v for v in variables]
    tf.distribute.get_replica_context().merge_call(restore, args=(gate, old_values))


def segmenter_with_features(segmenter, feature_layer):
    """Wraps a segmenter to also return an intermediate feature map.

    Args:
      segmenter: functional keras.Model image -> logits [B, H, W, C].
      feature_layer: layer name whose output is aligned (e.g. "fc7_dropout");
        None aligns the logits themselves (score-map FLA).

    Returns:
      keras.Model image -> (logits [B, H, W, C], features [B, h, w, K]).
    """
    if feature_layer is None:
        return keras.Model(segmenter.input, [segmenter.output, segmenter.output])
    try:
        layer = segmenter.get_layer(feature_layer)
    except ValueError as error:
        raise ValueError(
            f"Segmenter {segmenter.name!r} has no layer {feature_layer!r} for FLA."
        ) from error
    return keras.Model(segmenter.input, [segmenter.output, layer.output])


class SegmenterTrainer(keras.Model):
    """Trains F with cross-entropy on (adapted) source images, optionally with FLA.

    Args:
      segmenter: F, image [B, H, W, 3] (segmenter-normalised) -> logits.
      feature_discriminator: None (supervised only) or D_F, features -> [B, h, w, 2].
      feature_layer: layer of F aligned by FLA (None = score map).
      lambda_feature: λ_g, weight of the adversarial term for F (0.1).
      lambda_discriminator: λ_d, weight of D_F's loss (1).
      gate_threshold: F is updated (adversarial step, then supervised step) only
        while the mean domain accuracy over the filled entries of the last
        `gate_window` steps exceeds this (0.6 in the code; <= 0 keeps the gate open).
      gate_window: running-mean window in steps (100).
      patience: after this many consecutive steps without an F update the logs carry
        `no_suitable_discriminator = 1` (the code stops at 3 * len(loader)); 0 = never.
      source_indices: which sources of the batch F trains on (None = all).
      ignore_label: label value without loss (255).
      weight_decay: L2 coefficient added to every gradient, `grad + weight_decay * w`,
        before the optimizer (PyTorch `SGD(weight_decay=...)`, which the official FLA
        step uses for D and F: Luodian/MADAN `scripts/train_fcn_adda.py` lines 185-188;
        the decay then passes through momentum). 0 = none (Keras optimizers' own
        `weight_decay` is decoupled instead: `w -= lr * weight_decay * w`).
    """

    def __init__(
        self,
        *,
        segmenter,
        feature_discriminator=None,
        feature_layer=None,
        lambda_feature=0.1,
        lambda_discriminator=1.0,
        gate_threshold=0.6,
        gate_window=100,
        patience=0,
        source_indices=None,
        ignore_label=255,
        weight_decay=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if gate_window < 1:
            raise ValueError(f"gate_window must be >= 1. Received: gate_window={gate_window}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0. Received: patience={patience}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0. Received: weight_decay={weight_decay}")
        self.weight_decay = float(weight_decay)
        self.segmenter = segmenter
        self.feature_discriminator = feature_discriminator
        self.feature_layer = feature_layer
        self.with_features = (
            segmenter_with_features(segmenter, feature_layer) if feature_discriminator else None
        )
        self.lambda_feature = float(lambda_feature)
        self.lambda_discriminator = float(lambda_discriminator)
        self.gate_threshold = float(gate_threshold)
        self.gate_window = int(gate_window)
        self.patience = int(patience)
        self.source_indices = None if source_indices is None else list(source_indices)
        self.ignore_label = int(ignore_label)
        names = ["segmentation"]
        if feature_discriminator is not None:
            names += ["feature_discriminator", "feature_generator", "domain_accuracy", "gate_open"]
            # The code's deque(maxlen=gate_window): a ring buffer plus the number of filled
            # entries; identical on all replicas (the accuracy is all-reduced).
            state = dict(trainable=False, aggregation="only_first_replica")
            self.accuracy_history = self.add_weight(
                shape=(gate_window,), initializer="zeros", name="accuracy_history", **state
            )
            self.accuracy_count = self.add_weight(
                shape=(), initializer="zeros", dtype="int32", name="accuracy_count", **state
            )
            self.steps_without_update = self.add_weight(
                shape=(), initializer="zeros", dtype="int32", name="steps_without_update", **state
            )
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self.built = True

    def networks(self):
        nets = {"segmenter": self.segmenter}
        if self.feature_discriminator is not None:
            nets["feature_discriminator"] = self.feature_discriminator
        return nets

    def compile(self, *, optimizers, **kwargs):
        """Attaches one optimizer per network (`{"segmenter": ..., "feature_discriminator": ...}`)."""
        super().compile(**kwargs)
        if set(optimizers) != set(self.networks()):
            raise ValueError(
                f"optimizers needs keys {sorted(self.networks())}. Received: {sorted(optimizers)}"
            )
        for name, optimizer in optimizers.items():
            setattr(self, f"{name}_optimizer", optimizer)

    def get_optimizer(self, name):
        return getattr(self, f"{name}_optimizer")

    def build_optimizers(self):
        """Builds every optimizer; call inside `strategy.scope()`."""
        for name, net in self.networks().items():
            self.get_optimizer(name).build(net.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, images, training=False):
        """Returns {"logits": [B, H, W, C]} (and "features" when FLA is on)."""
        if self.with_features is None:
            return {"logits": self.segmenter(images, training=training)}
        logits, features = self.with_features(images, training=training)
        return {"logits": logits, "features": features}

    def _source_batch(self, batch):
        sources = list(batch["sources"])
        if self.source_indices is not None:
            sources = [sources[i] for i in self.source_indices]
        images = tf.concat([s[0] for s in sources], axis=0)
        labels = tf.concat([s[1] for s in sources], axis=0)
        return images, labels

    # No tensor-dependent Python control flow: skipping AutoGraph halves the trace time.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, batch):
        """One step on {"sources": tuple of (image, label), "target": (image, label)}.

        Plan (supervised): 1. forward the source batch; 2. CE normalised by the global
        valid-pixel count; 3. gradient and update; 4. trackers. With FLA, steps 1-4 of
        the module docstring (`_fla_step`), then the trackers. With FLA the results also
        carry `no_suitable_discriminator` (1.0 once `patience` is exhausted).
        """
        images, labels = self._source_batch(batch)
        valid = tf.reduce_sum(tf.cast(tf.not_equal(labels, self.ignore_label), tf.float32))
        # CE normalised by the valid pixels of the global batch: exact under any replica split.
        global_valid = _replica_context_sum(valid)
        logs = {}
        if self.feature_discriminator is None:
            with tf.GradientTape() as tape:
                logits = self.segmenter(images, training=True)
                ce_local = losses.segmentation_cross_entropy(
                    labels=labels, logits=logits, ignore_label=self.ignore_label, normalizer=valid
                )
                loss = losses.segmentation_cross_entropy(
                    labels=labels,
                    logits=logits,
                    ignore_label=self.ignore_label,
                    normalizer=global_valid,
                )
            logs["segmentation"] = ce_local
            self._apply("segmenter", tape, loss)
        else:
            logs.update(self._fla_step(images, labels, batch["target"][0], global_valid))
        # 4. Trackers (the early-stop flag is a state, not an average).
        stop = logs.pop("no_suitable_discriminator", None)
        for name, value in logs.items():
            self.trackers[name].update_state(value)
        results = {name: tracker.result() for name, tracker in self.trackers.items()}
        if stop is not None:
            results["no_suitable_discriminator"] = stop
        return results

    def _fla_step(self, images, labels, target, global_valid):
        """Steps 1-4 of the module docstring; returns the step's logs."""
        disc = self.feature_discriminator
        # 1. D step on detached features (F in training mode, as the code's net.train()).
        _, src_features = self.with_features(images, training=True)
        _, tgt_features = self.with_features(target, training=True)
        src_features = tf.stop_gradient(src_features)
        tgt_features = tf.stop_gradient(tgt_features)
        with tf.GradientTape() as d_tape:
            src_logits = disc(src_features, training=True)
            tgt_logits = disc(tgt_features, training=True)
            # One mean over the global concatenated batch: exact under any replica split.
            locations = tf.cast(
                tf.reduce_prod(tf.shape(src_logits)[:-1])
                + tf.reduce_prod(tf.shape(tgt_logits)[:-1]),
                tf.float32,
            )
            global_locations = _replica_context_sum(locations)
            d_loss = losses.feature_discriminator_loss(
                source_logits=src_logits, target_logits=tgt_logits, normalizer=global_locations
            )
            d_scaled = self.lambda_discriminator * d_loss
        self._apply("feature_discriminator", d_tape, d_scaled)
        d_loss_global = _replica_context_sum(d_loss)
        accuracy = _replica_context_sum(
            losses.domain_accuracy(
                source_logits=src_logits, target_logits=tgt_logits, normalizer=global_locations
            )
        )

        # 2. Window of the last gate_window accuracies; mean over the filled entries.
        history = tf.concat([self.accuracy_history[1:], accuracy[None]], axis=0)
        count = tf.minimum(self.accuracy_count + 1, self.gate_window)
        self.accuracy_history.assign(history)
        self.accuracy_count.assign(count)
        filled = tf.range(self.gate_window) >= self.gate_window - count
        running = tf.reduce_sum(tf.where(filled, history, 0.0)) / tf.cast(count, history.dtype)
        if self.gate_threshold > 0:
            gate = running > self.gate_threshold
        else:
            gate = tf.constant(True)

        # 3. Gated F update: adversarial step, then supervised step; undone if closed.
        segmenter_optimizer = self.get_optimizer("segmenter")
        kept = self.segmenter.variables + list(segmenter_optimizer.variables)
        old_values = [tf.identity(v.value if isinstance(v, keras.Variable) else v) for v in kept]
        target_count = _replica_context_sum(
            tf.cast(tf.reduce_prod(tf.shape(tgt_logits)[:-1]), tf.float32)
        )
        with tf.GradientTape() as tape:
            _, tgt_features = self.with_features(target, training=True)
            g_loss = losses.feature_generator_loss(
                target_logits=disc(tgt_features, training=True), normalizer=target_count
            )
            g_scaled = self.lambda_feature * g_loss
        self._apply("segmenter", tape, g_scaled)
        with tf.GradientTape() as tape:
            logits = self.segmenter(images, training=True)
            ce = losses.segmentation_cross_entropy(
                labels=labels,
                logits=logits,
                ignore_label=self.ignore_label,
                normalizer=global_valid,
            )
        self._apply("segmenter", tape, ce)
        _keep_if(gate, kept, old_values)

        # 4. Early stop bookkeeping: consecutive steps without an F update.
        idle = tf.where(gate, 0, self.steps_without_update + 1)
        self.steps_without_update.assign(idle)
        stop = tf.logical_and(self.patience > 0, idle >= self.patience)
        gate = tf.cast(gate, tf.float32)
        # Logged values are global (identical on every replica); the loop MEAN-reduces them.
        return dict(
            segmentation=_replica_context_sum(ce),
            feature_discriminator=d_loss_global,
            feature_generator=_replica_context_sum(g_loss),
            domain_accuracy=accuracy,
            gate_open=gate,
            no_suitable_discriminator=tf.cast(stop, tf.float32),
        )

    def no_suitable_discriminator(self):
        """True once F has gone `patience` consecutive steps without an update (eager read)."""
        if self.feature_discriminator is None or self.patience == 0:
            return False
        return int(self.steps_without_update.numpy()) >= self.patience

    def _apply(self, name, tape, loss):
        net = self.networks()[name]
        grads = tape.gradient(loss, net.trainable_variables)
        # Layers off the loss's path (the score head in a feature-layer adversarial step)
        # get no gradient and no update (PyTorch >= 2 leaves them None too; 1.x zeroed them, so
        # momentum and weight decay still moved them there).
        pairs = [(g, v) for g, v in zip(grads, net.trainable_variables) if g is not None]
        if self.weight_decay > 0:
            # Coupled L2 as torch.optim.SGD: parameters without a gradient are skipped there too.
            pairs = [(g + self.weight_decay * v, v) for g, v in pairs]
        self.get_optimizer(name).apply_gradients(pairs)
