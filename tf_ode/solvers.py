"""Fixed-step explicit Runge-Kutta schemes (Euler, RK2 midpoint, RK4) over nested states.

TFP ships only adaptive solvers (DormandPrince, BDF; TFP issue #1153), so the fixed-step
schemes used by ANODE / ANODEV2 are written here. States are arbitrary `tf.nest`
structures of floating tensors (e.g. a dict `{"z": activations, "theta": kernels}`), so the
coupled (z, theta) system of ANODEV2 is stepped with one tableau.

Reference: ANODEV2 spec section 1.6 (official ANODE code, `odesolver`):
  Euler: y <- y + dt f(y)
  RK2:   k1 = dt f(y); k2 = dt f(y + k1/2); y <- y + k2
  RK4:   k1 = dt f(y); k2 = dt f(y + k1/2); k3 = dt f(y + k2/2); k4 = dt f(y + k3);
         y <- y + k1/6 + k2/3 + k3/3 + k4/6

The loop over the `num_steps` steps is a Python loop: `num_steps` is a static, small
integer (ANODE defaults to 2), so the graph is unrolled. Unrolling keeps every stage
visible to XLA for fusion and makes the per-block recomputation of checkpointed DTO an exact
replay of the forward ops (bit-identical gradients); a `tf.while_loop` would accumulate the
same intermediates in TensorLists for backprop and save no memory.
"""

from collections.abc import Callable

import tensorflow as tf

FIXED_STEP_METHODS = ("euler", "rk2", "rk4")

# Number of function evaluations per step of each scheme.
STAGES = {"euler": 1, "rk2": 2, "rk4": 4}


def _combine(y, terms):
    """Returns y + sum_i c_i * k_i leaf-wise for terms [(c_i, k_i)] (c_i Python floats)."""

    def leaf(y_leaf, *k_leaves):
        out = y_leaf
        for (coef, _), k_leaf in zip(terms, k_leaves):
            out = out + k_leaf if coef == 1.0 else out + k_leaf * coef
        return out

    return tf.nest.map_structure(leaf, y, *[k for _, k in terms])


def _scale(k, dt):
    return tf.nest.map_structure(lambda leaf: leaf * tf.cast(dt, leaf.dtype), k)


def rk_step(func: Callable, t, y, dt, method: str):
    """Takes one explicit step of `method` from (t, y) with step `dt` (may be negative).

    Args:
      func: `func(t, y)` returning dy/dt with the structure of `y`.
      t: scalar float tensor, current time.
      y: nested structure of float tensors, current state.
      dt: scalar float tensor, step size.
      method: one of `FIXED_STEP_METHODS`.

    Returns:
      The state at `t + dt`, same structure/shapes/dtypes as `y`.
    """
    if method == "euler":
        k1 = _scale(func(t, y), dt)
        return _combine(y, [(1.0, k1)])
    if method == "rk2":
        k1 = _scale(func(t, y), dt)
        k2 = _scale(func(t + dt / 2, _combine(y, [(0.5, k1)])), dt)
        return _combine(y, [(1.0, k2)])
    if method == "rk4":
        k1 = _scale(func(t, y), dt)
        k2 = _scale(func(t + dt / 2, _combine(y, [(0.5, k1)])), dt)
        k3 = _scale(func(t + dt / 2, _combine(y, [(0.5, k2)])), dt)
        k4 = _scale(func(t + dt, _combine(y, [(1.0, k3)])), dt)
        return _combine(y, [(1.0 / 6.0, k1), (1.0 / 3.0, k2), (1.0 / 3.0, k3), (1.0 / 6.0, k4)])
    raise ValueError(
        f"Unknown fixed-step method. Expected one of {FIXED_STEP_METHODS}. Received: method={method!r}"
    )


def integrate_interval(func: Callable, y, t_start, t_end, num_steps: int, method: str):
    """Integrates from `t_start` to `t_end` with `num_steps` equal steps of `method`.

    Args:
      func: `func(t, y)` returning dy/dt with the structure of `y`.
      y: nested float tensors at `t_start`.
      t_start: scalar float tensor.
      t_end: scalar float tensor (may be smaller than `t_start` for reverse solves).
      num_steps: static Python int >= 1 (the loop is unrolled, see module docstring).
      method: one of `FIXED_STEP_METHODS`.

    Returns:
      The state at `t_end`.
    """
    dt = (t_end - t_start) / num_steps
    for step in range(num_steps):
        y = rk_step(func, t_start + dt * step, y, dt, method)
    return y


def num_evaluations(method: str, num_steps: int, num_intervals: int) -> int:
    """Number of `func` evaluations of a fixed-step forward solve."""
    return STAGES[method] * num_steps * num_intervals
