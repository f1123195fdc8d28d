"""TFP's solvers: `tfp.math.ode.DormandPrince` ("tfp_dopri5") and `tfp.math.ode.BDF` ("bdf").

BDF (variable order 1-5, Newton iterations with a dense Jacobian from autodiff) is the stiff
solver: Van der Pol with mu = 1000 on [0, 3000] (`benchmarks/ode_stiff.py`). Its dense N x N
Jacobian makes it unusable for network-sized states (ANODEV2 spec section 6.4).

TFP's solver is adaptive (5th order, FSAL, 6 evaluations per step), with one RMS error norm
over the whole nested state, and its gradient is always the continuous adjoint
(re-anchored at every solution time). Always pass explicit solution times
(`ChosenBySolver` returns zeros under jit_compile) and a step bound (a NaN during the adjoint
can loop forever, TFP #1318). Reference: ANODEV2 spec section 6.4.
"""

from collections.abc import Callable

import tensorflow as tf
import tensorflow_probability as tfp


def dormand_prince_solve(
    func: Callable,
    y0,
    t,
    *,
    rtol: float,
    atol: float,
    max_num_steps: int | None,
    first_step_size: float | None,
    solver: str = "dormand_prince",
):
    """Solves with DormandPrince (or BDF) at the solution times `t` (t[0] = initial time).

    Args:
      func: `func(t, y)` returning dy/dt with the structure of `y`.
      y0: nested float tensors.
      t: 1-D float tensor [T] with static T >= 2.
      rtol: relative tolerance.
      atol: absolute tolerance.
      max_num_steps: maximum number of accepted+rejected steps (None = unbounded).
      first_step_size: initial step size (TFP restarts from it on every solve / interval);
        None lets BDF choose.
      solver: "dormand_prince" or "bdf".

    Returns:
      (ys, nfe, status): ys nested with leaves [T, ...]; nfe int32 scalar, forward function
      evaluations; status int32 scalar (0 = success). A failed solve raises
      `tf.errors.InvalidArgumentError` naming the status.
    """
    if max_num_steps is not None and max_num_steps < 1:
        raise ValueError(
            f"max_num_steps must be >= 1 or None. Received: max_num_steps={max_num_steps}"
        )
    solver_cls = {"dormand_prince": tfp.math.ode.DormandPrince, "bdf": tfp.math.ode.BDF}[solver]
    solver = solver_cls(
        rtol=rtol, atol=atol, first_step_size=first_step_size, max_num_steps=max_num_steps
    )
    results = solver.solve(
        ode_fn=lambda time, state: func(time, state),
        initial_time=t[0],
        initial_state=y0,
        solution_times=t,
    )
    status = results.diagnostics.status
    check = tf.debugging.assert_equal(
        status,
        tf.zeros_like(status),
        message=f"tfp.math.ode {solver_cls.__name__} failed (status != 0; e.g. max_num_steps "
        f"reached, max_num_steps={max_num_steps})",
    )
    with tf.control_dependencies([check] if check is not None else []):
        ys = tf.nest.map_structure(tf.identity, results.states)
    return ys, results.diagnostics.num_ode_fn_evaluations, status
