"""Keras VGG16 -> FCN8s-VGG16 (convert_weights --source=keras_vgg16, segmenter.init=imagenet).

A random-weights `keras.applications.VGG16(weights=None)` (no download) is
written in both formats a user holds: the legacy `.h5` Keras caches for
`weights="imagenet"` and a Keras 3 `.weights.h5`. Nothing touches the network:
`keras.utils.get_file` is replaced by a function that fails.
"""

import os

import h5py
import keras
import ml_collections
import numpy as np
import pytest
from absl import flags
from keras.src.legacy.saving import legacy_h5_format

from tf_madan import convert_lib, convert_weights, normalization, pretrained
from tf_madan.models import fcn8s

CONVS = [f"block{b}_conv{r}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for r in range(1, n + 1)]


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory):
    """(source weights {layer: [kernel, bias]}, legacy .h5 path, Keras 3 .weights.h5 path)."""
    keras.utils.set_random_seed(0)
    vgg = keras.applications.VGG16(weights=None)
    directory = tmp_path_factory.mktemp("vgg")
    legacy = str(directory / pretrained.VGG16_FILE)
    with h5py.File(legacy, "w") as f:  # what VGG16(weights="imagenet") caches
        legacy_h5_format.save_weights_to_hdf5_group(f, vgg)
    keras3 = str(directory / "vgg16.weights.h5")
    vgg.save_weights(keras3)
    source = {n: vgg.get_layer(n).get_weights() for n in CONVS + ["fc1", "fc2"]}
    del vgg
    return source, legacy, keras3


def _assert_copied(model, source, *, skip_conv1_1):
    for name in CONVS:
        if skip_conv1_1 and name == "block1_conv1":
            continue
        b, r = name[5], name[-1]
        kernel, bias = model.get_layer(f"conv{b}_{r}").get_weights()
        np.testing.assert_array_equal(kernel, source[name][0])
        np.testing.assert_array_equal(bias, source[name][1])
    fc6_kernel, fc6_bias = model.get_layer("fc6").get_weights()
    fc1_kernel, fc1_bias = source["fc1"]
    assert fc6_kernel.shape == (7, 7, 512, 4096)
    # Flatten of a channels-last 7x7x512 map: row (y * 7 + x) * 512 + c.
    for y, x, c, o in [(0, 0, 0, 0), (6, 6, 511, 4095), (2, 5, 300, 17), (4, 1, 7, 2048)]:
        assert fc6_kernel[y, x, c, o] == fc1_kernel[(y * 7 + x) * 512 + c, o]
    np.testing.assert_array_equal(fc6_kernel.reshape(-1, 4096), fc1_kernel)
    np.testing.assert_array_equal(fc6_bias, fc1_bias)
    fc7_kernel, fc7_bias = model.get_layer("fc7").get_weights()
    np.testing.assert_array_equal(fc7_kernel[0, 0], source["fc2"][0])
    np.testing.assert_array_equal(fc7_bias, source["fc2"][1])
    # Spec §2.3: zero skips, fixed bilinear upsampling.
    assert not np.any(np.asarray(model.get_layer("score_pool4").kernel))
    assert not np.any(np.asarray(model.get_layer("score_pool3").kernel))


def test_cli_keras3_weights_h5_to_init_checkpoint(vgg_files, tmp_path):
    source, _, keras3 = vgg_files
    out = tmp_path / "vgg16_fcn8s.weights.h5"
    values = flags.FlagValues()
    convert_weights.define_flags(values)
    values(
        [
            "prog",
            "--source=keras_vgg16",
            f"--input={keras3}",
            f"--output={out}",
            "--vgg_preprocessing=none",
        ]
    )
    convert_weights.main(["prog"], flag_values=values)
    # What --init_checkpoint does: the default segmenter loads the file.
    segmenter = fcn8s.build_fcn8s(19, name="segmenter")
    segmenter.load_weights(str(out))
    _assert_copied(segmenter, source, skip_conv1_1=False)


def test_caffe_fold_equals_keras_preprocess_input():
    # conv(preprocess_input(255 rgb), W) == conv((rgb - mean) / std, W') + b'.
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    rgb = rng.uniform(size=(1, 6, 7, 3)).astype(np.float32)
    caffe = keras.applications.vgg16.preprocess_input(rgb * 255.0)
    torch_style = (rgb - np.float32(normalization.IMAGENET_MEAN)) / np.float32(
        normalization.IMAGENET_STD
    )
    new_kernel, new_bias = convert_lib.fold_caffe_preprocessing(kernel, bias)
    expected = keras.ops.conv(caffe, kernel, padding="valid") + bias
    got = keras.ops.conv(torch_style, new_kernel, padding="valid") + new_bias
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-4, atol=1e-3)


