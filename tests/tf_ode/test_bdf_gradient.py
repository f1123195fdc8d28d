"""Gradients of `odeint(method="bdf", gradient="sensitivity")` (forward sensitivities), float64."""

import keras
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

import tf_ode
from tf_ode import bdf_gradients, linear_reference

F64 = tf.float64
# Eigenvalues -1 (eigenvector [1, 1]) and -1000 (eigenvector [1, -1]).
STIFF = linear_reference.STIFF_2X2


def _times(*values):
    return tf.constant(values, F64)


def _linear_gradients(y0, t, weights, matrix, scale, *, rtol, atol):
    """Loss sum_k <weights[k], y(t_k)> of y' = scale * matrix y and its gradients."""
    with tf.GradientTape() as tape:
        tape.watch([y0, t])
        ys = tf_ode.odeint(
            lambda s, y: scale * tf.linalg.matvec(matrix, y), y0, t,
            method="bdf", gradient="sensitivity", rtol=rtol, atol=atol,
        )  # fmt: skip
        loss = tf.reduce_sum(ys * weights)
    return ys, tape.gradient(loss, [y0, t, matrix, scale])


def test_stiff_linear_gradients_match_expm():
    # y0, the output times, the matrix (a Keras variable) and a scalar tf.Variable, all at once.
    y0, times = np.array([1.0, 0.5]), np.array([0.0, 0.05, 0.1])
    weights = np.array([[0.3, -0.2], [1.0, 2.0], [-0.5, 1.5]])
    matrix = keras.Variable(STIFF, dtype="float64")
    scale = tf.Variable(1.0, dtype=F64)
    # Variables are read from the closure, as a layer's are (a Keras variable passed as a
    # tf.function argument arrives as a tensor).
    ys, grads = tf.function(
        lambda y0, t, w: _linear_gradients(y0, t, w, matrix, scale, rtol=1e-10, atol=1e-12)
    )(tf.constant(y0), tf.constant(times), tf.constant(weights))
    for k, time in enumerate(times):
        np.testing.assert_allclose(ys[k], scipy.linalg.expm(time * STIFF) @ y0, atol=1e-8)
    expected = linear_reference.linear_gradients(y0, times, weights, STIFF)
    for name, got, want in zip(("y0", "t", "matrix", "scale"), grads, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-9, err_msg=name)


def test_eager_gradients_match_expm():
    y0, times = np.array([1.0, 0.0]), np.array([0.0, 0.01])
    weights = np.array([[0.0, 0.0], [1.0, 2.0]])
    matrix = tf.Variable(STIFF, dtype=F64)
    scale = tf.Variable(1.0, dtype=F64)
    _, grads = _linear_gradients(
        tf.constant(y0), tf.constant(times), tf.constant(weights), matrix, scale,
        rtol=1e-9, atol=1e-12,
    )  # fmt: skip
    expected = linear_reference.linear_gradients(y0, times, weights, STIFF)
    for name, got, want in zip(("y0", "t", "matrix", "scale"), grads, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-9, err_msg=name)


def test_the_gradient_tfp_got_wrong_is_now_exact():
    # TFP's BDF adjoint gave dL/dy0 = 0.6146 per entry here (exact 1.5 / e = 0.5518); the
    # adjoint mode still refuses (tests/tf_ode/test_integrate.py), the sensitivity mode is exact.
    y0, times = np.array([1.0, 0.0]), np.array([0.0, 0.5, 1.0])
    weights = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 2.0]])
    _, (d_y0, d_t, _, _) = tf.function(_linear_gradients)(
        tf.constant(y0), tf.constant(times), tf.constant(weights),
        tf.constant(STIFF), tf.constant(1.0, F64), rtol=1e-9, atol=1e-12,
    )  # fmt: skip
    np.testing.assert_allclose(d_y0.numpy(), [1.5 / np.e, 1.5 / np.e], rtol=1e-6)
    expected = linear_reference.linear_gradients(y0, times, weights, STIFF)
    np.testing.assert_allclose(d_t.numpy(), expected[1], rtol=1e-6, atol=1e-9)


def test_van_der_pol_gradients_match_central_differences():
    # Van der Pol, mu = 100, from (2, 0): Jacobian eigenvalue ~ -mu (y1^2 - 1) = -300 at t0.
    mu = tf.Variable(100.0, dtype=F64)
    weights = tf.constant([[0.0, 0.0], [1.0, 0.01], [-2.0, 0.03]], F64)

    def field(s, y):
        return tf.stack([y[1], mu * ((1.0 - y[0] ** 2) * y[1] - y[0])])

    @tf.function
    def loss_and_grads(y0, t):
        with tf.GradientTape() as tape:
            tape.watch([y0, t])
            ys = tf_ode.odeint(
                field, y0, t, method="bdf", gradient="sensitivity", rtol=1e-10, atol=1e-10
            )
            loss = tf.reduce_sum(ys * weights)
        return loss, tape.gradient(loss, [y0, t, mu])

    y0, t = np.array([2.0, 0.0]), np.array([0.0, 0.05, 0.1])
    _, (d_y0, d_t, d_mu) = loss_and_grads(tf.constant(y0), tf.constant(t))

    def loss_at(y0=y0, t=t, mu_value=100.0):
        mu.assign(mu_value)
        return float(loss_and_grads(tf.constant(y0), tf.constant(t))[0])

    eps = 1e-5
    unit = np.eye(2)
    fd_y0 = [(loss_at(y0=y0 + eps * e) - loss_at(y0=y0 - eps * e)) / (2 * eps) for e in unit]
    fd_t = [
        (loss_at(t=t + eps * e) - loss_at(t=t - eps * e)) / (2 * eps) for e in np.eye(3)[[0, 2]]
    ]
    fd_mu = (loss_at(mu_value=100.0 + 1e-3) - loss_at(mu_value=100.0 - 1e-3)) / 2e-3
    np.testing.assert_allclose(d_y0.numpy(), fd_y0, rtol=1e-5)
    np.testing.assert_allclose(d_t.numpy()[[0, 2]], fd_t, rtol=1e-5)
    np.testing.assert_allclose(float(d_mu), fd_mu, rtol=1e-5)


def test_too_many_sensitivities_is_a_clear_error():
    # N = 4 states, P = 256 + 1 variable entries: 4 x 261 = 1044 > 1024.
    big = tf.Variable(tf.zeros([16, 16], F64))
    scale = tf.Variable(1.0, dtype=F64)

    @tf.function
    def grads(y0):
        with tf.GradientTape() as tape:
            tape.watch(y0)
            ys = tf_ode.odeint(
                lambda s, y: -scale * y + tf.reduce_sum(big) * y, y0, _times(0.0, 0.1),
                method="bdf", gradient="sensitivity",
            )  # fmt: skip
            loss = tf.reduce_sum(ys)
        return tape.gradient(loss, [y0, big, scale])

    match = r"N x \(N \+ P\) = 4 x \(4 \+ 257\) = 1044 sensitivities.*BDF_MAX_SENSITIVITIES = 1024"
    assert bdf_gradients.BDF_MAX_SENSITIVITIES == 1024
    with pytest.raises(ValueError, match=match):
        grads(tf.ones([4], F64))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(method="bdf", gradient="dto"), r"method='bdf' has no gradient='dto'.*'sensitivity'"),
        (dict(method="dopri5", gradient="sensitivity"), r"method='bdf' only.*method='dopri5'"),
    ],
)
def test_unsupported_gradient_modes_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tf_ode.odeint(lambda t, y: -y, tf.constant([1.0], F64), _times(0.0, 1.0), **kwargs)
