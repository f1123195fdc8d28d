r"""MADAN preset `paper`: the values the paper states (spec §3.2, all marked [UNVERIFIED]).

Run:
  python -m tf_madan.train --config=tf_madan/configs/paper.py \
      --config.data.root=/data/driving --workdir=runs/madan_paper

Differences from `default` (everything else, e.g. the loss weights, which the paper does not
state, stays at the code's values, spec §1.7):
  gan.learning_rate 2e-4 -> 1e-4     (paper: Adam, lr 1e-4)
  gan.batch_size 4 -> 8              (paper: batch 8)
  data.gan_resize_shorter 500 -> 600 (paper: resize to 600 x 1080, crop 400 x 400)
ImageNet init (spec §2.3) is not switched on here, so that loading the preset never downloads:
add `--config.segmenter.init=imagenet` (Keras fetches VGG16 once; offline the run stops before
stage 1 naming the file), or convert a local file with `python -m tf_madan.convert_weights
--source=keras_vgg16` and pass `--config.segmenter.init_checkpoint=OUT.weights.h5`.
Kept because `default` already follows the paper there: gan.mode "bce" (Eq. 1's log form),
20 epochs per pixel stage, SAD/CCD G-terms from epoch 5/10, symmetric SAD over M
discriminators, CCD reusing D_i, DSC as KL(F_A(G(x)) || F_i(x)) with F_i source-only and F_A
the current F, FLA on the encoder's last convolution (fc7).
"""

from tf_madan.configs import default


def get_config():
    c = default.get_config()
    c.gan.learning_rate = 1e-4
    c.gan.batch_size = 8
    c.data.gan_resize_shorter = 600
    return c
