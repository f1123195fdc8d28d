"""The `visuals.explain` binary's library entry points."""

import keras
import pytest

from visuals import explain_lib as explain


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
    model = explain.load_model(_digits_cnn(str(tmp_path / "cnn.keras")))
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
        explain.load_model(str(tmp_path / "missing.h5"))


def test_binary_writes_the_png(tmp_path):
    import os
    import subprocess
    import sys

    model = _digits_cnn(str(tmp_path / "cnn.keras"))
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "visuals.explain", f"--model={model}", "--dataset=digits",
         "--num_images=2", f"--out={out}"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "attribution_digits.png").read_bytes()[:4] == b"\x89PNG"
