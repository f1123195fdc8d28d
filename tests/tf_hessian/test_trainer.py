"""Trainer: accumulation equals a true large batch, replicas equal one device, robust replacement."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_runtime
from tf_hessian import train_lib, trainer
from tf_hessian.configs import default
from tf_hessian.testing import classification_data


def _one_step(num_micro_batches, x, y, weights, **kwargs):
    network = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(3)]
    )
    network.set_weights(weights)
    model = trainer.ClassifierTrainer(network, num_micro_batches=num_micro_batches, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.optimizer.build(network.trainable_variables)
    logs = tf.function(model.train_step)((x, y))
    return network.get_weights(), {k: float(v) for k, v in logs.items()}


def test_accumulation_equals_true_large_batch_without_batchnorm():
    keras.utils.set_random_seed(0)
    weights = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(6), keras.layers.Dense(3)]
    ).get_weights()
    x, y = classification_data(8, (4,), num_classes=3, seed=0)
    x = x.astype(np.float32)
    full, full_logs = _one_step(1, x, y, weights, weight_decay=1e-2)
    accumulated, acc_logs = _one_step(4, x, y, weights, weight_decay=1e-2)
    for a, b in zip(full, accumulated):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert acc_logs["loss"] == pytest.approx(full_logs["loss"], rel=1e-5)
    assert np.max(np.abs(full[0] - weights[0])) > 1e-3


def test_robust_step_replaces_first_examples():
    keras.utils.set_random_seed(1)
    weights = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(6), keras.layers.Dense(3)]
    ).get_weights()
    x, y = classification_data(8, (4,), num_classes=3, seed=1)
    kwargs = dict(
        num_adversarial=1, adversarial_steps=1, attack_kwargs=dict(epsilon=0.3, clip="none")
    )
    robust, logs = _one_step(2, x.astype(np.float32), y, weights, **kwargs)
    clean, _ = _one_step(2, x.astype(np.float32), y, weights)
    assert logs["adversarial_fraction"] == pytest.approx(0.25)
    assert np.max(np.abs(robust[0] - clean[0])) > 1e-4


def test_loss_functions_hand_computed():
    logits = tf.constant([[0.0, np.log(3.0)]])
    assert float(trainer.cross_entropy(labels=tf.constant([1]), logits=logits)) == pytest.approx(
        np.log(4 / 3)
    )
    assert float(
        trainer.l2_penalty(weights=[tf.constant([3.0, 4.0])], weight_decay=0.1)
    ) == pytest.approx(1.25)


def _train_distributed(strategy, weights, x, y, steps, **kwargs):
    """``steps`` optimizer steps of a ClassifierTrainer on batches of 8 under ``strategy``."""
    with strategy.scope():
        network = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)]
        )
        network.set_weights(weights)
        model = trainer.ClassifierTrainer(network, num_micro_batches=2, **kwargs)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        model.optimizer.build(network.trainable_variables)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    @tf.function
    def step(batch):
        return strategy.run(model.train_step, args=(batch,))

    for _ in range(steps):
        logs = step(next(iterator))
    fraction = strategy.reduce("MEAN", logs["adversarial_fraction"], axis=None)
    return network.get_weights(), float(fraction)


@pytest.mark.parametrize(
    "attack,num_adversarial,fraction", [("fgsm", 2, 0.5), ("pgd", 2, 0.5), ("fgsm", 3, 0.75)]
)
def test_robust_training_two_replicas_equal_one_device(
    default_strategy, mirrored_strategy, attack, num_adversarial, fraction
):
    # Micro-batches of 4 (global): one device replaces the first `num_adversarial` examples of
    # each. Two replicas hold 4 examples each, split into micro-batches of 2; they must replace
    # the same global positions (for 2: 0, 1, not 0 and 2; for 3, which does not split over
    # the replicas: 0, 1, 2, i.e. both examples of a replica's first micro-batch and one of
    # its second).
    keras.utils.set_random_seed(2)
    weights = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(6), keras.layers.Dense(3)]
    ).get_weights()
    x, y = classification_data(32, (4,), num_classes=3, seed=2)
    attack_kwargs = dict(epsilon=0.3, clip="none")
    if attack == "pgd":
        attack_kwargs.update(step_size=0.1, num_steps=2)
    kwargs = dict(adversarial_steps=100, attack=attack, attack_kwargs=attack_kwargs)
    x = x.astype(np.float32)
    kwargs["num_adversarial"] = num_adversarial  # per GLOBAL micro-batch on either strategy
    one, one_fraction = _train_distributed(default_strategy, weights, x, y, 10, **kwargs)
    two, two_fraction = _train_distributed(mirrored_strategy, weights, x, y, 10, **kwargs)
    clean, _ = _train_distributed(default_strategy, weights, x, y, 10)
    assert one_fraction == two_fraction == pytest.approx(fraction)
    assert np.max(np.abs(one[0] - clean[0])) > 1e-3  # the attacks changed the training
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("adv_ratio", [0.25, 0.375])
def test_two_replicas_equal_one_device(tmp_path, default_strategy, mirrored_strategy, adv_ratio):
    # Smoke config: robust training on, global micro-batches of 8. 0.25 gives 2 of 8 (1 per
    # replica); 0.375 gives 3 of 8, which does not split over 2 replicas (a per-replica
    # count round(1.5) = 2 would attack 4 examples on 2 replicas against 3 on one device).
    config = default.get_config("smoke")
    config.robust.adv_ratio = adv_ratio
    config.num_steps = 4
    config.export = False
    config.log_every = 0
    for name in ("one", "two"):
        tf_runtime.write_config(config, str(tmp_path / name))
    one = train_lib.train_and_evaluate(config, str(tmp_path / "one"), default_strategy)
    two = train_lib.train_and_evaluate(config, str(tmp_path / "two"), mirrored_strategy)
    assert one["train"]["loss"] == pytest.approx(two["train"]["loss"], rel=1e-5)
    net_one, _, _ = train_lib.restore_network(str(tmp_path / "one"))
    net_two, _, _ = train_lib.restore_network(str(tmp_path / "two"))
    for a, b in zip(net_one.get_weights(), net_two.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for replicas in (1, 2):
        schedule = train_lib.resolve_schedule(config, 64, replicas)
        assert schedule["num_adversarial_global"] == {0.25: 2, 0.375: 3}[adv_ratio]


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("batch_size", 12, "multiple of"),
        ("batch_size", 100000, "exceeds"),
        ("robust.adv_ratio", 0.0, "adv_ratio"),
        ("robust.epsilon", -1.0, "epsilon"),
    ],
)
def test_schedule_validation(field, value, match):
    config = default.get_config("smoke")
    if "." in field:
        setattr(getattr(config, field.split(".")[0]), field.split(".")[1], value)
    else:
        setattr(config, field, value)
    with pytest.raises(ValueError, match=match):
        train_lib.resolve_schedule(config, 64, 1)


def test_schedule_values():
    config = default.get_config()
    config.batch_size = 1024
    config.robust.enabled = True
    config.robust.scale_ratio_with_batch = True
    schedule = train_lib.resolve_schedule(config, 50000, 2)
    assert schedule["num_micro_batches"] == 8
    assert schedule["num_steps"] == round(90 * 50000 / 1024)
    assert schedule["boundaries"] == [round(30 * 50000 / 1024), round(60 * 50000 / 1024)]
    # ABSA halving of 0.2 (batch 1024 = 8 x 128), per GLOBAL micro-batch of 128: 3.2 -> 3.
    assert schedule["num_adversarial_global"] == 3
    assert schedule["adversarial_steps"] == int(np.ceil(0.5 * schedule["num_steps"]))
