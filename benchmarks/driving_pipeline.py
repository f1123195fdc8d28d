r"""Throughput of the Cityscapes-format input pipeline at 512x1024 crops, vs a training step.

Measures (all on this machine's cores, 2 in the reference setup):
  1. pipeline alone: images/s of decode (2048x1024 PNG + labelIds) -> remap -> random
     512x1024 crop -> flip -> ImageNet normalisation -> batch, no caching;
  2. training step alone on one fixed in-memory batch (no input pipeline);
  3. training steps fed by the pipeline.
The pipeline "keeps ahead" when (1) is faster than (2). On a CPU-only machine the
pipeline and the step share the cores, so (3) is slower than (2) by about the decode
CPU share; "input_overhead_fraction" reports that measured slowdown.

Usage:
  python benchmarks/driving_pipeline.py [--data_dir ../shared/data/cityscapes]
      [--segmenter small|fcn8s] [--batch_size 2] [--num_batches 20]

Without --data_dir it uses ../shared/data/cityscapes (3 real full-resolution triples,
repeated) when present, else generated full-resolution synthetic Cityscapes-format data.
Prints one JSON object. Runtime: about 2 minutes with the small segmenter.
"""

import json
import os
import pathlib
import time

import keras
import tensorflow as tf
from absl import app, flags

from input_pipelines import driving, synthetic_driving

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Cityscapes-format root.")
_SPLIT = flags.DEFINE_string("split", "train", "Split.")
_CROP = flags.DEFINE_list("crop", ["512", "1024"], "Crop height,width.")
_BATCH = flags.DEFINE_integer("batch_size", 2, "Batch size.")
_NUM_BATCHES = flags.DEFINE_integer("num_batches", 20, "Timed pipeline batches.")
_SEGMENTER = flags.DEFINE_enum("segmenter", "small", ["small", "fcn8s"], "Training-step model.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 10, "Timed training steps.")


def _default_data_dir():
    shared = (
        pathlib.Path(
            os.environ.get(
                "SHARED_DATA_DIR", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
            )
        )
        / "cityscapes"
    )
    if shared.is_dir():
        return str(shared), "real Cityscapes train triples (shared sample, repeated)"
    out = "/tmp/driving_pipeline_benchmark"
    synthetic_driving.generate(
        out, seed=0, num_per_domain=6, num_val=1, height=1024, width=2048, domains=("cityscapes",)
    )
    return os.path.join(out, "cityscapes"), "synthetic Cityscapes-format 2048x1024"


def _images_per_second(iterator, num_batches, batch_size):
    next(iterator)  # warm-up: tracing, first file reads
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(iterator)
    _ = batch[0].numpy()
    return num_batches * batch_size / (time.perf_counter() - start)


def _build_model(name):
    if name == "fcn8s":
        from tf_madan.models.fcn8s import build_fcn8s

        return build_fcn8s(driving.NUM_CLASSES)
    from tf_madan.models.small_segmenter import build_small_segmenter

    return build_small_segmenter(driving.NUM_CLASSES)


def run(data_dir, description, *, split, crop, batch_size, num_batches, segmenter, train_steps):
    """Returns the benchmark report dict."""

    def make_dataset():
        return driving.build_dataset(
            "cityscapes",
            split,
            data_dir=data_dir,
            batch_size=batch_size,
            crop_size=crop,
            flip=True,
            normalization="segmenter",
            repeat=True,
            seed=0,
        )

    report = {
        "data": description,
        "data_dir": data_dir,
        "crop": list(crop),
        "batch_size": batch_size,
        "cpu_count": os.cpu_count(),
        "segmenter": segmenter,
    }
    report["pipeline_images_per_sec"] = round(
        _images_per_second(iter(make_dataset()), num_batches, batch_size), 2
    )

    model = _build_model(segmenter)
    optimizer = keras.optimizers.Adam(1e-4)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)

    @tf.function
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    fixed = next(iter(make_dataset()))
    train_step(*fixed)  # trace
    start = time.perf_counter()
    for _ in range(train_steps):
        loss = train_step(*fixed)
    float(loss)
    fixed_ips = train_steps * batch_size / (time.perf_counter() - start)

    iterator = iter(make_dataset())
    train_step(*next(iterator))
    start = time.perf_counter()
    for _ in range(train_steps):
        loss = train_step(*next(iterator))
    float(loss)
    fed_ips = train_steps * batch_size / (time.perf_counter() - start)
    report["train_step_images_per_sec_fixed_batch"] = round(fixed_ips, 3)
    report["train_step_images_per_sec_fed_by_pipeline"] = round(fed_ips, 3)
    report["pipeline_to_train_ratio"] = round(report["pipeline_images_per_sec"] / fixed_ips, 1)
    # The pipeline produces batches faster than the step consumes them.
    report["keeps_ahead"] = bool(report["pipeline_images_per_sec"] > fixed_ips)
    # On a CPU-only machine decode and step share the same cores, so feeding costs the
    # decode CPU time: expected slowdown ~ fixed_ips / pipeline_ips.
    report["input_overhead_fraction"] = round(1.0 - fed_ips / fixed_ips, 3)
    report["expected_overhead_when_sharing_cores"] = round(
        fixed_ips / (fixed_ips + report["pipeline_images_per_sec"]), 3
    )
    return report


def main(argv):
    del argv
    if _DATA_DIR.value:
        data_dir, description = _DATA_DIR.value, "user data"
    else:
        data_dir, description = _default_data_dir()
    crop = tuple(int(c) for c in _CROP.value)
    report = run(
        data_dir,
        description,
        split=_SPLIT.value,
        crop=crop,
        batch_size=_BATCH.value,
        num_batches=_NUM_BATCHES.value,
        segmenter=_SEGMENTER.value,
        train_steps=_TRAIN_STEPS.value,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(main)
