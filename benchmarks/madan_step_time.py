r"""Seconds per DAIG and ADA training step of MADAN on CPU, with and without jit_compile.

Full-size networks by default: CycleGAN ResNet-9-blocks generators (ngf 64), 70x70
PatchGANs, two sources, batch 1 per domain at 256x256; ADA adds DSC (DRN-26 as F_i and
F_A, the official code's DSC network), SAD and CCD. Prints one JSON object.

Usage:
  python benchmarks/madan_step_time.py [--size 256 --steps 3 --jit both --variants daig,ada]

Runtime: a few minutes on 2 CPU cores (XLA compilation of the ADA step takes the longest).
"""

import json
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from tf_madan import builders
from tf_madan.configs import default

_SIZE = flags.DEFINE_integer("size", 256, "Square image size.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps (after one warm-up step).")
_JIT = flags.DEFINE_enum("jit", "both", ["both", "on", "off"], "jit_compile settings to time.")
_VARIANTS = flags.DEFINE_list("variants", ["daig", "ada"], "Stages to time.")
_FILTERS = flags.DEFINE_integer("filters", 64, "Generator ngf (64 = paper).")
_BLOCKS = flags.DEFINE_integer("blocks", 9, "Generator residual blocks (9 = paper).")


def make_model(variant, size):
    config = default.get_config()
    config.generator.update(dict(filters=_FILTERS.value, num_blocks=_BLOCKS.value))
    config.data.gan_crop_size = size
    config.gan.mode = "lsgan"
    config.segmenter.name = "drn26"
    keras.utils.set_random_seed(0)
    segs = None
    adapted = None
    if variant == "ada":
        segs = [builders.build_segmenter(config, f"dsc_source_{i}") for i in range(2)]
        adapted = builders.build_segmenter(config, "dsc_adapted")
    config.sad.start_epoch = config.ccd.start_epoch = 0
    return builders.build_madan_gan(
        config, num_sources=2, variant=variant, source_segmenters=segs, adapted_segmenter=adapted
    )


def time_variant(variant, jit, size, steps):
    model = make_model(variant, size)
    rng = np.random.default_rng(0)

    def domain():
        image = tf.constant(rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32))
        return image, tf.zeros((1, size, size), tf.int32)

    batch = {"sources": (domain(), domain()), "target": domain()}
    step = tf.function(model.train_step, jit_compile=jit)
    start = time.perf_counter()
    logs = step(batch)
    float(logs["generator_total"])
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        logs = step(batch)
    float(logs["generator_total"])
    per_step = (time.perf_counter() - start) / steps
    return {"first_step_s": round(first, 2), "seconds_per_step": round(per_step, 3)}


def main(argv):
    del argv
    jits = {"both": [False, True], "on": [True], "off": [False]}[_JIT.value]
    results = {
        "size": _SIZE.value,
        "batch_per_domain": 1,
        "num_sources": 2,
        "generator": f"resnet_{_BLOCKS.value}blocks ngf{_FILTERS.value}",
        "threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
    }
    for variant in _VARIANTS.value:
        for jit in jits:
            key = f"{variant}_{'jit' if jit else 'nojit'}"
            try:
                results[key] = time_variant(variant, jit, _SIZE.value, _STEPS.value)
            except Exception as error:  # noqa: BLE001 - report XLA failures instead of aborting
                results[key] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
            print(json.dumps({key: results[key]}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    app.run(main)
