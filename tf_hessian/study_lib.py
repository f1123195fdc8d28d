"""The batch-size sweep and robust-training study of Yao et al. 2018, at CPU scale.

Entry point of ``python -m tf_hessian.study``: ``run_study(config, workdir, strategy)``.

Reference: Yao et al. 2018, §3-§5: lambda_max of the loss Hessian grows with the
batch size, large-batch models are less robust to FGSM, and robust training
lowers the spectrum. Every model is analysed on the same fixed examples.
"""

from __future__ import annotations

import copy
import json
import os
import time

import numpy as np
import tensorflow as tf

import tf_runtime
from tf_hessian import landscape, plots, train_lib
from tf_hessian.analyze_lib import analysis_data, hessian_operator, input_space_summary
from tf_hessian.density import slq, smooth_density


def _run_name(batch_size: int, robust: bool) -> str:
    return f"b{batch_size}" + ("_robust" if robust else "")


def _analyse(network, train_config, config) -> dict:
    analysis = config.analysis
    dataset = analysis_data(train_config, analysis)
    op = hessian_operator(network, dataset, analysis)
    start = time.perf_counter()
    values, vectors, result = op.eigenvalues(
        1,
        analysis.max_iter,
        analysis.tol,
        method=analysis.method,
        seed=analysis.seed,
        return_result=True,
    )
    trace_value, trace_result = op.trace(
        analysis.trace_max_iter, analysis.trace_tol, seed=analysis.seed, return_result=True
    )
    nodes, weights = slq(op, num_iter=analysis.density_num_iter, num_runs=1, seed=analysis.seed)
    alphas = np.linspace(
        -analysis.landscape_radius, analysis.landscape_radius, analysis.landscape_points
    )
    curve = landscape.loss_landscape_1d(op, vectors[0], alphas)
    ritz = np.sort(nodes[0])[::-1]
    return {
        "lambda_max": values[0],
        "power_iterations": result.num_matvecs,
        "power_converged": result.converged[0],
        "trace": trace_value,
        "trace_stderr": trace_result.standard_error,
        "trace_probes": trace_result.num_matvecs,
        "ritz_top": ritz[: config.spectrum_top_k].tolist(),
        "lambda_min_ritz": float(ritz[-1]),
        "slq_nodes": nodes[0].tolist(),
        "slq_weights": weights[0].tolist(),
        "landscape_alphas": alphas.tolist(),
        "landscape_top_eigenvector": curve.tolist(),
        "loss": op.loss(),
        "analysis_seconds": time.perf_counter() - start,
    }


def run_one(config, workdir: str, batch_size: int, robust: bool, strategy) -> dict:
    """Trains and analyses one model; reuses a finished ``row.json`` in its folder."""
    run_dir = os.path.join(workdir, _run_name(batch_size, robust))
    row_path = os.path.join(run_dir, "row.json")
    if tf.io.gfile.exists(row_path):
        with tf.io.gfile.GFile(row_path) as f:
            row = json.load(f)
        if config.analysis.input_examples and "input_gradient_norm" not in row:
            # Rows written before the input-space measures existed are completed in place.
            network, train_config, _ = train_lib.restore_network(run_dir)
            row.update(input_space_summary(network, train_config, config.analysis))
            with tf.io.gfile.GFile(row_path, "w") as f:
                json.dump(row, f, indent=2, default=float)
        return row
    train_config = copy.deepcopy(config.train)
    train_config.batch_size = batch_size
    train_config.robust.enabled = robust
    tf_runtime.write_config(train_config, run_dir)
    start = time.perf_counter()
    trained = train_lib.train_and_evaluate(train_config, run_dir, strategy)
    train_seconds = time.perf_counter() - start
    network, _, _ = train_lib.restore_network(run_dir)
    row = {
        "batch_size": batch_size,
        "robust": robust,
        "steps": trained["step"],
        "micro_batches": trained["schedule"]["num_micro_batches"],
        "test_accuracy": trained["test_accuracy"],
        "fgsm_accuracy": trained["fgsm_accuracy"],
        "train_seconds": train_seconds,
        **_analyse(network, train_config, config),
    }
    if config.analysis.input_examples:
        row.update(input_space_summary(network, train_config, config.analysis))
    with tf.io.gfile.GFile(row_path, "w") as f:
        json.dump(row, f, indent=2, default=float)
    return row


