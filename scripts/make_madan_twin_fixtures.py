"""Writes the fixtures of tests/tf_madan/test_official_twin.py: one official MADAN step (needs torch).

A PyTorch twin of the official multi-source training step, after Luodian/MADAN at its last
commit 7a2918d:

- pixel level: `cyclegan/models/multi_cycle_gan_semantic_model.py` `CycleGANSemanticModel`
  (`forward` lines 206-240, `backward_D_basic` 242-257, `backward_D_A` 259-271, `backward_D_B`
  273-280, `backward_D` 282-296, `backward_G` 301-381, `optimize_parameters` 409-483) with the
  options of `scripts/CycleGAN/cyclegan_gta_synthia2cityscapes.sh` (`--SAD --CCD
  --CCD_weight 0.2 --semantic_loss --general_semantic_weight 20`, `dynamic_weight` 10,
  LSGAN, `Shared_DT`, lambda_A = lambda_B = 1, identity 0, Adam(2e-4, (0.5, 0.999)), pool 50)
  and `current_epoch` 11 > `SAD_frozen_epoch` 5 and > `CCD_frozen_epoch` 10, so every
  generator term is on; `GANLoss`, `ResnetGenerator`, `NLayerDiscriminator` from
  `cyclegan/models/networks.py`, `ImagePool` from `cyclegan/util/image_pool.py`; the DSC
  networks are `cycada/models/drn.py` `drn26` (DRN-C-26, `weights_model_type=drn26`);
- feature level: one iteration of `scripts/train_fcn_adda.py` (lines 240-372) with
  `--weights_shared --discrim_score`, SGD(momentum 0.9, weight_decay 5e-4), lambda_d 1,
  lambda_g 0.1, the 60 % gate, and `cycada/models/fcn8s.py` `Discriminator` (lines 188-204),
  the segmenter being `drn26` (a `--model` choice of the script).

Fixes needed to run it, each a departure from the official code:
 1. No `sys.path.append('/nfs/project/libo_iMADAN')` / `get_model(...)` (hard-coded server
    paths, spec §6.1.5): the networks are built here and passed in.
 2. CCD generator terms use `opt.CCD_weight`; the official lines 361 and 367 multiply by the
    undefined `opt.D1D2_weight` and crash (spec §6.1.4; the fork dannybarash7/MADAN uses
    `CCD_weight`).
 3. DSC networks in eval mode and fed ImageNet-normalised inputs (x + 1) / 2 - mean) / std: the
    official code leaves them in train mode (BatchNorm on batch statistics, running statistics
    drifting) and feeds [-1, 1] images (spec §6.1.1). A bug we deliberately do not reproduce.
 4. CPU, no `DataParallel`, no `.cuda()` / `make_variable`; `Variable(x.data)` is `x.detach()`.
 5. Randomness that cannot be matched across frameworks is off: generators with `--no_dropout`
    (the official runs keep Dropout(0.5) in every residual block) and the ADDA discriminator's
    `Dropout2d` at p = 0. Dropout is a mask, not part of the loss or gradient structure.
 6. Tiny widths: ngf 4 with 1 residual block (2 down/up-samplings as the official generator),
    PatchGANs ndf 4 with n_layers 1, DRN-C-26 channels (4, 4, 8, 8, 8, 8, 8, 8), 5 classes,
    the ADDA discriminator 5 -> 8 -> 4 -> 2 (official 19 -> 512 -> 256 -> 2), 16 x 16 images,
    batch 2 per domain. Float64 (`.double()`) so that the comparison is exact to ~1e-12.
 7. The ADDA segmenter learning rate is 1e-2 (the GTA script's 2e-5 would make the second
    update's gradient indistinguishable from the first's) and the discriminator's last bias
    favours "source" so that the first domain accuracy is 2/3 > 60 % and the gate opens with
    the official threshold: the step exercises the adversarial AND the supervised F update.

Index mapping (the official 1 = SYNTHIA, 2 = GTA; ours follow `data.sources=("gta5",
"synthia")`): G_A_2 -> generator_s2t_0, G_B_2 -> generator_t2s_0, G_A_1 -> generator_s2t_1,
G_B_1 -> generator_t2s_1, D_A -> discriminator_target, D_B_2 -> discriminator_source_0, D_B_1 ->
discriminator_source_1, D_3 -> sad_discriminator_0 (anchor GTA), D_21 (real SYN vs
G_B_1(G_A_2(x_gta))) -> ccd_discriminator_1_0, D_12 -> ccd_discriminator_0_1,
netPixelCLS_GTA / _SYN -> dsc_source_0 / _1. Loss terms are stored under our log names.

Outputs in `--out` (tests/tf_madan/fixtures):
  madan_twin_init.pth  `torch.save` of {"madan": {network: state_dict}, "fla": {"segmenter":
                       state_dict}} (float32 values), read by tf_madan.torch_reader and mapped
                       by tf_madan.convert_lib's plans.
  madan_twin.npz       inputs (NHWC), the ADDA discriminator's initial weights (Keras layout),
                       every loss term (float64), and per network and state-dict key the
                       gradient (`grad/<net>/<key>`) and the Adam / SGD update
                       (`delta/<net>/<key>` = after - before), float32.

Run (about 10 s), from the repository root:
  python3 -m venv /tmp/twin && /tmp/twin/bin/pip install torch==2.13.0 numpy h5py
  /tmp/twin/bin/python scripts/make_madan_twin_fixtures.py --out tests/tf_madan/fixtures
"""

