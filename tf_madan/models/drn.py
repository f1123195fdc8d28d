"""DRN-C-26 segmenter, the official code's network for dynamic semantic consistency.

Reference: Yu et al. 2017, "Dilated Residual Networks"; MADAN §2.4 of the
spec: conv1 7x7 s1, layers [1, 1, 2, 2, 2, 2, 1, 1] with channels (16, 32,
64, 128, 256, 512, 512, 512); layer2-4 stride 2 (output stride 8); layer5
dilation 2, layer6 dilation 4; layer7 (dilation 2) and layer8 (dilation 1)
without residuals; 1x1 head to C and bilinear x8 upsampling.
"""

import keras

from tf_madan.models.layers import BilinearUpsample

LAYERS = (1, 1, 2, 2, 2, 2, 1, 1)
CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)
FEATURE_LAYER = "layer8_1_relu"


def _bn(name):
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _conv(filters, stride, dilation, name):
    return keras.layers.Conv2D(
        filters,
        3,
        strides=stride,
        dilation_rate=dilation,
        padding="same",
        use_bias=False,
        name=name,
    )


def _conv_layers(x, filters, repeats, stride, dilation, name):
    """DRN-C's plain conv stages (layer1, layer2, layer7, layer8)."""
    for r in range(repeats):
        x = _conv(filters, stride if r == 0 else 1, dilation, f"{name}_{r}_conv")(x)
        x = _bn(f"{name}_{r}_bn")(x)
        x = keras.layers.ReLU(name=f"{name}_{r}_relu")(x)
    return x


def _basic_block(x, filters, stride, dilations, name):
    residual = x
    y = _conv(filters, stride, dilations[0], f"{name}_conv1")(x)
    y = _bn(f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(filters, 1, dilations[1], f"{name}_conv2")(y)
    y = _bn(f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        residual = keras.layers.Conv2D(
            filters, 1, strides=stride, use_bias=False, name=f"{name}_down"
        )(x)
        residual = _bn(f"{name}_down_bn")(residual)
    y = keras.layers.Add(name=f"{name}_add")([y, residual])
    return keras.layers.ReLU(name=f"{name}_relu")(y)


def _residual_layer(x, filters, repeats, stride, dilation, name):
    # DRN's _make_layer: the first block of a dilated stage enters at dilation/2.
    first = (1, 1) if dilation == 1 else (dilation // 2, dilation)
    x = _basic_block(x, filters, stride, first, f"{name}_0")
    for r in range(1, repeats):
        x = _basic_block(x, filters, 1, (dilation, dilation), f"{name}_{r}")
    return x


def build_drn_c26(
    num_classes=19, *, width_multiplier=1.0, input_shape=(None, None, 3), name="drn_c26"
):
    """Builds DRN-C-26 for segmentation (DRNSeg head).

    Args:
      num_classes: C.
      width_multiplier: scales every channel count (1.0 = paper); used for
        tiny test/CPU configurations.
      input_shape: per-example shape of ImageNet-normalised images; H, W
        multiples of 8 when given.
      name: model name.

    Returns:
      keras.Model images [B, H, W, 3] -> logits [B, H, W, C].
    """
    if num_classes < 2 or width_multiplier <= 0:
        raise ValueError(
            "num_classes must be >= 2 and width_multiplier > 0. Received: "
            f"num_classes={num_classes}, width_multiplier={width_multiplier}"
        )
    for size in input_shape[:2]:
        if size is not None and size % 8:
            raise ValueError(
                "Input height and width must be multiples of 8. "
                f"Received: input_shape={input_shape}"
            )
    channels = [max(1, int(round(c * width_multiplier))) for c in CHANNELS]
    images = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Conv2D(channels[0], 7, padding="same", use_bias=False, name="conv1")(images)
    x = _bn("conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    x = _conv_layers(x, channels[0], LAYERS[0], 1, 1, "layer1")
    x = _conv_layers(x, channels[1], LAYERS[1], 2, 1, "layer2")
    x = _residual_layer(x, channels[2], LAYERS[2], 2, 1, "layer3")
    x = _residual_layer(x, channels[3], LAYERS[3], 2, 1, "layer4")
    x = _residual_layer(x, channels[4], LAYERS[4], 1, 2, "layer5")
    x = _residual_layer(x, channels[5], LAYERS[5], 1, 4, "layer6")
    x = _conv_layers(x, channels[6], LAYERS[6], 1, 2, "layer7")
    x = _conv_layers(x, channels[7], LAYERS[7], 1, 1, "layer8")
    score = keras.layers.Conv2D(num_classes, 1, name="seg")(x)
    logits = BilinearUpsample(8, align_corners=True, name="logits")(score)
    return keras.Model(images, logits, name=name)
