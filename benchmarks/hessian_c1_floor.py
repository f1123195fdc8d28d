r"""The arithmetic floor of one exact HVP on C1: its multiply-adds over this machine's best rate.

Run:  python benchmarks/hessian_c1_floor.py [--batch 128] [--threads 1] [--repeats 7]
      (in the peer venv of benchmarks/hessian_peers.py the JAX and PyTorch rates are
      measured too; in the project venv only TensorFlow's)

Prints one JSON document. The count, `hessian_common.linear_layer_macs`, is a lower bound
on the work of any exact Hessian-vector product (ours, JAX's jvp of grad, PyTorch's
torch.func.jvp of grad): 8 passes of each Conv2D / Dense layer past the first, 3 of the
first, leaving out bias, batch-norm, ReLU, max pool and the loss.

The rate is the best single-call rate (multiply-adds x 2 / median seconds) that any
framework importable here reaches with `--threads` threads on (a) C1's largest layer
alone, its 5x5 64 -> 64 convolution at 16x16, forward, and (b) a 2048^3 matrix
product. The floor is the count over that rate: no framework's HVP on this machine can
take less unless it beats the best measured rate on every pass. `ours_hvp_seconds` is our
per-replica product (`HessianOperator._replica_hvp`) in each `mode` with and without
`jit_compile` (the default is forward-over-reverse without XLA), and the default
operator's gradient, on the same batch (real CIFAR-10 test images when ../shared/data
has them), median of `--repeats` calls after a warm-up.
"""

import argparse
import importlib.util
import json
import os
import sys

PARSER = argparse.ArgumentParser()
PARSER.add_argument("--batch", type=int, default=128)
PARSER.add_argument("--threads", type=int, default=1)
PARSER.add_argument("--repeats", type=int, default=7)
ARGS = PARSER.parse_args()
# "One thread" is enforced by pinning the process to --threads cores: XLA's CPU dot runs on
# two threads despite the flags below (2048^3: 0.19 s CPU in 0.097 s wall).
os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: ARGS.threads])
os.environ["XLA_FLAGS"] = (
    f"--xla_cpu_multi_thread_eigen={'true' if ARGS.threads > 1 else 'false'} "
    f"intra_op_parallelism_threads={ARGS.threads}"
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(ARGS.threads)
tf.config.threading.set_inter_op_parallelism_threads(ARGS.threads)

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from hessian_common import c1_batch, linear_layer_macs, timed  # noqa: E402

import tf_hessian  # noqa: E402

MATMUL_SIZE = 2048


def median_seconds(fn, repeats):
    """Median of `repeats` calls after a warm-up call."""
    return timed(fn, repeats)[1]


def conv_shape(model, batch):
    """(input shape NHWC, kernel shape HWIO) of the model's largest convolution."""
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    layer = max(convs, key=lambda c: np.prod(c.output.shape[1:]) * np.prod(c.kernel.shape))
    return (batch, *layer.input.shape[1:]), tuple(layer.kernel.shape), layer.name


def tf_rates(x_shape, k_shape, repeats):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal(x_shape), tf.float32)
    k = tf.constant(rng.standard_normal(k_shape), tf.float32)
    a = tf.constant(rng.standard_normal((MATMUL_SIZE, MATMUL_SIZE)), tf.float32)
    conv = tf.function(lambda: tf.nn.conv2d(x, k, 1, "SAME"))
    matmul = tf.function(lambda: tf.matmul(a, a))
    return {
        "conv": median_seconds(lambda: conv().numpy(), repeats),
        "matmul": median_seconds(lambda: matmul().numpy(), repeats),
    }


