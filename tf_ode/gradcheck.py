r"""Relative gradient error of the adjoint vs DTO, and DTO vs finite differences, over Nt.

Usage:
  python -m tf_ode.gradcheck --config=tf_ode/configs/gradcheck.py --output_dir=runs/ode_gradcheck \
      [--config.kind=coupled|resnet4_anode|resnet4_anodev2] [--config.method=rk4]

Writes config.json, gradcheck.json, gradcheck.md (table) and gradcheck.png (plot) into --output_dir
and prints the table.
"""

import os

from absl import app, flags

import tf_runtime
from tf_ode import gradcheck_lib

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "gradcheck.py")


def define_flags(flag_values=flags.FLAGS, sys_argv=None):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    tf_runtime.define_flags(
        DEFAULT_CONFIG,
        workdir_name="output_dir",
        workdir_help="Output folder.",
        strategy=False,
        resumable=False,
        flag_values=flag_values,
        sys_argv=sys_argv,
    )


def main(argv, flag_values=flags.FLAGS):
    del argv
    run = tf_runtime.run_flags(flag_values, workdir_name="output_dir")
    config = run.config
    tf_runtime.write_config(config, run.workdir)
    rows = gradcheck_lib.run_gradcheck(
        kind=config.kind,
        method=config.method,
        nt_values=tuple(config.nt_values),
        channels=config.channels,
        size=config.size,
        seed=config.seed,
    )
    outputs = gradcheck_lib.write_outputs(rows, run.workdir, kind=config.kind, method=config.method)
    print(outputs["table"])


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=tf_runtime.flags_parser)
