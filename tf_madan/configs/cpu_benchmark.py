r"""MADAN on the offline synthetic multi-domain benchmark, sized for 2 CPU cores.

Run (about 30 minutes on 2 idle cores before the single-source CycleGANs were trained alone;
they add 2 x (D + 2A) one-source pixel steps, ~7 more minutes by the per-step times in
docs/tf_madan.md). The full baseline set (colour transfer, source-combined, oracle, FCN-score)
runs with `cpu_benchmark_v2` on the madan_v2 benchmark:
  python -m input_pipelines.synthetic_driving --out /tmp/driving --seed 0 \
      --num_per_domain 120 --num_val 40 --height 64 --width 128
  python -m tf_madan.train --config=tf_madan/configs/cpu_benchmark.py \
      --config.data.root=/tmp/driving --workdir=runs/madan_cpu

Differences from `default`: small segmenter and DSC network (16 filters),
generators with 16 filters and 3 residual blocks, 32-filter 2-layer PatchGANs,
64x128 images cropped to 64x64, LSGAN, FLA on score maps, a few hundred steps
per stage, DSC weight 1.0. Expected: see docs/tf_madan.md for the measured table.
"""

from tf_madan.configs import default


def get_config():
    c = default.get_config()
    c.data.gan_resize_shorter = 0
    c.data.gan_crop_size = 64
    c.data.seg_resize_shorter = 0
    c.data.seg_crop_size = 64
    c.data.cache = True
    c.generator.update(dict(filters=16, num_blocks=3, dropout_rate=0.0))
    c.discriminator.update(dict(filters=32, num_layers=2))
    c.segmenter.update(dict(name="small", filters=16))
    c.gan.mode = "lsgan"
    c.gan.pool_size = 50
    c.gan.batch_size = 4
    c.gan.steps_per_epoch = 50
    c.gan.daig_epochs = 6
    c.gan.ada_epochs = 4
    # The code's DSC weight (200 / C = 10.5 on the pixel-mean KL) let a weak CPU-trained F_A
    # dominate the generator objective in a trial run (DSC ~5 vs GAN ~0.5); 1.0 balances it.
    c.dsc.weight = 1.0
    c.sad.start_epoch = 1
    c.ccd.start_epoch = 2
    c.seg.learning_rate = 1e-3
    c.seg.batch_size = 8
    c.seg.steps = 300
    c.seg.source_only_steps = 300
    c.fla.input = "score"
    c.fla.hidden = (64, 32)
    c.fla.dropout_rate = 0.0
    c.fla.optimizer = "adam"
    c.fla.learning_rate = 2e-4
    c.fla.discriminator_learning_rate = 1e-3
    c.fla.gate_threshold = 0.55
    c.fla.gate_window = 20
    c.fla.steps = 200
    c.pipeline.update(
        dict(ablation=True, single_source=True, combined=False, oracle=False, color_transfer=False)
    )
    c.train.update(dict(checkpoint_every=100, summary_every=25, log_every=50))
    c.eval.batch_size = 8
    return c
