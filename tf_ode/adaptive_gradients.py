"""Gradients of the adaptive solves of `adaptive.py` (dopri5, bosh3, tsit5): `adaptive_solve`.

Gradients (all through `tf.custom_gradient`; the forward solve is not recorded on any tape):
  * "dto": discretise-then-optimise over the accepted steps. The forward keeps the state at the
    start of every accepted step (plus its t, dt and which outputs it produced); the backward
    walks the accepted steps in reverse, recomputing one step under a tape and pulling back the
    cotangent of its end state and of the dense outputs inside it (through the interpolant's
    stage weights). This is the exact gradient of the discrete map with the accepted step sizes
    held fixed (the controller is not differentiated). Memory: N_accepted states plus one step's
    intermediates.
  * "checkpoint": same gradient, less memory: the forward keeps the start state only of the first
    step after each output time (at most T states) and the accepted (t, dt) scalars; the backward
    replays one such segment at a time, then sweeps it backwards. Costs one more forward
    evaluation per accepted step.
  * "adjoint": optimise-then-discretise (Chen et al., 2018): the augmented system
    (y, a, g), dy/dt = f, da/dt = -a^T df/dy, dg/dt = -a^T df/dtheta is solved backwards with
    the same tableau and its own tolerances, interval by interval (one `tf.while_loop`),
    re-anchoring y and adding dL/dy(t_i) at every output time. The error norm covers y and a only
    (the "seminorm" of Kidger, Chen & Lyons, 2021), and g is formed for the floating-point
    variables read by func only.
  * Output times are not differentiated here; `integrate.odeint` adds their gradients.

Non-float variables read inside func (counters, seeds) receive no gradient (None).
"""

from collections.abc import Callable

import tensorflow as tf

from tf_ode.adaptive import (
    _in_xla_context,
    _Problem,
    _stop_recording,
    boundary_times,
    check_status,
    integrate,
)
from tf_ode.tableaux import ButcherTableau


def _replay_states(problem, y_start, ts, dts, start, stop):
    """Re-runs accepted steps start..stop-1 (no error estimate); per leaf [stop - start, ...]."""
    dtype = problem.dtype
    tas = [tf.TensorArray(dtype, size=stop - start, element_shape=leaf.shape) for leaf in y_start]

    def body(k, y, tas):
        tas = [ta.write(k - start, leaf) for ta, leaf in zip(tas, y)]
        t_k, dt_k = ts[k], dts[k]
        y_next, _, _, _ = problem.step(t_k, y, dt_k, problem.f(t_k, y), with_error=False)
        return k + 1, y_next, tas

    _, _, tas = tf.while_loop(
        lambda k, y, tas: k < stop, body, (start, list(y_start), tas), parallel_iterations=1
    )
    return [ta.stack() for ta in tas]


def _step_vjp(problem, y_k, t_k, dt_k, adj, variables, dense_cotangent):
    """Pulls adj (cotangent of the step's end state) and the dense outputs' cotangents back.

    dense_cotangent: None, or (thetas [m], cotangents per leaf [m, ...]) of the outputs read off
    this step's interpolant (y + dt sum_j b_j(theta) k_j: linear in y and in the stages).
    Returns (cotangent of y_k, cotangents of variables).
    """
    num_leaves = len(y_k)
    with tf.GradientTape() as tape:
        tape.watch(y_k)
        tape.watch(variables)
        f_k = problem.f(t_k, y_k)
        if dense_cotangent is None:
            y_next, _, _, _ = problem.step(t_k, y_k, dt_k, f_k, with_error=False)
            targets, cotangents = y_next, list(adj)
        else:
            k, y_next = problem.stages(t_k, y_k, dt_k, f_k, problem.tableau.num_stages)
            thetas, cots = dense_cotangent
            targets, cotangents = list(y_next), list(adj)
            for j, weight in problem.dense_weights(thetas):
                for leaf in range(num_leaves):
                    w = tf.reshape(weight, [-1] + [1] * cots[leaf].shape[1:].rank)
                    targets.append(k[j][leaf])
                    cotangents.append(dt_k * tf.reduce_sum(w * cots[leaf], axis=0))
    grads = tape.gradient(
        targets,
        y_k + variables,
        output_gradients=cotangents,
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )
    grads = [tf.convert_to_tensor(x) for x in grads]
    d_y = grads[:num_leaves]
    if dense_cotangent is not None:
        d_y = [d + tf.reduce_sum(c, axis=0) for d, c in zip(d_y, dense_cotangent[1])]
    return d_y, grads[num_leaves:]


