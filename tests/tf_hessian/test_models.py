"""Model zoo: parameter counts from the spec, logits layer, PyTorch-style padded max-pool."""

import keras
import numpy as np
import pytest

from tf_hessian import models


@pytest.mark.parametrize(
    "name,shape,kwargs,count",
    [
        ("c1", (32, 32, 3), {}, 1_756_682),  # spec §2 [M]
        ("c2", (32, 32, 3), {}, 1_148_746),  # spec §2, counted from the table
        ("m1", (28, 28, 1), {}, 431_220),
        ("resnet", (32, 32, 3), {"depth": 20}, 272_474),
        ("mlp", (8, 8, 1), {"hidden_units": (8,)}, 64 * 8 + 8 + 8 * 10 + 10),
    ],
)
def test_trainable_parameter_counts(name, shape, kwargs, count):
    model = models.build_model(name, shape, 10, **kwargs)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == count
    assert model.layers[-1].name == "logits"
    assert isinstance(model.layers[-1], keras.layers.Dense)
    assert model.output_shape == (None, 10)


def test_small_variants_run_in_float64():
    for name, kwargs in [
        ("c1", {"filters": 4, "dense_units": (8,)}),
        ("resnet", {"depth": 8, "widths": (4, 4, 4)}),
        ("c2", {"filters": (4, 4), "dense_units": (8,)}),
    ]:
        model = models.build_model(name, (32, 32, 3), 10, dtype="float64", **kwargs)
        out = model(np.zeros((2, 32, 32, 3)))
        assert out.shape == (2, 10) and out.dtype == "float64"


def test_padded_max_pool_matches_torch_semantics():
    # Negative inputs: zero padding or Keras "same" padding would give different windows.
    x = -np.arange(1, 26, dtype=np.float32).reshape(1, 5, 5, 1)
    out = models.PaddedMaxPool2D(3, 2, 1)(x).numpy()[0, :, :, 0]
    padded = np.pad(x[0, :, :, 0], 1, constant_values=-np.inf)
    expected = np.array(
        [[padded[i : i + 3, j : j + 3].max() for j in range(0, 5, 2)] for i in range(0, 5, 2)]
    )
    np.testing.assert_array_equal(out, expected)
    assert out.shape == (3, 3)


def test_unknown_model_and_bad_depth():
    with pytest.raises(ValueError, match="Unknown model 'vgg'"):
        models.build_model("vgg", (32, 32, 3), 10)
    with pytest.raises(ValueError, match="6n\\+2"):
        models.build_resnet(depth=21)
