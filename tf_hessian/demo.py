"""A 2-3 minute version of the study for the project-wide demo report.

``run_demo(workdir)`` trains M1 on embedded MNIST-5k at three batch sizes (16, 256,
2048) and once robustly, analyses each on the same 500 examples, then runs the
full single-model analysis (top-k spectrum, SLQ density, 1-D and 2-D landscapes) on
the smallest- and largest-batch models.
"""

from __future__ import annotations

import os
import time

import tensorflow as tf

from tf_hessian import analyze_lib, study_lib
from tf_hessian.configs import analyze, study


def run_demo(workdir: str) -> dict:
    """Runs the demo study and writes its table and plots under ``workdir``.

    Returns:
      Dict with ``table`` (markdown), ``markdown`` (path of the table file),
      ``plots`` (name -> PNG path), ``rows`` and ``seconds``.
    """
    start = time.perf_counter()
    config = study.get_config("report")
    strategy = tf.distribute.get_strategy()
    results = study_lib.run_study(config, workdir, strategy)
    plots = {k: v for k, v in results["paths"].items() if k.endswith("_plot")}
    analysis = analyze.get_config()
    analysis.num_examples = 128
    analysis.top_n = 5
    analysis.method = "lanczos"
    analysis.max_iter = 30
    analysis.lambda_min = False  # the study's SLQ run already gives lambda_min
    analysis.trace_max_iter = 10
    analysis.density_num_iter = 30
    analysis.landscape_points = 15
    analysis.landscape_2d_points = 7
    analysis.robustness_epsilons = (0.0, 0.05, 0.1, 0.2)
    analysis.input_examples = 10
    for batch_size in (min(config.batch_sizes), max(config.batch_sizes)):
        run_dir = os.path.join(workdir, f"b{batch_size}")
        out = analyze_lib.analyze_checkpoint(analysis, run_dir, os.path.join(run_dir, "analysis"))
        for name, path in out["plots"].items():
            plots[f"b{batch_size}_{name}"] = path
    return {
        "table": results["note"] + "\n" + results["table"],
        "markdown": results["paths"]["markdown"],
        "plots": plots,
        "rows": results["rows"],
        "seconds": time.perf_counter() - start,
    }