def _reverse_sweep(problem, state_at, start, stop, rec, t_out, d_outputs, adj, g, variables):
    """Pulls adj back through accepted steps stop-1 .. start, adding each step's output cotangents."""
    num_leaves = len(adj)
    ts, dts, tns, los, his = rec

    def body(k, adj, g):
        k = k - 1
        lo, hi, t_k, dt_k, tn_k = los[k], his[k], ts[k], dts[k], tns[k]
        ends_here = (hi > lo) & tf.equal(tf.gather(t_out, tf.maximum(hi - 1, 0)), tn_k)
        stop_interior = hi - tf.cast(ends_here, tf.int32)
        # The output at the step's end is its end state: its cotangent joins adj.
        adj = [
            a + tf.where(ends_here, tf.gather(d, tf.maximum(hi - 1, 0)), tf.zeros_like(a))
            for a, d in zip(adj, d_outputs)
        ]
        # Recompute step k only once the cotangent from step k+1 exists, so no executor can run
        # several steps' recomputations ahead (each holds a step's activations).
        with tf.control_dependencies(adj):
            y_k = [tf.identity(leaf) for leaf in state_at(k)]

        def plain():
            return _step_vjp(problem, y_k, t_k, dt_k, adj, variables, None)

        def dense():
            idx = tf.range(lo, stop_interior)
            thetas = (tf.gather(t_out, idx) - t_k) / dt_k
            cots = [tf.gather(d, idx) for d in d_outputs]
            return _step_vjp(problem, y_k, t_k, dt_k, adj, variables, (thetas, cots))

        if t_out.shape[0] > 2:
            d_y, d_vars = tf.cond(stop_interior > lo, dense, plain)
        else:
            d_y, d_vars = plain()
        return k, list(d_y), [a + b for a, b in zip(g, d_vars)]

    _, adj, g = tf.while_loop(
        lambda k, adj, g: k > start, body, (stop, list(adj), list(g)), parallel_iterations=1
    )
    del num_leaves
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
    step_t=(),
    jump_t=(),
):
    """Adaptive solve of dy/dt = func(t, y) at the times t (see module docstring).

    Args:
      func: `func(t, y)` with y's structure.
      y0: nested float tensors of one dtype (already validated).
      t: 1-D [T] strictly monotone output times of y0's dtype (already validated; not
        differentiated here).
      tableau: the embedded RK pair.
      gradient: "dto", "checkpoint" or "adjoint".
      rtol, atol: forward tolerances; adjoint_rtol, adjoint_atol: the adjoint solve's.
      max_num_steps: bound on attempted steps (accepted + rejected) of one solve, or None.
      first_step_size: initial step magnitude; None = Hairer's automatic choice.
      step_t, jump_t: static forced step boundaries inside (t[0], t[-1]), sorted in the
        direction of integration; after a jump_t boundary f is evaluated afresh.

    Returns:
      (ys, stats): ys with y0's structure, leaves [T, ...]; stats a dict of int32 scalars
      accepted_steps, rejected_steps, forward_evaluations, backward_evaluations (None for
      "adjoint", whose backward evaluations are known only once the backward pass runs), status.
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
    dtype = flat_y0[0].dtype
    problem = _Problem(func, structure, tableau, dtype)
    stats = {}
    record = {"dto": "states", "checkpoint": "anchors"}.get(gradient)
    times = tf.stop_gradient(t)

    @tf.custom_gradient
    def solve(*leaves):
        leaves = list(leaves)
        with _stop_recording():
            boundaries = None
            if step_t or jump_t:
                boundaries = boundary_times(times[-1], step_t, jump_t, dtype)
            result = integrate(
                problem,
                leaves,
                times,
                rtol=rtol,
                atol=atol,
                max_num_steps=max_num_steps,
                record=record,
                first_step_size=first_step_size,
                boundaries=boundaries,
            )
            checks = check_status(tableau.name, result, times[-1], max_num_steps)
            with tf.control_dependencies(checks):
                stacked = [tf.identity(o) for o in result["outputs"]]
        counts = result["counts"]
        stats["accepted_steps"] = counts[0]
        stats["rejected_steps"] = counts[1]
        stats["forward_evaluations"] = counts[2]
        stats["status"] = result["status"]
        per_step = tableau.solution_stages
        dense_extra = counts[4] * (tableau.num_stages - per_step)
        if gradient == "dto":
            stats["backward_evaluations"] = counts[0] * per_step + dense_extra
        elif gradient == "checkpoint":
            stats["backward_evaluations"] = counts[0] * (2 * per_step) + dense_extra
        else:
            stats["backward_evaluations"] = None
        rec = result["record"]

        def grad(*d_outputs, variables=None):
            variables = list(variables or [])
            float_vars = _float_variables(variables)
            d_outputs = [tf.convert_to_tensor(d) for d in d_outputs]
            g = [tf.zeros_like(v) for v in float_vars]
            if gradient == "adjoint":
                adj, g = _adjoint_backward(
                    problem, stacked, d_outputs, g, float_vars, times,
                    rtol=adjoint_rtol, atol=adjoint_atol, max_num_steps=max_num_steps,
                )  # fmt: skip
            else:
                steps = (
                    rec["ts"].stack(),
                    rec["dts"].stack(),
                    rec["tns"].stack(),
                    rec["lo"].stack(),
                    rec["hi"].stack(),
                )
                n = counts[0]
                adj = [tf.zeros_like(d[0]) for d in d_outputs]
                if gradient == "dto":
                    states = [s.stack() for s in rec["states"]]
                    adj, g = _reverse_sweep(
                        problem, lambda k: [s[k] for s in states], 0, n, steps, times,
                        d_outputs, adj, g, float_vars,
                    )  # fmt: skip
                else:
                    adj, g = _checkpoint_backward(
                        problem, rec, steps, n, times, d_outputs, adj, g, float_vars
                    )
            adj = [a + d[0] for a, d in zip(adj, d_outputs)]
            if variables:
                return adj, _variable_grads(variables, g)
            return adj

        return stacked, grad

    ys = solve(*flat_y0)
    return tf.nest.pack_sequence_as(structure, list(ys)), stats


def _checkpoint_backward(problem, rec, steps, n, t_out, d_outputs, adj, g, variables):
    """Replays and sweeps one anchored segment at a time, last segment first."""
    anchors = [s.stack() for s in rec["states"]]
    anchor_steps = rec["anchor_steps"].stack()
    num_anchors = rec["num_anchors"]
    ts, dts = steps[0], steps[1]

    def body(a, adj, g):
        a = a - 1
        start = anchor_steps[a]
        following = tf.gather(anchor_steps, tf.minimum(a + 1, num_anchors - 1))
        stop = tf.where(a + 1 < num_anchors, following, n)
        with tf.control_dependencies(adj):
            y_start = [tf.identity(x[a]) for x in anchors]
        states = _replay_states(problem, y_start, ts, dts, start, stop)
        adj, g = _reverse_sweep(
            problem, lambda k: [s[k - start] for s in states], start, stop, steps, t_out,
            d_outputs, adj, g, variables,
        )  # fmt: skip
        return a, adj, g

    _, adj, g = tf.while_loop(
        lambda a, adj, g: a > 0, body, (num_anchors, list(adj), list(g)), parallel_iterations=1
    )
    return adj, g


def _adjoint_backward(problem, stacked, d_outputs, g, variables, t, *, rtol, atol, max_num_steps):
    """Continuous adjoint over the intervals t[T-1] -> ... -> t[0] (one tf.while_loop)."""
    num_times = t.shape[0]
    adj = [d[num_times - 1] for d in d_outputs]

    def body(i, adj, g):
        y1 = [tf.gather(o, i + 1) for o in stacked]
        adj, g = _adjoint_interval(
            problem, y1, adj, g, variables, t[i + 1], t[i],
            rtol=rtol, atol=atol, max_num_steps=max_num_steps,
        )  # fmt: skip
        adj = [a + tf.gather(d, i) for a, d in zip(adj, d_outputs)]
        return i - 1, adj, g

    _, adj, g = tf.while_loop(
        lambda i, adj, g: i >= 0, body, (tf.constant(num_times - 2), list(adj), list(g))
    )
    # The loop added dL/dy(t_0); the caller adds it once more for y0 itself.
    adj = [a - d[0] for a, d in zip(adj, d_outputs)]
    return adj, g


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
    result = integrate(
        aug_problem,
        aug0,
        tf.stack([t1, t0]),
        rtol=rtol,
        atol=atol,
        max_num_steps=max_num_steps,
        mask=mask,
    )
    checks = check_status(f"{problem.tableau.name} adjoint", result, t0, max_num_steps)
    with tf.control_dependencies(checks):
        final = [tf.identity(x) for x in result["y_end"]]
    return final[n_y : 2 * n_y], final[2 * n_y :]
