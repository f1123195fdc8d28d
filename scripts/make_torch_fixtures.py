"""Writes the PyTorch fixtures of the converter equivalence tests (needs torch).

Builds tiny-width twins of the official networks, written after the official
definitions and with their module names (so the state-dict keys are the
official ones):

- junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py`: `ResnetGenerator`
  (instance norm, dropout, reflect padding, ConvTranspose upsampling) and
  `NLayerDiscriminator` (instance norm, n_layers=3);
- fyu/drn `drn.py` `DRN(BasicBlock, [1, 1, 2, 2, 2, 2, 1, 1], arch="C")` with
  CyCADA's `drn26` head (`out_map=True`: `fc` 1x1 conv, bilinear upsampling to
  the input size, align_corners=True);
- jhoffman/cycada_release `cycada/models/fcn8s.py` `VGG16_FCN8s`.

For each: random weights (BatchNorm running statistics too), eval mode, one
random input; saves `<name>.pth` (`torch.save` of the state dict; DRN in the
legacy pre-1.6 format like CyCADA's 2018 checkpoints, the others in the zip
format) and `<name>.npz` (`input` NCHW and `output` NCHW float32).

Run once (about 10 s), from the repository root:
  python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
  /tmp/torchvenv/bin/python scripts/make_torch_fixtures.py --out tests/tf_madan/fixtures
"""

import argparse
import functools
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------- junyanz ResnetGenerator twin
class ResnetBlock(nn.Module):
    def __init__(self, dim, norm_layer, use_dropout, use_bias):
        super().__init__()
        conv_block = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
            norm_layer(dim),
            nn.ReLU(True),
        ]
        if use_dropout:
            conv_block += [nn.Dropout(0.5)]
        conv_block += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
            norm_layer(dim),
        ]
        self.conv_block = nn.Sequential(*conv_block)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf, norm_layer, use_dropout, n_blocks):
        super().__init__()
        use_bias = norm_layer.func == nn.InstanceNorm2d
        model = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        n_downsampling = 2
        for i in range(n_downsampling):
            mult = 2**i
            model += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=use_bias),
                norm_layer(ngf * mult * 2),
                nn.ReLU(True),
            ]
        mult = 2**n_downsampling
        for _ in range(n_blocks):
            model += [ResnetBlock(ngf * mult, norm_layer, use_dropout, use_bias)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            model += [
                nn.ConvTranspose2d(
                    ngf * mult,
                    int(ngf * mult / 2),
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    output_padding=1,
                    bias=use_bias,
                ),
                norm_layer(int(ngf * mult / 2)),
                nn.ReLU(True),
            ]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0)]
        model += [nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf, n_layers, norm_layer):
        super().__init__()
        use_bias = norm_layer.func == nn.InstanceNorm2d
        kw, padw = 4, 1
        sequence = [
            nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
            nn.LeakyReLU(0.2, True),
        ]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2**n, 8)
            sequence += [
                nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kw, 2, padw, bias=use_bias),
                norm_layer(ndf * nf_mult),
                nn.LeakyReLU(0.2, True),
            ]
        nf_mult_prev, nf_mult = nf_mult, min(2**n_layers, 8)
        sequence += [
            nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kw, 1, padw, bias=use_bias),
            norm_layer(ndf * nf_mult),
            nn.LeakyReLU(0.2, True),
        ]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)

    def forward(self, x):
        return self.model(x)


# ------------------------------------------------------- fyu/drn DRN-C twin
def conv3x3(in_planes, out_planes, stride=1, padding=1, dilation=1):
    return nn.Conv2d(in_planes, out_planes, 3, stride, padding, bias=False, dilation=dilation)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=(1, 1), residual=True):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, padding=dilation[0], dilation=dilation[0])
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, padding=dilation[1], dilation=dilation[1])
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.residual = residual

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        if self.residual:
            out += residual
        return self.relu(out)


