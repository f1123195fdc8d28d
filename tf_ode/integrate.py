"""`odeint`: one solver API over nested states with selectable gradient modes.

Methods: fixed-step "euler", "rk2", "rk4" (`solvers.py`); adaptive embedded pairs "dopri5",
"bosh3", "tsit5" (ours: `adaptive.py` and its gradients `adaptive_gradients.py`, float64-exact
tableaux in `tableaux.SOLVERS`); and
"tfp_dopri5" (TFP's DormandPrince, kept for comparison; continuous adjoint only) and "bdf" (TFP's
BDF, the stiff solver; small states only; its gradient is "sensitivity", below).

Gradient modes (ANODE, arXiv 1902.10298; ANODEV2 spec section 1.5):
  * "dto": discretise-then-optimise; the exact gradient of the discrete solve. Fixed step:
    plain backprop, memory O(intervals * num_steps * stages). Adaptive: backprop through the
    accepted steps, one checkpoint per accepted step (see `adaptive_gradients.py`).
  * "checkpoint": DTO with ANODE checkpointing. Fixed step: only the state at each output time
    is kept; the backward pass re-runs that interval under a tape once the interval's incoming
    gradient exists (a data dependency, so the recomputation cannot be scheduled early and
    memory stays O(intervals) + O(num_steps) under any op schedule). Adaptive: the accepted
    steps are replayed from the interval's start. Gradients equal "dto".
  * "adjoint": optimise-then-discretise (Chen et al., 2018). Fixed step: a reverse-time solve of
    the augmented system (y, a, g) with the same scheme and step count (`adjoint.py`); adaptive:
    the same system with the same tableau and its own tolerances. Approximate: differs from the
    discrete gradient by O(dt) and needs the state to be reconstructible backwards.
  * "sensitivity" ("bdf" only): forward sensitivities S = dy/d(y0, variables), solved with BDF
    together with the state in the backward pass and contracted with dL/dy(t_i)
    (`bdf_gradients.py`): stable on stiff problems, exact to about the tolerance, N (N + P)
    extra states (capped). "bdf" with "adjoint" solves, but a gradient through it raises
    (TFP's adjoint re-solves the state backwards, wrong on stiff problems; `tfp_solver.py`).

Output times t are differentiable in every mode. Fixed-step "dto" and "checkpoint": the exact
derivative of the discrete solve (t enters the step sizes). Adaptive methods, "tfp_dopri5", "bdf" and
the fixed-step "adjoint": the derivative of the exact flow, dL/dt_i = <dL/dy(t_i), f(t_i, y(t_i))>
and dL/dt_0 = -<dL/dy0 - dL/dy(t_0), f(t_0, y0)> (as torchdiffeq's `odeint_adjoint` forms them),
which costs one evaluation of f per output time, only when a gradient with respect to t is
requested (`_with_flow_time_gradients`).
"""

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tensorflow.python.eager import record as _record  # should_record_backprop: is t watched?

from tf_ode import adaptive, adaptive_gradients, solvers, tableaux, tfp_solver
from tf_ode import adjoint as adjoint_lib

ADAPTIVE_METHODS = tuple(tableaux.SOLVERS)
TFP_METHODS = {"tfp_dopri5": "dormand_prince", "bdf": "bdf"}
METHODS = solvers.FIXED_STEP_METHODS + ADAPTIVE_METHODS + tuple(TFP_METHODS)
GRADIENTS = ("dto", "checkpoint", "adjoint", "sensitivity")


def is_adaptive(method: str) -> bool:
    """True for step-size-controlled methods (ours and TFP's), which take no num_steps."""
    return method in ADAPTIVE_METHODS or method in TFP_METHODS


