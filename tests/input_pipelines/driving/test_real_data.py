"""Readers on the real samples in ../shared/data (skipped when absent).

Full-resolution Cityscapes files (2048x1024) are decoded once per module.
"""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from input_pipelines import driving
from input_pipelines import inspect as inspect_lib
from input_pipelines.driving import decode, image_header, labels, readers


def _subdir(shared_data_dir, name):
    path = shared_data_dir / name
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def cityscapes_report(shared_data_dir, tmp_path_factory):
    """inspect_dataset on the 3 full-resolution train triples (one decode of each)."""
    root = _subdir(shared_data_dir, "cityscapes")
    grid = tmp_path_factory.mktemp("inspect") / "grid.png"
    return root, inspect_lib.inspect_dataset("cityscapes", "train", str(root), grid_path=str(grid))


def test_cityscapes_full_resolution_counts(cityscapes_report):
    root, report = cityscapes_report
    assert report["num_examples"] == 3
    assert report["image_sizes"] == {"1024x2048": 3}
    counts = report["class_pixel_counts"]
    assert sum(counts.values()) == 3 * 1024 * 2048
    expected = np.zeros(256, np.int64)
    for path in sorted((root / "gtFine" / "train" / "aachen").glob("*_labelIds.png")):
        raw = np.asarray(Image.open(path))
        expected += np.bincount(labels.map_to_train_ids(raw, "cityscapes").ravel(), minlength=256)
    assert [counts[n] for n in labels.TRAIN_ID_NAMES] == expected[:19].tolist()
    assert counts["ignore"] == expected[255] == 424201
    assert counts["road"] == 831082 + 843229 + 724397
    with Image.open(report["grid"]) as grid:
        assert grid.size == (768, 3 * 196)


def test_cityscapes_small_val_matches_label_train_ids(shared_data_dir):
    root = _subdir(shared_data_dir, "cityscapes_small_256x128")
    ds = driving.build_dataset("cityscapes", "val", data_dir=str(root), batch_size=1,
                               normalization=None)  # fmt: skip
    batches = list(ds)
    assert len(batches) == 1
    image, label = batches[0]
    assert image.shape == (1, 128, 256, 3)
    stem = root / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000294_gtFine_"
    train_ids = np.asarray(Image.open(f"{stem}labelTrainIds.png"))
    mapped = label[0].numpy()
    raw = np.asarray(Image.open(f"{stem}labelIds.png"))
    np.testing.assert_array_equal(mapped, labels.map_to_train_ids(raw, "cityscapes"))
    # This fixture's labelIds and labelTrainIds files were downscaled separately, so they
    # disagree on 77 boundary pixels; each disagreement is a train id found within two
    # pixels in our mapping (a resampling artefact, not a table error).
    differ = np.argwhere(mapped != train_ids)
    assert len(differ) == 77
    padded = np.pad(mapped, 2, constant_values=254)
    for y, x in differ:
        assert train_ids[y, x] in padded[y : y + 5, x : x + 5]


def test_cityscapes_val_labels_tf_decode_equals_numpy_table(shared_data_dir):
    root = _subdir(shared_data_dir, "cityscapes_val_labels_only")
    paths = sorted((root / "gtFine" / "val" / "frankfurt").glob("*_gtFine_labelIds.png"))
    assert len(paths) == 15
    decode_fn = tf.function(
        lambda p: decode.map_label(decode.decode_raw_label(p, "png8_grey"), "cityscapes", p)
    )
    for path in paths:
        raw = np.asarray(Image.open(path))
        assert raw.shape == (1024, 2048)
        mapped = decode_fn(tf.constant(str(path))).numpy()
        np.testing.assert_array_equal(mapped, labels.map_to_train_ids(raw, "cityscapes"))
    # Images are absent here: the reader names the missing directory.
    with pytest.raises(FileNotFoundError, match="cityscapes image directory not found"):
        readers.list_examples("cityscapes", "val", str(root))


@pytest.mark.parametrize("split,count", [("train", 16), ("val", 8)])
def test_bdd100k_masks(shared_data_dir, split, count):
    root = _subdir(shared_data_dir, "bdd100k")
    examples = readers.list_examples("bdd100k", split, str(root))
    assert len(examples) == count
    readers.validate_headers(examples)
    label_path = examples.label_paths[0]
    mask = np.asarray(Image.open(label_path))
    colormap = Image.open(label_path.replace("/masks/", "/colormaps/"))
    assert colormap.mode == "P"
    np.testing.assert_array_equal(mask, np.asarray(colormap))  # palette index = train id
    ds = driving.build_dataset("bdd100k", split, data_dir=str(root), batch_size=4,
                               normalization=None, deterministic=True, shuffle=False)  # fmt: skip
    image, label = next(iter(ds))
    assert image.shape == (4, 720, 1280, 3) and label.shape == (4, 720, 1280)
    assert set(np.unique(label.numpy())) <= set(range(19)) | {255}
    np.testing.assert_array_equal(label[0].numpy(), mask)  # masks are not remapped


def test_gta5_images_without_labels(shared_data_dir):
    root = _subdir(shared_data_dir, "gta5_images_only_halfres")
    header = image_header.read_image_header(str(root / "images" / "00373.png"))
    assert (header.height, header.width, header.channels) == (526, 957, 3)
    with pytest.raises(FileNotFoundError, match="gta5 label directory not found: .*labels"):
        driving.build_dataset("gta5", "all", data_dir=str(root), batch_size=1)
