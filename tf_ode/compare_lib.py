"""Baseline vs ANODE vs ANODEV2: same architecture, data and recipe; accuracy and wall time."""

import json
import os
import platform
import time

import tf_runtime
from tf_ode import train_lib


def run_comparison(config, workdir, strategy):
    """Trains `config.variants` one after another with otherwise identical `config`.

    Returns:
      {"rows": [per-variant results], "table": markdown, "json": path, "markdown": path}.
    """
    rows = []
    for variant in config.variants:
        variant_config = config.copy_and_resolve_references()
        variant_config.variant = variant
        variant_dir = os.path.join(workdir, variant)
        tf_runtime.write_config(variant_config, variant_dir)
        start = time.time()
        results = train_lib.train_and_evaluate(variant_config, variant_dir, strategy)
        results["wall_seconds"] = time.time() - start
        rows.append(results)
    table = markdown_table(rows, config)
    paths = {
        "json": os.path.join(workdir, "comparison.json"),
        "markdown": os.path.join(workdir, "comparison.md"),
    }
    with open(paths["json"], "w") as f:
        json.dump(
            {"rows": rows, "host": platform.node(), "cpu_count": os.cpu_count()},
            f,
            indent=2,
            default=float,
        )
    with open(paths["markdown"], "w") as f:
        f.write(table + "\n")
    return {"rows": rows, "table": table, **paths}


def markdown_table(rows, config):
    """Markdown table of the comparison rows."""
    solver = f"{config.method}, Nt={config.num_steps}, {config.gradient}"
    lines = [
        f"{config.architecture} (width {config.width}) on {config.dataset}, {config.num_epochs} epoch(s), "
        f"batch {config.batch_size}; ODE variants: {solver}; ANODEV2 q = {config.weight_dynamics}.",
        "",
        "| variant | test accuracy (final) | best during training | test loss | final train loss (CE + wd) "
        "| s / epoch | f evals / step | params |",
        "|---|---|---|---|---|---|---|---|",
    ]
    nan = float("nan")
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r.get('eval_accuracy', nan):.4f} "
            f"| {r.get('best_eval_accuracy') or nan:.4f} | {r.get('eval_loss', nan):.4f} "
            f"| {r.get('loss', nan):.4f} | {r['seconds_per_epoch']:.1f} | {r.get('nfe', 0):.0f} "
            f"| {r['num_params']} |"
        )
    return "\n".join(lines)
