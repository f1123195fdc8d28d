"""The paper's comparison table: methods x architectures x seeds, min / max / avg test accuracy.

Methods (rows of ANODEV2's baseline table, spec section 5):
  baseline   residual network (Eq. 1a);
  neuralode  the ANODE network trained with the continuous adjoint (Chen et al.'s
             optimise-then-discretise gradient; the same solver as ANODE, gradient="adjoint");
  anode      the same network with checkpointed DTO gradients (config.gradient);
  anodev2    coupled weight evolution (config.weight_dynamics) with DTO gradients.

Every (architecture, method, seed) cell trains in its own folder `<workdir>/<arch>/<method>/
seed_<seed>` and, once finished, writes `cell.json` atomically with tf_runtime's results helpers
(`merge_results` / `load_results`: temporary name + rename; None/NaN never overwrite), together
with the config it was trained under. A re-run skips every finished cell of the same config and
reports its stored numbers (a cell of another config is refused, see `check_cells`), so
re-running a finished comparison trains nothing and rewrites the same table; a killed comparison
resumes at the unfinished cell (train_lib resumes that cell's run from its checkpoint).
"""

import os
import platform
import time

import numpy as np

import tf_runtime
from tf_ode import train_lib

# Table row -> config overrides applied to the comparison config.
METHODS = {
    "baseline": {"variant": "baseline"},
    "neuralode": {"variant": "anode", "gradient": "adjoint"},
    "anode": {"variant": "anode"},
    "anodev2": {"variant": "anodev2"},
}
LABELS = {"baseline": "Baseline", "neuralode": "NeuralODE", "anode": "ANODE", "anodev2": "ANODEV2"}
_CELL_KEYS = (
    "eval_accuracy",
    "best_eval_accuracy",
    "eval_loss",
    "loss",
    "seconds_per_epoch",
    "train_seconds",
    "nfe",
    "num_params",
    "step",
)


def _list(value, default):
    value = tuple(value) if value else ()
    return value or (default,)


def cell_config(config, architecture, method, seed):
    """The training config of one cell."""
    if method not in METHODS:
        raise ValueError(
            f"Unknown comparison method. Expected one of {tuple(METHODS)}. Received: {method!r}"
        )
    cell = config.copy_and_resolve_references()
    cell.architecture = architecture
    cell.seed = int(seed)
    for key, value in METHODS[method].items():
        cell[key] = value
    return cell


def _cells(config):
    architectures = _list(config.get("architectures"), config.architecture)
    seeds = _list(config.get("seeds"), config.seed)
    for architecture in architectures:
        for method in config.variants:
            if method not in METHODS:
                raise ValueError(
                    f"Unknown config.variants entry. Expected a subset of {tuple(METHODS)}. "
                    f"Received: {method!r}"
                )
            for seed in seeds:
                yield architecture, method, int(seed)


# Fields of the comparison (which cells exist), not of one cell's training: cells stay reusable
# when seeds, methods or architectures are added.
_TABLE_KEYS = ("variants", "architectures", "seeds")


def _cell_dir(workdir, architecture, method, seed):
    return os.path.join(workdir, architecture, method, f"seed_{seed}")


def _trained_under(cell_dir, stored):
    """The config a finished cell (or, for cells without one, its run folder) was trained under."""
    if stored is not None and isinstance(stored.get("config"), dict):
        return stored["config"]
    path = os.path.join(cell_dir, "config.json")
    if not os.path.exists(path):
        return None
    recorded = tf_runtime.read_json(path)
    if not isinstance(recorded, dict):
        raise ValueError(f"{path} holds a JSON {type(recorded).__name__}, not a config object.")
    return recorded


def check_cells(config, workdir):
    """Refuses, before anything trains, cells trained under another config than they now need.

    A cell's numbers belong to the config it was trained under (stored in its `cell.json`, or
    for cells of older versions, its run folder's `config.json`); reusing them under another
    config would mix configs in one table, and retraining in place would discard them.

    Raises:
      tf_runtime.ConfigMismatchError: naming every such cell folder and its differing keys
        (delete those folders to retrain them, or use a fresh --workdir).
    """
    stale = []
    for architecture, method, seed in _cells(config):
        cell_dir = _cell_dir(workdir, architecture, method, seed)
        cell_path = os.path.join(cell_dir, "cell.json")
        stored = tf_runtime.load_results(cell_path)
        if stored is not None and not isinstance(stored, dict):
            raise ValueError(f"{cell_path} holds a JSON {type(stored).__name__}, not a cell.")
        trained = _trained_under(cell_dir, stored)
        if trained is None:
            continue
        diffs = tf_runtime.config_differences(
            trained,
            cell_config(config, architecture, method, seed),
            ignore=tf_runtime.RUN_SETTING_KEYS + _TABLE_KEYS,
        )
        if diffs:
            more = ", ..." if len(diffs) > 6 else ""
            stale.append(f"{cell_dir} ({', '.join(diffs[:6])}{more})")
    if stale:
        raise tf_runtime.ConfigMismatchError(
            f"{len(stale)} cell(s) of the comparison were trained under another config and "
            f"cannot be reused: {'; '.join(stale)}. Delete these folders to retrain them under "
            "the new config, or use a fresh --workdir."
        )


