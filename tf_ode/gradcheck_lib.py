"""Gradient-consistency harness: continuous adjoint (OTD) vs DTO vs finite differences over Nt.

Reproduces ANODE's central claim (arXiv 1902.10298; spec section 1.5): the adjoint gradient
of a fixed-step network differs from the exact discrete (DTO) gradient by O(dt), large at
ResNet-like Nt = 1-2, and its reverse-time reconstruction of z(0) is poor, while DTO equals
finite differences of the discrete network to rounding, and checkpointed DTO equals DTO.
Everything runs in float64.
"""

import contextlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from tf_ode import blocks, functions, models, solvers

KINDS = ("conv", "coupled", "resnet4_anode", "resnet4_anodev2")


def _build(kind, *, method, num_steps, channels, size, seed):
    """Returns (layer_or_model, inputs, loss_fn(outputs) -> scalar, single_block or None)."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    solver = dict(method=method, num_steps=num_steps, gradient="dto", dtype="float64")
    if kind in ("conv", "coupled"):
        func = functions.ConvODEFunc(norm="none", activation="relu", dtype="float64")
        if kind == "conv":
            layer = blocks.ODEBlock(func, **solver)
        else:
            layer = blocks.CoupledODEBlock(func, weight_dynamics="rda", **solver)
        inputs = tf.constant(rng.normal(size=(2, size, size, channels)), tf.float64)
        layer.build(inputs.shape)
        if kind == "coupled":  # non-trivial advection / reaction so q matters
            for q in layer.dynamics.values():
                q.velocity.assign(rng.normal(size=q.velocity.shape) * 0.5)
                q.reaction_kernel.assign(rng.normal(size=q.reaction_kernel.shape) * 0.3)
        return layer, inputs, lambda z: tf.reduce_sum(tf.sin(z)), layer
    if kind in ("resnet4_anode", "resnet4_anodev2"):
        model = models.build_model(
            architecture="resnet4",
            variant=kind.split("_")[1],
            num_classes=10,
            input_shape=(size, size, 3),
            width=channels,
            norm="none",
            **solver_kwargs(solver),
        )
        inputs = tf.constant(rng.normal(size=(4, size, size, 3)), tf.float64)
        labels = tf.constant(rng.integers(0, 10, size=4))

        def loss(logits):
            return tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            )

        return model, inputs, loss, None
    raise ValueError(f"Unknown gradcheck kind. Expected one of {KINDS}. Received: kind={kind!r}")


@contextlib.contextmanager
def float64_policy():
    """Keras' global dtype policy set to float64 (it, not floatx, decides once it has been read).

    Kept for the whole check: some Keras layers consult the global policy at call time.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def solver_kwargs(solver):
    return {k: v for k, v in solver.items() if k != "dtype"}


def _ode_blocks(net):
    if isinstance(net, keras.Model):
        return [
            layer
            for layer in net.layers
            if isinstance(layer, blocks.ODEBlock | blocks.CoupledODEBlock)
        ]
    return [net]


def _gradients(net, inputs, loss_fn, gradient):
    for block in _ode_blocks(net):
        block.gradient = gradient
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        loss = loss_fn(net(inputs, training=False))
    grads = tape.gradient(loss, [inputs] + net.trainable_variables)
    return [
        np.zeros(v.shape) if g is None else g.numpy()
        for g, v in zip(grads, [inputs] + net.trainable_variables)
    ]


def _flat(arrays):
    return np.concatenate([a.ravel() for a in arrays])


