"""The batch-size sweep and robust-training study of Yao et al. 2018, at CPU scale.

Entry point of ``python -m tf_hessian.study``: ``run_study(config, workdir, strategy)``.

Reference: Yao et al. 2018, §3-§5: lambda_max of the loss Hessian grows with the
batch size, large-batch models are less robust to FGSM, and robust training
lowers the spectrum. Every model is analysed on the same fixed examples; every
configuration is trained with several seeds (mean ± sd in the table), robust
training over several FGSM radii, and robustness is also measured with attacks
the robust models were not trained with (PGD, DeepFool's rho_adv).
"""

from __future__ import annotations

import copy
import os
import time

import numpy as np
import tensorflow as tf

import tf_runtime
from input_pipelines import classification
from tf_hessian import adversarial, landscape, plots, train_lib
from tf_hessian import data as data_lib
from tf_hessian.analyze_lib import analysis_data, hessian_operator, input_space_summary
from tf_hessian.density import slq, smooth_density

METRIC_COLUMNS = (
    ("test_accuracy", "test acc", ".4f"),
    ("fgsm_accuracy", "FGSM acc", ".4f"),
    ("pgd_accuracy", "PGD acc", ".4f"),
    ("rho_adv", "rho_adv (DeepFool)", ".4g"),
    ("lambda_max", "lambda_max", ".4g"),
    ("trace", "trace", ".4g"),
    ("lambda_min_ritz", "lambda_min (SLQ)", ".3g"),
    ("input_gradient_norm", "mean ‖∇x loss‖", ".3g"),
    ("input_hessian_lambda_max", "mean λ1(∇²x loss)", ".3g"),
    ("input_hessian_min_over_max", "min λmin / max λ1 (∇²x loss)", ".2g"),
)


STUDY_RULES = {
    "batch_sizes": tf_runtime.sequence_of(tf_runtime.integer(at_least=1), min_length=1),
    "robust_batch_sizes": tf_runtime.sequence_of(tf_runtime.integer(at_least=1)),
    "robust_epsilons": tf_runtime.sequence_of(tf_runtime.number(above=0)),
    "seeds": tf_runtime.sequence_of(tf_runtime.integer(at_least=0)),
    "spectrum_top_k": tf_runtime.integer(at_least=1),
    "evaluation.pgd_steps": tf_runtime.integer(at_least=1),
    "evaluation.pgd_step_fraction": tf_runtime.number(above=0),
    "evaluation.rho_adv_examples": tf_runtime.integer(at_least=1),
    "evaluation.deepfool_max_iter": tf_runtime.integer(at_least=1),
    "analysis.split": tf_runtime.one_of(classification.SPLITS),
    "analysis.num_examples": tf_runtime.integer(at_least=1),
    "analysis.batch_size": tf_runtime.integer(at_least=1),
    "analysis.method": tf_runtime.one_of(("lanczos", "power")),
    "analysis.max_iter": tf_runtime.integer(at_least=1),
    "analysis.tol": tf_runtime.number(above=0),
    "analysis.trace_max_iter": tf_runtime.integer(at_least=1),
    "analysis.trace_tol": tf_runtime.number(above=0),
    "analysis.density_num_iter": tf_runtime.integer(at_least=2),
    "analysis.landscape_points": tf_runtime.integer(at_least=1),
    "analysis.landscape_radius": tf_runtime.number(above=0),
    "analysis.input_examples": tf_runtime.integer(at_least=0),
}


def validate_config(config, strategy=None) -> None:
    """The whole study config in one pass, before anything is written.

    The study's own fields, then every model's training config as the study will build it
    (``config.train`` with each batch size, seed and robust radius), including its schedule
    against the training data (batch sizes, micro-batches, replicas).

    Raises:
      ValueError: naming the invalid fields (``config.train.<field>`` for training fields).
    """
    tf_runtime.check_fields(config, STUDY_RULES)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    checked = set()
    for run in _runs(config):
        train_config = _train_config(config, run)
        try:
            train_lib.validate_config(train_config, prefix="config.train")
        except ValueError as error:
            raise ValueError(f"{error} (model {_run_name(*run)} of the study)") from error
        key = (train_config.batch_size, train_config.robust.enabled)
        if key in checked:
            continue
        checked.add(key)
        num_train = data_lib.num_examples(
            train_config, "train", limit=train_config.data.train_limit
        )
        try:
            train_lib.resolve_schedule(train_config, num_train, replicas)
        except ValueError as error:
            message = str(error).replace("config.", "config.train.")
            raise ValueError(f"{message} (model {_run_name(*run)} of the study)") from error


