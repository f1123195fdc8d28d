"""tf.data builders for the driving datasets and the MADAN multi-domain stream."""

import tensorflow as tf

from input_pipelines.driving import decode, preprocessing, readers
from input_pipelines.driving import labels as labels_lib

_AUTOTUNE = tf.data.AUTOTUNE


def _check_options(batch_size, normalization, validate):
    if int(batch_size) <= 0:
        raise ValueError(f"batch_size must be positive. Received: batch_size={batch_size}")
    if normalization not in preprocessing.NORMALIZATIONS:
        raise ValueError(
            f"normalization must be one of {preprocessing.NORMALIZATIONS}. "
            f"Received: normalization={normalization!r}"
        )
    if validate not in readers.VALIDATION_MODES:
        raise ValueError(
            f"validate must be one of {readers.VALIDATION_MODES}. Received: validate={validate!r}"
        )


def build_dataset(
    name,
    split,
    *,
    data_dir,
    batch_size,
    crop_size=None,
    resize_shorter=None,
    flip=False,
    normalization="segmenter",
    input_context=None,
    seed=0,
    shuffle=None,
    repeat=False,
    deterministic=None,
    cache=False,
    drop_remainder=False,
    class_subset=None,
    validate="header",
    shuffle_buffer=None,
    resize_method="bilinear",
    drop_mismatched=False,
):
    """Builds a batched, prefetched dataset of (image, train-id label) pairs.

    Per example: decode -> remap to train ids -> [resize shorter side] -> [cache] ->
    [shuffle] -> [repeat] -> [random crop] -> [random flip] -> normalise -> batch.
    Without `crop_size`, batches are padded to the largest image (image 0, label 255),
    so full-resolution evaluation batches of mixed sizes work and padding is ignored.

    Args:
      name: "gta5", "synthia", "cityscapes" or "bdd100k".
      split: a split of that dataset (see `readers`).
      data_dir: dataset root.
      batch_size: GLOBAL batch size; with `input_context` each pipeline yields
        `input_context.get_per_replica_batch_size(batch_size)` examples per batch.
      crop_size: None or int / (height, width) random crop (padded with ignore if larger).
      resize_shorter: None or the shorter-side length to resize to first.
      flip: random horizontal flip.
      normalization: "segmenter" (ImageNet mean/std), "generator" ([-1, 1]) or None
        (float32 in [0, 255]).
      input_context: optional `tf.distribute.InputContext`; files are sharded by it.
      seed: seed of shuffling and of the per-example stateless crop/flip seeds.
      shuffle: shuffle examples; None means True for the "train" and "all" splits.
      repeat: repeat forever.
      deterministic: keep element order fixed under parallel decoding. None (default)
        means True: exact resume and equal results on any number of workers need it.
        Pass False for a little more throughput when neither matters.
      cache: cache decoded (and resized) examples in memory.
      drop_remainder: drop the last partial batch.
      class_subset: None (19 classes) or "16" (terrain, truck, train -> 255).
      validate: "header" (pairing, readability, formats and sizes checked from file
        headers before any step), "full" (also decode everything and check label ids)
        or "none".
      shuffle_buffer: shuffle buffer size; default all files (or up to 256 cached
        examples).
      resize_method: image interpolation for `resize_shorter`.
      drop_mismatched: drop (with a logged warning naming them) image/label pairs of
        different sizes instead of raising; needs validation "header" or "full".

    Returns:
      `tf.data.Dataset` of (image float32 [B, H, W, 3], label int32 [B, H, W]).

    Raises:
      ValueError / FileNotFoundError: bad options or bad files, naming them.
    """
    _check_options(batch_size, normalization, validate)
    if class_subset is not None:
        labels_lib.subset_table(class_subset)  # raises ValueError on an unknown subset
    if crop_size is not None:
        crop_size = preprocessing.parse_size(crop_size, "crop_size")
    if resize_shorter is not None and int(resize_shorter) <= 0:
        raise ValueError(
            f"resize_shorter must be positive. Received: resize_shorter={resize_shorter}"
        )
    examples = readers.list_examples(name, split, data_dir)
    if validate == "header":
        examples = readers.validate_headers(examples, drop_mismatched=drop_mismatched)
    elif validate == "full":
        examples = readers.validate_full(examples, drop_mismatched=drop_mismatched)
    if shuffle is None:
        shuffle = split in ("train", "all")
    if deterministic is None:
        # Deterministic order by default: exact resume (tf_runtime skips consumed batches) and
        # equal results on any number of workers depend on it.
        deterministic = True

    per_pipeline_batch = int(batch_size)
    ds = tf.data.Dataset.from_tensor_slices(
        (list(examples.image_paths), list(examples.label_paths))
    )
    num_pipelines = 1
    if input_context is not None:
        per_pipeline_batch = input_context.get_per_replica_batch_size(int(batch_size))
        num_pipelines = input_context.num_input_pipelines
        if num_pipelines > len(examples):
            raise ValueError(
                f"{name} {split} has {len(examples)} examples, fewer than the "
                f"{num_pipelines} input pipelines"
            )

    def load(image_path, label_path):
        image, label = decode.decode_example(image_path, label_path, dataset=name)
        if resize_shorter is not None:
            image, label = preprocessing.resize_shorter(image, label, resize_shorter, resize_method)
        return image, preprocessing.restrict_classes(label, class_subset)

    def augment(index, image, label):
        example_seed = tf.stack([tf.cast(seed, tf.int64), index])
        if crop_size is not None:
            crop_seed = tf.random.experimental.stateless_fold_in(example_seed, 0)
            image, label = preprocessing.random_crop(image, label, crop_size, crop_seed)
        if flip:
            flip_seed = tf.random.experimental.stateless_fold_in(example_seed, 1)
            image, label = preprocessing.random_flip(image, label, flip_seed)
        return preprocessing.normalize(image, normalization), label

    if cache:
        ds = ds.map(load, num_parallel_calls=_AUTOTUNE, deterministic=True).cache()
        buffer = shuffle_buffer or min(len(examples), 256)
    else:
        buffer = shuffle_buffer or len(examples)
    if shuffle:
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.enumerate()
    if num_pipelines > 1:
        # Shard after the seeded shuffle and the numbering: every worker draws the same order
        # (only file names so far, nothing decoded), so the workers' batches at a step together
        # are the single-process global batch, with the same crops and flips.
        ds = ds.shard(num_pipelines, input_context.input_pipeline_id)
    if cache:
        ds = ds.map(lambda i, ex: augment(i, *ex), num_parallel_calls=_AUTOTUNE)
    else:
        ds = ds.map(lambda i, ex: augment(i, *load(*ex)), num_parallel_calls=_AUTOTUNE)
    if crop_size is not None:
        ds = ds.batch(per_pipeline_batch, drop_remainder=drop_remainder)
    else:
        padding = (tf.constant(0.0, tf.float32), tf.constant(255, tf.int32))
        ds = ds.padded_batch(
            per_pipeline_batch, padding_values=padding, drop_remainder=drop_remainder
        )
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return ds.with_options(options).prefetch(_AUTOTUNE)


