r"""Gradient consistency vs Nt: continuous adjoint vs DTO vs finite differences (float64).

Run:
  python -m tf_ode.gradcheck --config=tf_ode/configs/gradcheck.py --output_dir=runs/ode_gradcheck \
      [--config.kind=coupled] [--config.method=rk2]

Reproduces ANODE's claim (spec section 1.5): on the ANODE block (conv3x3-ReLU-conv3x3-ReLU,
8 channels, loss sum sin z(1), Euler) the adjoint's relative gradient error decays like 1/Nt and
is O(1) at ResNet-like Nt = 1-2, while DTO matches finite differences to ~1e-8 and checkpointed
DTO equals DTO. Expected runtime: ~10 s (conv), ~30 s (coupled / models) on 2 cores.
"""

import ml_collections


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.kind = "conv"  # conv | coupled | resnet4_anode | resnet4_anodev2
    c.method = "euler"
    c.nt_values = (1, 2, 4, 8, 32, 128)
    c.channels = 8
    c.size = 8
    c.seed = 0
    if variant == "smoke":
        c.nt_values = (1, 4)
        c.channels = 2
        c.size = 4
    elif variant:
        raise ValueError(f"Unknown config variant {variant!r}; use '' or 'smoke'.")
    return c
