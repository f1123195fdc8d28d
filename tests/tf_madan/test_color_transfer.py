"""Colour-transfer baseline: L*a*b* conversion, Reinhard matching, adapted folder format."""

import glob
import json
import os

import numpy as np
import pytest
from PIL import Image

from input_pipelines import synthetic_driving
from tf_madan import color_transfer, data
from tf_madan.configs import smoke


def test_lab_of_reference_colours():
    # CIE L*a*b* (D65) of sRGB white, black, red, mid grey (standard reference values).
    lab = color_transfer.rgb_to_lab([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(lab[2], [53.2408, 80.0925, 67.2032], atol=2e-3)
    grey = color_transfer.rgb_to_lab([119 / 255, 119 / 255, 119 / 255])
    np.testing.assert_allclose(grey, [50.0, 0.0, 0.0], atol=0.1)
    rgb = np.random.default_rng(0).uniform(size=(20, 3))
    np.testing.assert_allclose(
        color_transfer.lab_to_rgb(color_transfer.rgb_to_lab(rgb)), rgb, atol=1e-9
    )


def test_matching_gives_the_target_mean_and_std_by_hand():
    # Channel 0: [1, 3] (mean 2, std 1) -> mean 10, std 4: [6, 14].
    # Channel 1: [0, 4] (mean 2, std 2) -> mean -1, std 1: [-2, 0].
    # Channel 2: [5, 5] (flat) -> the target mean 7 on both pixels.
    lab = np.array([[[1.0, 0.0, 5.0], [3.0, 4.0, 5.0]]])
    out = color_transfer.match_statistics(lab, [10.0, -1.0, 7.0], [4.0, 1.0, 2.0])
    np.testing.assert_allclose(out, [[[6.0, -2.0, 7.0], [14.0, 0.0, 7.0]]])


def test_transferred_image_has_the_target_statistics():
    rng = np.random.default_rng(1)
    source = rng.integers(40, 120, (16, 16, 3)).astype(np.uint8)  # dark, low contrast
    target = rng.integers(90, 200, (16, 16, 3)).astype(np.uint8)
    mean, std = color_transfer.image_statistics(color_transfer.rgb_to_lab(target / 255.0))
    stats = color_transfer.TargetStatistics(mean, std, 1)
    out = color_transfer.transfer_image(source, stats)
    got_mean, got_std = color_transfer.image_statistics(color_transfer.rgb_to_lab(out / 255.0))
    # In gamut: only the uint8 rounding separates the result from the exact statistics.
    np.testing.assert_allclose(got_mean, mean, atol=0.3)
    np.testing.assert_allclose(got_std, std, atol=0.3)
    before_mean, _ = color_transfer.image_statistics(color_transfer.rgb_to_lab(source / 255.0))
    assert abs(before_mean[0] - mean[0]) > 10  # the transfer did move the lightness


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("colour")
    synthetic_driving.generate(
        str(root / "data"), seed=0, num_per_domain=4, num_val=2, height=16, width=24
    )
    config = smoke.get_config()
    config.data.root = str(root / "data")
    config.data.translate_resize_shorter = 0
    return config, root


def test_target_statistics_average_the_train_pool(tiny_config):
    config, root = tiny_config
    stats = color_transfer.target_statistics(config)
    # Independent of the pipeline: the 4 train PNGs on disk (the 2 val images never count).
    pattern = str(root / "data" / "cityscapes" / "leftImg8bit" / "train" / "*" / "*.png")
    files = sorted(glob.glob(pattern))
    assert len(files) == 4 and stats.num_images == 4
    per_image = [
        color_transfer.image_statistics(
            color_transfer.rgb_to_lab(np.asarray(Image.open(f).convert("RGB")) / 255.0)
        )
        for f in files
    ]
    np.testing.assert_allclose(stats.mean, np.mean([m for m, _ in per_image], 0), atol=1e-9)
    np.testing.assert_allclose(stats.std, np.mean([s for _, s in per_image], 0), atol=1e-9)
    assert color_transfer.target_statistics(config, max_images=2).num_images == 2
    with pytest.raises(FileNotFoundError, match="not found"):
        color_transfer.target_statistics(_moved(config))


def _moved(config):
    moved = smoke.get_config()
    moved.data.root = config.data.root + "_missing"
    return moved


def test_written_folder_is_the_adapted_format(tiny_config):
    config, root = tiny_config
    source = config.data.sources[0]
    stats = color_transfer.target_statistics(config)
    out = str(root / "adapted_color" / source)
    count = color_transfer.write_color_transferred_images(config, source, out, stats)
    assert count == 4
    marker = json.load(open(os.path.join(out, data.COMPLETE)))
    assert marker["count"] == 4
    assert sorted(os.listdir(os.path.join(out, "images"))) == [f"{i:06d}.png" for i in range(4)]
    # Labels are the source labels, in order; images keep the source size.
    raw = list(data.source_dataset(config, source, batch_size=4))[0]
    labels = np.stack(
        [np.asarray(Image.open(os.path.join(out, "labels", f"{i:06d}.png"))) for i in range(4)]
    )
    np.testing.assert_array_equal(labels, raw[1].numpy())
    image = np.asarray(Image.open(os.path.join(out, "images", "000000.png")))
    assert image.shape == (*raw[0].shape[1:3], 3) and image.dtype == np.uint8
    # Readable by the adapted readers the schedule trains and scores with.
    images, eval_labels = next(iter(data.adapted_eval_dataset([out], batch_size=4)))
    assert images.shape == (4, *raw[0].shape[1:3], 3)
    np.testing.assert_array_equal(eval_labels.numpy(), raw[1].numpy())
    train = data.adapted_dataset(out, batch_size=2, crop_size=8, seed=0)
    batch_images, batch_labels = next(iter(train))
    assert batch_images.shape == (2, 8, 8, 3) and batch_labels.shape == (2, 8, 8)
    # A finished folder is reused as is.
    stamp = os.path.getmtime(os.path.join(out, "images", "000000.png"))
    assert color_transfer.write_color_transferred_images(config, source, out, stats) == 4
    assert os.path.getmtime(os.path.join(out, "images", "000000.png")) == stamp