@dataclasses.dataclass
class SolveInfo:  # noqa: PLW1641 - a record, compared by value
    """Diagnostics of one `odeint` call.

    Attributes:
      num_function_evaluations: forward evaluations of `func` (Python int for fixed-step
        methods, int32 scalar tensor for adaptive ones; rejected steps included).
      num_backward_function_evaluations: evaluations of `func` the backward pass makes
        (recomputation / augmented field); None where unknown before the backward pass runs
        (adaptive "adjoint" and "tfp_dopri5": count them with `ODEBlock.nfe`).
      num_accepted_steps: accepted steps (fixed step: num_steps * intervals).
      num_rejected_steps: rejected steps (0 for fixed-step methods).
      status: 0 on success; otherwise `adaptive.STATUS_*` (1 max_num_steps, 2 step-size
        underflow, 3 NaN, 4 Inf). Outside XLA a failure raises instead; under
        `jit_compile=True` check this status.

    A `SolveInfo` can be returned from a `tf.function` (it implements `tf.nest`'s
    `__tf_flatten__` protocol; Python ints come back as tensors).
    """

    num_function_evaluations: object
    num_backward_function_evaluations: object = None
    num_accepted_steps: object = None
    num_rejected_steps: object = 0
    status: object = 0

    def __tf_flatten__(self):
        names = tuple(field.name for field in dataclasses.fields(self))
        return names, tuple(getattr(self, name) for name in names)

    @classmethod
    def __tf_unflatten__(cls, names, components):
        return cls(**dict(zip(names, components)))


def validate_options(method, num_steps, gradient):
    if method not in METHODS:
        raise ValueError(f"Unknown method. Expected one of {METHODS}. Received: method={method!r}")
    if gradient not in GRADIENTS:
        raise ValueError(
            f"Unknown gradient mode. Expected one of {GRADIENTS}. Received: gradient={gradient!r}"
        )
    if method == "tfp_dopri5" and gradient != "adjoint":
        raise ValueError(
            "method='tfp_dopri5' is TFP's DormandPrince, whose only gradient is the continuous "
            "adjoint: use gradient='adjoint', or method='dopri5' (ours) for DTO. "
            f"Received: gradient={gradient!r}"
        )
    if method == "bdf" and gradient not in ("sensitivity", "adjoint"):
        raise ValueError(
            f"method='bdf' has no gradient={gradient!r} (TFP's BDF is not differentiated step by "
            "step): use gradient='sensitivity' (forward sensitivities, small states only). "
            f"Received: gradient={gradient!r}"
        )
    if gradient == "sensitivity" and method != "bdf":
        raise ValueError(
            "gradient='sensitivity' (forward sensitivities) is implemented for method='bdf' "
            "only; explicit methods take 'dto', 'checkpoint' or 'adjoint'. "
            f"Received: method={method!r}"
        )
    if is_adaptive(method):
        if num_steps is not None:
            raise ValueError(
                "num_steps applies only to fixed-step methods. "
                f"Received: method={method!r}, num_steps={num_steps}"
            )
    elif num_steps is not None and (
        not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1
    ):
        raise ValueError(
            f"num_steps must be a positive Python int or None. Received: num_steps={num_steps!r}"
        )


def _prepare(y0, t):
    # Python numbers become float64 (as in numpy); tensors keep their dtype.
    y0 = tf.nest.map_structure(lambda x: tf.convert_to_tensor(x, dtype_hint=tf.float64), y0)
    leaves = tf.nest.flatten(y0)
    if not leaves:
        raise ValueError("y0 must contain at least one tensor. Received: an empty structure")
    for leaf in leaves:
        if not leaf.dtype.is_floating:
            raise ValueError(
                f"Every leaf of y0 must be floating point. Received: dtype={leaf.dtype.name}"
            )
    dtypes = sorted({leaf.dtype.name for leaf in leaves})
    if len(dtypes) > 1:
        raise ValueError(
            "Every leaf of y0 must have the same floating dtype (one time axis, one step size). "
            f"Received: dtypes={dtypes}"
        )
    dtype = leaves[0].dtype
    if isinstance(t, (tf.Tensor, tf.Variable)) and t.dtype.is_floating and t.dtype != dtype:
        raise ValueError(
            f"t has dtype {t.dtype.name} but y0 has {dtype.name}; pass t in y0's dtype. "
            f"Received: t.dtype={t.dtype.name}"
        )
    t = tf.cast(tf.convert_to_tensor(t, dtype_hint=dtype), dtype)
    if t.shape.rank != 1 or t.shape[0] is None or t.shape[0] < 2:
        raise ValueError(
            f"t must be a 1-D tensor of static length >= 2 (first = initial time). Received: shape={t.shape}"
        )
    static_t = tf.get_static_value(t)
    if static_t is not None:
        steps = np.diff(static_t)
        if not (np.all(steps > 0) or np.all(steps < 0)):
            raise ValueError(
                f"t must be strictly increasing or strictly decreasing. Received: t={static_t.tolist()}"
            )
    else:
        steps = t[1:] - t[:-1]
        check = tf.debugging.Assert(
            tf.reduce_all(steps > 0) | tf.reduce_all(steps < 0),
            ["t must be strictly increasing or strictly decreasing. Received: t =", t],
        )
        with tf.control_dependencies([check] if check is not None else []):
            t = tf.identity(t)
    return y0, t


