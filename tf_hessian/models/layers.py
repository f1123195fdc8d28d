"""Layers shared by the paper's models."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="tf_hessian")
class PaddedMaxPool2D(keras.layers.Layer):
    """PyTorch-style ``MaxPool2d(pool_size, strides, padding=p)`` on NHWC inputs.

    PyTorch pads ``p`` cells of -inf on every side; Keras ``padding="same"``
    pads only bottom/right and so shifts the windows (spec §2, porting notes).
    A large negative finite value is used instead of -inf so that gradients
    and second derivatives stay finite (a pad cell never wins a window).

    Args:
      pool_size: Window size.
      strides: Stride.
      padding: Cells padded on each side.
    """

    def __init__(self, pool_size: int = 3, strides: int = 2, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding
        self._pool = keras.layers.MaxPooling2D(
            pool_size, strides, padding="valid", dtype=self.dtype_policy
        )

    def call(self, inputs):
        p = self.padding
        padded = keras.ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=-1e9)
        return self._pool(padded)

    def compute_output_shape(self, input_shape):
        def out(size):
            return (
                None
                if size is None
                else (size + 2 * self.padding - self.pool_size) // self.strides + 1
            )

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), input_shape[3])

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
        }


def batch_norm(dtype, name=None):
    """BatchNorm with PyTorch's defaults (momentum 0.9 in Keras terms, eps 1e-5)."""
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=dtype, name=name)


def inputs(input_shape, dtype):
    """A functional ``keras.Input`` in the model's dtype."""
    return keras.Input(shape=tuple(input_shape), dtype=dtype or keras.config.floatx(), name="image")
