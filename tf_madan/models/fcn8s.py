"""FCN8s-VGG16 ("at-once" variant), the paper's segmenter F.

Reference: Long et al. 2015; MADAN §2.3 of the spec. VGG16 (config D, no
BN, ceil-mode pools) on a 100-px zero-padded input, fc6 7x7 valid, fc7 1x1,
score 1x1; zero-initialised skips on 0.01*pool4 and 1e-4*pool3; fixed
bilinear transposed convs x2, x2, x8 with crop offsets 5, 9 and 31.
"""

import keras

from tf_madan.models.layers import CropToReference, ScaleLayer, fixed_bilinear_upsampling

FEATURE_LAYER = "fc7_dropout"
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def build_fcn8s(
    num_classes=19,
    *,
    fc_width=4096,
    widths=None,
    dropout_rate=0.5,
    input_shape=(None, None, 3),
    name="fcn8s",
):
    """Builds FCN8s with a VGG16 backbone (random init; see `--init_checkpoint`).

    Args:
      num_classes: C (19 Cityscapes train IDs).
      fc_width: width of fc6/fc7 (4096 in the paper).
      widths: the 5 VGG block widths (default VGG16's (64, 128, 256, 512,
        512)); smaller values build tiny twins for converter tests.
      dropout_rate: SpatialDropout2D after fc6 and fc7.
      input_shape: per-example shape of ImageNet-normalised images; any H, W
        (the 100-px pad and the crops return the input size).
      name: model name.

    Returns:
      keras.Model images [B, H, W, 3] -> logits [B, H, W, C]. The layer
      `FEATURE_LAYER` holds fc7 ([B, h, w, fc_width]) for FLA.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2. Received: num_classes={num_classes}")
    widths = tuple(w for w, _ in VGG16_BLOCKS) if widths is None else tuple(int(w) for w in widths)
    if len(widths) != len(VGG16_BLOCKS) or min(widths) < 1 or fc_width < 1:
        raise ValueError(
            f"widths must be 5 positive ints and fc_width >= 1. Received: widths={widths}, "
            f"fc_width={fc_width}"
        )
    images = keras.Input(shape=input_shape, name="image")
    x = keras.layers.ZeroPadding2D(100, name="input_pad")(images)
    pools = []
    for b, (width, (_, repeats)) in enumerate(zip(widths, VGG16_BLOCKS), start=1):
        for r in range(1, repeats + 1):
            padding = "valid" if (b, r) == (1, 1) else "same"
            x = keras.layers.Conv2D(
                width, 3, padding=padding, activation="relu", name=f"conv{b}_{r}"
            )(x)
        # ceil_mode=True max-pooling == 'same' padding for a 2x2/2 window.
        x = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"pool{b}")(x)
        pools.append(x)
    pool3, pool4, _ = pools[2], pools[3], pools[4]
    x = keras.layers.Conv2D(fc_width, 7, activation="relu", name="fc6")(x)
    x = keras.layers.SpatialDropout2D(dropout_rate, name="fc6_dropout")(x)
    x = keras.layers.Conv2D(fc_width, 1, activation="relu", name="fc7")(x)
    x = keras.layers.SpatialDropout2D(dropout_rate, name=FEATURE_LAYER)(x)
    score_fr = keras.layers.Conv2D(num_classes, 1, name="score_fr")(x)
    upscore2 = fixed_bilinear_upsampling(num_classes, 4, 2, "upscore2")(score_fr)
    score_pool4 = keras.layers.Conv2D(
        num_classes, 1, kernel_initializer="zeros", name="score_pool4"
    )(ScaleLayer(0.01, name="scale_pool4")(pool4))
    score_pool4c = CropToReference(5, name="crop_pool4")([score_pool4, upscore2])
    fuse_pool4 = keras.layers.Add(name="fuse_pool4")([upscore2, score_pool4c])
    upscore_pool4 = fixed_bilinear_upsampling(num_classes, 4, 2, "upscore_pool4")(fuse_pool4)
    score_pool3 = keras.layers.Conv2D(
        num_classes, 1, kernel_initializer="zeros", name="score_pool3"
    )(ScaleLayer(1e-4, name="scale_pool3")(pool3))
    score_pool3c = CropToReference(9, name="crop_pool3")([score_pool3, upscore_pool4])
    fuse_pool3 = keras.layers.Add(name="fuse_pool3")([upscore_pool4, score_pool3c])
    upscore8 = fixed_bilinear_upsampling(num_classes, 16, 8, "upscore8")(fuse_pool3)
    logits = CropToReference(31, name="logits")([upscore8, images])
    return keras.Model(images, logits, name=name)
