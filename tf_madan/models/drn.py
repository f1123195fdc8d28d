"""DRN-C-26 segmenter, the official code's network for dynamic semantic consistency.

Reference: Yu et al. 2017, "Dilated Residual Networks"; fyu/drn `drn.py`
`drn_c_26` = `DRN(BasicBlock, [1, 1, 2, 2, 2, 2, 1, 1], arch="C")`, wrapped
as in CyCADA's `drn26` (jhoffman/cycada_release `cycada/models/drn.py`,
`out_map=True`): the 1x1 `fc` conv to C classes on the stride-8 map, then
bilinear upsampling (align_corners=True) to the input size. MADAN §2.4 of
the spec.

Layout (channels (16, 32, 64, 128, 256, 512, 512, 512)):
  conv1 7x7 s1 -> BN -> ReLU;
  layer1, layer2: BasicBlocks (layer2 stride 2, 1x1 downsample);
  layer3, layer4: 2 BasicBlocks each, stride 2;
  layer5: 2 BasicBlocks, dilations (2, 2), (2, 2) (`new_level=False`);
  layer6: 2 BasicBlocks, dilations (4, 4), (4, 4);
  layer7: 1 BasicBlock, dilation (2, 2), no residual;
  layer8: 1 BasicBlock, dilation (1, 1), no residual.
Layer names follow the PyTorch state-dict keys (`layer5.0.conv1` ->
`layer5_0_conv1`) so that `tf_madan.convert_lib` maps them one to one.
"""

import keras

from tf_madan.models.layers import ResizeToReference

LAYERS = (1, 1, 2, 2, 2, 2, 1, 1)
CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)
# (stride, dilation, residual) of layer1..layer8 in `DRN.__init__` (arch "C");
# every `_make_layer` call after layer4 passes new_level=False, so the first
# block of a dilated layer uses (dilation, dilation).
LAYER_SETTINGS = (
    (1, 1, True),
    (2, 1, True),
    (2, 1, True),
    (2, 1, True),
    (1, 2, True),
    (1, 4, True),
    (1, 2, False),
    (1, 1, False),
)
FEATURE_LAYER = "layer8_0_relu"


def _bn(name):
    # nn.BatchNorm2d: momentum 0.1 (Keras 0.9), eps 1e-5.
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _conv3x3(x, filters, stride, dilation, name):
    if stride == 1:
        # padding=dilation on both sides == 'same' for a stride-1 3x3 conv.
        return keras.layers.Conv2D(
            filters, 3, dilation_rate=dilation, padding="same", use_bias=False, name=name
        )(x)
    # A strided 'same' conv pads (0, 1) on even sizes; PyTorch pads (1, 1).
    x = keras.layers.ZeroPadding2D(dilation, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(
        filters, 3, strides=stride, dilation_rate=dilation, use_bias=False, name=name
    )(x)


def _basic_block(x, filters, stride, dilation, residual, name):
    """fyu/drn `BasicBlock(inplanes, planes, stride, downsample, dilation, residual)`."""
    shortcut = x
    y = _conv3x3(x, filters, stride, dilation[0], f"{name}_conv1")
    y = _bn(f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv3x3(y, filters, 1, dilation[1], f"{name}_conv2")
    y = _bn(f"{name}_bn2")(y)
    if residual:
        if stride != 1 or x.shape[-1] != filters:
            shortcut = keras.layers.Conv2D(
                filters, 1, strides=stride, use_bias=False, name=f"{name}_downsample_conv"
            )(x)
            shortcut = _bn(f"{name}_downsample_bn")(shortcut)
        y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    elif stride != 1 or x.shape[-1] != filters:
        # The official code still builds (unused) downsample weights here; DRN-C-26
        # never hits this case (layer7/8 keep 512 channels at stride 1).
        raise ValueError(f"{name}: a non-residual block cannot change shape.")
    return keras.layers.ReLU(name=f"{name}_relu")(y)


def _make_layer(x, filters, blocks, stride, dilation, residual, name):
    """fyu/drn `DRN._make_layer(..., new_level=False)` for dilated layers."""
    x = _basic_block(x, filters, stride, (dilation, dilation), residual, f"{name}_0")
    for b in range(1, blocks):
        x = _basic_block(x, filters, 1, (dilation, dilation), residual, f"{name}_{b}")
    return x


def build_drn_c26(
    num_classes=19,
    *,
    width_multiplier=1.0,
    channels=None,
    input_shape=(None, None, 3),
    name="drn_c26",
):
    """Builds DRN-C-26 with CyCADA's segmentation head.

    Args:
      num_classes: C.
      width_multiplier: scales every channel count (1.0 = paper); used for
        tiny test/CPU configurations. Ignored when `channels` is given.
      channels: 8 explicit channel counts (e.g. a tiny twin of the official
        network for converter tests).
      input_shape: per-example shape of ImageNet-normalised images. Any H, W:
        the head resizes the stride-8 score map to the input size, as CyCADA's
        `F.upsample(x, (h, w), align_corners=True)` does.
      name: model name.

    Returns:
      keras.Model images [B, H, W, 3] -> logits [B, H, W, C]. The layer
      `FEATURE_LAYER` holds layer8's output ([B, ceil(H/8), ceil(W/8), 512]).

    Raises:
      ValueError: on a bad `num_classes`, `width_multiplier` or `channels`.
    """
    if num_classes < 2 or width_multiplier <= 0:
        raise ValueError(
            "num_classes must be >= 2 and width_multiplier > 0. Received: "
            f"num_classes={num_classes}, width_multiplier={width_multiplier}"
        )
    if channels is None:
        channels = [max(1, int(round(c * width_multiplier))) for c in CHANNELS]
    channels = [int(c) for c in channels]
    if len(channels) != len(CHANNELS) or min(channels) < 1 or channels[6] != channels[7]:
        raise ValueError(
            "channels must be 8 positive ints with channels[6] == channels[7] "
            f"(layer8 has no residual). Received: channels={channels}"
        )
    if channels[5] != channels[6]:
        raise ValueError(
            f"channels[5] must equal channels[6] (layer7 has no residual). Received: {channels}"
        )
    images = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Conv2D(channels[0], 7, padding="same", use_bias=False, name="conv1")(images)
    x = _bn("bn1")(x)
    x = keras.layers.ReLU(name="relu")(x)
    for i, (stride, dilation, residual) in enumerate(LAYER_SETTINGS):
        x = _make_layer(x, channels[i], LAYERS[i], stride, dilation, residual, f"layer{i + 1}")
    # [B, h, w, C] at output stride 8 -> [B, H, W, C].
    score = keras.layers.Conv2D(num_classes, 1, name="fc")(x)
    logits = ResizeToReference(align_corners=True, name="logits")([score, images])
    return keras.Model(images, logits, name=name)
