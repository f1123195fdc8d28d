"""Pixel-level MADAN: DAIG (per-source CycleGANs + DSC) and ADA (SAD + CCD).

Reference: MADAN §3.1-3.2. Per source i: G_{S_i->T}, G_{T->S_i}, source
discriminator D_i, one target discriminator D_T shared by all sources; the
generator objective sums Eq. 1 (both directions), the cycle loss, Eq. 4
(DSC), SAD and CCD (each switched on from its start step).
"""

import keras
import tensorflow as tf

from tf_madan import losses
from tf_madan.image_pool import ImagePool
from tf_madan.madan_steps import MadanSteps

DSC_MODES = ("dsc", "cycada")
SAD_MODES = ("symmetric", "asymmetric")
TARGET_DISCRIMINATOR_LOSSES = ("mean", "sum")


class MadanGAN(MadanSteps, keras.Model):
    """Multi-source CycleGAN with dynamic semantic consistency, SAD and CCD.

    Args:
      generators_s2t: list of M models G_{S_i->T}, [-1, 1] images -> images.
      generators_t2s: list of M models G_{T->S_i}.
      discriminator_target: D_T, shared by all sources (PatchGAN).
      discriminators_source: list of M source discriminators D_i.
      sad_discriminators: list of M SAD discriminators D_A^i or None (no SAD).
      ccd_discriminators: None to reuse D_i for CCD (paper), or a dict
        "i_j" -> D_ij for every ordered pair i != j (official code layout).
      source_segmenters: list of M frozen F_i for DSC (or None: no DSC).
      adapted_segmenter: frozen F_A (the dynamic network) for DSC; None with
        `source_segmenters` given means F_A = F_i (the code's shared layout).
      gan_mode: "lsgan" or "bce".
      lambda_s2t, lambda_t2s: generator adversarial weights (2, 1 in the code).
      lambda_cycle: cycle weight (1.0 both ways in the code).
      lambda_identity: identity weight (0 in MADAN).
      lambda_dsc: weight of the pixel-mean KL (200 / C in the code's scale).
      dsc_direction: "paper" or "code" (reversed KL).
      dsc_mode: "dsc" (KL) or "cycada" (CE against argmax pseudo-labels).
      lambda_sad, sad_start_step, sad_mode: SAD G-term weight, first step it
        counts (the SAD discriminators train from step 0: steps before it are the
        discriminators' warm-up) and "symmetric" (paper: M discriminators D_A^i) /
        "asymmetric" (the official code: ONE discriminator, real = the anchor
        source's adapted images, fake = the others'; only the non-anchor sources'
        generators get a G-term, pulling them toward the anchor; Luodian/MADAN
        `cyclegan/models/multi_cycle_gan_semantic_model.py` lines 282-285 and 349-355,
        the reverse term is commented out at lines 298-299).
      sad_anchor: the anchor source of asymmetric SAD (the code's GTA: source 0 with
        `data.sources=("gta5", "synthia")`).
      target_discriminator_loss: "mean" over sources of D_T's per-source losses, or
        "sum" (the official code: one `backward()` per source, gradients add up,
        `backward_D_A` lines 259-271).
      lambda_ccd, ccd_start_step: CCD G-term weight and first step.
      pool_size: image history pool size per fake stream (0 = off).
      pool_seed: seed of the pools' stateless random streams (each pool also keys on its
        name, so streams differ); with the checkpointed pool counters a resumed run draws
        the numbers of an uninterrupted one.
    """

    SAD_MODES = SAD_MODES
    TARGET_DISCRIMINATOR_LOSSES = TARGET_DISCRIMINATOR_LOSSES

    def __init__(
        self,
        *,
        generators_s2t,
        generators_t2s,
        discriminator_target,
        discriminators_source,
        sad_discriminators=None,
        ccd_discriminators=None,
        source_segmenters=None,
        adapted_segmenter=None,
        gan_mode="lsgan",
        lambda_s2t=2.0,
        lambda_t2s=1.0,
        lambda_cycle=1.0,
        lambda_identity=0.0,
        lambda_dsc=0.0,
        dsc_direction="paper",
        dsc_mode="dsc",
        lambda_sad=0.0,
        sad_start_step=0,
        sad_mode="symmetric",
        sad_anchor=0,
        target_discriminator_loss="mean",
        lambda_ccd=0.0,
        ccd_start_step=0,
        pool_size=50,
        pool_seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        m = len(generators_s2t)
        if m < 1 or len(generators_t2s) != m or len(discriminators_source) != m:
            raise ValueError(
                "generators_s2t, generators_t2s and discriminators_source need the same length "
                f">= 1. Received lengths: {m}, {len(generators_t2s)}, {len(discriminators_source)}"
            )
        if (lambda_sad > 0 or lambda_ccd > 0) and m < 2:
            raise ValueError(f"SAD and CCD need >= 2 sources. Received: {m} source(s)")
        if sad_mode not in SAD_MODES:
            raise ValueError(
                f"sad_mode must be one of {SAD_MODES}. Received: sad_mode={sad_mode!r}"
            )
        if lambda_sad > 0 and sad_mode == "symmetric":
            if sad_discriminators is None or len(sad_discriminators) != m:
                raise ValueError("lambda_sad > 0 needs one SAD discriminator per source.")
        if lambda_sad > 0 and sad_mode == "asymmetric":
            if sad_discriminators is None or len(sad_discriminators) != 1:
                raise ValueError(
                    "asymmetric SAD needs exactly one SAD discriminator. Received: "
                    f"{None if sad_discriminators is None else len(sad_discriminators)}"
                )
            if not 0 <= int(sad_anchor) < m:
                raise ValueError(
                    f"sad_anchor must be a source index in [0, {m}). Received: sad_anchor={sad_anchor}"
                )
        if target_discriminator_loss not in TARGET_DISCRIMINATOR_LOSSES:
            raise ValueError(
                f"target_discriminator_loss must be one of {TARGET_DISCRIMINATOR_LOSSES}. "
                f"Received: target_discriminator_loss={target_discriminator_loss!r}"
            )
        if lambda_dsc > 0 and (source_segmenters is None or len(source_segmenters) != m):
            raise ValueError("lambda_dsc > 0 needs one source segmenter F_i per source.")
        if dsc_mode not in DSC_MODES:
            raise ValueError(
                f"dsc_mode must be one of {DSC_MODES}. Received: dsc_mode={dsc_mode!r}"
            )
        if ccd_discriminators is not None:
            pairs = {f"{i}_{j}" for i in range(m) for j in range(m) if i != j}
            if set(ccd_discriminators) != pairs:
                raise ValueError(
                    f"ccd_discriminators needs keys {sorted(pairs)}. "
                    f"Received: {sorted(ccd_discriminators)}"
                )
        losses.gan_generator_loss(fake_logits=tf.zeros([1]), gan_mode=gan_mode)  # validates mode
        self.num_sources = m
        self.generators_s2t = list(generators_s2t)
        self.generators_t2s = list(generators_t2s)
        self.discriminator_target = discriminator_target
        self.discriminators_source = list(discriminators_source)
        self.sad_discriminators = list(sad_discriminators) if lambda_sad > 0 else []
        self.ccd_discriminators = (
            dict(ccd_discriminators) if ccd_discriminators and lambda_ccd > 0 else {}
        )
        self.source_segmenters = list(source_segmenters) if lambda_dsc > 0 else []
        self.adapted_segmenter = adapted_segmenter if lambda_dsc > 0 else None
        self.gan_mode = gan_mode
        self.lambda_s2t, self.lambda_t2s = float(lambda_s2t), float(lambda_t2s)
        self.lambda_cycle, self.lambda_identity = float(lambda_cycle), float(lambda_identity)
        self.lambda_dsc, self.dsc_direction, self.dsc_mode = (
            float(lambda_dsc),
            dsc_direction,
            dsc_mode,
        )
        self.lambda_sad, self.sad_start_step, self.sad_mode = (
            float(lambda_sad),
            int(sad_start_step),
            sad_mode,
        )
        self.sad_anchor = int(sad_anchor)
        self.target_discriminator_loss = target_discriminator_loss
        self.lambda_ccd, self.ccd_start_step = float(lambda_ccd), int(ccd_start_step)
        self.pools_target = [
            ImagePool(pool_size, seed=pool_seed, name=f"pool_target_{i}") for i in range(m)
        ]
        self.pools_source = [
            ImagePool(pool_size, seed=pool_seed, name=f"pool_source_{i}") for i in range(m)
        ]
        self.pools_cross = {
            f"{i}_{j}": ImagePool(pool_size, seed=pool_seed, name=f"pool_cross_{i}_{j}")
            for i in range(m)
            for j in range(m)
            if i != j and self.lambda_ccd > 0
        }
        self.trackers = {}
        for name in self._loss_names():
            self.trackers[name] = keras.metrics.Mean(name=name)
        # Every sub-network is a built functional model.
        self.built = True

    # ----------------------------------------------------------------- networks
    def networks(self):
        """{name: network} of every trained sub-network (one optimizer each)."""
        nets = {}
        for i in range(self.num_sources):
            nets[f"generator_s2t_{i}"] = self.generators_s2t[i]
            nets[f"generator_t2s_{i}"] = self.generators_t2s[i]
        nets["discriminator_target"] = self.discriminator_target
        for i in range(self.num_sources):
            nets[f"discriminator_source_{i}"] = self.discriminators_source[i]
        for i, d in zip(self._sad_discriminator_indices(), self.sad_discriminators):
            nets[f"sad_discriminator_{i}"] = d
        for key, d in self.ccd_discriminators.items():
            nets[f"ccd_discriminator_{key}"] = d
        return nets

    def generator_names(self):
        return [n for n in self.networks() if n.startswith("generator")]

    def discriminator_names(self):
        return [n for n in self.networks() if not n.startswith("generator")]

    def compile(self, *, optimizers, **kwargs):
        """Attaches one optimizer per network (`{network name: optimizer}`)."""
        super().compile(**kwargs)
        nets = self.networks()
        if set(optimizers) != set(nets):
            raise ValueError(
                f"optimizers needs keys {sorted(nets)}. Received: {sorted(optimizers)}"
            )
        for name, optimizer in optimizers.items():
            # Plain attributes so that checkpoints and tf_runtime.collect_optimizers find them.
            setattr(self, f"{name}_optimizer", optimizer)

    def get_optimizer(self, name):
        return getattr(self, f"{name}_optimizer")

    def build_pools(self, image_shape):
        """Creates the image pools' buffers for images [B, H, W, C] before tracing.

        Variables created inside the first `tf.function` trace force a second trace,
        which costs as much as the first for this graph.
        """
        for pool in self._pools():
            if not pool.built:
                pool.build(tuple(image_shape))
                pool.built = True

    def _pools(self):
        return self.pools_target + self.pools_source + list(self.pools_cross.values())

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        if save_type == "checkpoint":
            # Keras keeps list attributes in TrackedLists, which TF checkpoints do not follow:
            # without this the pools' buffers, fill counts and draw counters were not saved,
            # so a resumed stage restarted with empty pools (the networks' trainable weights
            # reach the checkpoint through their optimizers).
            for pool in self._pools():
                children.setdefault(pool.name, pool)
        return children

    def build_optimizers(self):
        """Builds every optimizer's slots; call inside `strategy.scope()` (keras#20164)."""
        for name, net in self.networks().items():
            self.get_optimizer(name).build(net.trainable_variables)

    # ------------------------------------------------------------------ forward
    def call(self, inputs, training=False):
        """Translations for sources and target.

        Args:
          inputs: {"sources": list of M [B, H, W, 3] in [-1, 1], "target": [B, H, W, 3]}.

        Returns:
          Dict with lists over sources: "adapted" G_{S_i->T}(x_i), "cycled"
          G_{T->S_i}(G_{S_i->T}(x_i)), "target_to_source" G_{T->S_i}(x_T),
          "target_cycled" G_{S_i->T}(G_{T->S_i}(x_T)).
        """
        sources, target = list(inputs["sources"]), inputs["target"]
        out = {"adapted": [], "cycled": [], "target_to_source": [], "target_cycled": []}
        for i, x in enumerate(sources):
            g_s2t, g_t2s = self.generators_s2t[i], self.generators_t2s[i]
            adapted = g_s2t(x, training=training)
            fake_source = g_t2s(target, training=training)
            out["adapted"].append(adapted)
            out["cycled"].append(g_t2s(adapted, training=training))
            out["target_to_source"].append(fake_source)
            out["target_cycled"].append(g_s2t(fake_source, training=training))
        return out

    def _loss_names(self):
        names = ["generator_total", "discriminator_target"]
        for i in range(self.num_sources):
            names += [f"gan_s2t_{i}", f"gan_t2s_{i}", f"cycle_{i}", f"discriminator_source_{i}"]
            if self.lambda_identity > 0:
                names.append(f"identity_{i}")
            if self.lambda_dsc > 0:
                names.append(f"dsc_{i}")
            if self.lambda_sad > 0 and i in self._sad_pulled_indices():
                names.append(f"sad_generator_{i}")
            if self.lambda_sad > 0 and i in self._sad_discriminator_indices():
                names.append(f"sad_discriminator_{i}")
            if self.lambda_ccd > 0:
                names += [f"ccd_generator_{i}", f"ccd_discriminator_{i}"]
        return names

    @property
    def metrics(self):
        return list(self.trackers.values())

    # No tensor-dependent Python control flow: skipping AutoGraph halves the trace time.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, batch):
        # 1. generators (forward, losses, gradients, apply); 2. discriminators; 3. trackers.
        logs, fakes = self.generator_step(batch)
        logs.update(self.discriminator_step(fakes))
        for name, value in logs.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
