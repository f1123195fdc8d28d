"""Demo section: ANODE's gradient check and the baseline / ANODE / ANODEV2 comparison (tf_ode.demo)."""

import os

from tf_ode import demo


def run(workdir, context=None):
    """Runs `tf_ode.demo.run_demo`; returns both tables and the gradient-error plot."""
    result = demo.run_demo(workdir)
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
