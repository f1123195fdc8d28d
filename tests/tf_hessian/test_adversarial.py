"""FGSM / PGD bounds, robustness evaluation and the input-Hessian PSD property."""

import numpy as np
import pytest
import tensorflow as tf

from tf_hessian import adversarial
from tf_hessian.testing import classification_data, tiny_cnn, tiny_mlp


@pytest.fixture(scope="module")
def cnn_batch():
    model = tiny_cnn(seed=0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 6, 6, 1))
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 0.0, 1.0  # pixels on the range boundary
    return model, x, rng.integers(0, 3, 4).astype(np.int32)


def test_fgsm_within_epsilon_and_range(cnn_batch):
    model, x, y = cnn_batch
    x_adv = adversarial.fgsm(model, x, y, epsilon=0.1).numpy()
    assert x_adv.shape == x.shape
    assert np.max(np.abs(x_adv - x)) <= 0.1 + 1e-12
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    # Interior pixels move by exactly epsilon (sign step).
    interior = (x > 0.1) & (x < 0.9)
    np.testing.assert_allclose(np.abs(x_adv - x)[interior], 0.1, atol=1e-12)
    loss_clean = adversarial.per_example_loss(model, x, y).numpy()
    loss_adv = adversarial.per_example_loss(model, x_adv, y).numpy()
    assert np.all(loss_adv > loss_clean)


def test_fgsm_batch_clip_and_errors(cnn_batch):
    model, x, y = cnn_batch
    x_adv = adversarial.fgsm(model, 0.5 * x, y, epsilon=0.3, clip="batch").numpy()
    assert x_adv.min() >= 0.0 and x_adv.max() <= 0.5
    with pytest.raises(ValueError, match="clip must be one of"):
        adversarial.fgsm(model, x, y, epsilon=0.1, clip="box")
    with pytest.raises(ValueError, match="clip_min and clip_max"):
        adversarial.fgsm(model, x, y, epsilon=0.1, clip_min=None)


def test_pgd_within_epsilon_and_stronger_than_fgsm(cnn_batch):
    model, x, y = cnn_batch
    x_adv = adversarial.pgd(model, x, y, epsilon=0.1, step_size=0.03, num_steps=8).numpy()
    assert np.max(np.abs(x_adv - x)) <= 0.1 + 1e-12
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    loss_pgd = adversarial.per_example_loss(model, x_adv, y).numpy().sum()
    loss_fgsm = (
        adversarial.per_example_loss(model, adversarial.fgsm(model, x, y, epsilon=0.1), y)
        .numpy()
        .sum()
    )
    assert loss_pgd >= loss_fgsm - 1e-9


def test_robust_accuracy_decreases_with_epsilon(cnn_batch):
    model, x, y = cnn_batch
    pred = np.argmax(model(x, training=False).numpy(), axis=-1)
    dataset = tf.data.Dataset.from_tensor_slices((x, pred.astype(np.int32))).batch(3)
    accuracy = adversarial.robust_accuracy(model, dataset, [0.0, 0.05, 1.0])
    assert accuracy[0.0] == 1.0  # labels are the clean predictions
    assert accuracy[0.05] <= 1.0 and accuracy[1.0] <= accuracy[0.05]
    with pytest.raises(ValueError, match="attack must be one of"):
        adversarial.robust_accuracy(model, dataset, [0.1], attack="cw")


def test_input_hessian_psd_for_relu_and_indefinite_for_tanh():
    x, y = classification_data(4, (5,), num_classes=3, seed=1)
    relu = tiny_mlp(seed=1, activation="relu", input_shape=(5,), hidden=(16, 16), num_classes=3)
    summary = adversarial.input_hessian_spectrum(relu, x, y)
    assert summary["max"].shape == (4,)
    assert np.all(summary["max"] > 1e-6)
    assert np.all(summary["min_over_max_abs"] > -1e-10)  # PSD to rounding (spec §1.9)
    tanh = tiny_mlp(seed=1, activation="tanh", input_shape=(5,), hidden=(16, 16), num_classes=3)
    assert np.min(adversarial.input_hessian_spectrum(tanh, x, y)["min_over_max_abs"]) < -1e-3


def test_input_hessian_power_iteration_matches_explicit():
    x, y = classification_data(3, (5,), num_classes=3, seed=2)
    model = tiny_mlp(seed=2, activation="relu", input_shape=(5,), hidden=(16,), num_classes=3)
    top = adversarial.input_hessian_top_eigenvalue(model, x, y, num_iter=200).numpy()
    np.testing.assert_allclose(
        top, adversarial.input_hessian_spectrum(model, x, y)["max"], rtol=1e-6
    )


def test_deepfool_exact_on_affine_classifier_and_rho_adv():
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((5,), dtype="float64"), keras.layers.Dense(4, dtype="float64")]
    )
    kernel, bias = (w.numpy() for w in model.weights)
    x = np.random.default_rng(3).standard_normal((6, 5))
    z = x @ kernel + bias
    pred = np.argmax(z, axis=1)
    # Closed form: distance to the nearest class boundary of an affine classifier.
    distance = np.array(
        [
            min(
                abs(z[i, k] - z[i, pred[i]]) / np.linalg.norm(kernel[:, k] - kernel[:, pred[i]])
                for k in range(4)
                if k != pred[i]
            )
            for i in range(6)
        ]
    )
    r, flipped = adversarial.deepfool(model, x, num_classes=4, overshoot=0.0)
    assert bool(np.all(flipped.numpy()))
    np.testing.assert_allclose(np.linalg.norm(r.numpy(), axis=1), distance, rtol=1e-3, atol=1e-3)
    dataset = tf.data.Dataset.from_tensor_slices((x, pred)).batch(4)
    result = adversarial.rho_adv(model, dataset, num_classes=4, overshoot=0.0)
    expected = np.mean(distance / np.linalg.norm(x, axis=1))
    assert result["rho_adv"] == pytest.approx(expected, rel=1e-3)
    assert result["flipped_fraction"] == 1.0 and result["num_examples"] == 6


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_input_hessian_lambda_min_matches_explicit(activation):
    model = tiny_mlp(seed=4, activation=activation, input_shape=(5,), hidden=(6,), num_classes=3)
    x, y = classification_data(4, (5,), num_classes=3, seed=4)
    exact = adversarial.input_hessian_spectrum(model, x, y)
    top, lowest = adversarial.input_hessian_extreme_eigenvalues(model, x, y, num_iter=150)
    scale = np.max(np.abs(exact["max"]))
    np.testing.assert_allclose(lowest.numpy(), exact["min"], atol=1e-4 * scale)
    if activation == "tanh":
        assert np.min(exact["min"]) < -1e-3 * scale  # the check can see negative curvature
    else:
        assert np.min(lowest.numpy()) > -1e-6 * scale  # PSD: saddle-free inner loop
