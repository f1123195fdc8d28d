r"""Tuning sweep of the pixel stage on the SINGLE-SOURCE CycleGAN's FCN-score (never MADAN's mIoU).

For each setting, trains a CycleGAN per source alone (the schedule's cyclegan_<src>_daig +
cyclegan_<src> stages, daig + ada epochs), translates every source image and scores it with one
oracle segmenter (trained once on labelled target train images), next to the raw sources and
the colour transfer. Settings are `key=value` config overrides separated by commas; a setting
named `base` keeps the config as it is.

Usage:
  python benchmarks/madan_pixel_sweep.py --config=tf_madan/configs/cpu_benchmark_v2.py \
      --config.data.root=/tmp/driving_v2 --workdir=/tmp/madan_sweep \
      --settings="base;discriminator.num_layers=2;gan.lambda_cycle=1.0"
Prints and writes `<workdir>/sweep.md` / `sweep.json`: protocol mIoU-16 of the oracle per
source and overall, per setting; resumable (finished stages are reused).
"""

import json
import os

import tensorflow as tf
from absl import app, flags
from ml_collections import config_flags

from tf_madan import layout, report, stage_runner, stages

_CONFIG = config_flags.DEFINE_config_file(
    "config", "tf_madan/configs/cpu_benchmark_v2.py", "Config file."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)
_SETTINGS = flags.DEFINE_string("settings", "base", "';'-separated settings of k=v,k=v.")


def _apply(config, setting):
    config = config.copy_and_resolve_references()
    if setting == "base":
        return config
    for item in setting.split(","):
        key, value = item.split("=")
        *path, leaf = key.strip().split(".")
        node = config
        for part in path:
            node = node[part]
        node[leaf] = type(node[leaf])(eval(value, {}, {}))  # numbers / tuples only
    return config


def _cell(row, key):
    value = row.get(key)
    return "-" if value is None else f"{value['miou_16']:.1f}"


def main(argv):
    del argv
    strategy = tf.distribute.get_strategy()
    base = _CONFIG.value
    shared = os.path.join(_WORKDIR.value, "shared")
    one = base.copy_and_resolve_references()
    one.stage = "oracle"
    stage_runner.run_schedule(one, shared, strategy)
    colour = {s.name: s for s in stages.build_table(one.data.sources)}["adapted_color"]
    stage_runner.run_stage(colour, one, shared, strategy, {})
    sources = list(base.data.sources)
    rows = {}
    for setting in _SETTINGS.value.split(";"):
        config = _apply(base, setting)
        config.stage = "single_source"
        config.pipeline.cycada_fla = False
        workdir = os.path.join(_WORKDIR.value, setting.replace("=", "_").replace(",", "+"))
        os.makedirs(workdir, exist_ok=True)
        for name in ("oracle", "adapted_color"):
            if not os.path.exists(os.path.join(workdir, name)):
                os.symlink(os.path.join(shared, name), os.path.join(workdir, name))
        stage_runner.run_schedule(config, workdir, strategy)
        scores = report.fcn_scores(config, workdir)
        for key, row in scores.items():
            if key.startswith("raw") or key == "adapted_color":
                rows.setdefault(key, row)
            else:
                rows[f"{setting}: {key}"] = row
        print(f"{setting}: {layout.wall_time(workdir):.0f} s of stages", flush=True)
    lines = ["| images | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
    for key, row in rows.items():
        lines.append(f"| {key} | " + " | ".join(_cell(row, s) for s in sources) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    with open(os.path.join(_WORKDIR.value, "sweep.md"), "w") as handle:
        handle.write(table)
    with open(os.path.join(_WORKDIR.value, "sweep.json"), "w") as handle:
        json.dump(rows, handle, indent=2, default=str)


if __name__ == "__main__":
    app.run(main)
