r"""Our adaptive solvers vs torchdiffeq 0.2.5: conv-block gradient time and float64 accuracy.

Run:  python benchmarks/ode_peer.py [--peer_python /tmp/odevenv/bin/python --threads 2]

The peer runs in a separate interpreter (torch is never a project dependency; make one with
`python3 -m venv /tmp/odevenv && /tmp/odevenv/bin/pip install torch==2.13.0 torchdiffeq==0.2.5
numpy scipy`). When that interpreter or torch is missing the peer rows are skipped and the JSON
says why.

1. Conv block: dz/dt = f(z), f = conv3x3-GroupNorm-ReLU-conv3x3-GroupNorm-ReLU (ANODE's block,
   `ConvODEFunc`), float32, the same weights and input in both frameworks, t in [0, 1], loss
   mean(z(1)^2), gradient w.r.t. the input and every weight. Ours: `method="dopri5"` with
   gradient "dto" (backprop through the accepted steps) and "adjoint", plus "tfp_dopri5";
   torchdiffeq: `odeint` (direct backprop) and `odeint_adjoint`, same rtol/atol. Median and
   minimum forward+backward seconds over --repeats calls after a warm-up (ours inside
   tf.function; ratios use the medians and, separately, the minima), and
   forward / backward function evaluations.
2. Accuracy: torchdiffeq's own `LinearODE` test problem (dim 10, A = U - U^T, U ~ 0.1 N(0, 1),
   y(1) = expm(A) 1, outputs at linspace(1, 8, 10)), float64, rtol = atol = --accuracy_tol;
   max abs error against expm.
Prints JSON with both sides, measured in one run, and the ratios.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np


def _problem_arrays(args):
    rng = np.random.default_rng(0)
    c, k = args.channels, 3
    bound = np.sqrt(6.0 / (2 * 9 * c)) * np.sqrt(2.0)  # Xavier-uniform, gain sqrt(2)
    arrays = {
        "x": rng.normal(size=(args.batch, args.size, args.size, c)).astype(np.float32),
        "kernel_1": rng.uniform(-bound, bound, size=(k, k, c, c)).astype(np.float32),
        "kernel_2": rng.uniform(-bound, bound, size=(k, k, c, c)).astype(np.float32),
        "bias_1": (0.1 * rng.normal(size=c)).astype(np.float32),
        "bias_2": (0.1 * rng.normal(size=c)).astype(np.float32),
        "u": rng.normal(size=(10, 10)) * 0.1,
    }
    arrays["a"] = 2 * arrays["u"] - (arrays["u"] + arrays["u"].T)
    return arrays


def _median_time(fn, repeats):
    fn()  # warm-up (tracing)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def _ours(args, arrays):
    import keras
    import scipy.linalg
    import tensorflow as tf

    import tf_ode
    from tf_ode import functions

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(0)
    func = functions.ConvODEFunc(norm="group")
    x = tf.constant(arrays["x"])
    func.build(x.shape)
    for name in ("kernel_1", "kernel_2", "bias_1", "bias_2"):
        getattr(func, name).assign(arrays[name])
    variables = func.trainable_variables
    rows = {}
    for label, method, gradient in (
        ("dopri5_dto", "dopri5", "dto"),
        ("dopri5_adjoint", "dopri5", "adjoint"),
        ("tfp_dopri5_adjoint", "tfp_dopri5", "adjoint"),
    ):
        counter = tf.Variable(0.0)  # float: TFP's adjoint cannot handle int variables in func

        def field(t, z, counter=counter):
            counter.assign_add(1.0)
            return func(z)

        @tf.function
        def step(x, method=method, gradient=gradient, field=field):
            with tf.GradientTape() as tape:
                tape.watch(x)
                ys, info = tf_ode.odeint(
                    field,
                    x,
                    tf.constant([0.0, 1.0]),
                    method=method,
                    gradient=gradient,
                    rtol=args.rtol,
                    atol=args.atol,
                    max_num_steps=10000,
                    return_info=True,
                )
                loss = tf.reduce_mean(ys[-1] ** 2)
            grads = tape.gradient(loss, [x] + variables)
            return loss, grads, info.num_function_evaluations

        seconds, fastest = _median_time(lambda step=step: step(x)[0].numpy(), args.repeats)
        counter.assign(0.0)
        loss, grads, nfe_forward = step(x)
        total = int(counter.numpy())
        rows[label] = {
            "median_forward_backward_seconds": seconds,
            "min_forward_backward_seconds": fastest,
            "loss": float(loss),
            "nfe_forward": int(nfe_forward),
            "nfe_backward": total - int(nfe_forward),
            "grad_input_norm": float(tf.norm(grads[0])),
        }
    # Accuracy on torchdiffeq's LinearODE.
    a_mat = arrays["a"]
    times = np.linspace(1.0, 8.0, 10)
    exact = np.stack([scipy.linalg.expm(a_mat * s) @ np.ones(10) for s in times])
    accuracy = {}
    for method in ("dopri5", "tsit5", "tfp_dopri5"):
        tol = args.accuracy_tol
        solve = tf.function(
            lambda y0, method=method, tol=tol: tf_ode.odeint(
                lambda t, y: tf.linalg.matvec(tf.constant(a_mat), y),
                y0,
                tf.constant(times),
                method=method,
                gradient="adjoint",
                rtol=tol,
                atol=tol,
                max_num_steps=100000,
            )
        )
        ys = solve(tf.constant(exact[0])).numpy()
        accuracy[method] = float(np.abs(ys - exact).max())
    return {"conv_block": rows, "linear_max_abs_error": accuracy}


def _peer(args, arrays):
    import scipy.linalg
    import torch
    import torchdiffeq

    torch.set_num_threads(args.threads)
    c = args.channels

    class Func(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(c, c, 3, padding=1)
            groups = max(g for g in (4, 2, 1) if c % g == 0)
            # Keras GroupNormalization's epsilon is 1e-3.
            self.norm1 = torch.nn.GroupNorm(groups, c, eps=1e-3)
            self.norm2 = torch.nn.GroupNorm(groups, c, eps=1e-3)
            self.nfe = 0
            with torch.no_grad():
                for conv, k, b in (
                    (self.conv1, "kernel_1", "bias_1"),
                    (self.conv2, "kernel_2", "bias_2"),
                ):
                    conv.weight.copy_(torch.from_numpy(arrays[k].transpose(3, 2, 0, 1).copy()))
                    conv.bias.copy_(torch.from_numpy(arrays[b]))

        def forward(self, t, z):
            self.nfe += 1
            h = torch.relu(self.norm1(self.conv1(z)))
            return torch.relu(self.norm2(self.conv2(h)))

    func = Func()
    x = torch.from_numpy(arrays["x"].transpose(0, 3, 1, 2).copy())
    t = torch.tensor([0.0, 1.0])
    rows = {}
    for label, solver in (
        ("direct_backprop", torchdiffeq.odeint),
        ("adjoint", torchdiffeq.odeint_adjoint),
    ):

        def step(solver=solver):
            xi = x.clone().requires_grad_(True)
            ys = solver(func, xi, t, rtol=args.rtol, atol=args.atol, method="dopri5")
            loss = (ys[-1] ** 2).mean()
            loss.backward()
            return loss, xi.grad, ys

        seconds, fastest = _median_time(step, args.repeats)
        func.nfe = 0
        xi = x.clone().requires_grad_(True)
        ys = solver(func, xi, t, rtol=args.rtol, atol=args.atol, method="dopri5")
        nfe_forward = func.nfe
        loss = (ys[-1] ** 2).mean()
        loss.backward()
        rows[label] = {
            "median_forward_backward_seconds": seconds,
            "min_forward_backward_seconds": fastest,
            "loss": float(loss),
            "nfe_forward": nfe_forward,
            "nfe_backward": func.nfe - nfe_forward,
            "grad_input_norm": float(xi.grad.norm()),
        }
    a_mat = arrays["a"]
    times = np.linspace(1.0, 8.0, 10)
    exact = np.stack([scipy.linalg.expm(a_mat * s) @ np.ones(10) for s in times])
    a_t = torch.from_numpy(a_mat)
    ys = torchdiffeq.odeint(
        lambda t, y: a_t @ y,
        torch.from_numpy(exact[0]),
        torch.from_numpy(times),
        rtol=args.accuracy_tol,
        atol=args.accuracy_tol,
        method="dopri5",
    )
    return {
        "conv_block": rows,
        "linear_max_abs_error": {"dopri5": float(np.abs(ys.numpy() - exact).max())},
        "versions": {"torch": torch.__version__, "torchdiffeq": torchdiffeq.__version__},
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-6)
    parser.add_argument("--accuracy_tol", type=float, default=1e-9)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--peer_python", default="/tmp/odevenv/bin/python")
    parser.add_argument("--child", choices=["peer"])
    args = parser.parse_args()
    arrays = _problem_arrays(args)
    if args.child == "peer":
        print(json.dumps(_peer(args, arrays)))
        return
    config = {k: v for k, v in vars(args).items() if k != "child"}
    ours = _ours(args, arrays)
    peer, skipped = None, None
    if not os.path.exists(args.peer_python):
        skipped = f"no peer interpreter at {args.peer_python}"
    else:
        check = subprocess.run(
            [args.peer_python, "-c", "import torch, torchdiffeq"], capture_output=True, text=True
        )
        if check.returncode != 0:
            skipped = f"torch/torchdiffeq not importable by {args.peer_python}"
    if skipped is None:
        flags = [f"--{k}={v}" for k, v in config.items() if k != "peer_python"]
        with tempfile.TemporaryDirectory():
            out = subprocess.run(
                [args.peer_python, os.path.abspath(__file__), "--child", "peer", *flags],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        peer = json.loads(out.strip().splitlines()[-1])
    result = {"config": config, "ours": ours, "torchdiffeq": peer, "peer_skipped": skipped}
    if peer is not None:
        ob, pb = ours["conv_block"], peer["conv_block"]
        direct = pb["direct_backprop"]["median_forward_backward_seconds"]
        result["ratios"] = {
            "dopri5_dto_over_torchdiffeq_direct_backprop": ob["dopri5_dto"][
                "median_forward_backward_seconds"
            ]
            / direct,
            "dopri5_adjoint_over_torchdiffeq_adjoint": ob["dopri5_adjoint"][
                "median_forward_backward_seconds"
            ]
            / pb["adjoint"]["median_forward_backward_seconds"],
            "dopri5_adjoint_over_torchdiffeq_direct_backprop": ob["dopri5_adjoint"][
                "median_forward_backward_seconds"
            ]
            / direct,
            "tfp_dopri5_adjoint_over_torchdiffeq_direct_backprop": ob["tfp_dopri5_adjoint"][
                "median_forward_backward_seconds"
            ]
            / direct,
            "min_time_dopri5_dto_over_torchdiffeq_direct_backprop": ob["dopri5_dto"][
                "min_forward_backward_seconds"
            ]
            / pb["direct_backprop"]["min_forward_backward_seconds"],
            "min_time_dopri5_adjoint_over_torchdiffeq_adjoint": ob["dopri5_adjoint"][
                "min_forward_backward_seconds"
            ]
            / pb["adjoint"]["min_forward_backward_seconds"],
            "linear_error_dopri5_over_torchdiffeq": ours["linear_max_abs_error"]["dopri5"]
            / peer["linear_max_abs_error"]["dopri5"],
            "linear_error_tfp_dopri5_over_torchdiffeq": ours["linear_max_abs_error"]["tfp_dopri5"]
            / peer["linear_max_abs_error"]["dopri5"],
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
