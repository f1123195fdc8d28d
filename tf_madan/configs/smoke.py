r"""Tiny MADAN config for tests and smoke runs (seconds per stage on CPU).

Run:
  python -m tf_madan.train --config=tf_madan/configs/smoke.py \
      --config.data.root=/tmp/driving --workdir=/tmp/madan_smoke
"""

from tf_madan.configs import cpu_benchmark


def get_config():
    c = cpu_benchmark.get_config()
    c.data.gan_crop_size = 32
    c.data.seg_crop_size = 32
    c.data.cache = False
    c.generator.update(dict(filters=4, num_blocks=1, dropout_rate=0.0))
    c.discriminator.update(dict(filters=4, num_layers=2))
    c.segmenter.update(dict(filters=4))
    c.gan.pool_size = 4
    c.gan.batch_size = 2
    c.gan.steps_per_epoch = 1
    c.gan.daig_epochs = 2
    c.gan.ada_epochs = 2
    c.sad.start_epoch = 1
    c.ccd.start_epoch = 1
    c.seg.batch_size = 2
    c.seg.steps = 2
    c.seg.source_only_steps = 2
    c.fla.hidden = (8,)
    c.fla.gate_window = 2
    c.fla.steps = 2
    c.seg.oracle_steps = 2
    c.pipeline.update(
        dict(
            ablation=False, single_source=False, combined=False, oracle=False, color_transfer=False
        )
    )
    c.train.update(dict(checkpoint_every=1, summary_every=1, log_every=0))
    c.eval.batch_size = 4
    return c
