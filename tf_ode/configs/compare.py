r"""Baseline vs ANODE vs ANODEV2 on embedded data, sized for 2 CPU cores in ~10 minutes.

Run:
  python -m tf_ode.compare --config=tf_ode/configs/compare.py --workdir=runs/ode_compare

Trains the same ResNet-10 (width 16: three ODE/residual blocks) on the embedded 28x28 MNIST subset
(mnist5k: 3,600 train / 400 validation / 1,000 test) for 12 epochs, three times: residual baseline,
ANODE (Euler, Nt = 2, checkpointed DTO) and ANODEV2 (same, plus RDA weight evolution). Writes a
markdown table of test accuracy, seconds per epoch (between evaluations, excluding tracing), ODE
function evaluations per step and parameter counts. Expected: all three ~95%+ test accuracy;
ODE variants ~2-3x slower per epoch than the baseline (2 forward + 2 recomputed f evaluations per
block instead of 1).
"""

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
    c.variants = ("baseline", "anode", "anodev2")
    if variant == "smoke":
        c.dataset = "digits"
        c.architecture = "resnet4"
        c.width = 4
        c.batch_size = 16
        c.num_epochs = 1
        c.train_limit = 48
        c.eval_limit = 32
        c.lr_boundaries_epochs = ()
    elif variant:
        raise ValueError(f"Unknown config variant {variant!r}; use '' or 'smoke'.")
    return c
