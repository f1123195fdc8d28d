r"""ANODE / ANODEV2 training recipe on CIFAR-10 (spec section 3; official ANODE `train.py`).

Run:
  python -m tf_ode.train --config=tf_ode/configs/default.py --workdir=runs/anodev2_resnet10 \
      --config.data_dir=/path/to/cifar-10-batches-py/.. [--config.variant=anode] \
      [--config.method=rk2 --config.num_steps=4 --config.gradient=dto]

Defaults: SGD momentum 0.9, lr 0.1 x0.1 at epochs 150 and 250, 350 epochs, batch 256, coupled
weight decay 5e-4, Euler with Nt = 2, checkpointed DTO (ANODE), GroupNorm inside f.
Expected runtime: days on CPU (GPU recommended); the paper reports ~88% CIFAR-10 test
accuracy for ResNet-10 baselines/ANODE (spec section 5). `:smoke` runs 2 steps on the embedded
8x8 digits in seconds (tests).
"""

import ml_collections


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Data.
    c.dataset = "cifar10"  # digits | mnist5k (embedded) | mnist | cifar10 | cifar100
    c.data_dir = ""  # folder with cifar-10-batches-py/, cifar-100-python/ or MNIST IDX files
    c.train_limit = 0  # 0 = whole split
    c.eval_split = "test"
    c.eval_limit = 0
    # "standard" normalisation statistics per channel (images in [0, 1]); () = the dataset's own
    # (CIFAR-10: std 0.2470, 0.2435, 0.2616). ANODE's train.py uses mean (0.4914, 0.4822, 0.4465),
    # std (0.2023, 0.1994, 0.2010): compare.py:cifar10 sets them.
    c.normalize_mean = ()
    c.normalize_std = ()
    # Model.
    c.architecture = "resnet10"  # alexnet | resnet4 | resnet10
    c.variant = "anodev2"  # baseline | anode | anodev2
    c.width = 64
    c.norm = "group"  # inside f: group | batch (official code; double updates) | none
    c.activation = "relu"
    # ODE solver and gradient.
    c.method = (
        "euler"  # euler | rk2 | rk4 (fixed) | dopri5 | bosh3 | tsit5 (ours, adaptive) | tfp_dopri5
    )
    c.num_steps = 2  # Nt (ignored for adaptive methods)
    c.gradient = "checkpoint"  # checkpoint (ANODE) | dto | adjoint
    c.rtol = 1e-3
    c.atol = 1e-6
    c.max_num_steps = 1000
    c.weight_dynamics = "rda"  # rda | linear | none
    c.dynamics_config = ml_collections.ConfigDict({"initial_sigma": 0.05})
    # Optimisation.
    c.batch_size = 256
    c.eval_batch_size = 128
    c.num_epochs = 350
    c.num_train_steps = 0  # > 0 overrides num_epochs
    c.learning_rate = 0.1
    c.lr_boundaries_epochs = (150, 250)
    c.lr_decay = 0.1
    c.momentum = 0.9
    c.weight_decay = 5e-4
    # Runtime.
    c.jit_compile = False
    c.checkpoint_every = 1000
    c.summary_every = 50
    c.log_every = 50
    c.eval_every_epochs = 10
    c.export = True
    # (first, last) training steps traced by the TensorFlow profiler into tensorboard/profile.
    c.profile_steps = ()
    if variant == "smoke":
        c.dataset = "digits"
        c.architecture = "resnet4"
        c.width = 4
        c.batch_size = 8
        c.eval_batch_size = 32
        c.num_train_steps = 2
        c.train_limit = 64
        c.eval_limit = 32
        c.checkpoint_every = 1
        c.summary_every = 1
        c.log_every = 1
        c.eval_every_epochs = 0
    elif variant:
        raise ValueError(f"Unknown config variant {variant!r}; use '' or 'smoke'.")
    return c
