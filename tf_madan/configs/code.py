r"""MADAN preset `code`: the official scripts' weights and schedule (Luodian/MADAN, spec §1-3).

Run:
  python -m tf_madan.train --config=tf_madan/configs/code.py \
      --config.data.root=/data/driving --workdir=runs/madan_code

Differences from `default`:
  gan.mode "bce" -> "lsgan"                  (§1.2: MSE against 1 / 0, no sigmoid)
  dsc.direction "paper" -> "code"            (§1.3: KL(softmax F(x) || softmax F(G(x))))
  dsc.networks "paper" -> "shared"           (§1.3: one network plays F_i and F_A)
  sad.mode "symmetric" -> "asymmetric"       (§1.4: one netD_3, only G_{SYN->T} pulled)
  ccd.separate_discriminators False -> True  (§1.5: extra D_12 / D_21 PatchGANs)
  fla.input "features" -> "score"            (§1.6: the README's recommended script)
  fla.hidden (1024, 512) -> (512, 256)       (§2.2: score input 19 -> 512 -> 256 -> 2)
Already the code's in `default`: Adam 2e-4 (0.5, 0.999), batch 4, shorter side 500, crop 400,
20 epochs, G adversarial 2 / 1, cycle 1, identity 0, dropout 0.5, DSC 200 / C x pixel-mean KL
(general 20 x dynamic 10), SAD from epoch 5 (weight 1), CCD 0.2 from epoch 10, segmenter Adam
1e-4 batch 8 for 30k steps, FLA SGD 2e-5 (momentum 0.9, wd 5e-4), lambda_d 1, lambda_g 0.1,
gate 60 % over 100 steps, 25k steps (the GTA score-input setting).
The code's bugs (spec §6.1) are not reproduced: BN of the DSC net stays in inference mode and
its inputs are renormalised; the label tables are §4.2's.
"""

from tf_madan.configs import default


def get_config():
    c = default.get_config()
    c.gan.mode = "lsgan"
    c.dsc.direction = "code"
    c.dsc.networks = "shared"
    c.sad.mode = "asymmetric"
    c.ccd.separate_discriminators = True
    c.fla.input = "score"
    c.fla.hidden = (512, 256)
    return c
