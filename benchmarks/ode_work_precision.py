r"""Work-precision curve: max error vs function evaluations over a sweep of tolerances.

Run:  nice python benchmarks/ode_work_precision.py [--tols 1e-4 1e-6 1e-8 1e-10 1e-12]

Problem: torchdiffeq's float64 `LinearODE` test problem (dim 10, A = U - U^T with U ~ 0.1 N(0, 1),
seed 0, y0 = 1, outputs at linspace(1, 8, 10)), max abs error against expm over the outputs.
Solvers at rtol = atol = tol: ours (dopri5, tsit5, bosh3; dense output at the interior outputs)
and TFP's DormandPrince, all in `tf.function`; peers in this interpreter: scipy `solve_ivp`
RK45 (the same Dormand-Prince pair, Shampine's controller) and DOP853. Compare at equal achieved
error, not at equal tolerance (each library's controller maps tol to error differently).
Prints JSON rows {solver, tol, evaluations, max_error}.
"""

import argparse
import json

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tols", type=float, nargs="+", default=[1e-4, 1e-6, 1e-8, 1e-10, 1e-12])
    args = parser.parse_args()
    import scipy.integrate
    import scipy.linalg

    rng = np.random.default_rng(0)
    u = rng.normal(size=(10, 10)) * 0.1
    a_mat = u - u.T
    times = np.concatenate([[0.0], np.linspace(1.0, 8.0, 10)])
    exact = np.stack([scipy.linalg.expm(s * a_mat) @ np.ones(10) for s in times])
    rows = []
    for tol in args.tols:
        for method in ("RK45", "DOP853"):
            sol = scipy.integrate.solve_ivp(
                lambda t, y: a_mat @ y, (0, 8), np.ones(10), method=method, rtol=tol, atol=tol,
                t_eval=times,
            )  # fmt: skip
            rows.append(
                {
                    "solver": f"scipy_{method}",
                    "tol": tol,
                    "evaluations": int(sol.nfev),
                    "max_error": float(np.abs(sol.y.T - exact).max()),
                }
            )
    import tensorflow as tf

    import tf_ode

    a_tf = tf.constant(a_mat)
    for method in ("dopri5", "tsit5", "bosh3", "tfp_dopri5"):
        for tol in args.tols:
            if method == "bosh3" and tol < 1e-10:
                continue  # 3rd order: ~1e6 evaluations

            @tf.function
            def solve(y0, method=method, tol=tol):
                return tf_ode.odeint(
                    lambda t, y: tf.linalg.matvec(a_tf, y), y0, tf.constant(times), method=method,
                    gradient="adjoint", rtol=tol, atol=tol, max_num_steps=10**6,
                    return_info=True,
                )  # fmt: skip

            ys, info = solve(tf.ones([10], tf.float64))
            rows.append(
                {
                    "solver": method,
                    "tol": tol,
                    "evaluations": int(info.num_function_evaluations),
                    "max_error": float(np.abs(ys.numpy() - exact).max()),
                }
            )
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
