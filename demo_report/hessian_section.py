"""Demo section: the Hessian study at demo scale (tf_hessian.demo)."""

import os

from tf_hessian import demo


def run(workdir, context=None):
    """Runs `tf_hessian.demo.run_demo` and returns its table and plots (relative links)."""
    result = demo.run_demo(workdir)
    lines = [result["table"], ""]
    for name, path in sorted(result["plots"].items()):
        lines.append(f"![{name}]({os.path.relpath(path, workdir)})")
    return {
        "markdown": "\n".join(lines) + "\n",
        "images": list(result["plots"].values()),
        "result": result,
    }
