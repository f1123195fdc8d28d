"""Weight-evolution operators q(theta; p)."""

import keras
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

import tf_ode
from tf_ode import dynamics

F64 = tf.float64


def _kernel(seed=0, shape=(3, 3, 2, 4)):
    return tf.constant(np.random.default_rng(seed).normal(size=shape), F64)


def test_zero_dynamics_is_zero():
    q = dynamics.ZeroDynamics()
    np.testing.assert_array_equal(q(_kernel()).numpy(), np.zeros((3, 3, 2, 4)))


def test_laplacian_matches_numpy_stencil_and_conserves_mass():
    x = np.random.default_rng(1).normal(size=(1, 4, 5, 3))
    lap = dynamics.laplacian_2d(tf.constant(x)).numpy()
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="symmetric")
    expected = (
        padded[:, :-2, 1:-1]
        + padded[:, 2:, 1:-1]
        + padded[:, 1:-1, :-2]
        + padded[:, 1:-1, 2:]
        - 4 * x
    )
    np.testing.assert_allclose(lap, expected, atol=1e-14)
    # Zero-flux boundary: diffusion only redistributes kernel mass.
    np.testing.assert_allclose(lap.sum(axis=(1, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(dynamics.laplacian_2d(tf.ones([1, 3, 3, 2], F64)).numpy(), 0.0)


def test_central_gradient_of_linear_ramp():
    ramp = np.arange(5.0)[None, :, None, None] * 2.0 + np.arange(4.0)[None, None, :, None] * -3.0
    d_h, d_w = dynamics.gradient_2d(tf.constant(ramp, F64))
    np.testing.assert_allclose(d_h.numpy()[:, 1:-1], 2.0)
    np.testing.assert_allclose(d_w.numpy()[:, :, 1:-1], -3.0)


def test_rda_components_and_initial_values():
    theta = _kernel(2)
    q = dynamics.ReactionDiffusionAdvection(initial_sigma=0.2, dtype="float64")
    q.build(theta.shape)
    grid = tf.reshape(theta, [1, 3, 3, 8])
    lap = tf.reshape(dynamics.laplacian_2d(grid), theta.shape)
    # Velocity and reaction kernel start at zero: only diffusion (+ tanh(0) = 0) remains.
    np.testing.assert_allclose(q(theta).numpy(), 0.2 * lap.numpy(), atol=1e-12)
    q.velocity.assign(np.tile([[1.5], [-0.5]], [1, 4]))
    q.reaction_bias.assign(np.full(4, 0.3))
    d_h, d_w = dynamics.gradient_2d(grid)
    expected = (
        0.2 * lap
        - 1.5 * tf.reshape(d_h, theta.shape)
        + 0.5 * tf.reshape(d_w, theta.shape)
        + np.tanh(0.3)
    )
    np.testing.assert_allclose(q(theta).numpy(), expected.numpy(), atol=1e-12)
    assert {w.name for w in q.trainable_weights} == {
        "rho",
        "velocity",
        "reaction_kernel",
        "reaction_bias",
    }


def test_rda_subset_of_components():
    q = dynamics.ReactionDiffusionAdvection(components=["advection"], dtype="float64")
    theta = _kernel(3)
    q.build(theta.shape)
    assert [w.name for w in q.trainable_weights] == ["velocity"]
    np.testing.assert_array_equal(q(theta).numpy(), 0.0)


def test_coupled_linear_system_closed_form_and_finite_differences():
    # dz/dt = z K(t), dK/dt = K A: K(t) = K0 expm(t A) exactly; gradients w.r.t. K0 and A by FD.
    rng = np.random.default_rng(4)
    k0 = tf.Variable(rng.normal(size=(3, 3)) * 0.5, dtype=F64)
    q = dynamics.LinearDynamics(
        initializer=keras.initializers.Constant(rng.normal(size=(3, 3)) * 0.5), dtype="float64"
    )
    q.build((3, 3))
    z0 = tf.constant(rng.normal(size=(2, 3)), F64)
    t = tf.constant([0.0, 1.0], F64)

    def loss_fn():
        ys = tf_ode.odeint(
            lambda t, s: {"z": tf.matmul(s["z"], s["k"]), "k": q(s["k"])},
            {"z": z0, "k": tf.convert_to_tensor(k0)},
            t,
            method="rk4",
            num_steps=16,
        )
        return tf.reduce_sum(tf.sin(ys["z"][-1])), ys

    with tf.GradientTape() as tape:
        loss, ys = loss_fn()
    grads = tape.gradient(loss, [k0, q.mix])
    expected_k1 = k0.numpy() @ scipy.linalg.expm(q.mix.numpy())
    np.testing.assert_allclose(ys["k"][-1].numpy(), expected_k1, rtol=1e-5)
    eps = 1e-6
    for var, grad in zip([k0, q.mix], grads):
        base = var.numpy()
        numeric = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            for sign in (1.0, -1.0):
                shifted = base.copy()
                shifted[idx] += sign * eps
                var.assign(shifted)
                numeric[idx] += sign * float(loss_fn()[0]) / (2 * eps)
            var.assign(base)
        assert np.linalg.norm(grad.numpy() - numeric) / np.linalg.norm(numeric) < 1e-7


def test_build_and_register_weight_dynamics():
    assert isinstance(dynamics.build_weight_dynamics("rda"), dynamics.ReactionDiffusionAdvection)
    assert isinstance(dynamics.build_weight_dynamics("linear"), dynamics.LinearDynamics)

    class Decay(dynamics.WeightDynamics):
        def call(self, theta):
            return -theta

    dynamics.register_weight_dynamics("decay_test", Decay)
    np.testing.assert_array_equal(
        dynamics.build_weight_dynamics("decay_test")(tf.ones([2])).numpy(), -1.0
    )


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: dynamics.build_weight_dynamics("heat"), "Unknown weight dynamics"),
        (lambda: dynamics.register_weight_dynamics("x", object), "must subclass WeightDynamics"),
        (lambda: dynamics.ReactionDiffusionAdvection(components=["drift"]), "components must be"),
        (
            lambda: dynamics.ReactionDiffusionAdvection(initial_sigma=0.0),
            "initial_sigma must be > 0",
        ),
        (lambda: dynamics.ReactionDiffusionAdvection().build((4, 4)), "acts on conv kernels"),
    ],
)
def test_dynamics_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()
