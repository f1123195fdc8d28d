"""Shapes and parameter counts of the MADAN networks (full size at small inputs)."""

import keras
import numpy as np
import pytest

from tf_madan.models import drn, fcn8s
from tf_madan.models.discriminator import build_feature_discriminator, build_patchgan_discriminator
from tf_madan.models.generator import build_resnet_generator
from tf_madan.models.layers import bilinear_kernel


def test_resnet_generator_matches_pytorch_parameter_count():
    # pytorch-CycleGAN-and-pix2pix resnet_9blocks, ngf=64, instance norm: 11,378,179 parameters.
    model = build_resnet_generator()
    assert model.count_params() == 11_378_179
    out = model(np.zeros((1, 32, 48, 3), np.float32), training=False)
    assert tuple(out.shape) == (1, 32, 48, 3)


def test_generator_output_in_tanh_range_and_dropout_layers():
    model = build_resnet_generator(filters=4, num_blocks=2, dropout_rate=0.5)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    out = np.asarray(model(x, training=False))
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert sum("dropout" in layer.name for layer in model.layers) == 2


def test_generator_rejects_too_small_size():
    with pytest.raises(ValueError, match=">= 4"):
        build_resnet_generator(input_shape=(3, 32, 3))


def _generator_core(model):
    # The network without the pad-to-multiple / crop-back wrapper.
    return keras.Model(model.get_layer("stem_pad").input, model.get_layer("head_tanh").output)


def test_generator_returns_input_size_when_not_a_multiple_of_4():
    # Issue 12: at width 130 the generator returned 132 (GTA5 frames are 1914 wide).
    model = build_resnet_generator(filters=4, num_blocks=1, dropout_rate=0.0)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 10, 130, 3)).astype(np.float32)
    out = np.asarray(model(x, training=False))
    assert out.shape == (2, 10, 130, 3)
    # = reflect-pad bottom/right to 12 x 132, run, crop back.
    padded = np.pad(x, [(0, 0), (0, 2), (0, 2), (0, 0)], mode="reflect")
    core = np.asarray(_generator_core(model)(padded, training=False))
    np.testing.assert_array_equal(out, core[:, :10, :130])


def test_generator_unchanged_on_multiples_of_4():
    model = build_resnet_generator(filters=4, num_blocks=2, dropout_rate=0.5)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 16, 24, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(model(x, training=False)), np.asarray(_generator_core(model)(x, training=False))
    )


def test_generator_transposed_conv_alignment_matches_pytorch():
    # ConvTranspose2d(k3, s2, padding=1, output_padding=1) on a one-hot input
    # at row/col 0 with a one-hot kernel tap (ky, kx): PyTorch writes output
    # (2*0 - 1 + ky, 2*0 - 1 + kx), i.e. tap (1, 1) -> (0, 0) and tap (0, 0) is cut.
    model = build_resnet_generator(filters=1, num_blocks=0, num_downsampling=1)
    up = model.get_layer("up0_conv")
    sub = keras.Model(up.input, model.get_layer("up0_crop").output)
    kernel = np.zeros((3, 3, 1, 2), np.float32)
    kernel[1, 1, 0, 0] = 1.0
    kernel[2, 2, 0, 0] = 10.0
    up.set_weights([kernel, np.zeros(1, np.float32)])
    x = np.zeros((1, 3, 3, 2), np.float32)
    x[0, 0, 0, 0] = 1.0
    y = np.asarray(sub(x))[0, :, :, 0]
    assert y.shape == (6, 6)
    assert y[0, 0] == 1.0 and y[1, 1] == 10.0 and np.count_nonzero(y) == 2


def test_patchgan_matches_pytorch_parameter_count_and_patch_grid():
    # NLayerDiscriminator(ndf=64, n_layers=3, InstanceNorm): 2,764,737 parameters.
    model = build_patchgan_discriminator()
    assert model.count_params() == 2_764_737
    assert tuple(model(np.zeros((1, 256, 256, 3), np.float32)).shape) == (1, 30, 30, 1)
    assert tuple(model(np.zeros((2, 64, 64, 3), np.float32)).shape) == (2, 6, 6, 1)


@pytest.mark.parametrize(
    "channels,hidden,params", [(4096, (1024, 512), 4_721_154), (19, (512, 256), 142_082)]
)
def test_feature_discriminator(channels, hidden, params):
    model = build_feature_discriminator(channels, hidden=hidden)
    assert model.count_params() == params
    assert tuple(model(np.zeros((2, 3, 5, channels), np.float32)).shape) == (2, 3, 5, 2)


