"""MADAN's results files: the per-row table, FCN-scores, per-class IoU and seed aggregation.

Every mIoU, IoU and pixel accuracy here is in percent (as `tf_madan.evaluation` returns them).
"""

import math
import os

import numpy as np

from tf_madan import data, evaluation, fcn_score, layout, stages
from tf_runtime import files as rt_files


def fmt(value, sd=None):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f}" if sd is None else f"{value:.1f} ± {sd:.1f}"


def collect_results(config, workdir):
    """{row label: evaluation (percent)} of every finished segmenter stage, in table order."""
    results = {}
    for label, stage, _ in stages.result_rows(stages.table_for(config)):
        stored = layout.stage_results(workdir, stage)
        if stored and "evaluation" in stored:
            results[label] = stored["evaluation"]
    return results


def collect_finished(config, workdir):
    """{row label: weights} of every finished segmenter stage found in `workdir`, in table order."""
    finished = {}
    for label, stage, _ in stages.result_rows(stages.table_for(config)):
        path = layout.segmenter_weights(workdir, stage)
        if os.path.exists(path):
            finished[label] = path
    return finished


def evaluate_methods(config, methods):
    """{row label: evaluation (percent)} of {row label: weights} on the full target split."""
    return {
        method: evaluation.evaluate_on_target(config, layout.load_segmenter(config, weights))
        for method, weights in methods.items()
    }


def _image_dirs(config, workdir, folder):
    base = layout.stage_dir(workdir, folder)
    return [
        os.path.join(base, s)
        for s in config.data.sources
        if os.path.exists(os.path.join(base, s, data.COMPLETE))
    ]


def image_stage_dirs(config, workdir):
    """[(image stage, [its finished `<source>` folders])] of the config's stage table, in table
    order, each stage once, stages without finished images left out."""
    out, seen = [], set()
    for _, _, folder in stages.result_rows(stages.table_for(config)):
        if folder is None or folder in seen:
            continue
        seen.add(folder)
        dirs = _image_dirs(config, workdir, folder)
        if dirs:
            out.append((folder, dirs))
    return out


def fcn_scores(config, workdir):
    """FCN-score of every finished image stage: {image stage: {source: result, "all": result}}.

    The oracle F (trained on labelled target train images) segments each stage's translated
    source images, scored against their source labels (CycleGAN / CyCADA papers' FCN-score);
    rows "raw (<src>)" score the untranslated sources. Empty without a finished oracle.
    """
    weights = layout.segmenter_weights(workdir, "oracle")
    if layout.stage_results(workdir, "oracle") is None:
        return {}
    oracle = layout.load_segmenter(config, weights, "oracle")

    def score(dataset):
        return evaluation.evaluate_segmenter(
            oracle, dataset, num_classes=config.num_classes, ignore_label=config.ignore_label
        )

    scores = {}
    for name in config.data.sources:
        scores[f"raw ({name})"] = {name: fcn_score.fcn_score(config, oracle, name)}
    for folder, dirs in image_stage_dirs(config, workdir):
        row = {os.path.basename(d): score(data.adapted_eval_dataset([d])) for d in dirs}
        if len(dirs) > 1:
            row["all"] = score(data.adapted_eval_dataset(dirs))
        scores[folder] = row
    return scores


def _fcn_summary(row):
    """(mIoU-16 over all the row's images, {source: mIoU-16})."""
    overall = row.get("all") or next(iter(row.values()))
    return overall["miou_16"], {k: v["miou_16"] for k, v in row.items() if k != "all"}


