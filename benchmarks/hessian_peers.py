r"""Our gradient / HVP / batched HVP against JAX and PyTorch on identical networks, and float32 error.

Run (JAX and PyTorch live in a separate venv, never in the project's requirements):

    python3 -m venv /tmp/peers
    /tmp/peers/bin/pip install -r requirements.txt torch jax jaxlib   # measured: torch 2.13.0, jax 0.10.2
    cd <project root> && nice -n 10 /tmp/peers/bin/python benchmarks/hessian_peers.py \
        [--models c1,mobilenetv2] [--threads 1] [--repeats 7] [--batch_k 8] \
        [--mobilenetv2_batch 32]

Prints one JSON document per model of `--models`, in that order. The process is pinned to
`--threads` cores (default one) and each framework told to use that many threads: XLA's CPU
dot product otherwise takes a second core whatever its flags say.

c1: all three frameworks compute the same function: C1 (tf_hessian/models/c1.py;
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

mobilenetv2: `keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None,
classes=10)` at its seeded initialisation (seed 0), in inference mode (BatchNorm on its
moving statistics, as `HessianOperator`'s default `training=False`), on the first
`--mobilenetv2_batch` = 32 real CIFAR-10 test images (the C1 batch's first images; random
when ../shared/data is absent; the JSON's "batch"): 32 rather than C1's 128 keeps a full
run short: both models at the default repeats take 9 min 45 s on 2 idle CPU cores (mostly
first calls and float64 tracing; 2026-12-06). Loss: the mean
sparse categorical cross-entropy of the softmax probabilities, ours
`keras.losses.SparseCategoricalCrossentropy()` on the model as built (Keras evaluates it
from the logits entering the softmax: `log_softmax`, no clipping), the twins
`-mean(log_softmax(logits)[y])` of the same logits. The JAX and PyTorch twins are built
by a walk over the model's Keras layers (benchmarks/hessian_peer_twins.py) and read the
Keras weights in their own layouts, so all gradients and HVPs compare entry by entry;
`float64_max_relative_difference` is the largest relative difference between any two
frameworks in float64 (loss, and the largest per-variable difference of the mean-loss
gradient and HVP): rounding level (about 1e-12 or below) shows the three compute one
function. Timings and float32 errors as for C1, except that:

- MobileNetV2's kinks are its ReLU6s, not max pools: `relu_flips` counts the ReLU inputs
  of our model on another side of 0 or 6 in float32 than in float64.
- JAX's batched HVP is k calls of `jit(jvp(grad))` (the JSON's "jax_batched_hvp"): on
  XLA's CPU backend MobileNetV2's `jit(vmap(jvp(grad)))` took 162 s for k = 2 and
  `jit(lax.map(jvp(grad)))` 67 s for k = 8 where one HVP takes 1.5 s (its depthwise
  convolutions), too slow to time and not JAX's best.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

MODELS = ("c1", "mobilenetv2")
QUANTITIES = ("gradient", "hvp", "hvp_batch")
FRAMEWORKS = ("ours", "jax", "torch")


def _parse():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch_k", type=int, default=8)
    parser.add_argument("--mobilenetv2_batch", type=int, default=32)
    args = parser.parse_args()
    unknown = sorted(set(args.models.split(",")) - set(MODELS))
    if unknown:
        parser.error(f"--models takes names from {MODELS}. Received: {unknown}.")
    return args


ARGS = _parse()
# "One thread" is enforced by pinning the process to --threads cores: XLA's CPU dot runs on
# two threads despite the flags below (2048^3: 0.19 s CPU in 0.097 s wall).
os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: ARGS.threads])
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
import hessian_peer_twins as twins  # noqa: E402
from hessian_common import c1_batch  # noqa: E402

import tf_hessian  # noqa: E402
from tf_hessian import precision  # noqa: E402

TRAINABLE = [
    "conv_0/kernel", "conv_0/bias", "bn_0/gamma", "bn_0/beta",
    "conv_1/kernel", "conv_1/bias", "bn_1/gamma", "bn_1/beta",
    "fc_0/kernel", "fc_0/bias", "fc_1/kernel", "fc_1/bias", "logits/kernel", "logits/bias",
]  # fmt: skip


@dataclasses.dataclass
class Case:
    """One network on one batch, with its JAX and PyTorch twins (``forward(params, x) -> logits``)."""

    model: keras.Model
    x: tf.Tensor
    y: tf.Tensor
    source: str
    trainable: list
    jax_forward: object
    torch_forward: object
    from_logits: bool
    jax_batched: str = "vmap"  # or "loop": see JAX_BATCHED


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


def _jax_loop(hvp):
    """k calls of the jitted single HVP (one vector at a time), stacked like vmap's result."""

    def batched(p, vs):
        k = len(next(iter(vs.values())))
        products = [hvp(p, {name: v[i] for name, v in vs.items()}) for i in range(k)]
        return {name: jnp.stack([h[name] for h in products]) for name in products[0]}

    return batched


