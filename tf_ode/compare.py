r"""Baseline vs ANODE vs ANODEV2 comparison run (embedded data; ~10 min on 2 CPU cores).

Usage:
  python -m tf_ode.compare --config=tf_ode/configs/compare.py --workdir=runs/ode_compare \
      [--config.num_epochs=2] [--config.method=rk2] [--allow_config_change]

Writes one training run per variant under --workdir/<variant>/ plus comparison.json and
comparison.md (table: test accuracy, seconds per epoch, f evaluations per step, parameters).
Finished variants are reused when the command is re-run with the same config.
"""

import os

from absl import app, flags

import tf_runtime
from tf_ode import compare_lib

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "compare.py")


def define_flags(flag_values=flags.FLAGS, sys_argv=None):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    tf_runtime.define_flags(DEFAULT_CONFIG, flag_values=flag_values, sys_argv=sys_argv)


def main(argv, flag_values=flags.FLAGS):
    del argv
    run = tf_runtime.run_flags(flag_values)
    strategy = run.build_strategy()
    compare_lib.validate_config(run.config)  # every cell's config, before the folder is touched
    compare_lib.check_cells(run.config, run.workdir)  # before config.json records a new config
    # Lock the comparison folder, check its config against the recorded one, then record it.
    with tf_runtime.open_run(
        run.workdir, run.config, strategy=strategy, allow_config_change=run.allow_config_change
    ):
        outputs = compare_lib.run_comparison(run.config, run.workdir, strategy)
    print(outputs["table"])


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=tf_runtime.flags_parser)
