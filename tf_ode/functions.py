"""ODE right-hand sides f(z, theta) as Keras 3 layers with explicit, evolvable weights.

Each function layer owns its initial weights and exposes the time-evolvable ones through
`evolved_weights()`; `call(z, weights=...)` evaluates f with weights supplied from outside
(theta(t) of ANODEV2) instead of its own variables (ANODE / Neural ODE). Weights are read
inside `call`, so checkpoint recomputation and the adjoint see them (spec section 6.5).
"""

import keras
import tensorflow as tf

NORMS = ("none", "group", "batch")


def _glorot_gain_sqrt2():
    # ANODE's init: Xavier-uniform with gain sqrt(2) (variance scale = gain^2).
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_avg", distribution="uniform")


def _build_norm(norm: str, channels: int, name: str, dtype):
    if norm == "none":
        return None
    if norm == "group":
        groups = max(g for g in (4, 2, 1) if channels % g == 0)
        return keras.layers.GroupNormalization(groups=groups, name=name, dtype=dtype)
    if norm == "batch":
        # PyTorch BatchNorm2d defaults (ANODE's code): momentum 0.1 (= Keras 0.9), eps 1e-5.
        return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name, dtype=dtype)
    raise ValueError(f"Unknown norm. Expected one of {NORMS}. Received: norm={norm!r}")


@keras.saving.register_keras_serializable(package="tf_ode")
class ConvODEFunc(keras.layers.Layer):
    """f(z, theta) = act(norm2(conv(act(norm1(conv(z, K1) + b1)), K2) + b2)).

    ANODE's ODE-block function (spec section 2.1: conv3x3-norm-act-conv3x3-norm-act, no
    internal shortcut; the residual comes from the ODE step). theta = (K1, K2), the two conv
    kernels of ANODEV2's Fig. 1, each [k, k, C, C]; biases and norm parameters are constant in
    time. Shapes: z [B, H, W, C] -> [B, H, W, C].

    Args:
      kernel_size: odd spatial kernel size.
      norm: "group" (default; GroupNorm is stateless, so recomputation and RK stages do not
        disturb it), "batch" (reproduces the official code, whose moving statistics are then
        updated once per function evaluation, including recomputations; spec 6.3) or "none".
      activation: "relu" (paper) or a smooth one such as "softplus" / "tanh".
      final_activation: apply the activation after the second norm (ANODE does).
    """

    def __init__(
        self, kernel_size=3, norm="group", activation="relu", final_activation=True, **kwargs
    ):
        super().__init__(**kwargs)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be a positive odd int. Received: kernel_size={kernel_size}"
            )
        if norm not in NORMS:
            raise ValueError(f"Unknown norm. Expected one of {NORMS}. Received: norm={norm!r}")
        self.kernel_size = kernel_size
        self.norm = norm
        self.activation = activation
        self.final_activation = final_activation
        self._act = keras.activations.get(activation)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"ConvODEFunc expects [B, H, W, C] with known C. Received: input_shape={input_shape}"
            )
        channels = int(input_shape[-1])
        k = self.kernel_size
        self.kernel_1 = self.add_weight(
            shape=(k, k, channels, channels), initializer=_glorot_gain_sqrt2(), name="kernel_1"
        )
        self.bias_1 = self.add_weight(shape=(channels,), initializer="zeros", name="bias_1")
        self.kernel_2 = self.add_weight(
            shape=(k, k, channels, channels), initializer=_glorot_gain_sqrt2(), name="kernel_2"
        )
        self.bias_2 = self.add_weight(shape=(channels,), initializer="zeros", name="bias_2")
        self.norm_1 = _build_norm(self.norm, channels, "norm_1", self.dtype_policy)
        self.norm_2 = _build_norm(self.norm, channels, "norm_2", self.dtype_policy)
        for norm_layer in (self.norm_1, self.norm_2):
            if norm_layer is not None:
                norm_layer.build(input_shape)

    def evolved_weights(self):
        """Time-evolvable weights {name: variable} (theta of ANODEV2)."""
        return {"kernel_1": self.kernel_1, "kernel_2": self.kernel_2}

    def call(self, z, weights=None, training=None):
        weights = weights or {}
        k1 = weights.get("kernel_1", self.kernel_1)
        k2 = weights.get("kernel_2", self.kernel_2)
        h = tf.nn.conv2d(z, tf.cast(k1, z.dtype), strides=1, padding="SAME") + tf.cast(
            self.bias_1, z.dtype
        )
        if self.norm_1 is not None:
            h = self.norm_1(h, training=training)
        h = self._act(h)
        h = tf.nn.conv2d(h, tf.cast(k2, z.dtype), strides=1, padding="SAME") + tf.cast(
            self.bias_2, z.dtype
        )
        if self.norm_2 is not None:
            h = self.norm_2(h, training=training)
        return self._act(h) if self.final_activation else h

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_size=self.kernel_size,
            norm=self.norm,
            activation=self.activation,
            final_activation=self.final_activation,
        )
        return config


@keras.saving.register_keras_serializable(package="tf_ode")
class DenseODEFunc(keras.layers.Layer):
    """f(z, theta) = act(z K + b): a dense field, for numerics tests and gradient checks.

    theta = K [D, D]. Shapes: z [B, D] -> [B, D]. With activation=None it is linear, so the
    coupled system dz/dt = z K(t), dK/dt = K A has a closed form (tests).
    """

    def __init__(
        self, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform", **kwargs
    ):
        super().__init__(**kwargs)
        self.activation = activation
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._act = keras.activations.get(activation)

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                f"DenseODEFunc expects [B, D] with known D. Received: input_shape={input_shape}"
            )
        dim = int(input_shape[-1])
        self.kernel = self.add_weight(
            shape=(dim, dim), initializer=self.kernel_initializer, name="kernel"
        )
        self.bias = (
            self.add_weight(shape=(dim,), initializer="zeros", name="bias")
            if self.use_bias
            else None
        )

    def evolved_weights(self):
        return {"kernel": self.kernel}

    def call(self, z, weights=None, training=None):
        kernel = (weights or {}).get("kernel", self.kernel)
        h = tf.matmul(z, tf.cast(kernel, z.dtype))
        if self.bias is not None:
            h = h + tf.cast(self.bias, z.dtype)
        return self._act(h)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
