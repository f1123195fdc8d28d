r"""MADAN preset `code`: the official code's reading (Luodian/MADAN, spec §1-3).

Run:
  python -m tf_madan.train --config=tf_madan/configs/code.py \
      --config.data.root=/data/driving --workdir=runs/madan_code

Differences from `default` (files of Luodian/MADAN at its last commit 7a2918d; one training
step of this reading equals the official step: tests/tf_madan/test_official_twin.py,
docs/tf_madan_official_code.md):
  gan.mode "bce" -> "lsgan"                  (§1.2: MSE against 1 / 0, no sigmoid)
  gan.target_discriminator_loss "mean" -> "sum"
                                             (the shared D_T backpropagates each source's
                                              loss: multi_cycle_gan_semantic_model.py 259-271)
  dsc.direction "paper" -> "code"            (§1.3: KL(softmax F(x) || softmax F(G(x))),
                                              lines 372-379)
  dsc.networks "paper" -> "shared"           (§1.3: one network per source plays F_i and F_A)
  dsc.shared_network "source_only" -> "adapted"
                                             (that network is the segmenter trained on the
                                              source's single-source adapted images, like
                                              CyCADA's drn26_cycada_cyclegta2cityscapes.pth)
  sad.mode "symmetric" -> "asymmetric"       (§1.4: one netD_3; real = GTA-adapted, fake =
                                              SYN-adapted, only G_{SYN->T} pulled; lines
                                              282-285, 349-355; reverse commented at 298-299)
  ccd.separate_discriminators False -> True  (§1.5: extra D_12 / D_21 PatchGANs)
  fla.input "features" -> "score"            (§1.6: the README's recommended script)
  fla.hidden (1024, 512) -> (512, 256)       (§2.2: score input 19 -> 512 -> 256 -> 2)
  fla.weight_decay_mode "decoupled" -> "l2"  (torch SGD weight_decay=5e-4 in the gradient,
                                              scripts/train_fcn_adda.py 185-188)
Already the code's in `default`: Adam 2e-4 (0.5, 0.999), batch 4, shorter side 500, crop 400,
20 epochs, G adversarial 2 / 1, cycle 1, identity 0, dropout 0.5, DSC 200 / C x pixel-mean KL
(general 20 x dynamic 10 x the element mean over B*C*H*W), SAD G-term from epoch 5 with the SAD
discriminator trained from epoch 1 (SAD_frozen_epoch 5: sad.start_epoch 5 is the warm-up,
sad.warmup_steps 0), sad.anchor 0 (= GTA5 with data.sources ("gta5", "synthia"): the code
pulls SYNTHIA toward GTA), CCD 0.2 from epoch 10 (CCD_weight; the code's undefined
D1D2_weight, spec §6.1.4), segmenter Adam 1e-4 batch 8 for 30k steps, FLA SGD 2e-5 (momentum
0.9, wd 5e-4), lambda_d 1, lambda_g 0.1, gate 60 % over 100 steps, 25k steps (the GTA
score-input setting).
The code's bugs (spec §6.1) are not reproduced: BN of the DSC net stays in inference mode and
its inputs are renormalised; the label tables are §4.2's.
"""

from tf_madan.configs import default

# The reading's loss and structure choices, independent of network and data sizes; a scaled
# benchmark config applies these (`apply_reading`) and keeps its own sizes.
READING = {
    "gan.mode": "lsgan",
    "gan.target_discriminator_loss": "sum",
    "dsc.direction": "code",
    "dsc.networks": "shared",
    "dsc.shared_network": "adapted",
    "sad.mode": "asymmetric",
    "sad.anchor": 0,
    "ccd.separate_discriminators": True,
    "fla.weight_decay_mode": "l2",
}


def apply_reading(config):
    """Sets READING's fields on `config` (in place) and returns it."""
    for key, value in READING.items():
        section, field = key.split(".")
        config[section][field] = value
    return config


def get_config():
    c = apply_reading(default.get_config())
    c.fla.input = "score"
    c.fla.hidden = (512, 256)
    return c