# JAX's batched HVP: (JSON description, builder from the HVP and its jit). "loop" for
# MobileNetV2: on XLA's CPU backend its jit(vmap(jvp(grad))) took 162 s for k = 2 and
# jit(lax.map(jvp(grad))) 67 s for k = 8, where one HVP takes 1.5 s (2026-12-06, load 4-5).
JAX_BATCHED = {
    "vmap": ("jit(vmap(jvp(grad)))", lambda hvp, jitted: jax.jit(jax.vmap(hvp, (None, 0)))),
    "loop": ("k calls of jit(jvp(grad))", lambda hvp, jitted: _jax_loop(jitted)),
}


def jax_functions(case, weights, dtype):
    """``{"loss", "gradient", "hvp", "hvp_batch"}`` of the mean cross-entropy, jitted."""
    fixed = {k: jnp.asarray(v, dtype) for k, v in weights.items() if k not in case.trainable}
    x, y = jnp.asarray(case.x.numpy(), dtype), jnp.asarray(case.y.numpy())

    def loss(params):
        logits = case.jax_forward({**fixed, **params}, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    def hvp(p, v):
        return jax.jvp(jax.grad(loss), (p,), (v,))[1]

    jitted = jax.jit(hvp)
    return {
        "loss": jax.jit(loss),
        "gradient": jax.jit(jax.grad(loss)),
        "hvp": jitted,
        "hvp_batch": JAX_BATCHED[case.jax_batched][1](hvp, jitted),
    }


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


def torch_functions(case, weights, dtype):
    """``{"loss", "gradient", "hvp", "hvp_batch"}`` of the mean cross-entropy."""
    fixed = {k: torch.tensor(v, dtype=dtype) for k, v in weights.items() if k not in case.trainable}
    x = torch.tensor(case.x.numpy(), dtype=dtype)
    y = torch.tensor(case.y.numpy()).long()

    def loss(params):
        return torch.nn.functional.cross_entropy(case.torch_forward({**fixed, **params}, x), y)

    def grad(params):
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        return dict(zip(params, torch.autograd.grad(loss(params), list(params.values()))))

    def hvp(params, v):
        return torch.func.jvp(torch.func.grad(loss), (params,), (v,))[1]

    def hvp_batch(params, vs):
        return torch.func.vmap(lambda v: hvp(params, v))(vs)

    return {"loss": loss, "gradient": grad, "hvp": hvp, "hvp_batch": hvp_batch}


# -------------------------------------------------------------------------- cases
def c1_case():
    model, x, y, source = c1_batch(128)
    return Case(model, x, y, source, TRAINABLE, jax_c1, torch_c1, from_logits=True)


def mobilenetv2_case():
    # The first images of C1's batch; C1's model is discarded.
    _, x, y, source = c1_batch(ARGS.mobilenetv2_batch)
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None, classes=10)
    trainable = [v.path for v in model.trainable_variables]
    return Case(
        model, x, y, source, trainable, twins.jax_forward(model), twins.torch_forward(model),
        from_logits=False, jax_batched="loop",
    )  # fmt: skip


def _loss(case, dtype="float32"):
    # MobileNetV2 ends in a softmax: Keras's crossentropy of probabilities takes the
    # Softmax op's input inside the tf.function, i.e. the twins' log_softmax of the logits.
    return keras.losses.SparseCategoricalCrossentropy(from_logits=case.from_logits, dtype=dtype)


# ------------------------------------------------------------ products to compare
def _probes(case, weights):
    """A fixed vector and k fixed vectors (dicts path -> float64 array), seeded."""
    rng = np.random.default_rng(0)
    vector = {k: rng.standard_normal(weights[k].shape) for k in case.trainable}
    vectors = {k: rng.standard_normal((ARGS.batch_k, *weights[k].shape)) for k in case.trainable}
    return vector, vectors


def _our_products(op, batch, vector, vectors):
    """``{quantity: () -> dict path -> array}``: the per-replica kernels (sums, not means)."""
    paths = [v.path for v in op.variables]
    one = [tf.constant(vector[p], op.dtype) for p in paths]
    many = [tf.constant(vectors[p], op.dtype) for p in paths]

    def numpy(values):
        return {p: t.numpy() for p, t in zip(paths, values)}

    return {
        "gradient": lambda: numpy(op._replica_grad(batch)[0]),
        "hvp": lambda: numpy(op._replica_hvp(batch, one)[0]),
        "hvp_batch": lambda: numpy(op._replica_hvp_batch(batch, many)[0]),
    }


