"""Hand-computed values for tf_madan.losses."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_madan import losses


def t(x):
    return tf.constant(np.asarray(x, np.float64))


@pytest.mark.parametrize(
    "gan_mode,expected",
    [
        ("lsgan", (0.25 + 4.0) / 2),
        ("bce", (math.log1p(math.exp(-0.5)) + math.log1p(math.exp(-3))) / 2),
    ],
)
def test_gan_generator_loss(gan_mode, expected):
    value = losses.gan_generator_loss(fake_logits=t([[0.5], [3.0]]), gan_mode=gan_mode)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "gan_mode,expected",
    [
        ("lsgan", 0.5 * (0.5 + 0.25)),
        ("bce", 0.5 * (0.5 * (math.log1p(math.exp(-1)) + math.log(2)) + math.log1p(math.exp(0.5)))),
    ],
)
def test_gan_discriminator_loss(gan_mode, expected):
    value = losses.gan_discriminator_loss(
        real_logits=t([1.0, 0.0]), fake_logits=t([0.5]), gan_mode=gan_mode
    )
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-12)


def test_gan_mode_error():
    with pytest.raises(ValueError, match="gan_mode"):
        losses.gan_generator_loss(fake_logits=t([0.0]), gan_mode="wgan")


def test_cycle_and_identity():
    np.testing.assert_allclose(
        losses.cycle_consistency_loss(real=t([0.0, 1.0]), cycled=t([0.5, -1.0])), 1.25
    )
    np.testing.assert_allclose(losses.identity_loss(real=t([0.0, 1.0]), same=t([0.0, 0.0])), 0.5)


P_LOGITS = [[[[0.0, 0.0]]]]  # p = (0.5, 0.5)
Q_LOGITS = [[[[math.log(0.8), math.log(0.2)]]]]  # q = (0.8, 0.2)


@pytest.mark.parametrize(
    "direction,expected",
    [
        ("paper", 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)),  # KL(p || q) = 0.22314
        ("code", 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)),  # KL(q || p) = 0.19274
    ],
)
def test_dynamic_semantic_consistency(direction, expected):
    value = losses.dynamic_semantic_consistency_loss(
        adapted_logits=t(P_LOGITS), source_logits=t(Q_LOGITS), direction=direction
    )
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-12)
    assert abs(expected - 0.22314355) < 1e-6 or abs(expected - 0.19274) < 1e-4


def test_dsc_direction_error_and_zero_for_equal():
    with pytest.raises(ValueError, match="direction"):
        losses.dynamic_semantic_consistency_loss(
            adapted_logits=t(P_LOGITS), source_logits=t(P_LOGITS), direction="x"
        )
    zero = losses.dynamic_semantic_consistency_loss(
        adapted_logits=t(Q_LOGITS), source_logits=t(Q_LOGITS)
    )
    assert float(zero) == 0.0


def test_semantic_consistency_cycada():
    value = losses.semantic_consistency_loss(
        adapted_logits=t([[[[0.0, math.log(3.0)]]]]), source_logits=t([[[[0.0, 5.0]]]])
    )
    np.testing.assert_allclose(value.numpy(), -math.log(0.75), rtol=1e-12)


def test_sub_domain_aggregation():
    d = losses.sub_domain_aggregation_discriminator_loss(
        own_logits=t([1.0]), other_logits=[t([0.5]), t([1.0])]
    )
    np.testing.assert_allclose(d.numpy(), (0.5 * 0.25 + 0.5 * 1.0) / 2)  # 0.3125
    g = losses.sub_domain_aggregation_generator_loss(other_logits=[t([0.5]), t([1.0])])
    np.testing.assert_allclose(g.numpy(), 0.125)
    with pytest.raises(ValueError, match="two sources"):
        losses.sub_domain_aggregation_generator_loss(other_logits=[])


def test_cross_domain_cycle():
    d = losses.cross_domain_cycle_discriminator_loss(real_logits=t([0.0]), cross_logits=[t([2.0])])
    np.testing.assert_allclose(d.numpy(), 0.5 * (1.0 + 4.0))
    g = losses.cross_domain_cycle_generator_loss(cross_logits=[t([2.0]), t([0.0])])
    np.testing.assert_allclose(g.numpy(), (1.0 + 1.0) / 2)
    with pytest.raises(ValueError, match="two sources"):
        losses.cross_domain_cycle_discriminator_loss(real_logits=t([0.0]), cross_logits=[])


def test_segmentation_cross_entropy_ignores_255():
    logits = t([[[[0.0, 0.0], [9.0, -9.0], [0.0, math.log(3.0)]]]])
    labels = tf.constant([[[0, 255, 1]]])
    expected = (math.log(2.0) - math.log(0.75)) / 2  # 0.49041
    value = losses.segmentation_cross_entropy(labels=labels, logits=logits)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-12)
    value = losses.segmentation_cross_entropy(labels=labels, logits=logits, normalizer=4.0)
    np.testing.assert_allclose(value.numpy(), expected * 2 / 4, rtol=1e-12)
    empty = losses.segmentation_cross_entropy(
        labels=tf.constant([[[255, 255, 255]]]), logits=logits
    )
    assert float(empty) == 0.0


def test_feature_adversarial():
    src = t([[[[0.0, 1.0]]]])
    tgt = t([[[[0.0, math.log(3.0)]]]])
    d = losses.feature_discriminator_loss(source_logits=src, target_logits=tgt)
    # One mean over the two concatenated locations.
    np.testing.assert_allclose(
        d.numpy(), 0.5 * (math.log1p(math.exp(-1.0)) + math.log(4.0)), rtol=1e-12
    )
    g = losses.feature_generator_loss(target_logits=tgt)
    np.testing.assert_allclose(g.numpy(), -math.log(0.75), rtol=1e-12)
    acc = losses.domain_accuracy(source_logits=src, target_logits=tgt)
    assert float(acc) == 0.5


def test_feature_losses_take_one_mean_over_the_concatenated_batch():
    # Two sources per target image: 3 source locations, 1 target location (official ADDA:
    # NLL mean over cat(source, target), not mean(source) + mean(target)).
    src = t([[[[0.0, 1.0]]], [[[0.0, 1.0]]], [[[1.0, 0.0]]]])  # [3, 1, 1, 2]
    tgt = t([[[[0.0, math.log(3.0)]]]])  # [1, 1, 1, 2]
    ce_right, ce_wrong = math.log1p(math.exp(-1.0)), math.log1p(math.exp(1.0))
    d = losses.feature_discriminator_loss(source_logits=src, target_logits=tgt)
    np.testing.assert_allclose(d.numpy(), (2 * ce_right + ce_wrong + math.log(4.0)) / 4, rtol=1e-12)
    # Correct: 2 of the 3 source locations, the target location is called "source".
    assert float(losses.domain_accuracy(source_logits=src, target_logits=tgt)) == 0.5
    src_right = t([[[[0.0, 1.0]]], [[[0.0, 1.0]]], [[[0.0, 1.0]]]])
    assert float(losses.domain_accuracy(source_logits=src_right, target_logits=tgt)) == 0.75
    # An explicit normalizer (the global location count under replicas) divides the sum.
    d8 = losses.feature_discriminator_loss(source_logits=src, target_logits=tgt, normalizer=8.0)
    np.testing.assert_allclose(
        d8.numpy(), (2 * ce_right + ce_wrong + math.log(4.0)) / 8, rtol=1e-12
    )
    g2 = losses.feature_generator_loss(target_logits=tgt, normalizer=2.0)
    np.testing.assert_allclose(g2.numpy(), -math.log(0.75) / 2, rtol=1e-12)