def validate_config(config):
    """Checks `config.variants` and every cell's training config; returns the cells.

    Raises:
      ValueError: naming the invalid field (and the cell), before anything is written.
    """
    cells = list(_cells(config))
    for architecture, method, seed in cells:
        try:
            train_lib.validate_config(cell_config(config, architecture, method, seed))
        except ValueError as error:
            raise ValueError(f"{error} (cell {architecture}/{method}/seed_{seed})") from error
    return cells


def run_comparison(config, workdir, strategy):
    """Trains (or reuses) every cell and writes comparison.json and comparison.md atomically.

    Returns:
      {"rows": per-cell results, "table": markdown, "json": path, "markdown": path}. Each row
      has `variant` (the method), `architecture`, `seed`, `reused` (True when read back from a
      finished cell) and train_lib's results (eval_accuracy, seconds_per_epoch, nfe, ...).
    """
    cells = validate_config(config)
    check_cells(config, workdir)
    rows = []
    progress = tf_runtime.TaskProgress(len(cells), "compare")
    for architecture, method, seed in cells:
        cell_dir = _cell_dir(workdir, architecture, method, seed)
        cell_path = os.path.join(cell_dir, "cell.json")
        name = f"{architecture}/{method}/seed_{seed}"
        stored = tf_runtime.load_results(cell_path)
        if stored is not None:
            stored["reused"] = True
            rows.append(stored)
            progress.finish(
                name, f"accuracy={_number(stored.get('eval_accuracy')):.4f}", reused=True
            )
            continue
        progress.start(name)
        cell = cell_config(config, architecture, method, seed)
        start = time.time()
        results = train_lib.train_and_evaluate(cell, cell_dir, strategy)
        row = {key: results.get(key) for key in _CELL_KEYS}
        row.update(
            variant=method,
            architecture=architecture,
            seed=seed,
            gradient=cell.gradient,
            wall_seconds=time.time() - start,
            config=tf_runtime.config_to_dict(cell),
        )
        row = tf_runtime.merge_results(cell_path, row)  # atomic (tf_runtime results helpers)
        row["reused"] = False
        rows.append(row)
        progress.finish(name, f"accuracy={_number(row.get('eval_accuracy')):.4f}")
    table = markdown_table(rows, config)
    paths = {
        "json": os.path.join(workdir, "comparison.json"),
        "markdown": os.path.join(workdir, "comparison.md"),
    }
    tf_runtime.atomic_write_json(
        paths["json"],
        {
            "rows": rows,
            "summary": summarize(rows),
            "host": platform.node(),
            "cpu_count": os.cpu_count(),
        },
    )
    tf_runtime.atomic_write_text(paths["markdown"], table + "\n")
    return {"rows": rows, "table": table, **paths}


def summarize(rows):
    """{architecture: {method: {min, max, avg, seeds, ...}}} of the final test accuracy."""
    out = {}
    for row in rows:
        out.setdefault(row["architecture"], {}).setdefault(row["variant"], []).append(row)
    summary = {}
    for architecture, methods in out.items():
        summary[architecture] = {}
        for method, cell_rows in methods.items():
            acc = np.array([_number(r.get("eval_accuracy")) for r in cell_rows], float)
            summary[architecture][method] = {
                "min": float(np.min(acc)),
                "max": float(np.max(acc)),
                "avg": float(np.mean(acc)),
                "seeds": [r["seed"] for r in cell_rows],
                "seconds_per_epoch": float(
                    np.mean([_number(r.get("seconds_per_epoch")) for r in cell_rows])
                ),
                "nfe": float(np.mean([_number(r.get("nfe")) for r in cell_rows])),
                "num_params": cell_rows[0].get("num_params"),
            }
    return summary


def _number(value):
    return float("nan") if value is None else float(value)


def markdown_table(rows, config):
    """The paper's layout (min / max and avg test accuracy per architecture) plus cell details."""
    summary = summarize(rows)
    architectures = list(summary)
    methods = [m for m in config.variants if any(m in summary[a] for a in architectures)]
    seeds = sorted({r["seed"] for r in rows})
    solver = f"{config.method}, Nt={config.num_steps}, {config.gradient}"
    lines = [
        f"{config.dataset}, width {config.width}, {config.num_epochs} epoch(s), batch "
        f"{config.batch_size}, seeds {seeds}; ODE blocks: {solver} (NeuralODE: same solver, "
        f"continuous adjoint); ANODEV2 q = {config.weight_dynamics}. Test accuracy (%), final "
        "epoch.",
        "",
        "| method | " + " | ".join(f"{a} min / max | {a} avg" for a in architectures) + " |",
        "|---|" + "---|---|" * len(architectures),
    ]
    for method in methods:
        cells = []
        for a in architectures:
            s = summary[a].get(method)
            if s is None:
                cells += ["", ""]
            else:
                cells += [f"{100 * s['min']:.2f} / {100 * s['max']:.2f}", f"{100 * s['avg']:.2f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| method | architecture | seed | test accuracy | best during training | test loss "
        "| final train loss (CE + wd) | s / epoch | f evals / step | params |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['architecture']} | {r['seed']} "
            f"| {_number(r.get('eval_accuracy')):.4f} | {_number(r.get('best_eval_accuracy')):.4f} "
            f"| {_number(r.get('eval_loss')):.4f} | {_number(r.get('loss')):.4f} "
            f"| {_number(r.get('seconds_per_epoch')):.1f} | {_number(r.get('nfe')):.0f} "
            f"| {r.get('num_params')} |"
        )
    return "\n".join(lines)
