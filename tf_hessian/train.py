r"""Trains a classifier at one batch size (optionally with robust training).

Usage:
  python -m tf_hessian.train --config=tf_hessian/configs/m1_mnist.py:mnist5k \
      --config.batch_size=512 --workdir=runs/m1_b512 [--config.robust.enabled=True] \
      [--strategy=mirrored --num_cpu_devices=2]

Writes config.json, checkpoints/, tensorboard/, saved_model/ and metrics.json into --workdir.
"""

import json

from absl import app, flags
from ml_collections import config_flags

import tf_runtime
from tf_hessian import train_lib

_CONFIG = config_flags.DEFINE_config_file("config", "tf_hessian/configs/default.py", "Config file.")
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
