"""Keras VGG16 -> FCN8s weights (conv1_1..conv5_3 copied, fc1/fc2 -> fc6/fc7).

Keras's ImageNet VGG16 expects Caffe inputs (BGR, 0-255, mean-subtracted) while our segmenters
take RGB normalised by the ImageNet mean/std, so by default the input transform is folded into
conv1_1 (`vgg_preprocessing="caffe"`); `"none"` copies conv1_1 as is. Used by
`tf_madan.convert_lib` (the `keras_vgg16` source) and `tf_madan.pretrained`.
"""

import os

import numpy as np

from tf_madan import normalization
from tf_madan.models import fcn8s

# Caffe VGG16 channel means, BGR order (keras.applications.vgg16.preprocess_input).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


class ConversionError(ValueError):
    """The source weights do not fit the target network."""


def _fcn8s_conv_names():
    return [
        f"conv{b}_{r}"
        for b, (_, repeats) in enumerate(fcn8s.VGG16_BLOCKS, start=1)
        for r in range(1, repeats + 1)
    ]


# --------------------------------------------------------------- Keras VGG16
def fold_caffe_preprocessing(kernel, bias):
    """Folds Keras VGG16's Caffe input transform into conv1_1.

    Keras VGG16 sees x_bgr = 255 * rgb[::-1] - CAFFE_MEAN_BGR; our segmenter
    sees z = (rgb - mean) / std (RGB, ImageNet mean/std). With
    rgb = z * std + mean, x_j = 255 std_{2-j} z_{2-j} + (255 mean_{2-j} - m_j):
    the kernel takes channel 2-c scaled by 255 std_c, and the constant moves
    into the bias. (The 100-px zero pad of z then stands for the mean pixel,
    255 mean - m, within 0.5 grey levels of Caffe's zero.)

    Args:
      kernel: [3, 3, 3 (BGR), O] conv1_1 kernel of Keras VGG16.
      bias: [O].

    Returns:
      (kernel [3, 3, 3 (RGB), O], bias [O]) for ImageNet-normalised RGB.
    """
    std = np.asarray(normalization.IMAGENET_STD, np.float64)
    mean = np.asarray(normalization.IMAGENET_MEAN, np.float64)
    kernel = np.asarray(kernel, np.float64)
    rgb_kernel = kernel[:, :, ::-1, :] * (255.0 * std)[None, None, :, None]
    shift_bgr = 255.0 * mean[::-1] - np.asarray(CAFFE_MEAN_BGR)
    new_bias = np.asarray(bias, np.float64) + np.einsum("hwio,i->o", kernel, shift_bgr)
    return rgb_kernel.astype(np.float32), new_bias.astype(np.float32)


VGG16_LAYERS = tuple(
    f"block{b}_conv{r}"
    for b, (_, n) in enumerate(fcn8s.VGG16_BLOCKS, start=1)
    for r in range(1, n + 1)
) + ("fc1", "fc2")


def read_keras_vgg16(path):
    """Reads the VGG16 layers FCN8s needs from a Keras weights file, with h5py.

    Accepts the legacy `.h5` that `keras.applications.VGG16(weights="imagenet")`
    caches (`vgg16_weights_tf_dim_ordering_tf_kernels.h5`: root attribute
    `layer_names`, one group per layer with `weight_names`; also a full-model
    `.h5` with a `model_weights` group) and a Keras 3 `.weights.h5` of a
    `keras.applications.VGG16` model (`layers/<auto name>/vars/{0,1}`, the
    layer name in the `vars` group's `name` attribute). Reading the arrays
    directly avoids building the 138M-parameter VGG16.

    Returns:
      {layer name: [kernel, bias]} for block1_conv1..block5_conv3, fc1, fc2.

    Raises:
      FileNotFoundError / ConversionError naming the file and what is missing.
    """
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--input {path} not found.")
    weights = {}
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            if "layer_names" in group.attrs:
                for raw in group.attrs["layer_names"]:
                    name = raw.decode() if isinstance(raw, bytes) else str(raw)
                    names = group[name].attrs.get("weight_names", [])
                    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
                    if name in VGG16_LAYERS:
                        weights[name] = [np.asarray(group[name][n]) for n in names]
            elif "layers" in f:
                for key in f["layers"]:
                    item = f["layers"][key]
                    if "vars" not in item:
                        continue
                    name = item["vars"].attrs.get("name", key)
                    name = name.decode() if isinstance(name, bytes) else str(name)
                    if name in VGG16_LAYERS:
                        variables = item["vars"]
                        weights[name] = [
                            np.asarray(variables[str(i)]) for i in range(len(variables))
                        ]
            else:
                raise ConversionError(f"--input {path}: not a Keras weights file.")
    except OSError as e:
        raise ConversionError(f"--input {path}: cannot be read as HDF5 ({e}).") from e
    absent = [n for n in VGG16_LAYERS if n not in weights]
    if absent:
        hint = " (a `notop` file lacks fc1/fc2, which FCN8s needs)" if "fc1" in absent else ""
        raise ConversionError(f"--input {path}: no VGG16 layers {absent}{hint}.")
    return weights


