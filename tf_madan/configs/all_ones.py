r"""MADAN preset `all_ones`: every loss weight 1 (the spec's check against the code's weights).

Run:
  python -m tf_madan.train --config=tf_madan/configs/all_ones.py \
      --config.data.root=/data/driving --workdir=runs/madan_all_ones

Differences from `default` (the paper writes no weights, spec §1.7):
  gan.lambda_s2t 2.0 -> 1.0
  dsc.weight 200/19 -> 1.0
  ccd.weight 0.2 -> 1.0
  fla.lambda_g 0.1 -> 1.0
Already 1: gan.lambda_t2s, gan.lambda_cycle, sad.weight, fla.lambda_d. The identity weight
stays 0 (MADAN has no identity loss).
"""

from tf_madan.configs import default


def get_config():
    c = default.get_config()
    c.gan.lambda_s2t = 1.0
    c.dsc.weight = 1.0
    c.ccd.weight = 1.0
    c.fla.lambda_g = 1.0
    return c
