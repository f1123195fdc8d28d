r"""Hessian analysis of a trained checkpoint: JSON (top-k, trace, density) and PNG plots.

Usage:
  python -m tf_hessian.analyze --workdir=runs/m1_b512 \
      [--config=tf_hessian/configs/analyze.py] [--output_dir=runs/m1_b512/analysis] \
      [--checkpoint=runs/m1_b512/checkpoints/ckpt-400] [--strategy=mirrored --num_cpu_devices=2]

Writes analysis.json, density.npz, spectrum.png, density.png, landscape_1d.png,
landscape_2d.png and robustness.png into --output_dir (default: <workdir>/analysis).
"""

import json
import os

from absl import app, flags

import tf_runtime
from tf_hessian import analyze_lib

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "analyze.py")


def define_flags(flag_values=flags.FLAGS, sys_argv=None):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    tf_runtime.define_flags(
        DEFAULT_CONFIG,
        workdir_help="Training run folder (config.json, checkpoints/).",
        resumable=False,
        config_help="Analysis config file.",
        flag_values=flag_values,
        sys_argv=sys_argv,
    )
    flags.DEFINE_string(
        "output_dir", None, "Output folder (default <workdir>/analysis).", flag_values=flag_values
    )
    flags.DEFINE_string(
        "checkpoint", None, "Checkpoint prefix (default: the latest).", flag_values=flag_values
    )


def main(argv, flag_values=flags.FLAGS):
    del argv
    run = tf_runtime.run_flags(flag_values)
    output_dir = flag_values.output_dir or os.path.join(run.workdir, "analysis")
    strategy = run.build_strategy()
    tf_runtime.write_config(run.config, output_dir, filename="analysis_config.json")
    results = analyze_lib.analyze_checkpoint(
        run.config, run.workdir, output_dir, checkpoint=flag_values.checkpoint, strategy=strategy
    )
    keys = ["eigenvalues", "lambda_min", "trace", "trace_stderr", "eigen_hvps", "plots"]
    print(json.dumps({k: results[k] for k in keys if k in results}, indent=2, default=float))


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=tf_runtime.flags_parser)
