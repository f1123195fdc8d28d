"""Tests of build_dataset and the multi-domain stream on generated data."""

import numpy as np
import pytest
import tensorflow as tf

from input_pipelines import driving


def _domain(root, name):
    split = {"gta5": "all", "synthia": "all", "cityscapes": "train"}[name]
    return str(root / name), split


@pytest.mark.parametrize("name", ["gta5", "synthia", "cityscapes"])
def test_batches_shapes_and_ranges(synthetic_root, name):
    data_dir, split = _domain(synthetic_root, name)
    ds = driving.build_dataset(
        name,
        split,
        data_dir=data_dir,
        batch_size=4,
        crop_size=(32, 48),
        resize_shorter=48,
        flip=True,
        normalization="generator",
    )
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [4, 2]
    image, label = batches[0]
    assert image.shape == (4, 32, 48, 3) and image.dtype == tf.float32
    assert label.shape == (4, 32, 48) and label.dtype == tf.int32
    assert -1.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0
    ids = set(np.unique(label.numpy()))
    assert ids <= set(range(19)) | {255} and 0 in ids  # road is everywhere


def test_label_mapping_matches_numpy(synthetic_root):
    from PIL import Image

    ds = driving.build_dataset(
        "gta5",
        "all",
        data_dir=str(synthetic_root / "gta5"),
        batch_size=1,
        shuffle=False,
        normalization=None,
        deterministic=True,
    )
    image, label = next(iter(ds))
    raw = np.asarray(Image.open(synthetic_root / "gta5" / "labels" / "00001.png"))
    np.testing.assert_array_equal(label[0].numpy(), driving.labels.map_to_train_ids(raw, "gta5"))
    pixels = np.asarray(Image.open(synthetic_root / "gta5" / "images" / "00001.png"))
    np.testing.assert_array_equal(image[0].numpy(), pixels.astype(np.float32))


def test_synthia_lanemarkings_are_ignored(synthetic_root):
    ds = driving.build_dataset(
        "synthia",
        "all",
        data_dir=str(synthetic_root / "synthia"),
        batch_size=6,
        shuffle=False,
        deterministic=True,
    )
    raw = driving.readers.read_raw_label(
        str(synthetic_root / "synthia" / "GT" / "LABELS" / "0000000.png"), "png16_first_channel"
    )
    _, label = next(iter(ds))
    assert (raw == 22).any()
    assert (label[0].numpy()[raw == 22] == 255).all()
    assert (label[0].numpy()[raw == 3] == 0).all()


def _first_labels(ds):
    return next(iter(ds))[1].numpy()


def test_deterministic_with_seed(synthetic_root):
    kwargs = dict(
        data_dir=str(synthetic_root / "gta5"),
        batch_size=3,
        crop_size=24,
        flip=True,
        deterministic=True,
        repeat=True,
    )
    first = _first_labels(driving.build_dataset("gta5", "all", seed=5, **kwargs))
    again = _first_labels(driving.build_dataset("gta5", "all", seed=5, **kwargs))
    other = _first_labels(driving.build_dataset("gta5", "all", seed=6, **kwargs))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_epochs_differ_when_repeating(synthetic_root):
    ds = driving.build_dataset(
        "cityscapes",
        "val",
        data_dir=str(synthetic_root / "cityscapes"),
        batch_size=3,
        crop_size=16,
        repeat=True,
        shuffle=False,
        deterministic=True,
    )
    iterator = iter(ds)
    epoch_one, epoch_two = next(iterator)[1].numpy(), next(iterator)[1].numpy()
    assert not np.array_equal(epoch_one, epoch_two)  # fresh crops in each epoch


