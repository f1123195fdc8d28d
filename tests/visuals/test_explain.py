"""The `visuals.explain` binary's library entry points."""

import keras
import pytest

from visuals import explain


def _digits_cnn(path):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    model.save(path)
    return path


def test_classifier_png_from_a_keras_file(tmp_path):
    model = explain._load_model(_digits_cnn(str(tmp_path / "cnn.keras")))
    path = explain.explain_classifier(
        model,
        "digits",
        data_dir=None,
        split="test",
        normalize="unit",
        num_images=3,
        out=str(tmp_path / "out"),
    )
    assert path.endswith("attribution_digits.png")
    assert open(path, "rb").read(4) == b"\x89PNG"


def test_bad_model_path(tmp_path):
    with pytest.raises(
        ValueError, match=r"--model must be an existing .keras file. Received: '.*missing.h5'"
    ):
        explain._load_model(str(tmp_path / "missing.h5"))
