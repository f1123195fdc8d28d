r"""Stiff problem: Van der Pol, mu = 1000, on [0, 3000], `odeint(method="bdf")` vs scipy Radau.

Run:  nice python benchmarks/ode_stiff.py [--rtols 1e-6 1e-8] [--mu 1000] [--t_end 3000]

y1' = y2, y2' = mu (1 - y1^2) y2 - y1, y(0) = (2, 0), float64, outputs at 7 equally spaced
times. The reference is scipy `solve_ivp(method="Radau", rtol=atol=1e-12)`; scipy Radau at
rtol = atol = 1e-6 is the peer (its evaluations: `nfev`, plus `njev` Jacobians by finite
differences, each costing 2 more evaluations here). Ours: TFP's BDF through
`tf_ode.odeint(method="bdf", gradient="adjoint")` in a `tf.function` (its Jacobian by autodiff,
counted separately). Prints JSON: seconds (second call, after tracing), evaluations, Jacobians,
max abs error at the output times against the reference, and the ratio of our evaluations to
Radau's.
"""

import argparse
import json
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mu", type=float, default=1000.0)
    parser.add_argument("--t_end", type=float, default=3000.0)
    parser.add_argument("--rtols", type=float, nargs="+", default=[1e-6, 1e-8])
    args = parser.parse_args()
    import scipy.integrate

    mu = args.mu
    times = np.linspace(0.0, args.t_end, 7)

    def field(t, y):
        return [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]

    start = time.perf_counter()
    ref = scipy.integrate.solve_ivp(
        field, (0, args.t_end), [2.0, 0.0], method="Radau", rtol=1e-12, atol=1e-12, t_eval=times
    )
    out = {"problem": f"Van der Pol mu={mu} on [0, {args.t_end}]", "reference_seconds": None}
    out["reference_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    radau = scipy.integrate.solve_ivp(
        field, (0, args.t_end), [2.0, 0.0], method="Radau", rtol=1e-6, atol=1e-6, t_eval=times
    )
    out["radau_1e-6"] = {
        "seconds": time.perf_counter() - start,
        "evaluations": int(radau.nfev),
        "jacobians": int(radau.njev),
        "max_error": float(np.abs(radau.y - ref.y).max()),
    }
    import tensorflow as tf

    import tf_ode

    rows = {}
    for rtol in args.rtols:

        @tf.function
        def solve(y0, rtol=rtol):
            return tf_ode.odeint(
                lambda t, y: tf.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]),
                y0,
                tf.constant(times),
                method="bdf",
                gradient="adjoint",
                rtol=rtol,
                atol=rtol,
                max_num_steps=200000,
                return_info=True,
            )

        y0 = tf.constant([2.0, 0.0], tf.float64)
        solve(y0)
        start = time.perf_counter()
        ys, info = solve(y0)
        seconds = time.perf_counter() - start
        rows[f"bdf_rtol_{rtol:g}"] = {
            "seconds": seconds,
            "evaluations": int(info.num_function_evaluations),
            "max_error": float(np.abs(ys.numpy().T - ref.y).max()),
            "evaluations_over_radau": int(info.num_function_evaluations) / int(radau.nfev),
        }
    out["ours"] = rows
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
