"""Adaptive embedded Runge-Kutta solves (dopri5, bosh3, tsit5) with three gradient modes.

The solve runs one `tf.while_loop` per output interval [t_i, t_{i+1}] (fixed-shape loop state,
so it works inside `tf.function`), in either time direction. Steps are clipped to land exactly
on every output time (no dense-output interpolation error). Step-size control is the standard
one (Hairer, Norsett & Wanner I, II.4; as torchdiffeq): error ratio = max over state leaves of
the RMS of err / (atol + rtol * max(|y|, |y_new|)); accept when <= 1; next step
dt * min(10, max(0.9 * ratio^(-1/order), 0.2)) (never shrinking after an accepted step). The
first step is Hairer's automatic choice (HINIT of DOPRI5: two evaluations of f).

Gradients (all through `tf.custom_gradient`; the forward solve is not recorded on any tape):
  * "dto": discretise-then-optimise over the accepted steps. The forward keeps the state at the
    start of every accepted step (one checkpoint per accepted step, plus its t and dt); the
    backward walks the accepted steps in reverse, recomputing one step under a tape and pulling
    the cotangent through it. This is the exact gradient of the discrete map y_0 -> y_N with the
    accepted step sizes held fixed (the step-size controller is not differentiated). Memory:
    N_accepted states, plus one step's intermediates (does not grow with the step count).
  * "checkpoint": same gradient, less memory: the forward keeps only the states at the output
    times and the accepted (t, dt) scalars; the backward first replays each interval's accepted
    steps from its stored start (no tape) and then runs the "dto" reverse sweep. Costs one more
    forward evaluation per accepted step; memory N_accepted-in-one-interval states.
  * "adjoint": optimise-then-discretise (Chen et al., 2018): the augmented system
    (y, a, g), dy/dt = f, da/dt = -a^T df/dy, dg/dt = -a^T df/dtheta is solved backwards with
    the same tableau and its own tolerances (adjoint_rtol / adjoint_atol), re-anchoring y and
    adding dL/dy(t_i) at every output time. The error norm covers y and a only (the parameter
    integrals g are left out of step-size control: the "seminorm" of Kidger et al., 2021), and
    g is formed for the floating-point variables read by func only.

Non-float variables read inside func (counters, seeds) receive no gradient (None).
"""

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tf_ode.tableaux import ButcherTableau

try:  # Keeps the forward solve off any outer tape in eager mode, as tf.recompute_grad does.
    from tensorflow.python.eager.record import stop_recording as _stop_recording
except ImportError:  # pragma: no cover - internal module moved
    import contextlib

    _stop_recording = contextlib.nullcontext

try:
    from tensorflow.python.ops import control_flow_util as _control_flow_util

    _xla_graph = _control_flow_util.GraphOrParentsInXlaContext
except ImportError:  # pragma: no cover - internal module moved
    _xla_graph = None

SAFETY = 0.9
MAX_FACTOR = 10.0
MIN_FACTOR = 0.2


def _in_xla_context():
    """True while tracing inside `tf.function(jit_compile=True)`."""
    return _xla_graph is not None and _xla_graph(tf.compat.v1.get_default_graph())


class _Problem:
    """func over flat leaf lists, with the tableau's coefficients as tensors of the state dtype."""

    def __init__(self, func, structure, tableau: ButcherTableau, dtype):
        self.func = func
        self.structure = structure
        self.tableau = tableau
        self.dtype = dtype
        const = lambda v: tf.constant(v, dtype)  # noqa: E731 - float64 Python float -> dtype once
        self.c = [const(v) for v in tableau.c]
        self.a = [[(j, const(v)) for j, v in enumerate(row) if v != 0.0] for row in tableau.a]
        self.b = [(j, const(v)) for j, v in enumerate(tableau.b) if v != 0.0]
        self.e = [(j, const(v)) for j, v in enumerate(tableau.b_error) if v != 0.0]

    def f(self, t, leaves):
        out = self.func(t, tf.nest.pack_sequence_as(self.structure, list(leaves)))
        return tf.nest.flatten(out)

    def step(self, t, y, dt, f0, *, with_error=True):
        """One attempted step: (y_new, err, f_new); f_new is None unless FSAL or with_error."""
        tab = self.tableau
        k = [f0]
        y_stage = None
        last = tab.num_stages if with_error else tab.solution_stages
        for i in range(1, last):
            y_stage = _combine(y, dt, self.a[i], k)
            k.append(self.f(t + self.c[i] * dt, y_stage))
        if tab.fsal and with_error:
            y_new, f_new = y_stage, k[-1]  # a[-1] = b: the last stage state is y_new
        else:
            y_new, f_new = _combine(y, dt, self.b, k), None
        err = _weighted(dt, self.e, k) if with_error else None
        if with_error and f_new is None:
            f_new = self.f(t + dt, y_new)
        return y_new, err, f_new

    @property
    def evaluations_per_step(self):
        return self.tableau.evaluations_per_step


