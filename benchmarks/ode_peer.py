r"""Ours vs torchdiffeq 0.2.5 and diffrax 0.7.2 (JAX): conv-block gradient time, fixed-step RK4
time, evaluation counts and float64 error.

Run:  python benchmarks/ode_peer.py [--peer_python /tmp/peers/bin/python --threads 1]

The peers run in a separate interpreter (torch, JAX and diffrax are never project dependencies):
`python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch==2.13.0 jax==0.10.2 diffrax
torchdiffeq numpy scipy` (torch from https://download.pytorch.org/whl/cpu). When that interpreter
or a peer is missing the peer rows are skipped and the JSON says why.

1. Conv block: dz/dt = f(z), f = conv3x3-GroupNorm-ReLU-conv3x3-GroupNorm-ReLU (ANODE's block,
   `ConvODEFunc`), float32, the same weights and input in every framework, t in [0, 1], loss
   mean(z(1)^2), gradient w.r.t. the input and every weight. Ours: `method="dopri5"` with
   gradient "dto" (backprop through the accepted steps) and "adjoint", plus "tfp_dopri5";
   torchdiffeq: `odeint` (direct backprop) and `odeint_adjoint`, same rtol/atol. Median and
   minimum forward+backward seconds over --repeats calls after a warm-up (ours inside
   tf.function; ratios use the medians and, separately, the minima), and
   forward / backward function evaluations.
2. Fixed-step RK4 on the same block: --fixed_steps classic RK4 steps over [0, 1], forward +
   backward (DTO: backprop through the unrolled steps). Ours: `odeint(method="rk4",
   gradient="dto")` in `tf.function`, with and without `jit_compile=True`; PyTorch: the same RK4
   written as a Python loop (autograd); JAX: the same loop under `jax.jit(jax.value_and_grad)`.
   The peer interpreter stays alive and the frameworks are timed in --fixed_rounds interleaved
   rounds of --fixed_repeats calls each (ours, PyTorch, JAX, ours, ...), so load changes hit all
   of them alike; the ratios are of the medians over all rounds.
3. Accuracy and work: torchdiffeq's own `LinearODE` test problem (dim 10, A = U - U^T,
   U ~ 0.1 N(0, 1), y(1) = expm(A) 1, outputs at linspace(1, 8, 10)), float64, rtol = atol = each
   of --accuracy_tols: max abs error against expm and function evaluations of ours (dopri5,
   tsit5, tfp_dopri5), torchdiffeq (dopri5, counted in func) and diffrax (Dopri5, Tsit5 with
   `PIDController`, `SaveAt(ts=...)`; counted at run time by a `jax.debug.callback` in the
   vector field). Compare at equal achieved error, not equal tolerance.
Prints JSON with every side, measured in one run, and the ratios.
"""

import argparse
import json
import os
import subprocess
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


def _our_conv_func(arrays):
    """Our ANODE conv block's dynamics with the shared weights of `arrays`, and its input x."""
    import keras
    import tensorflow as tf

    from tf_ode import functions

    keras.utils.set_random_seed(0)
    func = functions.ConvODEFunc(norm="group")
    x = tf.constant(arrays["x"])
    func.build(x.shape)
    for name in ("kernel_1", "kernel_2", "bias_1", "bias_2"):
        getattr(func, name).assign(arrays[name])
    return func, x


def _ours(args, arrays):
    import tensorflow as tf

    import tf_ode

    func, x = _our_conv_func(arrays)
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
    return {"conv_block": rows, "linear": _ours_linear(args, arrays)}


def _linear_problem(arrays):
    a_mat = arrays["a"]
    times = np.linspace(1.0, 8.0, 10)
    import scipy.linalg

    exact = np.stack([scipy.linalg.expm(a_mat * s) @ np.ones(10) for s in times])
    return a_mat, times, exact


