"""HessianOperator on models and losses as Keras users write them (tf_hessian/objective.py).

Nested inputs, labels and sample weights, several outputs with per-output losses and
loss weights, tf.data of such structures, loss names, a compiled model's loss, and
training mode, each against an explicit nested-tape Hessian of the objective's
definition (float64).
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_hessian
from tf_hessian.testing import explicit_hessian


def _two_output_model(seed=0):
    """Inputs (a [4], b [2]) -> {"cls": logits [3], "reg": [2]} (float64)."""
    keras.utils.set_random_seed(seed)
    a = keras.Input((4,), dtype="float64", name="a")
    b = keras.Input((2,), dtype="float64", name="b")
    hidden = keras.layers.Dense(3, activation="tanh", dtype="float64")(
        keras.layers.Concatenate(dtype="float64")([a, b])
    )
    cls = keras.layers.Dense(3, dtype="float64", name="cls")(hidden)
    reg = keras.layers.Dense(2, dtype="float64", name="reg")(hidden)
    return keras.Model((a, b), {"cls": cls, "reg": reg})


def _two_output_data(n=7, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 4)), rng.standard_normal((n, 2)))
    y = {"cls": rng.integers(0, 3, n).astype(np.int64), "reg": rng.standard_normal((n, 2))}
    w = {"cls": rng.uniform(0.5, 2.0, n), "reg": rng.uniform(0.5, 2.0, n)}
    return x, y, w


def _losses():
    return {
        "cls": keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64"),
        "reg": keras.losses.MeanSquaredError(dtype="float64"),
    }


def _reference_objective(model, x, y, w):
    """0.7 * sum w_i ce_i / n + 0.5 * sum w_i mse_i / n over the whole data (Keras's definition)."""

    def objective():
        out = model(tuple(tf.constant(t) for t in x), training=False)
        ce = keras.losses.sparse_categorical_crossentropy(y["cls"], out["cls"], from_logits=True)
        mse = tf.reduce_mean((out["reg"] - y["reg"]) ** 2, axis=-1)
        n = float(len(y["cls"]))
        return 0.7 * tf.reduce_sum(w["cls"] * ce) / n + 0.5 * tf.reduce_sum(w["reg"] * mse) / n

    return objective


@pytest.mark.parametrize("as_dataset", [False, True])
def test_two_output_model_nested_data_equals_explicit_hessian(as_dataset):
    model = _two_output_model()
    x, y, w = _two_output_data()
    data = (x, y, w)
    if as_dataset:  # uneven batches 3, 3, 1 of the nested structures
        data = tf.data.Dataset.from_tensor_slices(data).batch(3)
    op = tf_hessian.HessianOperator(model, _losses(), data, loss_weights={"cls": 0.7, "reg": 0.5})
    expected = explicit_hessian(model, _reference_objective(model, x, y, w))
    v = np.random.default_rng(1).standard_normal(op.dim)
    np.testing.assert_allclose(op.hvp_flat(v), expected @ v, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        op.hvp_flat_batch(np.stack([v, -2 * v])),
        np.stack([expected @ v, -2 * expected @ v]),
        rtol=1e-10,
        atol=1e-12,
    )


def test_compiled_loss_and_list_form():
    model = _two_output_model()
    x, y, w = _two_output_data()
    model.compile(loss=_losses(), loss_weights={"cls": 0.7, "reg": 0.5})
    expected = explicit_hessian(model, _reference_objective(model, x, y, w))
    v = np.random.default_rng(2).standard_normal(expected.shape[0])
    compiled = tf_hessian.HessianOperator(model, None, (x, y, w))
    np.testing.assert_allclose(compiled.hvp_flat(v), expected @ v, rtol=1e-10, atol=1e-12)
    # The same with lists in output order (dict outputs are ordered by name: cls, reg).
    listed = tf_hessian.HessianOperator(
        model,
        [_losses()["cls"], _losses()["reg"]],
        (x, [y["cls"], y["reg"]], [w["cls"], w["reg"]]),
        loss_weights=[0.7, 0.5],
    )
    np.testing.assert_allclose(listed.hvp_flat(v), expected @ v, rtol=1e-10, atol=1e-12)


def _softmax_mlp(activation="softmax"):
    keras.utils.set_random_seed(0)
    image = keras.Input((3,), dtype="float64")
    hidden = keras.layers.Dense(5, activation="tanh", dtype="float64")(image)
    return keras.Model(image, keras.layers.Dense(3, activation=activation, dtype="float64")(hidden))


def test_loss_by_name_on_probabilities():
    model = _softmax_mlp()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    op = tf_hessian.HessianOperator(model, "sparse_categorical_crossentropy", (x, y))

    def objective():
        p = model(tf.constant(x), training=False)
        return -tf.reduce_mean(tf.math.log(tf.gather(p, y, batch_dims=1)))

    v = np.random.default_rng(3).standard_normal(op.dim)
    np.testing.assert_allclose(
        op.hvp_flat(v), explicit_hessian(model, objective) @ v, rtol=1e-8, atol=1e-10
    )


def test_logits_probability_mismatch_errors():
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((4, 3)), rng.integers(0, 3, 4))
    with pytest.raises(ValueError, match="softmax/sigmoid .* from_logits=True"):
        tf_hessian.HessianOperator(
            _softmax_mlp(),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64"),
            data,
        )
    with pytest.raises(ValueError, match="linear layer \\(logits\\)"):
        tf_hessian.HessianOperator(_softmax_mlp(None), "sparse_categorical_crossentropy", data)


