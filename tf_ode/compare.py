r"""Baseline vs ANODE vs ANODEV2 comparison run (embedded data; ~10 min on 2 CPU cores).

Usage:
  python -m tf_ode.compare --config=tf_ode/configs/compare.py --workdir=runs/ode_compare \
      [--config.num_epochs=2] [--config.method=rk2]

Writes one training run per variant under --workdir/<variant>/ plus comparison.json and
comparison.md (table: test accuracy, seconds per epoch, f evaluations per step, parameters).
"""

from absl import app, flags
from ml_collections import config_flags

import tf_runtime
from tf_ode import compare_lib

_CONFIG = config_flags.DEFINE_config_file("config", "tf_ode/configs/compare.py", "Config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)
_STRATEGY = flags.DEFINE_enum("strategy", "default", list(tf_runtime.STRATEGIES), "Strategy.")
_NUM_CPU_DEVICES = flags.DEFINE_integer("num_cpu_devices", 0, "Logical CPUs for 'mirrored'.")


def main(argv):
    del argv
    strategy = tf_runtime.build_strategy(_STRATEGY.value, _NUM_CPU_DEVICES.value)
    tf_runtime.write_config(_CONFIG.value, _WORKDIR.value)
    outputs = compare_lib.run_comparison(_CONFIG.value, _WORKDIR.value, strategy)
    print(outputs["table"])


if __name__ == "__main__":
    app.run(main)
