"""MADAN: Multi-source Domain Adaptation for Semantic Segmentation (Keras 3).

Reference: Zhao et al., "Multi-source Domain Adaptation for Semantic
Segmentation", NeurIPS 2019 (arXiv 1910.12181).

  tf_madan.models           generator, PatchGAN / feature discriminators, FCN8s, DRN-26, small segmenter
  tf_madan.losses           pure, keyword-only loss functions
  MadanGAN                  DAIG + ADA pixel-level train step (any M >= 1 sources)
  SegmenterTrainer          source-only / adapted supervised training and FLA
  tf_madan.stages           the schedule as data: the table of stages and results rows
  tf_madan.stage_runner     the one stage runner (each stage inside tf_runtime.open_run)
  tf_madan.layout           the run folder: paths, markers and their producers, loading nets
  tf_madan.report           results tables, FCN-scores, seed aggregation (percent)
  tf_madan.train_lib        validation and `train_and_evaluate` (one seed or several)
  tf_madan.demo.run_demo    3-4 minute CPU demo
"""

# tf_runtime first: it silences TensorFlow's start-up lines before TensorFlow is imported.
import tf_runtime  # noqa: F401  # isort: skip

from tf_madan.madan_gan import MadanGAN

# Registers the custom layers (BilinearUpsample, ...) so that `keras.models.load_model` of a
# MADAN segmenter or generator `.keras` file works after a plain `import tf_madan`.
from tf_madan.models import layers as _layers  # noqa: F401
from tf_madan.segmentation_model import SegmenterTrainer

__all__ = ["MadanGAN", "SegmenterTrainer"]
