r"""Exports the trained segmenter and generators of a MADAN run as SavedModels.

Usage:
  python -m tf_madan.export --workdir=runs/madan_cpu --out=runs/madan_cpu/export
The networks are rebuilt from the run's own config.json (a --config that differs is an error
naming the keys unless --allow_config_change). The exports take RGB images in [0, 255] (float32
`serve` or uint8 `serve_uint8`) with the preprocessing inside; see tf_madan.export_lib.
"""

import os

from absl import app, flags

import tf_runtime
from tf_madan import export_lib, layout

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")


def define_flags(flag_values=flags.FLAGS, sys_argv=None):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    tf_runtime.define_flags(
        DEFAULT_CONFIG,
        workdir_help="Finished training run.",
        strategy=False,
        config_help="Config file; must equal the run's config.json unless --allow_config_change.",
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
    config = layout.run_config(
        run.workdir, layout.given_config(flag_values), allow_config_change=run.allow_config_change
    )
    paths = export_lib.export_run(
        config,
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
