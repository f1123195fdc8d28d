"""Classification pipelines: embedded data, IDX and pickle readers, determinism, sharding."""

import gzip
import pickle

import numpy as np
import pytest
import tensorflow as tf

from input_pipelines import cifar, classification, embedded, idx


def _collect(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


@pytest.mark.parametrize(
    "name, sizes, shape",
    [("digits", (1294, 144, 359), (8, 8, 1)), ("mnist5k", (3600, 400, 1000), (28, 28, 1))],
)
def test_embedded_splits_are_disjoint_and_complete(name, sizes, shape):
    parts = [classification.load_arrays(name, s) for s in classification.SPLITS]
    assert tuple(len(p[1]) for p in parts) == sizes
    assert all(p[0].shape[1:] == shape and p[0].dtype == np.uint8 for p in parts)
    everything = np.concatenate([p[0].reshape(len(p[0]), -1) for p in parts])
    assert len(np.unique(everything, axis=0)) >= 0.99 * len(everything)
    counts = np.bincount(np.concatenate([p[1] for p in parts]))
    assert counts.sum() == sum(sizes) and len(counts) == 10
    if name == "mnist5k":
        assert counts.tolist() == [500] * 10
    # Every class is represented in the test split (the permutation mixes the class-sorted data).
    assert len(np.unique(parts[2][1])) == 10


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_standard_statistics_match_training_data(name):
    images, _ = classification.load_arrays(name, "train")
    info = classification.dataset_info(name)
    scaled = images / 255.0
    assert scaled.mean() == pytest.approx(info.mean[0], abs=0.01)
    assert scaled.std() == pytest.approx(info.std[0], abs=0.01)


def test_build_dataset_shapes_dtypes_ranges():
    dataset = classification.build_dataset("digits", "test", batch_size=100)
    batches = list(dataset)
    assert [int(b[0].shape[0]) for b in batches] == [100, 100, 100, 59]
    x, y = batches[0]
    assert x.dtype == tf.float32 and y.dtype == tf.int32 and x.shape[1:] == (8, 8, 1)
    assert float(tf.reduce_min(x)) == 0.0 and float(tf.reduce_max(x)) == 1.0
    standard = next(
        iter(
            classification.build_dataset(
                "digits", "test", batch_size=359, normalize="standard", dtype=tf.float64
            )
        )
    )[0]
    assert standard.dtype == tf.float64
    assert float(tf.reduce_mean(standard)) == pytest.approx(0.0, abs=0.05)


def test_build_dataset_deterministic_by_seed_and_reshuffles_epochs():
    def first_epochs(seed):
        ds = classification.build_dataset(
            "digits", "train", batch_size=1294, seed=seed, repeat=True
        )
        return [y.numpy() for _, y in ds.take(2)]

    a, b, c = first_epochs(1), first_epochs(1), first_epochs(2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])  # a new order each epoch
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(np.sort(a[0]), np.sort(a[1]))


def test_sharding_by_input_context_splits_the_data():
    shards = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        ds = classification.build_dataset(
            "digits", "test", batch_size=64, input_context=context, shuffle=False
        )
        x, _ = _collect(ds)
        assert next(iter(ds))[0].shape[0] == 32  # per-replica share of the global batch
        shards.append(x.reshape(len(x), -1))
    full, _ = _collect(classification.build_dataset("digits", "test", batch_size=64, shuffle=False))
    # Worker w holds the contiguous half [32 w, 32 w + 32) of every global batch of 64 (the
    # layout MirroredStrategy gives one pipeline); the last global batch has 39 examples, so
    # worker 0 gets 32 of them and worker 1 the remaining 7.
    assert (len(shards[0]), len(shards[1])) == (5 * 32 + 32, 5 * 32 + 7)
    flat = full.reshape(359, -1)
    first = np.concatenate([flat[b : b + 32] for b in range(0, 359, 64)])
    second = np.concatenate([flat[b + 32 : b + 64] for b in range(0, 359, 64)])
    np.testing.assert_array_equal(shards[0], first)
    np.testing.assert_array_equal(shards[1], second)


def test_cifar_augmentation_eager_equals_dataset_map():
    image = tf.reshape(tf.range(32 * 32 * 3, dtype=tf.int32) % 251, [32, 32, 3])
    seed = tf.constant([3, 7], tf.int64)
    eager = classification.augment_cifar(image, seed)
    mapped = next(
        iter(tf.data.Dataset.from_tensors((image, seed)).map(classification.augment_cifar))
    )
    np.testing.assert_array_equal(eager.numpy(), mapped.numpy())
    assert eager.shape == (32, 32, 3)
    # Every output is a 32x32 window of the zero-padded image, possibly mirrored.
    padded = np.pad(image.numpy(), [(4, 4), (4, 4), (0, 0)])
    windows = {
        w.tobytes()
        for i in range(9)
        for j in range(9)
        for w in (padded[i : i + 32, j : j + 32], padded[i : i + 32, j : j + 32][:, ::-1])
    }
    outputs = {
        classification.augment_cifar(image, tf.constant([s, 0], tf.int64)).numpy().tobytes()
        for s in range(8)
    }
    assert outputs <= windows and len(outputs) > 1


