r"""Exports the trained segmenter and generators of a MADAN run as SavedModels.

Usage:
  python -m tf_madan.export --workdir=runs/madan_cpu --out=runs/madan_cpu/export
The networks are rebuilt from the run's own config.json (--config is used only for a run folder
without one).
"""

import os

from absl import app, flags

import tf_runtime
from tf_madan import export_lib

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")


def define_flags(flag_values=flags.FLAGS, sys_argv=None):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    tf_runtime.define_flags(
        DEFAULT_CONFIG,
        workdir_help="Finished training run.",
        strategy=False,
        resumable=False,
        config_help="Config file, used only when --workdir has no config.json.",
        flag_values=flag_values,
        sys_argv=sys_argv,
    )
    flags.DEFINE_string("out", None, "Export folder.", required=True, flag_values=flag_values)
    flags.DEFINE_string(
        "segmenter_stage", "madan", "Stage of the segmenter.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "generator_stage", "ada", "Stage of the generators.", flag_values=flag_values
    )


def main(argv, flag_values=flags.FLAGS):
    del argv
    run = tf_runtime.run_flags(flag_values)
    paths = export_lib.export_run(
        run.config,
        run.workdir,
        flag_values.out,
        segmenter_stage=flag_values.segmenter_stage,
        generator_stage=flag_values.generator_stage,
    )
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=tf_runtime.flags_parser)