def _weighted(dt, coefs, k):
    """dt * sum_j coef_j k_j leaf-wise."""
    out = []
    for leaf in range(len(k[0])):
        acc = None
        for j, coef in coefs:
            term = coef * k[j][leaf]
            acc = term if acc is None else acc + term
        out.append(dt * acc if acc is not None else tf.zeros_like(k[0][leaf]))
    return out


def _combine(y, dt, coefs, k):
    return [yl + d for yl, d in zip(y, _weighted(dt, coefs, k))]


def _rms(x):
    x = tf.reshape(x, [-1])
    if x.shape[0] == 0:
        return tf.zeros([], x.dtype)
    return tf.sqrt(tf.reduce_mean(tf.square(x)))


def error_ratio(err, y, y_new, rtol, atol, mask=None):
    """max over (masked) leaves of RMS(err / (atol + rtol * max(|y|, |y_new|)))."""
    ratios = []
    for i, (e, a, b) in enumerate(zip(err, y, y_new)):
        if mask is not None and not mask[i]:
            continue
        scale = atol + rtol * tf.maximum(tf.abs(a), tf.abs(b))
        ratios.append(_rms(e / scale))
    return tf.reduce_max(tf.stack(ratios))


def _norm(leaves, scales, mask):
    values = [
        _rms(x / s) for i, (x, s) in enumerate(zip(leaves, scales)) if mask is None or mask[i]
    ]
    return tf.reduce_max(tf.stack(values))


def initial_step(problem, t0, y0, f0, direction, rtol, atol, mask=None):
    """Hairer's HINIT (Solving ODEs I, II.4): |h| from ||y0||, ||f0|| and a trial Euler step.

    Returns the step magnitude (> 0); costs one evaluation of f.
    """
    dtype = problem.dtype
    scales = [atol + rtol * tf.abs(y) for y in y0]
    d0 = _norm(y0, scales, mask)
    d1 = _norm(f0, scales, mask)
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = tf.where(
        small, tf.constant(1e-6, dtype), 0.01 * d0 / tf.where(small, tf.ones_like(d1), d1)
    )
    y1 = [y + direction * h0 * f for y, f in zip(y0, f0)]
    f1 = problem.f(t0 + direction * h0, y1)
    d2 = _norm([a - b for a, b in zip(f1, f0)], scales, mask) / h0
    dmax = tf.maximum(d1, d2)
    tiny = dmax <= 1e-15
    h1 = tf.where(
        tiny,
        tf.maximum(tf.constant(1e-6, dtype), h0 * 1e-3),
        (0.01 / tf.where(tiny, tf.ones_like(dmax), dmax)) ** (1.0 / problem.tableau.order),
    )
    return tf.minimum(100.0 * h0, h1)


def _next_step(dt_abs, ratio, accepted, order):
    dtype = dt_abs.dtype
    finite = tf.math.is_finite(ratio)
    safe_ratio = tf.where(finite & (ratio > 0), ratio, tf.ones_like(ratio))
    factor = SAFETY * safe_ratio ** (-1.0 / order)
    floor = tf.where(accepted, tf.constant(1.0, dtype), tf.constant(MIN_FACTOR, dtype))
    factor = tf.minimum(tf.constant(MAX_FACTOR, dtype), tf.maximum(factor, floor))
    factor = tf.where(ratio == 0, tf.constant(MAX_FACTOR, dtype), factor)
    factor = tf.where(finite, factor, tf.constant(MIN_FACTOR, dtype))
    return dt_abs * factor


class _Counts:
    """Int32 counters carried through the loops: accepted, rejected, evaluations, attempts."""

    @staticmethod
    def zeros():
        return [tf.zeros([], tf.int32) for _ in range(4)]


