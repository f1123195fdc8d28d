"""Tests for the segmenter trainer (supervised and feature-level alignment)."""

import os
import subprocess
import sys

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
            {
                "feature_discriminator",
                "feature_generator",
                "domain_accuracy",
                "gate_open",
                "no_suitable_discriminator",
            }
            if fla
            else set()
        )
    )


class ScriptedDiscriminator(keras.Model):
    """A small trainable 1x1 conv plus a scripted, non-trainable logit offset.

    With |conv| << |offset| the argmax (hence the domain accuracy) follows the script:
    offset (0, 1) calls every location "source", (1, 0) "target". The softmax is far from
    saturated, so the adversarial gradient into F is not zero.
    """

    def __init__(self, channels):
        super().__init__()
        self.conv = keras.layers.Conv2D(
            2, 1, kernel_initializer=keras.initializers.RandomNormal(0.0, 1e-3, seed=1)
        )
        self.conv.build((None, None, None, channels))
        self.offset = self.add_weight(shape=(2,), initializer="zeros", trainable=False)
        self.built = True

    def call(self, features, training=False):
        return self.conv(features) + self.offset


def scripted_trainer(*, threshold, window, patience, lr=0.05):
    keras.utils.set_random_seed(0)
    seg = build_small_segmenter(5, filters=4, norm="none")
    disc = ScriptedDiscriminator(16)
    model = SegmenterTrainer(
        segmenter=seg,
        feature_discriminator=disc,
        feature_layer="features",
        lambda_feature=0.5,
        gate_threshold=threshold,
        gate_window=window,
        patience=patience,
    )
    model.compile(
        optimizers={
            "segmenter": keras.optimizers.SGD(lr),
            "feature_discriminator": keras.optimizers.SGD(lr),
        }
    )
    model.build_optimizers()
    return model


def values(variables):
    return [np.array(v) for v in variables]


# Per step: "S" = D calls everything source (accuracy 4/6: 2 sources x 2 images vs 2 target
# images), "T" = everything target (accuracy 2/6).
SCRIPT = "STTSSSTT"
# Running mean over the FILLED entries of a 3-step window, threshold 0.55:
# S: 2/3 | ST: 1/2 | STT: 4/9 | TTS: 4/9 | TSS: 5/9 | SSS: 2/3 | SST: 5/9 | STT: 4/9.
# (A zero-initialised window would read 2/9 at step 1 and keep the gate closed.)
EXPECTED_GATE = [1, 0, 0, 0, 1, 1, 1, 0]
EXPECTED_IDLE = [0, 1, 2, 3, 0, 0, 0, 1]


def test_gate_follows_the_scripted_accuracy_and_closed_means_no_update():
    model = scripted_trainer(threshold=0.55, window=3, patience=3)
    batch = make_batch()
    seg_opt = model.get_optimizer("segmenter")
    disc_opt = model.get_optimizer("feature_discriminator")
    for step, (mode, gate, idle) in enumerate(zip(SCRIPT, EXPECTED_GATE, EXPECTED_IDLE)):
        model.feature_discriminator.offset.assign([0.0, 1.0] if mode == "S" else [1.0, 0.0])
        f_before = values(model.segmenter.variables)
        d_before = values(model.feature_discriminator.trainable_variables)
        iterations = int(seg_opt.iterations.numpy())
        model.reset_metrics()  # the logged accuracy is a running mean of the trackers
        logs = model.train_step(batch)
        expected_accuracy = 4 / 6 if mode == "S" else 2 / 6
        assert float(logs["domain_accuracy"]) == pytest.approx(expected_accuracy, abs=1e-6)
        assert float(logs["gate_open"]) == gate, f"step {step}"
        assert int(model.steps_without_update.numpy()) == idle
        assert float(logs["no_suitable_discriminator"]) == float(idle >= 3)
        assert model.no_suitable_discriminator() == (idle >= 3)
        # The discriminator is updated on every step.
        assert int(disc_opt.iterations.numpy()) == step + 1
        assert any(
            not np.array_equal(a, b)
            for a, b in zip(d_before, values(model.feature_discriminator.trainable_variables))
        )
        f_after = values(model.segmenter.variables)
        if gate:
            # Two optimizer updates: the adversarial step, then the supervised step.
            assert int(seg_opt.iterations.numpy()) == iterations + 2
            assert any(not np.array_equal(a, b) for a, b in zip(f_before, f_after))
        else:
            assert int(seg_opt.iterations.numpy()) == iterations
            for a, b in zip(f_before, f_after):
                np.testing.assert_array_equal(a, b)