def _checked(func, y0):
    """Wraps func so a wrong output structure, dtype or shape fails with a clear ValueError."""
    leaves = tf.nest.flatten(y0)
    paths = ["/".join(str(k) for k in path) for path in _paths(y0)] or [""] * len(leaves)
    paths_and_leaves = list(zip(paths, leaves))

    def checked(t, y):
        out = func(t, y)
        try:
            tf.nest.assert_same_structure(out, y0)
        except (ValueError, TypeError) as e:
            raise ValueError(f"func(t, y) must return y's structure. Received: {e}") from None
        for (path, leaf), value in zip(paths_and_leaves, tf.nest.flatten(out)):
            value = tf.convert_to_tensor(value)
            name = path or "y"
            if value.dtype != leaf.dtype:
                raise ValueError(
                    f"func(t, y) returned dtype {value.dtype.name} for {name!r}, but y0 has "
                    f"{leaf.dtype.name}. Received: dtype={value.dtype.name}"
                )
            if not value.shape.is_compatible_with(leaf.shape):
                raise ValueError(
                    f"func(t, y) returned shape {value.shape} for {name!r}, but y0 has "
                    f"{leaf.shape}. Received: shape={value.shape}"
                )
        return out

    return checked


def _paths(structure, prefix=()):
    """Key paths of the leaves of a dict/list/tuple nest, in `tf.nest.flatten` order."""
    if isinstance(structure, dict):
        return [p for k in sorted(structure) for p in _paths(structure[k], prefix + (k,))]
    if isinstance(structure, (list, tuple)):
        return [p for i, v in enumerate(structure) for p in _paths(v, prefix + (i,))]
    return [prefix]


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
    first_step_size: float | None = None,
    adjoint_rtol: float | None = None,
    adjoint_atol: float | None = None,
    return_info: bool = False,
    step_t=None,
    jump_t=None,
):
    """Solves dy/dt = func(t, y), y(t[0]) = y0 and returns y at the times `t`.

    Wrap calls in `tf.function`: eager execution runs every step's ops one by one (tens of times
    slower for adaptive methods).

    Args:
      func: `func(t, y)` returning dy/dt with the structure, dtypes and shapes of `y`. May read
        variables (Keras or tf.Variable); every gradient mode differentiates the floating
        ones (non-float variables, e.g. counters, get None).
      y0: a float tensor or nested structure (dict/tuple/list) of float tensors, one dtype.
        Python numbers become float64.
      t: 1-D [T] output times, static T >= 2, strictly increasing or strictly decreasing;
        `t[0]` is the initial time. A tensor must have y0's dtype. Differentiable (module
        docstring). Adaptive methods step freely and read every t[i] before t[-1] off the dense
        output (no extra evaluations); they land exactly on t[-1].
      method: one of `METHODS` (see module docstring).
      num_steps: fixed steps per output interval (None = 1). Must be None for adaptive methods.
      gradient: "dto", "checkpoint", "adjoint" or ("bdf" only) "sensitivity" (see module
        docstring).
      rtol, atol: tolerances of the adaptive methods.
      max_num_steps: adaptive step bound (accepted + rejected) per solve, None = unbounded.
      first_step_size: adaptive initial step; None = Hairer's automatic choice (ours) or
        TFP's default 1e-3 ("tfp_dopri5").
      adjoint_rtol, adjoint_atol: tolerances of the adaptive adjoint solve (default rtol, atol).
      return_info: also return a `SolveInfo`.
      step_t: adaptive methods only: static times strictly inside (t[0], t[-1]) the steps must
        land on (diffrax `PIDController(step_ts=...)`; `step_t=t` steps onto every output time).
      jump_t: as step_t, and f is evaluated afresh after each (the field may be discontinuous
        there; diffrax `jump_ts`). Each costs one evaluation.

    Returns:
      `ys` with the structure of y0, each leaf of shape [T, *leaf.shape]; plus `SolveInfo`
      when `return_info`.

    Raises:
      ValueError: unknown method/gradient, bad num_steps, non-float or mixed-dtype y0, bad or
        non-monotone t, t of another dtype, func returning another structure/dtype/shape.
      tf.errors.InvalidArgumentError: (at run time, adaptive methods) max_num_steps exceeded,
        step-size underflow, or func returning NaN / Inf, naming the cause, t, the step size and
        the step counts (under XLA: no error, `SolveInfo.status` says it).
    """
    validate_options(method, num_steps, gradient)
    if max_num_steps is not None and (not isinstance(max_num_steps, int) or max_num_steps < 1):
        raise ValueError(
            f"max_num_steps must be a positive int or None. Received: max_num_steps={max_num_steps!r}"
        )
    y0, t = _prepare(y0, t)
    func = _checked(func, y0)
    step_t, jump_t = _boundaries(method, t, step_t, jump_t)
    num_intervals = t.shape[0] - 1
    if method in TFP_METHODS:
        results = {}

        def tfp_solve(y_start, times):
            ys, results["nfe"], results["status"] = tfp_solver.dormand_prince_solve(
                func,
                y_start,
                times,
                rtol=rtol,
                atol=atol,
                max_num_steps=max_num_steps,
                first_step_size=(
                    1e-3 if first_step_size is None and method == "tfp_dopri5" else first_step_size
                ),
                solver=TFP_METHODS[method],
                gradient=gradient,
            )
            return ys

        ys = _with_flow_time_gradients(func, y0, t, tfp_solve)
        nfe, status = results["nfe"], results["status"]
        info = SolveInfo(num_function_evaluations=nfe, status=status)
        return (ys, info) if return_info else ys
    if method in ADAPTIVE_METHODS:
        stats = {}

        def adaptive_solve(y_start, times):
            ys, solve_stats = adaptive_gradients.adaptive_solve(
                func,
                y_start,
                times,
                tableau=tableaux.SOLVERS[method],
                gradient=gradient,
                rtol=rtol,
                atol=atol,
                max_num_steps=max_num_steps,
                adjoint_rtol=rtol if adjoint_rtol is None else adjoint_rtol,
                adjoint_atol=atol if adjoint_atol is None else adjoint_atol,
                first_step_size=first_step_size,
                step_t=step_t,
                jump_t=jump_t,
            )
            stats.update(solve_stats)
            return ys

        ys = _with_flow_time_gradients(func, y0, t, adaptive_solve)
        info = SolveInfo(
            num_function_evaluations=stats["forward_evaluations"],
            num_backward_function_evaluations=stats["backward_evaluations"],
            num_accepted_steps=stats["accepted_steps"],
            num_rejected_steps=stats["rejected_steps"],
            status=stats["status"],
        )
        return (ys, info) if return_info else ys

    num_steps = 1 if num_steps is None else num_steps
    forward_nfe = solvers.num_evaluations(method, num_steps, num_intervals)
    info = SolveInfo(
        num_function_evaluations=forward_nfe,
        num_backward_function_evaluations={"dto": 0, "checkpoint": forward_nfe}.get(
            gradient, forward_nfe
        ),
        num_accepted_steps=num_steps * num_intervals,
    )
    if gradient == "adjoint":
        ys = _with_flow_time_gradients(
            func,
            y0,
            t,
            lambda y_start, times: adjoint_lib.fixed_step_adjoint_solve(
                func, y_start, times, method=method, num_steps=num_steps
            ),
        )
        return (ys, info) if return_info else ys

    states = [y0]
    y = y0
    for i in range(num_intervals):
        t_start, t_end = t[i], t[i + 1]

        def interval(y_start, t_start=t_start, t_end=t_end):
            return solvers.integrate_interval(func, y_start, t_start, t_end, num_steps, method)

        if gradient == "checkpoint":
            # The interval's times are inputs of the checkpoint, so they receive gradients too.
            y = checkpointed(
                lambda y_start, t_start, t_end: solvers.integrate_interval(
                    func, y_start, t_start, t_end, num_steps, method
                ),
                y,
                args=(t_start, t_end),
            )
        else:
            y = interval(y)
        states.append(y)
    ys = _stack(states)
    return (ys, info) if return_info else ys


