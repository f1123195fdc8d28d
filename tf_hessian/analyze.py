r"""Hessian analysis of a trained checkpoint: JSON (top-k, trace, density) and PNG plots.

Usage:
  python -m tf_hessian.analyze --workdir=runs/m1_b512 \
      [--config=tf_hessian/configs/analyze.py] [--output_dir=runs/m1_b512/analysis] \
      [--checkpoint=runs/m1_b512/checkpoints/ckpt-400] [--strategy=mirrored --num_cpu_devices=2]

Writes analysis.json, density.npz, spectrum.png, density.png, landscape_1d.png,
landscape_2d.png and robustness.png into --output_dir (default: <workdir>/analysis).
"""

import json

from absl import app, flags
from ml_collections import config_flags

import tf_runtime
from tf_hessian import analyze_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", "tf_hessian/configs/analyze.py", "Analysis config."
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Training run folder (config.json, checkpoints/).", required=True
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Output folder (default <workdir>/analysis).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (default: the latest).")
_STRATEGY = flags.DEFINE_enum("strategy", "default", list(tf_runtime.STRATEGIES), "Strategy.")
_NUM_CPU_DEVICES = flags.DEFINE_integer("num_cpu_devices", 0, "Logical CPUs for 'mirrored'.")


def main(argv):
    del argv
    strategy = tf_runtime.build_strategy(_STRATEGY.value, _NUM_CPU_DEVICES.value)
    output_dir = _OUTPUT_DIR.value or f"{_WORKDIR.value}/analysis"
    tf_runtime.write_config(_CONFIG.value, output_dir, filename="analysis_config.json")
    results = analyze_lib.analyze_checkpoint(
        _CONFIG.value, _WORKDIR.value, output_dir, checkpoint=_CHECKPOINT.value, strategy=strategy
    )
    keys = ["eigenvalues", "lambda_min", "trace", "trace_stderr", "eigen_hvps", "plots"]
    print(json.dumps({k: results[k] for k in keys if k in results}, indent=2, default=float))


if __name__ == "__main__":
    app.run(main)
