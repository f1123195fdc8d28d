"""JAX and PyTorch twins of a functional Keras image classifier, by a walk over its layers.

`jax_forward(model)` and `torch_forward(model)` return `forward(params, x) -> logits`:
the same function as `model(x, training=False)` before its final softmax, with `params`
a dict variable path -> array in Keras's own layouts (conv kernel HWIO, depthwise
kernel (H, W, C, multiplier), dense kernel (in, out)), so gradients and HVPs come back
in those layouts and compare entry by entry with Keras's. `x` is NHWC [B, H, W, C].

Inference mode: BatchNormalization uses its moving statistics, Dropout is the
identity. The layer types are those of `keras.applications.MobileNetV2`: InputLayer,
Rescaling, Conv2D, DepthwiseConv2D, BatchNormalization, ReLU (with max_value),
ZeroPadding2D (asymmetric), Add, GlobalAveragePooling2D, Dropout, Dense (linear, or
softmax on the output layer, which the twins leave out: they return the logits).
Another layer type, option or a non-final activation raises ValueError.

Padding "same" is TensorFlow's: for stride s the total padding is
max((ceil(n / s) - 1) s + (k - 1) d + 1 - n, 0), the odd pixel at the end (bottom,
right); a stride-2 "same" convolution of an even input is padded (0, 1), which JAX
takes as explicit pairs and PyTorch as a `functional.pad` before an unpadded conv.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import keras
import torch

_ACTIVATIONS = ("linear", "softmax")
# ReLU's max_value -> (JAX, PyTorch) op. The native ops take TensorFlow's derivative at the
# kinks, 0 at exactly 0 and 6, where jnp.clip takes 1/2 and torch.clamp 1: MobileNetV2 at
# its initialisation has many exact zeros (a depthwise window over ReLU zeros, BatchNorm
# beta 0), so another convention changes the gradient of those BatchNorm betas by ~50 %.
_RELU = {
    None: (jax.nn.relu, torch.nn.functional.relu),
    6.0: (jax.nn.relu6, torch.nn.functional.relu6),
}


@dataclasses.dataclass
class Step:
    """One layer call of the walk: ``kind`` applied to ``inputs`` gives ``output``."""

    kind: str
    name: str
    inputs: list
    output: int
    spec: dict


def same_padding(size, kernel, stride, dilation=1):
    """``(before, after)`` of TensorFlow's "same" padding along one spatial axis."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _conv_spec(layer, final):
    config = layer.get_config()
    if config.get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"Only channels_last is supported. Received: {layer.name}.")
    if config["activation"] != "linear":
        raise ValueError(f"Only linear convolutions are supported. Received: {layer.name}.")
    sizes = layer.input.shape[1:3]
    pads = [(0, 0), (0, 0)]
    if config["padding"] == "same":
        pads = [
            same_padding(n, k, s, d)
            for n, k, s, d in zip(
                sizes, config["kernel_size"], config["strides"], config["dilation_rate"]
            )
        ]
    return {
        "strides": tuple(config["strides"]),
        "dilation": tuple(config["dilation_rate"]),
        "pads": pads,
        "groups": config.get("groups", 1),
        "bias": config["use_bias"],
    }


def _relu_spec(layer, final):
    config = layer.get_config()
    if (
        config["negative_slope"] != 0
        or config["threshold"] != 0
        or config["max_value"] not in _RELU
    ):
        raise ValueError(
            f"Only ReLU() and ReLU(max_value=6) are supported. Received: {layer.name}."
        )
    return {"max_value": config["max_value"]}


def _dense_spec(layer, final):
    activation = keras.activations.serialize(layer.activation)
    activation = activation if isinstance(activation, str) else activation["config"]
    if activation not in _ACTIVATIONS or (activation == "softmax" and not final):
        raise ValueError(
            f"Dense layers must be linear (softmax only on the output). Received: {layer.name}."
        )
    return {"bias": layer.use_bias}


def _pool_spec(layer, final):
    if layer.keepdims or layer.data_format != "channels_last":
        raise ValueError(f"Only channels_last, keepdims=False pools. Received: {layer.name}.")
    return {}


SPECS = {
    "InputLayer": None,  # its output is the model's input: no step
    "Rescaling": lambda layer, final: {"scale": layer.scale, "offset": layer.offset},
    "Conv2D": _conv_spec,
    "DepthwiseConv2D": _conv_spec,
    "BatchNormalization": lambda layer, final: {"epsilon": layer.epsilon},
    "ReLU": _relu_spec,
    "ZeroPadding2D": lambda layer, final: {"pads": [tuple(p) for p in layer.padding]},
    "Add": lambda layer, final: {},
    "GlobalAveragePooling2D": _pool_spec,
    "Dropout": lambda layer, final: {},
    "Dense": _dense_spec,
}


