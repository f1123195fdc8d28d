r"""Writes adapted (source -> target) images of a trained pixel stage to disk.

Usage:
  python -m tf_madan.translate --config=tf_madan/configs/cpu_benchmark.py \
      --config.data.root=/tmp/driving --workdir=runs/madan_cpu --stage=ada --out=adapted
Writes <out>/<source>/images/NNNNNN.png, labels/NNNNNN.png (train IDs) and COMPLETE.
"""

import os

from absl import app, flags
from ml_collections import config_flags

from tf_madan import data, train_lib

_CONFIG = config_flags.DEFINE_config_file("config", "tf_madan/configs/default.py", "Config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Finished training run.", required=True)
_STAGE = flags.DEFINE_string("stage", "ada", "Pixel stage whose generators translate.")
_OUT = flags.DEFINE_string("out", None, "Output folder.", required=True)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Translation batch size.")


def main(argv):
    del argv
    config = _CONFIG.value
    generators = train_lib.load_generators(config, os.path.join(_WORKDIR.value, _STAGE.value))
    for name, generator in zip(config.data.sources, generators):
        out = os.path.join(_OUT.value, name)
        dataset = data.source_dataset(config, name, batch_size=_BATCH_SIZE.value)
        count = data.write_adapted_images(generator, dataset, out)
        print(f"{name}: {count} images -> {out}")


if __name__ == "__main__":
    app.run(main)