def fcn_table(scores, names=None):
    """Markdown table of FCN-scores (protocol mIoU-16 of the oracle on translated images, %).

    `names` maps an image stage to the rows trained on it (shown beside the stage).
    """
    names = names or {}
    sources = sorted({k for row in scores.values() for k in row if k != "all"})
    lines = [
        "| FCN-score (oracle mIoU-16 on translated source images, %) | "
        + " | ".join(sources)
        + " | all |",
        "|---|" + "---|" * (len(sources) + 1),
    ]
    for name, row in scores.items():
        overall, per_source = _fcn_summary(row)
        cells = [fmt(per_source.get(s)) for s in sources]
        shown = f"{name} ({names[name]})" if name in names else name
        lines.append(f"| {shown} | " + " | ".join(cells) + f" | {fmt(overall)} |")
    return "\n".join(lines) + "\n"


def write_results(config, workdir, results, scores, seconds):
    """Writes `results.json` (rows + "fcn_score" per adapted row), `fcn_score.json` and
    `results.md` atomically; returns the results."""
    rows = stages.result_rows(stages.table_for(config))
    folders = {label: folder for label, _, folder in rows}
    for label, result in results.items():
        folder = folders.get(label)
        if folder in scores:
            overall, per_source = _fcn_summary(scores[folder])
            result["fcn_score"] = {"miou_16": overall, "per_source": per_source}
    rt_files.atomic_write_json(os.path.join(workdir, "results.json"), results)
    rt_files.atomic_write_json(os.path.join(workdir, "fcn_score.json"), scores)
    text = evaluation.markdown_table(results)
    if scores:
        names = {}
        for label, _, folder in rows:
            if folder and label in results:
                names[folder] = f"{names[folder]}; {label}" if folder in names else label
        text += "\n" + fcn_table(scores, names)
    text += "\n" + evaluation.per_class_table(results) if results else ""
    text += f"\nWall time: {seconds:.0f} s (sum of the stages' times and the evaluation).\n"
    rt_files.atomic_write_text(os.path.join(workdir, "results.md"), text)
    return results


AGGREGATE_KEYS = ("miou_16", "miou_16_gt_present", "miou_19", "pixel_accuracy")


def seed_summary(values):
    """{"mean", "sd" (ddof 1; 0 for one seed), "values" ({str(seed): value})} of {seed: value}."""
    v = np.array(list(values.values()), dtype=float)
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "values": {str(s): float(x) for s, x in values.items()},
    }


def aggregate_seeds(per_seed):
    """{method: {key: {"mean", "sd", "values"}}} over seeds ({seed: results}).

    sd is the sample standard deviation (ddof=1; 0 for one seed); "fcn_score" aggregates
    the row's overall FCN-score. A method missing in some seed is aggregated over the
    seeds that have it ("values" shows which).
    """
    methods = []
    for results in per_seed.values():
        methods += [m for m in results if m not in methods]
    rows = {}
    for method in methods:
        row = {}
        for key in AGGREGATE_KEYS + ("fcn_score",):
            values = {}
            for seed, results in per_seed.items():
                value = results.get(method, {}).get(key)
                if key == "fcn_score" and value is not None:
                    value = value["miou_16"]
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    values[str(seed)] = float(value)
            if values:
                row[key] = seed_summary(values)
        rows[method] = row
    return rows


# The published claims as paired comparisons (row a − row b, same seed). "best single-source
# CyCADA" is the single-source CyCADA row with the higher mean over seeds (one choice for all
# seeds, so the pairing does not pick each seed's maximum).
BEST_SINGLE = "best single-source CyCADA"
PAIRED_COMPARISONS = (
    ("MADAN (+SAD+CCD+DSC+Feat)", "source-combined CyCADA"),
    ("MADAN (+SAD+CCD+DSC+Feat)", BEST_SINGLE),
    (BEST_SINGLE, "source-combined CyCADA"),
    ("MADAN (+SAD+CCD+DSC+Feat)", "colour transfer (combined)"),
    ("MADAN (+SAD+CCD+DSC+Feat)", "source-only (combined)"),
    ("+SAD", "baseline (multi-source CycleGAN)"),
    ("+CCD", "baseline (multi-source CycleGAN)"),
    ("+SAD+CCD", "+SAD"),
    ("+SAD+CCD+DSC", "+SAD+CCD"),
    ("MADAN (+SAD+CCD+DSC+Feat)", "+SAD+CCD+DSC"),
    ("MADAN (+SAD+CCD+DSC+Feat)", "baseline (multi-source CycleGAN)"),
)