def solve_interval(
    problem,
    t0,
    t1,
    y,
    f0,
    dt_abs,
    counts,
    *,
    rtol,
    atol,
    max_num_steps,
    record_states,
    mask=None,
):
    """Adaptive steps from t0 to exactly t1. Returns (y1, f1, dt_abs, counts, record).

    record = (ts [n], dts [n], states: per leaf [n, ...] or None): the accepted steps.
    """
    dtype = problem.dtype
    direction = tf.sign(t1 - t0)
    span = tf.abs(t1 - t0)
    order = problem.tableau.order
    eps = tf.constant(np.finfo(dtype.as_numpy_dtype).eps, dtype)
    ta_t = tf.TensorArray(dtype, size=0, dynamic_size=True, element_shape=[])
    ta_dt = tf.TensorArray(dtype, size=0, dynamic_size=True, element_shape=[])
    ta_y = (
        [tf.TensorArray(dtype, size=0, dynamic_size=True, element_shape=leaf.shape) for leaf in y]
        if record_states
        else []
    )
    limit = tf.constant(np.iinfo(np.int32).max if max_num_steps is None else max_num_steps)
    del span

    def remaining(t):
        return direction * (t1 - t)

    def cond(t, y, f0, dt_abs, n_acc, n_rej, nfe, attempts, ta_t, ta_dt, ta_y):
        del y, f0, n_acc, n_rej, nfe, ta_t, ta_dt, ta_y
        tiny = dt_abs <= 4.0 * eps * tf.maximum(tf.abs(t), 1.0)
        return (remaining(t) > 0) & (attempts < limit) & tf.logical_not(tiny)

    def body(t, y, f0, dt_abs, n_acc, n_rej, nfe, attempts, ta_t, ta_dt, ta_y):
        left = remaining(t)
        clipped = dt_abs >= left
        dt = direction * tf.minimum(dt_abs, left)
        y_new, err, f_new = problem.step(t, y, dt, f0)
        ratio = error_ratio(err, y, y_new, rtol, atol, mask)
        accepted = ratio <= 1.0
        t_new = tf.where(clipped, t1, t + dt)
        next_abs = _next_step(tf.abs(dt), ratio, accepted, order)
        # An accepted step shortened to land on t1 does not shrink the solver's own proposal.
        next_abs = tf.where(accepted & clipped, tf.maximum(next_abs, dt_abs), next_abs)

        def record(ta_t=ta_t, ta_dt=ta_dt, ta_y=ta_y):
            return (
                ta_t.write(n_acc, t),
                ta_dt.write(n_acc, dt),
                [ta.write(n_acc, leaf) for ta, leaf in zip(ta_y, y)],
            )

        ta_t, ta_dt, ta_y = tf.cond(accepted, record, lambda: (ta_t, ta_dt, ta_y))
        pick = lambda new, old: [tf.where(accepted, a, b) for a, b in zip(new, old)]  # noqa: E731
        return (
            tf.where(accepted, t_new, t),
            pick(y_new, y),
            pick(f_new, f0),
            next_abs,
            n_acc + tf.cast(accepted, tf.int32),
            n_rej + tf.cast(tf.logical_not(accepted), tf.int32),
            nfe + problem.evaluations_per_step,
            attempts + 1,
            ta_t,
            ta_dt,
            ta_y,
        )

    n_acc0 = tf.zeros([], tf.int32)
    loop = tf.while_loop(
        cond,
        body,
        (t0, list(y), list(f0), dt_abs, n_acc0, counts[1], counts[2], counts[3], ta_t, ta_dt, ta_y),
        maximum_iterations=None,
    )
    t_end, y_end, f_end, dt_end, n_new, n_rej, nfe, attempts, ta_t, ta_dt, ta_y = loop
    reached = tf.debugging.Assert(
        remaining(t_end) <= 0,
        [
            f"odeint({problem.tableau.name}): max_num_steps exceeded (max_num_steps="
            f"{max_num_steps}) or step size underflow; stopped at t =",
            t_end,
            "before the output time",
            t1,
            "with step",
            dt_end,
        ],
        summarize=4,
    )
    with tf.control_dependencies([reached] if reached is not None else []):
        y_end = [tf.identity(leaf) for leaf in y_end]
    counts = [counts[0] + n_new, n_rej, nfe, attempts]
    states = [ta.stack() for ta in ta_y] if record_states else None
    return y_end, f_end, dt_end, counts, (ta_t.stack(), ta_dt.stack(), n_new, states)