def jax_rates(x_shape, k_shape, repeats):
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
    k = jnp.asarray(rng.standard_normal(k_shape), jnp.float32)
    a = jnp.asarray(rng.standard_normal((MATMUL_SIZE, MATMUL_SIZE)), jnp.float32)
    conv = jax.jit(
        lambda x, k: jax.lax.conv_general_dilated(
            x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
    )
    matmul = jax.jit(jnp.matmul)
    return {
        "conv": median_seconds(lambda: conv(x, k).block_until_ready(), repeats),
        "matmul": median_seconds(lambda: matmul(a, a).block_until_ready(), repeats),
    }


def torch_rates(x_shape, k_shape, repeats):
    import torch

    torch.set_num_threads(ARGS.threads)
    rng = np.random.default_rng(0)
    b, h, w, c = x_shape
    kh, kw, ci, co = k_shape
    x = torch.tensor(rng.standard_normal((b, c, h, w)), dtype=torch.float32)
    k = torch.tensor(rng.standard_normal((co, ci, kh, kw)), dtype=torch.float32)
    a = torch.tensor(rng.standard_normal((MATMUL_SIZE, MATMUL_SIZE)), dtype=torch.float32)
    with torch.no_grad():
        return {
            "conv": median_seconds(
                lambda: torch.nn.functional.conv2d(x, k, padding=kh // 2), repeats
            ),
            "matmul": median_seconds(lambda: a @ a, repeats),
        }


def main():
    model, x, y, source = c1_batch(ARGS.batch)
    macs = linear_layer_macs(model, ARGS.batch)
    x_shape, k_shape, conv_name = conv_shape(model, ARGS.batch)
    conv_flops = 2 * x_shape[0] * x_shape[1] * x_shape[2] * int(np.prod(k_shape))
    matmul_flops = 2 * MATMUL_SIZE**3
    measured = {"tensorflow": tf_rates(x_shape, k_shape, ARGS.repeats)}
    for name, fn, module in (("jax", jax_rates, "jax"), ("torch", torch_rates, "torch")):
        if importlib.util.find_spec(module) is not None:
            measured[name] = fn(x_shape, k_shape, ARGS.repeats)
    rates = {
        framework: {
            f"{conv_name}_forward_gflops": conv_flops / t["conv"] / 1e9,
            f"matmul_{MATMUL_SIZE}_gflops": matmul_flops / t["matmul"] / 1e9,
        }
        for framework, t in measured.items()
    }
    best = max(rate for r in rates.values() for rate in r.values())

    batch = (x, y)
    dim = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    vector = np.random.default_rng(0).standard_normal(dim)
    ours, operators = {}, {}
    for mode in tf_hessian.hvp.HVP_MODES:
        for jit_compile in (False, True):
            op = tf_hessian.HessianOperator(
                model,
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                batch,
                mode=mode,
                jit_compile=jit_compile,
            )
            tangent = op.layout.unflatten(vector)
            name = f"{mode}{'_jit' if jit_compile else ''}"
            operators[name] = op
            ours[name] = median_seconds(
                lambda op=op, tangent=tangent: [
                    t.numpy() for t in op._replica_hvp(batch, tangent)[0]
                ],
                ARGS.repeats,
            )
    default = operators["forward_over_reverse"]
    ours_grad = median_seconds(
        lambda: [t.numpy() for t in default._replica_grad(batch)[0]], ARGS.repeats
    )
    ours_hvp = ours["forward_over_reverse"]
    hvp_flops, grad_flops = 2 * macs["hvp"], 2 * macs["gradient"]
    print(
        json.dumps(
            {
                "batch": ARGS.batch,
                "data": source,
                "threads": ARGS.threads,
                "layers": macs["layers"],
                "hvp_gflop": hvp_flops / 1e9,
                "gradient_gflop": grad_flops / 1e9,
                "rates_gflops": rates,
                "best_rate_gflops": best,
                "hvp_floor_seconds": hvp_flops / best / 1e9,
                "gradient_floor_seconds": grad_flops / best / 1e9,
                "ours_hvp_seconds": ours,
                "ours_gradient_seconds": ours_grad,
                "ours_default_hvp_over_floor": ours_hvp / (hvp_flops / best / 1e9),
                "ours_best_hvp_over_floor": min(ours.values()) / (hvp_flops / best / 1e9),
                "ours_default_hvp_gflops": hvp_flops / ours_hvp / 1e9,
                "load_average": round(os.getloadavg()[0], 2),
            },
            indent=1,
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
