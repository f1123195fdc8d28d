r"""Accuracy of `odeint(method="bdf", gradient="sensitivity")` gradients on stiff problems.

Run:  nice python benchmarks/ode_bdf_gradient.py [--rtols 1e-6 1e-8 1e-10]
          [--problems linear van_der_pol]

1. dy/dt = s A y, A = [[-500.5, 499.5], [499.5, -500.5]] (eigenvalues -1 and -1000), s = 1,
   y0 = (1, 0.5), outputs at t = (0, 0.5, 1), loss = sum_k <w_k, y(t_k)>: gradients w.r.t. y0,
   t, A (a variable; exact: Frechet derivative of expm) and s, against the closed form.
2. Van der Pol, y1' = y2, y2' = mu ((1 - y1^2) y2 - y1), mu = 100, y0 = (2, 0), outputs at
   t = (0, 0.5, 1): gradients w.r.t. y0, t and mu against our dopri5 "dto" gradient at
   rtol = atol = 1e-12 (the explicit solver's exact discrete gradient, converged).

Prints JSON: per rtol (atol = rtol / 100), the max relative error of each gradient
(|got - exact| / max|exact|), seconds of the compiled solve + gradient (second call), and the
forward evaluations.
"""

import argparse
import json
import sys
import time

import numpy as np
import tensorflow as tf

import tf_ode
from tf_ode import linear_reference

STIFF = linear_reference.STIFF_2X2
F64 = tf.float64


def _relative_error(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / np.abs(want).max())


def _timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    print(f"traced and ran once in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def linear(rtols):
    y0, times = np.array([1.0, 0.5]), np.array([0.0, 0.5, 1.0])
    weights = np.array([[0.3, -0.2], [1.0, 2.0], [-0.5, 1.5]])
    exact = dict(
        zip(
            ("y0", "t", "matrix", "scale"),
            linear_reference.linear_gradients(y0, times, weights, STIFF),
        )
    )
    matrix = tf.Variable(STIFF)
    scale = tf.Variable(1.0, dtype=F64)
    rows = {}
    for rtol in rtols:

        @tf.function
        def grads(y0, t, rtol=rtol):
            with tf.GradientTape() as tape:
                tape.watch([y0, t])
                ys, info = tf_ode.odeint(
                    lambda s, y: scale * tf.linalg.matvec(matrix, y), y0, t, method="bdf",
                    gradient="sensitivity", rtol=rtol, atol=rtol / 100, return_info=True,
                )  # fmt: skip
                loss = tf.reduce_sum(ys * weights)
            return tape.gradient(loss, [y0, t, matrix, scale]), info.num_function_evaluations

        (got, nfe), seconds = _timed(grads, tf.constant(y0), tf.constant(times))
        row = {k: _relative_error(g, exact[k]) for k, g in zip(("y0", "t", "matrix", "scale"), got)}
        row.update(seconds=seconds, forward_evaluations=int(nfe))

        rows[f"rtol_{rtol:g}"] = row
    return {
        "problem": "2x2 linear, eigenvalues -1, -1000, t = (0, 0.5, 1)",
        "exact_y0": exact["y0"].tolist(),
        **rows,
    }


def van_der_pol(rtols):
    mu = tf.Variable(100.0, dtype=F64)
    weights = tf.constant([[0.0, 0.0], [1.0, 0.01], [-2.0, 0.03]], F64)

    def field(s, y):
        return tf.stack([y[1], mu * ((1.0 - y[0] ** 2) * y[1] - y[0])])

    def make(**options):
        @tf.function
        def grads(y0, t):
            with tf.GradientTape() as tape:
                tape.watch([y0, t])
                ys, info = tf_ode.odeint(
                    field, y0, t, return_info=True, max_num_steps=100000, **options
                )
                loss = tf.reduce_sum(ys * weights)
            return tape.gradient(loss, [y0, t, mu]), info.num_function_evaluations

        return grads

    args = (tf.constant([2.0, 0.0], F64), tf.constant([0.0, 0.5, 1.0], F64))
    reference, _ = make(method="dopri5", gradient="dto", rtol=1e-12, atol=1e-12)(*args)
    rows = {}
    for rtol in rtols:
        grads = make(method="bdf", gradient="sensitivity", rtol=rtol, atol=rtol / 100)
        (got, nfe), seconds = _timed(grads, *args)
        row = {k: _relative_error(g, r) for k, g, r in zip(("y0", "t", "mu"), got, reference)}
        row.update(seconds=seconds, forward_evaluations=int(nfe))
        rows[f"rtol_{rtol:g}"] = row
    return {"problem": "Van der Pol mu=100 from (2, 0), t = (0, 0.5, 1)", **rows}


PROBLEMS = {"linear": linear, "van_der_pol": van_der_pol}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rtols", type=float, nargs="+", default=[1e-6, 1e-8, 1e-10])
    parser.add_argument(
        "--problems", nargs="+", default=["linear", "van_der_pol"], choices=list(PROBLEMS)
    )
    args = parser.parse_args()
    print(json.dumps({name: PROBLEMS[name](args.rtols) for name in args.problems}, indent=2))


if __name__ == "__main__":
    main()
