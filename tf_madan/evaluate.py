r"""Evaluates a segmenter on the full target split: per-class IoU, 19/16-class mIoU.

Usage:
  python -m tf_madan.evaluate --config=tf_madan/configs/cpu_benchmark.py \
      --config.data.root=/tmp/driving --weights=runs/madan_cpu/madan/segmenter.weights.h5 \
      [--split=val] [--out=eval.json]
  # or every finished stage of a run (its own config.json builds the networks; a --config that
  # differs is an error naming the keys unless --allow_config_change):
  python -m tf_madan.evaluate --workdir=runs/madan_cpu
Results are in percent.
"""

import os

from absl import app, flags

import tf_runtime
from tf_madan import evaluation, layout, report

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")


def define_flags(flag_values=flags.FLAGS, sys_argv=None):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    tf_runtime.define_flags(
        DEFAULT_CONFIG,
        workdir=False,
        strategy=False,
        resumable=False,
        flag_values=flag_values,
        sys_argv=sys_argv,
    )
    flags.DEFINE_string(
        "weights", None, "Segmenter .weights.h5 to evaluate.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "workdir", None, "Evaluate every finished stage of this run.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "split", None, "Target split (default config.data.eval_split).", flag_values=flag_values
    )
    flags.DEFINE_string("out", None, "Optional JSON output path.", flag_values=flag_values)
    flags.DEFINE_boolean(
        "allow_config_change",
        False,
        "With --workdir: use --config even where it differs from the run's config.json.",
        flag_values=flag_values,
    )


def main(argv, flag_values=flags.FLAGS):
    del argv
    weights, workdir = flag_values.weights, flag_values.workdir
    if bool(weights) == bool(workdir):
        raise app.UsageError("Pass exactly one of --weights and --workdir.")
    if weights:
        config = flag_values.config
        segmenter = layout.load_segmenter(config, weights)  # errors name the file
        results = {
            weights: evaluation.evaluate_on_target(config, segmenter, split=flag_values.split)
        }
    else:
        config = layout.run_config(
            workdir,
            layout.given_config(flag_values),
            allow_config_change=flag_values.allow_config_change,
        )
        finished = report.collect_finished(config, workdir)
        results = {
            label: evaluation.evaluate_on_target(
                config, layout.load_segmenter(config, path), split=flag_values.split
            )
            for label, path in finished.items()
        }
    print(evaluation.markdown_table(results))
    print(evaluation.per_class_table(results))
    if flag_values.out:
        tf_runtime.atomic_write_json(flag_values.out, results)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=tf_runtime.flags_parser)
