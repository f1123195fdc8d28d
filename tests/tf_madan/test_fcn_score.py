"""FCN-score: an oracle segmenter scores translated source images against source labels."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from input_pipelines import driving, synthetic_driving
from input_pipelines.driving import labels as labels_lib
from tf_madan import fcn_score
from tf_madan.configs import smoke
from tf_madan.normalization import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(scope="module")
def palette_config(tmp_path_factory):
    """Tiny benchmark whose GTA5 images are the Cityscapes palette colours of their labels."""
    root = tmp_path_factory.mktemp("fcn")
    synthetic_driving.generate(
        str(root / "data"), seed=0, num_per_domain=4, num_val=2, height=16, width=24
    )
    table = labels_lib.lookup_table("gta5")
    present = set()
    for label_path in sorted(glob.glob(str(root / "data" / "gta5" / "labels" / "*.png"))):
        train_ids = table[np.asarray(Image.open(label_path))]
        present |= set(np.unique(train_ids).tolist()) - {255}
        image_path = label_path.replace(os.sep + "labels" + os.sep, os.sep + "images" + os.sep)
        Image.fromarray(driving.colorize(train_ids)).save(image_path)
    config = smoke.get_config()
    config.data.root = str(root / "data")
    config.data.translate_resize_shorter = 0
    return config, sorted(present)


def perfect_oracle():
    """Nearest palette colour as one 1x1 conv on segmenter-normalised input (exact)."""
    palette = driving.CITYSCAPES_PALETTE.astype(np.float64) / 255.0  # [19, 3]
    std, mean = np.asarray(IMAGENET_STD), np.asarray(IMAGENET_MEAN)
    # -|rgb - p|^2 + |rgb|^2 = 2 rgb.p - |p|^2 with rgb = x * std + mean: linear in x.
    kernel = (2.0 * palette * std).T[None, None]  # [1, 1, 3, 19]
    bias = 2.0 * palette @ mean - (palette**2).sum(1)
    conv = keras.layers.Conv2D(19, 1, name="palette")
    model = keras.Sequential([keras.Input((None, None, 3)), conv], name="oracle")
    conv.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model


def generator(fn, name):
    return keras.Sequential([keras.Input((None, None, 3)), keras.layers.Lambda(fn)], name=name)


def test_perfect_oracle_on_raw_target_like_images_scores_100_on_present_classes(palette_config):
    config, present = palette_config
    result = fcn_score.fcn_score(config, perfect_oracle(), "gta5")
    assert result["num_images"] == 4 and result["generator"] is None
    assert result["pixel_accuracy"] == 100.0
    for index in present:
        assert result["per_class_iou"][driving.TRAIN_ID_NAMES[index]] == 100.0
    present_16 = [c for c in present if c in driving.CLASSES_16]
    assert result["miou_16"] == pytest.approx(100.0 * len(present_16) / 16)
    assert result["miou_16_gt_present"] == pytest.approx(100.0)
    assert len(present_16) < 16  # the tiny split lacks classes: mIoU-16 is not 100


def test_identity_generator_scores_as_raw_and_a_constant_one_lower(palette_config):
    config, _ = palette_config
    oracle = perfect_oracle()
    raw = fcn_score.fcn_score(config, oracle, "gta5")
    same = fcn_score.fcn_score(config, oracle, "gta5", generator(lambda x: x, "identity"))
    assert same["generator"] == "identity"
    for key in ("miou_16", "miou_19", "miou_16_gt_present", "pixel_accuracy", "per_class_iou"):
        assert same[key] == raw[key], key
    grey = fcn_score.fcn_score(config, oracle, "gta5", generator(tf.zeros_like, "constant"))
    assert grey["miou_16"] < raw["miou_16"] - 10
    assert grey["miou_16_gt_present"] < 50.0


def test_max_images_and_errors(palette_config):
    config, _ = palette_config
    oracle = perfect_oracle()
    assert fcn_score.fcn_score(config, oracle, "gta5", max_images=3)["num_images"] == 3
    with pytest.raises(ValueError, match="max_images must be >= 1"):
        fcn_score.fcn_score(config, oracle, "gta5", max_images=0)
    crop = generator(lambda x: x[:, :, :-4], "cropper")
    with pytest.raises(ValueError, match=r"returned images of size \(16, 20\).*\(16, 24\)"):
        fcn_score.fcn_score(config, oracle, "gta5", crop)


def test_adapted_to_segmenter_matches_the_png_round_trip():
    # [-1, 1] -> uint8 (as write_adapted_images stores it) -> ImageNet normalisation.
    images = tf.constant([[[[-1.0, 0.0, 1.0]]]])  # uint8 0, 128, 255 (0 -> 127.5 rounds to 128)
    expected = (np.array([0.0, 128.0, 255.0]) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(fcn_score.adapted_to_segmenter(images)[0, 0, 0], expected, rtol=1e-6)


def test_labelled_target_fn_yields_target_images_with_labels(palette_config):
    config, _ = palette_config
    batch = next(iter(fcn_score.labelled_target_fn(config, 2, 8)()))
    ((image, label),) = batch["sources"]
    assert image.shape == (2, 8, 8, 3) and label.shape == (2, 8, 8)
    assert set(np.unique(label.numpy())) - {255} <= set(range(19))
    assert np.any(label.numpy() != 255)
