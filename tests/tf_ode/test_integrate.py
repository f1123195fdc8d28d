"""Numerics of `tf_ode.odeint` in float64: closed forms, orders, gradients, modes, errors."""

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

import tf_ode

F64 = tf.float64
ADAPTIVE = ("dopri5", "bosh3", "tsit5", "tfp_dopri5")


def _times(*values):
    return tf.constant(values, F64)


def _maybe_function(fn, method):
    # While loops run step by step in Python when eager, so wrap adaptive methods in tf.function;
    # fixed-step solves stay eager (their unrolled graphs are slow to trace at large num_steps).
    return tf.function(fn) if method in ADAPTIVE else fn


@pytest.mark.parametrize(
    "method,tol", [("euler", 2e-2), ("rk2", 2e-4), ("rk4", 1e-8), ("dopri5", 1e-6)]
)
def test_exponential_decay_closed_form(method, tol):
    a = 1.3
    t = _times(0.0, 0.25, 1.0)
    gradient = "adjoint" if method == "dopri5" else "dto"
    num_steps = None if method == "dopri5" else 32
    ys = tf_ode.odeint(
        lambda t, y: -a * y,
        tf.constant([1.0, -2.0], F64),
        t,
        method=method,
        num_steps=num_steps,
        gradient=gradient,
    )
    expected = np.exp(-a * np.array([0.0, 0.25, 1.0]))[:, None] * np.array([1.0, -2.0])
    assert ys.shape == (3, 2)
    np.testing.assert_allclose(ys.numpy(), expected, atol=tol, rtol=0)
    np.testing.assert_array_equal(ys[0].numpy(), [1.0, -2.0])


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_linear_system_matches_expm(method):
    rng = np.random.default_rng(0)
    a_mat = rng.normal(size=(4, 4)) * 0.7
    y0 = rng.normal(size=(3, 4))  # batch of 3 row vectors: dy/dt = y A
    num_steps = None if method == "dopri5" else 64
    gradient = "adjoint" if method == "dopri5" else "dto"

    def solve(y0):
        return tf_ode.odeint(
            lambda t, y: tf.matmul(y, a_mat),
            y0,
            _times(0.0, 0.5, 1.5),
            method=method,
            num_steps=num_steps,
            gradient=gradient,
            rtol=1e-10,
            atol=1e-12,
        )

    ys = _maybe_function(solve, method)(tf.constant(y0))
    for i, time in enumerate([0.0, 0.5, 1.5]):
        # DormandPrince interpolates intermediate solution times (4th-order dense output).
        tol = 1e-7 if method == "dopri5" else 1e-8
        np.testing.assert_allclose(ys[i].numpy(), y0 @ scipy.linalg.expm(time * a_mat), atol=tol)


@pytest.mark.parametrize("method,order", [("euler", 1.0), ("rk2", 2.0), ("rk4", 4.0)])
def test_convergence_order(method, order):
    # Nonlinear y' = -y^2, y(0) = 1: y(1) = 1/2. Order = log2 of the error ratio of two step sizes.
    steps = (16, 32) if method != "rk4" else (8, 16)
    errors = [
        abs(
            float(
                tf_ode.odeint(
                    lambda t, y: -y * y,
                    tf.constant(1.0, F64),
                    _times(0.0, 1.0),
                    method=method,
                    num_steps=n,
                )[-1]
            )
            - 0.5
        )
        for n in steps
    ]
    measured = np.log2(errors[0] / errors[1])
    assert abs(measured - order) < 0.1, (method, measured)


def test_nested_state_structure_and_shapes():
    y0 = {"z": tf.ones([2, 3], F64), "theta": (tf.ones([4], F64), tf.zeros([], F64))}

    def func(t, y):
        return {"z": -y["z"], "theta": (2.0 * y["theta"][0], tf.ones([], F64))}

    ys = tf_ode.odeint(func, y0, _times(0.0, 0.5, 1.0), method="rk4", num_steps=16)
    assert ys["z"].shape == (3, 2, 3)
    assert ys["theta"][0].shape == (3, 4)
    assert ys["theta"][1].shape == (3,)
    np.testing.assert_allclose(ys["theta"][0][-1].numpy(), np.full(4, np.exp(2.0)), rtol=1e-6)
    np.testing.assert_allclose(ys["theta"][1].numpy(), [0.0, 0.5, 1.0], atol=1e-14)