def _our_operator(case, dtype):
    """``(HessianOperator, batch)`` on the model (float32) or its float64 twin."""
    if dtype == "float32":
        batch = (case.x, case.y)
        return tf_hessian.HessianOperator(case.model, _loss(case), batch), batch
    batch = (tf.cast(case.x, dtype), case.y)
    twin = precision.float64_twin(case.model)
    return tf_hessian.HessianOperator(twin, _loss(case, dtype), batch), batch


def _ours(case, vector, vectors, dtype="float32"):
    op, batch = _our_operator(case, dtype)
    return (op, batch), _our_products(op, batch, vector, vectors)


def _peer_products(functions, weights, vector, vectors, convert, to_numpy):
    """``{quantity: () -> dict path -> array}`` of a peer's ``functions`` at ``weights``."""
    params = {k: convert(weights[k]) for k in vector}
    one = {k: convert(v) for k, v in vector.items()}
    many = {k: convert(v) for k, v in vectors.items()}

    def numpy(values):
        return {k: to_numpy(v) for k, v in values.items()}

    return {
        "loss": lambda: float(to_numpy(functions["loss"](params))),
        "gradient": lambda: numpy(functions["gradient"](params)),
        "hvp": lambda: numpy(functions["hvp"](params, one)),
        "hvp_batch": lambda: numpy(functions["hvp_batch"](params, many)),
    }


def _jax(case, weights, vector, vectors, dtype=jnp.float32):
    return _peer_products(
        jax_functions(case, weights, dtype), weights, vector, vectors,
        lambda a: jnp.asarray(a, dtype), np.asarray,
    )  # fmt: skip


def _torch(case, weights, vector, vectors, dtype=torch.float32):
    return _peer_products(
        torch_functions(case, weights, dtype), weights, vector, vectors,
        lambda a: torch.tensor(a, dtype=dtype), lambda t: t.detach().numpy(),
    )  # fmt: skip


