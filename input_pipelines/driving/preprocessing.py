"""Per-example preprocessing ops for segmentation: image and label transformed together.

Every op works eagerly and inside `Dataset.map`, takes an image [H, W, 3] (any
numeric dtype) and a label [H, W] (int32 train ids, 255 = ignore), and resizes labels
with nearest neighbour so no new ids appear. Random ops take a stateless seed (int
tensor [2]) so that a pipeline with a fixed seed is reproducible.
"""

import tensorflow as tf

from input_pipelines.driving import labels as labels_lib

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATIONS = ("segmenter", "generator", None)


def parse_size(size, name):
    """Returns (height, width) from an int or pair; raises ValueError naming `name`."""
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(
            f"{name} must be a positive int or (height, width). Received: {name}={size}"
        )
    return size


def resize_shorter(image, label, size, method="bilinear"):
    """Resizes so that the shorter side equals `size`, keeping the aspect ratio.

    Args:
      image: [H, W, 3].
      label: int32 [H, W].
      size: target length of the shorter side.
      method: image interpolation ("bilinear", "bicubic", ...); labels use nearest.

    Returns:
      (float32 image [H', W', 3] in the input's value range, int32 label [H', W']).
    """
    if int(size) <= 0:
        raise ValueError(f"resize_shorter must be positive. Received: size={size}")
    shape = tf.cast(tf.shape(label), tf.float64)
    scale = tf.cast(size, tf.float64) / tf.reduce_min(shape)
    new_size = tf.cast(tf.round(shape * scale), tf.int32)
    image = tf.image.resize(tf.cast(image, tf.float32), new_size, method=method)
    label = tf.image.resize(label[..., None], new_size, method="nearest")[..., 0]
    return image, label


def random_crop(image, label, crop_size, seed):
    """Crops the same random window from image and label.

    Inputs smaller than the crop are first padded at the bottom/right (image with 0,
    label with 255 = ignore).

    Args:
      image: [H, W, 3].
      label: int32 [H, W].
      crop_size: int or (height, width).
      seed: int tensor [2], stateless seed.

    Returns:
      (image [crop_h, crop_w, 3], label int32 [crop_h, crop_w]).
    """
    crop_h, crop_w = parse_size(crop_size, "crop_size")
    height, width = tf.shape(label)[0], tf.shape(label)[1]
    pad_h, pad_w = tf.maximum(crop_h - height, 0), tf.maximum(crop_w - width, 0)
    image = tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]])
    label = tf.pad(label, [[0, pad_h], [0, pad_w]], constant_values=labels_lib.IGNORE_LABEL)
    max_offset = tf.stack([height + pad_h - crop_h, width + pad_w - crop_w]) + 1
    offset = tf.random.stateless_uniform([2], seed, minval=0, maxval=tf.int32.max, dtype=tf.int32)
    offset = offset % max_offset
    image = tf.slice(image, [offset[0], offset[1], 0], [crop_h, crop_w, -1])
    label = tf.slice(label, offset, [crop_h, crop_w])
    image.set_shape([crop_h, crop_w, image.shape[-1]])
    label.set_shape([crop_h, crop_w])
    return image, label


def random_flip(image, label, seed):
    """Flips image and label left-right together with probability 0.5.

    Args:
      image: [H, W, 3].
      label: int32 [H, W].
      seed: int tensor [2], stateless seed.

    Returns:
      (image, label) of the input shapes.
    """
    flip = tf.random.stateless_uniform([], seed) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    label = tf.cond(flip, lambda: tf.reverse(label, [1]), lambda: label)
    return image, label


def normalize(image, mode):
    """Scales a [0, 255] image for a network.

    Args:
      image: [..., 3] with values in [0, 255].
      mode: "generator" -> [-1, 1] (CycleGAN); "segmenter" -> ImageNet mean/std on
        [0, 1]; None -> float32 in [0, 255].

    Returns:
      float32 tensor of the input shape.
    """
    image = tf.cast(image, tf.float32)
    if mode == "generator":
        return image / 127.5 - 1.0
    if mode == "segmenter":
        return (image / 255.0 - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)
    if mode is None:
        return image
    raise ValueError(
        f"normalization must be one of {NORMALIZATIONS}. Received: normalization={mode!r}"
    )


def denormalize(image, mode):
    """Inverts `normalize`: returns float32 values in [0, 255]."""
    image = tf.cast(image, tf.float32)
    if mode == "generator":
        return (image + 1.0) * 127.5
    if mode == "segmenter":
        return (image * tf.constant(IMAGENET_STD) + tf.constant(IMAGENET_MEAN)) * 255.0
    if mode is None:
        return image
    raise ValueError(
        f"normalization must be one of {NORMALIZATIONS}. Received: normalization={mode!r}"
    )


def restrict_classes(label, class_subset):
    """Sets train ids outside `class_subset` (None or "16") to 255."""
    if class_subset is None:
        return label
    table = tf.constant(labels_lib.subset_table(class_subset))
    return tf.gather(table, label)