def forward_solve(
    problem, y0, t, *, rtol, atol, max_num_steps, record_states, mask=None, first_step_size=None
):
    """Solves over all output intervals. Returns (outputs per time, records per interval, counts)."""
    num_times = t.shape[0]
    f0 = problem.f(t[0], y0)
    direction = tf.sign(t[-1] - t[0])
    counts = _Counts.zeros()
    if first_step_size is None:
        dt_abs = initial_step(problem, t[0], y0, f0, direction, rtol, atol, mask)
        counts[2] = counts[2] + 2  # f0 and HINIT's trial evaluation
    else:
        dt_abs = tf.constant(abs(first_step_size), problem.dtype)
        counts[2] = counts[2] + 1
    y = list(y0)
    outputs = [y]
    records = []
    for i in range(num_times - 1):
        y, f0, dt_abs, counts, rec = solve_interval(
            problem,
            t[i],
            t[i + 1],
            y,
            f0,
            dt_abs,
            counts,
            rtol=rtol,
            atol=atol,
            max_num_steps=max_num_steps,
            record_states=record_states,
            mask=mask,
        )
        outputs.append(y)
        records.append(rec)
    return outputs, records, counts


def _replay_states(problem, y_start, ts, dts, n):
    """Re-runs the accepted steps of one interval (no error estimate); per leaf [n, ...] states."""
    dtype = problem.dtype
    tas = [tf.TensorArray(dtype, size=n, element_shape=leaf.shape) for leaf in y_start]

    def body(k, y, tas):
        tas = [ta.write(k, leaf) for ta, leaf in zip(tas, y)]
        t_k, dt_k = ts[k], dts[k]
        y_next, _, _ = problem.step(t_k, y, dt_k, problem.f(t_k, y), with_error=False)
        return k + 1, y_next, tas

    _, _, tas = tf.while_loop(
        lambda k, y, tas: k < n, body, (tf.constant(0), list(y_start), tas), parallel_iterations=1
    )
    return [ta.stack() for ta in tas]