def _best_single(rows, key):
    """The single-source CyCADA row label with the highest mean `key`, or None."""
    singles = [m for m in rows if m.startswith("single-source CyCADA (") and key in rows[m]]
    return max(singles, key=lambda m: rows[m][key]["mean"]) if singles else None


def paired(values_a, values_b):
    """{"mean", "sd", "values", "positive"} of a − b per seed in both ({seed: value}), or None.

    sd: ddof 1 (0 for one seed); "positive": the number of seeds where a > b.
    """
    seeds = [s for s in values_a if s in values_b]
    if not seeds:
        return None
    d = np.array([values_a[s] - values_b[s] for s in seeds])
    return {
        "mean": float(d.mean()),
        "sd": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
        "values": dict(zip(seeds, map(float, d))),
        "positive": int((d > 0).sum()),
    }


def paired_differences(rows, key="miou_16"):
    """[{"a", "b", "mean", "sd", "values", "positive"}] of PAIRED_COMPARISONS over seeds.

    `rows` is `aggregate_seeds`'s output; a difference is taken per seed present in both rows
    (`paired`). Comparisons with a missing row are left out.
    """
    best = _best_single(rows, key)
    out = []
    for a, b in PAIRED_COMPARISONS:
        a, b = (best if x == BEST_SINGLE else x for x in (a, b))
        if a is None or b is None or key not in rows.get(a, {}) or key not in rows.get(b, {}):
            continue
        d = paired(rows[a][key]["values"], rows[b][key]["values"])
        if d:
            out.append({"a": a, "b": b, **d})
    return out


def paired_table(differences, key="miou_16"):
    """Markdown table of `paired_differences` (a − b per seed, percentage points)."""
    lines = [
        f"Paired differences per seed ({key}, a − b, points):",
        "",
        "| a − b | mean ± sd | per seed | a > b |",
        "|---|---|---|---|",
    ]
    for d in differences:
        per_seed = " / ".join(f"{v:+.1f}" for v in d["values"].values())
        lines.append(
            f"| {d['a']} − {d['b']} | {d['mean']:+.1f} ± {d['sd']:.1f} | {per_seed} | "
            f"{d['positive']} of {len(d['values'])} |"
        )
    return "\n".join(lines) + "\n"


def aggregate_table(rows, seconds):
    """Markdown: mean ± sd per row (mIoU-16, fixed-class mIoU-16, mIoU-19, FCN-score; %)."""
    lines = [
        "| method | mIoU-16 (%) | mIoU-16, GT classes (%) | mIoU-19 (%) | FCN-score (%) | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for method, row in rows.items():
        cells = [
            fmt(row[k]["mean"], row[k]["sd"]) if k in row else "-"
            for k in ("miou_16", "miou_16_gt_present", "miou_19", "fcn_score")
        ]
        count = len(row.get("miou_16", {}).get("values", {}))
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {count} |")
    times = ", ".join(f"seed {s}: {t:.0f} s" for s, t in seconds.items())
    text = "\n".join(lines) + f"\n\nWall time per seed: {times}.\n"
    differences = paired_differences(rows)
    return text + "\n" + paired_table(differences) if differences else text


def summarize(results):
    """Printable lines of {method: mIoU-16, mIoU-19} (or mean ± sd over seeds), in percent."""
    if not results:
        return "no finished stages"
    lines = []
    for k, v in results.items():
        if "miou_16" in v and isinstance(v["miou_16"], dict):
            lines.append(f"{k}: mIoU-16 {fmt(v['miou_16']['mean'], v['miou_16']['sd'])} %")
        else:
            lines.append(f"{k}: mIoU-16 {v['miou_16']:.1f} %, mIoU-19 {v['miou_19']:.1f} %")
    return "\n".join(lines)