@pytest.mark.parametrize(
    "method,gradient",
    [("rk4", "dto"), ("rk4", "checkpoint"), ("rk4", "adjoint"), ("dopri5", "adjoint")],
)
def test_riccati_gradient_wrt_initial_state(method, gradient):
    # y' = y^2: y(t) = y0 / (1 - y0 t);  dy(1)/dy0 = 1 / (1 - y0)^2.
    # DormandPrince outputs come from its 4th-order dense-output interpolant: looser tolerance.
    y0 = tf.constant(0.4, F64)
    num_steps, tol = (None, 1e-6) if method == "dopri5" else (200, 1e-8)

    def solve(y0):
        with tf.GradientTape() as tape:
            tape.watch(y0)
            y1 = tf_ode.odeint(
                lambda t, y: y * y,
                y0,
                _times(0.0, 1.0),
                method=method,
                num_steps=num_steps,
                gradient=gradient,
                rtol=1e-11,
                atol=1e-12,
            )[-1]
        return y1, tape.gradient(y1, y0)

    y1, grad = _maybe_function(solve, method)(y0)
    np.testing.assert_allclose(float(y1), 0.4 / 0.6, rtol=tol)
    np.testing.assert_allclose(float(grad), 1.0 / 0.36, rtol=tol)


def _dense_problem(seed=0):
    rng = np.random.default_rng(seed)
    weight = tf.Variable(rng.normal(size=(3, 3)) * 0.8, dtype=F64)
    bias = tf.Variable(rng.normal(size=(3,)) * 0.3, dtype=F64)
    y0 = tf.constant(rng.normal(size=(2, 3)), F64)

    def func(t, y):
        return tf.tanh(tf.matmul(y, weight) + bias) + 0.1 * tf.cos(t) * y

    return func, y0, [weight, bias]


def _loss(ys):
    return tf.reduce_sum(tf.sin(ys[-1])) + 0.5 * tf.reduce_sum(ys[1] ** 2)


def _grads(func, y0, variables, t, **kwargs):
    def grads(y0):
        with tf.GradientTape() as tape:
            tape.watch(y0)
            loss = _loss(tf_ode.odeint(func, y0, t, **kwargs))
        return tape.gradient(loss, [y0] + variables)

    return [g.numpy() for g in _maybe_function(grads, kwargs.get("method"))(y0)]


def _finite_difference(func, y0, variables, t, eps=1e-6, **kwargs):
    """Central differences of the loss w.r.t. y0 and every variable entry."""

    def loss_at():
        return float(_loss(tf_ode.odeint(func, y0_var, t, **kwargs)))

    y0_var = tf.Variable(y0)
    grads = []
    for var in [y0_var] + variables:
        base = var.numpy()
        grad = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            for sign in (1.0, -1.0):
                shifted = base.copy()
                shifted[idx] += sign * eps
                var.assign(shifted)
                grad[idx] += sign * loss_at() / (2 * eps)
            var.assign(base)
        grads.append(grad)
    return grads


@pytest.mark.parametrize("method", ["euler", "rk2", "rk4"])
def test_dto_gradient_equals_finite_differences(method):
    func, y0, variables = _dense_problem()
    t = _times(0.0, 0.4, 1.0)
    kwargs = dict(method=method, num_steps=3, gradient="dto")
    analytic = _grads(func, y0, variables, t, **kwargs)
    numeric = _finite_difference(func, y0, variables, t, **kwargs)
    for a, n in zip(analytic, numeric):
        assert np.linalg.norm(a - n) / np.linalg.norm(n) < 1e-7


