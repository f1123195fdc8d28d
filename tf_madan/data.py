"""Dataset functions for the MADAN stages (driving readers + adapted-image folders).

Adapted datasets are written by `write_adapted_images` as
`<dir>/images/NNNNNN.png` (uint8 RGB) and `<dir>/labels/NNNNNN.png` (uint8
train IDs, 255 = ignore) plus a `COMPLETE` marker holding the count.
"""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from input_pipelines import driving
from tf_madan.normalization import IMAGENET_MEAN, IMAGENET_STD, generator_to_uint8
from tf_runtime import files as rt_files

COMPLETE = "COMPLETE"


def domain_dir(config, name):
    """`config.data.root/<name>`, checked to exist."""
    path = os.path.join(config.data.root, name)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"Dataset folder {path} not found (config.data.root={config.data.root!r}, name={name!r})."
        )
    return path


def _size(value):
    return value or None


def _source_split(name):
    return "all" if "all" in driving.readers.get_spec(name).splits else "train"


def example_count(config, name, split=None):
    """Number of examples of domain `name` (`split`, default the source's training split)."""
    split = split or _source_split(name)
    return len(driving.readers.list_examples(name, split, domain_dir(config, name)))


def check_batch_size(config, names, batch_size, split=None):
    """Raises ValueError when a global batch is larger than a domain's example count.

    A larger batch would silently repeat examples inside one batch.
    """
    for name in names:
        count = example_count(config, name, split)
        if batch_size > count:
            raise ValueError(
                f"batch_size={batch_size} is larger than the {count} examples of {name} "
                f"({split or _source_split(name)} split in {domain_dir(config, name)})."
            )


def multi_domain_fn(
    config,
    *,
    normalization,
    batch_size,
    crop_size,
    resize_shorter,
    sources=None,
    merged=False,
):
    """dataset_fn(input_context) of {"sources": ((img, lbl),...), "target": (img, lbl)}.

    Args:
      sources: source names (default `config.data.sources`); a name equal to the target
        means its labelled `config.data.target_split` (the oracle's training data).
      merged: all `sources` as ONE domain (source-combined baselines): the single source
        entry alternates batches of each source round-robin (the official code's order).
    """
    names = list(sources if sources is not None else config.data.sources)
    for name in names:
        split = config.data.target_split if name == config.data.target else None
        check_batch_size(config, [name], batch_size, split)
    check_batch_size(config, [config.data.target], batch_size, config.data.target_split)

    def entry(name):
        if name == config.data.target:
            return (name, domain_dir(config, name), config.data.target_split)
        return (name, domain_dir(config, name))

    def merged_fn(input_context=None):
        options = dict(
            crop_size=_size(crop_size),
            resize_shorter=_size(resize_shorter),
            normalization=normalization,
            input_context=input_context,
            deterministic=True,
            cache=config.data.cache,
            drop_remainder=True,
            repeat=True,
        )
        streams = [
            driving.build_dataset(
                name,
                _source_split(name),
                data_dir=domain_dir(config, name),
                batch_size=batch_size,
                seed=config.seed + 7919 * (k + 1),
                **options,
            )
            for k, name in enumerate(names)
        ]
        order = tf.data.Dataset.range(len(streams)).repeat()
        source = tf.data.Dataset.choose_from_datasets(streams, order)
        target = driving.build_dataset(
            config.data.target,
            config.data.target_split,
            data_dir=domain_dir(config, config.data.target),
            batch_size=batch_size,
            seed=config.seed,
            **options,
        )
        zipped = tf.data.Dataset.zip((source, target))
        return zipped.map(lambda s, t: {"sources": (s,), "target": t}).prefetch(tf.data.AUTOTUNE)

    if merged:
        return merged_fn

    def dataset_fn(input_context=None):
        return driving.build_multi_domain_dataset(
            [entry(n) for n in names],
            (config.data.target, domain_dir(config, config.data.target)),
            config.data.target_split,
            batch_size=batch_size,
            crop_size=_size(crop_size),
            resize_shorter=_size(resize_shorter),
            normalization=normalization,
            input_context=input_context,
            seed=config.seed,
            deterministic=True,
            cache=config.data.cache,
            drop_remainder=True,
        )

    return dataset_fn


