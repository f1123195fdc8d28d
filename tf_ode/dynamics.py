"""Weight-evolution operators q(theta; p) for ANODEV2's evolution ODE d theta/dt = q(theta, p).

Each operator is a Keras layer acting on one kernel tensor; its own weights are p. Plug in a
new operator by subclassing `WeightDynamics` and `register_weight_dynamics("name", cls)`.

Reference: ANODEV2 (arXiv 1906.04596) abstract: "a coupled reaction-diffusion-advection
version"; spec section 1.4. The paper's exact stencils are unpublished here [U], so the RDA
operator below is our documented choice:

    q(theta) = sigma * Laplacian(theta) - div(u theta) + tanh(theta x_out W + b)

over the kernel's two spatial axes (grid spacing 1, zero-flux boundaries, conservative flux
form: 5-point diffusion, first-order upwind advection), with a bounded diffusivity
0 < sigma < sigma_max (forward heat equation only) and a bounded constant velocity
u = (u_h, u_w) per output channel, and a reaction from a 1x1 mix over output channels.
Without the reaction the ODE conserves the sum of every kernel slice, and an Euler step is
stable for dt * (4 sigma_max + 2 velocity_max) <= 1 (defaults: every dt <= 1).
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


def _face_difference(flux, axis):
    """Divergence along `axis` of face fluxes [.., n-1, ..] with zero flux through the boundary."""
    paddings = [[0, 0]] * flux.shape.rank
    paddings[axis] = [1, 1]
    padded = tf.pad(flux, paddings)  # boundary faces carry zero flux
    n = padded.shape[axis]
    upper = tf.gather(padded, tf.range(1, n), axis=axis)
    lower = tf.gather(padded, tf.range(0, n - 1), axis=axis)
    return upper - lower


def _faces(x, axis):
    """(x_left, x_right) on the interior faces along `axis`."""
    n = x.shape[axis]
    return tf.gather(x, tf.range(0, n - 1), axis=axis), tf.gather(x, tf.range(1, n), axis=axis)


def laplacian_2d(x):
    """5-point Laplacian over axes 1, 2 of x [N, H, W, C] in flux form, zero-flux boundary.

    Sum over (H, W) of the result is exactly 0 (the face fluxes telescope): diffusion only
    redistributes. Equals the symmetric-padding stencil.
    """
    out = tf.zeros_like(x)
    for axis in (1, 2):
        left, right = _faces(x, axis)
        out += _face_difference(right - left, axis)
    return out


def upwind_advection_2d(x, velocity_h, velocity_w):
    """-div(u x) over axes 0, 1 of x [H, W, ...] by first-order upwind fluxes, zero-flux boundary.

    Face flux F = max(u, 0) x_left + min(u, 0) x_right (u constant, broadcast against x[0, 0]);
    returns -(F_{i+1/2} - F_{i-1/2}). Conservative (sums to 0 over (H, W)) and monotone: with
    dt * (|u_h| + |u_w|) <= 1 an Euler step has non-negative coefficients.
    """
    out = tf.zeros_like(x)
    for axis, u in ((0, velocity_h), (1, velocity_w)):
        left, right = _faces(x, axis)
        # = max(u, 0) left + min(u, 0) right, written so that at u = 0 (the initial velocity)
        # the gradient w.r.t. u is the central one (|u|' = sign(0) = 0), not a one-sided one.
        flux = 0.5 * u * (left + right) + 0.5 * tf.abs(u) * (left - right)
        out -= _face_difference(flux, axis)
    return out


@keras.saving.register_keras_serializable(package="tf_ode")
class ReactionDiffusionAdvection(WeightDynamics):
    """q(theta) = sigma Lap(theta) - div(u theta) + tanh(theta x_out W + b) on conv kernels.

    theta [kh, kw, C_in, C_out]; diffusion and advection act on the kernel grid (kh, kw) with
    zero-flux boundaries, both in conservative flux form (5-point Laplacian; first-order upwind
    advection), so without the reaction term the sum of every kernel slice theta[:, :, i, o]
    is conserved exactly by the ODE and by any Runge-Kutta step. Parameters p, per output
    channel: `rho` [C_out] with sigma = sigma_max * sigmoid(rho + logit(initial_sigma /
    sigma_max)) in (0, sigma_max) (rho starts at 0, so weight decay pulls sigma towards
    initial_sigma); `velocity` [2, C_out] with u = velocity_max * tanh(velocity) in
    (-velocity_max, velocity_max); `reaction_kernel` [C_out, C_out] and `reaction_bias` [C_out].

    Stability bound: the linear part's matrix M has diagonal -(4 sigma + |u_h| + |u_w|) and
    non-negative off-diagonals summing (per column) to the same, so an Euler step I + dt M is
    non-negative and mass-preserving, hence stable (max principle), whenever
    dt * (4 sigma + |u_h| + |u_w|) <= 1. The defaults sigma_max = 0.125 and velocity_max = 0.25
    make that hold for every dt <= 1 (Nt >= 1 on [0, 1]) whatever the learned p. The reaction
    term is bounded (|tanh| <= 1).

    Args:
      components: subset of ("diffusion", "advection", "reaction") to include.
      initial_sigma: initial diffusivity, in (0, sigma_max).
      sigma_max: upper bound of the diffusivity (> 0).
      velocity_max: upper bound of |u_h| and |u_w| (> 0).
    """

    COMPONENTS = ("diffusion", "advection", "reaction")

    def __init__(
        self,
        components=COMPONENTS,
        initial_sigma=0.05,
        sigma_max=0.125,
        velocity_max=0.25,
        **kwargs,
    ):
        super().__init__(**kwargs)
        components = tuple(components)
        unknown = set(components) - set(self.COMPONENTS)
        if unknown or not components:
            raise ValueError(
                f"components must be a non-empty subset of {self.COMPONENTS}. Received: {components}"
            )
        if initial_sigma <= 0:
            raise ValueError(f"initial_sigma must be > 0. Received: initial_sigma={initial_sigma}")
        if sigma_max <= initial_sigma:
            raise ValueError(
                "sigma_max must exceed initial_sigma (sigma lies in (0, sigma_max)). "
                f"Received: sigma_max={sigma_max}, initial_sigma={initial_sigma}"
            )
        if velocity_max <= 0:
            raise ValueError(f"velocity_max must be > 0. Received: velocity_max={velocity_max}")
        self.components = components
        self.initial_sigma = float(initial_sigma)
        self.sigma_max = float(sigma_max)
        self.velocity_max = float(velocity_max)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "ReactionDiffusionAdvection acts on conv kernels [kh, kw, C_in, C_out]. "
                f"Received: shape={input_shape}"
            )
        channels = int(input_shape[-1])
        if "diffusion" in self.components:
            fraction = self.initial_sigma / self.sigma_max
            self._rho0 = float(np.log(fraction / (1.0 - fraction)))  # logit
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

    def sigma(self, dtype="float64"):
        """Diffusivity per output channel [C_out], in (0, sigma_max)."""
        rho = tf.cast(self.rho, dtype) + tf.constant(self._rho0, dtype)
        return self.sigma_max * tf.sigmoid(rho)

    def advection_velocity(self, dtype="float64"):
        """(u_h, u_w), each [C_out], in (-velocity_max, velocity_max)."""
        u = self.velocity_max * tf.tanh(tf.cast(self.velocity, dtype))
        return u[0], u[1]

    def call(self, theta):
        kh, kw, c_in, c_out = theta.shape
        dtype = theta.dtype
        total = tf.zeros_like(theta)
        if "diffusion" in self.components:
            # [kh, kw, C_in, C_out] -> [1, kh, kw, C_in * C_out]: the stencil on the kernel grid.
            grid = tf.reshape(theta, [1, kh, kw, c_in * c_out])
            total += self.sigma(dtype) * tf.reshape(laplacian_2d(grid), theta.shape)
        if "advection" in self.components:
            u_h, u_w = self.advection_velocity(dtype)
            total += upwind_advection_2d(theta, u_h, u_w)
        if "reaction" in self.components:
            mix = tf.tensordot(theta, tf.cast(self.reaction_kernel, dtype), axes=[[3], [0]])
            total += tf.tanh(mix + tf.cast(self.reaction_bias, dtype))
        return total

    def get_config(self):
        config = super().get_config()
        config.update(
            components=list(self.components),
            initial_sigma=self.initial_sigma,
            sigma_max=self.sigma_max,
            velocity_max=self.velocity_max,
        )
        return config


register_weight_dynamics("none", ZeroDynamics)
register_weight_dynamics("linear", LinearDynamics)
register_weight_dynamics("rda", ReactionDiffusionAdvection)
