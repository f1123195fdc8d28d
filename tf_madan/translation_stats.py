"""Colour and texture of translated images against the target: what a translation changed.

The FCN-score says that a translation lost content; these two statistics say how. Both compare a
folder of translated source images (an image stage's `<source>/images` with the source labels in
`<source>/labels`) with the target's labelled training images:

- **colour gap per class**: the distance in RGB ([0, 1] per channel) between the class's mean
  colour in the translated images (pixels of that class by the source labels) and in the target
  images (by the target labels). A translation that repaints a class (road painted with the
  colour of vegetation) has a large gap on that class; a perfect translation has none.
- **high-frequency ratio**: the mean absolute 4-neighbour Laplacian of the translated images over
  the target's. 1 is the target's texture; well above 1 is noise or a checkerboard pattern that
  the target images do not have.

The untranslated sources are measured the same way (`raw (<source>)`), as the reference a
translation should improve on. Labels at or above `config.num_classes` (ignore) are skipped.
"""

import os

import numpy as np
import tensorflow as tf

from input_pipelines.driving import TRAIN_ID_NAMES, decode, readers
from tf_madan import data, report

RAW = "raw ({})"


class Accumulator:
    """Per-class colour sums and Laplacian sums over batches of images."""

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.colour_sum = np.zeros((num_classes, 3))
        self.count = np.zeros(num_classes)
        self.laplacian_sum = 0.0
        self.laplacian_count = 0

    def add(self, images, labels):
        """`images` [N, H, W, 3] in [0, 1] (or one image), `labels` [N, H, W] class ids."""
        images = np.asarray(images, np.float64).reshape((-1,) + np.shape(images)[-3:])
        labels = np.asarray(labels).reshape(images.shape[:-1])
        if images.shape[-1] != 3:
            raise ValueError(f"images must be RGB [N, H, W, 3]. Received shape {images.shape}")
        valid = (labels >= 0) & (labels < self.num_classes)
        ids = labels[valid].astype(np.int64)
        self.count += np.bincount(ids, minlength=self.num_classes)
        for channel in range(3):
            self.colour_sum[:, channel] += np.bincount(
                ids, weights=images[..., channel][valid], minlength=self.num_classes
            )
        if images.shape[1] >= 3 and images.shape[2] >= 3:
            centre = images[:, 1:-1, 1:-1]
            laplacian = (
                4 * centre
                - images[:, :-2, 1:-1]
                - images[:, 2:, 1:-1]
                - images[:, 1:-1, :-2]
                - images[:, 1:-1, 2:]
            )
            self.laplacian_sum += float(np.abs(laplacian).sum())
            self.laplacian_count += laplacian.size

    def mean_colours(self):
        """[num_classes, 3] mean colour per class (NaN for a class without pixels)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.colour_sum / self.count[:, None]

    def high_frequency(self):
        """Mean absolute 4-neighbour Laplacian (per pixel and channel)."""
        if not self.laplacian_count:
            raise ValueError("No image of at least 3x3 pixels was added.")
        return self.laplacian_sum / self.laplacian_count


def compare(stats, reference, class_names):
    """The colour gaps and high-frequency ratio of `stats` against `reference` (Accumulators).

    Returns:
      {"colour_gap": {class: gap} over classes with pixels in both, "mean_colour_gap" (over
       those classes), "pixel_colour_gap" (weighted by the translated images' pixels per class,
       so large classes such as road count most), "largest_gap_class", "largest_gap",
       "high_frequency_ratio"}.
    """
    gaps = np.linalg.norm(stats.mean_colours() - reference.mean_colours(), axis=1)
    present = {class_names[c]: float(gaps[c]) for c in range(len(gaps)) if np.isfinite(gaps[c])}
    if not present:
        raise ValueError("No class has pixels in both the translated and the target images.")
    largest = max(present, key=present.get)
    both = np.isfinite(gaps)
    return {
        "colour_gap": present,
        "mean_colour_gap": float(np.mean(list(present.values()))),
        "pixel_colour_gap": float(np.average(gaps[both], weights=stats.count[both])),
        "largest_gap_class": largest,
        "largest_gap": present[largest],
        "high_frequency_ratio": stats.high_frequency() / reference.high_frequency(),
    }


def folder_statistics(directory, num_classes):
    """An Accumulator over a translated-image folder (`images/`, `labels/` with train ids)."""
    acc = Accumulator(num_classes)
    for image_path, label_path in zip(*data.adapted_files(directory)):
        image = tf.io.decode_png(tf.io.read_file(image_path), channels=3).numpy() / 255.0
        label = tf.io.decode_png(tf.io.read_file(label_path), channels=1).numpy()[..., 0]
        acc.add(image, label)
    return acc


def dataset_statistics(config, name, split):
    """An Accumulator over the labelled images of dataset `name` (its reader's train ids)."""
    examples = readers.list_examples(name, split, data.domain_dir(config, name))
    acc = Accumulator(config.num_classes)
    paths = tf.data.Dataset.from_tensor_slices(
        (list(examples.image_paths), list(examples.label_paths))
    )
    for image, label in paths.map(lambda i, l: decode.decode_example(i, l, dataset=name)):
        acc.add(image.numpy() / 255.0, label.numpy())
    return acc


def run_statistics(config, workdir):
    """{"raw (<src>)" or image stage: {source: `compare` result}} for one seed's run folder.

    Every finished image stage of the config's stage table, and the untranslated sources, each
    against the target's labelled training split (`config.data.target_split`).
    """
    names = list(TRAIN_ID_NAMES[: config.num_classes])
    target = dataset_statistics(config, config.data.target, config.data.target_split)
    out = {}
    for source in config.data.sources:
        raw = dataset_statistics(config, source, data._source_split(source))
        out[RAW.format(source)] = {source: compare(raw, target, names)}
    for folder, dirs in report.image_stage_dirs(config, workdir):
        out[folder] = {
            os.path.basename(d): compare(folder_statistics(d, config.num_classes), target, names)
            for d in dirs
        }
    return out
