"""Segmenter initialisation from ImageNet weights (`config.segmenter.init`).

`init="imagenet"` on the FCN8s segmenter loads Keras's ImageNet VGG16
(the file `keras.applications.VGG16(weights="imagenet")` loads, taken from
the Keras cache or downloaded into it by `keras.utils.get_file` with Keras's
URL and hash when online) and converts it in memory with
`convert_lib.vgg16_to_fcn8s` (spec §2.3: conv1_1..conv5_3 copied, fc6/fc7
from fc1/fc2, zero skips). Offline without the cached file it fails with a
message naming the file to fetch and the command that converts it.
"""

import os

import keras

from tf_madan import convert_lib

INITS = ("random", "imagenet")
VGG16_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
VGG16_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
    "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
)
VGG16_MD5 = "64373286793e3c8b2b4e3219cbf3544b"


def keras_cache_dir():
    """`$KERAS_HOME` (read now) or Keras's default `~/.keras`."""
    return os.environ.get("KERAS_HOME") or os.path.expanduser(os.path.join("~", ".keras"))


def imagenet_vgg16_path():
    """Path of the ImageNet VGG16 file: the cached one, else downloaded into the cache.

    Raises:
      RuntimeError: when the file is not cached and cannot be downloaded,
        saying which file to fetch, where to put it and how to convert it.
    """
    cache = keras_cache_dir()
    cached = os.path.join(cache, "models", VGG16_FILE)
    if os.path.isfile(cached):
        return cached
    try:
        return keras.utils.get_file(
            VGG16_FILE,
            VGG16_URL,
            cache_subdir="models",
            file_hash=VGG16_MD5,
            cache_dir=cache,
        )
    except Exception as e:  # noqa: BLE001 - keras wraps URL/HTTP errors in Exception
        raise RuntimeError(
            "config.segmenter.init='imagenet' needs Keras's ImageNet VGG16 file "
            f"{VGG16_FILE}, which is not in the Keras cache ({cached}) and could not be "
            f"downloaded ({e}). On a machine with network access fetch\n  {VGG16_URL}\n"
            f"and either copy it to {cached}, or convert it once and pass the result:\n"
            f"  python -m tf_madan.convert_weights --source=keras_vgg16 --input={VGG16_FILE} "
            "--output=vgg16_fcn8s.weights.h5\n"
            "  ... --init_checkpoint=vgg16_fcn8s.weights.h5 (with config.segmenter.init='random')"
        ) from e


def initialize_segmenter(segmenter, config):
    """Initialises `segmenter` in place as `config.segmenter.init` says.

    Args:
      segmenter: the segmenter built by `builders.build_segmenter(config)`.
      config: experiment config; reads `config.segmenter.name`,
        `config.segmenter.init` ("random" = keep the builder's init,
        "imagenet" = ImageNet VGG16 into FCN8s), `config.num_classes`, and
        `config.segmenter.get("vgg_preprocessing", "caffe")`.

    Returns:
      `segmenter` (same object).

    Raises:
      ValueError: on an unknown init, or "imagenet" with a segmenter that is
        not fcn8s / with an init_checkpoint also set.
      RuntimeError: offline without the cached VGG16 file (see
        `imagenet_vgg16_path`).
    """
    seg = config.segmenter
    init = seg.get("init", "random") or "random"
    if init not in INITS:
        raise ValueError(f"config.segmenter.init must be one of {INITS}. Received: {init!r}")
    if init == "random":
        return segmenter
    if seg.name != "fcn8s":
        raise ValueError(
            "config.segmenter.init='imagenet' is for the FCN8s-VGG16 segmenter. Received: "
            f"config.segmenter.name={seg.name!r}"
        )
    if seg.get("init_checkpoint"):
        raise ValueError(
            "Set either config.segmenter.init='imagenet' or --init_checkpoint, not both. "
            f"Received: init_checkpoint={seg.init_checkpoint!r}"
        )
    if seg.get("fc_width", 4096) != 4096:
        raise ValueError(
            "config.segmenter.init='imagenet' needs fc_width=4096 (VGG16's fc1/fc2). "
            f"Received: fc_width={seg.fc_width}"
        )
    path = imagenet_vgg16_path()
    convert_lib.vgg16_to_fcn8s(
        convert_lib.read_keras_vgg16(path),
        vgg_preprocessing=seg.get("vgg_preprocessing", "caffe"),
        model=segmenter,
    )
    return segmenter
