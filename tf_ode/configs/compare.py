r"""Comparison runs: baseline / NeuralODE / ANODE / ANODEV2 per architecture over seeds.

Run:
  python -m tf_ode.compare --config=tf_ode/configs/compare.py --workdir=runs/ode_compare
  python -m tf_ode.compare --config=tf_ode/configs/compare.py:table --workdir=runs/ode_table
  python -m tf_ode.compare --config=tf_ode/configs/compare.py:cifar10 --workdir=runs/ode_cifar10 \
      --config.data_dir=/path/to/folder_with_cifar-10-batches-py

`:table` is the paper's table (spec section 5: three architectures x four methods, min / max /
avg over seeds) on the embedded 8x8 digits, sized for 2 CPU cores (~15 min for 3 seeds; see
docs/tf_ode.md for the measured table). `:cifar10` is the same table with the paper's recipe
(spec section 3: SGD momentum 0.9, lr 0.1 x0.1 after epochs 150 and 250, 350 epochs, batch
256 / 128, coupled weight decay 5e-4, Euler Nt = 2, width 64, 5 seeds; ANODE's normalisation
mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010)): days per cell on CPU.

Default (no variant):

Trains the same ResNet-10 (width 16: three ODE/residual blocks) on the embedded 28x28 MNIST subset
(mnist5k: 3,600 train / 400 validation / 1,000 test) for 12 epochs, three times: residual baseline,
ANODE (Euler, Nt = 2, checkpointed DTO) and ANODEV2 (same, plus RDA weight evolution). Writes a
markdown table of test accuracy, seconds per epoch (between evaluations, excluding tracing), ODE
function evaluations per step and parameter counts. Expected: all three ~95%+ test accuracy;
ODE variants ~2-3x slower per epoch than the baseline (2 forward + 2 recomputed f evaluations per
block instead of 1).
"""

from input_pipelines import classification
from tf_ode.configs import default


def get_config(variant: str = ""):
    c = default.get_config()
    c.dataset = "mnist5k"
    c.architecture = "resnet10"
    c.width = 16
    c.batch_size = 64
    c.num_epochs = 12
    c.learning_rate = 0.05
    c.lr_boundaries_epochs = (8,)
    c.weight_decay = 5e-4
    c.eval_every_epochs = 1  # also times epochs between evaluations (excl. tracing)
    c.checkpoint_every = 100000
    c.summary_every = 20
    c.log_every = 0
    c.export = False
    c.variants = ("baseline", "anode", "anodev2")  # subset of compare_lib.METHODS
    c.architectures = ()  # () = (c.architecture,)
    c.seeds = ()  # () = (c.seed,)
    if variant == "table":
        c.dataset = "digits"
        c.width = 8
        c.batch_size = 32
        c.num_epochs = 3
        c.learning_rate = 0.05
        c.lr_boundaries_epochs = (2,)
        c.eval_every_epochs = 1
        c.variants = ("baseline", "neuralode", "anode", "anodev2")
        c.architectures = ("alexnet", "resnet4", "resnet10")
        c.seeds = (0, 1, 2)
    elif variant == "cifar10":
        c = default.get_config()
        c.variants = ("baseline", "neuralode", "anode", "anodev2")
        c.architectures = ("alexnet", "resnet4", "resnet10")
        c.seeds = (0, 1, 2, 3, 4)
        c.export = False
        # ANODE's normalisation constants (its train.py), not the dataset's own std.
        c.normalize_mean = classification.ANODE_CIFAR10_MEAN
        c.normalize_std = classification.ANODE_CIFAR10_STD
    elif variant == "smoke":
        c.dataset = "digits"
        c.architecture = "resnet4"
        c.width = 4
        c.batch_size = 16
        c.num_epochs = 1
        c.train_limit = 48
        c.eval_limit = 32
        c.lr_boundaries_epochs = ()
    elif variant:
        raise ValueError(
            f"Unknown config variant {variant!r}; use '', 'table', 'cifar10' or 'smoke'."
        )
    return c
