r"""Trains MADAN (one stage or the whole schedule) and evaluates on the target.

Usage:
  python -m tf_madan.train --config=tf_madan/configs/cpu_benchmark.py \
      --config.data.root=/tmp/driving --workdir=runs/madan_cpu [--config.stage=all] \
      [--strategy=mirrored --num_cpu_devices=2] [--init_checkpoint=fcn8s.weights.h5] \
      [--allow_config_change] [--reuse_from=runs/other_reading]
"""

import os

from absl import app, flags

import tf_runtime
from tf_madan import report, train_lib

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")


def define_flags(flag_values=flags.FLAGS, sys_argv=None):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    tf_runtime.define_flags(DEFAULT_CONFIG, flag_values=flag_values, sys_argv=sys_argv)
    flags.DEFINE_string(
        "init_checkpoint",
        None,
        "Local .weights.h5 for the segmenter (e.g. converted VGG16).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "reuse_from",
        None,
        "Another run folder (e.g. the same benchmark under the other reading): a stage not "
        "finished here is copied from it when it finished there under a record that agrees on "
        "every field the stage reads.",
        flag_values=flag_values,
    )


def main(argv, flag_values=flags.FLAGS):
    del argv
    run = tf_runtime.run_flags(flag_values)
    config = run.config
    if flag_values.init_checkpoint:
        config.segmenter.init_checkpoint = flag_values.init_checkpoint
    # train_and_evaluate validates the config, checks it against the run's config.json and
    # only then records it.
    results = train_lib.train_and_evaluate(
        config,
        run.workdir,
        run.build_strategy(),
        allow_config_change=run.allow_config_change,
        reuse_from=flag_values.reuse_from,
    )
    print(report.summarize(results))


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=tf_runtime.flags_parser)