def test_data_errors():
    model = _two_output_model()
    x, y, _ = _two_output_data()
    unbatched = tf.data.Dataset.from_tensor_slices((x, y))
    with pytest.raises(ValueError, match="unbatched.*dataset.batch"):
        tf_hessian.HessianOperator(model, _losses(), unbatched)
    with pytest.raises(ValueError, match="not compiled with a loss"):
        tf_hessian.HessianOperator(model, None, (x, y))
    with pytest.raises(ValueError, match="not model outputs"):
        tf_hessian.HessianOperator(model, {"klass": "mse"}, (x, y))
    with pytest.raises(ValueError, match="dict keyed by output name"):
        tf_hessian.HessianOperator(model, _losses(), (x, y["cls"]))
    with pytest.raises(ValueError, match="training must be True or False"):
        tf_hessian.HessianOperator(model, _losses(), (x, y), training="yes")


def _bn_model():
    keras.utils.set_random_seed(0)
    image = keras.Input((3,), dtype="float64")
    hidden = keras.layers.Dense(4, dtype="float64")(image)
    hidden = keras.layers.BatchNormalization(dtype="float64", name="bn")(hidden)
    hidden = keras.layers.Activation("tanh", dtype="float64")(hidden)
    return keras.Model(image, keras.layers.Dense(2, dtype="float64")(hidden))


def test_training_mode_batch_statistics_hessian_without_side_effects():
    model = _bn_model()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
    bn = model.get_layer("bn")
    stats = [bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
    op = tf_hessian.HessianOperator(model, loss, (x, y), training=True)
    v = np.random.default_rng(4).standard_normal(op.dim)
    hv = op.hvp_flat(v)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), stats[0])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), stats[1])

    def objective():  # batch statistics by hand: BN(h) = gamma (h - mean_B) / sqrt(var_B + eps) + beta
        h = model.layers[1](tf.constant(x))
        mean, var = tf.nn.moments(h, axes=[0])
        h = bn.gamma * (h - mean) / tf.sqrt(var + bn.epsilon) + bn.beta
        logits = model.layers[-1](tf.tanh(h))
        return tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        )

    np.testing.assert_allclose(hv, explicit_hessian(model, objective) @ v, rtol=1e-9, atol=1e-11)
    inference = tf_hessian.HessianOperator(model, loss, (x, y)).hvp_flat(v)
    assert np.linalg.norm(inference - hv) > 0.1 * np.linalg.norm(hv)