def _run_name(batch_size: int, robust: bool, epsilon: float | None = None, seed: int = 0) -> str:
    """``b<B>[_robust_eps<e>][_s<seed>]``; seed 0 has no suffix (the one-seed folders of old)."""
    name = f"b{batch_size}"
    if robust:
        name += f"_robust_eps{epsilon:g}"
    return name if seed == 0 else f"{name}_s{seed}"


def _runs(config) -> list[tuple[int, bool, float | None, int]]:
    """(batch size, robust, robust epsilon, seed) of every model of the study."""
    epsilons = tuple(config.get("robust_epsilons", ())) or (config.train.robust.epsilon,)
    seeds = tuple(config.get("seeds", ())) or (config.train.seed,)
    runs = []
    for seed in seeds:
        runs += [(b, False, None, seed) for b in config.batch_sizes]
        runs += [(b, True, e, seed) for b in config.robust_batch_sizes for e in epsilons]
    return runs


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
    # Probes in blocks share one batched HVP (primal pass once per block); same samples.
    block_size = analysis.get("hvp_block_size", 1)
    trace_value, trace_result = op.trace(
        analysis.trace_max_iter,
        analysis.trace_tol,
        seed=analysis.seed,
        return_result=True,
        block_size=block_size,
    )
    nodes, weights = slq(
        op,
        num_iter=analysis.density_num_iter,
        num_runs=1,
        seed=analysis.seed,
        block_size=block_size,
    )
    alphas = np.linspace(
        -analysis.landscape_radius, analysis.landscape_radius, analysis.landscape_points
    )
    curve = landscape.loss_landscape_1d(op, vectors[0], alphas)
    ritz = np.sort(nodes[0])[::-1]
    return {
        "lambda_max": values[0],
        "eigen_method": analysis.method,
        "eigen_hvps": result.num_matvecs,
        "eigen_converged": result.converged[0],
        "trace": trace_value,
        "trace_stderr": trace_result.standard_error,
        "trace_probes": trace_result.num_matvecs,
        "trace_hvps": trace_result.num_products,
        "ritz_top": ritz[: config.spectrum_top_k].tolist(),
        "lambda_min_ritz": float(ritz[-1]),
        "slq_nodes": nodes[0].tolist(),
        "slq_weights": weights[0].tolist(),
        "landscape_alphas": alphas.tolist(),
        "landscape_top_eigenvector": curve.tolist(),
        "loss": op.loss(),
        "analysis_seconds": time.perf_counter() - start,
    }


def robustness_measures(network, train_config, config) -> dict:
    """PGD accuracy and DeepFool's rho_adv on the run's eval split (attacks other than FGSM)."""
    data = train_config.data
    scale = data_lib.pixel_epsilon(1.0, data.name, data.normalize)
    clip = data_lib.attack_kwargs(data.name, data.normalize)
    evaluation = config.evaluation
    dataset = data_lib.build(
        train_config,
        train_config.eval.split,
        batch_size=train_config.eval.batch_size,
        limit=train_config.eval.limit,
    )
    epsilon = float(train_config.eval.fgsm_epsilon)
    pgd = adversarial.robust_accuracy(
        network,
        dataset,
        [epsilon],
        attack="pgd",
        epsilon_scale=scale,
        step_size=scale * epsilon * evaluation.pgd_step_fraction,
        num_steps=evaluation.pgd_steps,
        **clip,
    )[epsilon]
    info = classification.dataset_info(data.name)
    few = dataset.unbatch().take(evaluation.rho_adv_examples).batch(train_config.eval.batch_size)
    rho = adversarial.rho_adv(
        network,
        few,
        num_classes=info.num_classes,
        max_iter=evaluation.deepfool_max_iter,
        clip_min=clip["clip_min"],
        clip_max=clip["clip_max"],
    )
    return {
        "pgd_accuracy": pgd,
        "pgd_epsilon": epsilon,
        "pgd_steps": evaluation.pgd_steps,
        "rho_adv": rho["rho_adv"],
        "rho_adv_flipped_fraction": rho["flipped_fraction"],
        "rho_adv_examples": rho["num_examples"],
    }


