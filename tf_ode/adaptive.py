"""Adaptive embedded Runge-Kutta solves (dopri5, bosh3, tsit5) with dense output and events.

One `tf.while_loop` steps from t[0] to t[-1] (fixed-shape loop state, so it runs inside
`tf.function`; either time direction). Steps land exactly on t[-1] and on the forced boundaries
`step_t` / `jump_t` only; every other output time is read off the step's continuous extension
(`ButcherTableau.dense`: dopri5's and tsit5's 4th-order interpolants, the cubic Hermite for bosh3),
which reuses the step's stages, so the number of evaluations of f does not depend on the number of
output times (torchdiffeq `_impl/rk_common.py` and diffrax `SaveAt(ts=...)` do the same). After a
`jump_t` boundary f is evaluated again instead of reusing the FSAL stage (the field may jump
there; diffrax `PIDController(jump_ts=...)`). Step-size control is the standard one (Hairer,
Norsett & Wanner I, II.4; as torchdiffeq): error ratio = max over state leaves of the RMS of
err / (atol + rtol * max(|y|, |y_new|)); accept when <= 1; next step
dt * min(10, max(0.9 * ratio^(-1/order), 0.2)) (never shrinking after an accepted step). The
first step is Hairer's automatic choice (HINIT of DOPRI5: two evaluations of f).

Failures end the loop with a status (`STATUS_*`) instead of running on: max_num_steps reached,
step-size underflow, or f returning NaN / Inf; the status is in the solve statistics (so it can be
returned from `tf.function`, also under XLA) and, outside XLA, raises an `InvalidArgumentError`
whose message names the cause, t, the step size and the step counts.

Gradients of these solves (DTO, checkpointed DTO, continuous adjoint) are in
`adaptive_gradients.py`.
"""

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

STATUS_OK = 0
STATUS_MAX_STEPS = 1
STATUS_UNDERFLOW = 2
STATUS_NAN = 3
STATUS_INF = 4
STATUS_NO_EVENT = 5
CAUSES = (
    "finished",
    "max_num_steps exceeded",
    "step size underflow (the step shrank to round-off: stiff, singular or discontinuous here)",
    "func(t, y) returned NaN",
    "func(t, y) returned Inf",
    "no event before the final time",
)


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
        # dense[j] = [(power, coefficient)] of b_j(theta); stages with b_j(theta) = 0 are left out.
        self.dense = [
            (j, [(p + 1, const(v)) for p, v in enumerate(row) if v != 0.0])
            for j, row in enumerate(tableau.dense)
            if any(v != 0.0 for v in row)
        ]

    def f(self, t, leaves):
        out = self.func(t, tf.nest.pack_sequence_as(self.structure, list(leaves)))
        return tf.nest.flatten(out)

    def stages(self, t, y, dt, f0, last):
        """Stages k[0..last-1] (k[0] = f0) and the state of the last stage computed."""
        k = [f0]
        y_stage = None
        for i in range(1, last):
            y_stage = _combine(y, dt, self.a[i], k)
            k.append(self.f(t + self.c[i] * dt, y_stage))
        return k, y_stage

    def step(self, t, y, dt, f0, *, with_error=True):
        """One attempted step: (y_new, err, f_new, k); err and f_new None unless with_error."""
        tab = self.tableau
        last = tab.num_stages if with_error else tab.solution_stages
        k, y_stage = self.stages(t, y, dt, f0, last)
        if tab.fsal and with_error:
            y_new, f_new = y_stage, k[-1]  # a[-1] = b: the last stage state is y_new
        else:
            y_new, f_new = _combine(y, dt, self.b, k), None
        err = _weighted(dt, self.e, k) if with_error else None
        if with_error and f_new is None:
            f_new = self.f(t + dt, y_new)
            k.append(f_new)
        return y_new, err, f_new, k

    def dense_weights(self, theta):
        """[(stage j, b_j(theta))] for scalar or [m] theta."""
        return [(j, sum(coef * theta**p for p, coef in terms)) for j, terms in self.dense]

    def interpolate(self, y, dt, k, theta):
        """y(t + theta dt) from the step's start y and stages k (scalar theta)."""
        weights = self.dense_weights(theta)
        return [y[leaf] + dt * sum(w * k[j][leaf] for j, w in weights) for leaf in range(len(y))]

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


