"""Model zoo: the paper's C1, C2, M1, a CIFAR ResNet, plus a small MLP and CNN.

Every builder returns a functional ``keras.Model`` whose last layer is a Dense
named ``logits`` (tf_keras_vis-compatible: saliency maps can be taken w.r.t.
the input ``image``).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tf_hessian.models.c1 import build_c1
from tf_hessian.models.c2 import build_c2
from tf_hessian.models.layers import PaddedMaxPool2D
from tf_hessian.models.m1 import build_m1
from tf_hessian.models.mlp import build_mlp
from tf_hessian.models.resnet import build_resnet
from tf_hessian.models.small_cnn import build_small_cnn

BUILDERS = {
    "c1": build_c1,
    "c2": build_c2,
    "m1": build_m1,
    "mlp": build_mlp,
    "resnet": build_resnet,
    "small_cnn": build_small_cnn,
}


def build_model(
    name: str, input_shape: Sequence[int], num_classes: int, *, dtype: str | None = None, **kwargs
) -> keras.Model:
    """Builds a model of the zoo by name.

    Args:
      name: One of ``BUILDERS`` (c1, c2, m1, mlp, resnet, small_cnn).
      input_shape: (H, W, C) of one example.
      num_classes: Number of logits.
      dtype: Layer dtype.
      **kwargs: Builder-specific widths (see each builder).

    Returns:
      The model.
    """
    if name not in BUILDERS:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(BUILDERS)}.")
    return BUILDERS[name](tuple(input_shape), num_classes, dtype=dtype, **kwargs)


__all__ = [
    "BUILDERS",
    "PaddedMaxPool2D",
    "build_c1",
    "build_c2",
    "build_m1",
    "build_mlp",
    "build_model",
    "build_resnet",
    "build_small_cnn",
]
