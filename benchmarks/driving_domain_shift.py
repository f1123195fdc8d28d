r"""Domain-shift report on the offline synthetic driving benchmark.

Generates the benchmark (GTA5-, SYNTHIA- and Cityscapes-format folders; `--benchmark`
v1 or madan_v2), trains a small segmenter on each source alone and on the two sources
together and evaluates it on held-out source images and on the target val split; trains
it again on sources colour-transferred to the target's channel statistics (a minimal
pixel-level adaptation); and trains it on the target train split (oracle). No adaptation
method is involved: these are the benchmark's sanity checks (domain gap, per-class
complementarity of the sources).
Prints one JSON object (per-class IoU per run); the README/docs tables come from it.

Usage:
  python benchmarks/driving_domain_shift.py --out_dir /tmp/driving_shift [--steps 800]
  python benchmarks/driving_domain_shift.py --benchmark=madan_v2 --out_dir /tmp/shift_v2 \
      --num_per_domain 120 --num_eval 40 --height 64 --width 128 --crop 64 --steps 600

Runtime: about 10 minutes on 2 CPU cores with the defaults; ~2 minutes for the madan_v2
command above.
"""

import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from input_pipelines import driving, synthetic_driving
from tf_madan.models.small_segmenter import build_small_segmenter

_OUT_DIR = flags.DEFINE_string("out_dir", "/tmp/driving_shift", "Where data is generated.")
_NUM = flags.DEFINE_integer("num_per_domain", 200, "Training examples per domain.")
_NUM_EVAL = flags.DEFINE_integer("num_eval", 60, "Held-out examples per domain.")
_HEIGHT = flags.DEFINE_integer("height", 128, "Image height.")
_WIDTH = flags.DEFINE_integer("width", 256, "Image width.")
_CROP = flags.DEFINE_integer("crop", 96, "Square training crop.")
_STEPS = flags.DEFINE_integer("steps", 800, "Training steps per model.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Training batch size (per domain).")
_FILTERS = flags.DEFINE_integer("filters", 16, "Segmenter base width.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed.")
_BENCHMARK = flags.DEFINE_enum(
    "benchmark", "v1", list(synthetic_driving.BENCHMARKS), "Which generator to use."
)
_RUNS = flags.DEFINE_list(
    "runs",
    "gta5_only,synthia_only,source_only,source_colour_transfer,oracle",
    "Which models to train (subset of the default).",
)
RUN_NAMES = ("gta5_only", "synthia_only", "source_only", "source_colour_transfer", "oracle")


def build_segmenter(filters):
    """The tf_madan small segmenter and its name (for the JSON report)."""
    return build_small_segmenter(driving.NUM_CLASSES, filters=filters), "tf_madan.small_segmenter"


