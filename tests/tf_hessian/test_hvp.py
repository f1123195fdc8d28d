"""HessianOperator: exact HVPs against closed forms and explicit Hessians (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_hessian
from tf_hessian.testing import (
    classification_data,
    loss64,
    quadratic_problem,
    random_spd,
    tiny_cnn,
    tiny_mlp,
)


@pytest.fixture(scope="module")
def quadratic():
    q = random_spd(10, seed=0, negative=2)
    model, loss_fn, data = quadratic_problem(q, np.linspace(-1, 1, 10))
    return q, tf_hessian.HessianOperator(model, loss_fn, data)


@pytest.mark.parametrize("mode", tf_hessian.HVP_MODES)
def test_quadratic_hvp_equals_qv(quadratic, mode):
    q, op = quadratic
    op = tf_hessian.HessianOperator(op.model, op.loss_fn, op.data, mode=mode)
    v = np.random.default_rng(1).standard_normal(10)
    hv = op.hvp([tf.constant(v)])
    assert len(hv) == 1 and hv[0].shape == (10,)
    np.testing.assert_allclose(hv[0].numpy(), q @ v, atol=1e-12)


def test_quadratic_eigenvalues_and_trace(quadratic):
    q, op = quadratic
    values, vectors = op.eigenvalues(top_n=3, max_iter=3000, tol=1e-13)
    np.testing.assert_allclose(values, [10.0, 9.0, 8.0], rtol=1e-8)
    assert vectors[0][0].shape == (10,)
    values, _ = op.eigenvalues(top_n=3, max_iter=10, tol=1e-12, method="lanczos")
    np.testing.assert_allclose(values, [10.0, 9.0, 8.0], rtol=1e-10)
    result = op.trace(max_iter=300, tol=1e-6, return_result=True)[1]
    std = np.sqrt(2 * (np.sum(q**2) - np.sum(np.diag(q) ** 2)))
    assert abs(result.trace - np.trace(q)) < 4 * std / np.sqrt(result.num_matvecs)
    np.testing.assert_allclose(op.full_hessian(), q, atol=1e-12)


@pytest.mark.parametrize("mode", tf_hessian.HVP_MODES)
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_hvp_equals_explicit_hessian_times_v(mode, kind):
    if kind == "mlp":
        model, (x, y) = tiny_mlp(), classification_data(5, (3,), num_classes=2)
    else:
        model, (x, y) = tiny_cnn(), classification_data(4, (6, 6, 1))
    op = tf_hessian.HessianOperator(model, loss64(), (x, y), mode=mode)
    hessian = op.full_hessian()
    assert (
        hessian.shape
        == (op.dim, op.dim)
        == ((3 * 7 + 7 + 7 * 2 + 2,) * 2 if kind == "mlp" else (81, 81))
    )
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-12)
    v = np.random.default_rng(2).standard_normal(op.dim)
    np.testing.assert_allclose(op.hvp_flat(v), hessian @ v, atol=1e-10)


def test_power_and_lanczos_match_eigvalsh_on_cnn_with_batchnorm():
    model, data = tiny_cnn(seed=3), classification_data(4, (6, 6, 1), seed=3)
    op = tf_hessian.HessianOperator(model, loss64(), data)
    exact = tf_hessian.full_spectrum(op)
    dominant = exact[np.argmax(np.abs(exact))]
    values, _, result = op.eigenvalues(top_n=1, max_iter=500, tol=1e-12, return_result=True)
    assert values[0] == pytest.approx(dominant, rel=1e-6)
    assert result.converged == [True]
    values, _ = op.eigenvalues(top_n=2, max_iter=op.dim, tol=1e-10, method="lanczos")
    by_magnitude = exact[np.argsort(-np.abs(exact))][:2]
    np.testing.assert_allclose(values, by_magnitude, rtol=1e-6)


def test_density_mass_sits_on_exact_eigenvalues_of_small_model():
    model, data = tiny_mlp(seed=4), classification_data(5, (3,), num_classes=2, seed=4)
    op = tf_hessian.HessianOperator(model, loss64(), data)
    exact = tf_hessian.full_spectrum(op)
    nodes, weights = tf_hessian.slq(op, num_iter=op.dim, num_runs=2)
    np.testing.assert_allclose(np.sort(nodes[0]), exact, atol=1e-8)
    grid, phi = op.density(num_iter=op.dim, num_runs=2, num_bins=20000)
    step = grid[1] - grid[0]
    assert np.sum(phi) * step == pytest.approx(1.0, abs=1e-10)
    sigma = np.sqrt(1e-5 * max(1.0, exact[-1] - exact[0] + 0.02))
    near = np.min(np.abs(grid[:, None] - exact[None, :]), axis=1) < 5 * sigma
    assert np.sum(phi[near]) * step > 0.999


def test_dataset_hvp_equals_hvp_of_concatenated_data():
    model = tiny_cnn(seed=5)
    x, y = classification_data(7, (6, 6, 1), seed=5)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)  # batches 3, 3, 1
    v = np.random.default_rng(5).standard_normal(81)
    whole = tf_hessian.HessianOperator(model, loss64(), (x, y)).hvp_flat(v)
    batched = tf_hessian.HessianOperator(model, loss64(), dataset)
    np.testing.assert_allclose(batched.hvp_flat(v), whole, atol=1e-12)
    loss, grad = batched.loss_and_gradient()
    assert loss == pytest.approx(float(loss64()(y, model(x, training=False))), rel=1e-12)
    assert batched.num_hvps == 1


@pytest.mark.parametrize(
    "mode,as_dataset", [("forward_over_reverse", True), ("reverse_over_reverse", False)]
)
def test_two_replica_hvp_equals_one_device(mirrored_strategy, mode, as_dataset):
    one = tiny_cnn(seed=6)
    two = tiny_cnn(seed=6, strategy=mirrored_strategy)
    two.set_weights(one.get_weights())
    x, y = classification_data(5, (6, 6, 1), seed=6)
    v = np.random.default_rng(6).standard_normal(81)
    expected = tf_hessian.HessianOperator(one, loss64(), (x, y)).hvp_flat(v)
    # Batches of 2, 2, 1: the last is split 1 / 0 over the replicas.
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(2) if as_dataset else (x, y)
    op = tf_hessian.HessianOperator(two, loss64(), data, mode=mode, strategy=mirrored_strategy)
    np.testing.assert_allclose(op.hvp_flat(v), expected, atol=1e-12)
    if not as_dataset:
        assert op.loss() == pytest.approx(float(loss64()(y, one(x, training=False))), rel=1e-12)


def test_hvp_leaves_batchnorm_statistics_unchanged():
    model, data = tiny_cnn(seed=7), classification_data(4, (6, 6, 1), seed=7)
    before = [w.numpy().copy() for w in model.non_trainable_weights]
    op = tf_hessian.HessianOperator(model, loss64(), data)
    op.eigenvalues(top_n=1, max_iter=5)
    after = [w.numpy() for w in model.non_trainable_weights]
    assert len(before) == 2
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


class _UnusedWeight(keras.layers.Layer):
    def build(self, input_shape):
        self.unused = self.add_weight(shape=(3,), initializer="ones")

    def call(self, x):
        return x


@pytest.mark.parametrize("mode", tf_hessian.HVP_MODES)
def test_unused_parameter_gives_zeros(mode):
    keras.utils.set_random_seed(8)
    image = keras.Input((3,), dtype="float64")
    hidden = _UnusedWeight(dtype="float64")(image)
    model = keras.Model(image, keras.layers.Dense(2, dtype="float64")(hidden))
    op = tf_hessian.HessianOperator(
        model, loss64(), classification_data(4, (3,), num_classes=2), mode=mode
    )
    rng = np.random.default_rng(8)
    hv = op.hvp([tf.constant(rng.standard_normal(v.shape)) for v in model.trainable_variables])
    shapes = [tuple(h.shape) for h in hv]
    assert (3,) in shapes
    np.testing.assert_array_equal(hv[shapes.index((3,))].numpy(), np.zeros(3))
    assert np.any(hv[shapes.index((3, 2))].numpy() != 0)


def test_validation_errors():
    model = tiny_mlp()
    data = classification_data(4, (3,), num_classes=2)
    with pytest.raises(ValueError, match="mode must be one of"):
        tf_hessian.HessianOperator(model, loss64(), data, mode="finite_difference")
    with pytest.raises(ValueError, match="dtype='float64'"):
        tf_hessian.HessianOperator(
            model, keras.losses.SparseCategoricalCrossentropy(from_logits=True), data
        )
    with pytest.raises(ValueError, match=r"\(x, y\)"):
        tf_hessian.HessianOperator(model, loss64(), data[0])
    with pytest.raises(ValueError, match="disagree on the batch size"):
        tf_hessian.HessianOperator(model, loss64(), (data[0], data[1][:3]))
    with pytest.raises(ValueError, match="method must be"):
        tf_hessian.HessianOperator(model, loss64(), data).eigenvalues(method="arnoldi")
