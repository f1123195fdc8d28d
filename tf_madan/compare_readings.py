r"""Two multi-seed runs of one schedule side by side: the `paper` and the `code` reading.

Usage:
  python -m tf_madan.compare_readings --paper=runs/madan_v4 --code=runs/madan_v4_code \
      [--out=readings.json]

Reads each run's finished seeds (`seed_<s>/results.json`, so an unfinished run is reported over
the seeds it has) and prints markdown: mean ± sd per row under each reading with the paired
per-seed difference code − paper (same seed, same data; the seeds of both runs), the FCN-score
per reading, each reading's paired claim comparisons (`report.PAIRED_COMPARISONS`) and the wall
time per seed. `--out` writes the same as JSON. Values are mIoU-16 in percent.

`--translations` adds, per image stage and source, what each reading's translations changed
(`tf_madan.translation_stats`, against the target's labelled training images of each run's
data root): the colour gap to the target weighted by pixels, and the high-frequency ratio.
"""

import glob
import os
import re

from absl import app, flags

import tf_runtime
from tf_madan import layout, report, translation_stats
from tf_runtime import files as rt_files
from tf_runtime import run as run_lib


def define_flags(flag_values=flags.FLAGS):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    flags.DEFINE_string(
        "paper", None, "Workdir of the `paper` reading (with seed_<s>/).", flag_values=flag_values
    )
    flags.DEFINE_string(
        "code", None, "Workdir of the `code` reading (with seed_<s>/).", flag_values=flag_values
    )
    flags.DEFINE_string("out", None, "Optional JSON output path.", flag_values=flag_values)
    flags.DEFINE_bool(
        "translations",
        False,
        "Also measure every finished seed's translated images against the target "
        "(colour gap per class, high-frequency ratio; reads the runs' data roots).",
        flag_values=flag_values,
    )


def finished_seeds(workdir):
    """({seed: results}, {seed: wall seconds}) of every seed of `workdir` with a results.json.

    Raises FileNotFoundError naming `workdir` when it has no finished seed.
    """
    per_seed, seconds = {}, {}
    for path in sorted(glob.glob(os.path.join(workdir, "seed_*", "results.json"))):
        folder = os.path.dirname(path)
        match = re.fullmatch(r"seed_(\d+)", os.path.basename(folder))
        if not match or not rt_files.has_marker(os.path.join(folder, run_lib.DONE_NAME)):
            continue
        seed = int(match.group(1))
        per_seed[seed] = rt_files.read_json(path)
        timing = os.path.join(folder, "timing.json")
        if os.path.exists(timing):
            seconds[seed] = rt_files.read_json(timing)["seconds"]
    if not per_seed:
        raise FileNotFoundError(f"No finished seed (seed_<s>/results.json and DONE) in {workdir!r}")
    return per_seed, seconds


def reading_differences(paper_rows, code_rows, key="miou_16"):
    """{row: {"mean", "sd", "values", "positive"}} of code − paper per seed present in both."""
    out = {}
    for method, row in paper_rows.items():
        if key not in row or key not in code_rows.get(method, {}):
            continue
        d = report.paired(code_rows[method][key]["values"], row[key]["values"])
        if d:
            out[method] = d
    return out


def _cell(row, key):
    return report.fmt(row[key]["mean"], row[key]["sd"]) if key in row else "-"


def compare(paper_dir, code_dir):
    """The JSON-able comparison of the two runs (see the module docstring)."""
    runs = {}
    for name, workdir in (("paper", paper_dir), ("code", code_dir)):
        per_seed, seconds = finished_seeds(workdir)
        rows = report.aggregate_seeds(per_seed)
        runs[name] = {
            "workdir": workdir,
            "seeds": sorted(per_seed),
            "rows": rows,
            "paired": report.paired_differences(rows),
            "seconds_per_seed": seconds,
        }
    runs["code_minus_paper"] = reading_differences(runs["paper"]["rows"], runs["code"]["rows"])
    return runs


