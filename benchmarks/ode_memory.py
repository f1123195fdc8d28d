r"""Peak memory and time of one training step: checkpointed DTO (ANODE) vs plain backprop.

Run:  python benchmarks/ode_memory.py [--blocks 4 --channels 16 --size 32 --batch 32]
      python benchmarks/ode_memory.py --inter_op_threads 1      # one op at a time
      python benchmarks/ode_memory.py --method dopri5 --rtol 1e-2 1e-4 1e-6   # adaptive DTO

A stack of L ODE blocks (ConvODEFunc, Euler) with Nt in {2, 8, 32}; each configuration runs in a
fresh subprocess; peak memory is TensorFlow's CPU allocator peak
(`tf.config.experimental.get_memory_info("CPU:0")["peak"]`, reset before the measured step)
during one compiled forward+backward+SGD step, after a warm-up step. Also prints the
analytic size of the activations kept for backprop. With an adaptive --method the rows run over
--rtol instead of Nt (softplus f, so the step count grows as rtol falls) and report the accepted
steps per block: "dto" keeps one state per accepted step, "checkpoint" the states of one
block's replay. Prints JSON.
"""

import argparse
import json
import subprocess
import sys
import time


def _measure(mode, nt, args, rtol=None):
    import keras
    import numpy as np
    import tensorflow as tf

    from tf_ode import blocks, functions

    # 0 = TF default (parallel). The allocator peak depends on the op schedule; 1 = one op at a time.
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)

    keras.utils.set_random_seed(0)
    adaptive = args.method != "euler"
    if adaptive:
        layers = [
            blocks.ODEBlock(
                functions.ConvODEFunc(norm="group", activation="softplus"),
                method=args.method,
                gradient=mode,
                rtol=rtol,
                atol=rtol * 1e-2,
                max_num_steps=100000,
            )
            for _ in range(args.blocks)
        ]
    else:
        layers = [
            blocks.ODEBlock(
                functions.ConvODEFunc(norm="group"), method="euler", num_steps=nt, gradient=mode
            )
            for _ in range(args.blocks)
        ]
    model = keras.Sequential([keras.Input((args.size, args.size, args.channels))] + layers)
    optimizer = keras.optimizers.SGD(0.01)
    optimizer.build(model.trainable_variables)
    x = tf.random.normal([args.batch, args.size, args.size, args.channels])

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    step(x)  # trace + warm-up
    for layer in layers:
        layer.nfe.assign(0.0)
    step(x)
    nfe_per_block = float(layers[0].nfe.numpy())
    tf.config.experimental.reset_memory_stats("CPU:0")
    base = tf.config.experimental.get_memory_info("CPU:0")["current"]
    start = time.perf_counter()
    float(step(x))
    seconds = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        float(step(x))
        times.append(time.perf_counter() - t0)
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    state_bytes = int(np.prod(x.shape)) * 4
    # f = conv-GN-ReLU-conv-GN-ReLU keeps ~8 state-sized tensors per evaluation for backprop.
    analytic = None
    if not adaptive:
        analytic = (
            args.blocks * nt * 8 * state_bytes
            if mode == "dto"
            else (args.blocks + nt * 8) * state_bytes
        )
    if adaptive:
        return {
            "mode": mode,
            "rtol": rtol,
            "nfe_forward_plus_backward_first_block": nfe_per_block,
            "peak_bytes_above_baseline": int(peak - base),
            "median_step_seconds": float(np.median(times)),
            "state_bytes": state_bytes,
        }
    return {
        "mode": mode,
        "nt": nt,
        "peak_bytes_above_baseline": int(peak - base),
        "first_measured_step_seconds": seconds,
        "median_step_seconds": float(np.median(times)),
        "analytic_saved_activation_bytes": analytic,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inter_op_threads", type=int, default=0)  # 0 = TF default
    parser.add_argument("--nt", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--method", default="euler", choices=["euler", "dopri5", "bosh3", "tsit5"])
    parser.add_argument("--rtol", type=float, nargs="+", default=[1e-2, 1e-4, 1e-6])
    parser.add_argument("--child", nargs=2, metavar=("MODE", "NT_OR_RTOL"))
    args = parser.parse_args()
    keys = ("blocks", "channels", "size", "batch", "repeats", "inter_op_threads", "method")
    if args.child:
        if args.method == "euler":
            row = _measure(args.child[0], int(args.child[1]), args)
        else:
            row = _measure(args.child[0], None, args, rtol=float(args.child[1]))
        print(json.dumps(row))
        return
    if args.method != "euler":
        rows = []
        for rtol in args.rtol:
            for mode in ("dto", "checkpoint"):
                cmd = [sys.executable, __file__, "--child", mode, str(rtol)]
                cmd += [f"--{k}={getattr(args, k)}" for k in keys]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
        config = {k: getattr(args, k) for k in keys}
        config["memory_source"] = "tf.config.experimental.get_memory_info('CPU:0') peak"
        print(json.dumps({"config": config, "rows": rows}, indent=2))
        return
    rows = []
    for nt in args.nt:
        for mode in ("dto", "checkpoint"):
            cmd = [sys.executable, __file__, "--child", mode, str(nt)] + [
                f"--{k}={getattr(args, k)}" for k in keys
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    ratios = {}
    for nt in args.nt:
        plain = next(r for r in rows if r["nt"] == nt and r["mode"] == "dto")
        ckpt = next(r for r in rows if r["nt"] == nt and r["mode"] == "checkpoint")
        ratios[str(nt)] = {
            "peak_memory_ratio_checkpoint_over_plain": ckpt["peak_bytes_above_baseline"]
            / max(plain["peak_bytes_above_baseline"], 1),
            "time_ratio_checkpoint_over_plain": ckpt["median_step_seconds"]
            / plain["median_step_seconds"],
        }
    config = {
        k: getattr(args, k)
        for k in ("blocks", "channels", "size", "batch", "repeats", "inter_op_threads")
    }
    config["method"] = "euler"
    config["memory_source"] = "tf.config.experimental.get_memory_info('CPU:0') peak (allocator)"
    print(json.dumps({"config": config, "rows": rows, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