@pytest.mark.parametrize("method", ["euler", "rk2", "rk4"])
def test_checkpoint_gradient_equals_dto(method):
    func, y0, variables = _dense_problem(1)
    t = _times(0.0, 0.5, 1.0)
    plain = _grads(func, y0, variables, t, method=method, num_steps=4, gradient="dto")
    ckpt = _grads(func, y0, variables, t, method=method, num_steps=4, gradient="checkpoint")
    # Same ops replayed; only the order of summing per-interval variable gradients differs.
    for a, b in zip(plain, ckpt):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_checkpoint_equals_dto_inside_tf_function(jit_compile):
    func, y0, variables = _dense_problem(2)
    t = _times(0.0, 1.0)

    def make(gradient):
        @tf.function(jit_compile=jit_compile)
        def step(y0):
            with tf.GradientTape() as tape:
                tape.watch(y0)
                loss = _loss(
                    tf_ode.odeint(func, y0, t, method="rk2", num_steps=2, gradient=gradient)
                )
            return tape.gradient(loss, [y0] + variables)

        return step

    plain, ckpt = make("dto")(y0), make("checkpoint")(y0)
    for a, b in zip(plain, ckpt):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-13, atol=1e-15)


def test_fixed_step_adjoint_error_decays_first_order():
    # OTD (reverse Euler on the augmented system) differs from the exact discrete gradient by O(dt).
    func, y0, variables = _dense_problem(3)
    t = _times(0.0, 1.0)
    errors = []
    for num_steps in (8, 32):
        exact = _grads(func, y0, variables, t, method="euler", num_steps=num_steps, gradient="dto")
        otd = _grads(
            func, y0, variables, t, method="euler", num_steps=num_steps, gradient="adjoint"
        )
        errors.append(np.linalg.norm(exact[1] - otd[1]) / np.linalg.norm(exact[1]))
    assert errors[0] > 1e-4
    assert 3.0 < errors[0] / errors[1] < 5.0


def test_adjoint_on_linear_euler_equals_dto():
    # For autonomous linear f the reverse Euler adjoint is the exact transpose of forward Euler.
    a_mat = np.array([[0.0, 1.0], [-2.0, -0.3]])
    y0 = tf.constant([[1.0, 0.5]], F64)
    grads = {}
    for gradient in ("dto", "adjoint"):
        with tf.GradientTape() as tape:
            tape.watch(y0)
            ys = tf_ode.odeint(
                lambda t, y: tf.matmul(y, a_mat),
                y0,
                _times(0.0, 1.0),
                method="euler",
                num_steps=5,
                gradient=gradient,
            )
            loss = tf.reduce_sum(ys[-1] * tf.constant([[1.0, -3.0]], F64))
        grads[gradient] = tape.gradient(loss, y0).numpy()
    np.testing.assert_allclose(grads["adjoint"], grads["dto"], rtol=1e-14)


_FINE_TIMES = (0.0, 0.3, 1.0)


@pytest.fixture(scope="module")
def fine_rk4():
    """The problem of `_dense_problem(4)`, its 64-step RK4 gradients and outputs (computed once)."""
    func, y0, variables = _dense_problem(4)
    t = _times(*_FINE_TIMES)
    grads = _grads(func, y0, variables, t, method="rk4", num_steps=64)
    ys = tf_ode.odeint(func, y0, t, method="rk4", num_steps=64).numpy()
    return (func, y0, variables), grads, ys


@pytest.mark.parametrize("method", ["tfp_dopri5", "dopri5", "tsit5"])
def test_adaptive_adjoint_agrees_with_fine_rk4(method, fine_rk4):
    (func, y0, variables), rk4, ys_rk4 = fine_rk4
    t = _times(*_FINE_TIMES)
    dopri = _grads(
        func, y0, variables, t, method=method, gradient="adjoint", rtol=1e-10, atol=1e-12
    )
    for a, b in zip(rk4, dopri):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-9)
    ys_dp = tf.function(
        lambda y0: tf_ode.odeint(
            func, y0, t, method=method, gradient="adjoint", rtol=1e-10, atol=1e-12
        )
    )(y0)
    np.testing.assert_allclose(ys_dp.numpy(), ys_rk4, atol=1e-8)


