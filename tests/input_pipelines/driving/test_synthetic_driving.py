"""Tests of the synthetic multi-domain generator and its file formats."""

import hashlib
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from input_pipelines import synthetic_driving
from input_pipelines.driving import labels, readers, synthetic_scenes


def _digest(root):
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path(root).rglob("*.png")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_file_counts_and_layout(synthetic_root):
    assert len(list((synthetic_root / "gta5" / "images").glob("*.png"))) == 6
    assert (synthetic_root / "gta5" / "labels" / "00001.png").is_file()
    assert (synthetic_root / "gta5" / "split.mat").is_file()
    assert (synthetic_root / "synthia" / "RGB" / "0000000.png").is_file()
    assert (synthetic_root / "synthia" / "GT" / "LABELS" / "0000005.png").is_file()
    val = synthetic_root / "cityscapes" / "gtFine" / "val" / "synthvale"
    assert len(list(val.glob("*_gtFine_labelIds.png"))) == 3
    manifest = json.loads((synthetic_root / "synthetic_driving.json").read_text())
    assert manifest["num_per_domain"] == 6 and manifest["height"] == 64


def test_gta5_labels_are_palette_pngs_of_cityscapes_ids(synthetic_root):
    with Image.open(synthetic_root / "gta5" / "labels" / "00001.png") as image:
        assert image.mode == "P"
        assert image.size == (128, 64)
        ids = np.asarray(image)
        palette = np.asarray(image.getpalette()[:768], np.uint8).reshape(256, 3)
    assert set(np.unique(ids)) <= set(labels.CITYSCAPES_VALID_IDS)
    assert 7 in ids  # road
    np.testing.assert_array_equal(palette[7], labels.CITYSCAPES_PALETTE[0])


def test_synthia_labels_are_16bit_three_channel(synthetic_root):
    path = synthetic_root / "synthia" / "GT" / "LABELS" / "0000000.png"
    raw = path.read_bytes()
    assert raw[24] == 16 and raw[25] == 2  # bit depth, colour type RGB
    ids = readers.read_raw_label(str(path), "png16_first_channel")
    assert ids.shape == (64, 128)
    assert set(np.unique(ids)) <= set(labels.SYNTHIA_VALID_IDS)
    assert {3, 1} <= set(np.unique(ids))  # road, sky


def test_cityscapes_train_ids_file_matches_label_ids(synthetic_root):
    label_dir = synthetic_root / "cityscapes" / "gtFine" / "train" / "synthtown"
    label_ids = np.asarray(Image.open(label_dir / "synthtown_000000_000019_gtFine_labelIds.png"))
    train_ids = np.asarray(
        Image.open(label_dir / "synthtown_000000_000019_gtFine_labelTrainIds.png")
    )
    np.testing.assert_array_equal(labels.map_to_train_ids(label_ids, "cityscapes"), train_ids)
    assert 1 in label_ids  # ego vehicle, ignored
    assert (train_ids[label_ids == 1] == 255).all()


def test_generation_is_deterministic(tmp_path):
    kwargs = dict(seed=3, num_per_domain=2, num_val=1, height=32, width=64)
    synthetic_driving.generate(str(tmp_path / "a"), **kwargs)
    synthetic_driving.generate(str(tmp_path / "b"), **kwargs)
    synthetic_driving.generate(str(tmp_path / "c"), **{**kwargs, "seed": 4})
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_scenes_cover_required_classes():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        seen |= set(np.unique(synthetic_scenes.sample_layout(rng, 64, 128, "gta5")["train_ids"]))
    required = {"road", "sidewalk", "building", "sky", "vegetation", "car", "person"}
    assert {labels.TRAIN_ID_NAMES.index(n) for n in required} <= seen


@pytest.mark.parametrize("style", synthetic_scenes.STYLES)
def test_render_shape_and_styles_differ(style):
    rng = np.random.default_rng(1)
    layout = synthetic_scenes.sample_layout(rng, 48, 96, style)
    image = synthetic_scenes.render(layout, style, np.random.default_rng(2))
    assert image.shape == (48, 96, 3) and image.dtype == np.uint8
    other = "cityscapes" if style != "cityscapes" else "gta5"
    other_image = synthetic_scenes.render(layout, other, np.random.default_rng(2))
    sky = layout["train_ids"] == labels.TRAIN_ID_NAMES.index("sky")
    # Same layout, different domain: sky colour differs by > 30 grey levels on average.
    assert np.abs(image[sky].mean(0) - other_image[sky].mean(0)).max() > 30


def test_png16_writer_roundtrip(tmp_path):
    array = np.random.default_rng(0).integers(0, 65535, (5, 7, 3)).astype(np.uint16)
    synthetic_driving.write_png16(str(tmp_path / "x.png"), array)
    decoded = readers.read_raw_label(str(tmp_path / "x.png"), "png16_first_channel")
    np.testing.assert_array_equal(decoded, array[..., 0])


def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_per_domain"):
        synthetic_driving.generate(str(tmp_path), num_per_domain=0)
    with pytest.raises(ValueError, match="unknown domains"):
        synthetic_driving.generate(str(tmp_path), domains=("kitti",))


def test_instances_mark_exactly_the_visible_object_pixels():
    rng = np.random.default_rng(5)
    for _ in range(5):
        layout = synthetic_scenes.sample_layout(rng, 64, 128, "cityscapes")
        things = np.isin(
            layout["train_ids"],
            (synthetic_scenes.CAR, synthetic_scenes.BUS, synthetic_scenes.PERSON),
        )
        np.testing.assert_array_equal(layout["instances"] > 0, things & ~layout["static"])
        for instance_id, obj in enumerate(layout["objects"], start=1):
            visible = layout["instances"] == instance_id
            assert (layout["train_ids"][visible] == obj["class"]).all()
            assert not (visible & ~obj["mask"]).any()


# sha256 of the decoded pixels of generate(seed=0, num_per_domain=4, num_val=2, 32x64)
# as written by the generator at commit 710d28b (before `benchmark` existed).
EXPECTED_V1_DIGEST = "7733b4095894162708e19049d1c0c309b52e1d2cf8851a451dd905d765b66214"


def test_default_v1_output_is_unchanged(tmp_path, decoded_digest):
    """The default generator ("v1", used by tf_madan's configs and tests) writes the same
    pixels as before the madan_v2 benchmark was added (digest taken from the commit
    before it, 710d28b)."""
    synthetic_driving.generate(
        str(tmp_path), seed=0, num_per_domain=4, num_val=2, height=32, width=64
    )
    assert decoded_digest(tmp_path) == EXPECTED_V1_DIGEST
