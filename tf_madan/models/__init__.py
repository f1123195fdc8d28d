"""Networks used by MADAN: generators, discriminators and segmenters."""

from tf_madan.models.small_segmenter import build_small_segmenter

__all__ = ["build_small_segmenter"]
