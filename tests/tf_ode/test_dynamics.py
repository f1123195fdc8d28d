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


def test_upwind_advection_hand_values_and_conservation():
    # 1 x 3 grid, u_w = 0.5 > 0: fluxes at the two interior faces are 0.5 * (1, 2); the boundary
    # faces carry none, so -div = (-0.5, 0.5 - 1.0, 1.0) and the total is conserved.
    x = tf.constant([[1.0, 2.0, 4.0]], F64)[:, :, None]
    out = dynamics.upwind_advection_2d(x, tf.constant([0.0], F64), tf.constant([0.5], F64))
    np.testing.assert_allclose(out.numpy()[0, :, 0], [-0.5, -0.5, 1.0], atol=1e-15)
    # u_w < 0 takes the right-hand (upwind) values: fluxes -0.5 * (2, 4).
    out = dynamics.upwind_advection_2d(x, tf.constant([0.0], F64), tf.constant([-0.5], F64))
    np.testing.assert_allclose(out.numpy()[0, :, 0], [1.0, 1.0, -2.0], atol=1e-15)
    # At u = 0 (the initial velocity) the flux is not differentiable; its gradient is the
    # central one, d F_{1/2} / du = (1 + 2) / 2, so d out_0 / du = -1.5 (finite differences agree).
    u = tf.constant([0.0], F64)
    with tf.GradientTape() as tape:
        tape.watch(u)
        out0 = dynamics.upwind_advection_2d(x, tf.constant([0.0], F64), u)[0, 0, 0]
    np.testing.assert_allclose(tape.gradient(out0, u).numpy(), [-1.5], atol=1e-15)


def test_rda_components_and_initial_values():
    theta = _kernel(2)
    q = dynamics.ReactionDiffusionAdvection(initial_sigma=0.1, dtype="float64")
    q.build(theta.shape)
    grid = tf.reshape(theta, [1, 3, 3, 8])
    lap = tf.reshape(dynamics.laplacian_2d(grid), theta.shape)
    np.testing.assert_allclose(q.sigma().numpy(), 0.1, rtol=1e-14)
    # Velocity and reaction kernel start at zero: only diffusion (+ tanh(0) = 0) remains.
    np.testing.assert_allclose(q(theta).numpy(), 0.1 * lap.numpy(), atol=1e-12)
    q.velocity.assign(np.tile([[np.arctanh(0.6)], [np.arctanh(-0.2)]], [1, 4]))
    q.reaction_bias.assign(np.full(4, 0.3))
    u_h, u_w = q.advection_velocity()
    np.testing.assert_allclose(u_h.numpy(), 0.25 * 0.6, rtol=1e-12)
    np.testing.assert_allclose(u_w.numpy(), 0.25 * -0.2, rtol=1e-12)
    expected = (
        0.1 * lap + dynamics.upwind_advection_2d(theta, 0.15 * np.ones(4), -0.05 * np.ones(4))
    ) + np.tanh(0.3)
    np.testing.assert_allclose(q(theta).numpy(), expected.numpy(), atol=1e-12)
    assert {w.name for w in q.trainable_weights} == {
        "rho",
        "velocity",
        "reaction_kernel",
        "reaction_bias",
    }


def _diffusion_advection(rho, velocity):
    q = dynamics.ReactionDiffusionAdvection(components=["diffusion", "advection"], dtype="float64")
    q.build((3, 3, 2, 4))
    q.rho.assign(np.full(4, rho))
    q.velocity.assign(np.tile(np.array(velocity, float)[:, None], [1, 4]))
    return q


def test_diffusion_advection_conserves_every_kernel_slice():
    # Documented invariant: without the reaction, sum over (kh, kw) of theta[:, :, i, o] is
    # conserved by the ODE (q sums to zero) and by every Runge-Kutta step of it.
    q = _diffusion_advection(1.3, [2.0, -0.7])
    theta0 = _kernel(5)
    np.testing.assert_allclose(tf.reduce_sum(q(theta0), axis=[0, 1]).numpy(), 0.0, atol=1e-14)
    theta1 = tf_ode.odeint(lambda t, th: q(th), theta0, [0.0, 1.0], method="rk4", num_steps=2)[-1]
    np.testing.assert_allclose(
        tf.reduce_sum(theta1, axis=[0, 1]).numpy(),
        tf.reduce_sum(theta0, axis=[0, 1]).numpy(),
        atol=1e-13,
    )


def test_euler_nt2_is_stable_at_the_largest_diffusivity_and_velocity():
    # rho = 50 saturates sigma at sigma_max (the old softplus gave sigma = 50 and Euler at
    # dt = 0.5 blew up once sigma > 0.67); tanh(50) saturates u. An Euler step is then a
    # non-negative, mass-preserving matrix: a max principle holds.
    q = _diffusion_advection(50.0, [50.0, -50.0])
    np.testing.assert_allclose(q.sigma().numpy(), 0.125, rtol=1e-12)
    theta0 = _kernel(6)
    ys = tf_ode.odeint(lambda t, th: q(th), theta0, [0.0, 1.0], method="euler", num_steps=2)
    lo = tf.reduce_min(theta0, axis=[0, 1]).numpy()
    hi = tf.reduce_max(theta0, axis=[0, 1]).numpy()
    theta1 = ys[-1].numpy()
    assert np.all(theta1.min(axis=(0, 1)) >= lo - 1e-12)
    assert np.all(theta1.max(axis=(0, 1)) <= hi + 1e-12)
    np.testing.assert_allclose(theta1.sum(axis=(0, 1)), theta0.numpy().sum(axis=(0, 1)), atol=1e-12)


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
        (
            lambda: dynamics.ReactionDiffusionAdvection(initial_sigma=0.2, sigma_max=0.1),
            "sigma_max must exceed initial_sigma",
        ),
        (
            lambda: dynamics.ReactionDiffusionAdvection(velocity_max=0.0),
            "velocity_max must be > 0",
        ),
    ],
)
def test_dynamics_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()