def _boundaries(method, t, step_t, jump_t):
    """Validates step_t / jump_t: static, finite, strictly inside (t[0], t[-1]); sorted along t."""
    if step_t is None and jump_t is None:
        return (), ()
    if method not in ADAPTIVE_METHODS:
        raise ValueError(
            f"step_t / jump_t apply to the adaptive methods {ADAPTIVE_METHODS} (fixed-step methods "
            f"step on a uniform grid per output interval). Received: method={method!r}"
        )
    static_t = tf.get_static_value(t)
    if static_t is None:
        raise ValueError(
            "step_t / jump_t need t with static values (to check they lie inside (t[0], t[-1])). "
            "Received: a dynamic t"
        )
    direction = 1.0 if static_t[-1] > static_t[0] else -1.0
    cleaned = {}
    for name, values in (("step_t", step_t), ("jump_t", jump_t)):
        if values is None:
            cleaned[name] = []
            continue
        values = tf.get_static_value(tf.convert_to_tensor(values, tf.float64))
        if values is None:
            raise ValueError(f"{name} must have static values. Received: a dynamic {name}")
        values = np.atleast_1d(values).astype(np.float64)
        inside = direction * (values - static_t[0]) > 0
        inside &= direction * (static_t[-1] - values) > 0
        if not np.all(np.isfinite(values)) or not np.all(inside):
            raise ValueError(
                f"{name} must hold finite times strictly between t[0] = {static_t[0]} and "
                f"t[-1] = {static_t[-1]}. Received: {name}={values.tolist()}"
            )
        cleaned[name] = sorted(set(values.tolist()), key=lambda v: direction * v)
    jumps = cleaned["jump_t"]
    steps = [v for v in cleaned["step_t"] if v not in set(jumps)]
    return tuple(steps), tuple(jumps)


