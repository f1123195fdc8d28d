r"""Converts official weights into `.weights.h5` files our Keras models load.

Usage:
  python -m tf_madan.convert_weights --source=keras_vgg16 \
      --input=~/.keras/models/vgg16_weights_tf_dim_ordering_tf_kernels.h5 \
      --output=vgg16_fcn8s.weights.h5
  python -m tf_madan.train ... --init_checkpoint=vgg16_fcn8s.weights.h5

Sources: keras_vgg16 (legacy `.h5` of keras.applications.VGG16 or a Keras 3
`.weights.h5` of one) -> FCN8s-VGG16; torch_vgg16 (torchvision vgg16 .pth) ->
FCN8s-VGG16; torch_fcn8s (CyCADA VGG16_FCN8s) -> FCN8s; torch_drn_c26
(CyCADA / fyu/drn drn26, e.g. drn26_cycada_cyclegta2cityscapes.pth) ->
DRN-C-26; torch_cyclegan_resnet9 (CycleGAN/MADAN `*_net_G_*.pth`) -> ResNet
generator; torch_patchgan (`*_net_D_*.pth`) -> PatchGAN. PyTorch files are read
without torch (tf_madan/torch_reader.py). See docs/tf_madan_weights.md.
"""

import sys

from absl import app, flags

from tf_madan import convert_lib


def define_flags(flag_values=flags.FLAGS, sys_argv=None):
    """Defines this binary's flags on `flag_values` (call under `__main__` or in tests)."""
    del sys_argv
    flags.DEFINE_enum(
        "source", None, list(convert_lib.SOURCES), "Kind of input file.", flag_values=flag_values
    )
    flags.DEFINE_string("input", None, "Official weights file.", flag_values=flag_values)
    flags.DEFINE_string("output", None, "Output OUT.weights.h5.", flag_values=flag_values)
    flags.DEFINE_integer(
        "num_classes",
        19,
        "Classes of the new head (keras_vgg16, torch_vgg16, torch_drn_c26 --skip_head).",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "vgg_preprocessing",
        "caffe",
        ["caffe", "none"],
        "keras_vgg16: fold Keras VGG16's Caffe input transform (BGR, 0-255, mean) into "
        "conv1_1 so the model takes ImageNet-normalised RGB ('caffe'), or copy as is ('none').",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        "skip_head",
        False,
        "torch_drn_c26: ignore the fc head (e.g. the ImageNet drn26-ddedf421.pth).",
        flag_values=flag_values,
    )
    for name in ("source", "input", "output"):
        flags.mark_flag_as_required(name, flag_values=flag_values)


def main(argv, flag_values=flags.FLAGS):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        summary = convert_lib.convert_file(
            flag_values.source,
            flag_values.input,
            flag_values.output,
            num_classes=flag_values.num_classes,
            vgg_preprocessing=flag_values.vgg_preprocessing,
            skip_head=flag_values.skip_head,
        )
    except (OSError, ValueError) as e:  # ConversionError, UnsafeCheckpointError included
        # A one-paragraph error naming the file and keys, without a traceback.
        sys.exit(f"convert_weights: {e}")
    print(
        f"{summary['source']}: {summary['input']} -> {summary['output']} "
        f"({summary['model']}, {summary['parameters']:,} parameters)"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
