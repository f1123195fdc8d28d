"""Shapes and parameter counts of the MADAN networks (full size at small inputs)."""

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


def test_generator_rejects_bad_size():
    with pytest.raises(ValueError, match="multiples of 4"):
        build_resnet_generator(input_shape=(30, 32, 3))


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


def test_drn_c26_shapes_and_parameters():
    model = drn.build_drn_c26(19)
    assert model.count_params() == 15_902_275
    assert tuple(model(np.zeros((1, 32, 40, 3), np.float32), training=False).shape) == (
        1,
        32,
        40,
        19,
    )
    small = drn.build_drn_c26(5, width_multiplier=0.125)
    assert tuple(small(np.zeros((2, 16, 16, 3), np.float32)).shape) == (2, 16, 16, 5)
    with pytest.raises(ValueError, match="multiples of 8"):
        drn.build_drn_c26(19, input_shape=(12, 16, 3))
