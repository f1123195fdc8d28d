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
