"""Evaluation results and tables: protocol mIoU-16 and the fixed GT-class column."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tf_madan import evaluation

# Ground truth holds 10 of the 16 protocol classes plus terrain (9) and truck (14).
PRESENT = [0, 1, 2, 5, 8, 9, 10, 11, 13, 14, 15, 18]


def perfect_segmenter(images, training=False):
    """Reads the class id stored in channel 0 and returns its one-hot logits."""
    del training
    return tf.one_hot(tf.cast(images[..., 0], tf.int32), 19) * 4.0


def dataset(labels):
    images = np.repeat(labels[..., None], 3, -1).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)


def test_perfect_prediction_on_a_split_lacking_classes_is_not_100():
    labels = np.array(PRESENT * 2, np.int32).reshape(3, 2, 4)
    result = evaluation.evaluate_segmenter(perfect_segmenter, dataset(labels))
    assert result["num_images"] == 3
    assert result["miou_16"] == pytest.approx(100 * 10 / 16)
    assert result["miou_19"] == pytest.approx(100 * 12 / 19)
    assert result["miou_16_gt_present"] == pytest.approx(100.0)
    assert len(result["gt_present_classes"]) == 10 and "terrain" not in result["gt_present_classes"]
    assert result["pixel_accuracy"] == 100.0
    assert result["per_class_iou"]["wall"] is None and result["per_class_iou"]["truck"] == 100.0


def test_fixed_column_does_not_move_with_the_prediction():
    labels = np.array([[[0, 0, 13, 13]]], np.int32)
    # Predicting sidewalk (absent from the GT) on one road pixel: the GT set stays {road, car}.
    wrong = lambda images, training=False: perfect_segmenter(  # noqa: E731
        tf.where(tf.range(4)[None, None, :, None] == 0, 1.0, images), training
    )
    result = evaluation.evaluate_segmenter(wrong, dataset(labels))
    assert result["gt_present_classes"] == ["road", "car"]
    # road 1/2, car 1, sidewalk 0: protocol (1.5)/16; fixed set (0.5 + 1)/2.
    assert result["miou_16"] == pytest.approx(100 * 1.5 / 16)
    assert result["miou_16_gt_present"] == pytest.approx(75.0)
    assert result["per_class_iou"]["sidewalk"] == 0.0


def test_write_results_names_both_columns(tmp_path):
    labels = np.array(PRESENT * 2, np.int32).reshape(3, 2, 4)
    result = evaluation.evaluate_segmenter(perfect_segmenter, dataset(labels))
    json_path, md_path = evaluation.write_results({"oracle": result}, str(tmp_path))
    table = open(md_path).read()
    assert "| method | mIoU-16 | mIoU-16, GT classes (n=10) | mIoU-19 | pixel acc. |" in table
    assert "| oracle | 62.5 | 100.0 | 63.2 | 100.0 |" in table
    stored = json.load(open(json_path))
    assert stored["oracle"]["miou_16_gt_present"] == pytest.approx(100.0)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
