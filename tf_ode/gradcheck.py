r"""Relative gradient error of the adjoint vs DTO, and DTO vs finite differences, over Nt.

Usage:
  python -m tf_ode.gradcheck --config=tf_ode/configs/gradcheck.py --output_dir=runs/ode_gradcheck \
      [--config.kind=coupled|resnet4_anode|resnet4_anodev2] [--config.method=rk4]

Writes config.json, gradcheck.json, gradcheck.md (table) and gradcheck.png (plot) into --output_dir
and prints the table.
"""

from absl import app, flags
from ml_collections import config_flags

import tf_runtime
from tf_ode import gradcheck_lib

_CONFIG = config_flags.DEFINE_config_file("config", "tf_ode/configs/gradcheck.py", "Config file.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Output folder.", required=True)


def main(argv):
    del argv
    config = _CONFIG.value
    tf_runtime.write_config(config, _OUTPUT_DIR.value)
    rows = gradcheck_lib.run_gradcheck(
        kind=config.kind,
        method=config.method,
        nt_values=tuple(config.nt_values),
        channels=config.channels,
        size=config.size,
        seed=config.seed,
    )
    outputs = gradcheck_lib.write_outputs(
        rows, _OUTPUT_DIR.value, kind=config.kind, method=config.method
    )
    print(outputs["table"])


if __name__ == "__main__":
    app.run(main)
