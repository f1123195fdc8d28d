"""Gradients of `odeint(method="bdf", gradient="sensitivity")`: forward sensitivities.

With x = (y0, theta) flattened (N state entries, P entries of the floating-point variables
func reads), the sensitivities S(t) = dy(t)/dx [N, N + P] obey

    dS/dt = J_y(t, y) S + [0 | J_theta(t, y)],   S(t0) = [I | 0],

with J_y = df/dy and J_theta = df/dtheta. The augmented state z = (y, S), N (1 + N + P)
entries, is solved forward with the same BDF solver, tolerances and output times, and the
gradient is the contraction sum_k S(t_k)^T dL/dy(t_k).

Why forward sensitivities and not a backward adjoint: the sensitivity system has the Jacobian
of the state itself (J_y, block by block), so it is exactly as stiff as the forward problem and
just as stable under BDF. TFP's continuous adjoint instead re-solves the state backwards from
t[-1] (stiff decaying modes become exp(+1000 t) growing ones); an interpolated or checkpointed
adjoint would avoid that but needs dense output of the forward solve, which TFP's BDF does not
expose. The price is the size: N (N + P) extra states, and BDF's dense Newton matrix of the
augmented system is [N (1 + N + P)]^2, so the augmented size is capped
(`BDF_MAX_SENSITIVITIES` on N (N + P)): small states and few parameters only.

Newton's matrix uses the block-diagonal Jacobian I_(1+N+P) (x) J_y (the "simultaneous
corrector" of CVODES): it drops the second-derivative coupling dS'/dy, which changes only how
fast Newton converges, not the equations solved, and needs no second derivatives of func.

The augmented solve runs only in the backward pass (a forward solve with no tape costs
nothing extra); it takes its own adaptive steps, whose error norm covers S too, so the gradient
is the derivative of the exact flow to about the tolerance, not the derivative of the forward
solve's discrete map. Output times are not differentiated here; `integrate.odeint` adds their
gradients from this one (dL/dt_k = <dL/dy(t_k), f(t_k, y(t_k))>, and for t[0]
-<dL/dy0 - dL/dy(t_0), f(t_0, y0)>). Non-float variables read inside func get None.
"""

from collections.abc import Callable

import tensorflow as tf
import tensorflow_probability as tfp

# Cap on N * (N + P), the number of sensitivity states. At the cap the augmented state has
# ~1,050 entries: BDF's dense Newton matrix is ~9 MB in float64 and each factorization
# O(10^9) flops.
BDF_MAX_SENSITIVITIES = 1024


def _flat(leaves):
    return tf.concat([tf.reshape(leaf, [-1]) for leaf in leaves], axis=0)


def _unflat(vector, like):
    parts = tf.split(vector, [leaf.shape.num_elements() for leaf in like])
    return [tf.reshape(part, leaf.shape) for part, leaf in zip(parts, like)]


def _check_sizes(leaves, float_vars):
    for leaf in leaves:
        if not leaf.shape.is_fully_defined():
            raise ValueError(
                "odeint(method='bdf', gradient='sensitivity') needs y0 with a static shape (the "
                f"sensitivity matrix is N x (N + P)). Received: shape={leaf.shape}"
            )
    n = sum(leaf.shape.num_elements() for leaf in leaves)
    p = sum(v.shape.num_elements() for v in float_vars)
    if n * (n + p) > BDF_MAX_SENSITIVITIES:
        raise ValueError(
            f"odeint(method='bdf', gradient='sensitivity') integrates N x (N + P) = {n} x "
            f"({n} + {p}) = {n * (n + p)} sensitivities with the state, more than "
            f"BDF_MAX_SENSITIVITIES = {BDF_MAX_SENSITIVITIES} (BDF's Newton matrix is dense in "
            "N (1 + N + P)). Use a smaller state or fewer variables in func, or an explicit "
            "method (e.g. method='dopri5', gradient='dto'). "
            f"Received: N={n} state entries, P={p} variable entries"
        )
    return n, p