# The twin keeps the official method and attribute names (backward_D_A, lambda_A, netD_3, ...).
# ruff: noqa: N802, N803, N806, N815

import argparse
import collections
import functools
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_torch_fixtures import DRN, BasicBlock, NLayerDiscriminator, ResnetGenerator  # noqa: E402

NUM_CLASSES = 5
SIZE = 16
BATCH = 2
DRN_CHANNELS = (4, 4, 8, 8, 8, 8, 8, 8)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FLA_HIDDEN = (8, 4)
FLA_LR = 1e-2


# ------------------------------------------------ cyclegan/models/networks.py GANLoss
class GANLoss(nn.Module):
    def __init__(self, use_lsgan=True, target_real_label=1.0, target_fake_label=0.0):
        super().__init__()
        self.register_buffer("real_label", torch.tensor(target_real_label))
        self.register_buffer("fake_label", torch.tensor(target_fake_label))
        self.loss = nn.MSELoss() if use_lsgan else nn.BCELoss()

    def __call__(self, input, target_is_real):
        target = self.real_label if target_is_real else self.fake_label
        return self.loss(input, target.to(input.dtype).expand_as(input))


# --------------------------------------------------- cyclegan/util/image_pool.py ImagePool
class ImagePool:
    def __init__(self, pool_size):
        self.pool_size = pool_size
        self.num_imgs = 0
        self.images = []

    def query(self, images):
        if self.pool_size == 0:
            return images
        return_images = []
        for image in images:
            image = torch.unsqueeze(image.data, 0)
            if self.num_imgs < self.pool_size:
                self.num_imgs += 1
                self.images.append(image)
                return_images.append(image)
            else:  # never reached in one step of batch 2 with pool 50
                raise AssertionError("the twin runs one step: the pool is never full")
        return torch.cat(return_images, 0)


# ------------------------------------------- cycada/models/fcn8s.py Discriminator (188-204)
class Discriminator(nn.Module):
    def __init__(self, input_dim, hidden, output_dim=2):
        super().__init__()
        dim1, dim2 = hidden
        self.D = nn.Sequential(
            nn.Conv2d(input_dim, dim1, 1),
            nn.Dropout2d(p=0.0),  # FIX 5 (official p=0.5)
            nn.ReLU(inplace=True),
            nn.Conv2d(dim1, dim2, 1),
            nn.Dropout2d(p=0.0),  # FIX 5
            nn.ReLU(inplace=True),
            nn.Conv2d(dim2, output_dim, 1),
        )

    def forward(self, x):
        return self.D(x)