def translation_summary(workdir, seeds):
    """{image stage: {source: {statistic: {"mean", "sd", "values"}}}} over `seeds` of `workdir`.

    The statistics are `translation_stats.compare`'s pixel-weighted colour gap, its largest
    class gap and the high-frequency ratio, for each seed's finished image stages.
    """
    keys = ("pixel_colour_gap", "largest_gap", "high_frequency_ratio")
    values = {}
    for seed in seeds:
        seed_dir = os.path.join(workdir, f"seed_{seed}")
        stats = translation_stats.run_statistics(layout.run_config(seed_dir), seed_dir)
        for folder, row in stats.items():
            for source, result in row.items():
                cell = values.setdefault(folder, {}).setdefault(source, {k: {} for k in keys})
                for k in keys:
                    cell[k][seed] = result[k]
    return {
        folder: {
            source: {k: report.seed_summary(v) for k, v in cell.items()}
            for source, cell in row.items()
        }
        for folder, row in values.items()
    }


def _per_seed(stat, digits=2):
    if not stat:
        return "-"
    values = " / ".join(f"{v:.{digits}f}" for v in stat["values"].values())
    return f"{stat['mean']:.{digits}f} ({values})"


def translation_markdown(translations):
    """Markdown table of `translation_summary` for both readings (mean, then per seed)."""
    paper, code = translations["paper"], translations["code"]
    lines = [
        "Translations against the target's labelled training images (mean over seeds, then "
        "per seed): colour gap = distance of each class's mean RGB colour ([0, 1]) from the "
        "target's, weighted by pixels; high-frequency ratio = mean |Laplacian| over the "
        "target's (1 = the target's texture).",
        "",
        "| image stage | source | colour gap paper | colour gap code | high-frequency paper "
        "| high-frequency code |",
        "|---|---|---|---|---|---|",
    ]
    for folder in list(paper) + [f for f in code if f not in paper]:
        p, c = paper.get(folder, {}), code.get(folder, {})
        for source in list(p) + [s for s in c if s not in p]:
            ps, cs = p.get(source, {}), c.get(source, {})
            lines.append(
                f"| {folder} | {source} | {_per_seed(ps.get('pixel_colour_gap'), 3)} | "
                f"{_per_seed(cs.get('pixel_colour_gap'), 3)} | "
                f"{_per_seed(ps.get('high_frequency_ratio'))} | "
                f"{_per_seed(cs.get('high_frequency_ratio'))} |"
            )
    return "\n".join(lines) + "\n"


def markdown(result):
    paper, code, diff = result["paper"]["rows"], result["code"]["rows"], result["code_minus_paper"]
    lines = [
        f"Seeds: paper {result['paper']['seeds']}, code {result['code']['seeds']} "
        "(mIoU-16 and FCN-score in %, mean ± sd; code − paper paired per seed).",
        "",
        "| method | paper | code | code − paper (per seed) | FCN-score paper | FCN-score code |",
        "|---|---|---|---|---|---|",
    ]
    for method in list(paper) + [m for m in code if m not in paper]:
        p, c = paper.get(method, {}), code.get(method, {})
        d = diff.get(method)
        shown = (
            f"{d['mean']:+.1f} ± {d['sd']:.1f} ("
            + " / ".join(f"{v:+.1f}" for v in d["values"].values())
            + ")"
            if d
            else "-"
        )
        lines.append(
            f"| {method} | {_cell(p, 'miou_16')} | {_cell(c, 'miou_16')} | {shown} | "
            f"{_cell(p, 'fcn_score')} | {_cell(c, 'fcn_score')} |"
        )
    for name in ("paper", "code"):
        run = result[name]
        lines += ["", f"**{name} reading.** " + report.paired_table(run["paired"])]
        times = ", ".join(f"seed {s}: {t:.0f} s" for s, t in run["seconds_per_seed"].items())
        lines.append(f"Wall time per seed ({name}): {times or '-'}.")
    return "\n".join(lines) + "\n"


def main(argv, flag_values=flags.FLAGS):
    del argv
    if not flag_values.paper or not flag_values.code:
        raise app.UsageError("Pass both --paper and --code (run workdirs with seed_<s>/ folders).")
    try:
        result = compare(flag_values.paper, flag_values.code)
        if flag_values.translations:
            # A seed's config.json or its data root (moved or deleted) missing: one line naming it.
            result["translations"] = {
                name: translation_summary(result[name]["workdir"], result[name]["seeds"])
                for name in ("paper", "code")
            }
    except FileNotFoundError as error:
        raise app.UsageError(str(error)) from error
    print(markdown(result))
    if flag_values.translations:
        print(translation_markdown(result["translations"]))
    if flag_values.out:
        tf_runtime.atomic_write_json(flag_values.out, result)


if __name__ == "__main__":
    define_flags()
    app.run(main)
