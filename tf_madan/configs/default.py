r"""MADAN, GTA5 + SYNTHIA -> Cityscapes, FCN8s-VGG16 (paper defaults, code weights).

Run:
  python -m tf_madan.train --config=tf_madan/configs/default.py \
      --config.data.root=/data/driving --workdir=runs/madan --init_checkpoint=vgg16_fcn8s.weights.h5

`data.root` holds gta5/, synthia/ and cityscapes/ (or bdd100k/) in the layouts of
input_pipelines.driving. Expected: ~41.4 16-class mIoU on Cityscapes val (paper
Table 1) with ImageNet-initialised FCN8s; this needs GPUs (days), not a CPU.
Stage "all" runs: source-only F_i and F -> DAIG (CycleGANs) -> translate -> F on
adapted -> ADA (DSC + SAD + CCD) -> translate -> F on aggregated -> FLA -> eval.
"""

import ml_collections

NUM_CLASSES = 19


def get_config():
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Non-empty: the whole schedule once per seed in workdir/seed_<s>/, then mean +- sd.
    c.seeds = ()
    c.stage = "all"
    c.num_classes = NUM_CLASSES
    c.ignore_label = 255

    c.data = ml_collections.ConfigDict()
    c.data.root = ""
    c.data.sources = ("gta5", "synthia")
    c.data.target = "cityscapes"
    c.data.target_split = "train"  # adaptation pool: target train images only (spec §6.1.11)
    c.data.eval_split = "val"
    c.data.gan_resize_shorter = 500
    c.data.gan_crop_size = 400
    c.data.seg_resize_shorter = 600
    c.data.seg_crop_size = 400
    c.data.eval_resize_shorter = 0  # 0 = evaluate at full label resolution
    c.data.translate_resize_shorter = 0  # 0 = translate at full resolution
    c.data.cache = False

    c.generator = ml_collections.ConfigDict(
        dict(filters=64, num_blocks=9, num_downsampling=2, dropout_rate=0.5)
    )
    c.discriminator = ml_collections.ConfigDict(dict(filters=64, num_layers=3))
    c.segmenter = ml_collections.ConfigDict(
        dict(
            name="fcn8s",
            filters=16,
            fc_width=4096,
            width_multiplier=1.0,
            init_checkpoint="",
            # "imagenet": keras.applications VGG16 converted into FCN8s (tf_madan.pretrained;
            # Keras downloads it once, offline it names the file to pass); "random": no init.
            init="random",
            vgg_preprocessing="caffe",  # fold Keras VGG16's BGR/0-255 input transform into conv1_1
        )
    )

    c.gan = ml_collections.ConfigDict()
    c.gan.mode = "bce"  # paper's log form; "lsgan" = official code
    c.gan.lambda_s2t = 2.0
    c.gan.lambda_t2s = 1.0
    c.gan.lambda_cycle = 1.0
    c.gan.lambda_identity = 0.0
    c.gan.pool_size = 50
    # D_T's per-source losses: "mean" over sources, or "sum" (the official code backpropagates
    # each source's loss separately, so the gradients add up; docs/tf_madan_official_code.md).
    c.gan.target_discriminator_loss = "mean"
    c.gan.learning_rate = 2e-4
    c.gan.beta_1 = 0.5
    c.gan.batch_size = 4  # per domain, global
    c.gan.steps_per_epoch = 24966 // 4
    c.gan.daig_epochs = 20
    c.gan.ada_epochs = 20

    c.dsc = ml_collections.ConfigDict()
    c.dsc.weight = 200.0 / NUM_CLASSES  # code: 20 x 10 x element mean over C = 200/C x pixel mean
    c.dsc.direction = "paper"  # or "code" (reversed KL)
    c.dsc.networks = "paper"  # F_i = source-only, F_A = current F; "shared": F_A = F_i
    c.dsc.mode = "dsc"  # or "cycada" (CE against argmax pseudo-labels)
    # With networks="shared", which per-source network plays F_i and F_A: "source_only"
    # (F_i trained on raw source i) or "adapted" (the official code: the segmenter trained on
    # source i's single-source adapted images, CyCADA's drn26_cycada_cyclegta2cityscapes.pth).
    c.dsc.shared_network = "source_only"

    # mode: "symmetric" (paper: M discriminators) or "asymmetric" (code: one discriminator,
    # the non-anchor sources pulled toward `anchor`, an index into data.sources). The G-term
    # starts at step start_epoch * gan.steps_per_epoch + warmup_steps of the stage; the SAD
    # discriminator trains from step 0 (the steps before are its warm-up).
    c.sad = ml_collections.ConfigDict(
        dict(weight=1.0, start_epoch=5, mode="symmetric", anchor=0, warmup_steps=0)
    )
    c.ccd = ml_collections.ConfigDict(
        dict(weight=0.2, start_epoch=10, separate_discriminators=False)
    )

    c.seg = ml_collections.ConfigDict()
    c.seg.learning_rate = 1e-4
    c.seg.batch_size = 8  # per source, global
    c.seg.steps = 30000
    c.seg.source_only_steps = 30000
    c.seg.oracle_steps = 30000  # F on labelled target train (oracle row, FCN-score scorer)

    c.fla = ml_collections.ConfigDict()
    c.fla.input = "features"  # paper: fc7; "score" = the code's recommended script
    c.fla.lambda_g = 0.1
    c.fla.lambda_d = 1.0
    c.fla.gate_threshold = 0.6
    c.fla.gate_window = 100
    # Code: stop when F was not updated for 3 * len(loader) iterations (GTA5, batch 8); 0 = never.
    c.fla.patience = 3 * (24966 // 8)
    c.fla.hidden = (1024, 512)
    c.fla.dropout_rate = 0.5
    c.fla.optimizer = "sgd"
    c.fla.learning_rate = 2e-5
    c.fla.discriminator_learning_rate = 2e-5
    c.fla.momentum = 0.9
    c.fla.weight_decay = 5e-4
    # "decoupled" (Keras: w -= lr * wd * w) or "l2" (PyTorch SGD, the code: wd * w added to the
    # gradient, through momentum); equal on the first update.
    c.fla.weight_decay_mode = "decoupled"
    c.fla.steps = 25000

    # Which baselines `stage=all` runs (an explicit --config.stage runs its own regardless).
    c.pipeline = ml_collections.ConfigDict()
    c.pipeline.ablation = True  # baseline, +SAD, +CCD, +SAD+CCD (no DSC)
    c.pipeline.single_source = True  # a CycleGAN per source trained alone (its own D_T)
    c.pipeline.cycada_fla = True  # ... and CyCADA (CycleGAN + SC, then FLA) per family
    c.pipeline.combined = True  # source-combined CycleGAN / CyCADA (sources as one domain)
    c.pipeline.oracle = True  # F on labelled target train; enables the FCN-score table
    c.pipeline.color_transfer = True  # colour-transfer baseline (no learning)

    # profile_steps: (first, last) steps of each stage traced by the TensorFlow profiler.
    c.train = ml_collections.ConfigDict(
        dict(checkpoint_every=1000, summary_every=50, log_every=50, profile_steps=())
    )
    c.eval = ml_collections.ConfigDict(dict(batch_size=1))
    return c