def _nonfinite_status(leaves):
    """STATUS_NAN if any leaf holds a NaN, else STATUS_INF if any holds an Inf, else STATUS_OK."""
    has_nan = tf.reduce_any(tf.stack([tf.reduce_any(tf.math.is_nan(x)) for x in leaves]))
    has_inf = tf.reduce_any(tf.stack([tf.reduce_any(tf.math.is_inf(x)) for x in leaves]))
    return tf.where(has_nan, STATUS_NAN, tf.where(has_inf, STATUS_INF, STATUS_OK))


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
    h = tf.minimum(100.0 * h0, h1)
    # A NaN from f makes h NaN: start from a finite step so the loop reports the NaN by name.
    return tf.where(tf.math.is_finite(h), h, tf.constant(1e-6, dtype))


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


def boundary_times(t_end, step_t, jump_t, dtype):
    """(times, is_jump): the forced step boundaries step_t / jump_t, then t_end (static order).

    step_t and jump_t are static sequences of times strictly between t[0] and t[-1], already
    sorted in the direction of integration (see `integrate._boundaries`).
    """
    merged = sorted([(s, False) for s in step_t] + [(s, True) for s in jump_t])
    times = [tf.constant(s, dtype) for s, _ in merged] + [t_end]
    flags = [j for _, j in merged] + [False]
    return tf.stack(times), tf.constant(flags)


