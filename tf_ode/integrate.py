"""`odeint`: one solver API over nested states with selectable gradient modes.

Gradient modes (ANODE, arXiv 1902.10298; ANODEV2 spec section 1.5):
  * "dto": discretise-then-optimise; plain backprop through the fixed-step solver. The exact
    gradient of the discrete network; memory O(intervals * num_steps * stages).
  * "checkpoint": DTO with ANODE checkpointing. Only the state at each output time is kept;
    the backward pass re-runs that interval's forward under a tape (`tf.recompute_grad`).
    Memory O(intervals) + O(num_steps). Gradients equal "dto" (same ops replayed).
  * "adjoint": optimise-then-discretise (Chen et al., 2018). For "dopri5" TFP's continuous
    adjoint; for fixed-step methods a reverse-time solve of the augmented system
    (y, a, g) with the same scheme and step count (`adjoint.py`). Approximate: differs
    from the discrete gradient by O(dt) and needs the state to be reconstructible backwards.
"""

import dataclasses
from collections.abc import Callable

import tensorflow as tf

from tf_ode import adjoint as adjoint_lib
from tf_ode import solvers, tfp_solver

METHODS = solvers.FIXED_STEP_METHODS + ("dopri5",)
GRADIENTS = ("dto", "checkpoint", "adjoint")


@dataclasses.dataclass
class SolveInfo:
    """Diagnostics of one `odeint` call.

    Attributes:
      num_function_evaluations: forward evaluations of `func` (int for fixed-step methods,
        int32 scalar tensor for "dopri5"). Backward-pass evaluations (recomputation,
        adjoint) are not included; see `ODEBlock.nfe` for a counter that includes them.
      status: 0 on success (fixed-step methods always succeed).
    """

    num_function_evaluations: object
    status: object = 0


def validate_options(method, num_steps, gradient):
    if method not in METHODS:
        raise ValueError(f"Unknown method. Expected one of {METHODS}. Received: method={method!r}")
    if gradient not in GRADIENTS:
        raise ValueError(
            f"Unknown gradient mode. Expected one of {GRADIENTS}. Received: gradient={gradient!r}"
        )
    if method == "dopri5":
        if gradient != "adjoint":
            raise ValueError(
                "method='dopri5' is TFP's DormandPrince, whose only gradient is the continuous "
                "adjoint: use gradient='adjoint', or a fixed-step method for DTO. "
                f"Received: gradient={gradient!r}"
            )
        if num_steps is not None:
            raise ValueError(
                "num_steps applies only to fixed-step methods. "
                f"Received: method='dopri5', num_steps={num_steps}"
            )
    elif num_steps is not None and (
        not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1
    ):
        raise ValueError(
            f"num_steps must be a positive Python int or None. Received: num_steps={num_steps!r}"
        )


def _prepare(y0, t):
    y0 = tf.nest.map_structure(tf.convert_to_tensor, y0)
    leaves = tf.nest.flatten(y0)
    if not leaves:
        raise ValueError("y0 must contain at least one tensor. Received: an empty structure")
    for leaf in leaves:
        if not leaf.dtype.is_floating:
            raise ValueError(
                f"Every leaf of y0 must be floating point. Received: dtype={leaf.dtype.name}"
            )
    t = tf.convert_to_tensor(t)
    t = tf.cast(t, leaves[0].dtype) if t.dtype != leaves[0].dtype else t
    if t.shape.rank != 1 or t.shape[0] is None or t.shape[0] < 2:
        raise ValueError(
            f"t must be a 1-D tensor of static length >= 2 (first = initial time). Received: shape={t.shape}"
        )
    return y0, t


def _stack(states):
    return tf.nest.map_structure(lambda *xs: tf.stack(xs, axis=0), *states)


def odeint(
    func: Callable,
    y0,
    t,
    method: str = "rk4",
    num_steps: int | None = None,
    gradient: str = "dto",
    rtol: float = 1e-7,
    atol: float = 1e-9,
    *,
    max_num_steps: int | None = 10000,
    first_step_size: float = 1e-3,
    return_info: bool = False,
):
    """Solves dy/dt = func(t, y), y(t[0]) = y0 and returns y at the times `t`.

    Args:
      func: `func(t, y)` returning dy/dt with the structure of `y`. May read variables
        (Keras or tf.Variable); all gradient modes differentiate them.
      y0: a float tensor or nested structure (dict/tuple/list) of float tensors.
      t: 1-D tensor [T] of output times with static T >= 2, monotone; `t[0]` is the
        initial time. Cast to the dtype of y0's first leaf. Not differentiated.
      method: "euler", "rk2", "rk4" (fixed step, ours) or "dopri5" (TFP DormandPrince).
      num_steps: fixed steps per output interval (None = 1). Must be None for "dopri5".
      gradient: "dto", "checkpoint" or "adjoint" (see module docstring).
      rtol: relative tolerance of "dopri5".
      atol: absolute tolerance of "dopri5".
      max_num_steps: "dopri5" step bound (guards the adjoint against infinite loops).
      first_step_size: "dopri5" initial step size.
      return_info: also return a `SolveInfo`.

    Returns:
      `ys` with the structure of y0, each leaf of shape [T, *leaf.shape]; plus `SolveInfo`
      when `return_info`.

    Raises:
      ValueError: on an unknown method/gradient, bad num_steps, non-float y0 or bad t.
    """
    validate_options(method, num_steps, gradient)
    y0, t = _prepare(y0, t)
    num_intervals = t.shape[0] - 1
    if method == "dopri5":
        ys, nfe, status = tfp_solver.dormand_prince_solve(
            func,
            y0,
            t,
            rtol=rtol,
            atol=atol,
            max_num_steps=max_num_steps,
            first_step_size=first_step_size,
        )
        info = SolveInfo(num_function_evaluations=nfe, status=status)
        return (ys, info) if return_info else ys

    num_steps = 1 if num_steps is None else num_steps
    info = SolveInfo(
        num_function_evaluations=solvers.num_evaluations(method, num_steps, num_intervals)
    )
    if gradient == "adjoint":
        ys = adjoint_lib.fixed_step_adjoint_solve(func, y0, t, method=method, num_steps=num_steps)
        return (ys, info) if return_info else ys

    states = [y0]
    y = y0
    for i in range(num_intervals):
        t_start, t_end = t[i], t[i + 1]

        def interval(y_start, t_start=t_start, t_end=t_end):
            return solvers.integrate_interval(func, y_start, t_start, t_end, num_steps, method)

        if gradient == "checkpoint":
            y = _checkpointed(interval, y)
        else:
            y = interval(y)
        states.append(y)
    ys = _stack(states)
    return (ys, info) if return_info else ys


def _checkpointed(fn: Callable, y):
    """Runs `fn(y)` keeping only `y` for backprop; `fn` is re-run under a tape when needed.

    `tf.recompute_grad` takes flat tensor arguments, so the nest is flattened around it.
    Variables read inside `fn` (Keras weights read in `func`) receive gradients, and under
    XLA the recomputation is data-dependent on the incoming gradient so it cannot be
    hoisted into the forward pass.
    """
    structure = y
    flat = tf.nest.flatten(y)

    def flat_fn(*leaves):
        return tuple(tf.nest.flatten(fn(tf.nest.pack_sequence_as(structure, list(leaves)))))

    out = tf.recompute_grad(flat_fn)(*flat)
    return tf.nest.pack_sequence_as(structure, list(out))