# -------------------------------------------------------------------- measurements
def _relative(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def _per_variable_error(a, b):
    """Largest per-variable relative error of dicts name -> array (float64 reference b)."""
    return max(_relative(a[k], b[k]) for k in b)


def _log(message):
    # Progress on stderr (stdout is the JSON): first calls of a large network take minutes.
    print(f"[hessian_peers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _interleaved(products):
    """(first-call seconds, median seconds) per (framework, quantity), rounds interleaved."""
    functions = {(f, q): products[f][q] for q in QUANTITIES for f in FRAMEWORKS}
    first = {}
    for key, fn in functions.items():
        start = time.perf_counter()
        fn()
        first[key] = time.perf_counter() - start
        _log(f"first call {key[0]}/{key[1]}: {first[key]:.1f} s")
    samples = {key: [] for key in functions}
    for _ in range(ARGS.repeats):
        for key, fn in functions.items():
            start = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - start)
    median = {key: float(np.median(v)) for key, v in samples.items()}
    for framework in FRAMEWORKS:
        median[(framework, "hvp_batch_per_vector")] = (
            median[(framework, "hvp_batch")] / ARGS.batch_k
        )
    return first, median


def _float32_errors(products, reference):
    """Each framework's float32 gradient and HVP against its own float64."""
    return {
        f: {
            q: _per_variable_error(products[f][q](), reference[f][q]()) for q in ("gradient", "hvp")
        }
        for f in FRAMEWORKS
    }


def _timing_summary(first, median):
    faster_hvp = min(median[("jax", "hvp")], median[("torch", "hvp")])
    return {
        "seconds_median": {f"{f}/{q}": v for (f, q), v in median.items()},
        "first_call_seconds": {f"{f}/{q}": v for (f, q), v in first.items()},
        "our_hvp_over_faster_peer": median[("ours", "hvp")] / faster_hvp,
        "our_gradient_over_faster_peer": median[("ours", "gradient")]
        / min(median[("jax", "gradient")], median[("torch", "gradient")]),
        "our_batched_per_vector_over_faster_peer": median[("ours", "hvp_batch_per_vector")]
        / min(median[("jax", "hvp_batch_per_vector")], median[("torch", "hvp_batch_per_vector")]),
        "goal_hvp_at_most_half_the_faster_peer": median[("ours", "hvp")] <= 0.5 * faster_hvp,
    }


def _float64_means(ours64, reference):
    """{framework: {"loss", "gradient", "hvp"}} of the mean loss in float64."""
    op64, batch = ours64
    _, norm, total = op64._replica_grad(batch)
    norm = float(norm)
    ours = {
        "loss": float(total) / norm,
        "gradient": {k: v / norm for k, v in reference["ours"]["gradient"]().items()},
        "hvp": {k: v / norm for k, v in reference["ours"]["hvp"]().items()},
    }
    peers = {
        f: {q: reference[f][q]() for q in ("loss", "gradient", "hvp")} for f in ("jax", "torch")
    }
    return {"ours": ours, **peers}


def _float64_agreement(ours64, reference):
    """Largest relative difference between any two frameworks in float64."""
    means = _float64_means(ours64, reference)
    pairs = [("ours", "jax"), ("ours", "torch"), ("jax", "torch")]
    return {
        "loss": max(_relative(means[a]["loss"], means[b]["loss"]) for a, b in pairs),
        **{
            q: max(_per_variable_error(means[a][q], means[b][q]) for a, b in pairs)
            for q in ("gradient", "hvp")
        },
    }


def _compare(case):
    """(float32 products, (float64 operator, batch), float64 products, timings) of one case."""
    weights = {v.path: v.numpy() for v in case.model.weights}
    vector, vectors = _probes(case, weights)
    _, ours = _ours(case, vector, vectors)
    products = {
        "ours": ours,
        "jax": _jax(case, weights, vector, vectors),
        "torch": _torch(case, weights, vector, vectors),
    }
    first, median = _interleaved(products)
    _log("timed rounds done; float64 references")
    operator64, ours64 = _ours(case, vector, vectors, "float64")
    reference = {
        "ours": ours64,
        "jax": _jax(case, weights, vector, vectors, jnp.float64),
        "torch": _torch(case, weights, vector, vectors, torch.float64),
    }
    return products, operator64, reference, (first, median)


def run_c1():
    case = c1_case()
    products, _, reference, (first, median) = _compare(case)
    errors = _float32_errors(products, reference)
    pinned = precision.pinned_float64_twin(case.model, case.x)
    batch = (tf.cast(case.x, tf.float64), case.y)
    op_pinned = tf_hessian.HessianOperator(pinned, _loss(case, "float64"), batch)
    paths = [v.path for v in op_pinned.variables]
    gp = dict(zip(paths, (g.numpy() for g in op_pinned._replica_grad(batch)[0])))
    errors["ours_at_float32_pool_choices"] = {
        "gradient": _per_variable_error(products["ours"]["gradient"](), gp)
    }
    return {
        "data": case.source,
        "threads": ARGS.threads,
        "repeats": ARGS.repeats,
        "batch_k": ARGS.batch_k,
        "load_average_start_end": None,
        **_timing_summary(first, median),
        "float32_max_per_variable_relative_error": errors,
        "max_pool_flips": precision.max_pool_flips(case.model, case.x),
    }


def relu_flips(model, x):
    """{ReLU layer: inputs on another side of a kink (0, max_value) in float32 than float64}.

    MobileNetV2's analogue of `precision.max_pool_flips`: a flipped unit moves its
    gradient entries, which float32 rounding alone does not.
    """
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    twin = precision.float64_twin(model)
    sides = []
    for network, inputs in ((model, x), (twin, tf.cast(x, tf.float64))):
        probe = keras.Model(network.inputs, [network.get_layer(r.name).input for r in relus])
        values = probe(inputs, training=False)
        kinks = [[0.0, r.max_value or np.inf] for r in relus]
        sides.append([np.digitize(v, k, right=True) for v, k in zip(values, kinks)])
    flips = {r.name: int(np.sum(a != b)) for r, a, b in zip(relus, *sides)}
    return {name: n for name, n in flips.items() if n}


def run_mobilenetv2():
    case = mobilenetv2_case()
    products, operator64, reference, (first, median) = _compare(case)
    return {
        "model": "mobilenetv2",
        "parameters": int(sum(np.prod(v.shape) for v in case.model.trainable_variables)),
        "batch": ARGS.mobilenetv2_batch,
        "loss": "mean sparse categorical cross-entropy of the softmax output (from its logits)",
        "jax_batched_hvp": JAX_BATCHED[case.jax_batched][0],
        "data": case.source,
        "threads": ARGS.threads,
        "repeats": ARGS.repeats,
        "batch_k": ARGS.batch_k,
        "load_average_start_end": None,
        "float64_max_relative_difference": _float64_agreement(operator64, reference),
        **_timing_summary(first, median),
        "float32_max_per_variable_relative_error": _float32_errors(products, reference),
        "relu_flips": relu_flips(case.model, case.x),
    }


RUNS = {"c1": run_c1, "mobilenetv2": run_mobilenetv2}


def main():
    for name in ARGS.models.split(","):
        load_start = os.getloadavg()
        out = RUNS[name]()
        out["load_average_start_end"] = [round(load_start[0], 2), round(os.getloadavg()[0], 2)]
        print(json.dumps(out, indent=1), flush=True)


if __name__ == "__main__":
    main()
