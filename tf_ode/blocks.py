"""ODE blocks as Keras 3 layers: residual baseline, ODEBlock (ANODE) and CoupledODEBlock (ANODEV2).

Reference:
  ResidualBlock: z1 = z0 + f(z0, theta)                          (ANODEV2 Eq. 1a)
  ODEBlock:      z1 = z0 + int_0^1 f(z(t), theta) dt             (Eq. 1b; ANODE / Neural ODE)
  CoupledODEBlock: dz/dt = f(z, theta(t)), d theta/dt = q(theta, p), theta(0) = theta_0,
                   solved jointly as one nested state (z, theta)  (ANODEV2 section 3, Fig. 1)
"""

import keras
import tensorflow as tf

from tf_ode import dynamics as dynamics_lib
from tf_ode import integrate as odeint_lib


def _validate_solver(method, num_steps, gradient):
    # Reuse odeint's checks so a bad block config fails at construction, not at first call.
    odeint_lib.validate_options(method, num_steps, gradient)


class _SolverBlock(keras.layers.Layer):
    """Shared solver options and the function-evaluation counter of the ODE blocks."""

    def __init__(
        self,
        func,
        method="euler",
        num_steps=2,
        gradient="checkpoint",
        rtol=1e-3,
        atol=1e-6,
        max_num_steps=1000,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(func, dict):
            func = keras.saving.deserialize_keras_object(func)
        if not hasattr(func, "evolved_weights"):
            raise ValueError(
                f"func must be an ODE function layer with evolved_weights(). Received: {func!r}"
            )
        if odeint_lib.is_adaptive(method):
            num_steps = None  # adaptive methods choose their own steps
        _validate_solver(method, num_steps, gradient)
        self.func = func
        self.method = method
        self.num_steps = num_steps
        self.gradient = gradient
        self.rtol = rtol
        self.atol = atol
        self.max_num_steps = max_num_steps

    def _build_counter(self):
        # Counts every evaluation of f: forward, checkpoint recomputation and adjoint solves.
        # "only_first_replica" lets replicas update it inside MirroredStrategy's replica context.
        self.nfe = self.add_weight(
            shape=(),
            dtype="float32",
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
            name="nfe",
        )

    def _counted(self, fn):
        def counted(t, y):
            out = fn(t, y)
            self.nfe.assign_add(1.0)
            return out

        return counted

    def _solve(self, field, y0, times):
        return odeint_lib.odeint(
            self._counted(field),
            y0,
            times,
            method=self.method,
            num_steps=self.num_steps,
            gradient=self.gradient,
            rtol=self.rtol,
            atol=self.atol,
            max_num_steps=self.max_num_steps,
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            func=keras.saving.serialize_keras_object(self.func),
            method=self.method,
            num_steps=self.num_steps,
            gradient=self.gradient,
            rtol=self.rtol,
            atol=self.atol,
            max_num_steps=self.max_num_steps,
        )
        return config


@keras.saving.register_keras_serializable(package="tf_ode")
class ODEBlock(_SolverBlock):
    """z(1) of dz/dt = func(z; theta) on [0, 1], theta constant in time (ANODE / Neural ODE).

    Args:
      func: ODE function layer (e.g. `ConvODEFunc`), called as `func(z, training=...)`.
      method: one of `odeint`'s METHODS: "euler", "rk2", "rk4" (fixed step), "dopri5",
        "bosh3", "tsit5" (adaptive, ours) or "tfp_dopri5" (TFP; adjoint only).
      num_steps: Nt, fixed steps on [0, 1] (ANODE default 2); ignored (None) for adaptive methods.
      gradient: "checkpoint" (ANODE, default), "dto" or "adjoint".
      rtol, atol, max_num_steps: adaptive-method options.

    Shapes: [B, ...] -> [B, ...] (func's shape).
    """

    def build(self, input_shape):
        if not self.func.built:  # a deserialized func arrives already built
            self.func.build(input_shape)
        self._build_counter()

    def call(self, inputs, training=None):
        return self.trajectory(inputs, num_points=2, training=training)[-1]

    def trajectory(self, inputs, num_points=2, training=None):
        """Returns z at `num_points` equally spaced times on [0, 1]: [num_points, B, ...]."""
        times = tf.linspace(
            tf.constant(0.0, inputs.dtype), tf.constant(1.0, inputs.dtype), num_points
        )

        def field(t, z):
            return self.func(z, training=training)

        return self._solve(field, inputs, times)


@keras.saving.register_keras_serializable(package="tf_ode")
class CoupledODEBlock(_SolverBlock):
    """ANODEV2 block: z(1) of the coupled system dz/dt = f(z, theta(t)), d theta/dt = q(theta, p).

    theta(0) = theta_0 are `func.evolved_weights()` (the two conv kernels); p are the weights of
    one `WeightDynamics` layer per evolved kernel. The joint state {"z", "theta"} is stepped
    with one tableau, so the z-step at t_k uses theta(t_k). With q = 0 ("none") it reproduces
    `ODEBlock` exactly (theta + dt * 0 == theta).

    Args:
      func: ODE function layer with `evolved_weights()` and `call(z, weights=...)`.
      weight_dynamics: registered q name ("rda", "linear", "none", or user-registered).
      dynamics_config: kwargs for each q layer (e.g. {"components": ["diffusion"]}).
      method, num_steps, gradient, rtol, atol, max_num_steps: as in `ODEBlock`.
    """

    def __init__(self, func, weight_dynamics="rda", dynamics_config=None, **kwargs):
        super().__init__(func, **kwargs)
        self.weight_dynamics = weight_dynamics
        self.dynamics_config = dict(dynamics_config or {})
        # Validate the name now; one q layer per evolved weight is created in build().
        dynamics_lib.build_weight_dynamics(weight_dynamics, **self.dynamics_config)
        self.dynamics = {}

    def build(self, input_shape):
        if not self.func.built:  # a deserialized func arrives already built
            self.func.build(input_shape)
        for name, variable in self.func.evolved_weights().items():
            layer = dynamics_lib.build_weight_dynamics(
                self.weight_dynamics,
                name=f"q_{name}",
                dtype=self.dtype_policy,
                **self.dynamics_config,
            )
            layer.build(tuple(variable.shape))
            self.dynamics[name] = layer
        self._build_counter()

    def call(self, inputs, training=None):
        return self.trajectory(inputs, num_points=2, training=training)["z"][-1]

    def trajectory(self, inputs, num_points=2, training=None):
        """Returns {"z": [P, B, ...], "theta": {name: [P, *kernel.shape]}} at P equal times on [0, 1]."""
        dtype = inputs.dtype
        times = tf.linspace(tf.constant(0.0, dtype), tf.constant(1.0, dtype), num_points)
        theta0 = {name: tf.cast(v, dtype) for name, v in self.func.evolved_weights().items()}

        def field(t, state):
            theta = state["theta"]
            return {
                "z": self.func(state["z"], weights=theta, training=training),
                "theta": {name: self.dynamics[name](theta[name]) for name in theta},
            }

        return self._solve(field, {"z": inputs, "theta": theta0}, times)

    def get_config(self):
        config = super().get_config()
        config.update(weight_dynamics=self.weight_dynamics, dynamics_config=self.dynamics_config)
        return config


@keras.saving.register_keras_serializable(package="tf_ode")
class ResidualBlock(keras.layers.Layer):
    """Baseline residual block z + f(z, theta) (Eq. 1a; one Euler step of Eq. 1b)."""

    def __init__(self, func, **kwargs):
        super().__init__(**kwargs)
        if isinstance(func, dict):
            func = keras.saving.deserialize_keras_object(func)
        self.func = func

    def build(self, input_shape):
        if not self.func.built:  # a deserialized func arrives already built
            self.func.build(input_shape)

    def call(self, inputs, training=None):
        return inputs + self.func(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(func=keras.saving.serialize_keras_object(self.func))
        return config