class DRN(nn.Module):
    """fyu/drn DRN arch 'C' with CyCADA's out_map head."""

    def __init__(self, block, layers, num_cls, channels):
        super().__init__()
        self.inplanes = channels[0]
        self.conv1 = nn.Conv2d(3, channels[0], kernel_size=7, stride=1, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(BasicBlock, channels[0], layers[0], stride=1)
        self.layer2 = self._make_layer(BasicBlock, channels[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, channels[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, channels[3], layers[3], stride=2)
        self.layer5 = self._make_layer(block, channels[4], layers[4], dilation=2, new_level=False)
        self.layer6 = self._make_layer(block, channels[5], layers[5], dilation=4, new_level=False)
        self.layer7 = self._make_layer(
            BasicBlock, channels[6], layers[6], dilation=2, new_level=False, residual=False
        )
        self.layer8 = self._make_layer(
            BasicBlock, channels[7], layers[7], dilation=1, new_level=False, residual=False
        )
        self.fc = nn.Conv2d(channels[-1], num_cls, kernel_size=1, stride=1, padding=0, bias=True)

    def _make_layer(
        self, block, planes, blocks, stride=1, dilation=1, new_level=True, residual=True
    ):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        first = (1, 1) if dilation == 1 else (dilation // 2 if new_level else dilation, dilation)
        layers = [
            block(self.inplanes, planes, stride, downsample, dilation=first, residual=residual)
        ]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(
                block(self.inplanes, planes, residual=residual, dilation=(dilation, dilation))
            )
        return nn.Sequential(*layers)

    def forward(self, x):
        _, _, h, w = x.size()
        x = self.relu(self.bn1(self.conv1(x)))
        for layer in (
            self.layer1,
            self.layer2,
            self.layer3,
            self.layer4,
            self.layer5,
            self.layer6,
            self.layer7,
            self.layer8,
        ):
            x = layer(x)
        x = self.fc(x)
        return F.interpolate(x, (h, w), mode="bilinear", align_corners=True)


# ------------------------------------------------------ cycada VGG16_FCN8s twin
def get_upsample_filter(size):
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    return torch.from_numpy(filt).float()


class Bilinear(nn.Module):
    def __init__(self, factor, num_channels):
        super().__init__()
        self.factor = factor
        filt = get_upsample_filter(factor * 2)
        w = torch.zeros(num_channels, num_channels, factor * 2, factor * 2)
        for i in range(num_channels):
            w[i, i] = filt
        self.register_buffer("w", w)

    def forward(self, x):
        return F.conv_transpose2d(x, self.w, stride=self.factor)


def make_layers(cfg):
    layers, in_channels = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
        else:
            layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


def _crop(x, shape, offset=0):
    _, _, h, w = shape.size()
    return x[:, :, offset : offset + h, offset : offset + w].contiguous()


class VGG16_FCN8s(nn.Module):  # noqa: N801 - the official class name
    def __init__(self, num_cls, widths, fc_width):
        super().__init__()
        a, b, c, d, e = widths
        cfg = [a, a, "M", b, b, "M", c, c, c, "M", d, d, d, "M", e, e, e, "M"]
        self.vgg = make_layers(cfg)
        self.vgg_head = nn.Sequential(
            nn.Conv2d(e, fc_width, 7),
            nn.ReLU(inplace=True),
            nn.Dropout2d(p=0.5),
            nn.Conv2d(fc_width, fc_width, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(p=0.5),
            nn.Conv2d(fc_width, num_cls, 1),
        )
        self.upscore2 = self.upscore_pool4 = Bilinear(2, num_cls)
        self.upscore8 = Bilinear(8, num_cls)
        self.score_pool4 = nn.Conv2d(d, num_cls, 1)
        self.score_pool3 = nn.Conv2d(c, num_cls, 1)

    def forward(self, x):
        inp = x
        x = F.pad(x, (99, 99, 99, 99), mode="constant", value=0)
        inter = {}
        for i, module in enumerate(self.vgg):
            x = module(x)
            if i in (16, 23):
                inter[i] = x
        x = self.vgg_head(x)
        upscore2 = self.upscore2(x)
        score_pool4c = _crop(self.score_pool4(0.01 * inter[23]), upscore2, offset=5)
        upscore_pool4 = self.upscore_pool4(upscore2 + score_pool4c)
        score_pool3c = _crop(self.score_pool3(0.0001 * inter[16]), upscore_pool4, offset=9)
        upscore8 = self.upscore8(upscore_pool4 + score_pool3c)
        return _crop(upscore8, inp, offset=31)


# ------------------------------------------------------------------- driver
def _randomise(net, generator, scale=0.3):
    with torch.no_grad():
        for _name, p in net.named_parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * scale)
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=generator) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=generator) + 0.5)


def _save(net, x, out_dir, name, legacy=False):
    net.eval()
    with torch.no_grad():
        y = net(x)
    path = os.path.join(out_dir, f"{name}.pth")
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    np.savez_compressed(
        os.path.join(out_dir, f"{name}.npz"),
        input=x.numpy().astype(np.float32),
        output=y.numpy().astype(np.float32),
    )
    print(name, tuple(x.shape), "->", tuple(y.shape), os.path.getsize(path), "bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/tf_madan/fixtures")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    instance = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)

    gen = ResnetGenerator(3, 3, ngf=4, norm_layer=instance, use_dropout=True, n_blocks=2)
    _randomise(gen, g, scale=0.1)  # keeps tanh out of saturation
    _save(gen, torch.rand(1, 3, 16, 20, generator=g) * 2 - 1, args.out, "cyclegan_resnet_tiny")

    # --no_dropout layout (conv_block.5 instead of .6), odd width 3.
    gen = ResnetGenerator(3, 3, ngf=3, norm_layer=instance, use_dropout=False, n_blocks=1)
    _randomise(gen, g, scale=0.1)
    _save(gen, torch.rand(1, 3, 12, 8, generator=g) * 2 - 1, args.out, "cyclegan_nodropout_tiny")

    disc = NLayerDiscriminator(3, ndf=4, n_layers=3, norm_layer=instance)
    _randomise(disc, g)
    _save(disc, torch.rand(1, 3, 32, 40, generator=g) * 2 - 1, args.out, "patchgan_tiny")

    drn = DRN(BasicBlock, [1, 1, 2, 2, 2, 2, 1, 1], num_cls=3, channels=(4, 4, 8, 8, 8, 16, 16, 16))
    _randomise(drn, g)
    # 26 x 30: not multiples of 8, checks the strided-conv padding and the resize.
    _save(drn, torch.randn(1, 3, 26, 30, generator=g), args.out, "drn_c26_tiny", legacy=True)

    fcn = VGG16_FCN8s(num_cls=3, widths=(4, 4, 8, 8, 8), fc_width=8)
    _randomise(fcn, g)
    with torch.no_grad():  # make the 0.01 / 1e-4 scaled skips visible in the output
        fcn.score_pool4.weight.mul_(100.0)
        fcn.score_pool3.weight.mul_(1e4)
    _save(fcn, torch.randn(1, 3, 21, 27, generator=g), args.out, "fcn8s_tiny")


if __name__ == "__main__":
    main()
