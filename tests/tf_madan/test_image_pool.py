"""Tests for the fixed-shape image history pool."""

import numpy as np
import pytest
import tensorflow as tf

from tf_madan.image_pool import ImagePool


def images(values):
    return tf.constant(
        np.asarray(values, np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32)
    )


def test_pool_fills_then_mixes_old_and_new():
    tf.random.set_seed(0)
    pool = ImagePool(3)
    first = pool(images([1.0, 2.0]))
    np.testing.assert_array_equal(first.numpy()[:, 0, 0, 0], [1.0, 2.0])
    second = pool(images([3.0, 4.0]))  # slot 2 gets 3; image 4 meets a full pool
    assert second.numpy()[0, 0, 0, 0] == 3.0
    assert int(pool.count.numpy()) == 3
    seen = set()
    for step in range(20):
        before = set(np.asarray(pool.buffer)[:, 0, 0, 0].tolist())
        out = pool(images([10.0 + step])).numpy()[0, 0, 0, 0]
        after = set(np.asarray(pool.buffer)[:, 0, 0, 0].tolist())
        if out == 10.0 + step:
            seen.add("new")
            assert after == before  # returned the new image, pool unchanged
        else:
            seen.add("old")
            # An old image comes back and the new one takes its slot.
            assert out in before and after == (before - {out}) | {10.0 + step}
    assert seen == {"new", "old"}


def test_pool_size_zero_is_identity_and_errors():
    x = images([1.0, 2.0])
    np.testing.assert_array_equal(ImagePool(0)(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(-1)


def test_pool_inside_tf_function():
    pool = ImagePool(2)
    fn = tf.function(lambda x: pool(x))
    fn(images([1.0]))
    fn(images([2.0]))
    assert sorted(np.asarray(pool.buffer)[:, 0, 0, 0].tolist()) == [1.0, 2.0]