def _write_mnist(folder, images, labels, gz):
    suffix = ".gz" if gz else ""
    idx.write_idx(str(folder / f"train-images-idx3-ubyte{suffix}"), images)
    idx.write_idx(str(folder / f"train-labels-idx1-ubyte{suffix}"), labels)
    idx.write_idx(str(folder / f"t10k-images-idx3-ubyte{suffix}"), images[:7])
    idx.write_idx(str(folder / f"t10k-labels-idx1-ubyte{suffix}"), labels[:7])


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_train_split_from_generated_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    labels = (np.arange(50) % 10).astype(np.uint8)
    _write_mnist(tmp_path, images, labels, gz)
    train_x, train_y = classification.load_arrays(
        "mnist", "train", str(tmp_path), validation_fraction=0.2
    )
    val_x, val_y = classification.load_arrays(
        "mnist", "validation", str(tmp_path), validation_fraction=0.2
    )
    test_x, test_y = classification.load_arrays("mnist", "test", str(tmp_path))
    assert (len(train_y), len(val_y), len(test_y)) == (40, 10, 7)
    np.testing.assert_array_equal(test_x[..., 0], images[:7])
    together = np.concatenate([train_x, val_x])[..., 0]
    assert {a.tobytes() for a in together} == {a.tobytes() for a in images}