def _train_config(config, run: tuple):
    """The training config of one model of the study."""
    batch_size, robust, epsilon, seed = run
    train_config = copy.deepcopy(config.train)
    train_config.batch_size = batch_size
    train_config.seed = seed
    train_config.robust.enabled = robust
    if robust:
        train_config.robust.epsilon = epsilon
    return train_config


def row_config(config, train_config) -> dict:
    """What a row depends on: its training config and the study's analysis settings.

    Stored in ``row.json`` under ``"config"``, so a re-run reuses a row only when it was produced
    by the same settings (run settings such as ``log_every`` excluded, see
    ``tf_runtime.config_differences``).
    """
    return {
        "train": tf_runtime.config_to_dict(train_config),
        "analysis": tf_runtime.config_to_dict(config.analysis),
        "evaluation": tf_runtime.config_to_dict(config.evaluation),
        "spectrum_top_k": config.spectrum_top_k,
    }


def _trained_under(run_dir: str, row: dict | None):
    """The training config a row (or, for rows without one, the run folder) was produced by."""
    if row is not None and isinstance(row.get("config"), dict):
        return row["config"].get("train", {})
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return None
    stored = tf_runtime.read_json(path)
    if not isinstance(stored, dict):
        raise ValueError(f"{path} holds a JSON {type(stored).__name__}, not a config object.")
    return stored


def check_rows(config, workdir: str) -> None:
    """Refuses, before anything is trained, models trained under another training config.

    A stored model (a ``row.json``, or a run folder with a ``config.json``) whose training
    config differs from the one the study now asks for cannot be reused: its weights answer
    another question. Retraining in place would discard them, so the study stops and names each
    folder with its differing keys; delete those folders to retrain them (or use a fresh
    ``--workdir``). Rows whose analysis settings changed are recomputed from the same weights.

    Raises:
      tf_runtime.ConfigMismatchError: naming every stale folder and its differing keys.
    """
    stale = []
    for run in _runs(config):
        run_dir = os.path.join(workdir, _run_name(*run))
        row_path = os.path.join(run_dir, "row.json")
        row = tf_runtime.read_json(row_path) if os.path.exists(row_path) else None
        if row is not None and not isinstance(row, dict):
            raise ValueError(f"{row_path} holds a JSON {type(row).__name__}, not a study row.")
        trained = _trained_under(run_dir, row)
        if trained is None:
            continue
        diffs = tf_runtime.config_differences(trained, _train_config(config, run))
        if diffs:
            stale.append(f"{run_dir} ({', '.join(diffs[:6])}{', ...' if len(diffs) > 6 else ''})")
    if stale:
        raise tf_runtime.ConfigMismatchError(
            f"{len(stale)} model(s) of the study were trained under another training config and "
            f"cannot be reused: {'; '.join(stale)}. Delete these folders to retrain them under "
            "the new config, or use a fresh --workdir."
        )


def _analysis_row(network, train_config, config) -> dict:
    row = {
        **_analyse(network, train_config, config),
        **robustness_measures(network, train_config, config),
    }
    if config.analysis.input_examples:
        row.update(input_space_summary(network, train_config, config.analysis))
    return row