def test_eval_batches_pad_with_ignore(synthetic_root, tmp_path):
    import shutil

    from PIL import Image

    # Shrink the first val frame (image and label) to 40x100, so the batch of mixed sizes
    # must be padded to the 64x128 of the second one.
    root = tmp_path / "cityscapes"
    shutil.copytree(synthetic_root / "cityscapes", root)
    image_path = sorted((root / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))[0]
    label_path = sorted((root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))[0]
    Image.open(image_path).resize((100, 40), Image.BILINEAR).save(image_path)
    Image.open(label_path).resize((100, 40), Image.NEAREST).save(label_path)
    ds = driving.build_dataset("cityscapes", "val", data_dir=str(root), batch_size=2)
    batches = list(ds)
    assert [tuple(b[1].shape) for b in batches] == [(2, 64, 128), (1, 64, 128)]  # no cut-off
    image, label = batches[0][0].numpy(), batches[0][1].numpy()
    # Padding: label 255 (ignored), image 0, outside the 40x100 frame; inside, real labels.
    assert (label[0, 40:, :] == 255).all() and (label[0, :, 100:] == 255).all()
    assert (image[0, 40:, :] == 0).all() and (image[0, :, 100:] == 0).all()
    assert (label[0, :40, :100] != 255).mean() > 0.5
    assert (label[1] != 255).mean() > 0.5  # the full-size frame is not padded


def test_sharding_by_input_context(synthetic_root):
    def labels_of(pipeline_id):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        ds = driving.build_dataset(
            "gta5",
            "all",
            data_dir=str(synthetic_root / "gta5"),
            batch_size=4,
            input_context=context,
            shuffle=False,
        )
        return [b[1].numpy() for b in ds]

    zero, one = labels_of(0), labels_of(1)
    assert [b.shape[0] for b in zero] == [2, 1] and [b.shape[0] for b in one] == [2, 1]
    every = np.concatenate(zero + one)
    assert len({x.tobytes() for x in every}) == 6  # disjoint shards covering all examples


def test_per_replica_batch_without_sharding(synthetic_root):
    context = tf.distribute.InputContext(
        num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2
    )
    ds = driving.build_dataset(
        "gta5",
        "all",
        data_dir=str(synthetic_root / "gta5"),
        batch_size=4,
        input_context=context,
        crop_size=16,
    )
    assert next(iter(ds))[1].shape == (2, 16, 16)


def test_cache_gives_same_examples(synthetic_root):
    kwargs = dict(
        data_dir=str(synthetic_root / "synthia"),
        batch_size=6,
        shuffle=False,
        resize_shorter=32,
        deterministic=True,
    )
    plain = _first_labels(driving.build_dataset("synthia", "all", **kwargs))
    cached = _first_labels(driving.build_dataset("synthia", "all", cache=True, **kwargs))
    np.testing.assert_array_equal(plain, cached)
    assert plain.shape == (6, 32, 64)


def test_class_subset_16(synthetic_root):
    kwargs = dict(
        data_dir=str(synthetic_root / "cityscapes"), batch_size=6, shuffle=False, deterministic=True
    )
    full = _first_labels(driving.build_dataset("cityscapes", "train", **kwargs))
    sub = _first_labels(driving.build_dataset("cityscapes", "train", class_subset="16", **kwargs))
    assert (full == 9).any()  # terrain
    assert not np.isin(sub, [9, 14, 16]).any()
    np.testing.assert_array_equal(sub[full != 9], full[full != 9])


def test_bad_options(synthetic_root):
    data_dir = str(synthetic_root / "gta5")
    with pytest.raises(ValueError, match="batch_size must be positive"):
        driving.build_dataset("gta5", "all", data_dir=data_dir, batch_size=0)
    with pytest.raises(ValueError, match="normalization must be one of"):
        driving.build_dataset("gta5", "all", data_dir=data_dir, batch_size=1, normalization="x")
    with pytest.raises(ValueError, match="validate must be one of"):
        driving.build_dataset("gta5", "all", data_dir=data_dir, batch_size=1, validate="some")
    with pytest.raises(ValueError, match="class_subset must be None or '16'"):
        driving.build_dataset("gta5", "all", data_dir=data_dir, batch_size=1, class_subset="7")


