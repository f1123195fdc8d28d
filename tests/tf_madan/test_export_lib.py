"""MADAN exports (any image size, never a silent resize) and the adapted-image writer."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_madan import builders, data, export_lib
from tf_madan.configs import smoke


def _pairs(height, width, count=3):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (count, height, width, 3)).astype(np.float32)
    labels = rng.integers(0, 19, (count, height, width)).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)


def _generator(pad_width=0):
    x = keras.Input((None, None, 3))
    y = keras.layers.ZeroPadding2D(((0, 0), (0, pad_width)))(x) if pad_width else x
    return keras.Model(x, keras.layers.Activation("tanh")(y), name=f"pad_{pad_width}")


def test_write_adapted_images_rejects_size_mismatch(tmp_path):
    out = str(tmp_path / "adapted" / "gta5")
    # A width of 130 that a generator returns as 132 (issue 12): never paired with 130-wide labels.
    with pytest.raises(ValueError, match=r"size \(4, 132\) for inputs of size \(4, 130\)"):
        data.write_adapted_images(_generator(pad_width=2), _pairs(4, 130), out)
    assert not os.path.exists(out)
    assert os.listdir(tmp_path / "adapted") == []  # no partial folder left either


def test_write_adapted_images_replaces_a_partial_folder(tmp_path):
    out = tmp_path / "adapted" / "gta5"
    # What a writer killed mid-way used to leave: some files, no COMPLETE marker.
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    for name in ("000000.png", "999999.png"):
        Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(out / "images" / name)
        Image.fromarray(np.zeros((2, 2), np.uint8)).save(out / "labels" / name)
    assert data.write_adapted_images(_generator(), _pairs(6, 10), str(out)) == 3
    assert sorted(os.listdir(out / "images")) == ["000000.png", "000001.png", "000002.png"]
    assert np.asarray(Image.open(out / "images" / "000000.png")).shape == (6, 10, 3)
    images, labels = data.adapted_files(str(out))
    assert len(images) == len(labels) == 3
    # A complete folder is reused as it is.
    assert data.write_adapted_images(_generator(pad_width=2), _pairs(6, 10), str(out)) == 3


def test_adapted_dataset_batch_larger_than_folder(tmp_path):
    out = str(tmp_path / "a")
    data.write_adapted_images(_generator(), _pairs(8, 8), out)
    with pytest.raises(ValueError, match=r"batch_size=4 is larger than the 3 adapted"):
        data.adapted_dataset(out, batch_size=4, crop_size=8, seed=0)


def _stride_8_segmenter():
    """A net that, like an unpadded output-stride-8 segmenter, returns multiples of 8."""
    x = keras.Input((None, None, 3))
    y = keras.layers.Conv2D(19, 3, strides=8, padding="same")(x)
    return keras.Model(x, keras.layers.UpSampling2D(8)(y), name="stride8")


def test_segmenter_saved_model_serves_sizes_not_multiple_of_8(tmp_path):
    config = smoke.get_config()
    segmenter = builders.build_segmenter(config)
    path = export_lib.export_segmenter(segmenter, str(tmp_path / "seg"))
    loaded = tf.saved_model.load(path)
    mean, std = tf.constant([0.485, 0.456, 0.406]), tf.constant([0.229, 0.224, 0.225])
    for shape, seed in (((2, 30, 44, 3), 1), ((1, 32, 48, 3), 2)):
        rgb = tf.round(tf.random.stateless_uniform(shape, [seed, 2], 0.0, 255.0))
        served = loaded.serve(rgb)  # RGB in [0, 255]; the ImageNet normalisation is inside
        assert served.shape == shape[:3] + (19,)
        expected = segmenter((rgb / 255.0 - mean) / std, training=False)
        np.testing.assert_allclose(served, expected, atol=1e-5)
        np.testing.assert_allclose(loaded.serve_uint8(tf.cast(rgb, tf.uint8)), expected, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Segmenter stride8 changed"):
        export_lib.export_segmenter(_stride_8_segmenter(), str(tmp_path / "bad"))
    assert not os.path.exists(tmp_path / "bad")


def test_generator_export_refuses_to_change_the_size(tmp_path):
    with pytest.raises(tf.errors.InvalidArgumentError, match="changed the image size"):
        export_lib.export_generator(_generator(pad_width=2), str(tmp_path / "g"))
    assert not os.path.exists(tmp_path / "g")
    config = smoke.get_config()
    generator = builders.build_generator(config, "generator_s2t_0")
    path = export_lib.export_generator(generator, str(tmp_path / "g"))
    rgb = tf.round(tf.random.stateless_uniform((1, 32, 40, 3), [5, 6], 0.0, 255.0))
    loaded = tf.saved_model.load(path)
    out = loaded.serve(rgb)  # RGB in [0, 255] in and out; [-1, 1] scaling inside
    assert out.shape == (1, 32, 40, 3)
    expected = (generator(rgb / 127.5 - 1.0, training=False) + 1.0) * 127.5
    np.testing.assert_allclose(out, tf.clip_by_value(expected, 0.0, 255.0), atol=1e-3)


def test_export_reloads_once_and_checks_both_endpoints_at_two_batch_sizes(tmp_path, monkeypatch):
    import tf_runtime

    checks = []
    real_check = tf_runtime.check_export

    def check(path, fn, inputs, **kwargs):
        checks.append((kwargs["endpoint"], int(inputs[0].shape[0]), path))
        return real_check(path, fn, inputs, **kwargs)

    monkeypatch.setattr(tf_runtime, "check_export", check)
    generator = builders.build_generator(smoke.get_config(), "generator_s2t_0")
    export_lib.export_generator(generator, str(tmp_path / "g"))
    assert sorted(c[:2] for c in checks) == [
        ("serve", 1), ("serve", 3), ("serve_uint8", 1), ("serve_uint8", 3)
    ]  # fmt: skip
    # One reloaded object for the four checks (a reload costs seconds per export, every stage).
    reloaded = {id(c[2]) for c in checks}
    assert len(reloaded) == 1 and not isinstance(checks[0][2], (str, os.PathLike))
    # A reloaded object is checked like a folder, and a failure names the folder it came from.
    model_fn = lambda x: generator(x / 127.5 - 1.0, training=False)  # noqa: E731
    with pytest.raises(ValueError, match=r"Export .*/g: reloaded outputs differ"):
        real_check(tf.saved_model.load(str(tmp_path / "g")), model_fn,
                   (tf.zeros((1, 32, 32, 3)),), name=str(tmp_path / "g"))  # fmt: skip
