"""The multiply-add count behind the HVP floors (benchmarks/hessian_common.py)."""

import importlib.util
import pathlib

import keras
import pytest

PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "hessian_common.py"


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("hessian_common", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_linear_layer_macs_counts_eight_passes_past_the_first_layer(common):
    image = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv")(image)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(4, name="dense")(x)
    counts = common.linear_layer_macs(keras.Model(image, logits), 5, batch_ks=(1, 4))
    conv = 5 * 6 * 6 * 3 * 3 * 2 * 3  # batch x positions x kernel x fan-in x fan-out
    dense = 5 * 27 * 4  # the pooled 3x3x3 features
    assert [(row["name"], row["macs_per_pass"], row["hvp_passes"]) for row in counts["layers"]] == [
        ("conv", conv, 3),
        ("dense", dense, 8),
    ]
    assert counts["gradient"] == 2 * conv + 3 * dense
    assert counts["hvp"] == 3 * conv + 8 * dense
    assert counts["tangent_only"] == 2 * conv + 6 * dense
    primal = conv + 2 * dense  # forward, and the input gradient past the first layer
    assert counts["batched_per_vector_over_gradient"]["4"] == pytest.approx(
        (counts["tangent_only"] + primal / 4) / counts["gradient"]
    )
    assert counts["batched_per_vector_over_gradient"]["1"] == pytest.approx(
        counts["hvp_over_gradient"]
    )


def test_linear_layer_macs_rejects_strided_convolutions(common):
    image = keras.Input((6, 6, 2))
    model = keras.Model(image, keras.layers.Conv2D(3, 3, strides=2, name="strided")(image))
    with pytest.raises(ValueError, match="strided: only stride-1"):
        common.linear_layer_macs(model, 2)
