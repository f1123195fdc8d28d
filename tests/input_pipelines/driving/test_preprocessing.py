"""Each preprocessing op, eagerly and inside Dataset.map (they must agree)."""

import numpy as np
import pytest
import tensorflow as tf

from input_pipelines.driving import preprocessing


def _pair(height=6, width=10):
    """A label with distinct ids per pixel block and an image that encodes the label."""
    label = (np.arange(height * width).reshape(height, width) % 19).astype(np.int32)
    label[0, 0] = 255
    image = np.stack([label, label + 1, label + 2], -1).astype(np.uint8)
    return tf.constant(image), tf.constant(label)


def _eager_and_mapped(fn, image, label):
    eager = fn(image, label)
    ds = tf.data.Dataset.from_tensors((image, label)).map(fn)
    mapped = next(iter(ds))
    return eager, mapped


def _assert_aligned(image, label):
    """Image channel 0 equals the label wherever the label is not padding."""
    image, label = np.asarray(image), np.asarray(label)
    valid = label != 255
    np.testing.assert_array_equal(image[..., 0][valid], label[valid])


@pytest.mark.parametrize("mode", ["eager", "map"])
def test_resize_shorter(mode):
    image, label = _pair(6, 10)
    eager, mapped = _eager_and_mapped(
        lambda i, lab: preprocessing.resize_shorter(i, lab, 12), image, label
    )
    out_image, out_label = eager if mode == "eager" else mapped
    assert out_image.shape == (12, 20, 3) and out_image.dtype == tf.float32
    assert out_label.shape == (12, 20) and out_label.dtype == tf.int32
    # Nearest neighbour on labels: exact 2x upsampling repeats each id.
    np.testing.assert_array_equal(out_label.numpy(), np.kron(label.numpy(), np.ones((2, 2), int)))
    np.testing.assert_array_equal(eager[1].numpy(), mapped[1].numpy())


def test_resize_shorter_portrait_and_error():
    image, label = _pair(10, 4)
    out_image, out_label = preprocessing.resize_shorter(image, label, 2)
    assert out_image.shape == (5, 2, 3) and out_label.shape == (5, 2)
    assert set(np.unique(out_label)) <= set(np.unique(label))
    with pytest.raises(ValueError, match="resize_shorter must be positive"):
        preprocessing.resize_shorter(image, label, 0)


@pytest.mark.parametrize("mode", ["eager", "map"])
def test_random_crop(mode):
    image, label = _pair(6, 10)
    seed = tf.constant([3, 4], tf.int64)
    eager, mapped = _eager_and_mapped(
        lambda i, lab: preprocessing.random_crop(i, lab, (4, 5), seed), image, label
    )
    out_image, out_label = eager if mode == "eager" else mapped
    assert out_image.shape == (4, 5, 3) and out_label.shape == (4, 5)
    _assert_aligned(out_image, out_label)
    np.testing.assert_array_equal(eager[1].numpy(), mapped[1].numpy())  # same seed, same window


def test_random_crop_pads_small_inputs_with_ignore():
    image, label = _pair(3, 4)
    out_image, out_label = preprocessing.random_crop(image, label, 6, tf.constant([0, 1]))
    assert out_label.shape == (6, 6)
    assert (out_label.numpy()[3:] == 255).all() and (out_label.numpy()[:, 4:] == 255).all()
    assert (out_image.numpy()[3:] == 0).all()
    with pytest.raises(ValueError, match="crop_size must be a positive int"):
        preprocessing.random_crop(image, label, (0, 2), tf.constant([0, 1]))


def test_random_crop_varies_with_seed():
    image, label = _pair(20, 30)
    windows = {
        preprocessing.random_crop(image, label, 5, tf.constant([s, 0]))[1].numpy().tobytes()
        for s in range(10)
    }
    assert len(windows) > 5


@pytest.mark.parametrize("mode", ["eager", "map"])
def test_random_flip_both_outcomes(mode):
    image, label = _pair(4, 6)
    flipped = 0
    for s in range(12):
        seed = tf.constant([s, 7])
        eager, mapped = _eager_and_mapped(
            lambda i, lab, seed=seed: preprocessing.random_flip(i, lab, seed), image, label
        )
        out_image, out_label = eager if mode == "eager" else mapped
        np.testing.assert_array_equal(eager[1].numpy(), mapped[1].numpy())
        _assert_aligned(out_image, out_label)
        if not np.array_equal(out_label.numpy(), label.numpy()):
            np.testing.assert_array_equal(out_label.numpy(), label.numpy()[:, ::-1])
            flipped += 1
    assert 0 < flipped < 12


@pytest.mark.parametrize("mode", ["eager", "map"])
def test_normalize_values(mode):
    pixels = tf.constant([[[0, 127.5, 255]]], tf.float32)

    def apply(m):
        if mode == "eager":
            return preprocessing.normalize(pixels, m).numpy()
        ds = tf.data.Dataset.from_tensors(pixels).map(lambda x: preprocessing.normalize(x, m))
        return next(iter(ds)).numpy()

    np.testing.assert_allclose(apply("generator"), [[[-1.0, 0.0, 1.0]]], atol=1e-6)
    expected = (np.array([0, 0.5, 1.0]) - np.array([0.485, 0.456, 0.406])) / np.array(
        [0.229, 0.224, 0.225]
    )
    np.testing.assert_allclose(apply("segmenter")[0, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(apply(None), pixels.numpy())
    for m in ("generator", "segmenter", None):
        restored = preprocessing.denormalize(preprocessing.normalize(pixels, m), m)
        np.testing.assert_allclose(restored.numpy(), pixels.numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="normalization must be one of"):
        preprocessing.normalize(pixels, "imagenet")


@pytest.mark.parametrize("mode", ["eager", "map"])
def test_restrict_classes(mode):
    label = tf.constant([[9, 14, 16, 13, 255]], tf.int32)
    if mode == "eager":
        out = preprocessing.restrict_classes(label, "16")
    else:
        ds = tf.data.Dataset.from_tensors(label).map(
            lambda x: preprocessing.restrict_classes(x, "16")
        )
        out = next(iter(ds))
    np.testing.assert_array_equal(out.numpy(), [[255, 255, 255, 13, 255]])
    assert preprocessing.restrict_classes(label, None) is label
