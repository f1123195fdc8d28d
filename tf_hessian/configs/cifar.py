r"""Presets for the paper's CIFAR networks (C1, C2, ResNet-20 on CIFAR-10 / CIFAR-100).

Run one model (a GPU job; days on CPU at full length), given the python-pickle CIFAR folder:
  python -m tf_hessian.train --config=tf_hessian/configs/cifar.py:c1_cifar10 \
      --config.data.data_dir=/data/cifar --config.batch_size=2048 --workdir=runs/c1_b2048
  python -m tf_hessian.analyze --workdir=runs/c1_b2048
The batch-size / robustness study on a preset:
  python -m tf_hessian.study --config=tf_hessian/configs/study.py:c1_cifar10 \
      --config.train.data.data_dir=/data/cifar --workdir=runs/study_c1

Schedules from the official code (spec §3): C1 and C2 (HessianFlow `train.py`): SGD
momentum 0.9, lr 0.02 decayed x0.2 at epochs 30 and 60, 90 epochs, coupled weight decay
5e-4, CIFAR-10 in [0, 1] without augmentation. ResNet-20 (`train_resnet.py`): lr 0.1
x0.1 at epochs 60 and 120, 160 epochs. CIFAR-100 (ResNet, C1): random crop + flip,
per-channel standardisation. Large batches by accumulating 128-example micro-batches.
Expected: the paper's table values are not available (spec §5).

Variants: c1_cifar10 (default), c2_cifar10, resnet20_cifar10, c1_cifar100, resnet20_cifar100.
"""

import ml_collections

from tf_hessian.configs import default

PRESETS = ("c1_cifar10", "c2_cifar10", "resnet20_cifar10", "c1_cifar100", "resnet20_cifar100")


def get_config(variant: str = "c1_cifar10") -> ml_collections.ConfigDict:
    variant = variant or "c1_cifar10"
    if variant not in PRESETS:
        raise ValueError(f"Unknown config variant {variant!r}; use one of {PRESETS}.")
    model, dataset = variant.split("_")
    c = default.get_config()
    c.data.name = dataset
    c.model = "resnet" if model.startswith("resnet") else model
    if c.model == "resnet":
        c.model_kwargs = ml_collections.ConfigDict(dict(depth=int(model[len("resnet") :])))
        c.epochs = 160
        c.optimizer.learning_rate = 0.1
        c.optimizer.lr_decay = 0.1
        c.optimizer.lr_decay_epochs = (60, 120)
    if dataset == "cifar100":
        c.data.augment = True
        c.data.normalize = "standard"
    return c