def run_one(config, workdir: str, run: tuple, strategy) -> dict:
    """Trains and analyses one model; a ``row.json`` of the same settings is reused.

    The row is written atomically and last, so a kill at any point leaves either no row (the
    re-run finishes the training or reuses the finished run's stored metrics, then analyses the
    same weights) or the complete row. A row records the settings it was computed under
    (``row_config``); a row of other analysis settings, or of an older study version without
    them, is recomputed from the same weights (call ``check_rows`` first: it refuses models
    trained under another training config).
    """
    batch_size, robust, epsilon, seed = run
    run_dir = os.path.join(workdir, _run_name(batch_size, robust, epsilon, seed))
    row_path = os.path.join(run_dir, "row.json")
    train_config = _train_config(config, run)
    produced_by = row_config(config, train_config)
    if tf.io.gfile.exists(row_path):
        row = tf_runtime.read_json(row_path)
        stored = row.get("config")
        if stored is not None and not tf_runtime.config_differences(stored, produced_by):
            return row
        # Another analysis setting, or a row of an older version: recompute from the weights.
        network, _, _ = train_lib.restore_network(run_dir)
        row.update(robust_epsilon=epsilon, seed=seed)
        row.update(_analysis_row(network, train_config, config))
        row["config"] = produced_by
        tf_runtime.atomic_write_json(row_path, row)
        return row
    start = time.perf_counter()
    trained = train_lib.train_and_evaluate(train_config, run_dir, strategy)
    train_seconds = time.perf_counter() - start
    network, _, _ = train_lib.restore_network(run_dir)
    row = {
        "batch_size": batch_size,
        "robust": robust,
        "robust_epsilon": epsilon,
        "seed": seed,
        "steps": trained["step"],
        "micro_batches": trained["schedule"]["num_micro_batches"],
        "test_accuracy": trained["test_accuracy"],
        "fgsm_accuracy": trained["fgsm_accuracy"],
        "train_seconds": train_seconds,
        **_analysis_row(network, train_config, config),
        "config": produced_by,
    }
    tf_runtime.atomic_write_json(row_path, row)
    return row


