"""Conversions between the generator's [-1, 1] images and the segmenter's input.

The driving pipeline's `normalization="generator"` maps uint8 x to x / 127.5 - 1
and `"segmenter"` to (x / 255 - ImageNet mean) / ImageNet std. The official
MADAN code fed [-1, 1] images to its DSC network (spec §6.1.1); these helpers
renormalise instead.
"""

import tensorflow as tf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def generator_to_segmenter(images):
    """[-1, 1] float [B, H, W, 3] -> ImageNet-normalised float [B, H, W, 3]."""
    unit = (images + 1.0) * 0.5
    return (unit - tf.constant(IMAGENET_MEAN, images.dtype)) / tf.constant(
        IMAGENET_STD, images.dtype
    )


def segmenter_to_generator(images):
    """ImageNet-normalised float [B, H, W, 3] -> [-1, 1] float [B, H, W, 3]."""
    unit = images * tf.constant(IMAGENET_STD, images.dtype) + tf.constant(
        IMAGENET_MEAN, images.dtype
    )
    return unit * 2.0 - 1.0


def generator_to_uint8(images):
    """[-1, 1] float [B, H, W, 3] -> uint8 [B, H, W, 3] (for PNGs and TensorBoard)."""
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0, 255), tf.uint8)
