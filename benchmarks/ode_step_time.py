r"""Training-step time of baseline / ANODE / ANODEV2 classifiers.

Run:  python benchmarks/ode_step_time.py [--architecture resnet10 --width 16 --batch 32 --nt 2]

Compiled `train_step` (tf.function, SGD) on random 32x32x3 images; median of --repeats steps
after one warm-up step. ODE variants: Euler, checkpointed DTO. Prints JSON.
"""

import argparse
import json
import time

import keras
import numpy as np
import tensorflow as tf

from tf_ode import models


def measure(variant, args):
    keras.utils.set_random_seed(0)
    model = models.build_model(
        architecture=args.architecture,
        variant=variant,
        num_classes=10,
        input_shape=(32, 32, 3),
        width=args.width,
        method=args.method,
        num_steps=args.nt,
        gradient=args.gradient,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    model.optimizer.build(model.trainable_variables)
    images = tf.random.normal([args.batch, 32, 32, 3])
    labels = tf.random.uniform([args.batch], 0, 10, dtype=tf.int32)
    step = tf.function(model.train_step)
    start = time.perf_counter()
    logs = step((images, labels))
    float(logs["loss"])
    trace_seconds = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        logs = step((images, labels))
        float(logs["loss"])
        times.append(time.perf_counter() - t0)
    return {
        "variant": variant,
        "median_step_seconds": float(np.median(times)),
        "first_step_seconds_incl_trace": trace_seconds,
        "nfe_per_step": float(logs["nfe"]),
        "num_params": int(sum(int(np.prod(v.shape)) for v in model.trainable_variables)),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--architecture", default="resnet10")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--method", default="euler")
    parser.add_argument("--nt", type=int, default=2)
    parser.add_argument("--gradient", default="checkpoint")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    rows = [measure(v, args) for v in models.VARIANTS]
    print(json.dumps({"config": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
