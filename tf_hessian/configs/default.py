r"""Train C1 on CIFAR-10 at one batch size (HessianFlow's C1 run, spec §3).

Run (a GPU job; hours on CPU):
  python -m tf_hessian.train --config=tf_hessian/configs/default.py \
      --config.data.name=cifar10 --config.data.data_dir=/data/cifar --config.batch_size=2048 \
      --workdir=runs/c1_b2048

Paper defaults from the official code: SGD momentum 0.9, lr 0.02 decayed x0.2 at epochs
30 and 60, 90 epochs, coupled weight decay 5e-4 (an L2 term of wd/2, kept out of the
Hessian), CIFAR-10 in [0, 1] without augmentation, large batches emulated by gradient
accumulation over 128-example micro-batches (ghost BatchNorm). Robust training
(`robust.enabled`) replaces the first `adv_ratio` of every micro-batch by FGSM examples.
Expected: the paper's table values are not available (spec §5); see docs/tf_hessian.md.

Variants: `smoke` (tiny MLP on digits, 2 steps, for tests).
"""

import ml_collections
from ml_collections import config_dict


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.model = "c1"
    c.model_kwargs = ml_collections.ConfigDict()
    c.data = ml_collections.ConfigDict(
        dict(
            name="cifar10",
            data_dir=config_dict.placeholder(str),
            normalize="unit",
            augment=False,
            validation_fraction=0.0,
            train_limit=config_dict.placeholder(int),
        )
    )
    c.batch_size = 128  # effective (global) batch per optimizer step
    c.accumulate = True  # emulate large batches by micro-batch accumulation (official code)
    c.micro_batch_size = 128  # global micro-batch; BN sees micro_batch_size / replicas examples
    c.epochs = 90
    c.num_steps = config_dict.placeholder(int)  # overrides epochs when set
    c.optimizer = ml_collections.ConfigDict(
        dict(
            learning_rate=0.02,
            momentum=0.9,
            weight_decay=5e-4,
            lr_decay=0.2,
            lr_decay_epochs=(30, 60),
            # lr * batch_size / lr_reference_batch when True (the paper's choice is unknown).
            scale_lr_with_batch=False,
            lr_reference_batch=128,
        )
    )
    c.robust = ml_collections.ConfigDict(
        dict(
            enabled=False,
            attack="fgsm",
            epsilon=0.005,  # L-inf, [0, 1] pixel units (ABSA default)
            adv_ratio=0.2,  # fraction of each micro-batch replaced by adversarial examples
            # ABSA: halve adv_ratio each time the batch doubles over 128.
            scale_ratio_with_batch=False,
            stop_fraction=0.5,  # adversarial examples only for the first half of training
            pgd_steps=5,
            pgd_step_size=0.002,
            clip="range",
        )
    )
    c.eval = ml_collections.ConfigDict(
        dict(split="test", batch_size=500, limit=config_dict.placeholder(int), fgsm_epsilon=0.02)
    )
    # The data-loss Hessian spectrum during training (spec: "compute its spectrum during
    # training"): lambda_max (Lanczos) and the Hutchinson trace every K steps and at the last
    # step, into spectrum.json and tensorboard/spectrum (train_lib.TrainingSpectrum). 0 = off.
    c.track_spectrum_every = 0
    c.track_spectrum = ml_collections.ConfigDict(
        dict(
            split="train",
            examples=256,  # fixed random subset (seed config.seed), unaugmented
            max_iter=30,  # Lanczos steps at most
            tol=1e-3,  # relative Ritz residual
            trace_probes=10,  # Rademacher probes of the Hutchinson trace
            dtype="float32",  # float64: exact spectra, slow on GPUs
        )
    )
    c.checkpoint_every = 1000
    c.summary_every = 50
    c.log_every = 100
    c.export = True
    # (first, last) training steps traced by the TensorFlow profiler into tensorboard/profile.
    c.profile_steps = ()

    if variant == "smoke":
        c.model = "mlp"
        c.model_kwargs = ml_collections.ConfigDict(dict(hidden_units=(8,)))
        c.data.name = "digits"
        c.data.train_limit = 64
        c.batch_size = 16
        c.micro_batch_size = 8
        c.num_steps = 2
        c.optimizer.learning_rate = 0.05
        c.robust.enabled = True
        c.robust.epsilon = 0.05
        c.robust.adv_ratio = 0.25
        c.robust.stop_fraction = 1.0
        c.eval.limit = 32
        c.eval.batch_size = 16
        c.checkpoint_every = 1
        c.summary_every = 1
        c.log_every = 1
    elif variant:
        raise ValueError(f"Unknown config variant {variant!r}; use '' or 'smoke'.")
    return c
