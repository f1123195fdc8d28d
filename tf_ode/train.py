r"""Trains a baseline / ANODE / ANODEV2 classifier.

Usage:
  python -m tf_ode.train --config=tf_ode/configs/default.py --workdir=runs/anodev2 \
      [--config.dataset=cifar10 --config.data_dir=DIR] [--config.variant=anode] \
      [--config.method=rk4 --config.num_steps=8 --config.gradient=dto] \
      [--strategy=mirrored --num_cpu_devices=2] [--allow_config_change]

With no data: `--config=tf_ode/configs/default.py:smoke` (embedded digits, seconds).
Writes config.json, checkpoints, tensorboard/ (loss, accuracy, nfe per step, eval), history.json,
saved_model/, results.json and DONE into --workdir. Re-running a finished run prints its stored
results; a killed run resumes exactly.
"""

import json
import os

from absl import app, flags

import tf_runtime
from tf_ode import train_lib

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")


def define_flags(flag_values=flags.FLAGS, sys_argv=None):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    tf_runtime.define_flags(DEFAULT_CONFIG, flag_values=flag_values, sys_argv=sys_argv)


def main(argv, flag_values=flags.FLAGS):
    del argv
    run = tf_runtime.run_flags(flag_values)
    results = train_lib.train_and_evaluate(
        run.config,
        run.workdir,
        run.build_strategy(),
        allow_config_change=run.allow_config_change,
    )
    print(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=tf_runtime.flags_parser)