def test_open_gate_is_an_adversarial_step_then_a_supervised_step():
    """The F update equals w2 = w1 - lr * grad CE(w1), w1 = w0 - lr * lambda_g * grad adv(w0)."""
    lr, lambda_g = 0.05, 0.5
    model = scripted_trainer(threshold=0.0, window=3, patience=0, lr=lr)
    batch = make_batch()
    seg = model.segmenter
    w0 = values(seg.trainable_variables)
    model.train_step(batch)
    w_after = values(seg.trainable_variables)

    # Reference on a copy, with the discriminator as updated by this step's D step.
    reference = build_small_segmenter(5, filters=4, norm="none", name="reference")
    for v, w in zip(reference.trainable_variables, w0):
        v.assign(w)
    probe = segmenter_with_features(reference, "features")
    target = tf.constant(batch["target"][0])
    with tf.GradientTape() as tape:
        _, features = probe(target, training=True)
        d_logits = model.feature_discriminator(features, training=True)
        adversarial = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.ones(tf.shape(d_logits)[:-1], tf.int32), logits=d_logits
            )
        )
    for v, g in zip(
        reference.trainable_variables, tape.gradient(adversarial, reference.trainable_variables)
    ):
        if g is not None:  # the score head is not on the path to the features
            v.assign_sub(lr * lambda_g * g)
    images = tf.concat([s[0] for s in batch["sources"]], 0)
    labels = tf.concat([s[1] for s in batch["sources"]], 0)
    with tf.GradientTape() as tape:
        logits = reference(images, training=True)
        valid = labels != 255
        ce = tf.reduce_mean(
            tf.boolean_mask(
                tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=tf.where(valid, labels, 0), logits=logits
                ),
                valid,
            )
        )
    for v, g in zip(
        reference.trainable_variables, tape.gradient(ce, reference.trainable_variables)
    ):
        v.assign_sub(lr * g)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(w_after, w0))
    assert moved > 1e-4
    for a, b in zip(w_after, values(reference.trainable_variables)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_two_replicas_keep_the_gate_decision_identical(mirrored_strategy):
    batch = make_batch()
    single = scripted_trainer(threshold=0.55, window=3, patience=3)
    with mirrored_strategy.scope():
        mirrored = scripted_trainer(threshold=0.55, window=3, patience=3)

    def split(ctx):
        k = ctx.replica_id_in_sync_group
        return tf.nest.map_structure(lambda x: x[k : k + 1], batch)

    dist = mirrored_strategy.experimental_distribute_values_from_function(split)
    for mode in SCRIPT[:3]:
        offset = [0.0, 1.0] if mode == "S" else [1.0, 0.0]
        single.feature_discriminator.offset.assign(offset)
        mirrored.feature_discriminator.offset.assign(offset)
        single.reset_metrics()
        mirrored.reset_metrics()
        want = single.train_step(batch)
        got = mirrored_strategy.run(mirrored.train_step, args=(dist,))
        for key in ("gate_open", "domain_accuracy", "no_suitable_discriminator"):
            local = [float(x) for x in mirrored_strategy.experimental_local_results(got[key])]
            assert local == pytest.approx([float(want[key])] * 2, abs=1e-6), key
    for a, b in zip(single.weights, mirrored.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, err_msg=a.path)


def test_bad_patience():
    with pytest.raises(ValueError, match="patience must be >= 0"):
        SegmenterTrainer(segmenter=build_small_segmenter(5, filters=4), patience=-1)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        SegmenterTrainer(segmenter=build_small_segmenter(5, filters=4), weight_decay=-1.0)


def test_l2_weight_decay_is_added_to_the_gradient():
    # torch.optim.SGD(weight_decay=wd) (the official FLA step): w1 = w0 - lr (g + wd w0), so
    # against the same step without decay the weights differ by exactly -lr wd w0.
    lr, wd = 0.1, 0.25

    def trainer(weight_decay):
        keras.utils.set_random_seed(0)
        model = SegmenterTrainer(
            segmenter=build_small_segmenter(5, filters=4, norm="none"), weight_decay=weight_decay
        )
        model.compile(optimizers={"segmenter": keras.optimizers.SGD(lr, momentum=0.9)})
        model.build_optimizers()
        return model

    plain, decayed = trainer(0.0), trainer(wd)
    w0 = [np.array(w) for w in plain.segmenter.trainable_weights]
    plain.train_step(make_batch())
    decayed.train_step(make_batch())
    for a, b, w in zip(decayed.segmenter.trainable_weights, plain.segmenter.trainable_weights, w0):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b) - lr * wd * w, atol=1e-6)


def test_score_map_alignment_and_bad_layer():
    model = make_trainer(feature_layer=None)
    out = model(make_batch()["target"][0])
    assert tuple(out["features"].shape) == (2, 16, 16, 5)
    with pytest.raises(ValueError, match="no layer 'fc7'"):
        segmenter_with_features(build_small_segmenter(5, filters=4), "fc7")


def test_saved_segmenter_loads_in_a_fresh_process_after_import_tf_madan(tmp_path):
    seg = build_small_segmenter(5, filters=2, norm="none", input_shape=(8, 8, 3))
    path = str(tmp_path / "segmenter.keras")
    seg.save(path)
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.asarray(seg(x)))
    script = (
        "import sys, numpy as np, keras, tf_madan\n"
        "d = sys.argv[1]\n"
        "model = keras.models.load_model(d + '/segmenter.keras')\n"
        "y = np.asarray(model(np.load(d + '/x.npy')))\n"
        "np.testing.assert_allclose(y, np.load(d + '/y.npy'), atol=1e-6)\n"
        "print('loaded', type(model.get_layer('upsample')).__name__)\n"
    )
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded BilinearUpsample" in result.stdout


def test_fla_gate_state_resumes_exactly(tmp_path):
    # The window, its fill count and the idle counter are checkpointed with the model.
    def checkpoint(model):
        optimizers = {n: model.get_optimizer(n) for n in model.networks()}
        return tf.train.Checkpoint(model=model, **optimizers)

    def run(model, modes):
        for mode in modes:
            model.feature_discriminator.offset.assign([0.0, 1.0] if mode == "S" else [1.0, 0.0])
            model.train_step(make_batch())

    reference = scripted_trainer(threshold=0.55, window=3, patience=3)
    run(reference, SCRIPT[:6])
    first = scripted_trainer(threshold=0.55, window=3, patience=3)
    run(first, SCRIPT[:3])
    path = checkpoint(first).save(str(tmp_path / "ckpt"))
    resumed = scripted_trainer(threshold=0.55, window=3, patience=3)
    checkpoint(resumed).restore(path).assert_existing_objects_matched()
    assert int(resumed.accuracy_count.numpy()) == 3
    assert int(resumed.steps_without_update.numpy()) == 2
    run(resumed, SCRIPT[3:6])
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