def eval_dataset(config, *, batch_size=None, split=None, normalization="segmenter"):
    """Target evaluation split (full split, no shuffle, no drop)."""
    return driving.build_dataset(
        config.data.target,
        split or config.data.eval_split,
        data_dir=domain_dir(config, config.data.target),
        batch_size=batch_size or config.eval.batch_size,
        resize_shorter=_size(config.data.eval_resize_shorter),
        normalization=normalization,
        shuffle=False,
        deterministic=True,
    )


def pixel_stage_fn(config, *, sources=None, merged=False):
    """The pixel stages' dataset_fn: [-1, 1] crops at `config.gan` batch and `config.data` sizes."""
    return multi_domain_fn(
        config,
        normalization="generator",
        batch_size=config.gan.batch_size,
        crop_size=config.data.gan_crop_size,
        resize_shorter=config.data.gan_resize_shorter,
        sources=sources,
        merged=merged,
    )


def source_dataset(config, name, *, batch_size, normalization="generator"):
    """Every image of source `name`, in order, at translation resolution."""
    return driving.build_dataset(
        name,
        _source_split(name),
        data_dir=domain_dir(config, name),
        batch_size=batch_size,
        resize_shorter=_size(config.data.translate_resize_shorter),
        normalization=normalization,
        shuffle=False,
        deterministic=True,
    )


def marker_matches(out_dir, producer):
    """True when `out_dir` holds a COMPLETE marker written by `producer` (any, if None)."""
    marker = os.path.join(out_dir, COMPLETE)
    if not os.path.exists(marker):
        return False
    stored = rt_files.read_json(marker)
    return producer is None or stored.get("producer") == rt_files._jsonable(producer)


def write_adapted_images(generator, dataset, out_dir, *, producer=None):
    """Translates a source dataset with G_{S->T} and writes images and labels.

    The folder is written under a temporary name and renamed once complete, so a
    folder with a COMPLETE marker is always whole; a partial one left by a kill is
    discarded and rewritten.

    Args:
      generator: G_{S->T}, [-1, 1] images -> [-1, 1] images of the same size.
      dataset: batches of (image [B, H, W, 3] in [-1, 1], label int [B, H, W]).
      out_dir: output folder (images/, labels/, COMPLETE).
      producer: JSON-able identity of what translates (stage name and generator weights
        digest), recorded in COMPLETE. A folder is reused only when its marker names the same
        producer; a folder written by another producer is rewritten.

    Returns:
      Number of examples in the folder.

    Raises:
      ValueError: when the translated images and their labels differ in size (names
        both sizes), or the dataset is empty.
    """
    if marker_matches(out_dir, producer):
        return rt_files.read_json(os.path.join(out_dir, COMPLETE))["count"]
    translate = tf.function(lambda x: generator_to_uint8(generator(x, training=False)))
    count = 0
    with rt_files.atomic_directory(out_dir) as partial:
        os.makedirs(os.path.join(partial, "images"))
        os.makedirs(os.path.join(partial, "labels"))
        for images, labels in dataset:
            adapted = translate(images).numpy()
            labels = labels.numpy()
            if adapted.shape[1:3] != labels.shape[1:3] or adapted.shape[1:3] != images.shape[1:3]:
                raise ValueError(
                    f"Generator {getattr(generator, 'name', generator)} returned images of size "
                    f"{tuple(adapted.shape[1:3])} for inputs of size {tuple(images.shape[1:3])} "
                    f"with labels of size {tuple(labels.shape[1:3])}; adapted images must match "
                    f"their labels (writing {out_dir})."
                )
            for image, label in zip(adapted, labels):
                Image.fromarray(image).save(os.path.join(partial, "images", f"{count:06d}.png"))
                Image.fromarray(label.astype(np.uint8)).save(
                    os.path.join(partial, "labels", f"{count:06d}.png")
                )
                count += 1
        if count == 0:
            raise ValueError(f"No source images to translate into {out_dir}.")
        rt_files.write_marker(
            os.path.join(partial, COMPLETE), {"count": count, "producer": producer}
        )
    return count


