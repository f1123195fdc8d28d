r"""HVPs and seconds to lambda_max (1e-3) and to the trace (1e-2) on keras.applications models.

Run:  python benchmarks/hessian_real_models.py [--models mobilenetv2,resnet50,efficientnetb0]
      [--batch 16] [--block_size 8] [--max_probes 200] [--rounds 4] [--products_only]

Prints one JSON line per model. The model is built with `weights=None` (no download) at
32x32x3 with 10 classes (its seeded initialisation, softmax output, loss given by name
"sparse_categorical_crossentropy"), on `--batch` real CIFAR-10 test images from
../shared/data (random [0, 1] images when absent), in inference mode:

- lambda_max: `HessianOperator.eigenvalues(method="lanczos", tol=1e-3)`, i.e. until the
  relative Ritz residual is <= 1e-3 (reported: HVPs, seconds, the residual, converged).
- trace: Hutchinson with the standard-error stop (`tol=1e-2`: standard error <= 1 % of
  |trace|), `--block_size` probes per batched product (reported: probes, products,
  seconds, standard error, converged), at most `--max_probes`.
- whether the batched product fell back to `tf.map_fn` (`batch_fallback_reason`), the
  per-vector time of a k-vector batched product against a single product (median over
  `--rounds` interleaved rounds of the ratio within a round), and the public
  `hvp_flat_batch` against the per-replica kernel `_replica_hvp_batch` on the same k vectors
  (`public_batched_over_kernel`, median of `--rounds` interleaved rounds, the two calls in
  alternating order).
Seconds include tracing on the first call (reported separately). `--products_only` stops
after the products (fallback and per-vector times), without lambda_max and the trace.
"""

import argparse
import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
from hessian_common import SHARED_CIFAR  # noqa: E402

import tf_hessian  # noqa: E402
from input_pipelines import classification  # noqa: E402

BUILDERS = {
    "mobilenetv2": lambda: keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), weights=None, classes=10
    ),
    "resnet50": lambda: keras.applications.ResNet50(
        input_shape=(32, 32, 3), weights=None, classes=10
    ),
    "efficientnetb0": lambda: keras.applications.EfficientNetB0(
        input_shape=(32, 32, 3), weights=None, classes=10
    ),
}


def _images(batch):
    try:
        images, labels = classification.load_arrays(
            "cifar10", "test", os.path.join(SHARED_CIFAR, "cifar10"), limit=batch
        )
        return images.astype(np.float32) / 255.0, labels.astype(np.int32), "cifar10 test"
    except (FileNotFoundError, ValueError):
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 1, (batch, 32, 32, 3)).astype(np.float32)
        return x, rng.integers(0, 10, batch).astype(np.int32), "random"


def run(name, args):
    keras.utils.set_random_seed(0)
    model = BUILDERS[name]()
    x, y, source = _images(args.batch)
    op = tf_hessian.HessianOperator(model, "sparse_categorical_crossentropy", (x, y))
    rng = np.random.default_rng(0)
    row = {"model": name, "parameters": op.dim, "data": source, "batch": args.batch}
    start = time.perf_counter()
    op.hvp_flat(rng.standard_normal(op.dim))
    row["first_hvp_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    op.hvp_flat(rng.standard_normal(op.dim))
    row["hvp_seconds"] = time.perf_counter() - start
    vectors = rng.standard_normal((args.block_size, op.dim))
    start = time.perf_counter()
    op.hvp_flat_batch(vectors)
    row["first_batched_seconds"] = time.perf_counter() - start
    row["batch_fallback_reason"] = op.batch_fallback_reason
    # The public batched product (float64 [k, dim] in and out, host accumulation) against
    # the per-replica kernel on the same k vectors, interleaved, medians over rounds.
    stacked = [
        tf.constant(vectors[:, a:b].reshape((len(vectors), *shape)), op.dtype)
        for a, b, shape in zip(op.layout.offsets[:-1], op.layout.offsets[1:], op.layout.shapes)
    ]
    (batch,) = list(op._data)
    # A single product per round too, so the per-vector ratio compares calls of one round.
    # The public call and the kernel swap places every round: whichever follows the single
    # product runs on a different allocator state (ResNet50: 1.24 public-first, 1.06 after).
    calls = {
        "public": lambda: op.hvp_flat_batch(vectors),
        "kernel": lambda: [t.numpy() for t in op._replica_hvp_batch(batch, stacked)[0]],
        "single": lambda: op.hvp_flat(vectors[0]),
    }
    times = {name: [] for name in calls}
    for round_index in range(args.rounds):
        order = ("public", "kernel") if round_index % 2 == 0 else ("kernel", "public")
        for name in (*order, "single"):
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    public, kernel, single = times["public"], times["kernel"], times["single"]
    row["batched_seconds_median"] = float(np.median(public))
    row["kernel_batched_seconds_median"] = float(np.median(kernel))
    row["hvp_seconds_median"] = float(np.median(single))
    row["public_batched_over_kernel"] = float(np.median(np.asarray(public) / kernel))
    # Median over rounds of (batched call / k) / single call of the same round.
    row["batched_per_vector_over_single"] = float(
        np.median(np.asarray(public) / args.block_size / single)
    )
    if args.products_only:
        return row

    start, before = time.perf_counter(), op.num_hvps
    values, _, result = op.eigenvalues(top_n=1, max_iter=100, tol=1e-3, return_result=True)
    row["lambda_max"] = {
        "value": values[0],
        "hvps": op.num_hvps - before,
        "seconds": time.perf_counter() - start,
        "relative_residual": float(result.residuals[0]),
        "converged": bool(result.converged[0]),
    }
    start, before = time.perf_counter(), op.num_hvps
    trace, result = op.trace(
        max_iter=args.max_probes, tol=1e-2, return_result=True, block_size=args.block_size
    )
    row["trace"] = {
        "value": trace,
        "standard_error": result.standard_error,
        "probes": result.num_matvecs,
        "hvps": op.num_hvps - before,
        "seconds": time.perf_counter() - start,
        "converged": result.converged,
    }
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="mobilenetv2,resnet50,efficientnetb0")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--block_size", type=int, default=8)
    parser.add_argument("--max_probes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--products_only", action="store_true")
    args = parser.parse_args()
    for name in args.models.split(","):
        load = os.getloadavg()[0]
        row = run(name, args)
        row["load_average_start_end"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
