"""~2-3 minute ANODE / ANODEV2 demo for the project report: gradient check + tiny comparison.

`run_demo(workdir)` reproduces ANODE's gradient-consistency claim on the conv ODE block (adjoint
vs DTO vs finite differences over Nt, table + PNG plot) and trains baseline / ANODE / ANODEV2
ResNet-4 on the embedded 8x8 digits for a few epochs (table of accuracy and time per epoch).
"""

import os

import tf_runtime
from tf_ode import compare_lib, gradcheck_lib
from tf_ode.configs import compare as compare_config


def demo_comparison_config():
    """The comparison config of the demo: ResNet-4 width 8 on embedded digits, 10 epochs."""
    config = compare_config.get_config()
    config.dataset = "digits"
    config.architecture = "resnet4"
    config.width = 8
    config.batch_size = 32
    config.num_epochs = 10
    config.learning_rate = 0.05
    config.lr_boundaries_epochs = ()
    config.summary_every = 10
    return config


def run_demo(workdir, *, nt_values=(1, 2, 4, 8, 32, 128), comparison_config=None):
    """Runs the demo and returns paths and markdown tables.

    Args:
      workdir: output folder (created).
      nt_values: Nt grid of the gradient check.
      comparison_config: override of `demo_comparison_config()` (tests pass a smaller one).

    Returns:
      Dict with `gradcheck_table`, `gradcheck_plot`, `gradcheck_json`, `comparison_table`,
      `comparison_json`, `comparison_markdown`, `gradcheck_rows`, `comparison_rows`.
    """
    os.makedirs(workdir, exist_ok=True)
    rows = gradcheck_lib.run_gradcheck(kind="conv", method="euler", nt_values=nt_values)
    grad = gradcheck_lib.write_outputs(
        rows, os.path.join(workdir, "gradcheck"), kind="conv", method="euler"
    )
    config = comparison_config or demo_comparison_config()
    comparison_dir = os.path.join(workdir, "comparison")
    tf_runtime.write_config(config, comparison_dir)
    compare = compare_lib.run_comparison(
        config, comparison_dir, tf_runtime.build_strategy("default")
    )
    return {
        "gradcheck_table": grad["table"],
        "gradcheck_plot": grad["plot"],
        "gradcheck_json": grad["json"],
        "gradcheck_rows": rows,
        "comparison_table": compare["table"],
        "comparison_json": compare["json"],
        "comparison_markdown": compare["markdown"],
        "comparison_rows": compare["rows"],
    }