def adapted_files(directory):
    """([image paths], [label paths]) of a finished adapted-image folder, sorted by name.

    Raises FileNotFoundError naming the folder when its COMPLETE marker is missing.
    """
    if not os.path.exists(os.path.join(directory, COMPLETE)):
        raise FileNotFoundError(
            f"Adapted images in {directory} are missing or incomplete (no {COMPLETE} marker); "
            "run the translate stage first."
        )
    names = sorted(os.listdir(os.path.join(directory, "images")))
    return (
        [os.path.join(directory, "images", n) for n in names],
        [os.path.join(directory, "labels", n) for n in names],
    )


def adapted_dataset(directory, *, batch_size, crop_size, seed, input_context=None):
    """Repeating, shuffled, cropped batches of adapted images (segmenter-normalised)."""
    images, labels = adapted_files(directory)
    if batch_size > len(images):
        raise ValueError(
            f"batch_size={batch_size} is larger than the {len(images)} adapted "
            f"images in {directory}."
        )
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    num_pipelines, pipeline_id = 1, 0
    if input_context is not None:
        num_pipelines, pipeline_id = (
            input_context.num_input_pipelines,
            input_context.input_pipeline_id,
        )
        batch_size = input_context.get_per_replica_batch_size(batch_size)

    def load(image_path, label_path):
        image = tf.io.decode_png(tf.io.read_file(image_path), channels=3)
        label = tf.io.decode_png(tf.io.read_file(label_path), channels=1)
        return image, label

    def augment(index, example):
        image, label = example
        if crop_size:
            stacked = tf.concat([tf.cast(image, tf.int32), tf.cast(label, tf.int32)], axis=-1)
            stacked = tf.image.stateless_random_crop(
                stacked, [crop_size, crop_size, 4], seed=tf.stack([seed, tf.cast(index, tf.int32)])
            )
            image, label = stacked[..., :3], stacked[..., 3:]
        image = tf.cast(image, tf.float32) / 255.0
        image = (image - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)
        return image, tf.cast(label[..., 0], tf.int32)

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat()
    # Every worker caches the (small) adapted set and draws the same seeded order; sharding the
    # numbered stream makes the workers' batches together equal the single-process batch.
    ds = ds.enumerate().shard(num_pipelines, pipeline_id)
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True)


def _decode_pair(image_path, label_path):
    image = tf.io.decode_png(tf.io.read_file(image_path), channels=3)
    label = tf.io.decode_png(tf.io.read_file(label_path), channels=1)
    image = (tf.cast(image, tf.float32) / 255.0 - tf.constant(IMAGENET_MEAN)) / tf.constant(
        IMAGENET_STD
    )
    return image, tf.cast(label[..., 0], tf.int32)


def adapted_eval_dataset(directories, *, batch_size=8):
    """Every adapted image of `directories` once, in order, segmenter-normalised (FCN-score)."""
    images, labels = [], []
    for directory in directories:
        i, l = adapted_files(directory)
        images += i
        labels += l
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.map(_decode_pair, deterministic=True)
    # Sizes may differ between sources: batch per size by padding labels with ignore.
    return ds.padded_batch(batch_size, padding_values=(0.0, 255))


def adapted_multi_domain_fn(config, directories, *, batch_size, crop_size):
    """dataset_fn(input_context) pairing adapted sources with the target train pool."""

    def dataset_fn(input_context=None):
        sources = tuple(
            adapted_dataset(
                d,
                batch_size=batch_size,
                crop_size=crop_size,
                seed=config.seed + 7919 * (k + 1),
                input_context=input_context,
            )
            for k, d in enumerate(directories)
        )
        target = driving.build_dataset(
            config.data.target,
            config.data.target_split,
            data_dir=domain_dir(config, config.data.target),
            batch_size=batch_size,
            crop_size=_size(crop_size),
            resize_shorter=_size(config.data.seg_resize_shorter),
            normalization="segmenter",
            input_context=input_context,
            seed=config.seed,
            repeat=True,
            deterministic=True,
            cache=config.data.cache,
            drop_remainder=True,
        )
        zipped = tf.data.Dataset.zip((sources, target))
        return zipped.map(lambda s, t: {"sources": s, "target": t}).prefetch(tf.data.AUTOTUNE)

    return dataset_fn
