"""`odeint_event`: solve until a terminal event g(t, y) = 0, differentiably (as torchdiffeq).

The event is found on the accepted steps of an adaptive solve: after each step g is evaluated at
the step's end; at the first sign change the root is bisected on the step's dense output (no
evaluation of f, only of g) to `event_tol`. The state at the event comes from a second,
differentiable solve from t0 to the event time (any gradient mode). The event time's gradient is
the implicit-function one (torchdiffeq `_impl/odeint.py` `odeint_event` and its
`ImplicitFnGradientRerouting`): g(t*, y(t*; theta); theta) = 0 gives
    dt*/dtheta = -(dg/dy . dy(t*)/dtheta + dg/dtheta) / (dg/dt + dg/dy . f(t*, y(t*))),
so t* receives gradients with respect to y0, t0, the variables of func (through y(t*)) and the
variables read by event_fn.
"""

from collections.abc import Callable

import tensorflow as tf

from tf_ode import adaptive, integrate, tableaux


def _dot(a, b):
    return tf.add_n([tf.reduce_sum(x * y) for x, y in zip(a, b)])


def odeint_event(
    func: Callable,
    y0,
    t0,
    *,
    event_fn: Callable,
    t_max,
    method: str = "dopri5",
    gradient: str = "dto",
    rtol: float = 1e-7,
    atol: float = 1e-9,
    max_num_steps: int | None = 10000,
    event_tol: float | None = None,
    return_info: bool = False,
):
    """Solves dy/dt = func(t, y) from (t0, y0) until event_fn(t, y) first changes sign.

    Args:
      func: `func(t, y)` as in `odeint`.
      y0: float tensor or nest of float tensors (one dtype).
      t0: scalar initial time.
      event_fn: `event_fn(t, y)` -> scalar tensor; the event is its first sign change after t0
        (a zero at t0 itself is not an event). May read variables (they get gradients).
      t_max: end of the search (either side of t0, which sets the time direction); no sign
        change before it is an `InvalidArgumentError` ("no event before the final time").
      method: "dopri5", "bosh3" or "tsit5".
      gradient: gradient mode of the solve up to the event ("dto", "checkpoint", "adjoint").
      rtol, atol, max_num_steps: as in `odeint`.
      event_tol: bisection tolerance on t; None = 64 machine epsilons relative to t.
      return_info: also return the `SolveInfo` of the search solve.

    Returns:
      (event_t, ys): event_t a scalar; ys with y0's structure, leaves [2, ...] holding y at t0
      and at event_t (as torchdiffeq's `odeint_event`); plus `SolveInfo` when return_info.
    """
    if method not in tableaux.SOLVERS:
        raise ValueError(
            f"odeint_event needs an adaptive method with dense output, one of "
            f"{tuple(tableaux.SOLVERS)}. Received: method={method!r}"
        )
    integrate.validate_options(method, None, gradient)
    y0, times = integrate._prepare(y0, [t0, t_max])  # a tensor t0 keeps its gradient
    func = integrate._checked(func, y0)
    structure = y0
    leaves0 = tf.nest.flatten(y0)
    dtype = leaves0[0].dtype
    problem = adaptive._Problem(func, structure, tableaux.SOLVERS[method], dtype)
    with adaptive._stop_recording():
        result = adaptive.integrate(
            problem,
            [tf.stop_gradient(x) for x in leaves0],
            tf.stop_gradient(times),
            rtol=rtol,
            atol=atol,
            max_num_steps=max_num_steps,
            event_fn=event_fn,
            event_tol=event_tol,
        )
        checks = adaptive.check_status(method, result, times[-1], max_num_steps)
        with tf.control_dependencies(checks):
            found_t = tf.stop_gradient(tf.identity(result["event_t"]))
    ys = integrate.odeint(
        func,
        y0,
        tf.stack([times[0], found_t]),
        method=method,
        gradient=gradient,
        rtol=rtol,
        atol=atol,
        max_num_steps=max_num_steps,
    )
    y_event = [y[-1] for y in tf.nest.flatten(ys)]
    event_t = _implicit_event_time(func, event_fn, structure, found_t, y_event)
    y_event = _move_to(func, structure, event_t, y_event)
    ys = tf.nest.pack_sequence_as(
        structure,
        [tf.stack([x, y], axis=0) for x, y in zip(leaves0, y_event)],
    )
    if return_info:
        counts = result["counts"]
        info = integrate.SolveInfo(
            num_function_evaluations=counts[2],
            num_accepted_steps=counts[0],
            num_rejected_steps=counts[1],
            status=result["status"],
        )
        return event_t, ys, info
    return event_t, ys


def _implicit_event_time(func, event_fn, structure, found_t, y_event):
    """found_t, with the implicit-function gradient through y_event and event_fn's variables."""

    def pack(leaves):
        return tf.nest.pack_sequence_as(structure, list(leaves))

    @tf.custom_gradient
    def event_time(t_star, *leaves):
        # Read g once here so the variables event_fn uses are handed to grad.
        tf.convert_to_tensor(event_fn(t_star, pack(leaves)))

        def grad(d_t, variables=None):
            variables = list(variables or [])
            float_vars = [v for v in variables if v.dtype.is_floating]
            t_watch = tf.identity(t_star)
            y_watch = [tf.identity(x) for x in leaves]
            with tf.GradientTape() as tape:
                tape.watch([t_watch] + y_watch)
                tape.watch(float_vars)
                g = tf.cast(event_fn(t_watch, pack(y_watch)), t_star.dtype)
            grads = tape.gradient(
                g,
                [t_watch] + y_watch + float_vars,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            dg_dt, dg_dy, dg_dvars = grads[0], grads[1 : 1 + len(leaves)], grads[1 + len(leaves) :]
            f = tf.nest.flatten(func(t_star, pack(leaves)))
            rate = dg_dt + _dot(dg_dy, f)  # dg/dt along the solution: nonzero at a simple root
            scale = -d_t / rate
            d_leaves = [scale * x for x in dg_dy]
            it = iter([scale * x for x in dg_dvars])
            d_vars = [next(it) if v.dtype.is_floating else None for v in variables]
            d_inputs = [tf.zeros_like(t_star)] + d_leaves
            return (d_inputs, d_vars) if variables else d_inputs

        return tf.identity(t_star), grad

    return event_time(found_t, *y_event)


def _move_to(func, structure, event_t, y_event):
    """y_event with dy/dt* = f(t*, y(t*)) added to the gradient of event_t."""

    @tf.custom_gradient
    def at_event(t_star, *leaves):
        def grad(*d_leaves):
            d_leaves = list(d_leaves)
            f = tf.nest.flatten(func(t_star, tf.nest.pack_sequence_as(structure, list(leaves))))
            return [_dot(d_leaves, f)] + d_leaves

        return [tf.identity(x) for x in leaves], grad

    return at_event(event_t, *y_event)
