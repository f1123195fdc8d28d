"""Networks used by MADAN: generators, discriminators and segmenters."""

from tf_madan.models.discriminator import build_feature_discriminator, build_patchgan_discriminator
from tf_madan.models.drn import build_drn_c26
from tf_madan.models.fcn8s import build_fcn8s
from tf_madan.models.generator import build_resnet_generator
from tf_madan.models.small_segmenter import build_small_segmenter

__all__ = [
    "build_drn_c26",
    "build_fcn8s",
    "build_feature_discriminator",
    "build_patchgan_discriminator",
    "build_resnet_generator",
    "build_small_segmenter",
]
