"""Converts official weights (Keras VGG16, PyTorch CycleGAN / DRN / FCN8s) to our models.

Each source is one entry of `SOURCES`: it infers the architecture from the
weights, builds our Keras model, and returns a *plan*: for every Keras layer
the source arrays (already in Keras layout) that replace its weights. One
executor checks the plan against the state dict and the model, and raises a
single `ConversionError` listing every missing key, unexpected key and shape
mismatch before anything is assigned.

Layouts (PyTorch -> Keras):
  Conv2d weight [O, I, kh, kw] -> Conv2D kernel [kh, kw, I, O];
  ConvTranspose2d weight [I, O, kh, kw] -> Conv2DTranspose kernel [kh, kw, O, I]
    (TF's conv2d_transpose is the same correlation adjoint as PyTorch's, so no
    spatial flip; the generator's `padding=1, output_padding=1` alignment is
    built into `build_resnet_generator` as a valid transposed conv + crop of
    the first row/column);
  BatchNorm2d weight, bias, running_mean, running_var -> gamma, beta,
    moving_mean, moving_variance (`num_batches_tracked` unused);
  InstanceNorm2d(affine=False) has no weights (running stats some old
    checkpoints carry are unused and skipped).

Keras VGG16 -> FCN8s: block{b}_conv{r} -> conv{b}_{r}; fc1 [25088, 4096] ->
fc6 [7, 7, 512, 4096] (Flatten of a channels-last 7x7x512 map); fc2 -> fc7
[1, 1, 4096, 4096]. Keras's ImageNet VGG16 expects Caffe inputs (BGR, 0-255,
mean-subtracted) while our segmenters take RGB normalised by the ImageNet
mean/std, so by default the input transform is folded into conv1_1
(`vgg_preprocessing="caffe"`); `"none"` copies conv1_1 as is.
"""

import dataclasses
import os
import tempfile

import numpy as np

from tf_madan import torch_reader
from tf_madan.convert_vgg16 import (  # noqa: F401 - part of this module's API
    CAFFE_MEAN_BGR,
    ConversionError,
    _fcn8s_conv_names,
    fold_caffe_preprocessing,
    read_keras_vgg16,
    vgg16_model_weights,
    vgg16_to_fcn8s,
)
from tf_madan.models import drn, fcn8s
from tf_madan.models.discriminator import build_patchgan_discriminator
from tf_madan.models.generator import build_resnet_generator

VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # torchvision features.N
_BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var")
_STATS_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def conv_kernel(w):
    """PyTorch Conv2d weight [O, I, kh, kw] -> Keras kernel [kh, kw, I, O]."""
    return np.transpose(w, (2, 3, 1, 0))


def conv_transpose_kernel(w):
    """PyTorch ConvTranspose2d weight [I, O, kh, kw] -> Keras kernel [kh, kw, O, I]."""
    return np.transpose(w, (2, 3, 1, 0))


@dataclasses.dataclass
class Plan:
    """Keras layer name -> list of (source key, transform) for each layer weight."""

    model: object
    layers: dict = dataclasses.field(default_factory=dict)
    ignored: set = dataclasses.field(default_factory=set)  # keys read but not needed

    def conv(self, layer, prefix, bias=True):
        self.layers[layer] = [(f"{prefix}.weight", conv_kernel)] + (
            [(f"{prefix}.bias", None)] if bias else []
        )

    def conv_transpose(self, layer, prefix, bias=True, key="weight"):
        self.layers[layer] = [(f"{prefix}.{key}", conv_transpose_kernel)] + (
            [(f"{prefix}.bias", None)] if bias else []
        )

    def batch_norm(self, layer, prefix):
        self.layers[layer] = [(f"{prefix}.{s}", None) for s in _BN_SUFFIXES]
        self.ignored.add(f"{prefix}.num_batches_tracked")

    def instance_norm(self, prefix):
        self.ignored.update(f"{prefix}.{s}" for s in _STATS_SUFFIXES)


