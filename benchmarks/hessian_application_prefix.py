r"""Batched against single HVPs on a cut of a keras.applications network: fallback, cost split.

Run:  nice -n 19 python benchmarks/hessian_application_prefix.py [--application efficientnetb0]
      [--cut block2b_add] [--dtype float64] [--k 8] [--rounds 5]

Builds the network as tests/tf_hessian/test_foreign_models.py does (random weights, 3
classes, 32x32x3, cut after `--cut` with a global average pool and a softmax dense top; the
whole network with `--cut none`), on 2 random [0, 1] images, loss by name. Prints one JSON
line with the CPU (`time.process_time`) and wall seconds of each phase (imports, model,
first batched call of 2 vectors, first single call, first call with `--k` vectors: each a
trace), `batch_fallback_reason`, the largest difference between the batched and the single
products of the 2 vectors relative to their largest entry, and the per-vector time of a
traced k-vector call over a single product (median over `--rounds` interleaved rounds of
the ratio within a round, in CPU and in wall time).
"""

import argparse
import json
import os
import time

_START = (time.process_time(), time.perf_counter())

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_hessian  # noqa: E402

APPLICATIONS = {
    "efficientnetb0": keras.applications.EfficientNetB0,
    "mobilenetv2": keras.applications.MobileNetV2,
    "resnet50": keras.applications.ResNet50,
}


def _since(start):
    return {"cpu_s": time.process_time() - start[0], "wall_s": time.perf_counter() - start[1]}


def _now():
    return time.process_time(), time.perf_counter()


def build(application, cut, dtype):
    floatx = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        keras.utils.set_random_seed(0)
        full = APPLICATIONS[application](weights=None, classes=3, input_shape=(32, 32, 3))
        if cut == "none":
            return full
        features = keras.layers.GlobalAveragePooling2D()(full.get_layer(cut).output)
        outputs = keras.layers.Dense(3, activation="softmax")(features)
        return keras.Model(full.inputs, outputs)
    finally:
        keras.config.set_floatx(floatx)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--application", default="efficientnetb0", choices=sorted(APPLICATIONS))
    parser.add_argument("--cut", default="block2b_add")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    row = {**vars(args), "load_average_start": os.getloadavg()[0], "imports": _since(_START)}

    start = _now()
    model = build(args.application, args.cut, args.dtype)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, 32, 32, 3))
    op = tf_hessian.HessianOperator(model, "sparse_categorical_crossentropy", (x, np.array([0, 2])))
    row["parameters"] = op.dim
    row["model_and_operator"] = _since(start)

    pair = rng.standard_normal((2, op.dim))
    start = _now()
    batched = op.hvp_flat_batch(pair)
    row["first_batched_call_k2"] = _since(start)
    row["batch_fallback_reason"] = op.batch_fallback_reason
    start = _now()
    singles = [op.hvp_flat(pair[0])]
    row["first_single_call"] = _since(start)
    singles = np.stack([*singles, op.hvp_flat(pair[1])])
    row["batched_vs_single_max_relative"] = float(
        np.abs(batched - singles).max() / np.abs(singles).max()
    )

    vectors = rng.standard_normal((args.k, op.dim))
    start = _now()
    op.hvp_flat_batch(vectors)
    row[f"first_batched_call_k{args.k}"] = _since(start)
    cpu, wall = [], []
    for _ in range(args.rounds):
        start = _now()
        op.hvp_flat_batch(vectors)
        batched_time = _since(start)
        start = _now()
        op.hvp_flat(vectors[0])
        single_time = _since(start)
        cpu.append(batched_time["cpu_s"] / args.k / single_time["cpu_s"])
        wall.append(batched_time["wall_s"] / args.k / single_time["wall_s"])
    row["per_vector_over_single_cpu"] = float(np.median(cpu))
    row["per_vector_over_single_wall"] = float(np.median(wall))
    row["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
