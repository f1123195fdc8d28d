"""Attribution maps: shapes, ranges, that they point at the evidence, and the error paths."""

import keras
import numpy as np
import pytest

import visuals


def _evidence_classifier():
    """Class 1's logit is the sum of the top-left quadrant; class 0's is constant."""
    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(
        1, 1, use_bias=False, kernel_initializer="ones", name="features"
    )(inputs)
    quadrant = keras.layers.Cropping2D(((0, 4), (0, 4)), name="quadrant")(features)
    logits = keras.layers.Dense(2, name="logits")(keras.layers.Flatten()(quadrant))
    model = keras.Model(inputs, logits)
    kernel = np.zeros((16, 2), np.float32)
    kernel[:, 1] = 1.0
    model.get_layer("logits").set_weights([kernel, np.zeros(2, np.float32)])
    return model


def test_classification_saliency_marks_the_evidence_region():
    model = _evidence_classifier()
    images = np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype(np.float32)
    maps = visuals.classification_maps(model, images, [1, 1], layer="quadrant")
    assert maps["saliency"].shape == (2, 8, 8) and maps["gradcam_plus_plus"].shape == (2, 8, 8)
    saliency = maps["saliency"]
    assert saliency.min() >= 0.0 and saliency.max() <= 1.0 + 1e-6
    # The gradient of class 1 is 1 inside the quadrant and 0 outside.
    assert saliency[:, :4, :4].min() > 0.99 and saliency[:, 4:, :].max() < 1e-6


def test_find_last_conv_layer_and_errors():
    model = _evidence_classifier()
    assert visuals.find_last_conv_layer(model) == "quadrant"
    dense_only = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no layer with a 4-D spatial output"):
        visuals.find_last_conv_layer(dense_only)

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="need a functional keras.Model"):
        visuals.classification_maps(Subclassed(), np.zeros((1, 8, 8, 1)), [0])
    with pytest.raises(ValueError, match="one label each"):
        visuals.classification_maps(model, np.zeros((2, 8, 8, 1)), [0])


def test_segmentation_gradcam_per_class(tmp_path):
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="features")(inputs)
    logits = keras.layers.Conv2D(3, 1, name="logits")(features)
    model = keras.Model(inputs, logits)
    images = np.random.default_rng(1).uniform(size=(2, 8, 8, 3)).astype(np.float32)
    maps = visuals.segmentation_class_gradcam(model, images, [0, 2])
    assert maps.shape == (2, 2, 8, 8) and maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6
    path = visuals.save_segmentation_grid(str(tmp_path / "seg.png"), images, maps, ["road", "car"])
    assert open(path, "rb").read(4) == b"\x89PNG"
    classification = visuals.save_classification_grid(
        str(tmp_path / "cls.png"),
        images[..., :1],
        {"saliency": maps[:, 0]},
        [0, 1],
        predictions=[0, 0],
    )
    assert open(classification, "rb").read(4) == b"\x89PNG"
