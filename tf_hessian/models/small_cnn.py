"""A tiny CNN with BatchNorm for exact (float64) Hessian tests and demos."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tf_hessian.models.layers import batch_norm, inputs


def build_small_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    filters: int = 4,
    dtype: str | None = None,
    name: str = "small_cnn",
) -> keras.Model:
    """Conv 3x3 -> ReLU -> BN -> MaxPool 2 -> Flatten -> Dense logits.

    Same layer order as C1 (conv, ReLU, BN, pool) at a size whose Hessian can be
    formed explicitly.

    Args:
      input_shape: (H, W, C) of one image.
      num_classes: Number of logits.
      filters: Conv filters.
      dtype: Layer dtype; default floatx.

    Returns:
      A functional ``keras.Model`` [B, H, W, C] -> logits [B, num_classes].
    """
    x = image = inputs(input_shape, dtype)
    x = keras.layers.Conv2D(
        filters, 3, padding="same", activation="relu", dtype=dtype, name="conv"
    )(x)
    x = batch_norm(dtype, name="bn")(x)
    x = keras.layers.MaxPooling2D(2, dtype=dtype)(x)
    x = keras.layers.Flatten(dtype=dtype)(x)
    logits = keras.layers.Dense(num_classes, dtype=dtype, name="logits")(x)
    return keras.Model(image, logits, name=name)
