"""TFP's solvers: `tfp.math.ode.DormandPrince` ("tfp_dopri5") and `tfp.math.ode.BDF` ("bdf").

BDF (variable order 1-5, Newton iterations with a dense Jacobian from autodiff) is the stiff
solver: Van der Pol with mu = 1000 on [0, 3000] (`benchmarks/ode_stiff.py`). Its dense N x N
Jacobian makes it unusable for network-sized states (ANODEV2 spec section 6.4).

BDF's gradient is ours (`gradient="sensitivity"`, `bdf_gradients.py`): forward sensitivities
solved with BDF, stable on stiff problems. TFP's own adjoint (`gradient="adjoint"`;
`tensorflow_probability/python/math/ode/base.py`, `augmented_ode_fn`) integrates the state
itself backwards from the final time together with the adjoint (Chen et al., 2018). On a stiff,
dissipative problem, the kind BDF exists for, the backward state solve is unstable (modes
exp(+1000 t) backwards for an eigenvalue -1000): on dy/dt = A y with eigenvalues -1 and -1000 at
rtol 1e-9 its dL/dy0 was 0.6146 per entry against the exact 0.5518. Rather than return that, a
gradient through a BDF solve with gradient="adjoint" raises (`BDF_GRADIENT_ERROR`).
Called eagerly, the BDF solve is traced into a `tf.function` per call (eager, its loop runs op
by op: 20.6 s for a 2-state stiff solve of 192 evaluations), so func's Python side effects
run at tracing.

TFP's DormandPrince is adaptive (5th order, FSAL, 6 evaluations per step), with one RMS error norm
over the whole nested state, and its gradient is always the continuous adjoint
(re-anchored at every solution time). Always pass explicit solution times
(`ChosenBySolver` returns zeros under jit_compile) and a step bound (a NaN during the adjoint
can loop forever, TFP #1318). Reference: ANODEV2 spec section 6.4.
"""

from collections.abc import Callable

import tensorflow as tf
import tensorflow_probability as tfp

from tf_ode import bdf_gradients

BDF_GRADIENT_ERROR = (
    "odeint(method='bdf', gradient='adjoint') has no correct gradient: TFP's BDF adjoint "
    "integrates the state backwards in time, which is unstable on stiff problems (dL/dy0 11% off "
    "on a linear system with eigenvalues -1 and -1000). Use gradient='sensitivity' (forward "
    "sensitivities, exact to the tolerance on stiff problems; small states only), or solve "
    "outside the GradientTape."
)


def _refusing_gradient(solve, y0):
    """`solve(y0)` -> (ys, nfe, status), with a gradient that raises BDF_GRADIENT_ERROR."""
    holder = {}

    @tf.custom_gradient
    def run(*leaves):
        ys, holder["nfe"], holder["status"] = solve(tf.nest.pack_sequence_as(y0, list(leaves)))

        def grad(*d_ys, variables=None):
            raise ValueError(BDF_GRADIENT_ERROR)

        return tf.nest.flatten(ys), grad

    ys = tf.nest.pack_sequence_as(y0, list(run(*tf.nest.flatten(y0))))
    return ys, holder["nfe"], holder["status"]


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
    gradient: str = "adjoint",
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
      gradient: "bdf" only: "sensitivity" (forward sensitivities, `bdf_gradients.py`) or
        "adjoint" (TFP's adjoint, refused).

    Returns:
      (ys, nfe, status): ys nested with leaves [T, ...]; nfe int32 scalar, forward function
      evaluations; status int32 scalar (0 = success). A failed solve raises
      `tf.errors.InvalidArgumentError` naming the status. For "bdf" with gradient="adjoint",
      asking a tape for a gradient through ys raises ValueError(BDF_GRADIENT_ERROR).
    """
    func, t = _forward_in_time(func, t)
    if solver == "bdf" and gradient == "sensitivity":
        return bdf_gradients.sensitivity_gradient(
            lambda y: _solve(func, y, t, rtol, atol, max_num_steps, first_step_size, solver),
            func,
            y0,
            t,
            rtol=rtol,
            atol=atol,
            max_num_steps=max_num_steps,
            first_step_size=first_step_size,
        )
    if solver == "bdf":
        return _refusing_gradient(
            lambda y: _solve(func, y, t, rtol, atol, max_num_steps, first_step_size, solver), y0
        )
    return _solve(func, y0, t, rtol, atol, max_num_steps, first_step_size, solver)


def _forward_in_time(func, t):
    """(func, t) of the same solve in increasing time.

    TFP's solvers integrate forward only (given a decreasing `solution_times` they return wrong
    states without an error): for a decreasing t the solve runs in s = -t, where
    dy/ds = -func(-s, y). `direction` is +1 or -1 as a tensor, so t may be traced.
    """
    direction = tf.sign(t[-1] - t[0])

    def forward_func(time, y):
        return tf.nest.map_structure(
            lambda d: tf.cast(direction, d.dtype) * d, func(direction * time, y)
        )

    return forward_func, direction * t


def _solve(func, y0, t, rtol, atol, max_num_steps, first_step_size, solver):
    if max_num_steps is not None and max_num_steps < 1:
        raise ValueError(
            f"max_num_steps must be >= 1 or None. Received: max_num_steps={max_num_steps}"
        )
    solver_cls = {"dormand_prince": tfp.math.ode.DormandPrince, "bdf": tfp.math.ode.BDF}[solver]
    solver = solver_cls(
        rtol=rtol, atol=atol, first_step_size=first_step_size, max_num_steps=max_num_steps
    )

    def run():
        return solver.solve(
            ode_fn=lambda time, state: func(time, state),
            initial_time=t[0],
            initial_state=y0,
            solution_times=t,
        )

    # Eager, TFP's BDF loop runs op by op (20.6 s for a 2-state stiff solve of 192
    # evaluations); traced once per call it takes seconds.
    if tf.executing_eagerly() and solver_cls is tfp.math.ode.BDF:
        run = tf.function(run)
    results = run()
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