def test_multi_domain_stream(synthetic_root):
    ds = driving.build_multi_domain_dataset(
        [("gta5", str(synthetic_root / "gta5")), ("synthia", str(synthetic_root / "synthia"))],
        ("cityscapes", str(synthetic_root / "cityscapes")),
        "train",
        batch_size=2,
        crop_size=32,
        normalization="generator",
    )
    iterator = iter(ds)
    for _ in range(4):  # more steps than examples per epoch: every domain repeats
        batch = next(iterator)
    assert len(batch["sources"]) == 2
    for image, label in (*batch["sources"], batch["target"]):
        assert image.shape == (2, 32, 32, 3) and label.shape == (2, 32, 32)
    spec = ds.element_spec
    assert set(spec) == {"sources", "target"}


def test_multi_domain_errors(synthetic_root):
    target = ("cityscapes", str(synthetic_root / "cityscapes"))
    with pytest.raises(ValueError, match="at least one source"):
        driving.build_multi_domain_dataset([], target, "train", batch_size=1)
    with pytest.raises(ValueError, match="each source must be"):
        driving.build_multi_domain_dataset([("gta5",)], target, "train", batch_size=1)
    with pytest.raises(ValueError, match="synthia has splits"):
        driving.build_multi_domain_dataset(
            [("synthia", str(synthetic_root / "synthia"), "train")], target, "train", batch_size=1
        )


def test_cityscapes_reader_equals_label_train_ids_files(synthetic_root):
    from PIL import Image

    root = synthetic_root / "cityscapes"
    ds = driving.build_dataset("cityscapes", "val", data_dir=str(root), batch_size=1,
                               deterministic=True)  # fmt: skip
    examples = driving.list_examples("cityscapes", "val", str(root))
    for (_, label), path in zip(ds, examples.label_paths):
        expected = np.asarray(Image.open(path.replace("_labelIds", "_labelTrainIds")))
        np.testing.assert_array_equal(label[0].numpy(), expected)


def test_unshuffled_order_follows_file_list_by_default(synthetic_root):
    from PIL import Image

    root = synthetic_root / "gta5"
    ds = driving.build_dataset("gta5", "all", data_dir=str(root), batch_size=1, shuffle=False)
    examples = driving.list_examples("gta5", "all", str(root))
    for (_, label), path in zip(ds, examples.label_paths):
        raw = np.asarray(Image.open(path))
        np.testing.assert_array_equal(
            label[0].numpy(), driving.labels.map_to_train_ids(raw, "gta5")
        )


def test_multi_domain_under_mirrored_strategy(synthetic_root, mirrored_strategy):
    def dataset_fn(input_context):
        return driving.build_multi_domain_dataset(
            [("gta5", str(synthetic_root / "gta5")), ("synthia", str(synthetic_root / "synthia"))],
            ("cityscapes", str(synthetic_root / "cityscapes")),
            "train",
            batch_size=4,
            crop_size=16,
            input_context=input_context,
        )

    distributed = mirrored_strategy.distribute_datasets_from_function(dataset_fn)
    batch = next(iter(distributed))
    per_replica = mirrored_strategy.experimental_local_results(batch["target"][1])
    assert [tuple(t.shape) for t in per_replica] == [(2, 16, 16), (2, 16, 16)]
    sources = mirrored_strategy.experimental_local_results(batch["sources"][1][0])
    assert [tuple(t.shape) for t in sources] == [(2, 16, 16, 3), (2, 16, 16, 3)]


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_corrupt_image_body_error_names_the_file(synthetic_root, tmp_path, damage):
    import shutil

    root = tmp_path / "gta5"
    shutil.copytree(synthetic_root / "gta5", root)
    path = sorted((root / "images").glob("*.png"))[1]
    data = path.read_bytes()
    # Headers stay valid (the file list is built from them); only the body is broken.
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(data[:64] + b"\x00" * (len(data) - 64))
    ds = driving.build_dataset("gta5", "all", data_dir=str(root), batch_size=2, shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"corrupt or truncated.*{path.name}"):
        for _ in ds:
            pass
