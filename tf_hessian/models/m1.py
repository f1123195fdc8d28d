"""M1: the MNIST network (LeNet-5 style).

Reference: Yao et al. 2018, network M1. The layer list is from memory (spec
§2, [UNVERIFIED]): Conv 5x5 (20) -> MaxPool 2 -> BN -> Conv 5x5 (50) ->
MaxPool 2 -> BN -> FC 500 -> FC 10, with ReLU after each conv and FC 500
(piecewise linear, as the saddle-free argument assumes).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tf_hessian.models.layers import batch_norm, inputs


def build_m1(
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
    *,
    filters: Sequence[int] = (20, 50),
    dense_units: int = 500,
    dtype: str | None = None,
    name: str = "m1",
) -> keras.Model:
    """Builds M1 (431,080 trainable parameters at the default widths on 28x28x1).

    Args:
      input_shape: (H, W, C); (28, 28, 1) for MNIST.
      num_classes: Number of logits.
      filters: Filters of the two valid 5x5 convs.
      dense_units: Hidden FC width.
      dtype: Layer dtype; default floatx.

    Returns:
      A functional ``keras.Model`` [B, H, W, C] -> logits [B, num_classes].
    """
    x = image = inputs(input_shape, dtype)
    for i, width in enumerate(filters):
        x = keras.layers.Conv2D(width, 5, activation="relu", dtype=dtype, name=f"conv_{i}")(x)
        x = keras.layers.MaxPooling2D(2, dtype=dtype)(x)
        x = batch_norm(dtype, name=f"bn_{i}")(x)
    x = keras.layers.Flatten(dtype=dtype)(x)
    x = keras.layers.Dense(dense_units, activation="relu", dtype=dtype, name="fc")(x)
    logits = keras.layers.Dense(num_classes, dtype=dtype, name="logits")(x)
    return keras.Model(image, logits, name=name)