def apply_plan(plan, state_dict, source):
    """Checks `plan` against `state_dict` and the model, then assigns all weights.

    Raises:
      ConversionError: listing missing keys, unexpected keys and shape
        mismatches (nothing is assigned then).
    """
    model = plan.model
    used = set()
    missing, mismatched, values = [], [], {}
    for layer_name, entries in plan.layers.items():
        layer = model.get_layer(layer_name)
        weights = layer.weights
        if len(weights) != len(entries):
            raise ConversionError(
                f"internal: layer {layer_name} has {len(weights)} weights, plan {len(entries)}."
            )
        arrays = []
        for (key, transform), variable in zip(entries, weights):
            used.add(key)
            if key not in state_dict:
                missing.append(key)
                continue
            array = np.asarray(state_dict[key])
            array = transform(array) if transform is not None else array
            if tuple(array.shape) != tuple(variable.shape):
                mismatched.append(
                    f"{key}: {tuple(np.asarray(state_dict[key]).shape)} -> {tuple(array.shape)}"
                    f" != {layer_name}/{variable.name} {tuple(variable.shape)}"
                )
                continue
            arrays.append(array.astype(variable.dtype))
        values[layer_name] = arrays
    unexpected = sorted(set(state_dict) - used - plan.ignored)
    if missing or unexpected or mismatched:
        lines = [f"{source}: the weights do not fit {model.name}."]
        if missing:
            lines.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if mismatched:
            lines.append(f"shape mismatches ({len(mismatched)}): " + "; ".join(mismatched))
        raise ConversionError("\n".join(lines))
    for layer_name, arrays in values.items():
        model.get_layer(layer_name).set_weights(arrays)
    return sorted(values)


def _require(state_dict, key, source):
    if key not in state_dict:
        raise ConversionError(
            f"{source}: key {key!r} not found; is this the right --source? "
            f"First keys: {list(state_dict)[:6]}"
        )
    return np.asarray(state_dict[key])


# ------------------------------------------------------------ PyTorch sources
def plan_cyclegan_resnet(state_dict, source="torch_cyclegan_resnet9"):
    """junyanz `ResnetGenerator` (norm=instance, ConvTranspose upsampling) -> ours.

    `self.model` indices: 1 stem conv; 4, 7 down convs; 10.. ResnetBlocks
    (`conv_block.1` / `.5`, or `.6` with dropout); then up convs every 3;
    final conv after ReflectionPad2d(3).
    """
    filters = _require(state_dict, "model.1.weight", source).shape[0]
    num_down = 0
    while f"model.{4 + 3 * num_down}.weight" in state_dict:
        w = state_dict[f"model.{4 + 3 * num_down}.weight"]
        if w.shape[0] != filters * 2 ** (num_down + 1):
            break
        num_down += 1
    first_block = 4 + 3 * num_down
    num_blocks = 0
    while f"model.{first_block + num_blocks}.conv_block.1.weight" in state_dict:
        num_blocks += 1
    dropout = f"model.{first_block}.conv_block.6.weight" in state_dict
    second = 6 if dropout else 5
    model = build_resnet_generator(
        filters=filters,
        num_blocks=num_blocks,
        num_downsampling=num_down,
        dropout_rate=0.5 if dropout else 0.0,
    )
    plan = Plan(model)
    plan.conv("stem_conv", "model.1")
    plan.instance_norm("model.2")
    for i in range(num_down):
        plan.conv(f"down{i}_conv", f"model.{4 + 3 * i}")
        plan.instance_norm(f"model.{5 + 3 * i}")
    for b in range(num_blocks):
        prefix = f"model.{first_block + b}.conv_block"
        plan.conv(f"block{b}_conv1", f"{prefix}.1")
        plan.instance_norm(f"{prefix}.2")
        plan.conv(f"block{b}_conv2", f"{prefix}.{second}")
        plan.instance_norm(f"{prefix}.{second + 1}")
    first_up = first_block + num_blocks
    for i in range(num_down):
        plan.conv_transpose(f"up{i}_conv", f"model.{first_up + 3 * i}")
        plan.instance_norm(f"model.{first_up + 3 * i + 1}")
    plan.conv("head_conv", f"model.{first_up + 3 * num_down + 1}")
    return plan


def plan_patchgan(state_dict, source="torch_patchgan"):
    """junyanz `NLayerDiscriminator` (norm=instance) -> `build_patchgan_discriminator`.

    `self.model` indices: 0 first conv (no norm); 3i - 1 the conv of layer i
    (norm at 3i); 3 n_layers + 2 the 1-channel head.
    """
    filters = _require(state_dict, "model.0.weight", source).shape[0]
    num_layers = 1
    while f"model.{3 * (num_layers + 1) - 1}.weight" in state_dict:
        num_layers += 1
    # The last found conv is the head (1 output channel): n_layers convs before it.
    num_layers -= 1
    if num_layers < 1:
        raise ConversionError(f"{source}: cannot find the PatchGAN layers in {list(state_dict)}.")
    model = build_patchgan_discriminator(filters=filters, num_layers=num_layers)
    plan = Plan(model)
    plan.conv("layer0_conv", "model.0")
    for i in range(1, num_layers + 1):
        plan.conv(f"layer{i}_conv", f"model.{3 * i - 1}")
        plan.instance_norm(f"model.{3 * i}")
    plan.conv("head_conv", f"model.{3 * num_layers + 2}")
    return plan