def test_fcn8s_shapes_parameters_and_fixed_upsampling():
    model = fcn8s.build_fcn8s(19)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    # VGG16 convs 14,714,688 + fc6 102,764,544 + fc7 16,781,312 + scores 92,473.
    assert trainable == 134_353_017
    assert tuple(model(np.zeros((1, 64, 64, 3), np.float32), training=False).shape) == (
        1,
        64,
        64,
        19,
    )
    assert model.get_layer(fcn8s.FEATURE_LAYER).output.shape[-1] == 4096
    up = model.get_layer("upscore8")
    assert not up.trainable
    np.testing.assert_allclose(np.asarray(up.kernel), bilinear_kernel(16, 19))
    assert np.all(np.asarray(model.get_layer("score_pool4").kernel) == 0)


def test_bilinear_kernel_values():
    k = bilinear_kernel(4, 1)[:, :, 0, 0]
    np.testing.assert_allclose(k[0], [0.0625, 0.1875, 0.1875, 0.0625])
    assert bilinear_kernel(4, 2)[:, :, 0, 1].sum() == 0


def test_drn_c26_parameters_match_fyu_drn():
    # fyu/drn drn_c_26 + CyCADA's 19-class 1x1 head: 20,623,331 trainable
    # parameters (DRN-D-22, built here before, has 15,890,499).
    model = drn.build_drn_c26(19)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 20_623_331


def test_drn_c26_layer_shapes_dilations_and_residuals():
    model = drn.build_drn_c26(19)
    probe = keras.Model(
        model.input,
        [model.get_layer("relu").output]
        + [model.get_layer(f"layer{i}_{n - 1}_relu").output for i, n in enumerate(drn.LAYERS, 1)]
        + [model.output],
    )
    shapes = [tuple(t.shape) for t in probe(np.zeros((1, 32, 40, 3), np.float32), training=False)]
    assert shapes == [
        (1, 32, 40, 16),
        (1, 32, 40, 16),
        (1, 16, 20, 32),
        (1, 8, 10, 64),
        (1, 4, 5, 128),
        (1, 4, 5, 256),
        (1, 4, 5, 512),
        (1, 4, 5, 512),
        (1, 4, 5, 512),
        (1, 32, 40, 19),
    ]
    dilation = {
        layer.name: layer.dilation_rate[0]
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (3, 3)
    }
    # fyu/drn: layer5/6 call _make_layer(new_level=False): first block (2, 2) / (4, 4).
    assert dilation["layer5_0_conv1"] == dilation["layer5_0_conv2"] == 2
    assert dilation["layer6_0_conv1"] == dilation["layer6_0_conv2"] == 4
    assert dilation["layer7_0_conv1"] == dilation["layer7_0_conv2"] == 2
    assert dilation["layer8_0_conv1"] == dilation["layer8_0_conv2"] == 1
    assert {k for k, v in dilation.items() if v == 1 and k.startswith("layer5")} == set()
    adds = sorted(layer.name for layer in model.layers if isinstance(layer, keras.layers.Add))
    assert adds == sorted(
        f"layer{i}_{b}_add" for i in range(1, 7) for b in range(drn.LAYERS[i - 1])
    )  # layer7 and layer8: no residual
    downsample = sorted(n.name for n in model.layers if n.name.endswith("_downsample_conv"))
    assert downsample == [f"layer{i}_0_downsample_conv" for i in (2, 3, 4, 5, 6)]


@pytest.mark.parametrize("size", [(26, 30), (33, 130)])
def test_drn_c26_any_size_returns_input_size(size):
    small = drn.build_drn_c26(5, width_multiplier=0.125)
    out = small(np.zeros((2, *size, 3), np.float32), training=False)
    assert tuple(out.shape) == (2, *size, 5)


def test_drn_c26_rejects_bad_channels():
    with pytest.raises(ValueError, match="channels"):
        drn.build_drn_c26(19, channels=(16, 32, 64, 128, 256, 512, 256, 512))


@pytest.mark.parametrize("size", [(21, 27), (8, 130), (1, 1)])
def test_fcn8s_any_size_returns_input_size(size):
    model = fcn8s.build_fcn8s(3, widths=(4, 4, 8, 8, 8), fc_width=8)
    assert tuple(model(np.zeros((1, *size, 3), np.float32), training=False).shape) == (1, *size, 3)
