"""Classifier builders and their train_step (incl. two replicas == one device)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_ode import blocks, losses, models

# (architecture, number of ODE/residual blocks, conv layers incl. the blocks' two convs, dense layers)
SHAPES = [("resnet4", 1, 3, 1), ("resnet10", 3, 9, 1), ("alexnet", 2, 6, 3)]


@pytest.mark.parametrize("architecture,num_blocks,num_convs,num_dense", SHAPES)
@pytest.mark.parametrize("variant", models.VARIANTS)
def test_model_structure(architecture, num_blocks, num_convs, num_dense, variant):
    model = models.build_model(
        architecture=architecture, variant=variant, num_classes=7, input_shape=(8, 8, 3), width=4
    )
    logits = model(tf.zeros([2, 8, 8, 3]))
    assert logits.shape == (2, 7)
    assert isinstance(model.layers[-1], keras.layers.Dense) and model.layers[-1].name == "logits"
    block_type = {
        "baseline": blocks.ResidualBlock,
        "anode": blocks.ODEBlock,
        "anodev2": blocks.CoupledODEBlock,
    }
    found = [layer for layer in model.layers if isinstance(layer, block_type[variant])]
    assert len(found) == num_blocks
    convs = sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers) + 2 * num_blocks
    assert convs == num_convs
    assert sum(isinstance(layer, keras.layers.Dense) for layer in model.layers) == num_dense


def test_anode_and_baseline_have_equal_parameter_counts_and_anodev2_adds_p():
    counts = {
        v: models.build_model(
            architecture="resnet4", variant=v, num_classes=10, input_shape=(8, 8, 1), width=4
        ).count_params()
        for v in models.VARIANTS
    }
    # ODEBlock adds only its non-trainable evaluation counter (1 scalar).
    assert counts["anode"] == counts["baseline"] + 1
    # RDA per kernel [3, 3, 4, 4]: rho 4 + velocity 8 + reaction 16 + 4 = 32; two kernels.
    assert counts["anodev2"] == counts["anode"] + 64


def test_build_model_errors():
    with pytest.raises(ValueError, match="Unknown architecture"):
        models.build_model(
            architecture="vgg", variant="anode", num_classes=10, input_shape=(8, 8, 1)
        )
    with pytest.raises(ValueError, match="Unknown variant"):
        models.build_model(
            architecture="resnet4", variant="node", num_classes=10, input_shape=(8, 8, 1)
        )
    with pytest.raises(ValueError, match="width must be >= 1"):
        models.build_model(
            architecture="resnet4", variant="anode", num_classes=10, input_shape=(8, 8, 1), width=0
        )
    with pytest.raises(ValueError, match=r"input_shape must be \(H, W, C\)"):
        models.build_model(
            architecture="resnet4", variant="anode", num_classes=10, input_shape=(8, 8)
        )


def test_losses_against_hand_computed_values():
    logits = tf.constant([[2.0, 0.0], [0.0, 0.0]])
    expected = (np.log(1 + np.exp(-2.0)) + np.log(2.0)) / 2
    np.testing.assert_allclose(
        float(losses.classification_loss(labels=tf.constant([0, 1]), logits=logits)),
        expected,
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        float(
            losses.classification_loss(labels=tf.constant([0, 1]), logits=logits, num_replicas=2)
        ),
        expected / 2,
        rtol=1e-6,
    )
    penalty = losses.weight_decay_penalty(
        weights=[tf.constant([3.0, 4.0]), tf.constant([[1.0]])], weight_decay=0.1, num_replicas=2
    )
    np.testing.assert_allclose(float(penalty), 0.5 * 0.1 * 26.0 / 2, rtol=1e-6)
    assert float(losses.weight_decay_penalty(weights=[], weight_decay=0.1)) == 0.0


def _train_one_step(strategy, images, labels):
    keras.utils.set_random_seed(3)
    with strategy.scope():
        model = models.build_model(
            architecture="resnet4",
            variant="anodev2",
            num_classes=10,
            input_shape=(8, 8, 1),
            width=4,
            num_steps=2,
            weight_decay=5e-4,
        )
        model(tf.zeros([1, 8, 8, 1]))
        optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
    batch_size = images.shape[0]
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
    )

    @tf.function
    def step(batch):
        logs = strategy.run(model.train_step, args=(batch,))
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

    for _ in range(2):
        logs = step(next(iter(dataset)))
    return [v.numpy() for v in model.trainable_variables], {k: float(v) for k, v in logs.items()}


def test_two_replicas_equal_one_device(mirrored_strategy, default_strategy):
    images = tf.random.stateless_normal([8, 8, 8, 1], seed=[0, 1])
    labels = tf.constant([0, 1, 2, 3, 4, 5, 6, 7])
    weights_one, logs_one = _train_one_step(default_strategy, images, labels)
    weights_two, logs_two = _train_one_step(mirrored_strategy, images, labels)
    for a, b in zip(weights_one, weights_two):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-6)
    np.testing.assert_allclose(logs_two["loss"], logs_one["loss"], rtol=1e-4)
    # Euler, Nt = 2, checkpointed: 2 forward + 2 recomputed evaluations of the single block.
    assert logs_one["nfe"] == 4.0 and logs_two["nfe"] == 4.0


def test_saliency_through_logits_layer():
    # Models end in a Dense "logits" layer so tf-keras-vis can replace its activation.
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    model = models.build_model(
        architecture="resnet4", variant="anodev2", num_classes=10, input_shape=(8, 8, 1), width=4
    )
    images = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    maps = np.asarray(
        Saliency(model, model_modifier=ReplaceToLinear(), clone=True)(
            CategoricalScore([1, 2]), images
        )
    )
    assert maps.shape == (2, 8, 8)
    assert np.all(np.isfinite(maps)) and maps.max() > 0


def test_keras_file_round_trip(tmp_path):
    model = models.build_model(
        architecture="alexnet",
        variant="anodev2",
        num_classes=5,
        input_shape=(8, 8, 1),
        width=2,
        method="rk2",
        weight_decay=1e-4,
    )
    images = np.random.default_rng(1).random((2, 8, 8, 1)).astype("float32")
    expected = model(images).numpy()
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(restored, models.ODEClassifier) and restored.weight_decay == 1e-4
    assert [layer.method for layer in restored.ode_blocks()] == ["rk2", "rk2"]
    np.testing.assert_allclose(restored(images).numpy(), expected, rtol=1e-6, atol=1e-6)