def _reverse_sweep(problem, states, ts, dts, n, adj, g, variables):
    """Pulls adj back through the accepted steps n-1 .. 0 of one interval (recomputing each)."""
    num_leaves = len(adj)

    def body(k, adj, g):
        k = k - 1
        # Recompute step k only once the cotangent from step k+1 exists, so no executor can run
        # several steps' recomputations ahead (each holds a step's activations).
        with tf.control_dependencies(adj):
            y_k = [tf.identity(s[k]) for s in states]
        t_k, dt_k = ts[k], dts[k]
        with tf.GradientTape() as tape:
            tape.watch(y_k)
            tape.watch(variables)
            y_next, _, _ = problem.step(t_k, y_k, dt_k, problem.f(t_k, y_k), with_error=False)
        grads = tape.gradient(
            y_next,
            y_k + variables,
            output_gradients=adj,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        grads = [tf.convert_to_tensor(x) for x in grads]
        return k, grads[:num_leaves], [a + b for a, b in zip(g, grads[num_leaves:])]

    _, adj, g = tf.while_loop(
        lambda k, adj, g: k > 0, body, (n, list(adj), list(g)), parallel_iterations=1
    )
    return adj, g


def _float_variables(variables):
    return [v for v in variables if v.dtype.is_floating]


def _variable_grads(variables, float_grads):
    it = iter(float_grads)
    return [next(it) if v.dtype.is_floating else None for v in variables]


def adaptive_solve(
    func: Callable,
    y0,
    t,
    *,
    tableau: ButcherTableau,
    gradient: str,
    rtol: float,
    atol: float,
    max_num_steps,
    adjoint_rtol: float,
    adjoint_atol: float,
    first_step_size: float | None = None,
):
    """Adaptive solve of dy/dt = func(t, y) at the times t (see module docstring).

    Args:
      func: `func(t, y)` with y's structure.
      y0: nested float tensors of one dtype (already validated).
      t: 1-D [T] strictly monotone output times of y0's dtype (already validated).
      tableau: the embedded RK pair.
      gradient: "dto", "checkpoint" or "adjoint".
      rtol, atol: forward tolerances; adjoint_rtol, adjoint_atol: the adjoint solve's.
      max_num_steps: bound on attempted steps (accepted + rejected) of one solve, or None.
      first_step_size: initial step magnitude; None = Hairer's automatic choice.

    Returns:
      (ys, stats): ys with y0's structure, leaves [T, ...]; stats a dict of int32 scalars
      accepted_steps, rejected_steps, forward_evaluations, backward_evaluations (None for
      "adjoint", whose backward evaluations are known only once the backward pass runs).
    """
    if gradient != "adjoint" and _in_xla_context():
        raise ValueError(
            f"method={tableau.name!r} with gradient={gradient!r} keeps one checkpoint per accepted "
            "step in dynamically sized TensorArrays, which XLA cannot compile: call it without "
            "jit_compile, or use gradient='adjoint' (or a fixed-step method) under XLA. "
            f"Received: gradient={gradient!r} inside jit_compile=True"
        )
    structure = y0
    flat_y0 = tf.nest.flatten(y0)
    num_leaves = len(flat_y0)
    dtype = flat_y0[0].dtype
    problem = _Problem(func, structure, tableau, dtype)
    t = tf.stop_gradient(t)
    num_times = t.shape[0]
    stats = {}

    @tf.custom_gradient
    def solve(*leaves):
        with _stop_recording():
            outputs, records, counts = forward_solve(
                problem,
                list(leaves),
                t,
                rtol=rtol,
                atol=atol,
                max_num_steps=max_num_steps,
                record_states=gradient == "dto",
                first_step_size=first_step_size,
            )
            stacked = [tf.stack([o[j] for o in outputs], axis=0) for j in range(num_leaves)]
        stats["accepted_steps"] = counts[0]
        stats["rejected_steps"] = counts[1]
        stats["forward_evaluations"] = counts[2]
        per_step = tableau.solution_stages
        if gradient == "dto":
            stats["backward_evaluations"] = counts[0] * per_step
        elif gradient == "checkpoint":
            stats["backward_evaluations"] = counts[0] * (2 * per_step)
        else:
            stats["backward_evaluations"] = None

        def grad(*d_outputs, variables=None):
            variables = list(variables or [])
            float_vars = _float_variables(variables)
            d_outputs = [tf.convert_to_tensor(d) for d in d_outputs]
            adj = [d[num_times - 1] for d in d_outputs]
            g = [tf.zeros_like(v) for v in float_vars]
            for i in range(num_times - 2, -1, -1):
                if gradient == "adjoint":
                    adj, g = _adjoint_interval(
                        problem,
                        [o[i + 1] for o in stacked],
                        adj,
                        g,
                        float_vars,
                        t[i + 1],
                        t[i],
                        rtol=adjoint_rtol,
                        atol=adjoint_atol,
                        max_num_steps=max_num_steps,
                    )
                else:
                    ts, dts, n, states = records[i]
                    if states is None:  # "checkpoint": replay from the interval's stored start
                        states = _replay_states(problem, [o[i] for o in stacked], ts, dts, n)
                    adj, g = _reverse_sweep(problem, states, ts, dts, n, adj, g, float_vars)
                adj = [a + d[i] for a, d in zip(adj, d_outputs)]
            if variables:
                return adj, _variable_grads(variables, g)
            return adj

        return stacked, grad

    ys = solve(*flat_y0)
    return tf.nest.pack_sequence_as(structure, list(ys)), stats


def _adjoint_interval(problem, y1, adj, g, variables, t1, t0, *, rtol, atol, max_num_steps):
    """Solves the augmented system (y, a, g) from t1 back to t0; returns (a(t0), g(t0))."""
    n_y, n_g = len(y1), len(g)

    def aug_func(t, aug):
        y, a = list(aug[:n_y]), list(aug[n_y : 2 * n_y])
        with tf.GradientTape() as tape:
            tape.watch(y)
            tape.watch(variables)
            f = problem.f(t, y)
        vjp = tape.gradient(
            f, y + variables, output_gradients=a, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        vjp = [tf.convert_to_tensor(v) for v in vjp]
        return tuple(f) + tuple(-v for v in vjp)

    structure = tuple(range(2 * n_y + n_g))
    aug_problem = _Problem(aug_func, structure, problem.tableau, problem.dtype)
    mask = [True] * (2 * n_y) + [False] * n_g
    aug0 = list(y1) + list(adj) + list(g)
    times = tf.stack([t1, t0])
    outputs, _, _ = forward_solve(
        aug_problem,
        aug0,
        times,
        rtol=rtol,
        atol=atol,
        max_num_steps=max_num_steps,
        record_states=False,
        mask=mask,
    )
    final = outputs[-1]
    return final[n_y : 2 * n_y], final[2 * n_y :]
