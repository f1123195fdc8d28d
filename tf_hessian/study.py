r"""The large-batch / robustness study in one command.

Usage:
  python -m tf_hessian.study --workdir=runs/hessian_study \
      [--config=tf_hessian/configs/study.py[:demo]] [--config.train.data.name=mnist \
       --config.train.data.data_dir=/data/mnist] [--allow_config_change]

Writes study.md (table), study.json, study.png, spectrum.png, density.png, landscape_1d.png
and one folder per model (checkpoints, TensorBoard, row.json) into --workdir. Finished
models are reused when the command is re-run with the same config (a different config is an
error naming the changed keys unless --allow_config_change).
"""

import os

from absl import app, flags

import tf_runtime
from tf_hessian import study_lib

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "study.py")


def define_flags(flag_values=flags.FLAGS, sys_argv=None):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    tf_runtime.define_flags(
        DEFAULT_CONFIG, config_help="Study config file.", flag_values=flag_values, sys_argv=sys_argv
    )


def main(argv, flag_values=flags.FLAGS):
    del argv
    run = tf_runtime.run_flags(flag_values)
    strategy = run.build_strategy()
    # Every field of every model's config is checked before the study folder is touched.
    study_lib.validate_config(run.config, strategy)
    # Models trained under another training config are refused before config.json changes.
    study_lib.check_rows(run.config, run.workdir)
    # Lock the study folder, check its config against the recorded one, then record it.
    with tf_runtime.open_run(
        run.workdir, run.config, strategy=strategy, allow_config_change=run.allow_config_change
    ):
        results = study_lib.run_study(run.config, run.workdir, strategy)
    print(results["note"])
    print(results["table"])
    print(f"Outputs: {results['paths']}  ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=tf_runtime.flags_parser)
