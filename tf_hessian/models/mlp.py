"""Small fully-connected classifiers (exact-Hessian tests, input-Hessian checks)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tf_hessian.models.layers import inputs


def build_mlp(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    hidden_units: Sequence[int] = (8,),
    activation: str = "relu",
    dtype: str | None = None,
    name: str = "mlp",
) -> keras.Model:
    """Flatten -> [Dense(h), activation]* -> Dense(num_classes) logits.

    Args:
      input_shape: Shape of one example, e.g. (8, 8, 1) or (20,).
      num_classes: Number of logits.
      hidden_units: Width of each hidden layer.
      activation: Hidden activation (``relu`` keeps the net piecewise linear).
      dtype: Layer dtype (``"float64"`` for exact checks); default floatx.

    Returns:
      A functional ``keras.Model`` [B, *input_shape] -> logits [B, num_classes].
    """
    x = image = inputs(input_shape, dtype)
    x = keras.layers.Flatten(dtype=dtype)(x)
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation=activation, dtype=dtype, name=f"dense_{i}")(x)
    logits = keras.layers.Dense(num_classes, dtype=dtype, name="logits")(x)
    return keras.Model(image, logits, name=name)