def aggregate(rows: list[dict]) -> list[dict]:
    """One entry per (batch size, robust, epsilon): mean and sample sd over seeds of every metric."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["batch_size"], r["robust"], r.get("robust_epsilon")), []).append(r)
    out = []
    for (batch_size, robust, epsilon), members in groups.items():
        entry = {
            "batch_size": batch_size,
            "robust": robust,
            "robust_epsilon": epsilon,
            "seeds": [m["seed"] for m in members],
            "steps": members[0]["steps"],
        }
        for key, _, _ in METRIC_COLUMNS:
            values = np.array([m.get(key, np.nan) for m in members], np.float64)
            entry[key] = float(np.mean(values))
            entry[key + "_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        out.append(entry)
    return out


def markdown_table(rows: list[dict], config) -> str:
    """The study table: one line per (batch, robust epsilon), mean ± sd over the seeds."""
    eps = config.train.eval.fgsm_epsilon
    names = [
        f"{label} (eps={eps})" if key in ("fgsm_accuracy", "pgd_accuracy") else label
        for key, label, _ in METRIC_COLUMNS
    ]
    header = (
        "| batch | robust eps | seeds | steps | " + " | ".join(names) + " |\n"
        "|---:|:---:|:---:|---:|" + "---:|" * len(names) + "\n"
    )
    lines = []
    for r in aggregate(rows):
        cells = [
            f"{r[key]:{fmt}} ± {r[key + '_sd']:.2g}" if len(r["seeds"]) > 1 else f"{r[key]:{fmt}}"
            for key, _, fmt in METRIC_COLUMNS
        ]
        robust = f"{r['robust_epsilon']:g}" if r["robust"] else "no"
        seeds = ",".join(str(s) for s in r["seeds"])
        lines.append(
            f"| {r['batch_size']} | {robust} | {seeds} | {r['steps']} | " + " | ".join(cells) + " |"
        )
    return header + "\n".join(lines) + "\n"


def _label(r: dict) -> str:
    return f"B={r['batch_size']}" + (f" robust eps={r['robust_epsilon']:g}" if r["robust"] else "")


def write_outputs(rows: list[dict], config, workdir: str) -> dict:
    """study.md, study.json and the plots (atomic writes); returns their paths and the table."""
    table = markdown_table(rows, config)
    train = config.train
    analysis = config.analysis
    evaluation = config.evaluation
    length = f"{train.num_steps} steps" if train.num_steps else f"{train.epochs} epochs"
    note = (
        f"Model {train.model} on {train.data.name}; {length} per run, lr {train.optimizer.learning_rate}, "
        f"micro-batch {train.micro_batch_size} (accumulation={train.accumulate}); robust training "
        f"replaces {train.robust.adv_ratio:g} of every micro-batch by FGSM examples. Hessian "
        f"quantities on {analysis.num_examples} fixed {analysis.split} examples, inference mode; "
        f"lambda_max by {analysis.method} ({analysis.max_iter} steps at most, residual tol "
        f"{analysis.tol}), Hutchinson <= {analysis.trace_max_iter} probes, SLQ "
        f"{analysis.density_num_iter} steps. PGD: {evaluation.pgd_steps} steps of "
        f"{evaluation.pgd_step_fraction:g} eps, random start; rho_adv = mean ||r||/||x|| of "
        f"DeepFool on {evaluation.rho_adv_examples} eval examples. Mean ± sample sd over seeds.\n"
    )
    paths = {
        "markdown": os.path.join(workdir, "study.md"),
        "json": os.path.join(workdir, "study.json"),
    }
    tf_runtime.atomic_write_text(paths["markdown"], note + "\n" + table)
    tf_runtime.atomic_write_json(
        paths["json"],
        {"config": tf_runtime.config_to_dict(config), "rows": rows, "summary": aggregate(rows)},
    )
    paths["sweep_plot"] = plots.plot_batch_sweep(
        aggregate(rows), os.path.join(workdir, "study.png")
    )
    first_seed = [r for r in rows if r["seed"] == rows[0]["seed"]]
    paths["spectrum_plot"] = plots.plot_spectrum(
        {_label(r): r["ritz_top"] for r in first_seed},
        os.path.join(workdir, "spectrum.png"),
        title="Top Ritz values (SLQ run)",
    )
    densities = {
        _label(r): smooth_density(np.array([r["slq_nodes"]]), np.array([r["slq_weights"]]))
        for r in first_seed
    }
    paths["density_plot"] = plots.plot_density(densities, os.path.join(workdir, "density.png"))
    paths["landscape_plot"] = plots.plot_landscape_1d(
        {
            _label(r): (
                np.array(r["landscape_alphas"]),
                np.array(r["landscape_top_eigenvector"]),
            )
            for r in first_seed
        },
        os.path.join(workdir, "landscape_1d.png"),
        title="Loss along each model's top eigenvector",
    )
    return {"paths": paths, "table": table, "note": note}


def run_study(config, workdir: str, strategy) -> dict:
    """Runs every (batch size, robust epsilon, seed) model, then writes the table, JSON and plots.

    Finished runs (``<workdir>/b<B>[_robust_eps<e>][_s<seed>]/row.json``) are
    reused, so an interrupted study resumes where it stopped and a finished
    one re-run returns the same rows.

    Returns:
      Dict with ``rows``, ``table`` (markdown), ``paths`` and ``seconds``.
    """
    validate_config(config, strategy)
    check_rows(config, workdir)
    start = time.perf_counter()
    rows = []
    runs = _runs(config)
    progress = tf_runtime.TaskProgress(len(runs), "study")
    for run in runs:
        name = _run_name(*run)
        reused = os.path.exists(os.path.join(workdir, name, "row.json"))
        if not reused:
            progress.start(f"{name} (train + analyse)")
        rows.append(run_one(config, workdir, run, strategy))
        progress.finish(
            name,
            f"lambda_max={rows[-1]['lambda_max']:.4g} test={rows[-1]['test_accuracy']:.4f} "
            f"fgsm={rows[-1]['fgsm_accuracy']:.4f} pgd={rows[-1]['pgd_accuracy']:.4f} "
            f"rho_adv={rows[-1]['rho_adv']:.4g}",
            reused=reused,
        )
    outputs = write_outputs(rows, config, workdir)
    return {"rows": rows, **outputs, "seconds": time.perf_counter() - start}
