"""Shared setup of the Hessian benchmarks: C1 and one batch of 128 CIFAR-10 images."""

import os
import time

import keras
import numpy as np
import tensorflow as tf

from input_pipelines import classification
from tf_hessian import models

SHARED_CIFAR = os.environ.get(
    "SHARED_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
)


def c1_batch(batch_size=128, seed=0):
    """(model, x, y, source): C1 at its seeded initialisation and a batch of real test images if present."""
    keras.utils.set_random_seed(seed)
    model = models.build_c1()
    source = "random"
    try:
        images, labels = classification.load_arrays(
            "cifar10", "test", os.path.join(SHARED_CIFAR, "cifar10"), limit=batch_size
        )
        x = images.astype(np.float32) / 255.0
        y = labels.astype(np.int32)
        source = "shared cifar10 test images"
    except (FileNotFoundError, ValueError):
        rng = np.random.default_rng(seed)
        x = rng.uniform(0, 1, (batch_size, 32, 32, 3)).astype(np.float32)
        y = rng.integers(0, 10, batch_size).astype(np.int32)
    return model, tf.constant(x), tf.constant(y), source


def timed(fn, repeats=3):
    """(first call seconds, median of `repeats` further calls)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, float(np.median(times))


def linear_layer_macs(model, batch_size, batch_ks=(1, 4, 8, 16)):
    """Multiply-adds of the model's Conv2D/Dense layers in a gradient and in an exact HVP.

    Each layer ``y = x * W`` is a linear map of ``batch x output positions x fan-in x
    fan-out`` multiply-adds per pass. A gradient makes the forward, the kernel gradient and,
    past the first layer, the input gradient: 3 passes (2 for the first). An exact HVP
    (forward-over-reverse, or reverse-over-reverse, in any framework) makes the forward,
    the tangent forward ``dx * W + x * dW``, the input gradient ``gy * W^T`` and its tangent
    ``dgy * W^T + gy * dW^T``, and the kernel gradient's tangent ``dx^T gy + x^T dgy`` (the
    kernel gradient itself is not needed): 8 passes, 3 for the first layer, whose input is
    the data (no tangent, no input gradient). The vector-dependent (tangent) passes are
    2 + 4 of them; a batched product of k vectors makes the primal ones (forward, input
    gradient) once. Assumes a chain (C1): only the first layer sees the data. Bias,
    normalisation, activations and pooling are left out: the counts are lower bounds.
    """
    layers, gradient, hvp, tangent, primal = [], 0, 0, 0, 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            if layer.strides != (1, 1) or layer.dilation_rate != (1, 1) or layer.groups != 1:
                raise ValueError(f"{layer.name}: only stride-1 undilated convolutions are counted.")
            _, height, width, _ = layer.output.shape
            kh, kw, fan_in, fan_out = layer.kernel.shape
            forward = batch_size * height * width * kh * kw * fan_in * fan_out
        elif isinstance(layer, keras.layers.Dense):
            fan_in, fan_out = layer.kernel.shape
            forward = batch_size * fan_in * fan_out
        else:
            continue
        dependent = 1 if layers else 0
        layers.append(
            {"name": layer.name, "macs_per_pass": int(forward), "hvp_passes": 3 + 5 * dependent}
        )
        gradient += forward * (2 + dependent)
        hvp += forward * (3 + 5 * dependent)
        tangent += forward * (2 + 4 * dependent)
        primal += forward * (1 + dependent)
    return {
        "layers": layers,
        "gradient": gradient,
        "hvp": hvp,
        "hvp_over_gradient": hvp / gradient,
        "tangent_only": tangent,
        "tangent_only_over_gradient": tangent / gradient,
        "batched_per_vector_over_gradient": {
            str(k): (tangent + primal / k) / gradient for k in batch_ks
        },
    }
