r"""Evaluates a segmenter on the full target split: per-class IoU, 19/16-class mIoU.

Usage:
  python -m tf_madan.evaluate --config=tf_madan/configs/cpu_benchmark.py \
      --config.data.root=/tmp/driving --weights=runs/madan_cpu/madan/segmenter.weights.h5 \
      [--split=val] [--out=eval.json]
  # or every finished stage of a run:
  python -m tf_madan.evaluate --config=... --workdir=runs/madan_cpu
"""

import json

from absl import app, flags
from ml_collections import config_flags

from tf_madan import builders, evaluation, train_lib

_CONFIG = config_flags.DEFINE_config_file("config", "tf_madan/configs/default.py", "Config file.")
_WEIGHTS = flags.DEFINE_string("weights", None, "Segmenter .weights.h5 to evaluate.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Evaluate every finished stage of this run.")
_SPLIT = flags.DEFINE_string("split", None, "Target split (default config.data.eval_split).")
_OUT = flags.DEFINE_string("out", None, "Optional JSON output path.")


def main(argv):
    del argv
    config = _CONFIG.value
    if bool(_WEIGHTS.value) == bool(_WORKDIR.value):
        raise app.UsageError("Pass exactly one of --weights and --workdir.")
    if _WEIGHTS.value:
        segmenter = builders.build_segmenter(config)
        segmenter.load_weights(_WEIGHTS.value)
        results = {
            _WEIGHTS.value: evaluation.evaluate_on_target(config, segmenter, split=_SPLIT.value)
        }
    else:
        config.stage = "evaluate"
        results = train_lib.evaluate_methods(
            config, train_lib.collect_finished(config, _WORKDIR.value)
        )
    print(evaluation.markdown_table(results))
    print(evaluation.per_class_table(results))
    if _OUT.value:
        with open(_OUT.value, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    app.run(main)