def sensitivities(
    func: Callable,
    structure,
    leaves,
    t,
    variables,
    *,
    rtol: float,
    atol: float,
    max_num_steps: int | None,
    first_step_size: float | None,
):
    """Solves the state and its sensitivities to (y0, variables) with BDF (module docstring).

    Args:
      func: `func(t, y)` with y's structure.
      structure: y0's structure.
      leaves: flattened y0, float tensors of one dtype with static shapes (N entries in all).
      t: 1-D [T] output times, t[0] the initial time (not differentiated).
      variables: floating-point variables read by func (P entries in all).
      rtol, atol, max_num_steps, first_step_size: as for the forward BDF solve.

    Returns:
      [T, N + P, N]: entry [k, j, i] = d y_i(t_k) / d x_j, with y and x = (y0, variables)
      flattened in `tf.nest.flatten` / list order.
    """
    n, p = _check_sizes(leaves, variables)
    m = n + p
    dtype = leaves[0].dtype

    def field(time, y):
        return _flat(
            tf.nest.flatten(func(time, tf.nest.pack_sequence_as(structure, _unflat(y, leaves))))
        )

    def jacobians(time, y):
        with tf.GradientTape() as tape:
            tape.watch(y)
            tape.watch(variables)
            f = field(time, y)
        jac = tape.jacobian(
            f, [y] + list(variables), unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return f, jac[0], [tf.reshape(j, [n, -1]) for j in jac[1:]]

    def ode_fn(time, z):
        # Rows of s are the columns of S: s[j] = dy/dx_j, so z = (y, s_0, ..., s_(m-1)).
        y, s = z[:n], tf.reshape(z[n:], [m, n])
        f, j_y, j_theta = jacobians(time, y)
        ds = tf.matmul(s, j_y, transpose_b=True)
        if p:
            forcing = tf.concat([tf.zeros([n, n], dtype), tf.transpose(tf.concat(j_theta, 1))], 0)
            ds = ds + forcing
        return tf.concat([f, tf.reshape(ds, [-1])], axis=0)

    def jacobian_fn(time, z):
        with tf.GradientTape() as tape:
            y = z[:n]
            tape.watch(y)
            f = field(time, y)
        j_y = tape.jacobian(f, y, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        # I_(m+1) (x) J_y: block diagonal over y and the m sensitivity columns.
        eye = tf.eye(m + 1, dtype=dtype)
        return tf.reshape(eye[:, None, :, None] * j_y[None, :, None, :], [n * (m + 1)] * 2)

    s0 = tf.concat([tf.eye(n, dtype=dtype), tf.zeros([p, n], dtype)], axis=0)
    z0 = tf.concat([_flat(leaves), tf.reshape(s0, [-1])], axis=0)
    solver = tfp.math.ode.BDF(
        rtol=rtol, atol=atol, first_step_size=first_step_size, max_num_steps=max_num_steps
    )
    results = solver.solve(ode_fn, t[0], z0, solution_times=t, jacobian_fn=jacobian_fn)
    status = results.diagnostics.status
    check = tf.debugging.assert_equal(
        status,
        tf.zeros_like(status),
        message="odeint(method='bdf', gradient='sensitivity'): the BDF solve of the state and "
        f"its sensitivities failed (status != 0; e.g. max_num_steps={max_num_steps} reached)",
    )
    with tf.control_dependencies([check] if check is not None else []):
        return tf.reshape(results.states[:, n:], [-1, m, n])


def sensitivity_gradient(solve, func: Callable, y0, t, **solver_options):
    """`solve(y0)` -> (ys, nfe, status), with gradients by forward sensitivities.

    Args:
      solve: the forward (plain) BDF solve of y0 at the times t.
      func, y0, t: the problem (t not differentiated).
      **solver_options: rtol, atol, max_num_steps, first_step_size of `sensitivities`.

    Returns:
      (ys, nfe, status) of the forward solve; a tape's gradient through ys reaches y0 and the
      floating-point variables read by func.
    """
    structure = y0
    holder = {}
    times = tf.stop_gradient(t)

    @tf.custom_gradient
    def run(*leaves):
        leaves = list(leaves)
        ys, holder["nfe"], holder["status"] = solve(tf.nest.pack_sequence_as(structure, leaves))
        flat_ys = tf.nest.flatten(ys)

        def grad(*d_ys, variables=None):
            variables = list(variables or [])
            float_vars = [v for v in variables if v.dtype.is_floating]

            def solve_sensitivities():
                return sensitivities(func, structure, leaves, times, float_vars, **solver_options)

            # Eager, TFP's BDF loop runs op by op (a 2-state solve with 6 sensitivities took
            # 250 s); traced once it takes seconds.
            if tf.executing_eagerly():
                solve_sensitivities = tf.function(solve_sensitivities)
            s = solve_sensitivities()
            # [T, N]: the upstream cotangents at every output time, flattened like y.
            d_flat = tf.concat(
                [
                    tf.reshape(
                        tf.zeros_like(y) if d is None else tf.convert_to_tensor(d), [y.shape[0], -1]
                    )
                    for y, d in zip(flat_ys, d_ys)
                ],
                axis=1,
            )
            # [N + P]: sum_k S(t_k)^T dL/dy(t_k).
            total = tf.einsum("ti,tji->j", d_flat, s)
            n = sum(leaf.shape.num_elements() for leaf in leaves)
            d_leaves = _unflat(total[:n], leaves)
            d_float = _unflat(total[n:], float_vars) if float_vars else []
            if not variables:
                return d_leaves
            it = iter(d_float)
            return d_leaves, [next(it) if v.dtype.is_floating else None for v in variables]

        return flat_ys, grad

    flat = run(*tf.nest.flatten(y0))
    ys = tf.nest.pack_sequence_as(structure, list(flat))
    return ys, holder["nfe"], holder["status"]
