"""GGN and empirical Fisher products against closed forms; Hutch++; mini-batch resampled solvers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_hessian
from tf_hessian import curvature
from tf_hessian.testing import classification_data, loss64, tiny_mlp


def _linear_regression(seed=0, n=6, d=3, k=2):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((d,), dtype="float64"), keras.layers.Dense(k, dtype="float64")]
    )
    rng = np.random.default_rng(seed)
    return model, rng.standard_normal((n, d)), rng.standard_normal((n, k))


def test_ggn_of_linear_model_with_mse_is_jtj():
    model, x, y = _linear_regression()
    mse = keras.losses.MeanSquaredError(dtype="float64")
    ggn = curvature.GaussNewtonOperator(model, mse, (x, y)).full_hessian()
    # Closed form: f_ik = sum_j x_ij W_jk + b_k; parameters ordered (W row-major, b).
    n, d = x.shape
    k = y.shape[1]
    jacobian = np.zeros((n, k, d * k + k))
    for i in range(n):
        for out in range(k):
            jacobian[i, out, [j * k + out for j in range(d)]] = x[i]
            jacobian[i, out, d * k + out] = 1.0
    flat = jacobian.reshape(n * k, -1)
    expected = 2.0 / (n * k) * flat.T @ flat  # MSE = mean over examples and outputs
    np.testing.assert_allclose(ggn, expected, atol=1e-12)
    # A linear model's Hessian is its GGN.
    hessian = tf_hessian.HessianOperator(model, mse, (x, y)).full_hessian()
    np.testing.assert_allclose(hessian, expected, atol=1e-12)


def test_ggn_and_fisher_of_cross_entropy_mlp_closed_form():
    model = tiny_mlp(seed=7)
    x, y = classification_data(5, (3,), num_classes=2, seed=7)
    variables = [v.value for v in model.trainable_variables]
    with tf.GradientTape(persistent=True) as tape:
        logits = model(tf.constant(x), training=False)
        losses = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        losses = [losses[i] for i in range(5)]
    jac = tape.jacobian(logits, variables)  # [5, 2, ...] per variable
    jac = np.concatenate([np.reshape(j, (5, 2, -1)) for j in jac], axis=2)
    grads = [
        np.concatenate([np.reshape(g, -1) for g in tape.gradient(losses[i], variables)])
        for i in range(5)
    ]
    p = tf.nn.softmax(logits).numpy()
    expected_ggn = (
        sum(jac[i].T @ (np.diag(p[i]) - np.outer(p[i], p[i])) @ jac[i] for i in range(5)) / 5
    )
    expected_fisher = sum(np.outer(g, g) for g in grads) / 5
    ggn = curvature.GaussNewtonOperator(model, loss64(), (x, y))
    fisher = curvature.EmpiricalFisherOperator(model, loss64(), (x, y))
    np.testing.assert_allclose(ggn.full_hessian(), expected_ggn, atol=1e-12)
    np.testing.assert_allclose(fisher.full_hessian(), expected_fisher, atol=1e-12)
    hessian = tf_hessian.HessianOperator(model, loss64(), (x, y)).full_hessian()
    assert np.max(np.abs(hessian - expected_ggn)) > 1e-4  # tanh MLP: H != GGN
    assert np.min(np.linalg.eigvalsh(expected_ggn)) > -1e-12


def test_fisher_with_sample_weights_two_replicas(mirrored_strategy):
    model = tiny_mlp(seed=8)
    x, y = classification_data(5, (3,), num_classes=2, seed=8)
    w = np.array([1.0, 0.5, 2.0, 0.0, 1.5])
    variables = [v.value for v in model.trainable_variables]
    with tf.GradientTape(persistent=True) as tape:
        losses = keras.losses.sparse_categorical_crossentropy(
            y, model(tf.constant(x), training=False), from_logits=True
        )
        losses = [losses[i] for i in range(5)]
    grads = [
        np.concatenate([np.reshape(g, -1) for g in tape.gradient(losses[i], variables)])
        for i in range(5)
    ]
    expected = sum(w[i] * np.outer(g, g) for i, g in enumerate(grads)) / w.sum()
    with mirrored_strategy.scope():
        two = tiny_mlp(seed=8)
    two.set_weights(model.get_weights())
    loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight", dtype="float64"
    )
    data = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(2)
    op = curvature.EmpiricalFisherOperator(two, loss, data, strategy=mirrored_strategy)
    v = np.random.default_rng(8).standard_normal(op.dim)
    np.testing.assert_allclose(op.matvec(v), expected @ v, atol=1e-12)


def test_hutchpp_exact_for_low_rank_and_better_than_hutchinson():
    from tf_hessian import linear_operator, trace

    rng = np.random.default_rng(9)
    basis, _ = np.linalg.qr(rng.standard_normal((60, 60)))
    low_rank = (basis[:, :5] * np.array([50.0, 40, 30, 20, 10])) @ basis[:, :5].T
    op = linear_operator.DenseOperator(low_rank)
    result = trace.hutchpp_trace(op, num_matvecs=18)
    assert result.trace == pytest.approx(150.0, rel=1e-10)
    assert op.num_matvecs == 18
    # A decaying spectrum: Hutch++ errors over seeds are far below Hutchinson's at equal cost.
    spectrum = 100.0 / np.arange(1, 61) ** 2
    decaying = linear_operator.DenseOperator((basis * spectrum) @ basis.T)
    pp = [
        abs(trace.hutchpp_trace(decaying, num_matvecs=30, seed=s).trace - spectrum.sum())
        for s in range(20)
    ]
    hutch = [
        abs(
            trace.hutchinson_trace(decaying, max_iter=30, min_iter=30, seed=s).trace
            - spectrum.sum()
        )
        for s in range(20)
    ]
    assert np.mean(pp) < 0.2 * np.mean(hutch)
    with pytest.raises(ValueError, match="multiple of 3"):
        trace.hutchpp_trace(op, num_matvecs=10)


def test_stochastic_power_iteration_tracks_mean_of_batch_hessians():
    from tf_hessian import eigen

    model, x, y = _linear_regression(seed=10, n=64, d=4, k=1)
    x[:, 0] *= 3.0  # a clear top eigenvalue
    mse = keras.losses.MeanSquaredError(dtype="float64")
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    per_batch = eigen.ResampledOperator(
        [tf_hessian.HessianOperator(model, mse, b) for b in batches]
    )
    full = np.linalg.eigvalsh(tf_hessian.HessianOperator(model, mse, (x, y)).full_hessian())[-1]
    single = np.linalg.eigvalsh(tf_hessian.HessianOperator(model, mse, batches[0]).full_hessian())[
        -1
    ]
    result = eigen.stochastic_power_iteration(per_batch, num_iter=80, seed=1)
    assert per_batch.num_matvecs == 80
    # The resampled estimate sits near the full-data value, which one batch misses.
    assert abs(result["eigenvalue"] - full) < 0.1 * full
    assert abs(result["eigenvalue"] - full) < abs(single - full)
