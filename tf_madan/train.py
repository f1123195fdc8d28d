r"""Trains MADAN (one stage or the whole schedule) and evaluates on the target.

Usage:
  python -m tf_madan.train --config=tf_madan/configs/cpu_benchmark.py \
      --config.data.root=/tmp/driving --workdir=runs/madan_cpu [--config.stage=all] \
      [--strategy=mirrored --num_cpu_devices=2] [--init_checkpoint=fcn8s.weights.h5]
"""

from absl import app, flags
from ml_collections import config_flags

import tf_runtime
from tf_madan import train_lib

_CONFIG = config_flags.DEFINE_config_file("config", "tf_madan/configs/default.py", "Config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.", required=True)
_STRATEGY = flags.DEFINE_enum("strategy", "default", list(tf_runtime.STRATEGIES), "Strategy.")
_NUM_CPU_DEVICES = flags.DEFINE_integer("num_cpu_devices", 0, "Logical CPUs for 'mirrored'.")
_INIT_CHECKPOINT = flags.DEFINE_string(
    "init_checkpoint", None, "Local .weights.h5 for the segmenter (e.g. converted VGG16)."
)


def main(argv):
    del argv
    config = _CONFIG.value
    if _INIT_CHECKPOINT.value:
        config.segmenter.init_checkpoint = _INIT_CHECKPOINT.value
    strategy = tf_runtime.build_strategy(_STRATEGY.value, _NUM_CPU_DEVICES.value)
    tf_runtime.write_config(config, _WORKDIR.value)
    results = train_lib.train_and_evaluate(config, _WORKDIR.value, strategy)
    print(train_lib.summarize(results))


if __name__ == "__main__":
    app.run(main)