def _dot(a, b):
    return tf.add_n([tf.reduce_sum(x * y) for x, y in zip(a, b)])


def _with_flow_time_gradients(func, y0, t, solve):
    """`solve(y0, t)` with gradients for t from the exact flow (module docstring).

    One custom-gradient op of t returns zeros that are added to y0 (before the solve) and to the
    outputs; its gradient is -<dL/dy0 - dL/dy(t_0), f(t_0, y0)> for t_0 and
    <dL/dy(t_i), f(t_i, y(t_i))> for the others, so f is evaluated only if some tape asks for
    the gradient of t. In eager mode nothing is added unless a tape watches t.
    """
    structure = y0
    leaves0 = tf.nest.flatten(y0)
    num_times = t.shape[0]
    if tf.executing_eagerly() and not _record.should_record_backprop([t]):
        return solve(y0, t)
    t_stopped = tf.stop_gradient(t)
    holder = {}

    def f_at(time, leaves):
        return tf.nest.flatten(func(time, tf.nest.pack_sequence_as(structure, list(leaves))))

    @tf.custom_gradient
    def tangents(times):
        zeros0 = [tf.zeros_like(x) for x in leaves0]
        # Dynamic shapes: inside tf.function the batch dimension may be unknown.
        zeros_out = [
            tf.zeros(tf.concat([tf.shape(times)[:1], tf.shape(x)], 0), x.dtype) for x in leaves0
        ]

        def grad(*cotangents):
            n = len(leaves0)
            d_y0 = [tf.zeros_like(x) if c is None else c for x, c in zip(leaves0, cotangents[:n])]
            d_out = [
                tf.zeros_like(x) if c is None else c
                for x, c in zip(holder["outputs"], cotangents[n:])
            ]
            values = [tf.stop_gradient(o) for o in holder["outputs"]]
            d_t = [-_dot([a - d[0] for a, d in zip(d_y0, d_out)], f_at(times[0], leaves0))]
            for i in range(1, num_times):
                f_i = f_at(times[i], [v[i] for v in values])
                d_t.append(_dot([d[i] for d in d_out], f_i))
            return tf.stack(d_t)

        return zeros0 + zeros_out, grad

    zeros = tangents(t)
    n = len(leaves0)
    y_start = tf.nest.pack_sequence_as(structure, [x + z for x, z in zip(leaves0, zeros[:n])])
    ys = tf.nest.flatten(solve(y_start, t_stopped))
    holder["outputs"] = ys
    return tf.nest.pack_sequence_as(structure, [y + z for y, z in zip(ys, zeros[n:])])


