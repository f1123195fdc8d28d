"""Tests for tf_madan.models.small_segmenter."""

import numpy as np
import pytest

from tf_madan.models import build_small_segmenter
from tf_madan.models.small_segmenter import FEATURE_LAYER


@pytest.mark.parametrize("num_classes,size", [(19, 32), (5, 16)])
def test_output_shape(num_classes, size):
    model = build_small_segmenter(num_classes, filters=4)
    logits = model(np.zeros((2, size, size + 8, 3), np.float32), training=False)
    assert tuple(logits.shape) == (2, size, size + 8, num_classes)
    assert model.get_layer(FEATURE_LAYER).output.shape[-1] == 16


def test_parameter_count_is_small():
    model = build_small_segmenter(19)
    # conv weights of a 16-filter net: 99.5k parameters.
    assert model.count_params() == 99_526
    assert model.count_params() < 200_000


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"filters": 0}, "filters"),
        ({"norm": "layer"}, "norm"),
        ({"input_shape": (3, 32, 3)}, ">= 4"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"num_classes": 19, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_small_segmenter(**kwargs)


def test_size_not_multiple_of_4_returns_input_size():
    # Issue 12: a 130-wide input gave a 132-wide score map that the stride-1
    # skip (130 wide) could not be added to.
    model = build_small_segmenter(5, filters=4)
    x = np.random.default_rng(0).normal(size=(1, 9, 130, 3)).astype(np.float32)
    logits = np.asarray(model(x, training=False))
    assert logits.shape == (1, 9, 130, 5)
    # Reflect padding to 12 x 132 then cropping: the same as running the padded image.
    padded = np.pad(x, [(0, 0), (0, 3), (0, 2), (0, 0)], mode="reflect")
    np.testing.assert_array_equal(logits, np.asarray(model(padded, training=False))[:, :9, :130])
