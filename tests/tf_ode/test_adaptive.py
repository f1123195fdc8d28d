"""Our adaptive embedded RK solvers (dopri5, bosh3, tsit5): float64 accuracy, time direction,
DTO / checkpoint / adjoint gradients against closed forms, counts and errors."""

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

import tf_ode
from tf_ode import tableaux

F64 = tf.float64


def test_reverse_time_dopri5_gives_e():
    # Issue 13: TFP's path returned 211.2 here with status 0.
    ys = tf_ode.odeint(lambda t, y: -y, 1.0, t=[1, 0], method="dopri5")
    assert ys.dtype == F64
    assert abs(float(ys[-1]) - np.e) < 1e-6
    assert float(ys[0]) == 1.0


@pytest.mark.parametrize("method", ["bosh3", "tsit5"])
def test_reverse_time_gradient_other_tableaux(method):
    # y' = -y from t=1 down to t=0: y(0) = e * y(1), so d y(0) / d y(1) = e.
    @tf.function  # eager, the while loop runs step by step in Python
    def solve_and_grad(y1):
        with tf.GradientTape() as tape:
            tape.watch(y1)
            y0 = tf_ode.odeint(
                lambda t, y: -y, y1, [1.0, 0.0], method=method, rtol=1e-9, atol=1e-12
            )[-1]
        return y0, tape.gradient(y0, y1)

    y0, grad = solve_and_grad(tf.constant(1.0, F64))
    np.testing.assert_allclose(float(y0), np.e, rtol=1e-7)
    np.testing.assert_allclose(float(grad), np.e, rtol=1e-7)


def _linear_problem():
    rng = np.random.default_rng(0)
    a_mat = rng.normal(size=(4, 4)) * 0.7
    y0 = rng.normal(size=(3, 4))
    return a_mat, y0


@pytest.mark.parametrize("gradient", ["dto", "checkpoint", "adjoint"])
def test_float64_dopri5_matches_expm_and_analytic_gradient(gradient):
    # dy/dt = y A (rows of y): y(t) = y0 expm(t A); loss = sum y(1.5)^2 + sum y(0.5) W.
    a_mat, y0_np = _linear_problem()
    weights = np.random.default_rng(1).normal(size=(3, 4))
    a_var = tf.Variable(a_mat, dtype=F64)
    times = [0.0, 0.5, 1.5]

    @tf.function
    def solve_and_grad(y0):
        with tf.GradientTape() as tape:
            tape.watch(y0)
            ys = tf_ode.odeint(
                lambda t, y: tf.matmul(y, a_var),
                y0,
                tf.constant(times, F64),
                method="dopri5",
                gradient=gradient,
                rtol=1e-12,
                atol=1e-12,
            )
            loss = tf.reduce_sum(ys[2] ** 2) + tf.reduce_sum(ys[1] * weights)
        return ys, tape.gradient(loss, [y0, a_var])

    ys, (g_y0, g_a) = solve_and_grad(tf.constant(y0_np))
    e05, e15 = scipy.linalg.expm(0.5 * a_mat), scipy.linalg.expm(1.5 * a_mat)
    for i, time in enumerate(times):
        np.testing.assert_allclose(
            ys[i].numpy(), y0_np @ scipy.linalg.expm(time * a_mat), atol=1e-10, rtol=0
        )
    # dL/dy0 = 2 y(1.5) E15^T + W E05^T.
    y15 = y0_np @ e15
    np.testing.assert_allclose(g_y0.numpy(), 2 * y15 @ e15.T + weights @ e05.T, atol=1e-8, rtol=0)
    # dL/dA by the Frechet derivative of expm: d<G, y0 expm(tA)> = <y0^T G, L(tA, t dA)>.
    g15, g05 = y0_np.T @ (2 * y15), y0_np.T @ weights
    expected = np.zeros_like(a_mat)
    for idx in np.ndindex(a_mat.shape):
        unit = np.zeros_like(a_mat)
        unit[idx] = 1.0
        d15 = scipy.linalg.expm_frechet(1.5 * a_mat, 1.5 * unit, compute_expm=False)
        d05 = scipy.linalg.expm_frechet(0.5 * a_mat, 0.5 * unit, compute_expm=False)
        expected[idx] = np.sum(g15 * d15) + np.sum(g05 * d05)
    np.testing.assert_allclose(g_a.numpy(), expected, atol=1e-8, rtol=0)