def _relative(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _directional_fd(net, inputs, loss_fn, grads, seed, eps=1e-6):
    """|FD - g.v| / |g.v| along a random unit direction over the input and all weights."""
    rng = np.random.default_rng(seed + 1)
    variables = net.trainable_variables
    directions = [rng.normal(size=inputs.shape)] + [rng.normal(size=v.shape) for v in variables]
    norm = np.sqrt(sum(float(np.sum(d**2)) for d in directions))
    directions = [d / norm for d in directions]
    base = [v.numpy() for v in variables]

    def loss_at(sign):
        for v, b, d in zip(variables, base, directions[1:]):
            v.assign(b + sign * eps * d)
        return float(loss_fn(net(inputs + sign * eps * directions[0], training=False)))

    numeric = (loss_at(1.0) - loss_at(-1.0)) / (2 * eps)
    for v, b in zip(variables, base):
        v.assign(b)
    analytic = float(sum(np.sum(g * d) for g, d in zip(grads, directions)))
    return abs(numeric - analytic) / max(abs(analytic), 1e-300)


def _reconstruction_error(block, inputs, method, num_steps):
    """Relative error of z(0) reconstructed by solving the block's ODE backwards from z(1)."""
    if block is None:
        return float("nan")
    if isinstance(block, blocks.CoupledODEBlock):
        forward = block.trajectory(inputs, num_points=2)
        state = {"z": forward["z"][-1], "theta": {k: v[-1] for k, v in forward["theta"].items()}}

        def field(t, s):
            return {
                "z": block.func(s["z"], weights=s["theta"]),
                "theta": {k: block.dynamics[k](s["theta"][k]) for k in s["theta"]},
            }

        back = solvers.integrate_interval(
            field,
            state,
            tf.constant(1.0, tf.float64),
            tf.constant(0.0, tf.float64),
            num_steps,
            method,
        )["z"]
    else:
        z1 = block(inputs)
        back = solvers.integrate_interval(
            lambda t, z: block.func(z),
            z1,
            tf.constant(1.0, tf.float64),
            tf.constant(0.0, tf.float64),
            num_steps,
            method,
        )
    return _relative(back.numpy(), inputs.numpy())


def run_gradcheck(
    *, kind="conv", method="euler", nt_values=(1, 2, 4, 8, 32, 128), channels=8, size=8, seed=0
):
    """Measures gradient consistency for each Nt.

    Args:
      kind: "conv" (ANODE block, f = conv-ReLU-conv-ReLU, 8 channels), "coupled" (ANODEV2 block
        with RDA q), "resnet4_anode" / "resnet4_anodev2" (whole ResNet-4 classifier).
      method: fixed-step scheme used forwards (DTO) and backwards (adjoint).
      nt_values: numbers of steps Nt on [0, 1].
      channels, size: feature channels and spatial size (block) / width and image size (model).
      seed: weights, inputs and FD direction.

    Returns:
      List of dict rows: nt, adjoint_vs_dto_weights, adjoint_vs_dto_input, dto_vs_fd,
      checkpoint_vs_dto, reconstruction_error (NaN for models).
    """
    rows = []
    with float64_policy():
        for nt in nt_values:
            rows.append(_check_one(kind, method, nt, channels, size, seed))
    return rows


def _check_one(kind, method, nt, channels, size, seed):
    """One row of `run_gradcheck`."""
    net, inputs, loss_fn, block = _build(
        kind, method=method, num_steps=nt, channels=channels, size=size, seed=seed
    )
    dto = _gradients(net, inputs, loss_fn, "dto")
    adjoint = _gradients(net, inputs, loss_fn, "adjoint")
    ckpt = _gradients(net, inputs, loss_fn, "checkpoint")
    for b in _ode_blocks(net):
        b.gradient = "dto"
    return {
        "nt": int(nt),
        "adjoint_vs_dto_weights": _relative(_flat(adjoint[1:]), _flat(dto[1:])),
        "adjoint_vs_dto_input": _relative(adjoint[0], dto[0]),
        "dto_vs_fd": _directional_fd(net, inputs, loss_fn, dto, seed),
        "checkpoint_vs_dto": _relative(_flat(ckpt), _flat(dto)),
        "reconstruction_error": _reconstruction_error(block, inputs, method, nt),
    }


def markdown_table(rows):
    """Markdown table of `run_gradcheck` rows."""
    lines = [
        "| Nt | adjoint vs DTO (weights) | adjoint vs DTO (input) | DTO vs finite diff. | checkpoint vs DTO "
        "| z(0) reconstruction error |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['nt']} | {r['adjoint_vs_dto_weights']:.3g} | {r['adjoint_vs_dto_input']:.3g} | "
            f"{r['dto_vs_fd']:.2e} | {r['checkpoint_vs_dto']:.1e} | {r['reconstruction_error']:.3g} |"
        )
    return "\n".join(lines)


def plot(rows, path, title):
    """Log-log plot of the errors against Nt, saved as PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nts = [r["nt"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
    series = [
        ("adjoint_vs_dto_weights", "adjoint vs DTO, weight gradient", "o-"),
        ("adjoint_vs_dto_input", "adjoint vs DTO, input gradient", "s-"),
        ("reconstruction_error", "reverse-solve z(0) error", "^--"),
        ("dto_vs_fd", "DTO vs finite differences", "x:"),
    ]
    for key, label, style in series:
        values = [r[key] for r in rows]
        if all(np.isfinite(values)):
            ax.loglog(nts, np.maximum(values, 1e-17), style, label=label)
    ax.loglog(
        nts,
        [rows[0]["adjoint_vs_dto_weights"] * nts[0] / n for n in nts],
        "k--",
        lw=0.8,
        label="O(1/Nt)",
    )
    ax.set_xlabel("Nt (steps on [0, 1])")
    ax.set_ylabel("relative error")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(rows, output_dir, *, kind, method):
    """Writes gradcheck.json, gradcheck.md and gradcheck.png; returns their paths and the table."""
    os.makedirs(output_dir, exist_ok=True)
    table = markdown_table(rows)
    paths = {
        "json": os.path.join(output_dir, "gradcheck.json"),
        "markdown": os.path.join(output_dir, "gradcheck.md"),
        "plot": os.path.join(output_dir, "gradcheck.png"),
    }
    with open(paths["json"], "w") as f:
        json.dump({"kind": kind, "method": method, "rows": rows}, f, indent=2)
    with open(paths["markdown"], "w") as f:
        f.write(table + "\n")
    plot(rows, paths["plot"], f"{kind} block, {method}: gradient error vs Nt (float64)")
    return {**paths, "table": table}
