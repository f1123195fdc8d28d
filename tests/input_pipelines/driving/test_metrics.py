"""MeanIoU against hand-computed confusion matrices, and under two replicas."""

import numpy as np
import pytest
import tensorflow as tf

from input_pipelines import driving

Y_TRUE = np.array([[[0, 0, 1, 255], [2, 1, 1, 0]]], np.int32)
Y_PRED = np.array([[[0, 1, 1, 2], [2, 2, 1, 0]]], np.int32)
# Rows = truth, columns = prediction; the 255 pixel is ignored.
CONFUSION = np.array([[2, 1, 0], [0, 2, 1], [0, 0, 1]], np.float64)


def test_hand_computed_confusion_matrix():
    metric = driving.MeanIoU(num_classes=3)
    metric.update_state(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(metric.confusion_matrix(), CONFUSION)
    np.testing.assert_allclose(metric.per_class_iou(), [2 / 3, 2 / 4, 1 / 2])
    np.testing.assert_allclose(float(metric.result()), (2 / 3 + 0.5 + 0.5) / 3, rtol=1e-6)
    assert metric.pixel_accuracy() == pytest.approx(5 / 7)
    assert metric.mean_class_accuracy() == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert metric.frequency_weighted_iou() == pytest.approx((3 * 2 / 3 + 3 * 0.5 + 1 * 0.5) / 7)


def test_streaming_equals_one_batch_and_reset():
    metric = driving.MeanIoU(num_classes=3)
    metric.update_state(Y_TRUE[:, :1], Y_PRED[:, :1])
    metric.update_state(Y_TRUE[:, 1:], Y_PRED[:, 1:])
    np.testing.assert_array_equal(metric.confusion_matrix(), CONFUSION)
    metric.reset_state()
    assert metric.confusion_matrix().sum() == 0


def test_logits_input_and_upsampling():
    metric = driving.MeanIoU(num_classes=3)
    metric.update_state(Y_TRUE, tf.one_hot(Y_PRED, 3) * 5.0)
    np.testing.assert_array_equal(metric.confusion_matrix(), CONFUSION)
    # Half-resolution logits are bilinearly resized to the label size before argmax.
    coarse = np.array([[[0, 1], [2, 0]]], np.int32)
    labels = np.kron(coarse, np.ones((2, 2), np.int32))
    metric = driving.MeanIoU(num_classes=3)
    metric.update_state(labels, tf.one_hot(coarse, 3))
    np.testing.assert_array_equal(metric.confusion_matrix(), np.diag([8.0, 4.0, 4.0]))
    with pytest.raises(ValueError, match="y_pred has 4 channels but num_classes=3"):
        metric.update_state(labels, tf.zeros([1, 4, 4, 4]))


def test_nineteen_and_sixteen_class_means_and_table():
    metric = driving.MeanIoU()
    metric.update_state(np.array([[0, 0, 9, 13]]), np.array([[0, 9, 9, 13]]))
    iou = metric.per_class_iou()
    np.testing.assert_allclose(iou[[0, 9, 13]], [0.5, 0.5, 1.0])
    assert iou[1] == 0.0  # absent from truth and prediction: IoU 0, still averaged
    # Protocol: sums over the full class sets, divided by 19 and 16.
    assert float(metric.result()) == pytest.approx(2.0 / 19)
    assert metric.miou_16() == pytest.approx(1.5 / 16)  # terrain is not among the 16
    # Fixed set: 16-protocol classes with ground truth in the split = {road, car}.
    assert metric.gt_present_classes(driving.CLASSES_16) == (0, 13)
    assert metric.miou_16_gt_present() == pytest.approx(0.75)
    table = metric.table()
    assert " 13 car             100.00   x            1" in table
    assert "  1 sidewalk           n/a   x            0" in table
    assert "mIoU (19 classes): 10.53" in table and "mIoU (16 classes): 9.37" in table
    assert "mIoU (16-protocol classes in GT, n=2): 75.00" in table
    summary = metric.summary()
    assert summary["per_class_iou"]["sidewalk"] is None
    assert summary["miou_16"] == pytest.approx(9.375)  # percent, as every results file
    assert summary["miou_16_gt_present"] == pytest.approx(75.0)
    assert summary["per_class_iou"]["car"] == pytest.approx(100.0)
    assert summary["gt_present_classes"] == ["road", "car"]


def test_perfect_prediction_on_a_split_lacking_classes():
    # 11 of the 16 protocol classes and terrain appear; a perfect prediction is 11/16, not 1.
    present = [0, 1, 2, 5, 8, 9, 10, 11, 13, 15, 17, 18]
    labels = np.array([present * 3], np.int32)
    metric = driving.MeanIoU()
    metric.update_state(labels, labels)
    assert metric.miou_16() == pytest.approx(11 / 16)
    assert float(metric.result()) == pytest.approx(12 / 19)
    assert metric.miou_16_gt_present() == pytest.approx(1.0)
    assert metric.miou_over((0, 3)) == pytest.approx(0.5)  # wall is absent: counts 0
    assert metric.pixel_accuracy() == 1.0
    assert metric.mean_class_accuracy() == pytest.approx(12 / 19)
    assert metric.frequency_weighted_iou() == pytest.approx(1.0)


def test_mean_iou_from_a_hand_confusion_matrix_with_an_empty_class():
    # 4 classes; truth/prediction pairs give rows = truth, columns = prediction:
    # [[3, 1, 0, 0], [0, 0, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]] + class 3 only predicted once.
    y_true = np.array([[0, 0, 0, 0, 2, 2, 2, 2]], np.int32)
    y_pred = np.array([[0, 0, 0, 1, 0, 2, 2, 3]], np.int32)
    metric = driving.MeanIoU(num_classes=4)
    metric.update_state(y_true, y_pred)
    np.testing.assert_array_equal(
        metric.confusion_matrix(),
        [[3, 1, 0, 0], [0, 0, 0, 0], [1, 0, 2, 1], [0, 0, 0, 0]],
    )
    # IoU: 3/(4+4-3)=0.6, 0/(0+1-0)=0, 2/(4+2-2)=0.5, 0/(0+1-0)=0.
    np.testing.assert_allclose(metric.per_class_iou(), [0.6, 0.0, 0.5, 0.0], atol=1e-9)
    assert float(metric.result()) == pytest.approx(1.1 / 4)
    assert metric.present_classes() == (0, 1, 2, 3)
    assert metric.gt_present_classes() == (0, 2)
    assert metric.miou_over(metric.gt_present_classes()) == pytest.approx(0.55)
    assert metric.mean_class_accuracy() == pytest.approx((0.75 + 0.5) / 4)
    with pytest.raises(ValueError, match="non-empty class set"):
        metric.miou_over(())
    with pytest.raises(ValueError, match=r"distinct class ids in \[0, 4\)"):
        metric.miou_over((0, 4))
    with pytest.raises(ValueError, match="miou_16 needs num_classes=19"):
        metric.miou_16()


def test_sample_weight_and_bad_num_classes():
    metric = driving.MeanIoU(num_classes=3)
    weights = np.ones_like(Y_TRUE, np.float32)
    weights[0, 0, 1] = 0.0  # drop the (truth 0, prediction 1) pixel
    metric.update_state(Y_TRUE, Y_PRED, sample_weight=weights)
    assert metric.confusion_matrix()[0, 1] == 0
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        driving.MeanIoU(num_classes=1)


def test_two_replicas_equal_one_device(mirrored_strategy):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 19, (2, 2, 8, 8)).astype(np.int32)
    y_true[:, :, 0] = 255
    logits = rng.normal(size=(2, 2, 8, 8, 19)).astype(np.float32)

    single = driving.MeanIoU()
    single.update_state(y_true.reshape(4, 8, 8), logits.reshape(4, 8, 8, 19))

    with mirrored_strategy.scope():
        replicated = driving.MeanIoU()
    true_values = mirrored_strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(y_true[ctx.replica_id_in_sync_group])
    )
    logit_values = mirrored_strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(logits[ctx.replica_id_in_sync_group])
    )

    @tf.function
    def step(t, p):
        mirrored_strategy.run(replicated.update_state, args=(t, p))

    step(true_values, logit_values)
    np.testing.assert_array_equal(replicated.confusion_matrix(), single.confusion_matrix())
    assert float(replicated.result()) == pytest.approx(float(single.result()))
    assert single.confusion_matrix().sum() == 4 * 7 * 8