def test_tableau_coefficients_are_float64_exact():
    # TFP casts through float32: tf.cast(0.1, tf.float64) = 0.10000000149.
    assert tableaux.DOPRI5.a[1][0] == 0.2 and tableaux.DOPRI5.c[2] == 0.3
    assert tableaux.DOPRI5.b[0] == 35 / 384 and tableaux.BOSH3.a[3][2] == 4 / 9
    # y' = 0.2: every stage is exact, so y(1) = 0.2 to round-off (TFP: off by 4.5e-9).
    ys = tf_ode.odeint(
        lambda t, y: tf.fill(tf.shape(y), tf.constant(0.2, F64)),
        tf.zeros([1], F64),
        [0.0, 1.0],
        method="dopri5",
        rtol=1e-12,
        atol=1e-12,
    )
    assert abs(float(ys[-1, 0]) - 0.2) < 1e-15


@pytest.mark.parametrize("name,order", [("dopri5", 5), ("bosh3", 3), ("tsit5", 5)])
def test_tableau_order_conditions(name, order):
    tab = tf_ode.SOLVERS[name]
    c, b = np.array(tab.c), np.array(tab.b)
    a = np.zeros((len(c), len(c)))
    for i, row in enumerate(tab.a):
        a[i, : len(row)] = row
    np.testing.assert_allclose(a.sum(axis=1), c, atol=1e-14)
    conditions = [
        (b.sum(), 1.0),
        (b @ c, 1 / 2),
        (b @ c**2, 1 / 3),
        (b @ a @ c, 1 / 6),
        (b @ c**3, 1 / 4),
        (b @ (c * (a @ c)), 1 / 8),
        (b @ a @ c**2, 1 / 12),
        (b @ a @ a @ c, 1 / 24),
    ]
    count = {3: 4, 5: 8}[order]  # all conditions up to order 4 for the 5th-order pairs
    for value, expected in conditions[:count]:
        assert abs(value - expected) < 1e-14
    assert abs(np.sum(tab.b_error)) < 1e-14  # b and b_hat both sum to 1
    if order == 3:
        assert abs(b @ c**3 - 1 / 4) > 1e-3  # exactly third order
    assert tab.fsal and tab.evaluations_per_step == len(c) - 1


def test_solve_info_counts_and_hairer_first_step():
    # torchdiffeq 0.2.5 (Hairer's first step, same controller) takes 50 / 14 evaluations here.
    for (rtol, atol), expected in [((1e-7, 1e-9), 50), ((1e-3, 1e-6), 14)]:
        _, info = tf_ode.odeint(
            lambda t, y: -y,
            tf.constant([1.0], F64),
            [0.0, 1.0],
            method="dopri5",
            gradient="dto",
            rtol=rtol,
            atol=atol,
            return_info=True,
        )
        assert int(info.num_function_evaluations) == expected
        accepted, rejected = int(info.num_accepted_steps), int(info.num_rejected_steps)
        assert 2 + 6 * (accepted + rejected) == expected
        assert int(info.num_backward_function_evaluations) == 6 * accepted
    # A too-large first step is rejected, and rejections are counted.
    _, info = tf_ode.odeint(
        lambda t, y: -20.0 * y,
        tf.constant([1.0], F64),
        [0.0, 1.0],
        method="bosh3",
        gradient="checkpoint",
        rtol=1e-6,
        atol=1e-9,
        first_step_size=1.0,
        return_info=True,
    )
    rejected = int(info.num_rejected_steps)
    assert rejected >= 1
    accepted = int(info.num_accepted_steps)
    assert int(info.num_function_evaluations) == 1 + 3 * (accepted + rejected)
    assert int(info.num_backward_function_evaluations) == 2 * 3 * accepted


