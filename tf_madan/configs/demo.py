r"""MADAN demo: a source-only + MADAN run of ~125 CPU-seconds on a small synthetic benchmark.

Run through `tf_madan.demo.run_demo(workdir)` (which generates the data), or:
  python -m tf_madan.train --config=tf_madan/configs/demo.py \
      --config.data.root=/tmp/driving --workdir=/tmp/madan_demo --config.stage=madan
Sized for `make demo` (every section within five minutes on 2 cores): `cpu_benchmark`'s networks
at half width with one residual block instead of three, 32x32 training crops of the 64x128
images and a few dozen steps per stage, so most of the time goes to tracing each stage's step.
Expected: numbers far below the 30-minute `cpu_benchmark` run; it shows the pipeline (every
stage of source-only -> DAIG -> ADA -> FLA, the translations and the target predictions).
"""

from tf_madan.configs import cpu_benchmark


def get_config():
    c = cpu_benchmark.get_config()
    c.stage = "madan"
    c.data.gan_crop_size = 32
    c.data.seg_crop_size = 32
    c.generator.update(dict(filters=8, num_blocks=1))
    c.discriminator.update(dict(filters=16))
    c.gan.steps_per_epoch = 10
    c.gan.daig_epochs = 5
    c.gan.ada_epochs = 2
    c.sad.start_epoch = 0
    c.ccd.start_epoch = 1
    c.seg.steps = 60
    c.seg.source_only_steps = 60
    c.fla.gate_window = 10
    c.fla.steps = 30
    c.pipeline.update(
        dict(
            ablation=False, single_source=False, combined=False, oracle=False, color_transfer=False
        )
    )
    c.train.update(dict(checkpoint_every=100, summary_every=25, log_every=0))
    return c