def _ours_linear(args, arrays):
    import tensorflow as tf

    import tf_ode

    a_mat, times, exact = _linear_problem(arrays)
    rows = {}
    for method in ("dopri5", "tsit5", "tfp_dopri5"):
        rows[method] = []
        for tol in args.accuracy_tols:
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
                    return_info=True,
                )
            )
            ys, info = solve(tf.constant(exact[0]))
            rows[method].append(_linear_row(tol, int(info.num_function_evaluations), ys, exact))
    return rows


def _linear_row(tol, evaluations, ys, exact):
    error = float(np.abs(np.asarray(ys) - exact).max())
    return {"tol": tol, "evaluations": evaluations, "max_abs_error": error}


def _ours_fixed_step(args, arrays):
    """{label: callable} running one RK4 DTO forward + backward of ours (after a warm-up)."""
    import tensorflow as tf

    import tf_ode

    func, x = _our_conv_func(arrays)
    variables = func.trainable_variables
    t = tf.constant([0.0, 1.0])
    steps = {}
    for label, jit in (("rk4_dto", False), ("rk4_dto_xla", True)):

        @tf.function(jit_compile=jit)
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                ys = tf_ode.odeint(
                    lambda t, z: func(z), x, t, method="rk4", num_steps=args.fixed_steps,
                    gradient="dto",
                )  # fmt: skip
                loss = tf.reduce_mean(ys[-1] ** 2)
            return loss, tape.gradient(loss, [x] + variables)

        steps[label] = lambda step=step: float(step(x)[0])
        steps[label]()  # warm-up (tracing, compilation)
    return steps


def _peer(args, arrays):
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
    a_mat, times, exact = _linear_problem(arrays)
    a_t = torch.from_numpy(a_mat)
    counter = [0]

    def linear(t, y):
        counter[0] += 1
        return a_t @ y

    torch_rows = []
    for tol in args.accuracy_tols:
        counter[0] = 0
        ys = torchdiffeq.odeint(
            linear,
            torch.from_numpy(exact[0]),
            torch.from_numpy(times),
            rtol=tol,
            atol=tol,
            method="dopri5",
        )
        torch_rows.append(_linear_row(tol, counter[0], ys.numpy(), exact))
    return {
        "conv_block": rows,
        "linear": {"torchdiffeq_dopri5": torch_rows, **_diffrax_linear(args, arrays)},
        "versions": {"torch": torch.__version__, "torchdiffeq": torchdiffeq.__version__},
    }


def _diffrax_linear(args, arrays):
    try:
        import diffrax
        import jax
    except ImportError as e:
        return {"diffrax_skipped": str(e)}
    jax.config.update("jax_enable_x64", True)
    a_mat, times, exact = _linear_problem(arrays)
    a_j = jax.numpy.asarray(a_mat)
    counter = [0]

    def bump(*_):
        counter[0] += 1

    def field(t, y, args):
        jax.debug.callback(bump, t)  # runs once per evaluation actually executed
        return a_j @ y

    rows = {}
    for name, solver in (("diffrax_dopri5", diffrax.Dopri5()), ("diffrax_tsit5", diffrax.Tsit5())):
        rows[name] = []
        for tol in args.accuracy_tols:

            @jax.jit
            def solve(y0, solver=solver, tol=tol):
                return diffrax.diffeqsolve(
                    diffrax.ODETerm(field), solver, t0=times[0], t1=times[-1], dt0=None, y0=y0,
                    saveat=diffrax.SaveAt(ts=jax.numpy.asarray(times)),
                    stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol),
                    max_steps=100000,
                )  # fmt: skip

            y0 = jax.numpy.asarray(exact[0])
            jax.block_until_ready(solve(y0).ys)  # compile; count the second run only
            counter[0] = 0
            sol = solve(y0)
            ys = np.asarray(jax.block_until_ready(sol.ys))
            jax.effects_barrier()
            row = _linear_row(tol, counter[0], ys, exact)
            row["num_steps"] = int(sol.stats["num_steps"])
            rows[name].append(row)
    rows["versions_jax"] = {"jax": jax.__version__, "diffrax": diffrax.__version__}
    return rows


