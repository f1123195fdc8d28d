"""Dense output of the adaptive solvers (`tableaux.ButcherTableau.dense`, `adaptive.integrate`):
interpolant order, evaluation counts independent of the number of output times, float64 accuracy,
gradients through interpolated outputs, forced step boundaries (step_t / jump_t)."""

import numpy as np
import pytest
import tensorflow as tf

import tf_ode
from tf_ode import tableaux

F64 = tf.float64


def _one_step_interpolation_error(tab, h, theta=0.5):
    """|y(theta h) - exp(theta h)| for one step of y' = y from y(0) = 1 (numpy, exact stages)."""
    k = []
    for i, row in enumerate(tab.a):
        k.append(1.0 + h * sum(a * kj for a, kj in zip(row, k)) if i else 1.0)
    weights = [sum(c * theta ** (p + 1) for p, c in enumerate(row)) for row in tab.dense]
    return abs(1.0 + h * sum(w * kj for w, kj in zip(weights, k)) - np.exp(theta * h))


@pytest.mark.parametrize("name,order", [("dopri5", 5), ("tsit5", 5), ("bosh3", 4)])
def test_continuous_extension_weights_and_local_order(name, order):
    # b_j(1) = b_j (the interpolant ends on the step's solution); local error O(h^order) at
    # theta = 1/2 (4th-order interpolants: h^5; the cubic Hermite of bosh3: h^4).
    tab = tableaux.SOLVERS[name]
    np.testing.assert_allclose(np.sum(tab.dense, axis=1), tab.b, atol=3e-15)
    errors = [_one_step_interpolation_error(tab, h) for h in (0.05, 0.025)]
    slope = np.log2(errors[0] / errors[1])
    assert order - 0.35 < slope < order + 0.5, (errors, slope)


@tf.function
def _decay(t, method):
    return tf_ode.odeint(
        lambda t, y: -0.7 * y,
        tf.constant([1.0, 2.0], F64),
        t,
        method=method,
        rtol=1e-10,
        atol=1e-12,
        return_info=True,
    )


def test_evaluations_do_not_depend_on_output_times(method="dopri5"):
    # Before dense output the solver stepped onto every output time: Van der Pol at rtol 1e-6
    # cost 584 evaluations for 2 output times and 6002 for 1001. The stepping loop is shared by
    # every tableau (tsit5's and bosh3's interpolants: test_continuous_extension_weights_...).
    many = tf.constant(np.linspace(0.0, 2.0, 1001), F64)
    ys, info_many = _decay(many, method)
    _, info_two = _decay(tf.stack([many[0], many[-1]]), method)
    assert int(info_many.num_function_evaluations) == int(info_two.num_function_evaluations)
    exact = np.exp(-0.7 * many.numpy())[:, None] * [1.0, 2.0]
    np.testing.assert_allclose(ys.numpy(), exact, atol=2e-10, rtol=0)
    assert float(ys[-1, 0]) == pytest.approx(np.exp(-1.4), abs=1e-10)


@pytest.mark.parametrize("gradient", ["dto", "checkpoint", "adjoint"])
def test_gradient_through_interpolated_outputs(gradient):
    # y' = -a (1 + t) y: y(t) = y0 exp(-a (t + t^2/2)); outputs at 0.3 and 1.1 are interpolated.
    a = tf.Variable(0.7, dtype=F64)
    times = tf.constant([0.0, 0.3, 1.1, 2.0], F64)

    @tf.function
    def grads(y0):
        with tf.GradientTape() as tape:
            tape.watch(y0)
            ys = tf_ode.odeint(
                lambda t, y: -a * (1.0 + t) * y,
                y0,
                times,
                method="dopri5",
                gradient=gradient,
                rtol=1e-11,
                atol=1e-13,
            )
            loss = tf.reduce_sum(3.0 * ys[1] + ys[2] ** 2 + ys[3])
        return tape.gradient(loss, [y0, a])

    d_y0, d_a = grads(tf.constant([1.0], F64))
    s = np.array([0.3 + 0.3**2 / 2, 1.1 + 1.1**2 / 2, 2.0 + 2.0**2 / 2])
    e = np.exp(-0.7 * s)
    # L = 3 e1 y0 + e2^2 y0^2 + e3 y0 at y0 = 1.
    np.testing.assert_allclose(d_y0.numpy(), [3 * e[0] + 2 * e[1] ** 2 + e[2]], rtol=1e-9)
    expected_a = -3 * s[0] * e[0] - 2 * s[1] * e[1] ** 2 - s[2] * e[2]
    np.testing.assert_allclose(float(d_a), expected_a, rtol=1e-9)


def test_jump_t_lands_on_a_discontinuity():
    # f = 1 before t = 1 and 2 after: piecewise constant, so every step that does not straddle
    # t = 1 is exact; y(2) = 3 with jump_t, and the rejected steps at the jump disappear.
    def func(t, y):
        return tf.where(t < 1.0, tf.ones_like(y), 2.0 * tf.ones_like(y))

    y0, t = tf.constant([0.0], F64), tf.constant([0.0, 0.5, 2.0], F64)
    ys, info = tf_ode.odeint(
        func, y0, t, method="dopri5", rtol=1e-9, atol=1e-12, jump_t=[1.0], return_info=True
    )
    np.testing.assert_allclose(ys.numpy()[:, 0], [0.0, 0.5, 3.0], atol=1e-13)
    assert int(info.num_rejected_steps) == 0
    _, plain = tf_ode.odeint(func, y0, t, method="dopri5", rtol=1e-9, atol=1e-12, return_info=True)
    assert int(plain.num_rejected_steps) > 0


def test_step_t_forces_step_ends():
    # step_t = the output times: every output is a step end, as before dense output existed.
    t = [0.0, 0.1, 0.2, 1.0]
    _, free = tf_ode.odeint(lambda t, y: -y, 1.0, t, method="bosh3", return_info=True)
    _, forced = tf_ode.odeint(
        lambda t, y: -y, 1.0, t, method="bosh3", step_t=t[1:-1], return_info=True
    )
    assert int(forced.num_accepted_steps) > int(free.num_accepted_steps)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(method="rk4", step_t=[0.5]), "apply to the adaptive methods"),
        (dict(method="dopri5", jump_t=[1.5]), r"strictly between t\[0\] = 0.0 and t\[-1\] = 1.0"),
        (dict(method="dopri5", step_t=[0.0]), "strictly between"),
    ],
)
def test_bad_step_boundaries_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tf_ode.odeint(lambda t, y: -y, 1.0, [0.0, 1.0], **kwargs)
