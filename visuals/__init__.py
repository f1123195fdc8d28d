"""Saliency, Grad-CAM++ and per-class Grad-CAM maps with tf-keras-vis (Keras 3 functional models)."""

from visuals.attribution import (
    classification_maps,
    find_last_conv_layer,
    segmentation_class_gradcam,
)
from visuals.plots import save_classification_grid, save_segmentation_grid

__all__ = [
    "classification_maps",
    "find_last_conv_layer",
    "save_classification_grid",
    "save_segmentation_grid",
    "segmentation_class_gradcam",
]
