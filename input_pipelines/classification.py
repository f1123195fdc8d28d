"""Classification datasets as batched, prefetched, shardable `tf.data` pipelines.

Names: `digits`, `mnist5k` (embedded, no download), `mnist` (IDX files under `data_dir`),
`cifar10`, `cifar100` (python pickle batches under `data_dir`). Splits: `train`, `validation`,
`test`. Datasets without a split of their own are split by a fixed permutation (seed 0,
independent of the pipeline seed): 20% test, then `validation_fraction` of the rest; datasets with
a test split carve the validation split from the end of a fixed permutation of their train files.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from input_pipelines import cifar, embedded, idx

NAMES = ("digits", "mnist5k", "mnist", "cifar10", "cifar100")
SPLITS = ("train", "validation", "test")
NORMALIZATIONS = ("standard", "unit", "none")
_SPLIT_SEED = 0
_EMBEDDED_TEST_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts of a dataset.

    Attributes:
      name: dataset name.
      num_classes: number of labels.
      image_shape: (H, W, C) of one image.
      mean, std: per-channel statistics of the training images scaled to [0, 1] (for
        `normalize="standard"`).
      needs_data_dir: whether files must be read from `data_dir`.
    """

    name: str
    num_classes: int
    image_shape: tuple
    mean: tuple
    std: tuple
    needs_data_dir: bool


_INFO = {
    "digits": DatasetInfo("digits", 10, (8, 8, 1), (0.3053,), (0.3760,), False),
    "mnist5k": DatasetInfo("mnist5k", 10, (28, 28, 1), (0.1307,), (0.3081,), False),
    "mnist": DatasetInfo("mnist", 10, (28, 28, 1), (0.1307,), (0.3081,), True),
    "cifar10": DatasetInfo(
        "cifar10", 10, (32, 32, 3), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True
    ),
    "cifar100": DatasetInfo(
        "cifar100", 100, (32, 32, 3), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), True
    ),
}


def dataset_info(name):
    """`DatasetInfo` of `name`; ValueError naming the valid names otherwise."""
    if name not in _INFO:
        raise ValueError(f"Unknown dataset {name!r}. Choose one of {NAMES}.")
    return _INFO[name]


def _split_indices(num_examples, split, validation_fraction, has_test):
    order = np.random.default_rng(_SPLIT_SEED).permutation(num_examples)
    if not has_test:
        num_test = int(round(num_examples * _EMBEDDED_TEST_FRACTION))
        if split == "test":
            return np.sort(order[:num_test])
        order = order[num_test:]
    num_validation = int(round(len(order) * validation_fraction))
    if split == "validation":
        return np.sort(order[len(order) - num_validation :])
    return np.sort(order[: len(order) - num_validation])


def _raw_arrays(name, split, data_dir, data_dir_flag="data_dir"):
    """(images, labels, has_test) for the file split that holds `split`."""
    if name in ("digits", "mnist5k"):
        loader = embedded.load_digits_arrays if name == "digits" else embedded.load_mnist5k_arrays
        return (*loader(), False)
    if not data_dir:
        raise ValueError(
            f"Dataset {name!r} is read from files: pass {data_dir_flag}=DIR, the folder of its "
            f"original files (got {data_dir!r})."
        )
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"{data_dir_flag}={data_dir} does not exist or is not a folder.")
    file_split = "test" if split == "test" else "train"
    if name == "mnist":
        prefix = "t10k" if file_split == "test" else "train"
        images_path = idx.find_idx_file(data_dir, f"{prefix}-images-idx3-ubyte")
        labels_path = idx.find_idx_file(data_dir, f"{prefix}-labels-idx1-ubyte")
        images = idx.read_idx(images_path, expected_ndim=3)
        labels = idx.read_idx(labels_path, expected_ndim=1).astype(np.int64)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
                f"{labels.shape[0]} labels."
            )
        if images.shape[1:] != (28, 28):
            raise ValueError(
                f"{images_path}: images of shape {images.shape[1:]}, expected (28, 28)."
            )
        if labels.size and labels.max() > 9:
            raise ValueError(f"{labels_path}: label {int(labels.max())} outside 0..9.")
        return images[..., None], labels, True
    images, labels = cifar.load_cifar(name, data_dir, file_split)
    return images, labels, True


