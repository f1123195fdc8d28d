"""Segmenter training: supervised (source-only / adapted) and feature-level alignment.

Reference: MADAN §3.3 (FLA): L_task on adapted images with source labels plus
L_feat = E log D(F_f(x')) + E log(1 - D(F_f(x_T))), an ADDA-style feature
discriminator on fc7 (paper) or on the score map (the code's
`--discrim_score`). The official code updates F adversarially only while
the discriminator's running domain accuracy is above a threshold (0.6).
"""

import keras
import tensorflow as tf

from tf_madan import losses


def _replica_context_sum(value):
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return value
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


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
      gate_threshold: F gets the adversarial term only while the running mean
        domain accuracy over the last `gate_window` steps exceeds this (0.6 in
        the code; 0 disables the gate).
      gate_window: running-mean window in steps (100).
      source_indices: which sources of the batch F trains on (None = all).
      ignore_label: label value without loss (255).
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
        source_indices=None,
        ignore_label=255,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if gate_window < 1:
            raise ValueError(f"gate_window must be >= 1. Received: gate_window={gate_window}")
        self.segmenter = segmenter
        self.feature_discriminator = feature_discriminator
        self.feature_layer = feature_layer
        self.with_features = (
            segmenter_with_features(segmenter, feature_layer) if feature_discriminator else None
        )
        self.lambda_feature = float(lambda_feature)
        self.lambda_discriminator = float(lambda_discriminator)
        self.gate_threshold = float(gate_threshold)
        self.source_indices = None if source_indices is None else list(source_indices)
        self.ignore_label = int(ignore_label)
        names = ["segmentation"]
        if feature_discriminator is not None:
            names += ["feature_discriminator", "feature_generator", "domain_accuracy", "gate_open"]
            # Ring buffer of recent domain accuracies; identical on all replicas (all-reduced).
            self.accuracy_history = self.add_weight(
                shape=(gate_window,),
                initializer="zeros",
                trainable=False,
                aggregation="only_first_replica",
                name="accuracy_history",
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

        Plan: 1. forward source (and target) batches once; 2. D_F loss on
        detached features, its gradient and update, running domain accuracy
        and gate; 3. segmenter loss = CE (normalised by the global valid-pixel
        count) + gate * λ_g * feature adversarial term on the target, gradient
        and update; 4. trackers.
        """
        images, labels = self._source_batch(batch)
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
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
            target = batch["target"][0]
            disc = self.feature_discriminator
            scale = 1.0 / num_replicas
            with tf.GradientTape() as tape:
                # 1. One forward of F on the source and target batches.
                logits, src_features = self.with_features(images, training=True)
                _, tgt_features = self.with_features(target, training=True)
                ce_local = losses.segmentation_cross_entropy(
                    labels=labels, logits=logits, ignore_label=self.ignore_label, normalizer=valid
                )
                ce = losses.segmentation_cross_entropy(
                    labels=labels,
                    logits=logits,
                    ignore_label=self.ignore_label,
                    normalizer=global_valid,
                )
                # 2. D_F step on detached features (its own tape; F's tape sees no path).
                with tf.GradientTape() as d_tape:
                    src_logits = disc(tf.stop_gradient(src_features), training=True)
                    tgt_logits = disc(tf.stop_gradient(tgt_features), training=True)
                    d_loss = losses.feature_discriminator_loss(
                        source_logits=src_logits, target_logits=tgt_logits
                    )
                    d_scaled = self.lambda_discriminator * d_loss * scale
                self._apply("feature_discriminator", d_tape, d_scaled)
                accuracy = losses.domain_accuracy(
                    source_logits=src_logits, target_logits=tgt_logits
                )
                accuracy = _replica_context_sum(accuracy) / float(num_replicas)
                history = tf.concat([self.accuracy_history[1:], accuracy[None]], axis=0)
                self.accuracy_history.assign(history)
                if self.gate_threshold > 0:
                    gate = tf.cast(tf.reduce_mean(history) > self.gate_threshold, tf.float32)
                else:
                    gate = tf.ones([])
                # 3. F: CE on sources + gated adversarial term on the target (updated D_F).
                g_loss = losses.feature_generator_loss(
                    target_logits=disc(tgt_features, training=True)
                )
                loss = ce + gate * self.lambda_feature * g_loss * scale
            self._apply("segmenter", tape, loss)
            logs.update(
                segmentation=ce_local,
                feature_discriminator=d_loss,
                feature_generator=g_loss,
                domain_accuracy=accuracy,
                gate_open=gate,
            )
        # 4. Trackers.
        for name, value in logs.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _apply(self, name, tape, loss):
        net = self.networks()[name]
        grads = tape.gradient(loss, net.trainable_variables)
        self.get_optimizer(name).apply_gradients(zip(grads, net.trainable_variables))
