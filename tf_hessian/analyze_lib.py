"""Hessian analysis of a trained classifier: JSON numbers and PNG plots.

Entry point of ``python -m tf_hessian.analyze``: ``analyze_checkpoint(config, workdir, output_dir, ...)``.
Every quantity is computed in inference mode on a fixed subset of one split, and
the solver settings are logged with every number (spec §6.1.8).
"""

from __future__ import annotations

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tf_hessian import adversarial, blocks, eigen, landscape, plots
from tf_hessian import data as data_lib
from tf_hessian.density import slq, smooth_density
from tf_hessian.hvp import HessianOperator
from tf_hessian.train_lib import restore_network


def analysis_data(train_config, analysis, dtype="float32") -> tf.data.Dataset:
    """The fixed analysis subset as batches (the short last batch included)."""
    x, y = data_lib.fixed_batch(
        train_config, analysis.split, analysis.num_examples, tf.as_dtype(dtype), seed=analysis.seed
    )
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(analysis.batch_size)


def hessian_operator(network: keras.Model, dataset, analysis, strategy=None) -> HessianOperator:
    """Cross-entropy Hessian operator of ``network`` over ``dataset``."""
    dtype = network.trainable_variables[0].dtype
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)
    return HessianOperator(network, loss_fn, dataset, mode=analysis.hvp_mode, strategy=strategy)


def input_space_summary(network: keras.Model, train_config, analysis) -> dict:
    """Input-space measures on eval examples (spec §1.8, §1.9).

    Returns the mean ``||grad_x loss||``, the mean top (largest-magnitude)
    eigenvalue of ``grad_x^2 loss``, the mean smallest eigenvalue
    ``input_hessian_lambda_min`` (Rayleigh quotients: never below the true
    value) and ``input_hessian_min_over_max = min_x lambda_min(x) / max_x
    |lambda_max(x)|`` (0 up to rounding for piecewise-linear networks: the
    robust inner loop is saddle-free).
    """
    x, y = data_lib.fixed_batch(
        train_config,
        train_config.eval.split,
        analysis.input_examples,
        tf.as_dtype(network.trainable_variables[0].dtype),
        seed=analysis.seed,
    )
    grads = adversarial.input_gradient(network, x, y)
    norms = tf.sqrt(tf.reduce_sum(tf.square(tf.reshape(grads, [tf.shape(grads)[0], -1])), axis=1))
    top, lowest = adversarial.input_hessian_extreme_eigenvalues(
        network, x, y, num_iter=analysis.input_hessian_iter, seed=analysis.seed
    )
    # Normalised by the batch's largest curvature: a confidently classified example has an
    # input Hessian near 0, whose own ratio would be float32 rounding noise.
    scale = tf.maximum(tf.reduce_max(tf.abs(top)), tf.constant(1e-30, top.dtype))
    return {
        "input_gradient_norm": float(tf.reduce_mean(norms)),
        "input_hessian_lambda_max": float(tf.reduce_mean(top)),
        "input_hessian_lambda_min": float(tf.reduce_mean(lowest)),
        "input_hessian_min_over_max": float(tf.reduce_min(lowest) / scale),
    }


def robustness_curve(network: keras.Model, train_config, epsilons) -> dict[float, float]:
    """FGSM accuracy for each radius (pixel units) on the run's eval split."""
    config = train_config
    dataset = data_lib.build(
        config, config.eval.split, batch_size=config.eval.batch_size, limit=config.eval.limit
    )
    return adversarial.robust_accuracy(
        network,
        dataset,
        list(epsilons),
        epsilon_scale=data_lib.pixel_epsilon(1.0, config.data.name, config.data.normalize),
        **data_lib.attack_kwargs(config.data.name, config.data.normalize),
    )


def spectrum_summary(op: HessianOperator, analysis) -> dict:
    """Top-k eigenvalues, optional lambda_min, and the Hutchinson trace (numbers only)."""
    start = time.perf_counter()
    values, vectors, result = op.eigenvalues(
        analysis.top_n,
        analysis.max_iter,
        analysis.tol,
        method=analysis.method,
        seed=analysis.seed,
        return_result=True,
    )
    summary = {
        "eigenvalues": values,
        "eigen_converged": result.converged,
        "eigen_history": result.history,
        "eigen_hvps": result.num_matvecs,
        "num_parameters": op.dim,
    }
    if analysis.lambda_min:
        lowest = eigen.lanczos_eigenpairs(
            op,
            top_n=1,
            max_iter=analysis.lambda_min_iter,
            tol=analysis.tol,
            which="SA",
            seed=analysis.seed,
        )
        summary["lambda_min"] = float(lowest.eigenvalues[0])
        summary["lambda_min_over_max"] = summary["lambda_min"] / max(abs(values[0]), 1e-30)
    trace_value, trace_result = op.trace(
        analysis.trace_max_iter, analysis.trace_tol, seed=analysis.seed, return_result=True
    )
    summary.update(
        trace=trace_value,
        trace_stderr=trace_result.standard_error,
        trace_hvps=trace_result.num_matvecs,
    )
    summary["seconds"] = time.perf_counter() - start
    summary["_vectors"] = [op.layout.flatten(v) for v in vectors]
    return summary


