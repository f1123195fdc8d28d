r"""Our gradient / HVP / batched HVP against JAX and PyTorch on the identical C1, and float32 error.

Run (JAX and PyTorch live in a separate venv, never in the project's requirements):

    python3 -m venv /tmp/peers
    /tmp/peers/bin/pip install -r requirements.txt torch jax jaxlib   # measured: torch 2.13.0, jax 0.10.2
    cd <project root> && nice -n 10 /tmp/peers/bin/python benchmarks/hessian_peers.py \
        [--threads 1] [--repeats 7] [--batch_k 8]

Prints JSON. All three frameworks compute the same function: C1 (tf_hessian/models/c1.py;
conv 5x5 pad 2 -> ReLU -> BN (inference) -> max pool 3/2 pad 1, twice, FC 384, FC 192,
logits) at its seeded Keras initialisation, the mean softmax cross-entropy of batch 128
(real CIFAR-10 test images from ../shared/data when present). Timed per round, interleaved
(ours, JAX, PyTorch in turn, `--repeats` rounds after one warm-up call each), every call
ending on the host:

- gradient: ours `HessianOperator._replica_grad` (tf.function); JAX `jit(grad)`; PyTorch
  `torch.autograd.grad`.
- HVP: ours `_replica_hvp` (forward-over-reverse); JAX `jit(jvp(grad))`; PyTorch
  `torch.func.jvp(grad)` (forward-over-reverse, as ours and JAX's).
- batched HVP of k vectors (per-vector time): ours `_replica_hvp_batch` (pfor, one primal
  pass); JAX `jit(vmap(jvp(grad)))`; PyTorch `torch.func.vmap(jvp(grad))`.

float32 error: each framework's float32 gradient and HVP against its own float64 on the
same weights, batch and vector: the largest per-variable relative error, and the number
of max-pool windows whose choice differs between float32 and float64 in our model
(`tf_hessian.precision.max_pool_flips`): the float32 / float64 difference of a max-pool
network comes from those windows (same for all three frameworks, docs/tf_hessian.md).
"""

import argparse
import json
import os
import sys
import time


def _parse():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch_k", type=int, default=8)
    return parser.parse_args()


ARGS = _parse()
# Thread counts must be set before the frameworks start.
os.environ["XLA_FLAGS"] = (
    f"--xla_cpu_multi_thread_eigen={'true' if ARGS.threads > 1 else 'false'} "
    f"intra_op_parallelism_threads={ARGS.threads}"
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

jax.config.update("jax_enable_x64", True)
tf.config.threading.set_intra_op_parallelism_threads(ARGS.threads)
tf.config.threading.set_inter_op_parallelism_threads(ARGS.threads)
torch.set_num_threads(ARGS.threads)

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from hessian_common import c1_batch  # noqa: E402

import tf_hessian  # noqa: E402
from tf_hessian import precision  # noqa: E402

TRAINABLE = [
    "conv_0/kernel", "conv_0/bias", "bn_0/gamma", "bn_0/beta",
    "conv_1/kernel", "conv_1/bias", "bn_1/gamma", "bn_1/beta",
    "fc_0/kernel", "fc_0/bias", "fc_1/kernel", "fc_1/bias", "logits/kernel", "logits/bias",
]  # fmt: skip


# ---------------------------------------------------------------------------- JAX
def jax_c1(p, x):
    for i in range(2):
        x = jax.lax.conv_general_dilated(
            x, p[f"conv_{i}/kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        x = jnp.maximum(x + p[f"conv_{i}/bias"], 0)
        scale = p[f"bn_{i}/gamma"] / jnp.sqrt(p[f"bn_{i}/moving_variance"] + 1e-5)
        x = (x - p[f"bn_{i}/moving_mean"]) * scale + p[f"bn_{i}/beta"]
        x = jax.lax.reduce_window(
            x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
        )
    x = x.reshape(x.shape[0], -1)
    for name in ("fc_0", "fc_1"):
        x = jnp.maximum(x @ p[f"{name}/kernel"] + p[f"{name}/bias"], 0)
    return x @ p["logits/kernel"] + p["logits/bias"]


def jax_functions(weights, x, y, dtype):
    fixed = {k: jnp.asarray(v, dtype) for k, v in weights.items() if k not in TRAINABLE}
    x, y = jnp.asarray(x, dtype), jnp.asarray(y)

    def loss(params):
        logits = jax_c1({**fixed, **params}, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    grad = jax.jit(jax.grad(loss))
    hvp = jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))[1])
    hvp_batch = jax.jit(jax.vmap(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))[1], (None, 0)))
    return grad, hvp, hvp_batch


