"""Builds MADAN networks, composite models and optimizers from a config.

Kept apart from the model classes so that composite models get their parts
passed in (`MadanGAN(generators_s2t=..., ...)`).
"""

import keras

from tf_madan.madan_gan import MadanGAN
from tf_madan.models import drn, fcn8s, small_segmenter
from tf_madan.models.discriminator import build_feature_discriminator, build_patchgan_discriminator
from tf_madan.models.generator import build_resnet_generator
from tf_madan.segmentation_model import SegmenterTrainer

SEGMENTERS = ("small", "fcn8s", "drn26")
PIXEL_VARIANTS = ("daig", "ada")


def build_segmenter(config, name="segmenter"):
    """Segmenter F from `config.segmenter` (`name` in SEGMENTERS)."""
    seg = config.segmenter
    if seg.name == "small":
        return small_segmenter.build_small_segmenter(
            config.num_classes, filters=seg.filters, name=name
        )
    if seg.name == "fcn8s":
        return fcn8s.build_fcn8s(config.num_classes, fc_width=seg.fc_width, name=name)
    if seg.name == "drn26":
        return drn.build_drn_c26(
            config.num_classes, width_multiplier=seg.width_multiplier, name=name
        )
    raise ValueError(f"config.segmenter.name must be one of {SEGMENTERS}. Received: {seg.name!r}")


def feature_layer(config):
    """Name of the layer FLA aligns (None = score map)."""
    if config.fla.input == "score":
        return None
    if config.fla.input != "features":
        raise ValueError(
            f"config.fla.input must be 'features' or 'score'. Received: {config.fla.input!r}"
        )
    return {
        "small": small_segmenter.FEATURE_LAYER,
        "fcn8s": fcn8s.FEATURE_LAYER,
        "drn26": drn.FEATURE_LAYER,
    }[config.segmenter.name]


def build_generator(config, name):
    g = config.generator
    return build_resnet_generator(
        filters=g.filters,
        num_blocks=g.num_blocks,
        num_downsampling=g.num_downsampling,
        dropout_rate=g.dropout_rate,
        name=name,
    )


def build_discriminator(config, name, crop_size=None):
    d = config.discriminator
    shape = (crop_size, crop_size, 3) if crop_size else (None, None, 3)
    return build_patchgan_discriminator(
        filters=d.filters, num_layers=d.num_layers, input_shape=shape, name=name
    )


def gan_optimizer(config):
    return keras.optimizers.Adam(config.gan.learning_rate, beta_1=config.gan.beta_1, beta_2=0.999)


def build_madan_gan(
    config,
    *,
    num_sources,
    variant,
    use_dsc=True,
    use_sad=True,
    use_ccd=True,
    source_segmenters=None,
    adapted_segmenter=None,
    dsc_mode=None,
):
    """MadanGAN for a pixel-level stage, compiled with one Adam per network.

    Args:
      config: experiment config.
      num_sources: M.
      variant: "daig" (paper stage 1: CycleGANs only) or "ada" (DSC, SAD, CCD
        as switched by `use_*` and the config weights).
      use_dsc, use_sad, use_ccd: ablation switches for "ada".
      source_segmenters, adapted_segmenter: frozen F_i and F_A for DSC. With
        `config.dsc.networks="shared"` pass one network per source and no F_A; with
        `config.dsc.shared_network="adapted"` (the official code, spec §1.3) source i's
        network is the segmenter trained on source i's single-source adapted images.
      dsc_mode: override of `config.dsc.mode` ("cycada": CyCADA's semantic consistency).

    The SAD G-term starts at step `sad.start_epoch * gan.steps_per_epoch +
    sad.warmup_steps` of the stage; the SAD discriminators train from step 0.

    Call inside `strategy.scope()`; builds the optimizers too.

    Raises:
      ValueError: naming the config field of an invalid SAD / DSC / D_T option.
    """
    if variant not in PIXEL_VARIANTS:
        raise ValueError(f"variant must be one of {PIXEL_VARIANTS}. Received: {variant!r}")
    ada = variant == "ada"
    use_dsc, use_sad, use_ccd = ada and use_dsc, ada and use_sad, ada and use_ccd
    if num_sources < 2:
        use_sad = use_ccd = False
    m = num_sources
    epoch = config.gan.steps_per_epoch
    # Fields added after runs were stored: an older config.json lacks them (today's behaviour).
    sad_mode = config.sad.mode
    sad_anchor = config.sad.get("anchor", 0)
    sad_warmup = config.sad.get("warmup_steps", 0)
    d_t_loss = config.gan.get("target_discriminator_loss", "mean")
    shared_network = config.dsc.get("shared_network", "source_only")
    if sad_mode not in MadanGAN.SAD_MODES:
        raise ValueError(
            f"config.sad.mode must be one of {MadanGAN.SAD_MODES}. Received: {sad_mode!r}"
        )
    if not isinstance(sad_anchor, int) or not 0 <= sad_anchor < max(m, 1):
        raise ValueError(
            f"config.sad.anchor must be a source index in [0, {m}) "
            f"(config.data.sources order). Received: {sad_anchor!r}"
        )
    if not isinstance(sad_warmup, int) or sad_warmup < 0:
        raise ValueError(
            f"config.sad.warmup_steps must be an integer >= 0. Received: {sad_warmup!r}"
        )
    if d_t_loss not in MadanGAN.TARGET_DISCRIMINATOR_LOSSES:
        raise ValueError(
            f"config.gan.target_discriminator_loss must be one of "
            f"{MadanGAN.TARGET_DISCRIMINATOR_LOSSES}. Received: {d_t_loss!r}"
        )
    shared_networks = ("source_only", "adapted")
    if shared_network not in shared_networks:
        raise ValueError(
            f"config.dsc.shared_network must be one of {shared_networks}. "
            f"Received: {shared_network!r}"
        )
    if shared_network == "adapted" and config.dsc.networks != "shared":
        raise ValueError(
            'config.dsc.shared_network="adapted" needs config.dsc.networks="shared" (one '
            f"network per source plays F_i and F_A). Received: {config.dsc.networks!r}"
        )
    ccd = None
    if use_ccd and config.ccd.separate_discriminators:
        ccd = {
            f"{i}_{j}": build_discriminator(config, f"ccd_discriminator_{i}_{j}")
            for i in range(m)
            for j in range(m)
            if i != j
        }
    model = MadanGAN(
        generators_s2t=[build_generator(config, f"generator_s2t_{i}") for i in range(m)],
        generators_t2s=[build_generator(config, f"generator_t2s_{i}") for i in range(m)],
        discriminator_target=build_discriminator(config, "discriminator_target"),
        discriminators_source=[
            build_discriminator(config, f"discriminator_source_{i}") for i in range(m)
        ],
        sad_discriminators=[
            build_discriminator(config, f"sad_discriminator_{i}")
            for i in ([sad_anchor] if sad_mode == "asymmetric" else range(m))
        ]
        if use_sad
        else None,
        ccd_discriminators=ccd,
        source_segmenters=source_segmenters if use_dsc else None,
        adapted_segmenter=adapted_segmenter if use_dsc else None,
        gan_mode=config.gan.mode,
        lambda_s2t=config.gan.lambda_s2t,
        lambda_t2s=config.gan.lambda_t2s,
        lambda_cycle=config.gan.lambda_cycle,
        lambda_identity=config.gan.lambda_identity,
        lambda_dsc=config.dsc.weight if use_dsc else 0.0,
        dsc_direction=config.dsc.direction,
        dsc_mode=dsc_mode or config.dsc.mode,
        lambda_sad=config.sad.weight if use_sad else 0.0,
        sad_start_step=config.sad.start_epoch * epoch + sad_warmup,
        sad_mode=sad_mode,
        sad_anchor=sad_anchor if use_sad else 0,
        target_discriminator_loss=d_t_loss,
        lambda_ccd=config.ccd.weight if use_ccd else 0.0,
        ccd_start_step=config.ccd.start_epoch * epoch,
        pool_size=config.gan.pool_size,
        pool_seed=config.seed,
    )
    model.compile(optimizers={name: gan_optimizer(config) for name in model.networks()})
    model.build_optimizers()
    if config.data.gan_crop_size:
        crop = config.data.gan_crop_size
        model.build_pools((None, crop, crop, 3))
    return model


