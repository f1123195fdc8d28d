r"""Exports the trained segmenter and generators of a MADAN run as SavedModels.

Usage:
  python -m tf_madan.export --config=tf_madan/configs/cpu_benchmark.py \
      --workdir=runs/madan_cpu --out=runs/madan_cpu/export
"""

from absl import app, flags
from ml_collections import config_flags

from tf_madan import export_lib

_CONFIG = config_flags.DEFINE_config_file("config", "tf_madan/configs/default.py", "Config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Finished training run.", required=True)
_OUT = flags.DEFINE_string("out", None, "Export folder.", required=True)
_SEGMENTER_STAGE = flags.DEFINE_string("segmenter_stage", "madan", "Stage of the segmenter.")
_GENERATOR_STAGE = flags.DEFINE_string("generator_stage", "ada", "Stage of the generators.")


def main(argv):
    del argv
    paths = export_lib.export_run(
        _CONFIG.value,
        _WORKDIR.value,
        _OUT.value,
        segmenter_stage=_SEGMENTER_STAGE.value,
        generator_stage=_GENERATOR_STAGE.value,
    )
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    app.run(main)