# ------------------------------------------------------------------------ PyTorch
def torch_c1(p, x):
    functional = torch.nn.functional
    x = x.permute(0, 3, 1, 2)
    for i in range(2):
        x = functional.conv2d(
            x, p[f"conv_{i}/kernel"].permute(3, 2, 0, 1), p[f"conv_{i}/bias"], padding=2
        )
        x = functional.relu(x)
        x = functional.batch_norm(
            x, p[f"bn_{i}/moving_mean"], p[f"bn_{i}/moving_variance"], p[f"bn_{i}/gamma"],
            p[f"bn_{i}/beta"], False, 0.0, 1e-5,
        )  # fmt: skip
        x = functional.max_pool2d(x, 3, 2, 1)
    x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
    for name in ("fc_0", "fc_1"):
        x = functional.relu(x @ p[f"{name}/kernel"] + p[f"{name}/bias"])
    return x @ p["logits/kernel"] + p["logits/bias"]


def torch_functions(weights, x, y, dtype):
    fixed = {k: torch.tensor(v, dtype=dtype) for k, v in weights.items() if k not in TRAINABLE}
    x, y = torch.tensor(np.asarray(x), dtype=dtype), torch.tensor(np.asarray(y)).long()

    def loss(params):
        return torch.nn.functional.cross_entropy(torch_c1({**fixed, **params}, x), y)

    def grad(params):
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        return dict(zip(params, torch.autograd.grad(loss(params), list(params.values()))))

    def hvp(params, v):
        return torch.func.jvp(torch.func.grad(loss), (params,), (v,))[1]

    def hvp_batch(params, vs):
        return torch.func.vmap(lambda v: hvp(params, v))(vs)

    return grad, hvp, hvp_batch


# -------------------------------------------------------------------------- ours
def ours(model, x, y):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    op = tf_hessian.HessianOperator(model, loss, (x, y))
    batch = (x, y)
    return op, batch