def masked_cross_entropy(labels, logits):
    """Mean softmax cross-entropy over pixels whose label is not 255."""
    valid = tf.not_equal(labels, driving.IGNORE_LABEL)
    safe = tf.where(valid, labels, 0)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(safe, logits)
    weights = tf.cast(valid, tf.float32)
    return tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def train(model, batches, steps, learning_rate=2e-3):
    """Trains `model` on an iterator of (image, label) for `steps` steps."""
    optimizer = keras.optimizers.Adam(learning_rate)

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = masked_cross_entropy(labels, model(images, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    loss = None
    for _ in range(steps):
        images, labels = next(batches)
        loss = step(images, labels)
    return float(loss)


def evaluate(model, dataset):
    """Full-split streaming mIoU of `model` on `dataset` (full resolution)."""
    metric = driving.MeanIoU()
    predict = tf.function(lambda x: model(x, training=False))
    for images, labels in dataset:
        metric.update_state(labels, predict(images))
    return metric


def target_colour_statistics(data_dir):
    """Per-channel mean and std of the (unlabelled) target train images, segmenter scale."""
    ds = driving.build_dataset(
        "cityscapes", "train", data_dir=data_dir, batch_size=16, shuffle=False
    )
    total, total_sq, count = np.zeros(3), np.zeros(3), 0
    for images, _ in ds:
        pixels = images.numpy().reshape(-1, 3).astype(np.float64)
        total, total_sq, count = (
            total + pixels.sum(0),
            total_sq + (pixels**2).sum(0),
            count + len(pixels),
        )
    mean = total / count
    return mean.astype(np.float32), np.sqrt(total_sq / count - mean**2).astype(np.float32)


def colour_transfer(images, mean, std):
    """Reinhard-style transfer: per-image channel statistics -> target statistics.

    A pixel-level adaptation baseline (uses target images, never target labels).
    """
    image_mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
    image_std = tf.math.reduce_std(images, axis=[1, 2], keepdims=True)
    return (images - image_mean) / (image_std + 1e-6) * std + mean


def _train_stream(specs, crop, batch_size, seed, transfer=None):
    """Iterator of (image, label) batches; with several domains each batch mixes them.

    `transfer` = (mean, std) applies `colour_transfer` to every batch.
    """
    options = dict(crop_size=crop, flip=True, normalization="segmenter", repeat=True, cache=True)
    per_domain = batch_size // len(specs)
    datasets = tuple(
        driving.build_dataset(
            name, split, data_dir=data_dir, batch_size=per_domain, seed=seed + index, **options
        )
        for index, (name, data_dir, split) in enumerate(specs)
    )
    if len(datasets) == 1:
        ds = datasets[0]
    else:
        zipped = tf.data.Dataset.zip(datasets)
        ds = zipped.map(lambda *parts: tuple(tf.concat(p, 0) for p in zip(*parts)))
    if transfer is not None:
        ds = ds.map(lambda images, labels: (colour_transfer(images, *transfer), labels))
    return iter(ds)


def _scores(metric):
    return {
        "miou_19": round(100 * float(metric.result()), 2),
        "miou_16": round(100 * metric.miou_16(), 2),
        "miou_16_gt_present": round(100 * metric.miou_16_gt_present(), 2),
        "pixel_accuracy": round(100 * metric.pixel_accuracy(), 2),
        "per_class_iou": {
            name: (None if np.isnan(v) else round(100 * float(v), 2))
            for name, v in zip(driving.TRAIN_ID_NAMES, metric.per_class_iou())
        },
    }


def run(
    out_dir,
    *,
    num_per_domain,
    num_eval,
    height,
    width,
    crop,
    steps,
    batch_size,
    filters,
    seed,
    benchmark="v1",
    runs=RUN_NAMES,
):
    """Generates data; trains source-only, colour-transfer and oracle models; returns a report.

    The colour-transfer model (sources mapped to the target's channel statistics, an
    elementary pixel-level adaptation) shows how much of the gap is appearance.
    """
    started = time.time()
    train_paths = synthetic_driving.generate(
        os.path.join(out_dir, "train"),
        seed=seed,
        num_per_domain=num_per_domain,
        num_val=num_eval,
        height=height,
        width=width,
        benchmark=benchmark,
    )
    eval_paths = synthetic_driving.generate(
        os.path.join(out_dir, "heldout"),
        seed=seed + 1,
        num_per_domain=num_eval,
        num_val=1,
        height=height,
        width=width,
        domains=("gta5", "synthia"),
        benchmark=benchmark,
    )
    generation_seconds = time.time() - started

    def eval_set(name, data_dir, split):
        return driving.build_dataset(
            name, split, data_dir=data_dir, batch_size=8, cache=True, normalization="segmenter"
        )

    eval_sets = {
        "gta5_heldout": eval_set("gta5", eval_paths["gta5"], "all"),
        "synthia_heldout": eval_set("synthia", eval_paths["synthia"], "all"),
        "cityscapes_val": eval_set("cityscapes", train_paths["cityscapes"], "val"),
    }
    report = {
        "config": dict(
            num_per_domain=num_per_domain,
            num_eval=num_eval,
            height=height,
            width=width,
            crop=crop,
            steps=steps,
            batch_size=batch_size,
            filters=filters,
            seed=seed,
            benchmark=benchmark,
        ),
        "protocol": (
            "input_pipelines.driving.MeanIoU over the split's confusion matrix: "
            "miou_19 = result(), miou_16 = miou_16(), miou_16_gt_present = "
            "miou_16_gt_present() (definitions in input_pipelines/driving/metrics.py)"
        ),
        "generation_seconds": round(generation_seconds, 1),
    }
    sources = [("gta5", train_paths["gta5"], "all"), ("synthia", train_paths["synthia"], "all")]
    transfer = target_colour_statistics(train_paths["cityscapes"])
    unknown = set(runs) - set(RUN_NAMES)
    if unknown:
        raise ValueError(f"unknown runs {sorted(unknown)}; expected a subset of {RUN_NAMES}")
    all_runs = {
        "gta5_only": (sources[:1], None),
        "synthia_only": (sources[1:], None),
        "source_only": (sources, None),
        "source_colour_transfer": (sources, transfer),
        "oracle": ([("cityscapes", train_paths["cityscapes"], "train")], None),
    }
    for run_name in [name for name in RUN_NAMES if name in runs]:
        specs, run_transfer = all_runs[run_name]
        keras.utils.set_random_seed(seed)
        model, model_name = build_segmenter(filters)
        begin = time.time()
        stream = _train_stream(specs, crop, batch_size, seed, run_transfer)
        final_loss = train(model, stream, steps)
        results = {
            "model": model_name,
            "final_loss": round(final_loss, 4),
            "train_seconds": round(time.time() - begin, 1),
        }
        for eval_name, dataset in eval_sets.items():
            if run_name in ("source_colour_transfer", "oracle") and eval_name != "cityscapes_val":
                continue
            if run_name.endswith("_only") and run_name != "source_only":
                if eval_name != "cityscapes_val" and not eval_name.startswith(run_name[:-5]):
                    continue
            metric = evaluate(model, dataset)
            results[eval_name] = _scores(metric)
            print(f"== {run_name} on {eval_name}\n{metric.table()}", file=sys.stderr)
        report[run_name] = results
    if "source_only" in report:
        source = report["source_only"]
        source_miou = np.mean(
            [source["gta5_heldout"]["miou_19"], source["synthia_heldout"]["miou_19"]]
        )
        report["shift_points_miou_19"] = round(source_miou - source["cityscapes_val"]["miou_19"], 2)
        if "oracle" in report:
            report["oracle_gap_points_miou_19"] = round(
                report["oracle"]["cityscapes_val"]["miou_19"] - source["cityscapes_val"]["miou_19"],
                2,
            )
    if "gta5_only" in report and "synthia_only" in report:
        gta = report["gta5_only"]["cityscapes_val"]["per_class_iou"]
        syn = report["synthia_only"]["cityscapes_val"]["per_class_iou"]
        report["complementarity"] = {
            "gta5_better": sorted(n for n in gta if (gta[n] or 0) > (syn[n] or 0) + 1),
            "synthia_better": sorted(n for n in gta if (syn[n] or 0) > (gta[n] or 0) + 1),
        }
    report["total_seconds"] = round(time.time() - started, 1)
    return report


def main(argv):
    del argv
    report = run(
        _OUT_DIR.value,
        num_per_domain=_NUM.value,
        num_eval=_NUM_EVAL.value,
        height=_HEIGHT.value,
        width=_WIDTH.value,
        crop=_CROP.value,
        steps=_STEPS.value,
        batch_size=_BATCH.value,
        filters=_FILTERS.value,
        seed=_SEED.value,
        benchmark=_BENCHMARK.value,
        runs=tuple(_RUNS.value),
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(main)