def layer_plan(model):
    """``(input id, [Step], output id)`` of a single-input, single-output functional model.

    Tensors are keyed by ``id`` of their KerasTensor; steps follow ``model.layers``
    (Keras's topological order), each layer called once.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"Only single-input, single-output models. Received: {model.name}.")
    output = id(model.outputs[0])
    steps = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in SPECS or len(layer._inbound_nodes) != 1:
            raise ValueError(f"Layer {layer.name} ({kind}) has no twin or is shared.")
        if SPECS[kind] is None:
            continue
        node = layer._inbound_nodes[0]
        out = id(node.output_tensors[0])
        spec = SPECS[kind](layer, out == output)
        steps.append(Step(kind, layer.name, [id(t) for t in node.input_tensors], out, spec))
    return id(model.inputs[0]), steps, output


def _walk(model, ops, entry):
    start, steps, end = layer_plan(model)

    def forward(params, x):
        values = {start: entry(x)}
        for step in steps:
            inputs = [values[key] for key in step.inputs]
            values[step.output] = ops[step.kind](step, params, inputs)
        return values[end]

    return forward


def _batch_norm(step, p, x, shape):
    """Inference BatchNormalization, the statistics reshaped to broadcast as ``shape``."""
    scale = (
        p[f"{step.name}/gamma"] / (p[f"{step.name}/moving_variance"] + step.spec["epsilon"]) ** 0.5
    )
    shift = p[f"{step.name}/beta"] - p[f"{step.name}/moving_mean"] * scale
    return x * scale.reshape(shape) + shift.reshape(shape)


def _dense(step, p, x):
    y = x[0] @ p[f"{step.name}/kernel"]
    return y + p[f"{step.name}/bias"] if step.spec["bias"] else y


def _bias(step, p, y, shape):
    return y + p[f"{step.name}/bias"].reshape(shape) if step.spec["bias"] else y


# ---------------------------------------------------------------------------- JAX
def _jax_conv(step, p, x, kernel, groups):
    y = jax.lax.conv_general_dilated(
        x[0], kernel, step.spec["strides"], step.spec["pads"],
        rhs_dilation=step.spec["dilation"], dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )  # fmt: skip
    return _bias(step, p, y, (-1,))


def _jax_depthwise(step, p, x):
    kernel = p[f"{step.name}/kernel"]
    # (H, W, C, M) -> (H, W, 1, C M): output channel c M + m, as Keras orders it.
    height, width, channels, multiplier = kernel.shape
    kernel = kernel.reshape(height, width, 1, channels * multiplier)
    return _jax_conv(step, p, x, kernel, channels)


JAX_OPS = {
    "Rescaling": lambda step, p, x: x[0] * step.spec["scale"] + step.spec["offset"],
    "Conv2D": lambda step, p, x: _jax_conv(
        step, p, x, p[f"{step.name}/kernel"], step.spec["groups"]
    ),
    "DepthwiseConv2D": _jax_depthwise,
    "BatchNormalization": lambda step, p, x: _batch_norm(step, p, x[0], (-1,)),
    "ReLU": lambda step, p, x: _RELU[step.spec["max_value"]][0](x[0]),
    "ZeroPadding2D": lambda step, p, x: jnp.pad(x[0], [(0, 0), *step.spec["pads"], (0, 0)]),
    "Add": lambda step, p, x: sum(x[1:], x[0]),
    "GlobalAveragePooling2D": lambda step, p, x: jnp.mean(x[0], axis=(1, 2)),
    "Dropout": lambda step, p, x: x[0],
    "Dense": _dense,
}


def jax_forward(model):
    """``forward(params, x [B, H, W, C]) -> logits [B, classes]`` in JAX."""
    return _walk(model, JAX_OPS, lambda x: x)


# ------------------------------------------------------------------------ PyTorch
def _torch_conv(step, p, x, weight, groups):
    (top, bottom), (left, right) = step.spec["pads"]
    padding = (top, left)
    x = x[0]
    if (top, left) != (bottom, right):
        # Asymmetric "same" padding: PyTorch's conv pads both sides equally.
        x = torch.nn.functional.pad(x, (left, right, top, bottom))
        padding = 0
    bias = p[f"{step.name}/bias"] if step.spec["bias"] else None
    return torch.nn.functional.conv2d(
        x, weight, bias, step.spec["strides"], padding, step.spec["dilation"], groups
    )


def _torch_depthwise(step, p, x):
    kernel = p[f"{step.name}/kernel"]
    # (H, W, C, M) -> (C M, 1, H, W): output channel c M + m, as Keras orders it.
    height, width, channels, multiplier = kernel.shape
    weight = kernel.reshape(height, width, channels * multiplier).permute(2, 0, 1).unsqueeze(1)
    return _torch_conv(step, p, x, weight, channels)


def _torch_zero_padding(step, p, x):
    (top, bottom), (left, right) = step.spec["pads"]
    return torch.nn.functional.pad(x[0], (left, right, top, bottom))


TORCH_OPS = {
    "Rescaling": lambda step, p, x: x[0] * step.spec["scale"] + step.spec["offset"],
    "Conv2D": lambda step, p, x: _torch_conv(
        step, p, x, p[f"{step.name}/kernel"].permute(3, 2, 0, 1), step.spec["groups"]
    ),
    "DepthwiseConv2D": _torch_depthwise,
    "BatchNormalization": lambda step, p, x: _batch_norm(step, p, x[0], (-1, 1, 1)),
    "ReLU": lambda step, p, x: _RELU[step.spec["max_value"]][1](x[0]),
    "ZeroPadding2D": _torch_zero_padding,
    "Add": lambda step, p, x: sum(x[1:], x[0]),
    "GlobalAveragePooling2D": lambda step, p, x: x[0].mean(dim=(2, 3)),
    "Dropout": lambda step, p, x: x[0],
    "Dense": _dense,
}


def torch_forward(model):
    """``forward(params, x [B, H, W, C]) -> logits [B, classes]`` in PyTorch (NCHW inside)."""
    return _walk(model, TORCH_OPS, lambda x: x.permute(0, 3, 1, 2))
