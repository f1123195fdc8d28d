r"""`cpu_benchmark_v4` under the official code's reading (the `code` preset's loss choices).

Run (three seeds in workdir/seed_<s>/):
  python -m tf_madan.train --config=tf_madan/configs/cpu_benchmark_v4_code.py \
      --config.data.root=/tmp/driving_v4 --config.seeds="(0,1,2)" --workdir=runs/madan_v4_code

Differences from `cpu_benchmark_v4` (the `paper` reading): `code.READING` (tf_madan/configs/
code.py, whose docstring cites the official files): LSGAN with the per-source D_T losses
summed, DSC in the code's KL direction with one network per source trained on that source's
adapted images (the `single_<source>` stages), asymmetric SAD (one discriminator; SYNTHIA pulled
toward the anchor GTA5), separate CCD discriminators, FLA weight decay as torch SGD's L2; and
the code's SAD warm-up scaled to this schedule: the code trains the SAD discriminator from the
first epoch and adds its generator term from epoch 5 of 20 (SAD_frozen_epoch), here from epoch
1 of the 3 ADA epochs (`sad.start_epoch` 0 -> 1). Sizes and budgets stay `cpu_benchmark_v4`'s
(the code preset's FLA 512-256 hidden layers are for VGG-16 score maps at full size).
"""

from tf_madan.configs import code, cpu_benchmark_v4

DATA = cpu_benchmark_v4.DATA


def get_config():
    c = code.apply_reading(cpu_benchmark_v4.get_config())
    c.sad.start_epoch = 1
    return c
