"""C2: the CIFAR-10 network of HessianFlow ``c2_model``.

Reference: Yao et al. 2018, network C2 (HessianFlow code). Valid 3x3 convs,
conv -> ReLU -> BN; 1,148,746 trainable parameters at the default widths
(dropout is defined but unused in the official code and omitted here).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tf_hessian.models.layers import batch_norm, inputs


def build_c2(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    filters: Sequence[int] = (64, 128),
    dense_units: Sequence[int] = (256, 256),
    dtype: str | None = None,
    name: str = "c2",
) -> keras.Model:
    """Builds C2.

    [Conv 3x3, ReLU, BN] x 2 -> MaxPool 2 (per stage, 2 stages) -> FC 256 -> FC 256 -> FC logits.

    Args:
      input_shape: (H, W, C); (32, 32, 3) for CIFAR.
      num_classes: Number of logits.
      filters: Conv filters per stage.
      dense_units: Hidden FC widths.
      dtype: Layer dtype; default floatx.

    Returns:
      A functional ``keras.Model`` [B, H, W, C] -> logits [B, num_classes].
    """
    x = image = inputs(input_shape, dtype)
    for stage, width in enumerate(filters):
        for j in range(2):
            x = keras.layers.Conv2D(
                width, 3, activation="relu", dtype=dtype, name=f"conv_{stage}_{j}"
            )(x)
            x = batch_norm(dtype, name=f"bn_{stage}_{j}")(x)
        x = keras.layers.MaxPooling2D(2, dtype=dtype)(x)
    x = keras.layers.Flatten(dtype=dtype)(x)
    for i, units in enumerate(dense_units):
        x = keras.layers.Dense(units, activation="relu", dtype=dtype, name=f"fc_{i}")(x)
    logits = keras.layers.Dense(num_classes, dtype=dtype, name="logits")(x)
    return keras.Model(image, logits, name=name)