def markdown_table(rows: list[dict], config) -> str:
    """The study table (one line per model)."""
    eps = config.train.eval.fgsm_epsilon
    nan = float("nan")
    header = (
        f"| batch | robust | steps | test acc | FGSM acc (eps={eps}) | lambda_max | power its | "
        f"trace (± s.e.) | lambda_min (SLQ) | mean ‖∇x loss‖ | mean λ1(∇²x loss) | train s | analysis s |\n"
        "|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r['batch_size']} | {'yes' if r['robust'] else 'no'} | {r['steps']} | {r['test_accuracy']:.4f} | "
        f"{r['fgsm_accuracy']:.4f} | {r['lambda_max']:.4g} | {r['power_iterations']} | "
        f"{r['trace']:.4g} ± {r['trace_stderr']:.2g} | {r['lambda_min_ritz']:.3g} | "
        f"{r.get('input_gradient_norm', nan):.3g} | {r.get('input_hessian_lambda_max', nan):.3g} | "
        f"{r['train_seconds']:.0f} | {r['analysis_seconds']:.0f} |"
        for r in rows
    ]
    return header + "\n".join(lines) + "\n"


def write_outputs(rows: list[dict], config, workdir: str) -> dict:
    """study.md, study.json and the plots; returns their paths and the table."""
    table = markdown_table(rows, config)
    train = config.train
    length = f"{train.num_steps} steps" if train.num_steps else f"{train.epochs} epochs"
    note = (
        f"Model {train.model} on {train.data.name}; {length} per run, lr {train.optimizer.learning_rate}, "
        f"micro-batch {train.micro_batch_size} (accumulation={train.accumulate}); Hessian quantities on "
        f"{config.analysis.num_examples} fixed {config.analysis.split} examples, inference mode; power "
        f"iteration {config.analysis.max_iter}/{config.analysis.tol}, Hutchinson <= "
        f"{config.analysis.trace_max_iter} probes, SLQ {config.analysis.density_num_iter} steps.\n"
    )
    paths = {
        "markdown": os.path.join(workdir, "study.md"),
        "json": os.path.join(workdir, "study.json"),
    }
    with tf.io.gfile.GFile(paths["markdown"], "w") as f:
        f.write(note + "\n" + table)
    with tf.io.gfile.GFile(paths["json"], "w") as f:
        json.dump(
            {"config": tf_runtime.config_to_dict(config), "rows": rows}, f, indent=2, default=float
        )
    paths["sweep_plot"] = plots.plot_batch_sweep(rows, os.path.join(workdir, "study.png"))
    labels = {id(r): f"B={r['batch_size']}" + (" robust" if r["robust"] else "") for r in rows}
    paths["spectrum_plot"] = plots.plot_spectrum(
        {labels[id(r)]: r["ritz_top"] for r in rows},
        os.path.join(workdir, "spectrum.png"),
        title="Top Ritz values (SLQ run)",
    )
    densities = {}
    for r in rows:
        densities[labels[id(r)]] = smooth_density(
            np.array([r["slq_nodes"]]), np.array([r["slq_weights"]])
        )
    paths["density_plot"] = plots.plot_density(densities, os.path.join(workdir, "density.png"))
    paths["landscape_plot"] = plots.plot_landscape_1d(
        {
            labels[id(r)]: (
                np.array(r["landscape_alphas"]),
                np.array(r["landscape_top_eigenvector"]),
            )
            for r in rows
        },
        os.path.join(workdir, "landscape_1d.png"),
        title="Loss along each model's top eigenvector",
    )
    return {"paths": paths, "table": table, "note": note}


def run_study(config, workdir: str, strategy) -> dict:
    """Runs every (batch size, robust) model, then writes the table, JSON and plots.

    Finished runs (``<workdir>/b<B>[_robust]/row.json``) are reused, so an
    interrupted study resumes where it stopped.

    Returns:
      Dict with ``rows``, ``table`` (markdown), ``paths`` and ``seconds``.
    """
    if len(config.batch_sizes) < 1:
        raise ValueError("config.batch_sizes must list at least one batch size.")
    start = time.perf_counter()
    runs = [(b, False) for b in config.batch_sizes] + [(b, True) for b in config.robust_batch_sizes]
    rows = []
    for batch_size, robust in runs:
        rows.append(run_one(config, workdir, batch_size, robust, strategy))
        print(
            f"[study] {_run_name(batch_size, robust)}: lambda_max={rows[-1]['lambda_max']:.4g} "
            f"test={rows[-1]['test_accuracy']:.4f} fgsm={rows[-1]['fgsm_accuracy']:.4f}",
            flush=True,
        )
    outputs = write_outputs(rows, config, workdir)
    return {"rows": rows, **outputs, "seconds": time.perf_counter() - start}
