"""Every Keras loss reduction, one device and two replicas, against a hand-written explicit Hessian."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_hessian
from tf_hessian.testing import (
    classification_data,
    explicit_hessian,
    per_example_crossentropy,
    tiny_cnn,
)


@pytest.fixture(scope="module")
def problem():
    model = tiny_cnn(seed=11)
    x, y = classification_data(5, (6, 6, 1), seed=11)
    w = np.array([0.5, 2.0, 1.0, 3.0, 0.25])
    truth = {
        "sum_over_batch_size": explicit_hessian(
            model, lambda: tf.reduce_mean(per_example_crossentropy(model, x, y))
        ),
        "mean_with_sample_weight": explicit_hessian(
            model, lambda: tf.reduce_sum(w * per_example_crossentropy(model, x, y)) / np.sum(w)
        ),
        "sum": explicit_hessian(
            model, lambda: tf.reduce_sum(per_example_crossentropy(model, x, y))
        ),
    }
    return model, x, y, w, truth


@pytest.mark.parametrize(
    "replicas,reduction",
    [
        (1, "mean_with_sample_weight"),
        (2, "sum_over_batch_size"),
        (2, "mean_with_sample_weight"),
        (2, "sum"),
    ],
)
def test_reduction_exact_on_uneven_batches(problem, mirrored_strategy, reduction, replicas):
    model, x, y, w, truth = problem
    strategy = mirrored_strategy if replicas == 2 else tf.distribute.get_strategy()
    if replicas == 2:
        net = tiny_cnn(seed=11, strategy=mirrored_strategy)
        net.set_weights(model.get_weights())
    else:
        net = model
    tensors = (x, y, w) if reduction == "mean_with_sample_weight" else (x, y)
    # Batches 2, 2, 1: uneven, and the last one leaves a replica empty.
    data = tf.data.Dataset.from_tensor_slices(tensors).batch(2)
    loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=reduction, dtype="float64"
    )
    op = tf_hessian.HessianOperator(net, loss, data, strategy=strategy)
    expected = truth[reduction]
    v = np.random.default_rng(12).standard_normal(op.dim)
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(op.hvp_flat(v), expected @ v, atol=1e-8 * scale * np.sqrt(op.dim))
    if replicas == 1 or reduction == "mean_with_sample_weight":
        # The explicit Hessian (a traced jacobian per batch, the slow part under two replicas)
        # shares the operator's batch loop, reductions and normaliser: one two-replica case
        # with an empty replica and weights covers it; the products above pin each reduction.
        np.testing.assert_allclose(op.full_hessian(), expected, atol=1e-8 * scale)


def test_full_hessian_of_two_replica_operator_on_one_batch(problem, mirrored_strategy):
    model, x, y, _, truth = problem
    net = tiny_cnn(seed=11, strategy=mirrored_strategy)
    net.set_weights(model.get_weights())
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
    with mirrored_strategy.scope():  # where a user building models under the strategy calls it
        op = tf_hessian.HessianOperator(net, loss, (x, y), strategy=mirrored_strategy)
        hessian = op.full_hessian()
    np.testing.assert_allclose(hessian, truth["sum_over_batch_size"], atol=1e-12)


def test_none_reduction_and_weights_with_plain_function_rejected(problem):
    model, x, y, w, _ = problem
    loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="none", dtype="float64"
    )
    with pytest.raises(ValueError, match="reduction='none'.*sum_over_batch_size"):
        tf_hessian.HessianOperator(model, loss, (x, y))

    def plain(y_true, y_pred):
        return tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        )

    with pytest.raises(ValueError, match="sample weights but loss_fn is a plain function"):
        tf_hessian.HessianOperator(model, plain, (x, y, w))