def vgg16_model_weights(vgg):
    """{layer name: [kernel, bias]} of an in-memory `keras.applications.VGG16`."""
    names = {layer.name for layer in vgg.layers}
    absent = [n for n in VGG16_LAYERS if n not in names]
    if absent:
        raise ConversionError(f"the VGG16 model lacks layers {absent} (include_top=True needed).")
    return {n: vgg.get_layer(n).get_weights() for n in VGG16_LAYERS}


def vgg16_to_fcn8s(vgg_weights, *, num_classes=19, vgg_preprocessing="caffe", model=None):
    """Initialises FCN8s-VGG16 from Keras VGG16 weights.

    Args:
      vgg_weights: {layer name: [kernel, bias]} (`read_keras_vgg16` or
        `vgg16_model_weights`).
      num_classes: C of a newly built FCN8s (when `model` is None).
      vgg_preprocessing: "caffe" folds Keras VGG16's BGR/0-255/mean input
        transform into conv1_1 so the model takes ImageNet-normalised RGB
        (our data pipeline); "none" copies conv1_1 unchanged.
      model: an FCN8s-VGG16 (`build_fcn8s`, fc_width 4096) to write into; a
        new one is built when None.

    Returns:
      The FCN8s keras.Model: conv1_1..conv5_3 copied, fc6 = fc1 reshaped to
      [7, 7, 512, 4096], fc7 = fc2 as [1, 1, 4096, 4096]; score_fr keeps its
      random init, score_pool4/score_pool3 zero, upsampling bilinear (spec §2.3).
    """
    if vgg_preprocessing not in ("caffe", "none"):
        raise ValueError(
            f"vgg_preprocessing must be 'caffe' or 'none'. Received: {vgg_preprocessing!r}"
        )
    if model is None:
        model = fcn8s.build_fcn8s(num_classes)
    for b, r in _vgg_block_pairs():
        kernel, bias = vgg_weights[f"block{b}_conv{r}"]
        if (b, r) == (1, 1) and vgg_preprocessing == "caffe":
            kernel, bias = fold_caffe_preprocessing(kernel, bias)
        _set(model, f"conv{b}_{r}", [kernel, bias])
    fc1_kernel, fc1_bias = vgg_weights["fc1"]
    fc2_kernel, fc2_bias = vgg_weights["fc2"]
    if fc1_kernel.shape[0] != 7 * 7 * 512:
        raise ConversionError(
            f"fc1 kernel {fc1_kernel.shape} is not VGG16's 25088 x 4096 (224 x 224 input)."
        )
    _set(model, "fc6", [fc1_kernel.reshape(7, 7, 512, -1), fc1_bias])
    _set(model, "fc7", [fc2_kernel.reshape(1, 1, *fc2_kernel.shape), fc2_bias])
    return model


def _vgg_block_pairs():
    return [(b, r) for b, (_, n) in enumerate(fcn8s.VGG16_BLOCKS, start=1) for r in range(1, n + 1)]


def _set(model, layer_name, arrays):
    layer = model.get_layer(layer_name)
    for array, variable in zip(arrays, layer.weights):
        if tuple(array.shape) != tuple(variable.shape):
            raise ConversionError(
                f"{layer_name}/{variable.name}: source shape {tuple(array.shape)} != "
                f"{tuple(variable.shape)}"
            )
    layer.set_weights(arrays)
