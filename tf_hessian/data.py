"""Classification data for the Hessian study, with pixel-unit attack budgets.

Wraps ``input_pipelines.classification``; adds the valid input range and the
conversion of an L-inf budget given in [0, 1] pixel units into model-input
units (divided by the per-channel std under ``normalize="standard"``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from input_pipelines import classification


def input_range(dataset: str, normalize: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (min, max) of model inputs, float32 [C] each, for pixels in [0, 1]."""
    info = classification.dataset_info(dataset)
    channels = info.image_shape[-1]
    if normalize == "unit":
        return np.zeros(channels, np.float32), np.ones(channels, np.float32)
    if normalize == "standard":
        mean, std = np.array(info.mean, np.float32), np.array(info.std, np.float32)
        return -mean / std, (1.0 - mean) / std
    if normalize == "none":
        return np.zeros(channels, np.float32), np.full(channels, 255.0, np.float32)
    raise ValueError(
        f"normalize must be one of {classification.NORMALIZATIONS}. Received: {normalize!r}."
    )


def pixel_epsilon(epsilon: float, dataset: str, normalize: str) -> np.ndarray:
    """An L-inf radius in [0, 1] pixel units expressed in input units, float32 [C]."""
    low, high = input_range(dataset, normalize)
    return np.float32(epsilon) * (high - low)


def attack_kwargs(dataset: str, normalize: str, clip: str = "range") -> dict:
    """``clip``/``clip_min``/``clip_max`` keyword arguments for ``adversarial.fgsm``/``pgd``."""
    low, high = input_range(dataset, normalize)
    return {"clip": clip, "clip_min": low, "clip_max": high}


def build(
    config,
    split: str,
    *,
    batch_size: int,
    input_context=None,
    repeat=False,
    shuffle=None,
    limit=None,
    drop_remainder=False,
    dtype=tf.float32,
) -> tf.data.Dataset:
    """``classification.build_dataset`` with the run's data settings (``config.data``)."""
    data = config.data
    return classification.build_dataset(
        data.name,
        split,
        batch_size=batch_size,
        data_dir=data.data_dir or None,
        input_context=input_context,
        seed=config.seed,
        shuffle=shuffle,
        repeat=repeat,
        augment=data.augment,
        validation_fraction=data.validation_fraction,
        normalize=data.normalize,
        dtype=dtype,
        limit=limit,
        drop_remainder=drop_remainder,
    )


def num_examples(config, split: str, limit=None) -> int:
    """Number of examples of a split (after ``limit``)."""
    data = config.data
    _, labels = classification.load_arrays(
        data.name,
        split,
        data.data_dir or None,
        validation_fraction=data.validation_fraction,
        limit=limit,
    )
    return len(labels)


def fixed_batch(
    config, split: str, size: int, dtype=tf.float32, seed: int = 0
) -> tuple[tf.Tensor, tf.Tensor]:
    """A fixed random subset of ``size`` examples of a split (unaugmented) as one batch.

    The subset depends only on ``seed``, so every model of a study is analysed
    on the same examples (the split files may be sorted by class, hence the draw).
    """
    data = config.data
    images, labels = classification.load_arrays(
        data.name, split, data.data_dir or None, validation_fraction=data.validation_fraction
    )
    if size > len(labels):
        raise ValueError(
            f"Asked for {size} examples of {data.name} {split}, which has {len(labels)}."
        )
    keep = np.sort(np.random.default_rng(seed).permutation(len(labels))[:size])
    info = classification.dataset_info(data.name)
    x = classification.normalize_image(tf.constant(images[keep]), info, data.normalize, dtype)
    return x, tf.constant(labels[keep].astype(np.int32))