def test_solve_info_counts_function_evaluations():
    y0 = tf.constant([1.0], F64)
    _, info = tf_ode.odeint(
        lambda t, y: -y, y0, _times(0.0, 0.5, 1.0), method="rk4", num_steps=3, return_info=True
    )
    assert info.num_function_evaluations == 2 * 3 * 4
    _, info = tf_ode.odeint(
        lambda t, y: -y,
        y0,
        _times(0.0, 1.0),
        method="tfp_dopri5",
        gradient="adjoint",
        rtol=1e-6,
        atol=1e-9,
        return_info=True,
    )
    nfe = int(info.num_function_evaluations)
    assert int(info.status) == 0
    assert nfe > 6 and nfe % 6 == 0, nfe  # 6 per step (FSAL), accepted and rejected
    assert nfe < 200


@pytest.mark.parametrize("method", ["tfp_dopri5", "dopri5"])
def test_dopri5_step_bound_raises(method):
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_num_steps exceeded"):
        tf_ode.odeint(
            lambda t, y: -50.0 * y,
            tf.constant([1.0], F64),
            _times(0.0, 10.0),
            method=method,
            gradient="adjoint",
            max_num_steps=3,
        )


@pytest.mark.parametrize("method", ["tfp_dopri5", "dopri5"])
def test_jit_compiled_dopri5_with_gradient(method, fine_rk4):
    (func, y0, variables), rk4, _ = fine_rk4

    @tf.function(jit_compile=True)
    def solve_and_grad(y0):
        with tf.GradientTape() as tape:
            tape.watch(y0)
            loss = _loss(
                tf_ode.odeint(
                    func,
                    y0,
                    _times(*_FINE_TIMES),
                    method=method,
                    gradient="adjoint",
                    rtol=1e-9,
                    atol=1e-11,
                )
            )
        return loss, tape.gradient(loss, variables[0])

    loss, grad = solve_and_grad(y0)
    np.testing.assert_allclose(grad.numpy(), rk4[1], rtol=1e-5, atol=1e-8)
    assert np.isfinite(float(loss))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(method="heun"), "Unknown method"),
        (dict(gradient="backprop"), "Unknown gradient mode"),
        (dict(method="tfp_dopri5", gradient="dto"), "only gradient is the continuous adjoint"),
        (dict(method="bdf", gradient="checkpoint"), "no gradient='checkpoint'.*'sensitivity'"),
        (dict(method="dopri5", gradient="adjoint", num_steps=4), "num_steps applies only"),
        (dict(method="bosh3", num_steps=4), "num_steps applies only"),
        (dict(method="dopri5", max_num_steps=0), "max_num_steps must be a positive"),
        (dict(num_steps=0), "num_steps must be a positive"),
        (dict(num_steps=2.0), "num_steps must be a positive"),
    ],
)
def test_invalid_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tf_ode.odeint(lambda t, y: -y, tf.constant([1.0], F64), _times(0.0, 1.0), **kwargs)


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="floating point"):
        tf_ode.odeint(lambda t, y: y, tf.constant([1], tf.int32), _times(0.0, 1.0))
    with pytest.raises(ValueError, match="1-D tensor of static length >= 2"):
        tf_ode.odeint(lambda t, y: y, tf.constant([1.0], F64), tf.constant(1.0, F64))
    with pytest.raises(ValueError, match="1-D tensor of static length >= 2"):
        tf_ode.odeint(lambda t, y: y, tf.constant([1.0], F64), _times(0.0))


