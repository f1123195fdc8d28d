r"""Trains a classifier at one batch size (optionally with robust training).

Usage:
  python -m tf_hessian.train --config=tf_hessian/configs/m1_mnist.py:mnist5k \
      --config.batch_size=512 --workdir=runs/m1_b512 [--config.robust.enabled=True] \
      [--strategy=mirrored --num_cpu_devices=2] [--allow_config_change]

Writes config.json, checkpoints/, tensorboard/, history.json, saved_model/, metrics.json and DONE
into --workdir. Re-running a finished run prints its stored metrics; a killed run resumes.
"""

import json
import os

from absl import app, flags

import tf_runtime
from tf_hessian import train_lib

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