def integrate(
    problem,
    y0,
    t_out,
    *,
    rtol,
    atol,
    max_num_steps,
    record=None,
    mask=None,
    first_step_size=None,
    boundaries=None,
    event_fn=None,
    event_tol=None,
):
    """Adaptive steps from t_out[0] to t_out[-1] with dense output at every t_out.

    Args:
      problem: the `_Problem`.
      y0: flat list of leaves at t_out[0].
      t_out: [T] strictly monotone output times (T >= 2; t_out[-1] ends the solve).
      record: None, "states" (dto: every accepted step's start state) or "anchors" (checkpoint:
        the start state of the first step after each output).
      boundaries: None or (times [B], is_jump [B]) from `boundary_times`; the last is t_out[-1].
      event_fn: None or g(t, y) -> scalar; the solve stops at its first sign change, located by
        bisection on the dense output to event_tol.

    Returns:
      dict with "outputs" (per leaf [T, ...]; None with an event_fn), "y_end",
      "t_end", "dt_end", "status", "counts" (accepted, rejected, evaluations, attempts, dense
      steps), "record" (TensorArrays, see below) and, with event_fn, "event_t", "event_y".
    """
    dtype = problem.dtype
    num_times = t_out.shape[0]
    direction = tf.sign(t_out[-1] - t_out[0])
    order = problem.tableau.order
    eps = tf.constant(np.finfo(dtype.as_numpy_dtype).eps, dtype)
    limit = np.iinfo(np.int32).max if max_num_steps is None else max_num_steps
    t0 = t_out[0]
    f0 = problem.f(t0, y0)
    nfe0 = 1
    if first_step_size is None:
        dt_abs = initial_step(problem, t0, y0, f0, direction, rtol, atol, mask)
        nfe0 += 1
    else:
        dt_abs = tf.constant(abs(first_step_size), dtype)
    if boundaries is None:
        bounds, is_jump = tf.reshape(t_out[-1], [1]), tf.constant([False])
    else:
        bounds, is_jump = boundaries
    has_jumps = boundaries is not None and bool(np.any(tf.get_static_value(is_jump)))
    leaf_shapes = [leaf.shape for leaf in y0]
    with_outputs = event_fn is None

    def ta(size=0, dynamic=True, shape=()):
        return tf.TensorArray(dtype, size=size, dynamic_size=dynamic, element_shape=shape)

    state = {
        "t": t0,
        "y": list(y0),
        "f0": list(f0),
        "dt_abs": dt_abs,
        "counts": [
            tf.constant(0),
            tf.constant(0),
            tf.constant(nfe0),
            tf.constant(0),
            tf.constant(0),
        ],
        "status": _nonfinite_status(f0),
        "fail_dt": tf.zeros([], dtype),
        "next_out": tf.constant(1),
        "bidx": tf.constant(0),
        "prev_emitted": tf.constant(True),
    }
    if with_outputs:
        state["out"] = [ta(num_times, False, s).write(0, leaf) for s, leaf in zip(leaf_shapes, y0)]
    if record is not None:
        int_ta = lambda: tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=())  # noqa: E731
        state["rec"] = {
            "ts": ta(),
            "dts": ta(),
            "tns": ta(),
            "lo": int_ta(),
            "hi": int_ta(),
            "states": [ta(shape=s) for s in leaf_shapes],
            "anchor_steps": int_ta(),
            "num_anchors": tf.constant(0),
        }
    if event_fn is not None:
        state["g_prev"] = tf.cast(event_fn(t0, _pack(problem, y0)), dtype)
        state["found"] = tf.constant(False)
        state["event_t"] = t0
        state["event_y"] = list(y0)

    def remaining(t):
        return direction * (t_out[-1] - t)

    def cond(s):
        go = (s["status"] == STATUS_OK) & (remaining(s["t"]) > 0)
        if event_fn is not None:
            go = go & tf.logical_not(s["found"])
        return go

    def body(s):
        s = dict(s)
        t, y, f_start, dt_abs = s["t"], s["y"], s["f0"], s["dt_abs"]
        bidx = s["bidx"]
        bound = bounds[bidx]
        end = bound
        if has_jumps:
            # As diffrax: the step into a jump ends one ulp before it (its stages see the field
            # from the left) and the next starts one ulp after it (f evaluated afresh there).
            at_jump = tf.gather(is_jump, bidx)
            before = tf.math.nextafter(bound, t)
            end = tf.where(at_jump, before, bound)
            bound = tf.where(at_jump, tf.math.nextafter(bound, bound + direction), bound)
        left = direction * (end - t)
        clipped = dt_abs >= left
        dt = direction * tf.minimum(dt_abs, left)
        y_new, err, f_new, k = problem.step(t, y, dt, f_start)
        ratio = error_ratio(err, y, y_new, rtol, atol, mask)
        accepted = ratio <= 1.0
        t_new = tf.where(clipped, bound, t + dt)
        next_abs = _next_step(tf.abs(dt), ratio, accepted, order)
        # An accepted step shortened to land on a boundary does not shrink the next proposal.
        next_abs = tf.where(accepted & clipped, tf.maximum(next_abs, dt_abs), next_abs)
        n_acc, n_rej, nfe, attempts, n_dense = s["counts"]
        nfe = nfe + problem.evaluations_per_step
        attempts = attempts + 1

        def on_accept(s=s):
            s = dict(s)
            f_next = f_new
            extra = tf.constant(0)
            if has_jumps:
                jump = clipped & tf.gather(is_jump, bidx)
                f_next = tf.cond(
                    jump, lambda: problem.f(t_new, y_new), lambda: [tf.identity(v) for v in f_new]
                )
                extra = tf.cast(jump, tf.int32)
            lo = s["next_out"]
            if with_outputs:
                reached = tf.reduce_sum(tf.cast(direction * (t_out - t_new) <= 0, tf.int32))
                hi = tf.maximum(reached, lo)
                ends_here = (hi > lo) & tf.equal(tf.gather(t_out, tf.maximum(hi - 1, 0)), t_new)
                interior = hi - lo - tf.cast(ends_here, tf.int32)

                def write_output(j, out):
                    t_j = t_out[j]
                    at_end = tf.equal(t_j, t_new)
                    theta = (t_j - t) / dt
                    values = problem.interpolate(y, dt, k, theta)
                    values = [tf.where(at_end, a, b) for a, b in zip(y_new, values)]
                    return j + 1, [o.write(j, v) for o, v in zip(out, values)]

                _, s["out"] = tf.while_loop(lambda j, out: j < hi, write_output, (lo, s["out"]))
                s["next_out"] = hi
                emitted = hi > lo
            else:
                hi, interior, emitted = lo, tf.constant(0), tf.constant(False)
            if record is not None:
                rec = dict(s["rec"])
                n = n_acc
                rec["ts"] = rec["ts"].write(n, t)
                rec["dts"] = rec["dts"].write(n, dt)
                rec["tns"] = rec["tns"].write(n, t_new)
                rec["lo"] = rec["lo"].write(n, lo)
                rec["hi"] = rec["hi"].write(n, hi)
                if record == "states":
                    rec["states"] = [ta_.write(n, leaf) for ta_, leaf in zip(rec["states"], y)]
                else:
                    anchor = s["prev_emitted"]

                    def add_anchor(rec=rec):
                        rec = dict(rec)
                        m = rec["num_anchors"]
                        rec["states"] = [ta_.write(m, leaf) for ta_, leaf in zip(rec["states"], y)]
                        rec["anchor_steps"] = rec["anchor_steps"].write(m, n)
                        rec["num_anchors"] = m + 1
                        return rec

                    rec = tf.cond(anchor, add_anchor, lambda rec=rec: dict(rec))
                s["rec"] = rec
            s["prev_emitted"] = emitted
            if event_fn is not None:
                g_new = tf.cast(event_fn(t_new, _pack(problem, y_new)), dtype)
                g_prev = s["g_prev"]
                crossed = tf.not_equal(g_prev, 0) & tf.not_equal(tf.sign(g_new), tf.sign(g_prev))

                def locate():
                    theta = _bisect_event(problem, event_fn, t, y, dt, k, g_prev, event_tol)
                    at_end = tf.equal(g_new, 0)
                    theta = tf.where(at_end, tf.ones_like(theta), theta)
                    values = problem.interpolate(y, dt, k, theta)
                    return tf.where(at_end, t_new, t + theta * dt), [
                        tf.where(at_end, a, b) for a, b in zip(y_new, values)
                    ]

                s["event_t"], s["event_y"] = tf.cond(
                    crossed, locate, lambda: (s["event_t"], list(s["event_y"]))
                )
                s["found"] = crossed
                s["g_prev"] = g_new
            s["t"] = t_new
            s["y"] = list(y_new)
            s["f0"] = list(f_next)
            s["counts"] = [
                n_acc + 1,
                n_rej,
                nfe + extra,
                attempts,
                n_dense + tf.cast(interior > 0, tf.int32),
            ]
            s["bidx"] = bidx + tf.cast(clipped, tf.int32)
            s["status"] = _nonfinite_status(f_next)
            return s

        def on_reject(s=s):
            s = dict(s)
            s["counts"] = [n_acc, n_rej + 1, nfe, attempts, n_dense]
            s["status"] = tf.constant(STATUS_OK)
            return s

        s = tf.cond(accepted, on_accept, on_reject)
        finished = remaining(s["t"]) <= 0
        if event_fn is not None:
            finished = finished | s["found"]
        tiny = next_abs <= 4.0 * eps * tf.maximum(tf.abs(s["t"]), 1.0)
        bad_ratio = tf.logical_not(tf.math.is_finite(ratio))
        status = s["status"]
        cause = _nonfinite_status(err + [leaf for stage in k for leaf in stage])
        cause = tf.where(bad_ratio & (cause != STATUS_OK), cause, STATUS_UNDERFLOW)
        status = tf.where((status == STATUS_OK) & tiny & tf.logical_not(finished), cause, status)
        status = tf.where(
            (status == STATUS_OK) & (attempts >= limit) & tf.logical_not(finished),
            STATUS_MAX_STEPS,
            status,
        )
        s["status"] = status
        s["fail_dt"] = dt
        s["dt_abs"] = next_abs
        return (s,)

    (final,) = tf.while_loop(cond, body, (state,), maximum_iterations=None)
    result = {
        "y_end": final["y"],
        "f_end": final["f0"],
        "t_end": final["t"],
        "dt_end": final["dt_abs"],
        "fail_dt": final["fail_dt"],
        "status": final["status"],
        "counts": final["counts"],
        "record": final.get("rec"),
        "outputs": None,
    }
    if with_outputs:
        result["outputs"] = [o.stack() for o in final["out"]]
    else:
        result["status"] = tf.where(
            (final["status"] == STATUS_OK) & tf.logical_not(final["found"]),
            STATUS_NO_EVENT,
            final["status"],
        )
        result["event_t"] = final["event_t"]
        result["event_y"] = final["event_y"]
    return result


