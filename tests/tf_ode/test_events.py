"""`tf_ode.odeint_event`: terminal events located on the dense output, with the
implicit-function gradient of the event time, against a falling ball's closed form."""

import numpy as np
import pytest
import tensorflow as tf

import tf_ode

F64 = tf.float64


@pytest.mark.parametrize("gradient", ["dto", "checkpoint", "adjoint"])
def test_falling_ball_event_time_state_and_gradients(gradient):
    # h' = v, v' = -g from (h0, v0) = (10, 0); event h = c. t* = sqrt(2 (h0 - c) / g).
    gravity = tf.Variable(9.81, dtype=F64)
    level = tf.Variable(1.0, dtype=F64)
    y0 = tf.constant([10.0, 0.0], F64)
    t0 = tf.constant(0.0, F64)

    def func(t, y):
        return tf.stack([y[1], -gravity])

    with tf.GradientTape(persistent=True) as tape:
        tape.watch([y0, t0])
        event_t, ys = tf_ode.odeint_event(
            func,
            y0,
            t0,
            event_fn=lambda t, y: y[0] - level,
            t_max=10.0,
            method="dopri5",
            gradient=gradient,
            rtol=1e-10,
            atol=1e-12,
        )
        speed = ys[-1, 1]
    g, t_star = 9.81, np.sqrt(2 * 9.0 / 9.81)
    assert float(event_t) == pytest.approx(t_star, abs=1e-12)
    np.testing.assert_allclose(ys.numpy(), [[10.0, 0.0], [1.0, -g * t_star]], atol=1e-10)
    d_y0, d_t0, d_g, d_c = tape.gradient(event_t, [y0, t0, gravity, level])
    # dt*/dh0 = 1/(g t*), dt*/dv0 = 1/g, dt*/dt0 = 1, dt*/dg = -t*/(2g), dt*/dc = -1/(g t*).
    np.testing.assert_allclose(d_y0.numpy(), [1 / (g * t_star), 1 / g], rtol=1e-8)
    np.testing.assert_allclose(float(d_t0), 1.0, rtol=1e-8)
    np.testing.assert_allclose(float(d_g), -t_star / (2 * g), rtol=1e-8)
    np.testing.assert_allclose(float(d_c), -1 / (g * t_star), rtol=1e-8)
    # v* = -g t*: dv*/dh0 = -1/t*, dv*/dc = 1/t*.
    d_y0_speed, d_c_speed = tape.gradient(speed, [y0, level])
    np.testing.assert_allclose(d_y0_speed.numpy()[0], -1 / t_star, rtol=1e-8)
    np.testing.assert_allclose(float(d_c_speed), 1 / t_star, rtol=1e-8)


def test_exponential_event_backwards_in_time():
    # y' = -y from y(0) = y0 towards t_max = -5: y0 e^{-t} reaches 2 at t* = ln(y0 / 2) = -ln 2;
    # dt*/dy0 = 1/y0.
    y0 = tf.constant([1.0], F64)
    with tf.GradientTape() as tape:
        tape.watch(y0)
        event_t, ys = tf_ode.odeint_event(
            lambda t, y: -y,
            y0,
            0.0,
            event_fn=lambda t, y: y[0] - 2.0,
            t_max=-5.0,
            method="tsit5",
            rtol=1e-10,
            atol=1e-12,
        )
    assert float(event_t) == pytest.approx(-np.log(2.0), abs=1e-9)
    np.testing.assert_allclose(ys.numpy()[:, 0], [1.0, 2.0], atol=1e-9)
    np.testing.assert_allclose(tape.gradient(event_t, y0).numpy(), [1.0], rtol=1e-7)


def test_no_event_is_a_clear_error():
    with pytest.raises(tf.errors.InvalidArgumentError, match="no event before the final time"):
        tf_ode.odeint_event(
            lambda t, y: -y,
            tf.constant([1.0], F64),
            0.0,
            event_fn=lambda t, y: y[0] + 1.0,
            t_max=1.0,
        )
    with pytest.raises(ValueError, match="needs an adaptive method with dense output"):
        tf_ode.odeint_event(
            lambda t, y: -y, tf.constant([1.0], F64), 0.0, event_fn=lambda t, y: y[0], t_max=1.0,
            method="rk4",
        )  # fmt: skip
