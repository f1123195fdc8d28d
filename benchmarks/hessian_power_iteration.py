r"""Hessian-vector products needed to reach a relative tolerance of 1e-3 on C1 (batch 128).

Run:  python benchmarks/hessian_power_iteration.py   (a few minutes on 2 CPU cores)
Prints JSON: power iteration (residual ||Hv - lambda v|| <= 1e-3 |lambda|) HVP count and
lambda_1, and the Lanczos run (Ritz residual <= 1e-3 |theta|) for comparison, with wall times.
"""

import json
import os
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from hessian_common import c1_batch  # noqa: E402

import tf_hessian  # noqa: E402


def main():
    model, x, y, source = c1_batch(128)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    op = tf_hessian.HessianOperator(model, loss_fn, (x, y))
    op.hvp_flat(np.zeros(op.dim))  # trace once, outside the timings
    results = {"model": "c1 (seeded init)", "batch_size": 128, "data": source, "tol": 1e-3}
    for method in ("power", "lanczos"):
        start = time.perf_counter()
        values, _, result = op.eigenvalues(1, 100, 1e-3, method=method, return_result=True)
        results[method] = {
            "lambda_1": values[0],
            "hvps": result.num_matvecs,
            "converged": result.converged[0],
            "seconds": time.perf_counter() - start,
            "history": result.history[0],
        }
    results["relative_difference"] = abs(
        results["power"]["lambda_1"] - results["lanczos"]["lambda_1"]
    ) / abs(results["lanczos"]["lambda_1"])
    results["load_average"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
