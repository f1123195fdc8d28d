r"""TFP DormandPrince solve + adjoint gradient time: eager vs tf.function vs XLA.

Run:  python benchmarks/ode_tfp.py [--channels 8 --size 16 --batch 8 --rtol 1e-3]

Coupled ANODEV2 block (ConvODEFunc + RDA q, softplus) solved with `method="tfp_dopri5"`,
`gradient="adjoint"` on [0, 1]; forward nfe from the block's counter (forward + adjoint
evaluations of one solve+gradient). Median of --repeats calls after a warm-up call. JSON.
"""

import argparse
import json
import time

import keras
import numpy as np
import tensorflow as tf

from tf_ode import blocks, functions


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--atol", type=float, default=1e-6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    block = blocks.CoupledODEBlock(
        functions.ConvODEFunc(activation="softplus"),
        weight_dynamics="rda",
        method="tfp_dopri5",
        gradient="adjoint",
        rtol=args.rtol,
        atol=args.atol,
        max_num_steps=1000,
    )
    x = tf.random.normal([args.batch, args.size, args.size, args.channels])
    block.build(x.shape)

    def solve_and_grad(x):
        block.nfe.assign(0.0)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.sin(block(x)))
        grads = tape.gradient(loss, block.trainable_variables)
        return loss, tf.add_n([tf.reduce_sum(g) for g in grads if g is not None]), block.nfe.value

    variants = {
        "eager": solve_and_grad,
        "tf_function": tf.function(solve_and_grad),
        "tf_function_xla": tf.function(solve_and_grad, jit_compile=True),
    }
    rows = []
    reference = None
    for name, fn in variants.items():
        start = time.perf_counter()
        loss, gsum, nfe = fn(x)
        first = time.perf_counter() - start
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            loss, gsum, nfe = fn(x)
            float(loss)
            times.append(time.perf_counter() - t0)
        reference = float(gsum) if reference is None else reference
        rows.append(
            {
                "mode": name,
                "median_seconds": float(np.median(times)),
                "first_call_seconds_incl_trace_compile": first,
                "nfe_forward_plus_adjoint": float(nfe),
                "gradient_checksum_rel_diff_vs_eager": abs(float(gsum) - reference)
                / max(abs(reference), 1e-12),
            }
        )
    print(json.dumps({"config": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
