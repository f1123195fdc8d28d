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
        ({"input_shape": (30, 32, 3)}, "multiples of 4"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"num_classes": 19, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_small_segmenter(**kwargs)
