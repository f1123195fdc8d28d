r"""Trains a baseline / ANODE / ANODEV2 classifier.

Usage:
  python -m tf_ode.train --config=tf_ode/configs/default.py --workdir=runs/anodev2 \
      [--config.dataset=cifar10 --config.data_dir=DIR] [--config.variant=anode] \
      [--config.method=rk4 --config.num_steps=8 --config.gradient=dto] \
      [--strategy=mirrored --num_cpu_devices=2]

With no data: `--config=tf_ode/configs/default.py:smoke` (embedded digits, seconds).
Writes config.json, checkpoints, tensorboard/ (loss, accuracy, nfe per step, eval),
saved_model/ and results.json into --workdir.
"""

import json

from absl import app, flags
from ml_collections import config_flags

import tf_runtime
from tf_ode import train_lib

_CONFIG = config_flags.DEFINE_config_file("config", "tf_ode/configs/default.py", "Config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)
_STRATEGY = flags.DEFINE_enum("strategy", "default", list(tf_runtime.STRATEGIES), "Strategy.")
_NUM_CPU_DEVICES = flags.DEFINE_integer("num_cpu_devices", 0, "Logical CPUs for 'mirrored'.")


def main(argv):
    del argv
    strategy = tf_runtime.build_strategy(_STRATEGY.value, _NUM_CPU_DEVICES.value)
    tf_runtime.write_config(_CONFIG.value, _WORKDIR.value)
    results = train_lib.train_and_evaluate(_CONFIG.value, _WORKDIR.value, strategy)
    print(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    app.run(main)
