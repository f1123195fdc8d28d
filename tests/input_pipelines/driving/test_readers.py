"""Tests of file listing, pairing and every bad-input error, on generated fixtures."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from input_pipelines import driving, synthetic_driving
from input_pipelines.driving import image_header, readers


@pytest.fixture
def copy_of(synthetic_root, tmp_path):
    """Returns a function copying one generated domain into a scratch folder."""

    def copy(domain):
        target = tmp_path / domain
        shutil.copytree(synthetic_root / domain, target)
        return target

    return copy


def _first_batch(name, split, data_dir, **kwargs):
    ds = driving.build_dataset(
        name, split, data_dir=str(data_dir), batch_size=1, shuffle=False, **kwargs
    )
    return [batch for batch in ds]


@pytest.mark.parametrize(
    "name,split,domain,count,first_key",
    [
        ("gta5", "all", "gta5", 6, "00001"),
        ("gta5", "train", "gta5", 5, "00001"),
        ("gta5", "test", "gta5", 1, "00006"),
        ("synthia", "all", "synthia", 6, "0000000"),
        ("cityscapes", "train", "cityscapes", 6, "synthtown/synthtown_000000_000019"),
        ("cityscapes", "val", "cityscapes", 3, "synthvale/synthvale_000000_000019"),
    ],
)
def test_list_examples(synthetic_root, name, split, domain, count, first_key):
    examples = readers.list_examples(name, split, str(synthetic_root / domain))
    assert len(examples) == count
    assert examples.keys[0] == first_key
    readers.validate_full(examples)


def test_image_header_png_and_jpeg(synthetic_root, tmp_path):
    header = image_header.read_image_header(str(synthetic_root / "gta5" / "labels" / "00001.png"))
    assert (header.height, header.width, header.bit_depth, header.png_color_type) == (64, 128, 8, 3)
    path = tmp_path / "x.jpg"
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(path, quality=90)
    header = image_header.read_image_header(str(path))
    assert (header.height, header.width, header.channels, header.kind) == (10, 20, 3, "jpeg")


def test_image_without_label(copy_of):
    root = copy_of("gta5")
    os.remove(root / "labels" / "00003.png")
    with pytest.raises(
        FileNotFoundError, match=r"1 image\(s\) without a label .*images/00003\.png"
    ):
        driving.build_dataset("gta5", "all", data_dir=str(root), batch_size=1)


def test_label_without_image(copy_of):
    root = copy_of("synthia")
    os.remove(root / "RGB" / "0000002.png")
    with pytest.raises(FileNotFoundError, match=r"label file\(s\) without an image .*0000002\.png"):
        driving.build_dataset("synthia", "all", data_dir=str(root), batch_size=1)


def test_size_mismatch(copy_of):
    root = copy_of("cityscapes")
    image = root / "leftImg8bit" / "val" / "synthvale" / "synthvale_000001_000019_leftImg8bit.png"
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(image)
    with pytest.raises(
        ValueError,
        match=r"size mismatch: .*synthvale_000001_000019_leftImg8bit\.png "
        r"is 32x64 but .*_gtFine_labelIds\.png is 64x128",
    ):
        driving.build_dataset("cityscapes", "val", data_dir=str(root), batch_size=1)


def test_unreadable_file(copy_of):
    root = copy_of("gta5")
    (root / "images" / "00002.png").write_bytes(b"not an image at all, just text")
    with pytest.raises(ValueError, match=r"Unreadable image file .*images/00002\.png"):
        driving.build_dataset("gta5", "all", data_dir=str(root), batch_size=1)


def test_truncated_png_found_by_full_validation(copy_of):
    root = copy_of("gta5")
    path = root / "images" / "00004.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ValueError, match=r"Unreadable image file .*images/00004\.png"):
        driving.build_dataset("gta5", "all", data_dir=str(root), batch_size=1, validate="full")


def test_wrong_label_formats(copy_of):
    root = copy_of("synthia")
    label = root / "GT" / "LABELS" / "0000001.png"
    Image.fromarray(np.full((64, 128), 3, np.uint8)).save(label)  # 8-bit instead of 16-bit
    with pytest.raises(ValueError, match=r"0000001\.png \(expected a 16-bit multi-channel PNG"):
        driving.build_dataset("synthia", "all", data_dir=str(root), batch_size=1)
    root = copy_of("cityscapes")
    label = next((root / "gtFine" / "val" / "synthvale").glob("*_labelIds.png"))
    Image.fromarray(np.full((64, 128, 3), 7, np.uint8)).save(label)  # RGB, not grey ids
    with pytest.raises(ValueError, match="expected a greyscale label PNG, found colour type 2"):
        driving.build_dataset("cityscapes", "val", data_dir=str(root), batch_size=1)


def _write_bad_ids(domain, root):
    if domain == "gta5":
        path = root / "labels" / "00002.png"
        ids = np.asarray(Image.open(path)).copy()
        ids[0, :5] = 40
        synthetic_driving.write_png(str(path), ids, palette=np.zeros((256, 3), np.uint8))
        return path, "40"
    path = root / "GT" / "LABELS" / "0000002.png"
    ids = readers.read_raw_label(str(path), "png16_first_channel")
    synthetic_driving.write_png16(str(path), np.stack([np.full_like(ids, 30)] * 3, -1))
    return path, "30"


@pytest.mark.parametrize("domain", ["gta5", "synthia"])
def test_label_id_outside_table(copy_of, domain):
    root = copy_of(domain)
    path, bad = _write_bad_ids(domain, root)
    name = path.name.replace(".", r"\.")
    with pytest.raises(
        ValueError, match=rf"outside the {domain} table: .*{name} has ids \[{bad}\]"
    ):
        driving.build_dataset(domain, "all", data_dir=str(root), batch_size=1, validate="full")
    # Without full validation the decoder still stops on it, naming file and ids.
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"{domain} table in .*{name}: {bad}"):
        _first_batch(domain, "all", root)


def test_unknown_dataset_split_and_missing_dirs(synthetic_root, tmp_path):
    with pytest.raises(ValueError, match="Unknown driving dataset 'kitti'"):
        driving.build_dataset("kitti", "train", data_dir=str(tmp_path), batch_size=1)
    with pytest.raises(ValueError, match=r"synthia has splits \('all',\). Received: split='val'"):
        driving.build_dataset(
            "synthia", "val", data_dir=str(synthetic_root / "synthia"), batch_size=1
        )
    with pytest.raises(
        FileNotFoundError, match="bdd100k image directory not found: .*images/10k/val"
    ):
        driving.build_dataset("bdd100k", "val", data_dir=str(tmp_path), batch_size=1)
    with pytest.raises(FileNotFoundError, match="data_dir directory not found"):
        driving.build_dataset("gta5", "all", data_dir=str(tmp_path / "nope"), batch_size=1)


def test_gta5_split_needs_split_mat(copy_of):
    root = copy_of("gta5")
    os.remove(root / "split.mat")
    with pytest.raises(FileNotFoundError, match=r"gta5 split 'train' needs .*split\.mat"):
        driving.build_dataset("gta5", "train", data_dir=str(root), batch_size=1)
    assert len(readers.list_examples("gta5", "all", str(root))) == 6


def test_drop_mismatched_pairs(copy_of):
    root = copy_of("cityscapes")
    image = root / "leftImg8bit" / "val" / "synthvale" / "synthvale_000001_000019_leftImg8bit.png"
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(image)
    ds = driving.build_dataset(
        "cityscapes", "val", data_dir=str(root), batch_size=4, drop_mismatched=True
    )
    assert next(iter(ds))[1].shape == (2, 64, 128)


def _bdd100k_fixture(root, mask_values):
    """A BDD100K-format folder: JPEG images and L-mode train-id masks."""
    for index, value in enumerate(mask_values):
        image_dir = root / "images" / "10k" / "val"
        mask_dir = root / "labels" / "sem_seg" / "masks" / "val"
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((24, 40, 3), 90, np.uint8)).save(image_dir / f"b{index}.jpg")
        mask = np.full((24, 40), 13, np.uint8)
        mask[0, 0] = value
        Image.fromarray(mask).save(mask_dir / f"b{index}.png")


def test_bdd100k_generated_fixture_and_bad_id(tmp_path):
    _bdd100k_fixture(tmp_path / "good", [255, 0])
    ds = driving.build_dataset(
        "bdd100k",
        "val",
        data_dir=str(tmp_path / "good"),
        batch_size=2,
        normalization=None,
        validate="full",
    )
    image, label = next(iter(ds))
    assert image.shape == (2, 24, 40, 3)
    np.testing.assert_array_equal(label.numpy()[:, 0, 0], [255, 0])
    assert (label.numpy()[:, 1:] == 13).all()
    _bdd100k_fixture(tmp_path / "bad", [19, 0])
    with pytest.raises(ValueError, match=r"outside the bdd100k table: .*b0\.png has ids \[19\]"):
        driving.build_dataset(
            "bdd100k", "val", data_dir=str(tmp_path / "bad"), batch_size=1, validate="full"
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bdd100k table in .*b0\.png: 19"):
        _first_batch("bdd100k", "val", tmp_path / "bad")


def test_cityscapes_bad_id(copy_of):
    root = copy_of("cityscapes")
    label = next((root / "gtFine" / "val" / "synthvale").glob("*000002_000019_gtFine_labelIds.png"))
    ids = np.asarray(Image.open(label)).copy()
    ids[3, 3] = 50
    Image.fromarray(ids).save(label)
    with pytest.raises(
        ValueError, match=r"synthvale_000002_000019_gtFine_labelIds\.png has ids \[50\]"
    ):
        driving.build_dataset(
            "cityscapes", "val", data_dir=str(root), batch_size=1, validate="full"
        )


def test_bdd100k_madan_repo_layout(tmp_path):
    _bdd100k_fixture(tmp_path / "official", [1, 2])
    legacy = tmp_path / "bdds"
    (legacy / "images").mkdir(parents=True)
    (legacy / "labels" / "val").mkdir(parents=True)
    shutil.copytree(tmp_path / "official" / "images" / "10k" / "val", legacy / "images" / "val")
    for mask in (tmp_path / "official" / "labels" / "sem_seg" / "masks" / "val").glob("*.png"):
        shutil.copy(mask, legacy / "labels" / "val" / f"{mask.stem}_train_id.png")
    examples = readers.list_examples("bdd100k", "val", str(legacy))
    assert examples.keys == ("b0", "b1")
    assert examples.label_paths[1].endswith("labels/val/b1_train_id.png")
