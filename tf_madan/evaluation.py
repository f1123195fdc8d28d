"""Evaluation on the target split: per-class IoU, 19/16-class mIoU, overlays, tables."""

import json
import os

import numpy as np
import tensorflow as tf

from input_pipelines import driving
from tf_madan import data
from tf_madan.normalization import IMAGENET_MEAN, IMAGENET_STD


def evaluate_segmenter(segmenter, dataset, *, num_classes=19, ignore_label=255):
    """Runs `segmenter` over a whole (finite) dataset and accumulates the confusion matrix.

    Args:
      segmenter: image [B, H, W, 3] -> logits [B, H, W, C] (H, W of the labels or smaller).
      dataset: finite batches of (segmenter-normalised image, label int [B, H, W]).
      num_classes: C.
      ignore_label: label without score.

    Returns:
      Dict: "miou_19", "miou_16" (percent), "pixel_accuracy", "per_class_iou"
      ({class: percent or None}), "num_images".
    """
    metric = driving.MeanIoU(num_classes=num_classes, ignore_label=ignore_label)

    @tf.function
    def predict(images):
        return segmenter(images, training=False)

    num_images = 0
    for images, labels in dataset:
        metric.update_state(labels, predict(images))
        num_images += int(labels.shape[0])
    if num_images == 0:
        raise ValueError("Evaluation dataset is empty.")
    iou = metric.per_class_iou()
    names = driving.TRAIN_ID_NAMES if num_classes == 19 else [str(i) for i in range(num_classes)]
    return {
        "miou_19": 100.0 * float(metric.result()),
        "miou_16": 100.0 * metric.miou_16() if num_classes == 19 else float("nan"),
        "pixel_accuracy": 100.0 * metric.pixel_accuracy(),
        "per_class_iou": {
            n: (None if np.isnan(v) else round(100.0 * float(v), 2)) for n, v in zip(names, iou)
        },
        "num_images": num_images,
    }


def evaluate_on_target(config, segmenter, *, split=None):
    """`evaluate_segmenter` on the config's target evaluation split (full split)."""
    return evaluate_segmenter(
        segmenter,
        data.eval_dataset(config, split=split),
        num_classes=config.num_classes,
        ignore_label=config.ignore_label,
    )


def overlay(images, logits, alpha=0.5):
    """Blends colourised argmax predictions over segmenter-normalised images.

    Args:
      images: float [B, H, W, 3], ImageNet-normalised.
      logits: float [B, H, W, C].

    Returns:
      float32 numpy [B, H, W, 3] in [0, 1].
    """
    rgb = np.asarray(images) * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)
    colours = driving.colorize(np.argmax(np.asarray(logits), -1)).astype(np.float32) / 255.0
    return np.clip((1 - alpha) * rgb + alpha * colours, 0.0, 1.0).astype(np.float32)


def markdown_table(rows):
    """Markdown table of {name: result dict} with mIoU-16, mIoU-19 and pixel accuracy."""
    lines = [
        "| method | mIoU-16 | mIoU-19 | pixel acc. |",
        "|---|---|---|---|",
    ]
    for name, result in rows.items():
        lines.append(
            f"| {name} | {result['miou_16']:.1f} | {result['miou_19']:.1f} | "
            f"{result['pixel_accuracy']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def per_class_table(rows):
    """Markdown table of per-class IoU (percent) for each method."""
    classes = list(next(iter(rows.values()))["per_class_iou"])
    lines = ["| method | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for name, result in rows.items():
        cells = [
            "-" if result["per_class_iou"][c] is None else f"{result['per_class_iou'][c]:.1f}"
            for c in classes
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(rows, workdir, prefix="results"):
    """Writes `<prefix>.json` and `<prefix>.md` into `workdir`; returns the two paths."""
    os.makedirs(workdir, exist_ok=True)
    json_path = os.path.join(workdir, f"{prefix}.json")
    md_path = os.path.join(workdir, f"{prefix}.md")
    with open(json_path, "w") as handle:
        json.dump(rows, handle, indent=2)
    with open(md_path, "w") as handle:
        handle.write(markdown_table(rows) + "\n" + per_class_table(rows))
    return json_path, md_path