def build_multi_domain_dataset(
    sources, target, split, *, batch_size, repeat=True, seed=0, **options
):
    """Zips one batch of each source and one of the target per step (MADAN training).

    Args:
      sources: list of (name, data_dir) or (name, data_dir, split). A source without
        an explicit split uses "all" when its dataset has that split (GTA5, SYNTHIA:
        the paper trains on every source image), else `split`.
      target: (name, data_dir); always uses `split` (the adaptation pool is "train").
      split: the target split.
      batch_size: global batch size of EACH domain.
      repeat: repeat every domain forever (default). With False the stream stops at
        the shortest domain.
      seed: base seed; domain k gets its own derived seed.
      **options: forwarded to `build_dataset` (crop_size, normalization, ...).

    Returns:
      `tf.data.Dataset` of {"sources": ((image, label), ...) one per source,
      "target": (image, label)}; shapes as in `build_dataset`.
    """
    if not sources:
        raise ValueError(
            "build_multi_domain_dataset needs at least one source. Received: sources=[]"
        )
    source_datasets = []
    for index, entry in enumerate(sources):
        if len(entry) not in (2, 3):
            raise ValueError(
                "each source must be (name, data_dir) or (name, data_dir, split). "
                f"Received: {entry!r}"
            )
        name, data_dir = entry[0], entry[1]
        if len(entry) == 3:
            source_split = entry[2]
        else:
            source_split = "all" if "all" in readers.get_spec(name).splits else split
        source_datasets.append(
            build_dataset(
                name,
                source_split,
                data_dir=data_dir,
                batch_size=batch_size,
                repeat=repeat,
                seed=seed + 7919 * (index + 1),
                **options,
            )
        )
    if len(target) != 2:
        raise ValueError(f"target must be (name, data_dir). Received: target={target!r}")
    target_ds = build_dataset(
        target[0],
        split,
        data_dir=target[1],
        batch_size=batch_size,
        repeat=repeat,
        seed=seed,
        **options,
    )
    zipped = tf.data.Dataset.zip((tuple(source_datasets), target_ds))
    return zipped.map(lambda s, t: {"sources": s, "target": t}).prefetch(_AUTOTUNE)