def build_segmenter_trainer(config, segmenter, *, fla, source_indices=None):
    """SegmenterTrainer (supervised, or with FLA), compiled; call inside the strategy scope.

    FLA's `config.fla.weight_decay` is Keras's decoupled decay with
    `fla.weight_decay_mode="decoupled"`, or PyTorch SGD's L2 term added to the gradient
    (through momentum) with `"l2"`, as the official `scripts/train_fcn_adda.py` lines
    185-188. The two agree on the first update and differ from the second on.
    """
    optimizers = {"segmenter": keras.optimizers.Adam(config.seg.learning_rate)}
    disc = None
    layer = None
    l2 = 0.0
    if fla:
        decay_mode = config.fla.get("weight_decay_mode", "decoupled")
        if decay_mode not in ("decoupled", "l2"):
            raise ValueError(
                "config.fla.weight_decay_mode must be 'decoupled' or 'l2'. "
                f"Received: {decay_mode!r}"
            )
        if decay_mode == "l2":
            l2 = config.fla.weight_decay
        layer = feature_layer(config)
        channels = (
            config.num_classes if layer is None else segmenter.get_layer(layer).output.shape[-1]
        )
        disc = build_feature_discriminator(
            channels, hidden=tuple(config.fla.hidden), dropout_rate=config.fla.dropout_rate
        )
        optimizers = {
            "segmenter": _fla_optimizer(config, config.fla.learning_rate),
            "feature_discriminator": _fla_optimizer(config, config.fla.discriminator_learning_rate),
        }
        if l2:
            for optimizer in optimizers.values():
                optimizer.weight_decay = None  # the L2 term is in the gradient instead
    model = SegmenterTrainer(
        segmenter=segmenter,
        feature_discriminator=disc,
        feature_layer=layer,
        lambda_feature=config.fla.lambda_g,
        lambda_discriminator=config.fla.lambda_d,
        gate_threshold=config.fla.gate_threshold,
        gate_window=config.fla.gate_window,
        patience=config.fla.get("patience", 0),
        source_indices=source_indices,
        ignore_label=config.ignore_label,
        weight_decay=l2,
    )
    model.compile(optimizers=optimizers)
    model.build_optimizers()
    return model


def _fla_optimizer(config, learning_rate):
    if config.fla.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate, momentum=config.fla.momentum, weight_decay=config.fla.weight_decay
        )
    if config.fla.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate)
    raise ValueError(
        f"config.fla.optimizer must be 'sgd' or 'adam'. Received: {config.fla.optimizer!r}"
    )
