"""Attribution maps for the project's classifiers and segmenters, computed with tf-keras-vis.

tf-keras-vis 0.8.7 works with Keras 3 functional models (it clones the model and reads
intermediate layer outputs), so subclassed models are rejected with a clear error. Scores are taken
on logits (the final softmax, if any, is replaced by a linear activation on the clone).

References:
  Simonyan et al., "Deep Inside Convolutional Networks" (vanilla saliency), 2014.
  Chattopadhyay et al., "Grad-CAM++", WACV 2018.
  Selvaraju et al., "Grad-CAM", ICCV 2017.
"""

import keras
import numpy as np
import tensorflow as tf
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
from tf_keras_vis.saliency import Saliency
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
from tf_keras_vis.utils.scores import CategoricalScore


def _require_functional(model):
    """The model as a functional `keras.Model` (a Sequential is rewrapped: tf-keras-vis needs
    `output_names`, which Keras 3 Sequential models lack)."""
    if not isinstance(model, keras.Model) or not hasattr(model, "inputs") or model.inputs is None:
        raise ValueError(
            f"Attribution maps need a functional keras.Model (inputs/outputs graph); "
            f"received {type(model).__name__}."
        )
    if isinstance(model, keras.Sequential):
        return keras.Model(model.inputs, model.outputs, name=model.name)
    return model


def find_last_conv_layer(model):
    """Name of the last layer with a 4-D output [B, H, W, C] of spatial size > 1 (the Grad-CAM layer)."""
    model = _require_functional(model)
    for layer in reversed(model.layers):
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if (
            len(shape) == 4
            and (shape[1] is None or shape[1] > 1)
            and not isinstance(layer, keras.layers.InputLayer)
        ):
            return layer.name
    raise ValueError(f"Model {model.name!r} has no layer with a 4-D spatial output for Grad-CAM.")


def classification_maps(model, images, labels, *, layer=None, smooth_samples=0):
    """Vanilla (or SmoothGrad) saliency and Grad-CAM++ maps for the given labels.

    Args:
      model: functional classifier, images [N, H, W, C] -> logits [N, K].
      images: float array [N, H, W, C] as the model expects it.
      labels: int array [N], the class each map explains.
      layer: Grad-CAM++ layer name (default: the last 4-D layer).
      smooth_samples: SmoothGrad samples (0: vanilla gradient).

    Returns:
      dict with `saliency` and `gradcam_plus_plus`, each float32 [N, H, W] normalised to [0, 1].
    """
    model = _require_functional(model)
    images = np.asarray(images, np.float32)
    labels = [int(v) for v in np.asarray(labels).reshape(-1)]
    if images.ndim != 4 or len(labels) != images.shape[0]:
        raise ValueError(
            f"images must be [N, H, W, C] with one label each. Received images {images.shape}, "
            f"{len(labels)} labels"
        )
    score = CategoricalScore(labels)
    saliency = Saliency(model, model_modifier=ReplaceToLinear(), clone=True)
    saliency_map = saliency(score, images, smooth_samples=smooth_samples, smooth_noise=0.1)
    gradcam = GradcamPlusPlus(model, model_modifier=ReplaceToLinear(), clone=True)
    cam = gradcam(score, images, penultimate_layer=layer or find_last_conv_layer(model))
    return {
        "saliency": np.asarray(saliency_map, np.float32).reshape(images.shape[:3]),
        "gradcam_plus_plus": np.asarray(cam, np.float32).reshape(images.shape[:3]),
    }


def segmentation_class_gradcam(model, images, class_ids, *, layer=None):
    """Per-class Grad-CAM of a segmenter: which regions drive the mean logit of each class.

    The score of class c for image n is the mean of its logit over the pixels the model labels c
    (over all pixels when it labels none), so the map explains the predicted region.

    Args:
      model: functional segmenter, images [N, H, W, 3] -> logits [N, h, w, K].
      images: float array [N, H, W, 3] normalised as the model expects.
      class_ids: list of train ids to explain.
      layer: Grad-CAM layer name (default: the last 4-D layer before the logits).

    Returns:
      float32 [N, len(class_ids), H, W] in [0, 1].
    """
    model = _require_functional(model)
    images = np.asarray(images, np.float32)
    logits = model(images, training=False)
    predicted = tf.argmax(logits, axis=-1)
    if layer is None:
        candidates = [
            lay.name for lay in model.layers if len(getattr(lay.output, "shape", ())) == 4
        ]
        # The last 4-D layer is the logits themselves; Grad-CAM needs the features before them.
        if len(candidates) < 2:
            raise ValueError(f"Segmenter {model.name!r} has no feature layer before its logits.")
        layer = candidates[-2]
    gradcam = Gradcam(model, clone=True)
    maps = []
    for class_id in class_ids:
        mask = tf.cast(tf.equal(predicted, class_id), tf.float32)
        any_pixel = tf.reduce_sum(mask, axis=[1, 2], keepdims=True) > 0
        weights = tf.where(any_pixel, mask, tf.ones_like(mask))
        weights = weights / tf.reduce_sum(weights, axis=[1, 2], keepdims=True)

        def score(output, weights=weights, class_id=class_id):
            return tf.reduce_sum(output[..., class_id] * weights, axis=[1, 2])

        cam = gradcam(score, images, penultimate_layer=layer)
        maps.append(np.asarray(cam, np.float32).reshape(images.shape[:3]))
    return np.stack(maps, axis=1)