def _pack(problem, leaves):
    return tf.nest.pack_sequence_as(problem.structure, list(leaves))


def _bisect_event(problem, event_fn, t, y, dt, k, g_start, tol):
    """theta in (0, 1] where g(t + theta dt, y(theta)) changes sign, to |theta dt| <= tol."""
    dtype = problem.dtype
    eps = np.finfo(dtype.as_numpy_dtype).eps
    if tol is None:
        tol = 64.0 * eps * tf.maximum(tf.abs(t) + tf.abs(dt), 1.0)
    tol = tf.cast(tol, dtype)
    sign_start = tf.sign(g_start)

    def cond(lo, hi, i):
        return ((hi - lo) * tf.abs(dt) > tol) & (i < 200)

    def body(lo, hi, i):
        mid = 0.5 * (lo + hi)
        values = problem.interpolate(y, dt, k, mid)
        g_mid = tf.cast(event_fn(t + mid * dt, _pack(problem, values)), dtype)
        same = tf.equal(tf.sign(g_mid), sign_start)
        return tf.where(same, mid, lo), tf.where(same, hi, mid), i + 1

    lo, hi, _ = tf.while_loop(cond, body, (tf.zeros([], dtype), tf.ones([], dtype), tf.constant(0)))
    return 0.5 * (lo + hi)


