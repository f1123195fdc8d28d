"""Tests for the segmenter trainer (supervised and feature-level alignment)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_madan.models import build_small_segmenter
from tf_madan.models.discriminator import build_feature_discriminator
from tf_madan.segmentation_model import SegmenterTrainer, segmenter_with_features


def make_trainer(strategy=None, *, fla=True, gate_threshold=0.0, lr=0.1, feature_layer="features"):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        keras.utils.set_random_seed(0)
        seg = build_small_segmenter(5, filters=4, norm="none")
        channels = 16 if feature_layer else 5
        disc = build_feature_discriminator(channels, hidden=(8,), dropout_rate=0.0) if fla else None
        model = SegmenterTrainer(
            segmenter=seg,
            feature_discriminator=disc,
            feature_layer=feature_layer if fla else None,
            gate_threshold=gate_threshold,
            gate_window=2,
        )
        model.compile(optimizers={n: keras.optimizers.SGD(lr) for n in model.networks()})
        model.build_optimizers()
    return model


def make_batch(seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, (2, 16, 16)).astype(np.int32)
    labels[0, :6] = 255  # unequal valid counts per replica
    return {
        "sources": tuple(
            (rng.normal(size=(2, 16, 16, 3)).astype(np.float32), labels) for _ in range(2)
        ),
        "target": (rng.normal(size=(2, 16, 16, 3)).astype(np.float32), labels),
    }


def test_supervised_step_decreases_cross_entropy():
    model = make_trainer(fla=False, lr=0.5)
    batch = make_batch()
    first = float(model.train_step(batch)["segmentation"])
    for _ in range(5):
        model.train_step(batch)
    model.reset_metrics()
    assert float(model.train_step(batch)["segmentation"]) < first


@pytest.mark.parametrize("fla", [False, True])
def test_two_replica_step_equals_one_device_step(mirrored_strategy, fla):
    batch = make_batch()
    single = make_trainer(fla=fla)
    logs = single.train_step(batch)
    mirrored = make_trainer(mirrored_strategy, fla=fla)

    def split(ctx):
        k = ctx.replica_id_in_sync_group
        return tf.nest.map_structure(lambda x: x[k : k + 1], batch)

    dist = mirrored_strategy.experimental_distribute_values_from_function(split)
    mirrored_strategy.run(mirrored.train_step, args=(dist,))
    for a, b in zip(single.weights, mirrored.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, err_msg=a.path)
    assert set(logs) == (
        {"segmentation"}
        | (
            {"feature_discriminator", "feature_generator", "domain_accuracy", "gate_open"}
            if fla
            else set()
        )
    )


def test_closed_gate_gives_the_supervised_update():
    batch = make_batch()
    gated = make_trainer(gate_threshold=1.0)
    plain = make_trainer(fla=False)
    logs = gated.train_step(batch)
    plain.train_step(batch)
    assert float(logs["gate_open"]) == 0.0
    for a, b in zip(gated.segmenter.weights, plain.segmenter.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-7)
    opened = make_trainer(gate_threshold=0.0)
    opened.train_step(batch)
    diff = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(opened.segmenter.weights, plain.segmenter.weights)
    )
    assert diff > 1e-6  # the adversarial term moved F


def test_score_map_alignment_and_bad_layer():
    model = make_trainer(feature_layer=None)
    out = model(make_batch()["target"][0])
    assert tuple(out["features"].shape) == (2, 16, 16, 5)
    with pytest.raises(ValueError, match="no layer 'fc7'"):
        segmenter_with_features(build_small_segmenter(5, filters=4), "fc7")