def plan_drn_c26(state_dict, source="torch_drn_c26", *, skip_head=False, num_classes=None):
    """fyu/drn / CyCADA `drn26` (DRN-C-26, `out_map=True`) -> `build_drn_c26`.

    Keys: conv1, bn1, layer{L}.{b}.conv1/bn1/conv2/bn2[/downsample.0/.1], fc.
    With `skip_head` the `fc` keys are ignored and our head keeps its init
    (e.g. the ImageNet `drn26-ddedf421.pth` with its 1000-class fc).
    """
    _require(state_dict, "conv1.weight", source)
    channels = [
        int(_require(state_dict, f"layer{layer}.0.conv1.weight", source).shape[0])
        for layer in range(1, 9)
    ]
    if skip_head:
        classes = num_classes or 19
    else:
        classes = int(_require(state_dict, "fc.weight", source).shape[0])
    model = drn.build_drn_c26(classes, channels=channels)
    plan = Plan(model)
    plan.conv("conv1", "conv1", bias=False)
    plan.batch_norm("bn1", "bn1")
    for layer, blocks in enumerate(drn.LAYERS, start=1):
        for b in range(blocks):
            name, prefix = f"layer{layer}_{b}", f"layer{layer}.{b}"
            plan.conv(f"{name}_conv1", f"{prefix}.conv1", bias=False)
            plan.batch_norm(f"{name}_bn1", f"{prefix}.bn1")
            plan.conv(f"{name}_conv2", f"{prefix}.conv2", bias=False)
            plan.batch_norm(f"{name}_bn2", f"{prefix}.bn2")
            if any(layer.name == f"{name}_downsample_conv" for layer in model.layers):
                plan.conv(f"{name}_downsample_conv", f"{prefix}.downsample.0", bias=False)
                plan.batch_norm(f"{name}_downsample_bn", f"{prefix}.downsample.1")
    if skip_head:
        plan.ignored.update(k for k in state_dict if k.startswith("fc."))
    else:
        plan.conv("fc", "fc")
    return plan


def _fcn8s_model(num_classes, widths, fc_width):
    return fcn8s.build_fcn8s(num_classes, widths=widths, fc_width=fc_width)


def plan_fcn8s(state_dict, source="torch_fcn8s"):
    """CyCADA `VGG16_FCN8s` -> `build_fcn8s`.

    Keys: vgg.{0,2,5,...,28} (VGG16 convs), vgg_head.0 (fc6), .3 (fc7), .6
    (score_fr), score_pool4, score_pool3, and the fixed bilinear buffers
    upscore2.w, upscore_pool4.w, upscore8.w ([C, C, k, k]).
    """
    widths = [
        int(_require(state_dict, f"vgg.{VGG16_CONV_INDICES[i]}.weight", source).shape[0])
        for i in (0, 2, 4, 7, 10)
    ]
    fc_width = int(_require(state_dict, "vgg_head.0.weight", source).shape[0])
    classes = int(_require(state_dict, "vgg_head.6.weight", source).shape[0])
    model = _fcn8s_model(classes, widths, fc_width)
    plan = Plan(model)
    for name, index in zip(_fcn8s_conv_names(), VGG16_CONV_INDICES):
        plan.conv(name, f"vgg.{index}")
    plan.conv("fc6", "vgg_head.0")
    plan.conv("fc7", "vgg_head.3")
    plan.conv("score_fr", "vgg_head.6")
    plan.conv("score_pool4", "score_pool4")
    plan.conv("score_pool3", "score_pool3")
    for layer in ("upscore2", "upscore_pool4", "upscore8"):
        plan.conv_transpose(layer, layer, bias=False, key="w")
    return plan


