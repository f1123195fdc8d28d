r"""Hessian analysis of a trained checkpoint (top-k, trace, density, landscapes).

Run:
  python -m tf_hessian.analyze --config=tf_hessian/configs/analyze.py \
      --workdir=runs/m1_b512 [--output_dir=runs/m1_b512/analysis] [--checkpoint=...]

Defaults: top-k eigenpairs by Lanczos (at most 100 steps, stopped when every Ritz pair's
residual ||H v - lambda v|| <= 1e-3 |lambda|), Hutchinson 100 / 1e-3 and SLQ 100 steps as
PyHessian, on a fixed 1,000-example subset of the training split in inference mode. The
official drivers' power iteration 10 / 1e-2 is the `code_preset` variant. Expected runtime: seconds to
minutes per checkpoint on CPU for M1; HVPs are ~2-4 gradient evaluations each.
"""

import ml_collections


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.split = "train"
    c.num_examples = 1000
    c.batch_size = 500
    c.dtype = "float32"  # "float64" for verification runs
    c.hvp_mode = "forward_over_reverse"
    c.top_n = 5
    c.method = "lanczos"  # or "power" (PyHessian); both stop on the residual <= tol |lambda|
    c.max_iter = 100
    c.tol = 1e-3
    c.lambda_min = True  # Lanczos estimate of the most negative eigenvalue (saddle check)
    c.lambda_min_iter = 40
    c.trace_max_iter = 100
    c.trace_tol = 1e-3
    c.density_num_iter = 100
    c.density_num_runs = 1
    c.landscape = True
    c.landscape_points = 21
    c.landscape_radius = 0.5
    c.landscape_2d_points = 13
    c.landscape_2d_radius = 0.3
    c.block_analysis = False
    # Accuracy vs FGSM radius ([0, 1] pixel units) on the run's eval split; () to skip.
    c.robustness_epsilons = (0.0, 0.02, 0.05, 0.1, 0.2)
    # Input-space robustness measures on this many eval examples (0 to skip):
    # mean ||grad_x loss|| and mean top eigenvalue of grad_x^2 loss (power iteration).
    c.input_examples = 100
    c.input_hessian_iter = 20
    if variant == "code_preset":
        c.method, c.max_iter, c.tol = "power", 10, 1e-2
    elif variant == "smoke":
        c.num_examples = 16
        c.batch_size = 8
        c.top_n = 2
        c.max_iter = 3
        c.lambda_min_iter = 3
        c.trace_max_iter = 2
        c.trace_tol = 1e-3
        c.density_num_iter = 4
        c.landscape_points = 3
        c.landscape_2d_points = 2
        c.block_analysis = True
        c.robustness_epsilons = (0.0, 0.1)
        c.input_examples = 4
        c.input_hessian_iter = 3
    elif variant:
        raise ValueError(f"Unknown config variant {variant!r}; use '', 'code_preset' or 'smoke'.")
    return c