def to_segmenter(images):
    # FIX 3: ImageNet normalisation of [-1, 1] images (tf_madan.normalization).
    unit = (images + 1.0) * 0.5
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype).view(1, 3, 1, 1)
    return (unit - mean) / std


class Opt:
    """The options of scripts/CycleGAN/cyclegan_gta_synthia2cityscapes.sh that the step reads."""

    lambda_identity = 0.0
    lambda_A = 1.0
    lambda_B = 1.0
    Shared_DT = True
    SAD = True
    CCD = True
    HF_CCD = False
    semantic_loss = True
    SAD_frozen_epoch = 5
    CCD_frozen_epoch = 10
    CCD_weight = 0.2
    general_semantic_weight = 20.0
    dynamic_weight = 10.0
    current_epoch = 11
    lr = 2e-4
    beta1 = 0.5
    pool_size = 50
    no_lsgan = False


# ---------------- cyclegan/models/multi_cycle_gan_semantic_model.py CycleGANSemanticModel
class CycleGANSemanticTwin:
    """The official multi-source model's training step (methods keep the official names)."""

    def __init__(self, opt, nets):
        self.opt = opt
        for name, net in nets.items():
            setattr(self, f"net{name}", net)
        self.fake_A_1_pool = ImagePool(opt.pool_size)
        self.fake_B_1_pool = ImagePool(opt.pool_size)
        self.fake_A_2_pool = ImagePool(opt.pool_size)
        self.fake_B_2_pool = ImagePool(opt.pool_size)
        self.fake_A_21_pool = ImagePool(opt.pool_size)
        self.fake_A_12_pool = ImagePool(opt.pool_size)
        self.criterionGAN = GANLoss(use_lsgan=not opt.no_lsgan)
        self.criterionCycle = torch.nn.L1Loss()
        self.criterionSemantic = torch.nn.KLDivLoss(reduction="batchmean")
        adam = functools.partial(torch.optim.Adam, lr=opt.lr, betas=(opt.beta1, 0.999))
        chain = lambda *ns: [p for n in ns for p in n.parameters()]  # noqa: E731
        self.optimizer_D = adam(chain(self.netD_A, self.netD_B_1, self.netD_B_2))
        self.optimizer_G_1 = adam(chain(self.netG_A_1, self.netG_B_1))
        self.optimizer_G_2 = adam(chain(self.netG_A_2, self.netG_B_2))
        self.optimizer_D_3 = adam(self.netD_3.parameters())
        self.optimizer_D_21 = adam(self.netD_21.parameters())
        self.optimizer_D_12 = adam(self.netD_12.parameters())
        self.grads = {}  # parameter -> gradient at its optimizer step

    def set_input(self, real_a_1, real_a_2, real_b):
        self.real_A_1, self.real_A_2, self.real_B = real_a_1, real_a_2, real_b

    def set_requires_grad(self, nets, requires_grad=False):
        for net in nets:
            for param in net.parameters():
                param.requires_grad = requires_grad

    def forward(self, opt):
        self.fake_B_1 = self.netG_A_1(self.real_A_1)
        self.rec_A_1 = self.netG_B_1(self.fake_B_1)
        self.fake_A_1 = self.netG_B_1(self.real_B)
        self.rec_B_1 = self.netG_A_1(self.fake_A_1)
        self.fake_B_2 = self.netG_A_2(self.real_A_2)
        self.rec_A_2 = self.netG_B_2(self.fake_B_2)
        self.fake_A_2 = self.netG_B_2(self.real_B)
        self.rec_B_2 = self.netG_A_2(self.fake_A_2)
        if opt.CCD:
            self.fake_A_21 = self.netG_B_1(self.fake_B_2)
            self.fake_A_12 = self.netG_B_2(self.fake_B_1)
        if opt.semantic_loss:
            # FIX 3: inputs renormalised (the networks are in eval mode, see main()).
            self.pred_real_A_SYN = self.netPixelCLS_SYN(to_segmenter(self.real_A_1))
            self.pred_fake_B_SYN = self.netPixelCLS_SYN(to_segmenter(self.fake_B_1))
            self.pred_real_A_GTA = self.netPixelCLS_GTA(to_segmenter(self.real_A_2))
            self.pred_fake_B_GTA = self.netPixelCLS_GTA(to_segmenter(self.fake_B_2))

    def backward_D_basic(self, netD, real, fake, SAD=False):
        pred_real = netD(real.detach()) if SAD else netD(real)
        loss_D_real = self.criterionGAN(pred_real, True)
        pred_fake = netD(fake.detach())
        loss_D_fake = self.criterionGAN(pred_fake, False)
        loss_D = (loss_D_real + loss_D_fake) * 0.5
        loss_D.backward()
        return loss_D

    def backward_D_A(self):
        fake_B_1 = self.fake_B_1_pool.query(self.fake_B_1)
        self.loss_D_A_1 = self.backward_D_basic(self.netD_A, self.real_B, fake_B_1)
        fake_B_2 = self.fake_B_2_pool.query(self.fake_B_2)
        self.loss_D_A_2 = self.backward_D_basic(self.netD_A, self.real_B, fake_B_2)

    def backward_D_B(self):
        fake_A_1 = self.fake_A_1_pool.query(self.fake_A_1)
        self.loss_D_B_1 = self.backward_D_basic(self.netD_B_1, self.real_A_1, fake_A_1)
        fake_A_2 = self.fake_A_2_pool.query(self.fake_A_2)
        self.loss_D_B_2 = self.backward_D_basic(self.netD_B_2, self.real_A_2, fake_A_2)

    def backward_D(self, which_D):
        if which_D == "SAD":
            # The official second query of fake_B_1_pool (it also re-inserts the images).
            fake_B_1 = self.fake_B_1_pool.query(self.fake_B_1)
            self.loss_D_3_1 = self.backward_D_basic(self.netD_3, self.fake_B_2, fake_B_1, SAD=True)
        elif which_D == "CCD_21":
            fake_A_21 = self.fake_A_21_pool.query(self.fake_A_21)
            self.loss_D_21 = self.backward_D_basic(self.netD_21, self.real_A_1, fake_A_21)
        elif which_D == "CCD_12":
            fake_A_12 = self.fake_A_12_pool.query(self.fake_A_12)
            self.loss_D_12 = self.backward_D_basic(self.netD_12, self.real_A_2, fake_A_12)

    def backward_G(self, opt):
        lambda_A, lambda_B = opt.lambda_A, opt.lambda_B
        # lambda_identity = 0: no identity terms (the official else-branch, lines 319-323).
        self.loss_G_A_1 = 2 * self.criterionGAN(self.netD_A(self.fake_B_1), True)
        self.loss_G_A_2 = 2 * self.criterionGAN(self.netD_A(self.fake_B_2), True)
        self.loss_G_B_1 = self.criterionGAN(self.netD_B_1(self.fake_A_1), True)
        self.loss_G_B_2 = self.criterionGAN(self.netD_B_2(self.fake_A_2), True)
        self.loss_cycle_A_1 = self.criterionCycle(self.rec_A_1, self.real_A_1) * lambda_A
        self.loss_cycle_A_2 = self.criterionCycle(self.rec_A_2, self.real_A_2) * lambda_A
        self.loss_cycle_B_1 = self.criterionCycle(self.rec_B_1, self.real_B) * lambda_B
        self.loss_cycle_B_2 = self.criterionCycle(self.rec_B_2, self.real_B) * lambda_B
        self.loss_G_1 = (
            self.loss_G_A_1 + self.loss_G_B_1 + self.loss_cycle_A_1 + self.loss_cycle_B_1
        )
        self.loss_G_2 = (
            self.loss_G_A_2 + self.loss_G_B_2 + self.loss_cycle_A_2 + self.loss_cycle_B_2
        )
        self.loss_G = self.loss_G_1 + self.loss_G_2
        if opt.SAD:
            if opt.SAD_frozen_epoch != -1 and opt.current_epoch > opt.SAD_frozen_epoch:
                self.loss_G_s1s2 = self.criterionGAN(self.netD_3(self.fake_B_1), True)
            else:
                self.loss_G_s1s2 = 0
            self.loss_G += self.loss_G_s1s2
        if opt.CCD:
            if opt.CCD_frozen_epoch != -1 and opt.current_epoch > opt.CCD_frozen_epoch:
                self.loss_G_s1s21 = self.criterionGAN(self.netD_21(self.fake_A_21), True)
                self.loss_G += self.loss_G_s1s21 * opt.CCD_weight  # FIX 2 (D1D2_weight)
                self.loss_G_s2s12 = self.criterionGAN(self.netD_12(self.fake_A_12), True)
                self.loss_G += self.loss_G_s2s12 * opt.CCD_weight  # FIX 2
            else:
                self.loss_G_s1s21 = 0
                self.loss_G_s2s12 = 0
        if opt.semantic_loss:
            self.loss_sem_syn = opt.dynamic_weight * self.criterionSemantic(
                F.log_softmax(self.pred_fake_B_SYN, dim=1), F.softmax(self.pred_real_A_SYN, dim=1)
            )
            self.loss_sem_gta = opt.dynamic_weight * self.criterionSemantic(
                F.log_softmax(self.pred_fake_B_GTA, dim=1), F.softmax(self.pred_real_A_GTA, dim=1)
            )
            chw = self.pred_fake_B_SYN.shape[1] * self.pred_fake_B_SYN.shape[2]
            chw = chw * self.pred_fake_B_SYN.shape[3]
            self.loss_G += opt.general_semantic_weight * torch.div(self.loss_sem_syn, chw)
            self.loss_G += opt.general_semantic_weight * torch.div(self.loss_sem_gta, chw)
        self.loss_G.backward()

    def _step(self, optimizer):
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.grads[p] = p.grad.detach().clone()
        optimizer.step()

    def optimize_parameters(self, opt):
        self.forward(opt)
        self.set_requires_grad([self.netD_A, self.netD_B_1, self.netD_B_2], False)
        self.set_requires_grad([self.netD_3, self.netD_21, self.netD_12], False)
        self.set_requires_grad([self.netG_A_1, self.netG_B_1, self.netG_A_2, self.netG_B_2], True)
        self.optimizer_G_1.zero_grad()
        self.optimizer_G_2.zero_grad()
        self.backward_G(opt)
        self._step(self.optimizer_G_1)
        self._step(self.optimizer_G_2)
        self.set_requires_grad([self.netD_A, self.netD_B_1, self.netD_B_2], True)
        self.optimizer_D.zero_grad()
        self.backward_D_B()
        self.backward_D_A()
        self._step(self.optimizer_D)
        self.set_requires_grad([self.netD_3], True)
        self.optimizer_D_3.zero_grad()
        self.backward_D("SAD")
        self._step(self.optimizer_D_3)
        self.set_requires_grad([self.netD_21], True)
        self.optimizer_D_21.zero_grad()
        self.backward_D("CCD_21")
        self._step(self.optimizer_D_21)
        self.set_requires_grad([self.netD_12], True)
        self.optimizer_D_12.zero_grad()
        self.backward_D("CCD_12")
        self._step(self.optimizer_D_12)