def plan_torchvision_vgg16(state_dict, source="torch_vgg16", *, num_classes=19):
    """torchvision `vgg16` (ImageNet, torch normalisation) -> FCN8s backbone and fc6/fc7.

    This is CyCADA's `load_base_weights`: features.N -> conv, classifier.0
    [4096, 25088] viewed as [4096, 512, 7, 7] -> fc6, classifier.3 -> fc7;
    classifier.6 (the 1000-way layer) is dropped; score and skip layers keep
    our init (score_fr random, skips zero).
    """
    widths = [
        int(_require(state_dict, f"features.{VGG16_CONV_INDICES[i]}.weight", source).shape[0])
        for i in (0, 2, 4, 7, 10)
    ]
    fc6 = _require(state_dict, "classifier.0.weight", source)
    fc_width = int(fc6.shape[0])
    model = _fcn8s_model(num_classes, widths, fc_width)
    plan = Plan(model)
    for name, index in zip(_fcn8s_conv_names(), VGG16_CONV_INDICES):
        plan.conv(name, f"features.{index}")
    c = widths[-1]

    def fc6_kernel(w):
        return conv_kernel(w.reshape(w.shape[0], c, 7, 7))

    def fc7_kernel(w):
        return conv_kernel(w.reshape(w.shape[0], w.shape[1], 1, 1))

    plan.layers["fc6"] = [("classifier.0.weight", fc6_kernel), ("classifier.0.bias", None)]
    plan.layers["fc7"] = [("classifier.3.weight", fc7_kernel), ("classifier.3.bias", None)]
    plan.ignored.update({"classifier.6.weight", "classifier.6.bias"})
    return plan


# ------------------------------------------------------------------ registry
TORCH_SOURCES = {
    "torch_cyclegan_resnet9": plan_cyclegan_resnet,
    "torch_patchgan": plan_patchgan,
    "torch_drn_c26": plan_drn_c26,
    "torch_fcn8s": plan_fcn8s,
    "torch_vgg16": plan_torchvision_vgg16,
}
SOURCES = ("keras_vgg16",) + tuple(TORCH_SOURCES)


def convert(source, input_path, *, num_classes=19, vgg_preprocessing="caffe", skip_head=False):
    """Converts `input_path` of kind `source` into our Keras model (in memory).

    Args:
      source: one of `SOURCES`.
      input_path: the official file (`.h5` / `.weights.h5` for keras_vgg16,
        a `torch.save` state dict for torch_*).
      num_classes: C for sources without a head (keras_vgg16, torch_vgg16,
        torch_drn_c26 with skip_head).
      vgg_preprocessing: see `vgg16_to_fcn8s` (keras_vgg16 only).
      skip_head: torch_drn_c26 only: ignore `fc.*` (ImageNet DRN).

    Returns:
      The keras.Model with the converted weights.

    Raises:
      ValueError: on an unknown source; ConversionError (a ValueError) when
        the weights do not fit, listing missing/unexpected keys and shapes.
    """
    if source not in SOURCES:
        raise ValueError(f"--source must be one of {SOURCES}. Received: {source!r}")
    if source == "keras_vgg16":
        weights = read_keras_vgg16(input_path)
        return vgg16_to_fcn8s(weights, num_classes=num_classes, vgg_preprocessing=vgg_preprocessing)
    state_dict = torch_reader.load_state_dict(input_path)
    kwargs = {}
    if source == "torch_drn_c26":
        kwargs = dict(skip_head=skip_head, num_classes=num_classes)
    elif source == "torch_vgg16":
        kwargs = dict(num_classes=num_classes)
    plan = TORCH_SOURCES[source](state_dict, f"{source} {input_path}", **kwargs)
    apply_plan(plan, state_dict, f"{source} {input_path}")
    return plan.model


def save_weights_atomic(model, output_path):
    """Writes `model.save_weights` to `output_path` via a temporary name + rename."""
    output_path = os.fspath(output_path)
    if not output_path.endswith(".weights.h5"):
        raise ValueError(f"--output must end in .weights.h5. Received: {output_path}")
    directory = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".weights.h5")
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        os.replace(tmp, output_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return output_path


def convert_file(source, input_path, output_path, **kwargs):
    """`convert` then `save_weights_atomic`; returns a short summary dict."""
    if not os.fspath(output_path).endswith(".weights.h5"):  # before the conversion work
        raise ValueError(f"--output must end in .weights.h5. Received: {output_path}")
    model = convert(source, input_path, **kwargs)
    save_weights_atomic(model, output_path)
    return {
        "source": source,
        "input": os.fspath(input_path),
        "output": os.fspath(output_path),
        "model": model.name,
        "parameters": int(model.count_params()),
    }
