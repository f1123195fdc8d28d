"""CIFAR presets of the paper's networks: build, and one robust training step on real CIFAR-10 images."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from input_pipelines import classification
from tf_hessian import train_lib
from tf_hessian.configs import cifar, study
from tf_hessian.trainer import ClassifierTrainer

PARAMETERS = {"c1_cifar10": 1_756_682, "c2_cifar10": 1_148_746}


@pytest.mark.parametrize("variant", cifar.PRESETS)
def test_preset_builds_the_papers_network(variant):
    config = cifar.get_config(variant)
    network = train_lib.build_network(config)
    classes = 100 if variant.endswith("cifar100") else 10
    assert network.output_shape == (None, classes)
    count = sum(int(np.prod(v.shape)) for v in network.trainable_variables)
    if variant in PARAMETERS:
        assert count == PARAMETERS[variant]
    if variant.startswith("resnet"):
        assert config.model_kwargs.depth == 20 and config.epochs == 160
    assert study.get_config(variant).train.data.name == variant.split("_")[1]


@pytest.mark.parametrize("variant", ["c1_cifar10", "resnet20_cifar10"])
def test_preset_one_robust_step_on_real_cifar10(shared_data_dir, variant):
    data_dir = shared_data_dir / "cifar10"
    if not data_dir.is_dir():
        pytest.skip(f"no CIFAR-10 sample at {data_dir}")
    config = cifar.get_config(variant)
    config.data.data_dir = str(data_dir)
    images, labels = classification.load_arrays("cifar10", "test", str(data_dir), limit=16)
    x = tf.constant(images.astype(np.float32) / 255.0)
    y = tf.constant(labels.astype(np.int32))
    keras.utils.set_random_seed(0)
    network = train_lib.build_network(config)
    trainer = ClassifierTrainer(
        network,
        num_micro_batches=2,
        weight_decay=config.optimizer.weight_decay,
        num_adversarial=2,
        adversarial_steps=1,
        attack_kwargs=dict(epsilon=0.005, clip_min=0.0, clip_max=1.0),
    )
    trainer.compile(optimizer=keras.optimizers.SGD(config.optimizer.learning_rate, momentum=0.9))
    trainer.optimizer.build(network.trainable_variables)
    before = [w.numpy().copy() for w in network.trainable_variables]
    logs = trainer.train_step((x, y))
    assert np.isfinite(float(logs["loss"])) and float(logs["adversarial_fraction"]) == 0.25
    moved = [np.max(np.abs(b - w.numpy())) for b, w in zip(before, network.trainable_variables)]
    assert min(moved) > 0