# ------------------------------------------------- scripts/train_fcn_adda.py, one iteration
def supervised_loss(score, label):
    loss_fn_ = torch.nn.NLLLoss(reduction="mean", ignore_index=255)
    return loss_fn_(F.log_softmax(score, dim=1), label)


def adda_iteration(net, discriminator, im_s, label_s, im_t, lambda_d, lambda_g, grads):
    """Lines 240-372 with --weights_shared --discrim_score (net_src = net, train mode)."""
    opt_dis = torch.optim.SGD(
        discriminator.parameters(), lr=FLA_LR, momentum=0.9, weight_decay=5e-4
    )
    opt_rep = torch.optim.SGD(net.parameters(), lr=FLA_LR, momentum=0.9, weight_decay=5e-4)
    accuracies_dom = collections.deque(maxlen=100)
    logs = {}
    net.train()
    discriminator.train()
    # 2. Optimize Discriminator
    opt_dis.zero_grad()
    opt_rep.zero_grad()
    score_s = net(im_s).detach()
    f_s = score_s
    dis_score_s = discriminator(f_s)
    score_t = net(im_t).detach()
    f_t = score_t
    dis_score_t = discriminator(f_t)
    dis_pred_concat = torch.cat((dis_score_s, dis_score_t))
    batch_t, _, h, w = dis_score_t.size()
    batch_s = dis_score_s.size(0)
    dis_label_concat = torch.cat(
        [torch.ones(batch_s, h, w).long(), torch.zeros(batch_t, h, w).long()]
    )
    loss_dis = supervised_loss(dis_pred_concat, dis_label_concat)
    (lambda_d * loss_dis).backward()
    _record(opt_dis, grads, "feature_discriminator")
    opt_dis.step()
    pred_dis = torch.squeeze(dis_pred_concat.max(1)[1])
    dom_acc = (pred_dis == dis_label_concat).double().mean().item()
    accuracies_dom.append(dom_acc * 100.0)
    logs["feature_discriminator"] = loss_dis.item()
    logs["domain_accuracy"] = dom_acc
    dom_acc_thresh = 60
    assert np.mean(accuracies_dom) > dom_acc_thresh, "FIX 7: the gate must open"
    logs["gate_open"] = 1.0
    # Optimize Target Network: adversarial step
    opt_dis.zero_grad()
    opt_rep.zero_grad()
    score_t = net(im_t)
    f_t = score_t
    dis_score_t = discriminator(f_t)
    batch, _, h, w = dis_score_t.size()
    target_dom_fake_t = torch.ones(batch, h, w).long()
    loss_gan_t = supervised_loss(dis_score_t, target_dom_fake_t)
    (lambda_g * loss_gan_t).backward()
    _record(opt_rep, grads, "segmenter_adversarial")
    opt_rep.step()
    logs["feature_generator"] = loss_gan_t.item()
    # weights_shared: source supervised step
    opt_dis.zero_grad()
    opt_rep.zero_grad()
    score_s = net(im_s)
    loss_supervised_s = supervised_loss(score_s, label_s)
    loss_supervised_s.backward()
    _record(opt_rep, grads, "segmenter_supervised")
    opt_rep.step()
    logs["segmentation"] = loss_supervised_s.item()
    return logs


