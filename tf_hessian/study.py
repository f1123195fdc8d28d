r"""The large-batch / robustness study in one command.

Usage:
  python -m tf_hessian.study --workdir=runs/hessian_study \
      [--config=tf_hessian/configs/study.py[:demo]] [--config.train.data.name=mnist \
       --config.train.data.data_dir=/data/mnist]

Writes study.md (table), study.json, study.png, spectrum.png, density.png, landscape_1d.png
and one folder per model (checkpoints, TensorBoard, row.json) into --workdir. Finished
models are reused when the command is re-run.
"""

from absl import app, flags
from ml_collections import config_flags

import tf_runtime
from tf_hessian import study_lib

_CONFIG = config_flags.DEFINE_config_file("config", "tf_hessian/configs/study.py", "Study config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)
_STRATEGY = flags.DEFINE_enum("strategy", "default", list(tf_runtime.STRATEGIES), "Strategy.")
_NUM_CPU_DEVICES = flags.DEFINE_integer("num_cpu_devices", 0, "Logical CPUs for 'mirrored'.")


def main(argv):
    del argv
    strategy = tf_runtime.build_strategy(_STRATEGY.value, _NUM_CPU_DEVICES.value)
    tf_runtime.write_config(_CONFIG.value, _WORKDIR.value)
    results = study_lib.run_study(_CONFIG.value, _WORKDIR.value, strategy)
    print(results["note"])
    print(results["table"])
    print(f"Outputs: {results['paths']}  ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    app.run(main)
