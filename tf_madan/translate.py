r"""Writes adapted (source -> target) images of a trained pixel stage to disk.

Usage:
  python -m tf_madan.translate --workdir=runs/madan_cpu --stage=ada --out=adapted
The networks are rebuilt from the run's config.json (a --config that differs is an error naming
the keys unless --allow_config_change); each source goes through its own generator, paired by
name. Writes <out>/<source>/images/NNNNNN.png, labels/NNNNNN.png (train IDs) and COMPLETE, whose
producer (stage and generator weights digest) decides whether a later call may reuse the folder.
"""

import os

from absl import app, flags

import tf_runtime
from tf_madan import data, layout

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")


def define_flags(flag_values=flags.FLAGS, sys_argv=None):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    tf_runtime.define_flags(
        DEFAULT_CONFIG,
        workdir_help="Finished training run.",
        strategy=False,
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
    config = layout.run_config(
        run.workdir, layout.given_config(flag_values), allow_config_change=run.allow_config_change
    )
    stage_dir = layout.stage_dir(run.workdir, flag_values.stage)
    sources, merged = layout.stage_sources(stage_dir)
    generators = layout.load_generators(config, stage_dir)
    for i, name in enumerate(sources):
        weights = os.path.join(
            layout.network_dir(stage_dir), f"generator_s2t_{0 if merged else i}.weights.h5"
        )
        producer = {"stage": flag_values.stage, "weights": layout.file_digest(weights)}
        out = os.path.join(flag_values.out, name)
        dataset = data.source_dataset(config, name, batch_size=flag_values.batch_size)
        count = data.write_adapted_images(generators[name], dataset, out, producer=producer)
        print(f"{name}: {count} images from {flag_values.stage} -> {out}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=tf_runtime.flags_parser)
