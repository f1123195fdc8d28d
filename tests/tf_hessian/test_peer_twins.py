"""Tests of benchmarks/hessian_peer_twins.py: JAX and PyTorch twins of a Keras network.

Runs only where JAX and PyTorch are installed (the peer venv of benchmarks/hessian_peers.py,
never the project's requirements); skipped elsewhere.
"""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")

PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "hessian_peer_twins.py"


@pytest.fixture(scope="module")
def twins():
    spec = importlib.util.spec_from_file_location("hessian_peer_twins", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.mark.parametrize(
    "size, kernel, stride, expected",
    [
        (32, 3, 2, (0, 1)),
        (17, 3, 2, (1, 1)),
        (8, 3, 1, (1, 1)),
        (8, 1, 1, (0, 0)),
        (7, 4, 1, (1, 2)),
    ],
)
def test_same_padding_is_tensorflows(twins, size, kernel, stride, expected):
    # Hand values: total = (ceil(n / s) - 1) s + k - n, the odd pixel after.
    assert twins.same_padding(size, kernel, stride) == expected


def _every_layer_type(seed=0):
    """A float64 network with each layer type of the walk, BatchNorm statistics not at init."""
    keras.utils.set_random_seed(seed)
    layers, kw = keras.layers, {"dtype": "float64"}
    inputs = keras.Input((8, 8, 3), dtype="float64")
    x = layers.Rescaling(2.0, offset=-1.0, **kw)(inputs)
    x = layers.Conv2D(4, 3, strides=2, padding="same", **kw)(x)  # 8 -> 4, padded (0, 1)
    x = layers.ReLU(6.0, **kw)(layers.BatchNormalization(**kw)(x))
    y = layers.ZeroPadding2D(((0, 1), (1, 0)), **kw)(x)
    y = layers.DepthwiseConv2D(2, depth_multiplier=2, **kw)(y)  # [B, 4, 4, 8]
    y = layers.BatchNormalization(**kw)(layers.Conv2D(4, 1, use_bias=False, **kw)(y))
    x = layers.ReLU(**kw)(layers.Add(**kw)([x, y]))
    x = layers.Dropout(0.5, **kw)(layers.GlobalAveragePooling2D(**kw)(x))
    model = keras.Model(inputs, layers.Dense(3, activation="softmax", **kw)(x))
    rng = np.random.default_rng(seed)
    for v in model.weights:
        low = 0.5 if v.path.endswith(("moving_variance", "gamma")) else -1.0
        v.assign(rng.uniform(low, 1.5, v.shape) * (3.0 if "kernel" in v.path else 1.0))
    return model


def _keras_logits(model, x):
    """The input of the final softmax: the last Dense applied without its activation."""
    features = keras.Model(model.inputs, model.layers[-1].input)(x, training=False)
    dense = model.layers[-1]
    return np.asarray(features) @ dense.kernel.numpy() + dense.bias.numpy()


def test_twins_compute_the_keras_network_in_float64(twins, x64):
    model = _every_layer_type()
    x = np.random.default_rng(1).uniform(0, 1, (5, 8, 8, 3))
    expected = _keras_logits(model, x)
    params = {v.path: v.numpy() for v in model.weights}
    jax_logits = twins.jax_forward(model)({k: jax.numpy.asarray(v) for k, v in params.items()}, x)
    torch_logits = twins.torch_forward(model)(
        {k: torch.tensor(v) for k, v in params.items()}, torch.tensor(x)
    )
    np.testing.assert_allclose(np.asarray(jax_logits), expected, rtol=1e-12)
    np.testing.assert_allclose(torch_logits.numpy(), expected, rtol=1e-12)


def test_unsupported_layer_is_rejected(twins):
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.MaxPooling2D()(inputs))
    with pytest.raises(ValueError, match="has no twin"):
        twins.layer_plan(model)