def test_mnist_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"pass --config\.data_dir=DIR"):
        classification.load_arrays("mnist", "train", None, data_dir_flag="--config.data_dir")
    with pytest.raises(FileNotFoundError, match=r"--config\.data\.data_dir=/nonexistent does"):
        classification.load_arrays(
            "mnist", "train", "/nonexistent", data_dir_flag="--config.data.data_dir"
        )
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        classification.load_arrays("mnist", "train", str(tmp_path))
    images = np.zeros((10, 28, 28), np.uint8)
    _write_mnist(tmp_path, images, np.zeros(10, np.uint8), gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    with pytest.raises(
        ValueError,
        match=r"train-images-idx3-ubyte: size mismatch .* expected 7856 bytes, found 7756",
    ):
        classification.load_arrays("mnist", "train", str(tmp_path))
    path.write_bytes(b"\x01\x02" + raw[2:])
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        classification.load_arrays("mnist", "train", str(tmp_path))
    path.write_bytes(raw)
    idx.write_idx(str(tmp_path / "train-labels-idx1-ubyte"), np.zeros(9, np.uint8))
    with pytest.raises(ValueError, match="holds 10 images but .* holds 9 labels"):
        classification.load_arrays("mnist", "train", str(tmp_path))
    gz_path = tmp_path / "gz"
    gz_path.mkdir()
    _write_mnist(gz_path, images, np.zeros(10, np.uint8), gz=True)
    truncated = gz_path / "t10k-images-idx3-ubyte.gz"
    truncated.write_bytes(truncated.read_bytes()[:40])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        classification.load_arrays("mnist", "test", str(gz_path))


def test_cifar_pickles_generated_train_split_and_errors(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(1, 6):
        cifar.write_batch(
            folder / f"data_batch_{i}",
            rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
            [i % 10] * 4,
        )
    test_images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    cifar.write_batch(folder / "test_batch", test_images, [1, 2, 3])
    train = classification.load_arrays("cifar10", "train", str(tmp_path), validation_fraction=0.25)
    assert train[0].shape == (15, 32, 32, 3)
    np.testing.assert_array_equal(
        classification.load_arrays("cifar10", "test", str(tmp_path))[0], test_images
    )
    batch = next(
        iter(
            classification.build_dataset("cifar10", "train", batch_size=15, data_dir=str(tmp_path))
        )
    )
    assert batch[0].shape == (15, 32, 32, 3)

    raw = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"data_batch_3 is truncated or corrupt \(\d+ bytes found"):
        classification.load_arrays("cifar10", "train", str(tmp_path))
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4}, f)
    with pytest.raises(
        ValueError,
        match=r"data_batch_3: image data size mismatch: expected 4 x 3072 = 12288 bytes .* found 12000",
    ):
        classification.load_arrays("cifar10", "train", str(tmp_path))
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        classification.load_arrays("cifar10", "train", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        classification.load_arrays("cifar100", "test", str(tmp_path))


class _Exploit:
    """A pickle payload that would create a file when unpickled by plain `pickle.load`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _cifar_folder_with(tmp_path, data_batch_1):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump(data_batch_1, f)
    return folder


def test_cifar_pickle_with_code_is_rejected_without_running_it(tmp_path):
    witness = tmp_path / "pwned"
    _cifar_folder_with(tmp_path, {b"data": _Exploit(witness), b"labels": [0]})
    with pytest.raises(
        ValueError, match=r"data_batch_1 is not a CIFAR batch: its pickle calls io\.open"
    ):
        cifar.read_batch(str(tmp_path / "cifar-10-batches-py" / "data_batch_1"), b"labels")
    assert not witness.exists()  # the payload never ran


@pytest.mark.parametrize(
    "data,match",
    [
        (
            np.full((1, 3072), 0.5, np.float32),
            r"must be integers 0\.\.255 \(uint8\)\. Found dtype float32",
        ),
        (np.full((1, 3072), 300, np.int16), r"outside 0\.\.255 \(found 300\.\.300\)"),
        (np.full((1, 3072), -1, np.int64), r"outside 0\.\.255 \(found -1\.\.-1\)"),
    ],
)
def test_cifar_float_or_out_of_range_data_is_an_error_not_wrapped(tmp_path, data, match):
    folder = _cifar_folder_with(tmp_path, {b"data": data, b"labels": [0]})
    with pytest.raises(ValueError, match=match):
        cifar.read_batch(str(folder / "data_batch_1"), b"labels")


def test_cifar_int_array_in_range_is_accepted(tmp_path):
    data = np.arange(3072, dtype=np.int64).reshape(1, 3072) % 256
    folder = _cifar_folder_with(tmp_path, {b"data": data, b"labels": [3]})
    images, labels = cifar.read_batch(str(folder / "data_batch_1"), b"labels")
    assert images.dtype == np.uint8 and images[0, 0, 1, 0] == 1 and images[0, 0, 0, 1] == 0
    assert labels.tolist() == [3]


def test_batch_larger_than_split_is_an_error():
    with pytest.raises(ValueError, match=r"batch_size=65 exceeds the 64 examples of digits train"):
        classification.build_dataset("digits", "train", batch_size=65, limit=64, repeat=True)
    with pytest.raises(ValueError, match=r"batch_size=65 exceeds .*no full batch exists"):
        classification.build_dataset(
            "digits", "train", batch_size=65, limit=64, drop_remainder=True
        )
    # Evaluation (no repeat, keep the remainder) takes the whole split as one short batch.
    (batch,) = list(classification.build_dataset("digits", "test", batch_size=1000, limit=50))
    assert batch[0].shape[0] == 50


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    images = np.full((2, 32, 32, 3), 9, np.uint8)
    for name in ("train", "test"):
        cifar.write_batch(folder / name, images, [42, 99], label_key=b"fine_labels")
    x, y = classification.load_arrays("cifar100", "test", str(tmp_path))
    assert y.tolist() == [42, 99] and classification.dataset_info("cifar100").num_classes == 100


def test_unknown_names_and_arguments():
    with pytest.raises(ValueError, match="Unknown dataset 'svhn'"):
        classification.build_dataset("svhn", "train", batch_size=2)
    with pytest.raises(ValueError, match="Unknown split 'dev'"):
        classification.load_arrays("digits", "dev")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        classification.build_dataset("digits", "train", batch_size=0)
    with pytest.raises(ValueError, match="normalize must be one of"):
        next(iter(classification.build_dataset("digits", "test", batch_size=2, normalize="zscore")))


def test_real_mnist_test_set(shared_data_dir):
    folder = shared_data_dir / "mnist"
    if not folder.is_dir():
        pytest.skip(f"{folder} absent")
    images, labels = classification.load_arrays("mnist", "test", str(folder))
    assert images.shape == (10000, 28, 28, 1) and labels[0] == 7
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(labels).sum() == 10000 and len(np.bincount(labels)) == 10
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        assert f.read(8)[:4] == b"\x00\x00\x08\x01"


def test_real_cifar10_sample(shared_data_dir):
    folder = shared_data_dir / "cifar10"
    if not folder.is_dir():
        pytest.skip(f"{folder} absent")
    images, labels = classification.load_arrays("cifar10", "test", str(folder))
    assert images.shape == (846, 32, 32, 3) and labels.min() >= 0 and labels.max() <= 9
    assert labels[:4].tolist() == [3, 8, 8, 0]  # cat, ship, ship, airplane: the official test order
    batches = list(
        classification.build_dataset("cifar10", "test", batch_size=500, data_dir=str(folder))
    )
    assert [int(b[1].shape[0]) for b in batches] == [500, 346]


def test_explicit_mean_std_replace_the_dataset_statistics():
    info = classification.dataset_info("cifar10")
    image = tf.constant(np.array([[[[0, 255, 51]]]], np.uint8))  # one pixel, R G B
    anode = classification.normalize_image(
        image,
        info,
        "standard",
        tf.float64,
        mean=classification.ANODE_CIFAR10_MEAN,
        std=classification.ANODE_CIFAR10_STD,
    )
    # ANODE's train.py: mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010), by hand:
    # (0 - 0.4914) / 0.2023, (1 - 0.4822) / 0.1994, (0.2 - 0.4465) / 0.2010.
    np.testing.assert_allclose(
        anode.numpy().ravel(), [-2.4290657439, 2.5967903711, -1.2263681592], atol=1e-9
    )
    # Default "standard": the dataset's own std 0.2470 on the red channel: (0 - 0.4914) / 0.2470.
    default = classification.normalize_image(image, info, "standard", tf.float64)
    assert float(default[0, 0, 0, 0]) == pytest.approx(-1.9894736842, abs=1e-9)
    with pytest.raises(ValueError, match=r"one value per channel of cifar10 \(3\)"):
        classification.normalize_image(image, info, "standard", mean=(0.5,), std=(0.2,))
    with pytest.raises(ValueError, match="Pass both mean and std"):
        classification.normalize_image(image, info, "standard", mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="only to normalize='standard'"):
        classification.normalize_image(image, info, "unit", mean=(0, 0, 0), std=(1, 1, 1))
    with pytest.raises(ValueError, match="std must be > 0"):
        classification.normalize_image(image, info, "standard", mean=(0, 0, 0), std=(1, 0, 1))


def test_build_dataset_passes_mean_std_through(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    images = np.zeros((2, 32, 32, 3), np.uint8)
    images[1] = 255
    cifar.write_batch(folder / "test_batch", images, [0, 1])
    (x, _) = next(
        iter(
            classification.build_dataset(
                "cifar10",
                "test",
                batch_size=2,
                data_dir=str(tmp_path),
                normalize="standard",
                dtype=tf.float64,
                mean=classification.ANODE_CIFAR10_MEAN,
                std=classification.ANODE_CIFAR10_STD,
            )
        )
    )
    # Black: -mean / std; white: (1 - mean) / std, per channel (ANODE's constants, by hand).
    np.testing.assert_allclose(
        x.numpy()[0, 5, 7], [-2.4290657439, -2.4182547643, -2.2213930348], atol=1e-9
    )
    np.testing.assert_allclose(
        x.numpy()[1, 5, 7], [2.5140879881, 2.5967903711, 2.7537313433], atol=1e-9
    )
    with pytest.raises(ValueError, match="one value per channel of digits"):
        classification.build_dataset(
            "digits", "test", batch_size=2, normalize="standard", mean=(0, 0, 0), std=(1, 1, 1)
        )


@pytest.mark.parametrize(
    "labels,match",
    [
        (["3"], r"data_batch_1: b'labels' must hold integer class indices; found '3' \(str"),
        ([2.7], r"data_batch_1: b'labels' must hold integer class indices; found 2\.7 \(float"),
        (np.array([2.0]), r"data_batch_1: b'labels' must hold integer class indices; found 2\.0"),
        ([True], r"data_batch_1: b'labels' must hold integer class indices; found True"),
    ],
)
def test_cifar_labels_that_are_not_integers_name_the_file(tmp_path, labels, match):
    folder = _cifar_folder_with(
        tmp_path, {b"data": np.zeros((1, 3072), np.uint8), b"labels": labels}
    )
    with pytest.raises(ValueError, match=match):
        cifar.read_batch(str(folder / "data_batch_1"), b"labels")


def test_cifar_image_arrays_are_read_by_their_layout(tmp_path):
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    for name, data in (("hwc", hwc), ("chw", hwc.transpose(0, 3, 1, 2))):
        folder = tmp_path / name
        folder.mkdir()
        with open(folder / "b", "wb") as f:
            pickle.dump({b"data": data, b"labels": [0, 1]}, f)
        images, _ = cifar.read_batch(str(folder / "b"), b"labels")
        np.testing.assert_array_equal(images, hwc)  # not scrambled as if HWC were CHW rows
    with open(tmp_path / "odd", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 32, 96), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"odd: image data of shape \(2, 32, 96\)"):
        cifar.read_batch(str(tmp_path / "odd"), b"labels")


@pytest.mark.parametrize("loader", ["load_digits_arrays", "load_mnist5k_arrays"])
def test_embedded_files_are_read_once_per_process_into_read_only_arrays(loader):
    load = getattr(embedded, loader)
    images, labels = load()
    again = load()
    assert again[0] is images and again[1] is labels
    with pytest.raises(ValueError, match="read-only"):
        images[0, 0, 0, 0] = 1
    # Every split is a copy its caller may change.
    split_images, _ = classification.load_arrays(loader.split("_")[1], "train")
    split_images[0] = 0
    assert load()[0] is images
