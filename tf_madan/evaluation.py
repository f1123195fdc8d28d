"""Evaluation on the target split: per-class IoU, 19/16-class mIoU, overlays, tables."""

import json
import os

import numpy as np
import tensorflow as tf

import tf_runtime
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
      `metric_results` (percent) plus "num_images".
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
    return {**metric_results(metric), "num_images": num_images}


def metric_results(metric):
    """Result dict (percent) of a filled `driving.MeanIoU`, the keys every table reads.

    Keys: "miou_16" (sum of the 16 protocol IoUs / 16), "miou_19" (sum of the C IoUs / C),
    "miou_16_gt_present" (mean over the FIXED set of 16-protocol classes with ground truth
    in the split, the second column for benchmarks lacking classes; NaN for C != 19),
    "gt_present_classes" (that set's names), "pixel_accuracy", "mean_class_accuracy",
    "fw_iou", "per_class_iou" ({class: percent, None if absent from truth and prediction}).
    """
    summary = metric.summary()  # percent
    is_19 = metric.num_classes == driving.NUM_CLASSES

    def percent(value):  # already percent; None (undefined) -> NaN
        return float(value) if value is not None else float("nan")

    return {
        "miou_16": percent(summary["miou_16"]) if is_19 else float("nan"),
        "miou_19": percent(summary["miou_19"]),
        "miou_16_gt_present": percent(summary["miou_16_gt_present"]) if is_19 else float("nan"),
        "gt_present_classes": summary["gt_present_classes"] if is_19 else [],
        "pixel_accuracy": percent(summary["pixel_accuracy"]),
        "mean_class_accuracy": percent(summary["mean_class_accuracy"]),
        "fw_iou": percent(summary["fw_iou"]),
        "per_class_iou": {
            n: (None if v is None else round(v, 2)) for n, v in summary["per_class_iou"].items()
        },
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


def write_summaries(stage_dir, step, segmenter, result, overlay_dataset):
    """TensorBoard `eval/` of a segmenter stage: mIoU-16/19, pixel accuracy and per-class IoU
    (percent) of `result`, and a segmentation overlay of the first `overlay_dataset` batch."""
    writers = tf_runtime.SummaryWriters(stage_dir)
    scalars = {
        k: result[k]
        for k in ("miou_16", "miou_19", "miou_16_gt_present", "pixel_accuracy")
        if not np.isnan(result[k])
    }
    scalars.update(
        {
            f"iou/{name}": value
            for name, value in result["per_class_iou"].items()
            if value is not None
        }
    )
    writers.scalars("eval", step, scalars)
    images, _ = next(iter(overlay_dataset))
    logits = segmenter(images, training=False)
    writers.images("eval", step, "segmentation_overlay", overlay(images, logits))
    writers.close()


def translation_grid(model, batch):
    """[3 * M * B, H, W, 3] in [0, 1]: rows of source, adapted and cycled images per source."""
    sources = [s[0] for s in batch["sources"]]
    out = model({"sources": sources, "target": batch["target"][0]}, training=False)
    rows = []
    for i, x in enumerate(sources):
        rows += [x, out["adapted"][i], out["cycled"][i]]
    return (tf.concat(rows, axis=0) + 1.0) * 0.5


def write_translation_grid(model, dataset_fn, stage_dir, step):
    """TensorBoard `train/source_adapted_cycled` image grid of a pixel stage."""
    batch = next(iter(dataset_fn(None)))
    writers = tf_runtime.SummaryWriters(stage_dir)
    writers.images("train", step, "source_adapted_cycled", translation_grid(model, batch), 24)
    writers.close()


def _cell(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.1f}"


def markdown_table(rows):
    """Markdown table of {name: result dict}: both mIoU-16 columns, mIoU-19, pixel accuracy.

    "mIoU-16" is the protocol's (sum of 16 IoUs) / 16; "mIoU-16, GT classes (n)" averages
    the fixed set of 16-protocol classes present in the split's ground truth (n of them).
    """
    counts = {len(r.get("gt_present_classes", [])) for r in rows.values()}
    count = f"n={counts.pop()}" if len(counts) == 1 else "n varies"
    lines = [
        f"| method | mIoU-16 | mIoU-16, GT classes ({count}) | mIoU-19 | pixel acc. |",
        "|---|---|---|---|---|",
    ]
    for name, result in rows.items():
        lines.append(
            f"| {name} | {_cell(result['miou_16'])} | "
            f"{_cell(result.get('miou_16_gt_present'))} | {_cell(result['miou_19'])} | "
            f"{_cell(result['pixel_accuracy'])} |"
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


def _write_atomic(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_results(rows, workdir, prefix="results"):
    """Writes `<prefix>.json` and `<prefix>.md` into `workdir` atomically; returns the paths."""
    os.makedirs(workdir, exist_ok=True)
    json_path = os.path.join(workdir, f"{prefix}.json")
    md_path = os.path.join(workdir, f"{prefix}.md")
    _write_atomic(json_path, json.dumps(rows, indent=2))
    _write_atomic(md_path, markdown_table(rows) + "\n" + per_class_table(rows))
    return json_path, md_path