def keras_application_prefix(application, last_layer, **kwargs):
    """`application` (random weights, 3 classes) cut after `last_layer`, with its own top.

    The pfor converters act per op type, not per block: a prefix holding every layer type
    of the whole network (asserted here) exercises the same converters as the whole
    network, whose trace costs minutes on a shared CPU (the whole networks run in
    benchmarks/hessian_real_models.py).
    """
    keras.utils.set_random_seed(0)
    full = application(weights=None, classes=3, **kwargs)
    cut = [layer.name for layer in full.layers].index(last_layer) + 1
    features = keras.layers.GlobalAveragePooling2D()(full.get_layer(last_layer).output)
    top = full.layers[-1]  # the classifier: softmax probabilities, as in the whole network
    outputs = keras.layers.Dense(3, activation=top.get_config()["activation"])(features)
    prefix = keras.Model(full.inputs, outputs)
    assert {type(layer) for layer in prefix.layers} == {type(layer) for layer in full.layers}
    assert len(full.layers) > 2 * cut
    return prefix


# Each prefix ends at the network's first residual add that follows every layer type.
APPLICATION_PREFIXES = {
    # Depthwise convs at strides 1 and 2, BN, ReLU6, zero padding, residual adds.
    "mobilenetv2": (keras.applications.MobileNetV2, "block_2_add", {"alpha": 0.35}),
    # 7x7 conv at stride 2, max pool after zero padding, a projection shortcut.
    "resnet50": (keras.applications.ResNet50, "conv2_block1_out", {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPLICATION_PREFIXES))
def test_keras_applications_batched_products_without_fallback(name):
    """keras.applications networks at their smallest input (32x32), softmax output, loss by name."""
    application, last_layer, kwargs = APPLICATION_PREFIXES[name]
    model = keras_application_prefix(application, last_layer, input_shape=(32, 32, 3), **kwargs)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    op = tf_hessian.HessianOperator(model, "sparse_categorical_crossentropy", (x, np.array([0, 2])))
    u, v = rng.standard_normal((2, op.dim))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        hu, hv, h_sum = op.hvp_flat_batch(np.stack([u, v, u + v]))
    assert op.batch_fallback_reason is None
    # One traced call: linearity across the batch (no mixing of the k vectors' channel
    # groups in the depthwise converters) and the symmetry of H, to float32 rounding.
    np.testing.assert_allclose(h_sum, hu + hv, rtol=0, atol=1e-4 * np.abs(h_sum).max())
    assert u @ hv == pytest.approx(v @ hu, rel=1e-3)


@pytest.mark.slow
def test_efficientnetb0_prefix_batched_products_equal_single_products():
    """EfficientNetB0 cut after block2b_add (every layer type of the network), float64.

    The prefix holds Rescaling and Normalization, swish, squeeze-and-excitation (global
    average pool, reshape, sigmoid gate, multiply), depthwise convs at stride 1 ('same')
    and at stride 2 ('valid' after ZeroPadding2D), BN, Dropout and a residual add. In
    float64 the batched and the single products agree to 1e-10, so a converter that mixes
    or misplaces the k vectors cannot hide in float32 rounding.
    """
    # Once any code has read the global dtype policy (`keras.config.dtype_policy()` sets it
    # from floatx on first use), floatx alone no longer decides a new layer's dtype: set both.
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        model = keras_application_prefix(
            keras.applications.EfficientNetB0, "block2b_add", input_shape=(32, 32, 3)
        )
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    assert {w.dtype for w in model.trainable_weights} == {"float64"}
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, 32, 32, 3))
    op = tf_hessian.HessianOperator(model, "sparse_categorical_crossentropy", (x, np.array([0, 2])))
    vectors = rng.standard_normal((2, op.dim))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        batched = op.hvp_flat_batch(vectors)
    assert op.batch_fallback_reason is None
    singles = np.stack([op.hvp_flat(v) for v in vectors])
    np.testing.assert_allclose(batched, singles, rtol=1e-10, atol=1e-12 * np.abs(singles).max())
