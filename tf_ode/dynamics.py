"""Weight-evolution operators q(theta; p) for ANODEV2's evolution ODE d theta/dt = q(theta, p).

Each operator is a Keras layer acting on one kernel tensor; its own weights are p. Plug in a
new operator by subclassing `WeightDynamics` and `register_weight_dynamics("name", cls)`.

Reference: ANODEV2 (arXiv 1906.04596) abstract: "a coupled reaction-diffusion-advection
version"; spec section 1.4. The paper's exact stencils are unpublished here [U], so the RDA
operator below is our documented choice:

    q(theta) = sigma * Laplacian(theta) - div(u theta) + tanh(theta x_out W + b)

over the kernel's two spatial axes (grid spacing 1, symmetric = zero-flux boundary), with
sigma = softplus(rho + rho0) > 0 per output channel (forward heat equation only), a learned constant
velocity u = (u_h, u_w) per output channel (central differences; for constant u,
div(u theta) = u . grad theta), and a reaction from a 1x1 mix over output channels.
"""

import keras
import numpy as np
import tensorflow as tf

_REGISTRY = {}


def register_weight_dynamics(name: str, cls):
    """Registers a `WeightDynamics` subclass under `name` for `build_weight_dynamics`."""
    if not (isinstance(cls, type) and issubclass(cls, WeightDynamics)):
        raise ValueError(f"cls must subclass WeightDynamics. Received: cls={cls!r}")
    _REGISTRY[name] = cls
    return cls


def build_weight_dynamics(kind: str, **kwargs):
    """Builds a registered operator: "none", "linear", "rda" or a user-registered kind."""
    if kind not in _REGISTRY:
        raise ValueError(
            f"Unknown weight dynamics. Expected one of {sorted(_REGISTRY)}. Received: {kind!r}"
        )
    return _REGISTRY[kind](**kwargs)


class WeightDynamics(keras.layers.Layer):
    """Base class: `call(theta)` returns d theta/dt with theta's shape and dtype."""

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="tf_ode")
class ZeroDynamics(WeightDynamics):
    """q = 0: theta(t) = theta(0), i.e. ANODE / Neural ODE (ANODEV2 abstract: special case)."""

    def call(self, theta):
        return tf.zeros_like(theta)


@keras.saving.register_keras_serializable(package="tf_ode")
class LinearDynamics(WeightDynamics):
    """q(theta) = theta x_out A: a linear mix over the kernel's last (output) axis.

    theta [..., C_out], A [C_out, C_out]; closed form theta(t) = theta(0) expm(t A).
    """

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.mix = self.add_weight(
            shape=(channels, channels), initializer=self.initializer, name="mix"
        )

    def call(self, theta):
        return tf.tensordot(
            theta, tf.cast(self.mix, theta.dtype), axes=[[theta.shape.rank - 1], [0]]
        )

    def get_config(self):
        config = super().get_config()
        config.update(initializer=keras.initializers.serialize(self.initializer))
        return config


def laplacian_2d(x):
    """5-point Laplacian over axes 1, 2 of x [N, H, W, C] with zero-flux (symmetric) boundary."""
    xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    return xp[:, :-2, 1:-1] + xp[:, 2:, 1:-1] + xp[:, 1:-1, :-2] + xp[:, 1:-1, 2:] - 4.0 * x


def gradient_2d(x):
    """Central differences (d/dh, d/dw) over axes 1, 2 of x [N, H, W, C], symmetric boundary."""
    xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    d_h = 0.5 * (xp[:, 2:, 1:-1] - xp[:, :-2, 1:-1])
    d_w = 0.5 * (xp[:, 1:-1, 2:] - xp[:, 1:-1, :-2])
    return d_h, d_w


@keras.saving.register_keras_serializable(package="tf_ode")
class ReactionDiffusionAdvection(WeightDynamics):
    """q(theta) = sigma Lap(theta) - u . grad(theta) + tanh(theta x_out W + b) on conv kernels.

    theta [kh, kw, C_in, C_out]; the Laplacian and gradient act on (kh, kw). Parameters p:
    `rho` [C_out] (sigma = softplus(rho + softplus^-1(initial_sigma)), rho starts at 0),
    `velocity` [2, C_out], `reaction_kernel`
    [C_out, C_out], `reaction_bias` [C_out].

    Args:
      components: subset of ("diffusion", "advection", "reaction") to include.
      initial_sigma: initial diffusivity (> 0).
    """

    COMPONENTS = ("diffusion", "advection", "reaction")

    def __init__(self, components=COMPONENTS, initial_sigma=0.05, **kwargs):
        super().__init__(**kwargs)
        components = tuple(components)
        unknown = set(components) - set(self.COMPONENTS)
        if unknown or not components:
            raise ValueError(
                f"components must be a non-empty subset of {self.COMPONENTS}. Received: {components}"
            )
        if initial_sigma <= 0:
            raise ValueError(f"initial_sigma must be > 0. Received: initial_sigma={initial_sigma}")
        self.components = components
        self.initial_sigma = float(initial_sigma)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "ReactionDiffusionAdvection acts on conv kernels [kh, kw, C_in, C_out]. "
                f"Received: shape={input_shape}"
            )
        channels = int(input_shape[-1])
        if "diffusion" in self.components:
            # sigma = softplus(rho + rho0) with rho starting at 0: weight decay on rho then pulls
            # sigma towards initial_sigma, not towards softplus(0) = 0.69 (more diffusion).
            self._rho0 = float(np.log(np.expm1(self.initial_sigma)))  # softplus^-1
            self.rho = self.add_weight(shape=(channels,), initializer="zeros", name="rho")
        if "advection" in self.components:
            self.velocity = self.add_weight(
                shape=(2, channels), initializer="zeros", name="velocity"
            )
        if "reaction" in self.components:
            self.reaction_kernel = self.add_weight(
                shape=(channels, channels), initializer="zeros", name="reaction_kernel"
            )
            self.reaction_bias = self.add_weight(
                shape=(channels,), initializer="zeros", name="reaction_bias"
            )

    def call(self, theta):
        kh, kw, c_in, c_out = theta.shape
        dtype = theta.dtype
        # [kh, kw, C_in, C_out] -> [1, kh, kw, C_in * C_out]: spatial stencils on the kernel grid.
        grid = tf.reshape(theta, [1, kh, kw, c_in * c_out])
        total = tf.zeros_like(theta)
        if "diffusion" in self.components:
            sigma = tf.nn.softplus(tf.cast(self.rho, dtype) + tf.constant(self._rho0, dtype))
            total += sigma * tf.reshape(laplacian_2d(grid), theta.shape)
        if "advection" in self.components:
            d_h, d_w = gradient_2d(grid)
            velocity = tf.cast(self.velocity, dtype)
            total -= velocity[0] * tf.reshape(d_h, theta.shape) + velocity[1] * tf.reshape(
                d_w, theta.shape
            )
        if "reaction" in self.components:
            mix = tf.tensordot(theta, tf.cast(self.reaction_kernel, dtype), axes=[[3], [0]])
            total += tf.tanh(mix + tf.cast(self.reaction_bias, dtype))
        return total

    def get_config(self):
        config = super().get_config()
        config.update(components=list(self.components), initial_sigma=self.initial_sigma)
        return config


register_weight_dynamics("none", ZeroDynamics)
register_weight_dynamics("linear", LinearDynamics)
register_weight_dynamics("rda", ReactionDiffusionAdvection)