def test_notop_file_is_rejected_with_its_name(tmp_path):
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"block1_conv1"]
        group = f.create_group("block1_conv1")
        group.attrs["weight_names"] = [b"k", b"b"]
        group["k"] = np.zeros((3, 3, 3, 64), np.float32)
        group["b"] = np.zeros(64, np.float32)
    with pytest.raises(convert_lib.ConversionError, match=r"notop.*fc1"):
        convert_lib.convert("keras_vgg16", path)


def _config(**segmenter):
    fields = dict(name="fcn8s", init="imagenet", init_checkpoint="", fc_width=4096)
    fields.update(segmenter)
    return ml_collections.ConfigDict(dict(num_classes=19, segmenter=fields))


def _offline(monkeypatch, keras_home):
    calls = []

    def fail(fname, origin, **kwargs):
        calls.append(kwargs.get("cache_dir"))
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] name resolution")

    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setattr(keras.utils, "get_file", fail)
    return calls


def test_imagenet_init_offline_names_the_file_to_pass(tmp_path, monkeypatch):
    calls = _offline(monkeypatch, tmp_path)
    tiny = fcn8s.build_fcn8s(19, widths=(2, 2, 2, 2, 2), fc_width=4)
    with pytest.raises(RuntimeError) as error:
        pretrained.initialize_segmenter(tiny, _config())
    message = str(error.value)
    assert calls == [str(tmp_path)]
    assert pretrained.VGG16_FILE in message and pretrained.VGG16_URL in message
    assert "--source=keras_vgg16" in message and "--init_checkpoint=" in message
    assert os.path.join(str(tmp_path), "models", pretrained.VGG16_FILE) in message


def test_imagenet_init_reads_the_cached_legacy_h5_and_folds_conv1_1(
    vgg_files, tmp_path, monkeypatch
):
    source, legacy, _ = vgg_files
    calls = _offline(monkeypatch, tmp_path)
    os.makedirs(tmp_path / "models")
    os.symlink(legacy, tmp_path / "models" / pretrained.VGG16_FILE)
    segmenter = fcn8s.build_fcn8s(19, name="segmenter")
    assert pretrained.initialize_segmenter(segmenter, _config()) is segmenter
    assert calls == []  # cached: no download attempted
    _assert_copied(segmenter, source, skip_conv1_1=True)
    kernel, _ = segmenter.get_layer("conv1_1").get_weights()
    # Default vgg_preprocessing="caffe": RGB channel c = BGR channel 2 - c times 255 * std_c.
    for c, std in enumerate(normalization.IMAGENET_STD):
        np.testing.assert_allclose(
            kernel[:, :, c, :], source["block1_conv1"][0][:, :, 2 - c, :] * 255 * std, rtol=1e-6
        )


def test_imagenet_init_downloads_into_the_cache_when_online(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    seen = {}

    def fake_get_file(fname, origin, **kwargs):
        seen.update(fname=fname, origin=origin, **kwargs)
        return "/cache/models/" + fname

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    assert pretrained.imagenet_vgg16_path() == "/cache/models/" + pretrained.VGG16_FILE
    assert seen["origin"] == pretrained.VGG16_URL and seen["cache_subdir"] == "models"
    assert seen["file_hash"] == "64373286793e3c8b2b4e3219cbf3544b"


@pytest.mark.parametrize(
    "config,match",
    [
        (_config(init="bogus"), "must be one of"),
        (_config(name="small"), "FCN8s-VGG16 segmenter"),
        (_config(init_checkpoint="x.weights.h5"), "not both"),
        (_config(fc_width=8), "fc_width=4096"),
    ],
)
def test_imagenet_init_bad_config(config, match, tmp_path, monkeypatch):
    os.makedirs(tmp_path / "models")
    (tmp_path / "models" / pretrained.VGG16_FILE).write_bytes(b"")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(ValueError, match=match):
        pretrained.initialize_segmenter(None, config)


def test_random_init_leaves_the_segmenter_alone():
    assert pretrained.initialize_segmenter("model", _config(init="random")) == "model"