def test_checkpoint_equals_dto_on_nested_state():
    rng = np.random.default_rng(3)
    weight = tf.Variable(rng.normal(size=(3, 3)) * 0.8, dtype=F64)
    y0 = {"z": tf.constant(rng.normal(size=(2, 3)), F64), "s": tf.constant([0.5], F64)}

    def func(t, y):
        return {"z": tf.tanh(tf.matmul(y["z"], weight)) * y["s"], "s": -0.3 * y["s"] + tf.sin(t)}

    def grads(gradient):
        with tf.GradientTape() as tape:
            tape.watch(y0)
            ys = tf_ode.odeint(
                func, y0, [0.0, 0.4, 1.0], method="tsit5", gradient=gradient, rtol=1e-6, atol=1e-8
            )
            loss = tf.reduce_sum(tf.sin(ys["z"])) + tf.reduce_sum(ys["s"][1])
        return [g.numpy() for g in tape.gradient(loss, [y0["z"], y0["s"], weight])]

    dto, ckpt = grads("dto"), grads("checkpoint")
    for a, b in zip(dto, ckpt):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    "method,gradient", [("dopri5", "adjoint"), ("dopri5", "dto"), ("rk4", "adjoint")]
)
def test_func_reading_a_non_float_variable(method, gradient):
    # Issue 13: gradient="adjoint" raised TypeError when func read an int variable.
    scale = tf.Variable(3, dtype=tf.int32)
    rate = tf.Variable(0.5, dtype=F64)

    def func(t, y):
        return -rate * tf.cast(scale, F64) * y

    y0 = tf.constant([1.0], F64)
    with tf.GradientTape() as tape:
        y1 = tf_ode.odeint(
            func,
            y0,
            [0.0, 1.0],
            method=method,
            num_steps=None if method != "rk4" else 64,
            gradient=gradient,
            rtol=1e-10,
            atol=1e-12,
        )[-1]
    grads = tape.gradient(y1, [rate, scale])
    # y(1) = exp(-1.5): dy/drate = -3 exp(-1.5).
    np.testing.assert_allclose(grads[0].numpy(), -3 * np.exp(-1.5), rtol=1e-6)
    assert grads[1] is None


@pytest.mark.parametrize(
    "t,match",
    [([0.0, 1.0, 0.5], "strictly increasing or strictly decreasing"), ([0.0, 0.0], "strictly")],
)
def test_non_monotone_t_raises(t, match):
    with pytest.raises(ValueError, match=match):
        tf_ode.odeint(lambda t, y: -y, tf.constant([1.0], F64), t, method="dopri5")
    with pytest.raises(ValueError, match=match):
        tf_ode.odeint(lambda t, y: -y, tf.constant([1.0], F64), t, method="rk4")


def test_dynamic_non_monotone_t_fails_at_run_time():
    @tf.function(input_signature=[tf.TensorSpec([3], F64)])
    def solve(t):
        return tf_ode.odeint(lambda t, y: -y, tf.constant([1.0], F64), t, method="dopri5")

    np.testing.assert_allclose(solve(tf.constant([0.0, 0.5, 1.0], F64))[-1], [np.exp(-1)], 1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="strictly increasing"):
        solve(tf.constant([0.0, 1.0, 0.5], F64))


def test_dtype_mismatches_raise():
    y64 = tf.constant([1.0], F64)
    with pytest.raises(ValueError, match="returned dtype float32 for 'y'"):
        tf_ode.odeint(lambda t, y: tf.ones([1], tf.float32), y64, [0.0, 1.0], method="dopri5")
    with pytest.raises(ValueError, match="returned shape"):
        tf_ode.odeint(lambda t, y: tf.ones([2], F64), y64, [0.0, 1.0], method="rk4")
    with pytest.raises(ValueError, match="same floating dtype"):
        tf_ode.odeint(
            lambda t, y: y, {"a": y64, "b": tf.ones([1], tf.float32)}, [0.0, 1.0], method="rk4"
        )
    with pytest.raises(ValueError, match="t has dtype float32 but y0 has float64"):
        tf_ode.odeint(lambda t, y: -y, y64, tf.constant([0.0, 1.0]), method="dopri5")
    with pytest.raises(ValueError, match="must return y's structure"):
        tf_ode.odeint(lambda t, y: {"z": y}, y64, [0.0, 1.0], method="dopri5")


def test_max_num_steps_names_time_reached():
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"max_num_steps exceeded.*stopped at t ="
    ):
        tf_ode.odeint(
            lambda t, y: -y,
            tf.constant([1.0], F64),
            [0.0, 10.0],
            method="bosh3",
            rtol=1e-10,
            atol=1e-12,
            max_num_steps=5,
        )


def test_dto_under_xla_is_a_clear_error():
    @tf.function(jit_compile=True)
    def solve(y0):
        return tf_ode.odeint(lambda t, y: -y, y0, [0.0, 1.0], method="dopri5", gradient="dto")

    with pytest.raises(ValueError, match="XLA cannot compile"):
        solve(tf.constant([1.0], F64))
