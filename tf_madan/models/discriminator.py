"""Discriminators: 70x70 PatchGAN (pixel level) and the FLA discriminator.

Reference: Isola et al. 2017 (PatchGAN, n_layers=3); MADAN §2.2 of the spec;
CyCADA/ADDA's 1x1-conv discriminator on score maps or fc7 features.
"""

import keras

from tf_madan.models.layers import gan_initializer, instance_norm


def build_patchgan_discriminator(
    *, filters=64, num_layers=3, input_shape=(None, None, 3), name="discriminator"
):
    """Builds the PatchGAN discriminator (no sigmoid; logits per patch).

    C64 s2 (no norm) -> C128 s2 -> C256 s2 -> C512 s1 -> C1 s1, kernel 4,
    zero pad 1, LeakyReLU 0.2, instance norm. Receptive field 70x70 for
    num_layers=3.

    Args:
      filters: ndf (64 in the paper).
      num_layers: number of stride-2 layers (3 in the paper).
      input_shape: per-example image shape.
      name: model name.

    Returns:
      keras.Model images [B, H, W, 3] -> patch logits [B, h, w, 1]
      (h = H / 2**num_layers - 2 for the paper's layout).
    """
    if filters < 1 or num_layers < 1:
        raise ValueError(
            "filters and num_layers must be >= 1. "
            f"Received: filters={filters}, num_layers={num_layers}"
        )
    images = keras.Input(shape=input_shape, name="image")
    x = images
    width = filters
    for i in range(num_layers + 1):
        stride = 2 if i < num_layers else 1
        x = keras.layers.ZeroPadding2D(1, name=f"layer{i}_pad")(x)
        x = keras.layers.Conv2D(
            width,
            4,
            strides=stride,
            use_bias=True,
            kernel_initializer=gan_initializer(),
            name=f"layer{i}_conv",
        )(x)
        if i > 0:
            x = instance_norm(f"layer{i}_norm")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"layer{i}_lrelu")(x)
        width = min(2 * width, 8 * filters)
    x = keras.layers.ZeroPadding2D(1, name="head_pad")(x)
    logits = keras.layers.Conv2D(1, 4, kernel_initializer=gan_initializer(), name="head_conv")(x)
    return keras.Model(images, logits, name=name)


def build_feature_discriminator(
    input_channels, *, hidden=(1024, 512), dropout_rate=0.5, name="feature_discriminator"
):
    """Builds the FLA domain discriminator of 1x1 convolutions.

    fc7 input: 4096 -> 1024 -> SpatialDropout -> ReLU -> 512 -> SpatialDropout
    -> ReLU -> 2; score input: 19 -> 512 -> 256 -> 2.

    Args:
      input_channels: channels of the aligned feature map (4096 or C).
      hidden: widths of the hidden 1x1 convolutions.
      dropout_rate: SpatialDropout2D rate after each hidden layer (0 = off).
      name: model name.

    Returns:
      keras.Model features [B, h, w, input_channels] -> domain logits
      [B, h, w, 2] (index 1 = source/adapted, 0 = target).
    """
    if input_channels < 1 or not hidden:
        raise ValueError(
            f"input_channels must be >= 1 and hidden non-empty. Received: "
            f"input_channels={input_channels}, hidden={hidden}"
        )
    features = keras.Input(shape=(None, None, input_channels), name="features")
    x = features
    for i, width in enumerate(hidden):
        x = keras.layers.Conv2D(width, 1, name=f"hidden{i}")(x)
        if dropout_rate > 0:
            x = keras.layers.SpatialDropout2D(dropout_rate, name=f"hidden{i}_dropout")(x)
        x = keras.layers.ReLU(name=f"hidden{i}_relu")(x)
    logits = keras.layers.Conv2D(2, 1, name="domain_logits")(x)
    return keras.Model(features, logits, name=name)