def checkpointed(fn: Callable, y, *, args=()):
    """Runs `fn(y, *args)` keeping only `y` (and `args`) for backprop; re-run under a tape in the backward.

    `args` are extra float tensors (e.g. the interval's end times) that receive gradients.

    Unlike `tf.recompute_grad`, the recomputation reads the incoming gradient first (a control
    dependency on it), and the gradient handed to the previous block waits for this block's
    weight gradients, so no scheduler can run a recomputation before the later block's backward
    is finished: one block's intermediates are alive at a time, even with one op at a time
    (`inter_op_threads=1`).
    The replay is the same ops on the same inputs, so gradients equal plain backprop. Floating
    variables read inside `fn` get gradients; non-float ones get None.
    """
    structure = y
    flat = tf.nest.flatten(y) + [tf.convert_to_tensor(a) for a in args]
    num_leaves = len(flat) - len(args)

    def run(leaves):
        state = tf.nest.pack_sequence_as(structure, list(leaves[:num_leaves]))
        return tf.nest.flatten(fn(state, *leaves[num_leaves:]) if args else fn(state))

    @tf.custom_gradient
    def block(*leaves):
        with adaptive._stop_recording():
            out = run(leaves)

        def grad(*d_out, variables=None):
            variables = list(variables or [])
            float_vars = [v for v in variables if v.dtype.is_floating]
            d_out = [tf.convert_to_tensor(d) for d in d_out]
            with tf.control_dependencies(d_out):
                inputs = [tf.identity(leaf) for leaf in leaves]
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                tape.watch(float_vars)
                replay = run(inputs)
            grads = tape.gradient(
                replay,
                inputs + float_vars,
                output_gradients=d_out,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            d_inputs = grads[: len(inputs)]
            float_grads = grads[len(inputs) :]
            # The previous block's recomputation starts from d_inputs: let it wait until this
            # block's weight gradients are done too, so this block's activations are freed first.
            with tf.control_dependencies([tf.convert_to_tensor(g) for g in float_grads]):
                d_inputs = [tf.identity(d) for d in d_inputs]
            it = iter(float_grads)
            d_vars = [next(it) if v.dtype.is_floating else None for v in variables]
            return (d_inputs, d_vars) if variables else d_inputs

        return out, grad

    out = block(*flat)
    return tf.nest.pack_sequence_as(structure, list(out))