def load_arrays(
    name, split, data_dir=None, *, validation_fraction=0.1, limit=None, data_dir_flag="data_dir"
):
    """Images and labels of one split as numpy arrays.

    Args:
      name: one of `NAMES`.
      split: one of `SPLITS`.
      data_dir: folder of the original files (for mnist / cifar10 / cifar100).
      validation_fraction: fraction of the training data held out as `validation`.
      limit: keep only the first `limit` examples of the split (tests, smoke runs).
      data_dir_flag: how the caller's user sets `data_dir` (e.g. "--config.data_dir"), named
        in the error when it is missing.

    Returns:
      (images uint8 [N, H, W, C], labels int64 [N]).

    Raises:
      ValueError / FileNotFoundError: naming the argument, folder or file at fault.
    """
    dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}. Choose one of {SPLITS}.")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1). Received: {validation_fraction}")
    images, labels, has_test = _raw_arrays(name, split, data_dir, data_dir_flag)
    if split != "test" or not has_test:
        keep = _split_indices(len(labels), split, validation_fraction, has_test)
        images, labels = images[keep], labels[keep]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


# Published per-channel statistics (of images in [0, 1]) some reference codes normalise with
# instead of the dataset's own; pass them as `mean=`/`std=` with `normalize="standard"`.
ANODE_CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # ANODE's train.py transforms.Normalize
ANODE_CIFAR10_STD = (0.2023, 0.1994, 0.2010)


def normalization_statistics(info, normalize="standard", mean=None, std=None):
    """`(mean, std)` tuples `normalize_image` uses: the overrides if given, else the dataset's.

    Raises:
      ValueError: naming the argument when `mean`/`std` are given without the other, with a
        normalisation other than "standard", with a length other than the image channels, or
        with a non-positive std.
    """
    if mean is None and std is None:
        return tuple(info.mean), tuple(info.std)
    if mean is None or std is None:
        raise ValueError(
            f"Pass both mean and std (or neither). Received: mean={mean!r}, std={std!r}"
        )
    if normalize != "standard":
        raise ValueError(
            f"mean/std apply only to normalize='standard'. Received: normalize={normalize!r}"
        )
    channels = info.image_shape[-1]
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"mean and std need one value per channel of {info.name} ({channels}). "
            f"Received: mean={mean}, std={std}"
        )
    if min(std) <= 0:
        raise ValueError(f"std must be > 0. Received: std={std}")
    return mean, std


def normalize_image(image, info, normalize="unit", dtype=tf.float32, *, mean=None, std=None):
    """uint8 [..., H, W, C] -> `dtype`: "unit" in [0, 1], "standard" (x - mean) / std, "none" 0..255.

    `mean`/`std` (per channel, of images in [0, 1]) override the dataset's statistics for
    "standard" (e.g. `ANODE_CIFAR10_MEAN`/`ANODE_CIFAR10_STD`).
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}. Received: {normalize!r}")
    mean, std = normalization_statistics(info, normalize, mean, std)
    image = tf.cast(image, dtype)
    if normalize == "none":
        return image
    image = image / tf.constant(255.0, dtype)
    if normalize == "standard":
        image = (image - tf.constant(mean, dtype)) / tf.constant(std, dtype)
    return image


def augment_cifar(image, seed):
    """Pad-4 random crop and random horizontal flip, stateless: the same `seed` gives the same output.

    Args:
      image: [H, W, C] tensor.
      seed: int32/int64 tensor of shape [2].
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    shape = tf.shape(image)
    padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    image = tf.image.stateless_random_crop(padded, size=shape, seed=seeds[0])
    return tf.image.stateless_random_flip_left_right(image, seed=seeds[1])


def _contiguous_worker_share(dataset, batch_size, input_context, *, drop_remainder):
    """This worker's contiguous slice of every global batch, as single examples.

    `distribute_datasets_from_function` deals a worker's per-replica batches to its local
    replicas in order, so global replica r = worker * local + l gets the examples
    [r * b, (r + 1) * b) of each global batch (b = per-replica batch): the same layout as one
    input pipeline split by `MirroredStrategy`. Position-dependent training (which examples of a
    batch robust training attacks) then sees one layout under every strategy; `shard` by
    element would interleave the workers' examples instead.
    """
    workers = input_context.num_input_pipelines
    if batch_size % workers:
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {workers} input pipelines."
        )
    share = batch_size // workers
    start = input_context.input_pipeline_id * share
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(
        lambda index, example: tf.nest.map_structure(
            lambda t: t[start : start + share], (index, example)
        ),
        deterministic=True,
    )
    return dataset.unbatch()


