"""Demo section: ANODE's gradient check and the baseline / ANODE / ANODEV2 comparison (tf_ode.demo)."""

import os

from tf_ode import demo

# Epochs of the demo comparison: fewer than tf_ode.demo's 10 so that `make demo` stays within
# five minutes on 2 cores (the three variants already separate after 4 epochs on the digits).
DEMO_EPOCHS = 4


def comparison_config():
    """`tf_ode.demo.demo_comparison_config()` with `DEMO_EPOCHS` epochs."""
    config = demo.demo_comparison_config()
    config.num_epochs = DEMO_EPOCHS
    return config


def run(workdir, context=None):
    """Runs `tf_ode.demo.run_demo`; returns both tables and the gradient-error plot."""
    result = demo.run_demo(workdir, comparison_config=comparison_config())
    plot = os.path.relpath(result["gradcheck_plot"], workdir)
    markdown = "\n".join(
        [
            "**Gradient check** (relative error of the gradient; `dto` = discretize-then-optimize):",
            "",
            result["gradcheck_table"],
            "",
            f"![gradient error vs Nt]({plot})",
            "",
            "**Comparison on embedded digits** (same budget for every variant):",
            "",
            result["comparison_table"],
            "",
        ]
    )
    return {"markdown": markdown, "images": [result["gradcheck_plot"]], "result": result}
