"""Fixed-step continuous adjoint (optimise-then-discretise), for comparison with DTO.

Chen et al. (2018)-style reverse solve: the forward pass keeps only the states at the output
times; the backward pass integrates the augmented system backwards in time with the same
scheme and step count as the forward solve,

    dy/dt = f(t, y),   da/dt = -a^T df/dy,   dg/dt = -a^T df/dtheta,

from a(t_N) = dL/dy(t_N), g(t_N) = 0, re-anchoring y to the stored forward state and adding
dL/dy(t_i) to a at each output time (as torchdiffeq and TFP do). a(t_0) is dL/dy0 and
g(t_0) is dL/dtheta for every variable theta read inside f.

Reference: ANODEV2 spec section 1.3 (KKT conditions: lambda-dot = -(df/dz)^T lambda,
grad_theta J = int lambda^T df/dtheta dt) and section 1.5 (why this differs from the exact
discrete gradient by O(dt), and fails when z(t) cannot be reconstructed backwards).
"""

from collections.abc import Callable

import tensorflow as tf

from tf_ode import solvers

try:  # Keeps the forward solve off any outer tape in eager mode, as tf.recompute_grad does.
    from tensorflow.python.eager.record import stop_recording as _stop_recording
except ImportError:  # pragma: no cover - internal module moved
    import contextlib

    _stop_recording = contextlib.nullcontext


def fixed_step_adjoint_solve(func: Callable, y0, t, *, method: str, num_steps: int):
    """Forward fixed-step solve whose gradient is the reverse-time continuous adjoint.

    Args:
      func: `func(t, y)` returning dy/dt with the structure of `y`.
      y0: nested float tensors (already converted; see `odeint`).
      t: 1-D float tensor [T] of output times, static T >= 2.
      method: one of `solvers.FIXED_STEP_METHODS` (used forwards and backwards).
      num_steps: static steps per output interval (forwards and backwards).

    Returns:
      Nested tensors with y0's structure, each leaf [T, *leaf.shape].
    """
    structure = y0
    flat_y0 = tf.nest.flatten(y0)
    num_leaves = len(flat_y0)
    num_times = t.shape[0]
    t = tf.stop_gradient(t)

    def pack(leaves):
        return tf.nest.pack_sequence_as(structure, list(leaves))

    @tf.custom_gradient
    def solve(*leaves):
        with _stop_recording():
            y = pack(leaves)
            states = [tf.nest.flatten(y)]
            for i in range(num_times - 1):
                y = solvers.integrate_interval(func, y, t[i], t[i + 1], num_steps, method)
                states.append(tf.nest.flatten(y))
            # One output per leaf: [T, *leaf.shape].
            outputs = [tf.stack([s[j] for s in states], axis=0) for j in range(num_leaves)]

        def grad(*d_outputs, variables=None):
            all_variables = list(variables or [])
            # Only floating variables have a gradient; counters or seeds read by func get None.
            variables = [v for v in all_variables if v.dtype.is_floating]
            adj = [d[num_times - 1] for d in d_outputs]
            g_vars = [tf.zeros_like(v) for v in variables]
            for i in range(num_times - 1, 0, -1):
                y_i = [o[i] for o in outputs]
                aug = (y_i, adj, g_vars)
                aug = solvers.integrate_interval(
                    _augmented_field(func, structure, variables),
                    aug,
                    t[i],
                    t[i - 1],
                    num_steps,
                    method,
                )
                _, adj, g_vars = aug
                adj = [a + d[i - 1] for a, d in zip(adj, d_outputs)]
            if all_variables:
                it = iter(g_vars)
                return adj, [next(it) if v.dtype.is_floating else None for v in all_variables]
            return adj

        return outputs, grad

    outputs = solve(*flat_y0)
    return pack(outputs)


def _augmented_field(func, structure, variables):
    """Returns the field of the augmented state (y, a, g) as flat lists."""

    def field(t, aug):
        y_flat, adj, _ = aug
        with tf.GradientTape() as tape:
            tape.watch(y_flat)
            tape.watch(variables)
            f = tf.nest.flatten(func(t, tf.nest.pack_sequence_as(structure, y_flat)))
        vjp = tape.gradient(
            f,
            list(y_flat) + variables,
            output_gradients=adj,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        d_adj = [-v for v in vjp[: len(y_flat)]]
        d_g = [-tf.convert_to_tensor(v) for v in vjp[len(y_flat) :]]
        return (f, d_adj, d_g)

    return field