def build_dataset(
    name,
    split,
    *,
    batch_size,
    data_dir=None,
    input_context=None,
    seed=0,
    shuffle=None,
    repeat=False,
    augment=None,
    drop_remainder=False,
    validation_fraction=0.1,
    normalize="unit",
    dtype=tf.float32,
    limit=None,
    shuffle_buffer=10_000,
    data_dir_flag="data_dir",
    mean=None,
    std=None,
):
    """A batched, prefetched dataset of `(image, label)`.

    Args:
      name, split, data_dir, validation_fraction, limit: as in `load_arrays`.
      batch_size: GLOBAL batch size; with an `input_context` each replica gets its share.
      input_context: `tf.distribute.InputContext`; shards by input pipeline when there are several.
      seed: seed of shuffling and augmentation (same seed, same stream, epoch after epoch).
      shuffle: shuffle examples (default: True for "train").
      repeat: repeat forever (epochs reshuffled deterministically).
      augment: CIFAR pad-4 crop + flip (default: True for "train" of cifar10/cifar100).
      drop_remainder: drop the last short batch.
      normalize: "unit" ([0, 1]), "standard" (dataset mean/std) or "none" (0..255).
      mean, std: optional per-channel statistics (of images in [0, 1]) replacing the dataset's
        for "standard", e.g. ANODE's CIFAR-10 constants `ANODE_CIFAR10_MEAN`/`ANODE_CIFAR10_STD`.
      dtype: image dtype (tf.float32 or tf.float64).
      shuffle_buffer: shuffle buffer size (a full shuffle when >= the split size).
      data_dir_flag: as in `load_arrays`.

    Returns:
      `tf.data.Dataset` of (image `dtype` [B, H, W, C], label int32 [B]).

    Raises:
      ValueError: also when `batch_size` exceeds the split with `repeat` or `drop_remainder`
        (a batch would repeat examples, or there would be no batch at all).
    """
    info = dataset_info(name)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}. Received: {normalize!r}")
    normalization_statistics(info, normalize, mean, std)  # bad mean/std: error before loading
    images, labels = load_arrays(
        name,
        split,
        data_dir,
        validation_fraction=validation_fraction,
        limit=limit,
        data_dir_flag=data_dir_flag,
    )
    if len(labels) == 0:
        raise ValueError(
            f"{name} {split} is empty (limit={limit}, validation_fraction={validation_fraction})."
        )
    if batch_size > len(labels) and (repeat or drop_remainder):
        raise ValueError(
            f"batch_size={batch_size} exceeds the {len(labels)} examples of {name} {split} "
            f"(limit={limit}): a batch would repeat examples"
            f"{'' if repeat else ' (or, without repeat, no full batch exists)'}."
        )
    shuffle = split == "train" if shuffle is None else shuffle
    augment = (split == "train" and name.startswith("cifar")) if augment is None else augment
    per_replica_batch = batch_size
    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    # Shuffle and number the examples before sharding: every worker draws the same seeded order,
    # so the union of the workers' batches at a step is the single-process global batch, and
    # augmentation seeds (from the global position) do not depend on the number of workers.
    if shuffle:
        dataset = dataset.shuffle(
            min(shuffle_buffer, len(labels)), seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.enumerate()
    if input_context is not None:
        per_replica_batch = input_context.get_per_replica_batch_size(batch_size)
        if input_context.num_input_pipelines > 1:
            dataset = _contiguous_worker_share(
                dataset, batch_size, input_context, drop_remainder=drop_remainder
            )

    def prepare(index, example):
        image, label = example
        if augment:
            image = augment_cifar(image, tf.stack([tf.cast(seed, tf.int64), index]))
        return normalize_image(image, info, normalize, dtype, mean=mean, std=std), label

    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(per_replica_batch, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
