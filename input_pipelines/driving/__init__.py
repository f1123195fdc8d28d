"""Driving-scene segmentation data: GTA5, SYNTHIA, Cityscapes, BDD100K (MADAN).

All readers produce the 19 Cityscapes train ids with 255 = ignore.
"""

from input_pipelines.driving.labels import (
    CITYSCAPES_PALETTE,
    CLASSES_16,
    IGNORE_LABEL,
    NUM_CLASSES,
    TRAIN_ID_NAMES,
    colorize,
)
from input_pipelines.driving.metrics import MeanIoU
from input_pipelines.driving.pipeline import build_dataset, build_multi_domain_dataset
from input_pipelines.driving.preprocessing import denormalize
from input_pipelines.driving.readers import DATASET_NAMES, list_examples

__all__ = [
    "CITYSCAPES_PALETTE",
    "CLASSES_16",
    "DATASET_NAMES",
    "IGNORE_LABEL",
    "NUM_CLASSES",
    "TRAIN_ID_NAMES",
    "MeanIoU",
    "build_dataset",
    "build_multi_domain_dataset",
    "colorize",
    "denormalize",
    "list_examples",
]
