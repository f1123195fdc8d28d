r"""HVP cost relative to one gradient for C1 at batch 128 (both HVP modes; eager, tf.function, XLA).

Run:  nice -n 10 python benchmarks/hessian_hvp.py [--repeats 9] [--executions tf.function]
      [--batch_ks 1,4,8,16]
(a few minutes on 2 CPU cores). Prints JSON. Goal (issue 14): HVP / gradient <= 2.0 with
`tf.function` for the default HVP mode (`default_hvp_mode`, `goal_met`): a SINGLE product.

Batched products (`hvp_batch`, tf.function only): `hvp_batch_per_vector_over_gradient[k]` is
the time of one `HessianOperator._replica_hvp_batch` call with k vectors (tf.vectorized_map:
the primal forward and backward run once for all k) divided by k and by the gradient of the
same round, for each k of `--batch_ks`; called in the same interleaved rounds as the single
products. It is a different quantity from the headline (k products at once, which only
applies where k independent vectors are available: Hutchinson / Hutch++ probes, SLQ runs)
and does not replace it; `goal_met` is always the single-product ratio.

Like with like: per execution (eager / tf.function / XLA) the gradient and BOTH HVP modes
are the library's own per-replica functions (HessianOperator internals) on the same model,
batch and compile settings, called in turn (interleaved) `repeats` times after one warm-up
call each (excluded). Every call ends with the results on the host (`.numpy()`). The
headline `hvp_over_gradient` is the median over the repeats of the ratio of an HVP call to
the gradient call of the same round (robust to other jobs' load drifting during the run);
the ratio of the medians and of the minima are beside it. `hvp_flat_seconds_median` is the
end-to-end `HessianOperator.hvp_flat` (host flatten included) for the default mode.

Where the time goes:
- `profile_over_gradient` (tf.function, medians): the loss forward alone, and the forward
  with its ForwardAccumulator tangent (TF forms each op's JVP by transposing its VJP).
- `linear_layer_macs` (hessian_common.py): multiply-adds of the Conv2D/Dense layers (which
  dominate C1) in one gradient and in one exact HVP, counted from the layer shapes (8 passes
  per layer past the first, 3 for the first; a gradient 3 and 2: see its docstring). Either
  HVP mode needs that count. This is the floor of the ratio if those layers took all the
  time at equal speed.
  `tangent_only` is the part of the HVP that depends on the vector (everything but the primal
  forward and input gradient): the per-vector floor of a k-vector batch is
  (tangent_only + primal / k) / gradient (`batched_per_vector_over_gradient`).
"""

import argparse
import inspect
import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
from hessian_common import c1_batch, linear_layer_macs  # noqa: E402

import tf_hessian  # noqa: E402

GOAL = 2.0


def _interleaved(functions, repeats):
    """({name: first-call seconds}, {name: [seconds per round]}), calling the functions in turn."""
    first, samples = {}, {name: [] for name in functions}
    for name, fn in functions.items():
        start = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - start
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return first, samples


def _parts(op, x, y, vector):
    """The loss forward alone, and forward + its ForwardAccumulator tangent (tf.function)."""
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


def _stacked(op, vectors):
    """k flat vectors [k, dim] as per-variable tensors [k, *shape] (hvp_batch's device form)."""
    k = vectors.shape[0]
    return [
        tf.constant(vectors[:, a:b].reshape((k, *shape)), op.dtype)
        for a, b, shape in zip(op.layout.offsets[:-1], op.layout.offsets[1:], op.layout.shapes)
    ]


def _summary(gradient, hvp):
    gradient, hvp = np.asarray(gradient), np.asarray(hvp)
    return {
        "gradient_seconds_median": float(np.median(gradient)),
        "hvp_seconds_median": float(np.median(hvp)),
        "hvp_over_gradient": float(np.median(hvp / gradient)),
        "hvp_over_gradient_of_medians": float(np.median(hvp) / np.median(gradient)),
        "hvp_over_gradient_of_minima": float(hvp.min() / gradient.min()),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument(
        "--executions", default="eager,tf.function,xla", help="Comma-separated subset to time."
    )
    parser.add_argument(
        "--batch_ks", default="1,4,8,16", help="Vectors per hvp_batch call (tf.function)."
    )
    args = parser.parse_args()
    batch_ks = [int(k) for k in args.batch_ks.split(",") if k]
    model, x, y, source = c1_batch(args.batch_size)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    default_mode = inspect.signature(tf_hessian.HessianOperator).parameters["mode"].default
    rng = np.random.default_rng(0)
    results = {
        "model": "c1",
        "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "batch_size": args.batch_size,
        "data": source,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "default_hvp_mode": default_mode,
        "goal": f"hvp_over_gradient <= {GOAL} with tf.function for {default_mode}",
        "linear_layer_macs": linear_layer_macs(model, args.batch_size, batch_ks),
        "timings": {},
    }
    batch = (x, y)
    for execution in args.executions.split(","):
        ops = {
            mode: tf_hessian.HessianOperator(
                model, loss_fn, batch, mode=mode, jit_compile=execution == "xla"
            )
            for mode in tf_hessian.HVP_MODES
        }
        default_op = ops[default_mode]
        vector = default_op.layout.unflatten(rng.standard_normal(default_op.dim))
        eager = execution == "eager"
        grad_fn = default_op._weighted_grad if eager else default_op._replica_grad
        functions = {"gradient": lambda g=grad_fn: [t.numpy() for t in g(batch)[0]]}
        for mode, op in ops.items():
            hvp_fn = op._weighted_hvp if eager else op._replica_hvp
            functions[mode] = lambda h=hvp_fn, v=vector: [t.numpy() for t in h(batch, v)[0]]
        if execution == "tf.function":
            flat = rng.standard_normal(default_op.dim)
            functions["hvp_flat"] = lambda op=default_op, f=flat: op.hvp_flat(f)
            functions.update(_parts(default_op, x, y, vector))
            for k in batch_ks:
                stacked = _stacked(default_op, rng.standard_normal((k, default_op.dim)))
                functions[f"hvp_batch_{k}"] = lambda op=default_op, s=stacked: [
                    t.numpy() for t in op._replica_hvp_batch(batch, s)[0]
                ]
        first, samples = _interleaved(functions, args.repeats)
        row = {"first_call_seconds": first}
        for mode in ops:
            row[mode] = _summary(samples["gradient"], samples[mode])
        if execution == "tf.function":
            gradient = np.asarray(samples["gradient"])
            row["hvp_flat_seconds_median"] = float(np.median(samples["hvp_flat"]))
            row["hvp_batch_method"] = default_op.batch_method
            row["hvp_batch_fallback_reason"] = default_op.batch_fallback_reason
            row["hvp_batch_per_vector_over_gradient"] = {
                str(k): float(np.median(np.asarray(samples[f"hvp_batch_{k}"]) / k / gradient))
                for k in batch_ks
            }
            row["hvp_batch_seconds_median"] = {
                str(k): float(np.median(samples[f"hvp_batch_{k}"])) for k in batch_ks
            }
            row["profile_over_gradient"] = {
                part: float(np.median(np.asarray(samples[part]) / gradient))
                for part in ("forward", "forward_plus_tangent")
            }
        results["timings"][execution] = row
    if "tf.function" in results["timings"]:
        ratio = results["timings"]["tf.function"][default_mode]["hvp_over_gradient"]
        results["goal_met"] = bool(ratio <= GOAL)
    results["load_average_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