def _relative(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def _per_variable_error(a, b):
    """Largest per-variable relative error of dicts name -> array (float64 reference b)."""
    return max(_relative(a[k], b[k]) for k in TRAINABLE)


def main():
    model, x, y, source = c1_batch(128)
    weights = {v.path: v.numpy() for v in model.weights}
    rng = np.random.default_rng(0)
    vector = {k: rng.standard_normal(weights[k].shape) for k in TRAINABLE}
    vectors = {k: rng.standard_normal((ARGS.batch_k, *weights[k].shape)) for k in TRAINABLE}

    # --- ours
    op, batch = ours(model, x, y)
    tf_vector = [tf.constant(vector[v.path], tf.float32) for v in op.variables]
    tf_vectors = [tf.constant(vectors[v.path], tf.float32) for v in op.variables]
    paths = [v.path for v in op.variables]

    def our_grad():
        return {p: g.numpy() for p, g in zip(paths, op._replica_grad(batch)[0])}

    def our_hvp():
        return {p: h.numpy() for p, h in zip(paths, op._replica_hvp(batch, tf_vector)[0])}

    def our_hvp_batch():
        return [h.numpy() for h in op._replica_hvp_batch(batch, tf_vectors)[0]]

    # --- JAX
    jg, jh, jhb = jax_functions(weights, x.numpy(), y.numpy(), jnp.float32)
    jp = {k: jnp.asarray(weights[k], jnp.float32) for k in TRAINABLE}
    jv = {k: jnp.asarray(vector[k], jnp.float32) for k in TRAINABLE}
    jvs = {k: jnp.asarray(vectors[k], jnp.float32) for k in TRAINABLE}

    def jax_grad():
        return {k: np.asarray(v) for k, v in jg(jp).items()}

    def jax_hvp():
        return {k: np.asarray(v) for k, v in jh(jp, jv).items()}

    def jax_hvp_batch():
        return {k: np.asarray(v) for k, v in jhb(jp, jvs).items()}

    # --- PyTorch
    tg, th, thb = torch_functions(weights, x.numpy(), y.numpy(), torch.float32)
    tp = {k: torch.tensor(weights[k], dtype=torch.float32) for k in TRAINABLE}
    tv = {k: torch.tensor(vector[k], dtype=torch.float32) for k in TRAINABLE}
    tvs = {k: torch.tensor(vectors[k], dtype=torch.float32) for k in TRAINABLE}

    def torch_grad():
        return {k: v.numpy() for k, v in tg(tp).items()}

    def torch_hvp():
        return {k: v.detach().numpy() for k, v in th(tp, tv).items()}

    def torch_hvp_batch():
        return {k: v.detach().numpy() for k, v in thb(tp, tvs).items()}

    functions = {
        ("ours", "gradient"): our_grad,
        ("jax", "gradient"): jax_grad,
        ("torch", "gradient"): torch_grad,
        ("ours", "hvp"): our_hvp,
        ("jax", "hvp"): jax_hvp,
        ("torch", "hvp"): torch_hvp,
        ("ours", "hvp_batch"): our_hvp_batch,
        ("jax", "hvp_batch"): jax_hvp_batch,
        ("torch", "hvp_batch"): torch_hvp_batch,
    }
    first = {}
    for key, fn in functions.items():
        start = time.perf_counter()
        fn()
        first[key] = time.perf_counter() - start
    samples = {key: [] for key in functions}
    for _ in range(ARGS.repeats):
        for key, fn in functions.items():
            start = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - start)
    median = {key: float(np.median(v)) for key, v in samples.items()}
    for framework in ("ours", "jax", "torch"):
        median[(framework, "hvp_batch_per_vector")] = (
            median[(framework, "hvp_batch")] / ARGS.batch_k
        )

    # --- float32 error against each framework's own float64
    twin = precision.float64_twin(model)
    op64 = tf_hessian.HessianOperator(
        twin,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64"),
        (tf.cast(x, tf.float64), y),
    )
    g64 = {p: g.numpy() for p, g in zip(paths, op64._replica_grad((tf.cast(x, tf.float64), y))[0])}
    h64 = {
        p: h.numpy()
        for p, h in zip(
            paths,
            op64._replica_hvp(
                (tf.cast(x, tf.float64), y), [tf.constant(vector[p], tf.float64) for p in paths]
            )[0],
        )
    }
    jg64, jh64, _ = jax_functions(weights, x.numpy(), y.numpy(), jnp.float64)
    jp64 = {k: jnp.asarray(weights[k], jnp.float64) for k in TRAINABLE}
    jv64 = {k: jnp.asarray(vector[k], jnp.float64) for k in TRAINABLE}
    tg64, th64, _ = torch_functions(weights, x.numpy(), y.numpy(), torch.float64)
    tp64 = {k: torch.tensor(weights[k], dtype=torch.float64) for k in TRAINABLE}
    tv64 = {k: torch.tensor(vector[k], dtype=torch.float64) for k in TRAINABLE}
    errors = {
        "ours": {
            "gradient": _per_variable_error(our_grad(), g64),
            "hvp": _per_variable_error(our_hvp(), h64),
        },
        "jax": {
            "gradient": _per_variable_error(
                jax_grad(), {k: np.asarray(v) for k, v in jg64(jp64).items()}
            ),
            "hvp": _per_variable_error(
                jax_hvp(), {k: np.asarray(v) for k, v in jh64(jp64, jv64).items()}
            ),
        },
        "torch": {
            "gradient": _per_variable_error(
                torch_grad(), {k: v.numpy() for k, v in tg64(tp64).items()}
            ),
            "hvp": _per_variable_error(
                torch_hvp(), {k: v.detach().numpy() for k, v in th64(tp64, tv64).items()}
            ),
        },
    }
    pinned = precision.pinned_float64_twin(model, x)
    op_pinned = tf_hessian.HessianOperator(
        pinned,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64"),
        (tf.cast(x, tf.float64), y),
    )
    gp = {
        p: g.numpy() for p, g in zip(paths, op_pinned._replica_grad((tf.cast(x, tf.float64), y))[0])
    }
    errors["ours_at_float32_pool_choices"] = {"gradient": _per_variable_error(our_grad(), gp)}
    faster_hvp = min(median[("jax", "hvp")], median[("torch", "hvp")])
    result = {
        "data": source,
        "threads": ARGS.threads,
        "repeats": ARGS.repeats,
        "batch_k": ARGS.batch_k,
        "load_average_start_end": None,
        "seconds_median": {f"{f}/{q}": v for (f, q), v in median.items()},
        "first_call_seconds": {f"{f}/{q}": v for (f, q), v in first.items()},
        "our_hvp_over_faster_peer": median[("ours", "hvp")] / faster_hvp,
        "our_gradient_over_faster_peer": median[("ours", "gradient")]
        / min(median[("jax", "gradient")], median[("torch", "gradient")]),
        "our_batched_per_vector_over_faster_peer": median[("ours", "hvp_batch_per_vector")]
        / min(median[("jax", "hvp_batch_per_vector")], median[("torch", "hvp_batch_per_vector")]),
        "goal_hvp_at_most_half_the_faster_peer": median[("ours", "hvp")] <= 0.5 * faster_hvp,
        "float32_max_per_variable_relative_error": errors,
        "max_pool_flips": precision.max_pool_flips(model, x),
    }
    return result


if __name__ == "__main__":
    load_start = os.getloadavg()
    out = main()
    out["load_average_start_end"] = [round(load_start[0], 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(out, indent=1))
