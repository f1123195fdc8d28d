"""float32 against float64: a float64 twin of a model, and the max-pool choices it flips.

A max-pool network's loss is piecewise smooth: each pooling window routes its
gradient (and every higher derivative) to the one input cell that holds its
maximum. Where two cells of a window lie closer than the forward pass's float32
rounding (about 1e-8 absolute on C1's CIFAR activations), float32 and float64 can
pick different cells; each such window then moves one gradient entry to its
neighbour. On C1's benchmark batch (128 real CIFAR-10 test images, seeded
initialisation) two of pool_1's 524,288 windows flip, which changes the gradient of
conv_0's kernel by 3.8e-3 relative; JAX (``lax.reduce_window``) and PyTorch
(``max_pool2d``) in float32 flip the same windows and give the same 3.8e-3 (see
docs/tf_hessian.md, "float32 precision"). The float32 arithmetic is not at fault:
at the same choices (``pinned_float64_twin``) the float32 gradient and HVP are
within 2e-5 of float64 per variable.

``float64_twin`` copies a model into float64; ``pinned_float64_twin`` also fixes
every max pool of the copy to the cells that the float32 model picked on a given
batch (a gather by ``tf.nn.max_pool_with_argmax`` indices, linear in its input,
so gradients and HVPs of the twin are those of the float32 model's piece of the
loss); ``max_pool_flips`` counts the windows where the two precisions disagree.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tf_hessian.models.layers import PaddedMaxPool2D

_POOLS = (keras.layers.MaxPooling2D, PaddedMaxPool2D)


def _as_float64(layer):
    config = layer.get_config()
    config["dtype"] = "float64"
    return layer.__class__.from_config(config)


def float64_twin(model: keras.Model) -> keras.Model:
    """A float64 copy of a functional or Sequential ``model`` with the same weights."""
    twin = keras.models.clone_model(model, clone_function=_as_float64)
    twin.set_weights([np.asarray(w, np.float64) for w in model.get_weights()])
    return twin


def _pool_geometry(layer):
    """``(pool_size, strides, explicit padding, tf padding)`` of a max-pool layer."""
    if isinstance(layer, PaddedMaxPool2D):
        return (layer.pool_size,) * 2, (layer.strides,) * 2, layer.padding, "VALID"
    if layer.data_format != "channels_last":
        raise ValueError(f"Only channels_last pools are supported. Received: {layer.name}.")
    return layer.pool_size, layer.strides, 0, layer.padding.upper()


def _padded(x, pad):
    if not pad:
        return x
    return tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=-1e9)


def _argmax(layer, x):
    """Flat indices (batch included) of the cell each window of ``layer`` picks on ``x``."""
    size, strides, pad, padding = _pool_geometry(layer)
    _, argmax = tf.nn.max_pool_with_argmax(
        _padded(x, pad), size, strides, padding, include_batch_in_index=True
    )
    return argmax


def _pool_inputs(model, x):
    """{pool layer name: its input on ``x``} of a functional model, in inference mode."""
    pools = [layer for layer in model.layers if isinstance(layer, _POOLS)]
    if not pools:
        return {}
    probe = keras.Model(model.inputs, [layer.input for layer in pools])
    values = probe(x, training=False)
    values = values if isinstance(values, (list, tuple)) else [values]
    return {layer.name: v for layer, v in zip(pools, values)}


class _PinnedMaxPool(keras.layers.Layer):
    """Max pooling that gathers fixed cells: the windows' choices are given, not recomputed."""

    def __init__(self, pool, indices, **kwargs):
        super().__init__(dtype="float64", name=pool.name, **kwargs)
        self._pool = pool
        self._indices = tf.constant(indices)

    def build(self, input_shape):
        self.built = True

    def call(self, x):
        _, _, pad, _ = _pool_geometry(self._pool)
        flat = tf.reshape(_padded(x, pad), [-1])
        return tf.gather(flat, self._indices)

    def compute_output_shape(self, input_shape):
        return self._pool.compute_output_shape(input_shape)


def pinned_float64_twin(model: keras.Model, x) -> keras.Model:
    """A float64 copy of ``model`` whose max pools pick the cells the float32 model picks on ``x``.

    Valid for the batch ``x`` only (the choices are per example and window).

    Args:
      model: A functional float32 model.
      x: One input batch.

    Returns:
      A float64 ``keras.Model``; its gradient and HVP on ``x`` are those of the
      float32 model's piece of the loss, computed in float64.
    """
    pools = {layer.name: layer for layer in model.layers if isinstance(layer, _POOLS)}
    choices = {name: _argmax(pools[name], v) for name, v in _pool_inputs(model, x).items()}

    def clone(layer):
        if layer.name in choices:
            return _PinnedMaxPool(_as_float64(pools[layer.name]), choices[layer.name])
        return _as_float64(layer)

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights([np.asarray(w, np.float64) for w in model.get_weights()])
    return twin


def max_pool_flips(model: keras.Model, x) -> dict[str, int]:
    """{pool layer: windows whose float32 and float64 choices differ} on the batch ``x``."""
    twin = float64_twin(model)
    ours = _pool_inputs(model, x)
    theirs = _pool_inputs(twin, tf.cast(x, tf.float64))
    flips = {}
    for name, value in ours.items():
        layer = model.get_layer(name)
        a = _argmax(layer, value)
        b = _argmax(layer, theirs[name])
        flips[name] = int(tf.reduce_sum(tf.cast(a != b, tf.int32)))
    return flips
