"""The generator and discriminator steps of `tf_madan.MadanGAN` (MADAN §3.1-3.2).

`MadanGAN` (tf_madan/madan_gan.py) holds the networks, optimizers, pools and trackers; this
mix-in holds its two steps: `generator_step` (forward all translations, the per-source GAN,
cycle, identity and DSC terms, SAD and CCD behind their gates, one backward pass, one Adam per
generator) and `discriminator_step` (D_T shared by every source, each D_i, the SAD and CCD
discriminators). Every loss is a local-batch mean divided by `num_replicas_in_sync`.
"""

import tensorflow as tf

from tf_madan import losses
from tf_madan.normalization import generator_to_segmenter


def _replica_scale():
    # Gradients are all-reduced by SUM: divide local means by the replica count.
    return 1.0 / tf.distribute.get_strategy().num_replicas_in_sync


def _grads(tape, loss, network):
    variables = network.trainable_variables
    return list(zip(tape.gradient(loss, variables), variables))


class MadanSteps:
    """Train-step methods of `MadanGAN` (see the module docstring)."""

    def _step(self):
        return self.get_optimizer("generator_s2t_0").iterations

    def _gate(self, start_step, dtype):
        return tf.cast(self._step() >= start_step, dtype)

    def _sad_discriminator_indices(self):
        """Source index of each SAD discriminator (asymmetric: the anchor's only)."""
        if self.sad_mode == "asymmetric":
            return [self.sad_anchor]
        return list(range(self.num_sources))

    def _sad_pulled_indices(self):
        """Sources whose generator gets a SAD G-term."""
        if self.sad_mode == "asymmetric":
            return self._others(self.sad_anchor)
        return list(range(self.num_sources))

    def _ccd_discriminator(self, i, j):
        return (
            self.ccd_discriminators[f"{i}_{j}"]
            if self.ccd_discriminators
            else self.discriminators_source[i]
        )

    def _dsc_loss(self, i, source, adapted):
        f_i = self.source_segmenters[i]
        f_a = self.adapted_segmenter or f_i
        # Both networks are frozen and run in inference mode (BN uses moving statistics).
        source_logits = tf.stop_gradient(f_i(generator_to_segmenter(source), training=False))
        adapted_logits = f_a(generator_to_segmenter(adapted), training=False)
        # A segmenter may return another float type (DRN's resize is float32 in a float64 run).
        source_logits = tf.cast(source_logits, adapted.dtype)
        adapted_logits = tf.cast(adapted_logits, adapted.dtype)
        if self.dsc_mode == "cycada":
            return losses.semantic_consistency_loss(
                adapted_logits=adapted_logits, source_logits=source_logits
            )
        return losses.dynamic_semantic_consistency_loss(
            adapted_logits=adapted_logits, source_logits=source_logits, direction=self.dsc_direction
        )

    # ------------------------------------------------------------ generator step
    def generator_step(self, batch):
        """One update of every generator (discriminators untouched).

        Args:
          batch: {"sources": tuple of M (image [B,H,W,3] in [-1,1], label),
            "target": (image, label)}.

        Returns:
          (logs dict of unscaled losses, fakes dict used by `discriminator_step`).
        """
        sources = [s[0] for s in batch["sources"]]
        target = batch["target"][0]
        gan = self.gan_mode
        logs = {}
        with tf.GradientTape() as tape:
            # 1. Forward every translation.
            out = self({"sources": sources, "target": target}, training=True)
            total = 0.0
            # 2. Per-source CycleGAN terms (Eq. 1 both directions, cycle, identity, DSC).
            for i, x in enumerate(sources):
                logs[f"gan_s2t_{i}"] = losses.gan_generator_loss(
                    fake_logits=self.discriminator_target(out["adapted"][i], training=True),
                    gan_mode=gan,
                )
                logs[f"gan_t2s_{i}"] = losses.gan_generator_loss(
                    fake_logits=self.discriminators_source[i](
                        out["target_to_source"][i], training=True
                    ),
                    gan_mode=gan,
                )
                logs[f"cycle_{i}"] = losses.cycle_consistency_loss(
                    real=x, cycled=out["cycled"][i]
                ) + losses.cycle_consistency_loss(real=target, cycled=out["target_cycled"][i])
                total += (
                    self.lambda_s2t * logs[f"gan_s2t_{i}"]
                    + self.lambda_t2s * logs[f"gan_t2s_{i}"]
                    + self.lambda_cycle * logs[f"cycle_{i}"]
                )
                if self.lambda_identity > 0:
                    logs[f"identity_{i}"] = losses.identity_loss(
                        real=target, same=self.generators_s2t[i](target, training=True)
                    ) + losses.identity_loss(real=x, same=self.generators_t2s[i](x, training=True))
                    total += self.lambda_identity * logs[f"identity_{i}"]
                if self.lambda_dsc > 0:
                    logs[f"dsc_{i}"] = self._dsc_loss(i, x, out["adapted"][i])
                    total += self.lambda_dsc * logs[f"dsc_{i}"]
            # 3. SAD: symmetric, adapted images of S_j (j != i) fool D_A^i (logged under i);
            # asymmetric, each non-anchor S_j's adapted images fool the one D (logged under j).
            if self.lambda_sad > 0:
                gate = self._gate(self.sad_start_step, total.dtype)
                if self.sad_mode == "asymmetric":
                    d = self.sad_discriminators[0]
                    for j in self._sad_pulled_indices():
                        logs[f"sad_generator_{j}"] = losses.gan_generator_loss(
                            fake_logits=d(out["adapted"][j], training=True), gan_mode=gan
                        )
                        total += gate * self.lambda_sad * logs[f"sad_generator_{j}"]
                else:
                    for i in range(self.num_sources):
                        others = [
                            self.sad_discriminators[i](out["adapted"][j], training=True)
                            for j in self._others(i)
                        ]
                        logs[f"sad_generator_{i}"] = losses.sub_domain_aggregation_generator_loss(
                            other_logits=others, gan_mode=gan
                        )
                        total += gate * self.lambda_sad * logs[f"sad_generator_{i}"]
            # 4. CCD: cross-domain cycles G_{T->S_i}(G_{S_j->T}(x_j)) fool D_i.
            cross = {}
            if self.lambda_ccd > 0:
                gate = self._gate(self.ccd_start_step, total.dtype)
                for i in range(self.num_sources):
                    logits = []
                    for j in range(self.num_sources):
                        if j == i:
                            continue
                        cross[f"{i}_{j}"] = self.generators_t2s[i](out["adapted"][j], training=True)
                        logits.append(
                            self._ccd_discriminator(i, j)(cross[f"{i}_{j}"], training=True)
                        )
                    logs[f"ccd_generator_{i}"] = losses.cross_domain_cycle_generator_loss(
                        cross_logits=logits, gan_mode=gan
                    )
                    total += gate * self.lambda_ccd * logs[f"ccd_generator_{i}"]
            logs["generator_total"] = total
            scaled = total * _replica_scale()
        # 5. One backward pass for all generators, then one optimizer per generator.
        names = self.generator_names()
        nets = self.networks()
        variables = [v for name in names for v in nets[name].trainable_variables]
        grads = tape.gradient(scaled, variables)
        offset = 0
        for name in names:
            count = len(nets[name].trainable_variables)
            pairs = zip(grads[offset : offset + count], variables[offset : offset + count])
            self.get_optimizer(name).apply_gradients(pairs)
            offset += count
        del tape
        fakes = {
            "sources": sources,
            "target": target,
            "adapted": out["adapted"],
            "target_to_source": out["target_to_source"],
            "cross": cross,
        }
        return logs, fakes

    # -------------------------------------------------------- discriminator step
    def discriminator_step(self, fakes):
        """One update of every discriminator on (pooled, detached) fakes.

        Args:
          fakes: the second output of `generator_step`.

        Returns:
          Dict of unscaled discriminator losses.
        """
        gan = self.gan_mode
        sources, target = fakes["sources"], fakes["target"]
        adapted = [tf.stop_gradient(a) for a in fakes["adapted"]]
        pooled_target = [self.pools_target[i](a) for i, a in enumerate(adapted)]
        pooled_source = [self.pools_source[i](f) for i, f in enumerate(fakes["target_to_source"])]
        pooled_cross = {k: self.pools_cross[k](v) for k, v in fakes["cross"].items()}
        logs = {}
        scale = _replica_scale()
        # 1. D_T, shared by every source: real target vs each source's pooled adapted images.
        with tf.GradientTape() as tape:
            real_logits = self.discriminator_target(target, training=True)
            per_source = [
                losses.gan_discriminator_loss(
                    real_logits=real_logits,
                    fake_logits=self.discriminator_target(p, training=True),
                    gan_mode=gan,
                )
                for p in pooled_target
            ]
            loss = tf.add_n(per_source)
            if self.target_discriminator_loss == "mean":
                loss = loss / float(self.num_sources)
            scaled = loss * scale
        logs["discriminator_target"] = loss
        self.get_optimizer("discriminator_target").apply_gradients(
            _grads(tape, scaled, self.discriminator_target)
        )
        # 2. D_i: real S_i vs pooled G_{T->S_i}(x_T); with shared CCD also vs cross cycles.
        for i, d in enumerate(self.discriminators_source):
            with tf.GradientTape() as tape:
                real_logits = d(sources[i], training=True)
                loss = losses.gan_discriminator_loss(
                    real_logits=real_logits,
                    fake_logits=d(pooled_source[i], training=True),
                    gan_mode=gan,
                )
                logs[f"discriminator_source_{i}"] = loss
                if self.lambda_ccd > 0 and not self.ccd_discriminators:
                    ccd = losses.cross_domain_cycle_discriminator_loss(
                        real_logits=real_logits,
                        cross_logits=[
                            d(pooled_cross[f"{i}_{j}"], training=True) for j in self._others(i)
                        ],
                        gan_mode=gan,
                    )
                    logs[f"ccd_discriminator_{i}"] = ccd
                    loss = loss + ccd
                scaled = loss * scale
            self.get_optimizer(f"discriminator_source_{i}").apply_gradients(_grads(tape, scaled, d))
        # 3. Separate CCD discriminators D_ij (code layout).
        if self.ccd_discriminators:
            for i in range(self.num_sources):
                total = 0.0
                for j in self._others(i):
                    d = self.ccd_discriminators[f"{i}_{j}"]
                    with tf.GradientTape() as tape:
                        loss = losses.cross_domain_cycle_discriminator_loss(
                            real_logits=d(sources[i], training=True),
                            cross_logits=[d(pooled_cross[f"{i}_{j}"], training=True)],
                            gan_mode=gan,
                        )
                        scaled = loss * scale
                    self.get_optimizer(f"ccd_discriminator_{i}_{j}").apply_gradients(
                        _grads(tape, scaled, d)
                    )
                    total += loss
                logs[f"ccd_discriminator_{i}"] = total / float(self.num_sources - 1)
        # 4. SAD discriminators: own adapted domain real, the others' (pooled) adapted fake
        # (asymmetric: one discriminator, own = the anchor's).
        for i, d in zip(self._sad_discriminator_indices(), self.sad_discriminators):
            with tf.GradientTape() as tape:
                loss = losses.sub_domain_aggregation_discriminator_loss(
                    own_logits=d(adapted[i], training=True),
                    other_logits=[d(pooled_target[j], training=True) for j in self._others(i)],
                    gan_mode=gan,
                )
                scaled = loss * scale
            logs[f"sad_discriminator_{i}"] = loss
            self.get_optimizer(f"sad_discriminator_{i}").apply_gradients(_grads(tape, scaled, d))
        return logs

    def _others(self, i):
        return [j for j in range(self.num_sources) if j != i]