def _record(optimizer, grads, name):
    grads[name] = {p: p.grad.detach().clone() for g in optimizer.param_groups for p in g["params"]}


# ------------------------------------------------------------------------------ driver
def _init(net, generator, scale=0.02, bias=0.02):
    """networks.init_weights 'normal' (N(0, 0.02)), plus small random biases to map them too."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=generator) * bias)
            elif "bn" in name or "downsample.1" in name:
                p.copy_(1.0 + torch.randn(p.shape, generator=generator) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * scale)
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=generator) + 0.5)
    return net


def _f32(sd):
    # Initial values representable in float32: the fixture stores float32, both sides run float64.
    return collections.OrderedDict(
        (k, v.float().double() if v.is_floating_point() else v.clone()) for k, v in sd.items()
    )


def _images(generator, n=BATCH):
    return (torch.rand(n, 3, SIZE, SIZE, generator=generator) * 2 - 1).float().double()


def _madan_losses(twin):
    """The twin's loss terms under our log names (official names in the module docstring)."""
    hw = SIZE * SIZE
    losses = {
        "gan_s2t_0": twin.loss_G_A_2 / 2,
        "gan_s2t_1": twin.loss_G_A_1 / 2,
        "gan_t2s_0": twin.loss_G_B_2,
        "gan_t2s_1": twin.loss_G_B_1,
        "cycle_0": twin.loss_cycle_A_2 + twin.loss_cycle_B_2,
        "cycle_1": twin.loss_cycle_A_1 + twin.loss_cycle_B_1,
        # Pixel mean of the per-pixel KL: KLDivLoss batchmean / H / W (without dynamic_weight).
        "dsc_0": twin.loss_sem_gta / Opt.dynamic_weight / hw,
        "dsc_1": twin.loss_sem_syn / Opt.dynamic_weight / hw,
        "sad_generator_1": twin.loss_G_s1s2,
        "ccd_generator_0": twin.loss_G_s2s12,
        "ccd_generator_1": twin.loss_G_s1s21,
        "generator_total": twin.loss_G,
        "discriminator_target": twin.loss_D_A_1 + twin.loss_D_A_2,
        "discriminator_source_0": twin.loss_D_B_2,
        "discriminator_source_1": twin.loss_D_B_1,
        "sad_discriminator_0": twin.loss_D_3_1,
        "ccd_discriminator_0": twin.loss_D_12,
        "ccd_discriminator_1": twin.loss_D_21,
    }
    return {k: float(v.detach()) for k, v in losses.items() if torch.is_tensor(v)}


