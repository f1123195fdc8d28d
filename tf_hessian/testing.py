"""Small float64 problems with known Hessians, for tests and user-side checks of the toolkit."""

import keras
import numpy as np
import tensorflow as tf

from tf_hessian import models


class ParameterVector(keras.layers.Layer):
    """Outputs its weight w [n] for every example, ignoring the input values."""

    def __init__(self, initial, **kwargs):
        super().__init__(dtype="float64", **kwargs)
        self.w = self.add_weight(
            shape=(len(initial),), initializer=keras.initializers.Constant(initial)
        )

    def call(self, x):
        return tf.zeros([tf.shape(x)[0], 1], self.w.dtype) + self.w[None, :]


def quadratic_problem(matrix, initial):
    """A model whose loss 0.5 w^T Q w has Hessian exactly Q."""
    q = tf.constant(matrix, tf.float64)
    image = keras.Input((1,), dtype="float64")
    model = keras.Model(image, ParameterVector(initial)(image))

    def loss_fn(y_true, y_pred):
        del y_true
        return 0.5 * tf.reduce_mean(tf.einsum("bi,ij,bj->b", y_pred, q, y_pred))

    data = (np.zeros((3, 1)), np.zeros((3,)))
    return model, loss_fn, data


def random_spd(n, seed=0, negative=0):
    """Symmetric matrix with known spectrum 1..n (the first `negative` made negative)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    spectrum = np.arange(1.0, n + 1.0)
    spectrum[:negative] *= -1
    return (basis * spectrum) @ basis.T


def loss64():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")


def tiny_mlp(seed=0, activation="tanh", input_shape=(3,), hidden=(7,), num_classes=2):
    keras.utils.set_random_seed(seed)
    return models.build_mlp(
        input_shape, num_classes, hidden_units=hidden, activation=activation, dtype="float64"
    )


def tiny_cnn(seed=0, strategy=None):
    keras.utils.set_random_seed(seed)
    if strategy is None:
        model = models.build_small_cnn((6, 6, 1), 3, filters=2, dtype="float64")
    else:
        with strategy.scope():
            model = models.build_small_cnn((6, 6, 1), 3, filters=2, dtype="float64")
    bn = model.get_layer("bn")
    # Non-trivial moving statistics so that the inference-mode BN is not the identity.
    bn.moving_mean.assign([0.1, -0.2])
    bn.moving_variance.assign([0.5, 2.0])
    return model


def classification_data(n, input_shape, num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *input_shape)), rng.integers(0, num_classes, n).astype(np.int32)


def explicit_hessian(model, objective):
    """d^2 objective / d theta^2 on one device by nested tapes (float64 [dim, dim]).

    `objective` is a no-argument callable returning the scalar loss of `model`; the
    Hessian is built column block by column block with `GradientTape.jacobian`, with no
    Hessian-vector product involved, so tests can check HVPs against it.
    """
    variables = [v.value for v in model.trainable_variables]
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            loss = objective()
        grads = inner.gradient(loss, variables)
        flat = tf.concat([tf.reshape(g, [-1]) for g in grads], 0)
    blocks = outer.jacobian(flat, variables)
    return np.concatenate([np.reshape(b, (flat.shape[0], -1)) for b in blocks], axis=1)


def per_example_crossentropy(model, x, y):
    """Per-example sparse cross-entropy of `model`'s logits (inference mode) [n]."""
    logits = model(tf.constant(x), training=False)
    return keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
