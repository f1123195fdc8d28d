"""CIFAR ResNet of depth 6n+2 (HessianFlow ``models/resnet.py``, BasicBlock).

Reference: He et al. 2016, §4.2; Yao et al. 2018 use a residual network among
their five architectures (depth unverified; ResNet20 is PyHessian's choice).
Projection shortcuts (1x1 conv + BN) where the shape changes, He-normal conv
initialisation, global average pooling (AvgPool 8 on 32x32 inputs).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tf_hessian.models.layers import batch_norm, inputs


def _conv(filters, strides, dtype, name, kernel_size=3):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        dtype=dtype,
        name=name,
    )


def _basic_block(x, filters, strides, dtype, name):
    shortcut = x
    y = _conv(filters, strides, dtype, f"{name}_conv1")(x)
    y = batch_norm(dtype, f"{name}_bn1")(y)
    y = keras.layers.ReLU(dtype=dtype)(y)
    y = _conv(filters, 1, dtype, f"{name}_conv2")(y)
    y = batch_norm(dtype, f"{name}_bn2")(y)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, strides, dtype, f"{name}_proj", kernel_size=1)(x)
        shortcut = batch_norm(dtype, f"{name}_proj_bn")(shortcut)
    y = keras.layers.Add(dtype=dtype)([y, shortcut])
    return keras.layers.ReLU(dtype=dtype)(y)


def build_resnet(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    depth: int = 20,
    widths: Sequence[int] = (16, 32, 64),
    dtype: str | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds ResNet-``depth`` for CIFAR.

    Args:
      input_shape: (H, W, C).
      num_classes: Number of logits.
      depth: 6n + 2 (20, 32, 44, 56, ...; 8 for tests).
      widths: Filters of the three stages.
      dtype: Layer dtype; default floatx.

    Returns:
      A functional ``keras.Model`` [B, H, W, C] -> logits [B, num_classes].
    """
    if (depth - 2) % 6 != 0 or depth < 8:
        raise ValueError(
            f"depth must be 6n+2 with n >= 1 (8, 14, 20, ...). Received: depth={depth}."
        )
    blocks = (depth - 2) // 6
    x = image = inputs(input_shape, dtype)
    x = _conv(widths[0], 1, dtype, "stem_conv")(x)
    x = batch_norm(dtype, "stem_bn")(x)
    x = keras.layers.ReLU(dtype=dtype)(x)
    for stage, filters in enumerate(widths):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, strides, dtype, f"stage{stage}_block{block}")
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype)(x)
    logits = keras.layers.Dense(num_classes, dtype=dtype, name="logits")(x)
    return keras.Model(image, logits, name=name or f"resnet{depth}")