def _nhwc(x):
    return x.detach().numpy().transpose(0, 2, 3, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/tf_madan/fixtures")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(18)
    instance = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)

    def gen():
        return _init(
            ResnetGenerator(3, 3, ngf=4, norm_layer=instance, use_dropout=False, n_blocks=1), g
        )

    def disc():
        return _init(NLayerDiscriminator(3, ndf=4, n_layers=1, norm_layer=instance), g, scale=0.1)

    def drn():
        net = DRN(BasicBlock, [1, 1, 2, 2, 2, 2, 1, 1], num_cls=NUM_CLASSES, channels=DRN_CHANNELS)
        return _init(net, g, scale=0.3, bias=0.3)

    # Our names -> official networks.
    ours = collections.OrderedDict(
        generator_s2t_0=gen(),  # G_A_2 (GTA -> T)
        generator_t2s_0=gen(),  # G_B_2
        generator_s2t_1=gen(),  # G_A_1 (SYN -> T)
        generator_t2s_1=gen(),  # G_B_1
        discriminator_target=disc(),  # D_A (Shared_DT)
        discriminator_source_0=disc(),  # D_B_2
        discriminator_source_1=disc(),  # D_B_1
        sad_discriminator_0=disc(),  # D_3
        ccd_discriminator_1_0=disc(),  # D_21
        ccd_discriminator_0_1=disc(),  # D_12
        dsc_source_0=drn(),  # netPixelCLS_GTA
        dsc_source_1=drn(),  # netPixelCLS_SYN
    )
    for net in ours.values():
        net.load_state_dict(_f32(net.state_dict()))
        net.double()
    official = dict(
        G_A_2="generator_s2t_0",
        G_B_2="generator_t2s_0",
        G_A_1="generator_s2t_1",
        G_B_1="generator_t2s_1",
        D_A="discriminator_target",
        D_B_2="discriminator_source_0",
        D_B_1="discriminator_source_1",
        D_3="sad_discriminator_0",
        D_21="ccd_discriminator_1_0",
        D_12="ccd_discriminator_0_1",
        PixelCLS_GTA="dsc_source_0",
        PixelCLS_SYN="dsc_source_1",
    )
    for name in ("dsc_source_0", "dsc_source_1"):
        ours[name].eval()  # FIX 3 (official: never put in eval mode)
    init = {"madan": {n: _f32(net.state_dict()) for n, net in ours.items()}}
    before = {n: {k: v.clone() for k, v in net.state_dict().items()} for n, net in ours.items()}
    x_gta, x_syn, x_target = _images(g), _images(g), _images(g)

    twin = CycleGANSemanticTwin(Opt, {o: ours[n] for o, n in official.items()})
    twin.set_input(x_syn, x_gta, x_target)
    twin.optimize_parameters(Opt)
    losses = _madan_losses(twin)
    arrays = {f"loss/madan/{k}": np.float64(float(v)) for k, v in losses.items()}
    arrays.update(
        {
            "input/source_0": _nhwc(x_gta),
            "input/source_1": _nhwc(x_syn),
            "input/target": _nhwc(x_target),
        }
    )
    for n, net in ours.items():
        if n.startswith("dsc"):
            continue
        for key, p in net.named_parameters():
            grad = twin.grads.get(p)
            arrays[f"grad/{n}/{key}"] = (
                np.zeros(p.shape, np.float32) if grad is None else grad.numpy().astype(np.float32)
            )
        for key, value in net.state_dict().items():
            if value.is_floating_point():
                arrays[f"delta/{n}/{key}"] = (value - before[n][key]).numpy().astype(np.float32)

    # ---- SAD / CCD warm-up: current_epoch 1 is not past SAD_frozen_epoch 5 nor CCD_frozen_epoch
    # 10 (lines 351, 359): no SAD / CCD generator terms, their discriminators train. Same
    # initial weights and inputs; gradients only.
    for n, net in ours.items():
        net.load_state_dict(before[n])
    warmup_opt = type("WarmupOpt", (Opt,), {"current_epoch": 1})
    warm = CycleGANSemanticTwin(warmup_opt, {o: ours[n] for o, n in official.items()})
    warm.set_input(x_syn, x_gta, x_target)
    warm.optimize_parameters(warmup_opt)
    arrays.update({f"loss/warmup/{k}": np.float64(v) for k, v in _madan_losses(warm).items()})
    for n, net in ours.items():
        if not n.startswith("dsc"):
            for key, p in net.named_parameters():
                grad = warm.grads.get(p)
                arrays[f"grad_warmup/{n}/{key}"] = (
                    np.zeros(p.shape, np.float32)
                    if grad is None
                    else grad.numpy().astype(np.float32)
                )

    # ---- FLA / ADDA iteration on the adapted images (segmenter-normalised inputs).
    seg = drn()
    seg.load_state_dict(_f32(seg.state_dict()))
    seg.double()
    init["fla"] = {"segmenter": _f32(seg.state_dict())}
    seg_before = {k: v.clone() for k, v in seg.state_dict().items()}
    dis = Discriminator(NUM_CLASSES, FLA_HIDDEN).double()
    _init(dis, g, scale=0.3, bias=0.1)
    with torch.no_grad():
        dis.D[6].bias.copy_(torch.tensor([0.0, 4.0]))  # FIX 7: the first accuracy is 2/3
    dis.load_state_dict(_f32(dis.state_dict()))
    dis_before = {k: v.clone() for k, v in dis.state_dict().items()}
    for k, v in dis_before.items():
        arrays[f"fla_discriminator_init/{k}"] = v.numpy()
    images = [to_segmenter(_images(g)) for _ in range(3)]
    labels = [torch.randint(0, NUM_CLASSES, (BATCH, SIZE, SIZE), generator=g) for _ in range(3)]
    for lab in labels:
        lab[0, :3] = 255  # ignored pixels, unequal per image
    im_s = torch.cat(images[:2])
    label_s = torch.cat(labels[:2])
    grads = {}
    fla_logs = adda_iteration(seg, dis, im_s, label_s, images[2], 1.0, 0.1, grads)
    arrays.update({f"loss/fla/{k}": np.float64(v) for k, v in fla_logs.items()})
    for i in range(3):
        name = f"source_{i}" if i < 2 else "target"
        arrays[f"fla_input/{name}"] = _nhwc(images[i])
        arrays[f"fla_input/{name}_label"] = labels[i].numpy().astype(np.int32)
    for key, value in seg.state_dict().items():
        if value.is_floating_point():
            arrays[f"delta/segmenter/{key}"] = (value - seg_before[key]).numpy().astype(np.float32)
    for key, value in dis.state_dict().items():
        arrays[f"delta/feature_discriminator/{key}"] = (
            (value - dis_before[key]).numpy().astype(np.float32)
        )

    init = {
        part: {
            n: collections.OrderedDict(
                (k, v.float() if v.is_floating_point() else v) for k, v in sd.items()
            )
            for n, sd in nets.items()
        }
        for part, nets in init.items()
    }
    torch.save(init, os.path.join(args.out, "madan_twin_init.pth"))
    np.savez_compressed(os.path.join(args.out, "madan_twin.npz"), **arrays)
    for name in ("madan_twin_init.pth", "madan_twin.npz"):
        print(name, os.path.getsize(os.path.join(args.out, name)), "bytes")
    for k, v in sorted(losses.items()):
        print(f"{k:24s} {v:.10f}")
    print(fla_logs)


if __name__ == "__main__":
    main()