def analyze_network(
    network: keras.Model, train_config, analysis, output_dir: str, *, strategy=None
) -> dict:
    """Runs the full analysis and writes ``analysis.json``, ``density.npz`` and PNG plots.

    Args:
      network: Trained classifier (logits).
      train_config: The training run's config (data settings).
      analysis: An ``configs/analyze.py`` config.
      output_dir: Destination folder.
      strategy: Optional ``tf.distribute`` strategy the network lives under.

    Returns:
      The JSON-serialisable results, with ``plots`` mapping names to PNG paths.
    """
    tf.io.gfile.makedirs(output_dir)
    dataset = analysis_data(train_config, analysis, network.trainable_variables[0].dtype)
    op = hessian_operator(network, dataset, analysis, strategy)
    results = {"settings": analysis.to_dict(), "loss": op.loss()}
    summary = spectrum_summary(op, analysis)
    vectors = summary.pop("_vectors")
    results.update(summary)
    nodes, weights = slq(
        op,
        num_iter=analysis.density_num_iter,
        num_runs=analysis.density_num_runs,
        seed=analysis.seed,
    )
    grid, density = smooth_density(nodes, weights)
    np.savez(
        os.path.join(output_dir, "density.npz"),
        grid=grid,
        density=density,
        nodes=nodes,
        weights=weights,
    )
    results["density_nodes"] = nodes.tolist()
    results["density_weights"] = weights.tolist()
    paths = {
        "spectrum": plots.plot_spectrum(
            {"top-k": results["eigenvalues"]}, os.path.join(output_dir, "spectrum.png")
        ),
        "density": plots.plot_density(
            {"SLQ": (grid, density)}, os.path.join(output_dir, "density.png")
        ),
    }
    if analysis.landscape:
        results["landscape"], landscape_paths = _landscapes(op, vectors, analysis, output_dir)
        paths.update(landscape_paths)
    if analysis.block_analysis:
        results["blocks"] = blocks.block_analysis(
            network,
            op.loss_fn,
            dataset,
            top_n=1,
            max_iter=analysis.max_iter,
            tol=analysis.tol,
            method=analysis.method,
            seed=analysis.seed,
            mode=analysis.hvp_mode,
            strategy=strategy,
        )
    if analysis.robustness_epsilons:
        curve = robustness_curve(network, train_config, analysis.robustness_epsilons)
        results["robustness"] = {"epsilons": list(curve), "fgsm_accuracy": list(curve.values())}
        paths["robustness"] = plots.plot_robustness(
            {"FGSM": (list(curve), list(curve.values()))},
            os.path.join(output_dir, "robustness.png"),
        )
    if analysis.input_examples:
        results["input_space"] = input_space_summary(network, train_config, analysis)
    results["plots"] = paths
    with tf.io.gfile.GFile(os.path.join(output_dir, "analysis.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
    return results


def _landscapes(op, vectors, analysis, output_dir):
    alphas = np.linspace(
        -analysis.landscape_radius, analysis.landscape_radius, analysis.landscape_points
    )
    directions = {
        "top eigenvector": vectors[0],
        "random (unit)": landscape.random_direction(op, seed=analysis.seed, filter_normalize=False),
        "gradient (unit)": landscape.gradient_direction(op),
    }
    curves = {name: landscape.loss_landscape_1d(op, d, alphas) for name, d in directions.items()}
    grid = np.linspace(
        -analysis.landscape_2d_radius, analysis.landscape_2d_radius, analysis.landscape_2d_points
    )
    second = vectors[1] if len(vectors) > 1 else directions["random (unit)"]
    surface = landscape.loss_landscape_2d(op, vectors[0], second, grid, grid)
    paths = {
        "landscape_1d": plots.plot_landscape_1d(
            {k: (alphas, v) for k, v in curves.items()},
            os.path.join(output_dir, "landscape_1d.png"),
        ),
        "landscape_2d": plots.plot_landscape_2d(
            grid, grid, surface, os.path.join(output_dir, "landscape_2d.png")
        ),
    }
    data = {
        "alphas": alphas.tolist(),
        "curves": {k: v.tolist() for k, v in curves.items()},
        "grid_2d": grid.tolist(),
        "surface_2d": surface.tolist(),
        "second_direction": "eigenvector 2" if len(vectors) > 1 else "random",
    }
    return data, paths


def analyze_checkpoint(
    analysis,
    workdir: str,
    output_dir: str | None = None,
    *,
    checkpoint: str | None = None,
    strategy=None,
) -> dict:
    """Restores the network of a ``train`` run and analyses it (see ``analyze_network``).

    Args:
      analysis: An ``configs/analyze.py`` config.
      workdir: The training run folder (config.json + checkpoints/).
      output_dir: Where to write results; default ``workdir/analysis``.
      checkpoint: A checkpoint prefix; default the latest.
      strategy: Optional strategy to build the network under.

    Returns:
      The analysis results (also in ``output_dir/analysis.json``).
    """
    output_dir = output_dir or os.path.join(workdir, "analysis")
    dtype = None if analysis.dtype == "float32" else analysis.dtype
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        with strategy.scope():
            network, train_config, path = restore_network(workdir, checkpoint, dtype=dtype)
    else:
        network, train_config, path = restore_network(workdir, checkpoint, dtype=dtype)
    results = analyze_network(network, train_config, analysis, output_dir, strategy=strategy)
    results["checkpoint"] = path
    with tf.io.gfile.GFile(os.path.join(output_dir, "analysis.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
    return results
