"""C1: the CIFAR-10 network of HessianFlow ``models/c1.py``.

Reference: Yao et al. 2018, network C1 (HessianFlow code, "used in
arxiv:1810.01021"; identity with the 2018 C1 is likely but unverified). The TF
CIFAR-10 tutorial network with BN in place of LRN, order conv -> ReLU -> BN ->
pool; 1,756,682 trainable parameters at the default widths.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tf_hessian.models.layers import PaddedMaxPool2D, batch_norm, inputs


def build_c1(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    filters: int = 64,
    dense_units: Sequence[int] = (384, 192),
    dtype: str | None = None,
    name: str = "c1",
) -> keras.Model:
    """Builds C1.

    [Conv 5x5 pad 2, ReLU, BN, MaxPool 3/2 pad 1] x 2 -> FC 384 -> FC 192 -> FC logits.

    Args:
      input_shape: (H, W, C); (32, 32, 3) for CIFAR.
      num_classes: Number of logits.
      filters: Conv filters (64 in the paper; smaller for tests).
      dense_units: Hidden FC widths.
      dtype: Layer dtype; default floatx.

    Returns:
      A functional ``keras.Model`` [B, H, W, C] -> logits [B, num_classes].
    """
    x = image = inputs(input_shape, dtype)
    for i in range(2):
        x = keras.layers.Conv2D(
            filters, 5, padding="same", activation="relu", dtype=dtype, name=f"conv_{i}"
        )(x)
        x = batch_norm(dtype, name=f"bn_{i}")(x)
        x = PaddedMaxPool2D(3, 2, 1, dtype=dtype, name=f"pool_{i}")(x)
    x = keras.layers.Flatten(dtype=dtype)(x)
    for i, units in enumerate(dense_units):
        x = keras.layers.Dense(units, activation="relu", dtype=dtype, name=f"fc_{i}")(x)
    logits = keras.layers.Dense(num_classes, dtype=dtype, name="logits")(x)
    return keras.Model(image, logits, name=name)