def status_message(name, status, t, dt, counts, t_final, max_num_steps):
    """The failure message (Python str) for a status, as raised by `check_status`."""
    cause = CAUSES[int(status)]
    if int(status) == STATUS_MAX_STEPS:
        cause += f" (max_num_steps={max_num_steps} accepted + rejected steps)"
    return (
        f"odeint({name}): {cause}; stopped at t = {float(t):.17g} with step size "
        f"{float(dt):.6g} after {int(counts[0])} accepted and {int(counts[1])} rejected steps, "
        f"before the final time {float(t_final):.17g}"
    )


def check_status(name, result, t_final, max_num_steps):
    """Raises `InvalidArgumentError` naming the cause unless the solve finished (status 0).

    Eager: raised at once with a Python-formatted message. Graph: a `tf.debugging.Assert` whose
    data is that message (formatted in the graph). Under XLA (no string ops): nothing; the status
    is in the solve statistics. Returns a list of control dependencies for the outputs.
    """
    status, t, dt, counts = result["status"], result["t_end"], result["fail_dt"], result["counts"]
    if tf.executing_eagerly():
        if int(status) != STATUS_OK:
            raise tf.errors.InvalidArgumentError(
                None, None, status_message(name, status, t, dt, counts, t_final, max_num_steps)
            )
        return []
    if _in_xla_context():
        return []
    causes = list(CAUSES)
    causes[STATUS_MAX_STEPS] += f" (max_num_steps={max_num_steps} accepted + rejected steps)"
    message = tf.strings.join(
        [
            f"odeint({name}): ",
            tf.gather(tf.constant(causes), status),
            tf.strings.format(
                "; stopped at t = {} with step size {} after {} accepted and {} rejected steps, "
                "before the final time {}",
                (t, dt, counts[0], counts[1], t_final),
                summarize=-1,
            ),
        ]
    )
    check = tf.debugging.Assert(tf.equal(status, STATUS_OK), [message])
    return [check] if check is not None else []
