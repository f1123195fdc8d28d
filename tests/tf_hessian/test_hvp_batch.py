"""HessianOperator.hvp_batch (k vectors, one shared primal pass) and its use by trace / SLQ.

float64; every product is checked against an explicit Hessian from nested tapes, and the
batched trace / density against the sequential path with the same seeds.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_hessian
from tf_hessian import eigen, linear_operator
from tf_hessian.linear_operator import DenseOperator
from tf_hessian.models.layers import PaddedMaxPool2D
from tf_hessian.testing import (
    classification_data,
    explicit_hessian,
    loss64,
    per_example_crossentropy,
    random_spd,
    tiny_cnn,
    tiny_mlp,
)


@pytest.fixture(scope="module")
def cnn_problem():
    """tiny_cnn (conv, ReLU, BN with moving statistics, max pool, dense): 81 parameters."""
    model = tiny_cnn(seed=21)
    x, y = classification_data(5, (6, 6, 1), seed=21)
    w = np.array([0.5, 2.0, 1.0, 3.0, 0.25])
    truth = {
        "sum_over_batch_size": explicit_hessian(
            model, lambda: tf.reduce_mean(per_example_crossentropy(model, x, y))
        ),
        "mean_with_sample_weight": explicit_hessian(
            model, lambda: tf.reduce_sum(w * per_example_crossentropy(model, x, y)) / np.sum(w)
        ),
    }
    return model, x, y, w, truth


def _two_conv_net(seed=27, strategy=None):
    """Conv -> ReLU -> Conv -> C1's overlapping 3/2/1 max pool -> Dense: 115 float64 parameters.

    The second conv sees parameter-dependent activations, so its tangent needs the
    conv(dx, W), conv_backprop_input(dW, dy) and conv_backprop_filter(dx, dy) converters.
    """
    keras.utils.set_random_seed(seed)

    def build():
        image = keras.Input((6, 6, 1), dtype="float64")
        h = keras.layers.Conv2D(2, 3, padding="same", activation="relu", dtype="float64")(image)
        h = keras.layers.Conv2D(2, 3, padding="same", dtype="float64")(h)
        h = keras.layers.Flatten(dtype="float64")(PaddedMaxPool2D(3, 2, 1, dtype="float64")(h))
        return keras.Model(image, keras.layers.Dense(3, dtype="float64")(h))

    if strategy is None:
        return build()
    with strategy.scope():
        return build()


# The replica split and reduction do not depend on the mode (they wrap the per-replica
# product): two replicas are run once, with the default mode.
@pytest.mark.parametrize(
    "mode,replicas",
    [("forward_over_reverse", 1), ("reverse_over_reverse", 1), ("forward_over_reverse", 2)],
)
def test_hvp_batch_of_two_conv_net_equalsexplicit_hessian(mirrored_strategy, mode, replicas):
    model = _two_conv_net()
    x, y = classification_data(5, (6, 6, 1), seed=27)
    hessian = explicit_hessian(model, lambda: tf.reduce_mean(per_example_crossentropy(model, x, y)))
    assert hessian.shape == (115, 115)
    if replicas == 2:
        net = _two_conv_net(strategy=mirrored_strategy)
        net.set_weights(model.get_weights())
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)  # 3 (split 2/1), 2 (1/1)
        op = tf_hessian.HessianOperator(net, loss64(), data, mode=mode, strategy=mirrored_strategy)
    else:
        op = tf_hessian.HessianOperator(model, loss64(), (x, y), mode=mode)
    vectors = np.random.default_rng(28).standard_normal((4, op.dim))
    scale = np.max(np.abs(hessian))
    atol = 1e-10 if replicas == 1 else 1e-8 * scale
    np.testing.assert_allclose(op.hvp_flat_batch(vectors), vectors @ hessian.T, atol=atol)
    assert op.batch_fallback_reason is None


@pytest.mark.parametrize(
    "mode,batch_method",
    [
        ("forward_over_reverse", "vectorized_map"),
        ("reverse_over_reverse", "vectorized_map"),
        ("forward_over_reverse", "map_fn"),
    ],
)
def test_hvp_batch_equals_explicit_hessian_products(cnn_problem, mode, batch_method):
    model, x, y, _, truth = cnn_problem
    op = tf_hessian.HessianOperator(model, loss64(), (x, y), mode=mode, batch_method=batch_method)
    vectors = np.random.default_rng(22).standard_normal((3, op.dim))
    products = op.hvp_flat_batch(vectors)
    assert products.shape == (3, 81)
    np.testing.assert_allclose(products, vectors @ truth["sum_over_batch_size"].T, atol=1e-10)
    # pfor ran (no silent fallback): the conv / max-pool converters of _pfor_conv held.
    assert op.batch_method == batch_method and op.batch_fallback_reason is None
    assert op.num_hvps == 3


def test_hvp_batch_parameter_structure_and_single_vector(cnn_problem):
    model, x, y, _, truth = cnn_problem
    op = tf_hessian.HessianOperator(model, loss64(), (x, y))
    rng = np.random.default_rng(23)
    vectors = [[rng.standard_normal(v.shape) for v in model.trainable_variables] for _ in range(2)]
    products = op.hvp_batch(vectors)
    assert len(products) == 2
    # conv kernel, conv bias, BN gamma, BN beta, dense kernel, dense bias.
    assert [tuple(t.shape) for t in products[1]] == [(3, 3, 1, 2), (2,), (2,), (2,), (18, 3), (3,)]
    for vector, product in zip(vectors, products):
        flat = op.layout.flatten(vector)
        expected = truth["sum_over_batch_size"] @ flat
        np.testing.assert_allclose(op.layout.flatten(product), expected, atol=1e-10)
    # k = 1 is the plain product.
    one = op.hvp_flat_batch(op.layout.flatten(vectors[0])[None, :])
    np.testing.assert_allclose(one[0], op.hvp_flat(op.layout.flatten(vectors[0])), atol=1e-12)


# sum_over_batch_size under two replicas and uneven batches is the two-conv-net case above;
# here the weighted mean, with a replica left empty by the last batch.
@pytest.mark.parametrize("reduction", ["mean_with_sample_weight"])
def test_two_replica_hvp_batch_equalsexplicit_hessian(cnn_problem, mirrored_strategy, reduction):
    model, x, y, w, truth = cnn_problem
    net = tiny_cnn(seed=21, strategy=mirrored_strategy)
    net.set_weights(model.get_weights())
    tensors = (x, y, w) if reduction == "mean_with_sample_weight" else (x, y)
    # Batches 2, 2, 1: uneven, and the last one leaves a replica empty.
    data = tf.data.Dataset.from_tensor_slices(tensors).batch(2)
    loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=reduction, dtype="float64"
    )
    op = tf_hessian.HessianOperator(net, loss, data, strategy=mirrored_strategy)
    vectors = np.random.default_rng(24).standard_normal((4, op.dim))
    expected = vectors @ truth[reduction].T
    scale = np.max(np.abs(truth[reduction]))
    np.testing.assert_allclose(
        op.hvp_flat_batch(vectors), expected, atol=1e-8 * scale * np.sqrt(op.dim)
    )
    assert op.batch_fallback_reason is None


def test_host_vectors_reach_the_step_by_one_numpy_cast(cnn_problem, monkeypatch):
    # tf.constant(float64 array, dtype=float32) converts element by element, about 4x NumPy's
    # cast; on MobileNetV2 (2.2M parameters, k = 8) that puts the public batched product at
    # 1.2x the per-replica kernel (docs/tf_hessian.md). The vectors go in as NumPy-cast
    # buffers the tensors share, one [k, *shape] tensor per variable.
    model, x, y, _, truth = cnn_problem
    op = tf_hessian.HessianOperator(model, loss64(), (x, y))
    vectors = np.random.default_rng(29).standard_normal((3, op.dim))
    op.hvp_flat_batch(vectors)
    op.hvp_flat(vectors[0])  # traced: later calls run the step only
    step, calls = op._step_hvp_batch, []

    def recorded(batch, stacked):
        calls.append(stacked)
        return step(batch, stacked)

    def no_conversion(value, *args, **kwargs):
        raise AssertionError(f"host conversion of {np.shape(value)} by tf.constant")

    monkeypatch.setattr(op, "_step_hvp_batch", recorded)
    monkeypatch.setattr(tf, "constant", no_conversion)
    monkeypatch.setattr(tf, "convert_to_tensor", no_conversion)
    products = op.hvp_flat_batch(vectors)
    single = op.hvp_flat(vectors[1])
    monkeypatch.undo()
    (sent,) = calls
    assert [tuple(t.shape) for t in sent] == [(3, *v.shape) for v in op.variables]
    np.testing.assert_array_equal(
        np.concatenate([np.asarray(t).reshape(3, -1) for t in sent], axis=1), vectors
    )
    np.testing.assert_allclose(products, vectors @ truth["sum_over_batch_size"].T, atol=1e-10)
    np.testing.assert_allclose(single, products[1], atol=1e-12)


def test_host_tensor_casts_strided_blocks_into_an_owned_aligned_buffer():
    rows = np.random.default_rng(3).standard_normal((4, 10))
    block = rows[:, 3:9]  # strided: a column block of [k, dim]
    tensor = linear_operator.host_tensor(block, tf.float32, (4, 2, 3))
    assert tensor.dtype == tf.float32 and tuple(tensor.shape) == (4, 2, 3)
    np.testing.assert_array_equal(np.asarray(tensor), block.astype(np.float32).reshape(4, 2, 3))
    rows[:] = 0.0  # the tensor owns its buffer
    assert float(tf.reduce_sum(tf.abs(tensor))) > 0
    # Many buffers (every allocation offset) import without tripping TF's alignment check.
    for size in range(1, 40):
        values = np.arange(size, dtype=np.float64)
        np.testing.assert_array_equal(
            np.asarray(linear_operator.host_tensor(values, tf.float64)), values
        )
    half = linear_operator.host_tensor(np.ones(3), tf.bfloat16)
    assert half.dtype == tf.bfloat16 and float(tf.reduce_sum(half)) == 3.0


def test_pfor_failure_falls_back_to_map_fn_with_a_warning(cnn_problem, monkeypatch):
    model, x, y, _, truth = cnn_problem
    op = tf_hessian.HessianOperator(model, loss64(), (x, y))

    def no_converter(*args, **kwargs):
        raise ValueError("No pfor vectorization defined for FakeOp")

    monkeypatch.setattr(tf, "vectorized_map", no_converter)
    vectors = np.random.default_rng(25).standard_normal((2, op.dim))
    with pytest.warns(RuntimeWarning, match="falling back to tf.map_fn.*FakeOp"):
        products = op.hvp_flat_batch(vectors)
    assert op.batch_method == "map_fn"
    assert "No pfor vectorization defined for FakeOp" in op.batch_fallback_reason
    np.testing.assert_allclose(products, vectors @ truth["sum_over_batch_size"].T, atol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, not on every call
        op.hvp_flat_batch(vectors)


def test_hvp_batch_validation(cnn_problem):
    model, x, y, _, _ = cnn_problem
    with pytest.raises(ValueError, match="batch_method must be one of"):
        tf_hessian.HessianOperator(model, loss64(), (x, y), batch_method="loop")
    op = tf_hessian.HessianOperator(model, loss64(), (x, y))
    with pytest.raises(ValueError, match=r"shape \(k, 81\).*shape=\(81,\)"):
        op.hvp_flat_batch(np.zeros(81))
    with pytest.raises(ValueError, match="at least one vector"):
        op.hvp_batch([])


@pytest.fixture(scope="module")
def mlp_operator():
    model, data = tiny_mlp(seed=26), classification_data(6, (3,), num_classes=2, seed=26)
    return tf_hessian.HessianOperator(model, loss64(), data)


def test_blocked_hutchinson_equals_sequential(mlp_operator):
    op = mlp_operator
    sequential = op.trace(max_iter=23, tol=1e-12, seed=3, return_result=True)[1]
    blocked = op.trace(max_iter=23, tol=1e-12, seed=3, return_result=True, block_size=5)[1]
    assert len(sequential.samples) == len(blocked.samples) == 23
    np.testing.assert_allclose(blocked.samples, sequential.samples, rtol=1e-12, atol=1e-12)
    assert blocked.num_products == sequential.num_products == 23
    # With a stop inside a block the samples still match; the rest of the block is counted.
    dense = DenseOperator(random_spd(12, seed=4))
    stop_seq = tf_hessian.hutchinson_trace(dense, max_iter=100, tol=0.05, seed=5)
    stop_blk = tf_hessian.hutchinson_trace(dense, max_iter=100, tol=0.05, seed=5, block_size=7)
    assert stop_seq.converged and stop_blk.converged
    np.testing.assert_array_equal(stop_blk.samples, stop_seq.samples)
    assert stop_blk.num_products == 7 * -(-len(stop_seq.samples) // 7)
    assert dense.num_matvecs == len(stop_seq.samples) + stop_blk.num_products


def test_blocked_hutchpp_equals_sequential(mlp_operator):
    op = mlp_operator
    sequential = tf_hessian.hutchpp_trace(op, num_matvecs=12, seed=6)
    blocked = tf_hessian.hutchpp_trace(op, num_matvecs=12, seed=6, block_size=3)
    np.testing.assert_allclose(blocked.samples, sequential.samples, rtol=1e-10)
    # Exact for rank <= m / 3: a rank-4 matrix with 12 products.
    basis, _ = np.linalg.qr(np.random.default_rng(7).standard_normal((10, 4)))
    low_rank = DenseOperator((basis * [5.0, -2.0, 1.5, 0.5]) @ basis.T)
    assert tf_hessian.hutchpp_trace(low_rank, num_matvecs=12, block_size=2).trace == pytest.approx(
        5.0
    )


def test_lockstep_slq_equals_sequential_runs(mlp_operator):
    op = mlp_operator
    sequential = tf_hessian.slq(op, num_iter=12, num_runs=3, seed=8)
    before = op.num_hvps
    blocked = tf_hessian.slq(op, num_iter=12, num_runs=3, seed=8, block_size=3)
    assert op.num_hvps - before == 36
    for a, b in zip(sequential, blocked):
        assert a.shape == b.shape == (3, 12)
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-11)
    grid_a, phi_a = op.density(num_iter=12, num_runs=3, seed=8, num_bins=500)
    grid_b, phi_b = op.density(num_iter=12, num_runs=3, seed=8, num_bins=500, block_size=2)
    np.testing.assert_allclose(grid_b, grid_a, rtol=1e-10)
    np.testing.assert_allclose(phi_b, phi_a, rtol=1e-7, atol=1e-9 * np.max(phi_a))


def test_lanczos_runs_reproduce_lanczos_including_restarts():
    # Rank 3 in dimension 8: the Krylov space is exhausted after 3 steps and the run restarts.
    basis, _ = np.linalg.qr(np.random.default_rng(9).standard_normal((8, 3)))
    dense = DenseOperator((basis * [3.0, 2.0, 1.0]) @ basis.T)
    runs = eigen.lanczos_runs(dense, num_iter=8, seeds=[1, 2, 3], block_size=2)
    for seed, run in zip([1, 2, 3], runs):
        alone = eigen.lanczos(dense, num_iter=8, seed=seed)
        np.testing.assert_array_equal(run.alphas, alone.alphas)
        np.testing.assert_array_equal(run.betas, alone.betas)
        assert 0.0 in run.betas  # the restart happened
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        eigen.lanczos_runs(dense, num_iter=3, seeds=[0], block_size=0)


def _depthwise_net(seed=31):
    """Conv -> ReLU -> DepthwiseConv2D (multiplier 2, stride 2) -> Dense: MobileNet's layer types.

    The depthwise conv sees parameter-dependent activations, so its tangent needs every
    depthwise converter (per-vector filter, input, and the two backward ops).
    """
    keras.utils.set_random_seed(seed)
    image = keras.Input((6, 6, 1), dtype="float64")
    h = keras.layers.Conv2D(3, 3, padding="same", activation="relu", dtype="float64")(image)
    h = keras.layers.DepthwiseConv2D(
        3, strides=2, padding="same", depth_multiplier=2, activation="tanh", dtype="float64"
    )(h)
    h = keras.layers.Flatten(dtype="float64")(h)
    return keras.Model(image, keras.layers.Dense(3, dtype="float64")(h))


@pytest.mark.parametrize("mode", ["forward_over_reverse", "reverse_over_reverse"])
def test_hvp_batch_of_depthwise_net_equals_explicit_hessian_without_fallback(mode):
    model = _depthwise_net()
    x, y = classification_data(4, (6, 6, 1), seed=31)
    truth = explicit_hessian(model, lambda: tf.reduce_mean(per_example_crossentropy(model, x, y)))
    op = tf_hessian.HessianOperator(model, loss64(), (x, y), mode=mode)
    vectors = np.random.default_rng(31).standard_normal((3, op.dim))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        products = op.hvp_flat_batch(vectors)
    assert op.batch_fallback_reason is None
    np.testing.assert_allclose(products, vectors @ truth, rtol=1e-10, atol=1e-12)
