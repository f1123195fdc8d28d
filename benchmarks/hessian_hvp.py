r"""HVP cost relative to one gradient for C1 at batch 128 (both HVP modes; eager, tf.function, XLA).

Run:  python benchmarks/hessian_hvp.py [--repeats 5]   (a few minutes on 2 CPU cores)
Prints JSON: seconds per gradient and per HVP, and HVP / gradient ratios. Goal: ratio <= 2.0.
Gradient and HVP calls are interleaved and the minimum over `repeats` calls is reported
(the median too), which is robust to other processes sharing the CPU. The HVP is the
library's per-replica product (HessianOperator internals), excluding the host-side
flatten; `hvp_flat_seconds` is the end-to-end `HessianOperator.hvp_flat` for the default.
`profile_over_gradient_min` splits the default HVP: the loss forward alone, and the forward
with its ForwardAccumulator tangent (TF forms each op's JVP by transposing its VJP).
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
from hessian_common import c1_batch  # noqa: E402

import tf_hessian  # noqa: E402


def _interleaved(functions, repeats):
    """{name: (first, min, median)} seconds, calling the functions in turn `repeats` times."""
    samples = {name: [] for name in functions}
    first = {}
    for name, fn in functions.items():
        start = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - start
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: (first[name], min(s), float(np.median(s))) for name, s in samples.items()}


def _calls(op, x, y, vector, execution):
    if execution == "eager":
        grad_fn, hvp_fn = op._weighted_grad, op._weighted_hvp
    else:
        grad_fn, hvp_fn = op._replica_grad, op._replica_hvp
    return {
        "gradient": lambda: [g.numpy() for g in grad_fn((x, y))[0]],
        "hvp": lambda: [h.numpy() for h in hvp_fn((x, y), vector)[0]],
    }


def _parts(op, x, y, vector):
    """Where the forward-over-reverse HVP's time goes: the loss forward, and forward + tangent."""
    sources = op._sources()

    @tf.function
    def forward():
        return op._objective((x, y))[0]

    @tf.function
    def forward_tangent(v):
        with tf.autodiff.ForwardAccumulator(sources, v) as acc:
            total = op._objective((x, y))[0]
        return acc.jvp(total)

    return {
        "forward": lambda: forward().numpy(),
        "forward_plus_tangent": lambda: forward_tangent(vector).numpy(),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument(
        "--executions", default="eager,tf.function,xla", help="Comma-separated subset to time."
    )
    args = parser.parse_args()
    model, x, y, source = c1_batch(args.batch_size)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rng = np.random.default_rng(0)
    results = {
        "model": "c1",
        "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "batch_size": args.batch_size,
        "data": source,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "timings": {},
    }
    for execution in args.executions.split(","):
        row = {}
        for mode in tf_hessian.HVP_MODES:
            op = tf_hessian.HessianOperator(
                model, loss_fn, (x, y), mode=mode, jit_compile=execution == "xla"
            )
            vector = op.layout.unflatten(rng.standard_normal(op.dim))
            functions = _calls(op, x, y, vector, execution)
            if execution == "tf.function" and mode == "forward_over_reverse":
                flat = rng.standard_normal(op.dim)
                functions["hvp_flat"] = lambda op=op, flat=flat: op.hvp_flat(flat)
                functions.update(_parts(op, x, y, vector))
            timing = _interleaved(functions, args.repeats)
            row[mode] = {
                "gradient_seconds_min": timing["gradient"][1],
                "hvp_seconds_min": timing["hvp"][1],
                "hvp_over_gradient_min": timing["hvp"][1] / timing["gradient"][1],
                "hvp_over_gradient_median": timing["hvp"][2] / timing["gradient"][2],
                "first_call_seconds": {"gradient": timing["gradient"][0], "hvp": timing["hvp"][0]},
            }
            if "hvp_flat" in timing:
                row[mode]["hvp_flat_seconds_min"] = timing["hvp_flat"][1]
                gradient = timing["gradient"][1]
                row[mode]["profile_over_gradient_min"] = {
                    "forward": timing["forward"][1] / gradient,
                    "forward_plus_tangent": timing["forward_plus_tangent"][1] / gradient,
                }
        results["timings"][execution] = row
    results["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
