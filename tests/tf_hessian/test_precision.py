"""float32 operators against float64 on real images (tf_hessian/precision.py).

A max-pool network's float32 and float64 gradients differ at windows whose two
largest cells lie within float32 rounding (the precisions pick different cells).
At the same choices (``pinned_float64_twin``) the float32 gradient, HVP and
lambda_max must be within 2e-5 of float64, per variable.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_hessian
from input_pipelines import classification
from tf_hessian import models, precision

TOL = 2e-5


def _real(shared_data_dir, name, count):
    folder = "cifar10" if name == "cifar10" else "mnist"
    try:
        images, labels = classification.load_arrays(
            name, "test", str(shared_data_dir / folder), limit=count
        )
    except (FileNotFoundError, ValueError) as error:
        pytest.skip(f"{name} sample not available: {error}")
    return tf.constant(images.astype(np.float32) / 255.0), tf.constant(labels.astype(np.int32))


def _operators(model, twin, x, y):
    op32 = tf_hessian.HessianOperator(
        model, keras.losses.SparseCategoricalCrossentropy(from_logits=True), (x, y)
    )
    op64 = tf_hessian.HessianOperator(
        twin,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64"),
        (tf.cast(x, tf.float64), y),
    )
    return op32, op64


def _per_variable(layout, a, b):
    return [
        float(np.linalg.norm(a[s:e] - b[s:e]) / np.linalg.norm(b[s:e]))
        for s, e in zip(layout.offsets[:-1], layout.offsets[1:])
    ]


def _build(name):
    keras.utils.set_random_seed(0)
    if name == "c1":
        return models.build_c1(), "cifar10"
    # M1 (conv, pool, BN) with non-trivial BN statistics (at initialisation BN is ~ identity).
    model = models.build_m1()
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(np.linspace(-0.2, 0.2, n))
            layer.moving_variance.assign(np.linspace(0.5, 2.0, n))
            layer.beta.assign(np.linspace(-0.1, 0.3, n))
    return model, "mnist"


@pytest.mark.parametrize("name", ["c1", "m1_bn_statistics"])
def test_float32_gradient_hvp_lambda_max_match_float64(shared_data_dir, name):
    model, dataset = _build(name)
    x, y = _real(shared_data_dir, dataset, 16)
    twin = precision.pinned_float64_twin(model, x)
    op32, op64 = _operators(model, twin, x, y)
    _, g32 = op32.loss_and_gradient()
    _, g64 = op64.loss_and_gradient()
    grad_errors = _per_variable(op32.layout, op32.layout.flatten(g32), op64.layout.flatten(g64))
    assert max(grad_errors) <= TOL, grad_errors
    v = np.random.default_rng(0).standard_normal(op32.dim)
    hvp_errors = _per_variable(op32.layout, op32.hvp_flat(v), op64.hvp_flat(v))
    assert max(hvp_errors) <= TOL, hvp_errors
    # Same start vector and step count in both precisions (tol below float32 reach: all steps run).
    top32 = tf_hessian.lanczos_eigenpairs(op32, top_n=1, max_iter=8, tol=1e-12).eigenvalues[0]
    top64 = tf_hessian.lanczos_eigenpairs(op64, top_n=1, max_iter=8, tol=1e-12).eigenvalues[0]
    assert abs(top32 - top64) <= TOL * abs(top64), (top32, top64)


def _near_tie_model():
    """A 1x1 conv summing two channels, then a 2x2 max pool: one window, four cells."""
    image = keras.Input((2, 2, 2))
    conv = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="conv")
    pooled = keras.layers.MaxPooling2D(2, name="pool")(conv(image))
    logits = keras.layers.Dense(2, kernel_initializer="ones", name="logits")(
        keras.layers.Flatten()(pooled)
    )
    return keras.Model(image, logits)


def test_near_tie_flips_and_pinned_twin():
    model = _near_tie_model()
    # The conv makes cells 0 and 3 equal to 1 and 1 + 2**-30 (inputs exact in float32): float64
    # picks cell 3, float32 rounds the sum to 1 (a tie) and picks the first cell.
    x64 = np.stack([[1.0, 0.5, 0.25, 1.0], [0.0, 0.0, 0.0, 2.0**-30]], -1).reshape(1, 2, 2, 2)
    x32 = tf.constant(x64, tf.float32)
    assert precision.max_pool_flips(model, x32) == {"pool": 1}

    def input_gradient(net, x):
        x = tf.Variable(x)
        with tf.GradientTape() as tape:
            out = tf.reduce_sum(net(x, training=False))
        return tape.gradient(out, x).numpy()[..., 0].reshape(-1)

    # The float32 model's choice (cell 0) and the pinned twin agree; the plain twin picks cell 3.
    np.testing.assert_array_equal(input_gradient(model, x32), [2.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(
        input_gradient(precision.pinned_float64_twin(model, x32), x64), [2.0, 0.0, 0.0, 0.0]
    )
    np.testing.assert_array_equal(
        input_gradient(precision.float64_twin(model), x64), [0.0, 0.0, 0.0, 2.0]
    )


def test_pinned_twin_rejects_channels_first_pool():
    image = keras.Input((1, 2, 2))
    out = keras.layers.MaxPooling2D(2, data_format="channels_first", name="pool")(image)
    model = keras.Model(image, keras.layers.Flatten()(out))
    with pytest.raises(ValueError, match="channels_last"):
        precision.pinned_float64_twin(model, tf.zeros([1, 1, 2, 2]))
