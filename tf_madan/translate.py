r"""Writes adapted (source -> target) images of a trained pixel stage to disk.

Usage:
  python -m tf_madan.translate --config=tf_madan/configs/cpu_benchmark.py \
      --config.data.root=/tmp/driving --workdir=runs/madan_cpu --stage=ada --out=adapted
Writes <out>/<source>/images/NNNNNN.png, labels/NNNNNN.png (train IDs) and COMPLETE.
"""

import os

from absl import app, flags

import tf_runtime
from tf_madan import data, train_lib

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")


def define_flags(flag_values=flags.FLAGS, sys_argv=None):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    tf_runtime.define_flags(
        DEFAULT_CONFIG,
        workdir_help="Finished training run.",
        strategy=False,
        resumable=False,
        flag_values=flag_values,
        sys_argv=sys_argv,
    )
    flags.DEFINE_string(
        "stage", "ada", "Pixel stage whose generators translate.", flag_values=flag_values
    )
    flags.DEFINE_string("out", None, "Output folder.", required=True, flag_values=flag_values)
    flags.DEFINE_integer(
        "batch_size", 8, "Translation batch size.", lower_bound=1, flag_values=flag_values
    )


def main(argv, flag_values=flags.FLAGS):
    del argv
    run = tf_runtime.run_flags(flag_values)
    config = run.config
    generators = train_lib.load_generators(config, os.path.join(run.workdir, flag_values.stage))
    for name, generator in zip(config.data.sources, generators):
        out = os.path.join(flag_values.out, name)
        dataset = data.source_dataset(config, name, batch_size=flag_values.batch_size)
        count = data.write_adapted_images(generator, dataset, out)
        print(f"{name}: {count} images -> {out}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=tf_runtime.flags_parser)
