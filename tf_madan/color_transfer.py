"""Colour-transfer baseline: source images recoloured to the target's statistics, no learning.

Reference: Reinhard, Ashikhmin, Gooch and Shirley, "Color Transfer between Images", IEEE
CG&A 2001: per channel, shift and scale every pixel so the image's mean and standard
deviation become the target's, in a decorrelated colour space. Reinhard et al. use their
log-LMS "l-alpha-beta" space; we use CIE L*a*b* (D65, sRGB gamma), the common modern
choice (e.g. OpenCV-based implementations), which is also roughly decorrelated and has no
log singularity at black pixels.

Target statistics are the mean over the target TRAIN pool (`config.data.target_split`)
of each image's per-channel L*a*b* mean and standard deviation. Every source image is
matched on its own statistics (per-image transfer), converted back to sRGB, clipped to
[0, 1] and written in exactly `data.write_adapted_images`' folder format
(`images/NNNNNN.png`, `labels/NNNNNN.png`, a `COMPLETE` marker with the count, written
atomically), so `data.adapted_multi_domain_fn` trains F on it like on translated images.
"""

import collections
import os

import numpy as np
from PIL import Image

from input_pipelines import driving
from tf_madan import data
from tf_madan.normalization import generator_to_uint8
from tf_runtime import files as rt_files

# sRGB (D65) <-> CIE XYZ, IEC 61966-2-1.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = _RGB_TO_XYZ.sum(axis=1)  # D65 white point of the matrix (Y = 1)
_EPSILON = 216.0 / 24389.0
_KAPPA = 24389.0 / 27.0

TargetStatistics = collections.namedtuple("TargetStatistics", ["mean", "std", "num_images"])


def rgb_to_lab(rgb):
    """sRGB in [0, 1], float [..., 3] -> CIE L*a*b* float64 [..., 3] (L in [0, 100])."""
    rgb = np.asarray(rgb, np.float64)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _EPSILON, np.cbrt(xyz), (_KAPPA * xyz + 16.0) / 116.0)
    return np.stack(
        [
            116.0 * f[..., 1] - 16.0,
            500.0 * (f[..., 0] - f[..., 1]),
            200.0 * (f[..., 1] - f[..., 2]),
        ],
        axis=-1,
    )


def lab_to_rgb(lab):
    """CIE L*a*b* float [..., 3] -> sRGB float64 [..., 3], NOT clipped (may leave [0, 1])."""
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f**3 > _EPSILON, f**3, (116.0 * f - 16.0) / _KAPPA)
    linear = (xyz * _WHITE) @ _XYZ_TO_RGB.T
    linear = np.maximum(linear, 0.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def image_statistics(lab):
    """Per-channel mean and (population) standard deviation of an L*a*b* image [H, W, 3]."""
    pixels = np.asarray(lab, np.float64).reshape(-1, 3)
    return pixels.mean(axis=0), pixels.std(axis=0)


def match_statistics(lab, target_mean, target_std):
    """Reinhard's per-channel transfer: (x - mean) * target_std / std + target_mean.

    Args:
      lab: float [H, W, 3] image in the transfer space.
      target_mean, target_std: float [3].

    Returns:
      float64 [H, W, 3] with exactly the target mean and std per channel (a flat
      channel, std 0, keeps its flatness and takes the target mean).
    """
    mean, std = image_statistics(lab)
    scale = np.asarray(target_std, np.float64) / np.where(std > 0, std, 1.0)
    scale = np.where(std > 0, scale, 0.0)
    return (np.asarray(lab, np.float64) - mean) * scale + np.asarray(target_mean, np.float64)


def transfer_image(rgb_uint8, target_stats):
    """uint8 sRGB [H, W, 3] -> uint8 sRGB [H, W, 3] with the target's L*a*b* statistics."""
    lab = rgb_to_lab(np.asarray(rgb_uint8, np.float64) / 255.0)
    rgb = lab_to_rgb(match_statistics(lab, target_stats.mean, target_stats.std))
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def _uint8_batches(dataset):
    # Generator-normalised batches back to the exact uint8 pixels (x / 127.5 - 1 round-trips).
    for images, labels in dataset:
        yield generator_to_uint8(images).numpy(), labels.numpy()


def target_statistics(config, *, split=None, max_images=None, batch_size=8):
    """Mean over the target train pool of the per-image L*a*b* mean and std.

    Args:
      config: the MADAN config (`data.root`, `data.target`, `data.target_split`,
        `data.translate_resize_shorter`: the resolution sources are translated at).
      split: target split (default `config.data.target_split`, the train pool; never val).
      max_images: use only the first images (None = all).

    Returns:
      TargetStatistics(mean float64 [3], std float64 [3], num_images).

    Raises:
      ValueError: when the split holds no image.
    """
    split = split or config.data.target_split
    dataset = driving.build_dataset(
        config.data.target,
        split,
        data_dir=data.domain_dir(config, config.data.target),
        batch_size=batch_size,
        resize_shorter=config.data.translate_resize_shorter or None,
        normalization="generator",
        shuffle=False,
        deterministic=True,
    )
    means, stds = [], []
    for images, _ in _uint8_batches(dataset):
        for image in images:
            if max_images is not None and len(means) >= max_images:
                break
            mean, std = image_statistics(rgb_to_lab(image / 255.0))
            means.append(mean)
            stds.append(std)
    if not means:
        raise ValueError(
            f"No {config.data.target} {split} images for the colour-transfer statistics in "
            f"{data.domain_dir(config, config.data.target)}."
        )
    return TargetStatistics(np.mean(means, axis=0), np.mean(stds, axis=0), len(means))


def write_color_transferred_images(
    config, source_name, out_dir, target_stats=None, *, producer=None
):
    """Writes every image of `source_name`, colour-transferred, with its label.

    Same images, order, resolution (`data.source_dataset`) and folder format as
    `data.write_adapted_images`; a folder whose COMPLETE marker names the same `producer` is
    reused, one written by another producer or a partial one (killed run) is rewritten.

    Args:
      config: the MADAN config.
      source_name: a source dataset name (e.g. "gta5").
      out_dir: output folder (images/, labels/, COMPLETE).
      target_stats: `TargetStatistics`; None computes `target_statistics(config)`.
      producer: JSON-able identity of the writer, recorded in COMPLETE.

    Returns:
      Number of written examples.

    Raises:
      ValueError: when the source is empty.
    """
    if data.marker_matches(out_dir, producer):
        return rt_files.read_json(os.path.join(out_dir, data.COMPLETE))["count"]
    if target_stats is None:
        target_stats = target_statistics(config)
    dataset = data.source_dataset(config, source_name, batch_size=8, normalization="generator")
    count = 0
    with rt_files.atomic_directory(out_dir) as partial:
        os.makedirs(os.path.join(partial, "images"))
        os.makedirs(os.path.join(partial, "labels"))
        for images, labels in _uint8_batches(dataset):
            for image, label in zip(images, labels):
                name = f"{count:06d}.png"
                Image.fromarray(transfer_image(image, target_stats)).save(
                    os.path.join(partial, "images", name)
                )
                Image.fromarray(label.astype(np.uint8)).save(os.path.join(partial, "labels", name))
                count += 1
        if count == 0:
            raise ValueError(f"No {source_name} images to colour-transfer into {out_dir}.")
        rt_files.write_marker(
            os.path.join(partial, data.COMPLETE),
            {
                "count": count,
                "target_mean": [float(v) for v in target_stats.mean],
                "target_std": [float(v) for v in target_stats.std],
                "producer": producer,
            },
        )
    return count
