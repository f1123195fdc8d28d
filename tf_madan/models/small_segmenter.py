"""A small fully-convolutional segmenter for CPU-sized MADAN runs.

The paper's segmenter is FCN8s-VGG16 (134M parameters); this network keeps
its interface (image -> per-pixel class logits at input resolution, plus a
named feature layer for feature-level alignment) at a size that trains on
two CPU cores in minutes.
"""

import keras

from tf_madan.models.layers import BilinearUpsample, CropToInput, PadToMultiple

FEATURE_LAYER = "features"
SCORE_LAYER = "score"


def _conv_block(x, filters, *, strides=1, dilation_rate=1, norm, name):
    x = keras.layers.Conv2D(
        filters,
        3,
        strides=strides,
        dilation_rate=dilation_rate,
        padding="same",
        use_bias=norm == "none",
        name=f"{name}_conv",
    )(x)
    if norm == "batch":
        x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_small_segmenter(
    num_classes=19,
    *,
    filters=16,
    norm="batch",
    input_shape=(None, None, 3),
    name="small_segmenter",
):
    """Builds a small encoder/decoder segmenter (output stride 4, skip at 1).

    Layout: conv(f) -> conv s2 (2f) -> conv s2 (4f) -> dilated conv (4f,
    "features") -> 1x1 score (C) -> bilinear x4, plus a 1x1 score of the
    stride-1 features added at full resolution (FCN-style skip).

    Args:
      num_classes: number of output classes C.
      filters: base width f.
      norm: "batch" (BatchNormalization, momentum 0.9, eps 1e-5) or "none".
      input_shape: per-example input shape; any H, W >= 4 (sizes that are
        not multiples of 4 are reflect-padded inside and cropped back).
      name: model name.

    Returns:
      keras.Model mapping images float32 [B, H, W, 3] (normalised by the
      caller) to logits float32 [B, H, W, C]. The layer named
      `FEATURE_LAYER` ([B, H/4, W/4, 4f]) is the feature map for FLA.

    Raises:
      ValueError: on a bad `num_classes`, `filters`, `norm` or input size.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2. Received: num_classes={num_classes}")
    if filters < 1:
        raise ValueError(f"filters must be >= 1. Received: filters={filters}")
    if norm not in ("batch", "none"):
        raise ValueError(f"norm must be 'batch' or 'none'. Received: norm={norm!r}")
    for size in input_shape[:2]:
        if size is not None and size < 4:
            raise ValueError(
                f"Input height and width must be >= 4. Received: input_shape={input_shape}"
            )
    images = keras.Input(shape=input_shape, name="image")
    # Other sizes than multiples of 4 (the output stride) are reflect-padded and
    # cropped back at the end (issue 12); the pad is empty on multiples of 4.
    padded = PadToMultiple(4, name="pad_to_multiple")(images)
    # [B, H, W, f]
    stem = _conv_block(padded, filters, norm=norm, name="stem")
    # [B, H/2, W/2, 2f]
    x = _conv_block(stem, 2 * filters, strides=2, norm=norm, name="down1")
    # [B, H/4, W/4, 4f]
    x = _conv_block(x, 4 * filters, strides=2, norm=norm, name="down2")
    x = _conv_block(x, 4 * filters, dilation_rate=2, norm=norm, name="context")
    features = keras.layers.Conv2D(
        4 * filters, 3, padding="same", activation="relu", name=FEATURE_LAYER
    )(x)
    # [B, H/4, W/4, C] -> [B, H, W, C]
    score = keras.layers.Conv2D(num_classes, 1, name=SCORE_LAYER)(features)
    score = BilinearUpsample(4, name="upsample")(score)
    skip = keras.layers.Conv2D(num_classes, 1, kernel_initializer="zeros", name="score_stem")(stem)
    fused = keras.layers.Add(name="fuse")([score, skip])
    logits = CropToInput(name="logits")([fused, images])
    return keras.Model(images, logits, name=name)
