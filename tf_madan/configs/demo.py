r"""MADAN demo: a 3-4 minute source-only + MADAN run on a small synthetic benchmark.

Run through `tf_madan.demo.run_demo(workdir)` (which generates the data), or:
  python -m tf_madan.train --config=tf_madan/configs/demo.py \
      --config.data.root=/tmp/driving --workdir=/tmp/madan_demo --config.stage=madan
Expected: numbers far below the 30-minute `cpu_benchmark` run; it shows the pipeline.
"""

from tf_madan.configs import cpu_benchmark


def get_config():
    c = cpu_benchmark.get_config()
    c.stage = "madan"
    c.gan.steps_per_epoch = 25
    c.gan.daig_epochs = 4
    c.gan.ada_epochs = 2
    c.sad.start_epoch = 0
    c.ccd.start_epoch = 1
    c.seg.steps = 150
    c.seg.source_only_steps = 150
    c.fla.steps = 60
    c.pipeline.update(
        dict(
            ablation=False, single_source=False, combined=False, oracle=False, color_transfer=False
        )
    )
    c.train.update(dict(checkpoint_every=100, summary_every=25, log_every=0))
    return c