def _flow_time_gradients(method, gradient, num_steps=None):
    # y' = -a (1 + t) y from t0: y(t) = y0 exp(-a (t + t^2/2 - t0 - t0^2/2)); loss = sum_i w_i y(t_i).
    a, weights = 0.7, np.array([0.5, 2.0, 1.0])
    t = _times(0.2, 0.6, 1.0)
    y0 = tf.constant([1.5], F64)

    def run(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            ys = tf_ode.odeint(
                lambda s, y: -a * (1.0 + s) * y,
                y0,
                t,
                method=method,
                num_steps=num_steps,
                gradient=gradient,
                rtol=1e-11,
                atol=1e-13,
            )
            loss = tf.reduce_sum(ys[:, 0] * weights)
        return tape.gradient(loss, t)

    d_t = _maybe_function(run, method)(t)
    assert d_t is not None
    tn = t.numpy()
    y = 1.5 * np.exp(-a * (tn + tn**2 / 2 - tn[0] - tn[0] ** 2 / 2))
    f = -a * (1 + tn) * y
    expected = weights * f
    expected[0] = -np.sum(weights[1:] * y[1:]) / 1.5 * f[0]  # -<dL/dy0 - dL/dy(t0), f(t0, y0)>
    return d_t.numpy(), expected


@pytest.mark.parametrize(
    "method,gradient",
    [("dopri5", "dto"), ("dopri5", "adjoint"), ("tsit5", "checkpoint"), ("rk4", "adjoint")],
)
def test_gradient_with_respect_to_output_times(method, gradient):
    # Was None (silently) for every adaptive method and for the fixed-step adjoint.
    d_t, expected = _flow_time_gradients(method, gradient, 64 if method == "rk4" else None)
    np.testing.assert_allclose(d_t, expected, rtol=1e-7, atol=1e-9)


def test_tfp_dopri5_gradient_with_respect_to_output_times():
    d_t, expected = _flow_time_gradients("tfp_dopri5", "adjoint")
    np.testing.assert_allclose(d_t, expected, rtol=1e-5)  # TFP's float32-rounded tableau


@pytest.mark.parametrize("gradient", ["dto", "checkpoint"])
def test_fixed_step_time_gradient_is_the_discrete_derivative(gradient):
    # rk4 with 3 steps per interval: the gradient w.r.t. t equals central differences of the
    # discrete solve (t enters the step sizes), not the flow's derivative.
    def loss(t):
        ys = tf_ode.odeint(
            lambda s, y: -(1.0 + s) * y, tf.constant([1.0], F64), t, method="rk4", num_steps=3,
            gradient=gradient,
        )  # fmt: skip
        return tf.reduce_sum(ys[:, 0] * [0.5, 2.0, 1.0])

    t = _times(0.2, 0.6, 1.0)
    with tf.GradientTape() as tape:
        tape.watch(t)
        value = loss(t)
    d_t = tape.gradient(value, t).numpy()
    eps = 1e-6
    for i in range(3):
        shift = np.zeros(3)
        shift[i] = eps
        fd = (float(loss(t + shift)) - float(loss(t - shift))) / (2 * eps)
        assert d_t[i] == pytest.approx(fd, abs=1e-8)


@pytest.mark.parametrize("method", ["dopri5"])
def test_nan_in_func_is_named_with_time_and_step(method):
    # Was "max_num_steps exceeded or step size underflow" wrapped in "Expected ... to be true".
    def func(t, y):
        return tf.where(t > 0.5, tf.fill(tf.shape(y), tf.constant(np.nan, F64)), -y)

    y0 = tf.constant([1.0], F64)
    pattern = rf"odeint\({method}\): func\(t, y\) returned NaN; stopped at t = 0\.(5|49)\d* with step size"
    with pytest.raises(tf.errors.InvalidArgumentError, match=pattern):
        tf_ode.odeint(func, y0, _times(0.0, 1.0), method=method)
    with pytest.raises(tf.errors.InvalidArgumentError, match=pattern):
        tf.function(lambda y0: tf_ode.odeint(func, y0, _times(0.0, 1.0), method=method))(y0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"returned Inf; stopped at t = 0 "):
        tf_ode.odeint(
            lambda t, y: y / 0.0, tf.constant([1.0], F64), _times(0.0, 1.0), method=method
        )


def test_solve_info_is_returned_from_tf_function():
    @tf.function
    def solve(y0):
        return tf_ode.odeint(
            lambda t, y: -y, y0, _times(0.0, 1.0), method="dopri5", return_info=True
        )

    ys, info = solve(tf.constant([1.0], F64))
    assert isinstance(info, tf_ode.SolveInfo)
    assert int(info.status) == 0 and int(info.num_function_evaluations) == 50
    assert int(info.num_accepted_steps) > 0 and int(info.num_rejected_steps) == 0
    np.testing.assert_allclose(ys.numpy()[-1], [np.exp(-1.0)], rtol=1e-7)


def test_bdf_solves_a_stiff_linear_system():
    # Eigenvalues -1 and -1000 (stiffness ratio 1000): dopri5 would need ~1000 steps on [0, 1].
    a_mat = np.array([[-500.5, 499.5], [499.5, -500.5]])

    @tf.function
    def solve(y0):
        return tf_ode.odeint(
            lambda s, y: tf.linalg.matvec(tf.constant(a_mat), y), y0, _times(0.0, 0.5, 1.0),
            method="bdf", gradient="adjoint", rtol=1e-9, atol=1e-12, return_info=True,
        )  # fmt: skip

    ys, info = solve(tf.constant([1.0, 0.0], F64))
    for i, time in enumerate([0.0, 0.5, 1.0]):
        expected = scipy.linalg.expm(time * a_mat) @ [1.0, 0.0]
        np.testing.assert_allclose(ys[i].numpy(), expected, atol=1e-7)
    assert int(info.num_function_evaluations) < 2000


@pytest.mark.parametrize(
    "method,gradient", [("bdf", "sensitivity"), ("bdf", "adjoint"), ("tfp_dopri5", "adjoint")]
)
def test_tfp_solvers_integrate_backwards_in_time(method, gradient):
    # dy/dt = -k (1 + t) y from t = 1 down to 0: y(t) = y(1) exp(k ((1 + 1/2) - (t + t^2 / 2))).
    # TFP's solvers integrate forward only: a decreasing t must be solved in reversed time.
    k = tf.Variable(1.0, dtype=F64)
    times = _times(1.0, 0.5, 0.0)

    @tf.function
    def solve_and_grad(y1):
        with tf.GradientTape() as tape:
            tape.watch(y1)
            ys = tf_ode.odeint(
                lambda t, y: -k * (1.0 + t) * y, y1, times,
                method=method, gradient=gradient, rtol=1e-10, atol=1e-12,
            )  # fmt: skip
            loss = ys[-1, 0]
        grads = tape.gradient(loss, [y1, k]) if gradient == "sensitivity" else None
        return ys, grads

    ys, grads = solve_and_grad(tf.constant([2.0], F64))
    exact = [2.0 * np.exp(1.5 - (t + t * t / 2)) for t in (1.0, 0.5, 0.0)]
    np.testing.assert_allclose(ys.numpy()[:, 0], exact, rtol=1e-7)
    if grads is not None:
        np.testing.assert_allclose(grads[0].numpy(), [np.exp(1.5)], rtol=1e-7)
        np.testing.assert_allclose(grads[1].numpy(), 1.5 * 2.0 * np.exp(1.5), rtol=1e-7)


def test_bdf_gradient_is_a_clear_error_not_a_wrong_number():
    # TFP's BDF adjoint re-solves the state backwards: on this stiff system its dL/dy0 was
    # 0.6146 per entry against the exact 0.5518. Asking for it must fail.
    a_mat = tf.constant([[-500.5, 499.5], [499.5, -500.5]], F64)
    scale = tf.Variable(1.0, dtype=F64)

    def solve(y0):
        return tf_ode.odeint(
            lambda s, y: scale * tf.linalg.matvec(a_mat, y), y0, _times(0.0, 0.1),
            method="bdf", gradient="adjoint", rtol=1e-6, atol=1e-9,
        )  # fmt: skip

    def grads(y0):
        with tf.GradientTape() as tape:
            tape.watch(y0)
            loss = tf.reduce_sum(solve(y0)[-1])
        return tape.gradient(loss, [y0, scale])

    y0 = tf.constant([1.0, 0.0], F64)
    with pytest.raises(
        ValueError,
        match=r"method='bdf', gradient='adjoint'\) has no correct gradient.*'sensitivity'",
    ):
        tf.function(grads)(y0)
    # Without a tape (or with nothing to differentiate) the solve is unaffected.
    expected = scipy.linalg.expm(0.1 * a_mat.numpy()) @ [1.0, 0.0]
    np.testing.assert_allclose(tf.function(solve)(y0)[-1].numpy(), expected, atol=1e-5)