def _peer_fixed_step(args, arrays):
    """{"torch": callable, "jax": callable} running one unrolled RK4 forward + backward each."""
    import torch

    torch.set_num_threads(args.threads)
    c, n = args.channels, args.fixed_steps
    groups = max(g for g in (4, 2, 1) if c % g == 0)
    steps = {}

    class Func(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(c, c, 3, padding=1)
            self.norm1 = torch.nn.GroupNorm(groups, c, eps=1e-3)
            self.norm2 = torch.nn.GroupNorm(groups, c, eps=1e-3)
            with torch.no_grad():
                for conv, k, b in (
                    (self.conv1, "kernel_1", "bias_1"),
                    (self.conv2, "kernel_2", "bias_2"),
                ):
                    conv.weight.copy_(torch.from_numpy(arrays[k].transpose(3, 2, 0, 1).copy()))
                    conv.bias.copy_(torch.from_numpy(arrays[b]))

        def forward(self, z):
            h = torch.relu(self.norm1(self.conv1(z)))
            return torch.relu(self.norm2(self.conv2(h)))

    func = Func()
    x = torch.from_numpy(arrays["x"].transpose(0, 3, 1, 2).copy())

    def torch_step():
        func.zero_grad(set_to_none=True)
        z = xi = x.clone().requires_grad_(True)
        h = 1.0 / n
        for _ in range(n):
            k1 = func(z)
            k2 = func(z + (0.5 * h) * k1)
            k3 = func(z + (0.5 * h) * k2)
            k4 = func(z + h * k3)
            z = z + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        loss = (z**2).mean()
        loss.backward()
        del xi
        return float(loss)

    steps["torch_rk4"] = torch_step
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return steps

    def group_norm(h, gamma, beta):
        b, hh, ww, ch = h.shape
        r = h.reshape(b, hh, ww, groups, ch // groups)
        mean = r.mean(axis=(1, 2, 4), keepdims=True)
        var = r.var(axis=(1, 2, 4), keepdims=True)
        return ((r - mean) / jnp.sqrt(var + 1e-3)).reshape(b, hh, ww, ch) * gamma + beta

    def conv(z, kernel, bias):
        return (
            jax.lax.conv_general_dilated(
                z, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            + bias
        )

    def f(p, z):
        h = jax.nn.relu(group_norm(conv(z, p["kernel_1"], p["bias_1"]), p["gamma_1"], p["beta_1"]))
        return jax.nn.relu(
            group_norm(conv(h, p["kernel_2"], p["bias_2"]), p["gamma_2"], p["beta_2"])
        )

    def loss(p, z):
        h = 1.0 / n
        for _ in range(n):
            k1 = f(p, z)
            k2 = f(p, z + (0.5 * h) * k1)
            k3 = f(p, z + (0.5 * h) * k2)
            k4 = f(p, z + h * k3)
            z = z + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
        return jnp.mean(z**2)

    params = {k: jnp.asarray(arrays[k]) for k in ("kernel_1", "kernel_2", "bias_1", "bias_2")}
    for i in (1, 2):
        params[f"gamma_{i}"] = jnp.ones([c], jnp.float32)
        params[f"beta_{i}"] = jnp.zeros([c], jnp.float32)
    grad_fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    xj = jnp.asarray(arrays["x"])

    def jax_step():
        value, grads = grad_fn(params, xj)
        jax.block_until_ready(grads)
        return float(value)

    steps["jax_rk4"] = jax_step
    return steps


def _serve(args, arrays):
    """Peer side of the interleaved fixed-step timing: "<label> <n>" -> JSON list of n seconds."""
    import sys

    steps = _peer_fixed_step(args, arrays)
    losses = {label: step() for label, step in steps.items()}  # warm-up (compilation)
    print(json.dumps({"ready": sorted(steps), "losses": losses}), flush=True)
    for line in sys.stdin:
        label, count = line.split()
        times = []
        for _ in range(int(count)):
            start = time.perf_counter()
            steps[label]()
            times.append(time.perf_counter() - start)
        print(json.dumps(times), flush=True)


def _interleaved_fixed_step(args, arrays):
    ours = _ours_fixed_step(args, arrays)
    losses = {label: step() for label, step in ours.items()}
    env = dict(os.environ)
    if args.threads == 1:  # XLA:CPU on one thread, as torch.set_num_threads(1) and ours
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    server = subprocess.Popen(
        [args.peer_python, os.path.abspath(__file__), "--child", "serve", *_flag_argv(args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        ready = json.loads(server.stdout.readline())
        losses.update(ready["losses"])
        times = {label: [] for label in [*ours, *ready["ready"]]}
        for _ in range(args.fixed_rounds):
            for label, step in ours.items():
                for _ in range(args.fixed_repeats):
                    start = time.perf_counter()
                    step()
                    times[label].append(time.perf_counter() - start)
            for label in ready["ready"]:
                server.stdin.write(f"{label} {args.fixed_repeats}\n")
                server.stdin.flush()
                times[label] += json.loads(server.stdout.readline())
    finally:
        server.stdin.close()
        server.wait()
    rows = {
        label: {
            "median_forward_backward_seconds": float(np.median(ts)),
            "min_forward_backward_seconds": float(np.min(ts)),
            "calls": len(ts),
            "loss": losses[label],
        }
        for label, ts in times.items()
    }
    ratios = {}
    for ours_label in ours:
        for peer_label in ready["ready"]:
            ratios[f"{ours_label}_over_{peer_label}"] = (
                rows[ours_label]["median_forward_backward_seconds"]
                / rows[peer_label]["median_forward_backward_seconds"]
            )
    return {"rows": rows, "ratios": ratios}


def _flag_argv(args):
    """args as command-line tokens for the peer interpreter."""
    argv = []
    for key, value in vars(args).items():
        if key not in ("child", "peer_python"):
            argv += [f"--{key}", *map(str, value if isinstance(value, list) else [value])]
    return argv


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-6)
    parser.add_argument("--accuracy_tols", type=float, nargs="+", default=[1e-6, 1e-8, 1e-10])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--fixed_steps", type=int, default=8)
    parser.add_argument("--fixed_rounds", type=int, default=5)
    parser.add_argument("--fixed_repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--peer_python", default="/tmp/peers/bin/python")
    parser.add_argument("--child", choices=["peer", "serve"])
    args = parser.parse_args()
    arrays = _problem_arrays(args)
    if args.child == "peer":
        print(json.dumps(_peer(args, arrays)))
        return
    if args.child == "serve":
        _serve(args, arrays)
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    config = {k: v for k, v in vars(args).items() if k != "child"}
    peer, skipped = None, None
    if not os.path.exists(args.peer_python):
        skipped = f"no peer interpreter at {args.peer_python}"
    else:
        check = subprocess.run(
            [args.peer_python, "-c", "import torch, torchdiffeq"], capture_output=True, text=True
        )
        if check.returncode != 0:
            skipped = f"torch/torchdiffeq not importable by {args.peer_python}"
    fixed_step = _interleaved_fixed_step(args, arrays) if skipped is None else None
    ours = _ours(args, arrays)
    if skipped is None:
        out = subprocess.run(
            [args.peer_python, os.path.abspath(__file__), "--child", "peer", *_flag_argv(args)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        peer = json.loads(out.strip().splitlines()[-1])
    result = {
        "config": config,
        "ours": ours,
        "peers": peer,
        "fixed_step_rk4": fixed_step,
        "peer_skipped": skipped,
    }
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
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
