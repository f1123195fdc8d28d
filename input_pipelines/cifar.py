"""Reader of the original CIFAR-10 / CIFAR-100 "python version" pickle batches.

CIFAR-10: `cifar-10-batches-py/data_batch_{1..5}`, `test_batch`; CIFAR-100:
`cifar-100-python/train`, `test`. Each pickle holds `b'data'` (N x 3072 uint8, rows in CHW order)
and `b'labels'` (CIFAR-10) or `b'fine_labels'` (CIFAR-100); load with `encoding='bytes'`.

The pickles are read with a restricted unpickler that only rebuilds numpy arrays (a pickle may
otherwise run arbitrary code when loaded), and the pixel data must be integers in 0..255.
"""

import io
import os
import pickle

import numpy as np

# The only globals a CIFAR batch needs: numpy array reconstruction (numpy 1 and 2 module names).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle references a global other than numpy array reconstruction."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise ForbiddenGlobalError(f"{module}.{name}")


def safe_load_pickle(data):
    """Unpickles `data` (bytes) with `encoding='bytes'`, allowing only numpy array globals.

    Raises:
      ForbiddenGlobalError: for any other global (e.g. `os.system`), without calling it.
    """
    return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


LAYOUTS = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "label_key": b"labels",
        "num_classes": 10,
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "label_key": b"fine_labels",
        "num_classes": 100,
    },
}
_ROW = 32 * 32 * 3


def cifar_folder(name, data_dir):
    """`data_dir/<folder>` if it exists, else `data_dir` itself when it holds the batches."""
    layout = LAYOUTS[name]
    nested = os.path.join(data_dir, layout["folder"])
    if os.path.isdir(nested):
        return nested
    if os.path.isfile(os.path.join(data_dir, layout["test"][0])):
        return data_dir
    raise FileNotFoundError(
        f"{name} batches not found: expected folder {nested} with files "
        f"{', '.join(layout['train'] + layout['test'])} (the original python-version pickles)."
    )


def read_batch(path, label_key):
    """Reads one pickle batch.

    Returns:
      (images uint8 [N, 32, 32, 3] in HWC order, labels int64 [N]).

    Raises:
      FileNotFoundError: naming the path.
      ValueError: naming the file for a truncated/corrupt pickle, a pickle with code (any global
        but numpy arrays), a missing key, pixel data that are not integers in 0..255, or a data
        size that does not match the number of labels (expected vs found bytes).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CIFAR batch file not found: {path}")
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as f:
            batch = safe_load_pickle(f.read())
    except ForbiddenGlobalError as error:
        raise ValueError(
            f"{path} is not a CIFAR batch: its pickle calls {error} (only numpy arrays are "
            "allowed; it was not run)."
        ) from error
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        AttributeError,
        KeyError,
    ) as error:
        raise ValueError(
            f"{path} is truncated or corrupt ({size} bytes found; unpickling failed: {error!r})."
        ) from error
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"{path}: expected keys b'data' and {label_key!r}. Found: {keys}")
    labels = _labels(batch[label_key], path, label_key)
    data = np.asarray(batch[b"data"])
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_):
        raise ValueError(
            f"{path}: image data must be integers 0..255 (uint8). Found dtype {data.dtype}."
        )
    if data.size and (data.min() < 0 or data.max() > 255):
        raise ValueError(
            f"{path}: image data outside 0..255 (found {int(data.min())}..{int(data.max())}); "
            "values are not wrapped."
        )
    data = data.astype(np.uint8)
    expected = labels.shape[0] * _ROW
    if data.size != expected:
        raise ValueError(
            f"{path}: image data size mismatch: expected {labels.shape[0]} x {_ROW} = {expected} "
            f"bytes for {labels.shape[0]} labels, found {data.size}."
        )
    # The original rows are CHW (1024 red, 1024 green, 1024 blue values); an image array is
    # read by its unambiguous 4-D layout, never reshaped as if it were rows.
    if data.ndim == 2 and data.shape[1] == _ROW:
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    elif data.ndim == 4 and data.shape[1:] == (3, 32, 32):
        images = data.transpose(0, 2, 3, 1)
    elif data.ndim == 4 and data.shape[1:] == (32, 32, 3):
        images = data
    else:
        raise ValueError(
            f"{path}: image data of shape {data.shape}; expected rows [N, {_ROW}] in CHW order "
            "(the original format), or images [N, 3, 32, 32] (CHW) / [N, 32, 32, 3] (HWC)."
        )
    return np.ascontiguousarray(images), labels


def _labels(values, path, label_key):
    """int64 [N] labels; anything but integers (strings, floats, bools) is an error naming the file."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"{path}: {label_key!r} must be a list of N integers; found shape {array.shape}."
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        bad = next(
            (v for v in values if not isinstance(v, (int, np.integer)) or isinstance(v, bool)),
            values[0],
        )
        raise ValueError(
            f"{path}: {label_key!r} must hold integer class indices; found "
            f"{bad.item() if isinstance(bad, np.generic) else bad!r} "
            f"({type(bad).__name__}, array dtype {array.dtype}). Labels are not converted."
        )
    return array.astype(np.int64)


def load_cifar(name, data_dir, split):
    """All images and labels of a CIFAR split ("train" or "test")."""
    layout = LAYOUTS[name]
    folder = cifar_folder(name, data_dir)
    parts = [read_batch(os.path.join(folder, f), layout["label_key"]) for f in layout[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    bad = labels[(labels < 0) | (labels >= layout["num_classes"])]
    if bad.size:
        raise ValueError(
            f"{name} {split} in {folder}: label {int(bad[0])} outside 0..{layout['num_classes'] - 1}"
        )
    return images, labels


def write_batch(path, images, labels, label_key=b"labels"):
    """Writes a batch in the original format (uint8 HWC images); for fixtures and tests."""
    images = np.asarray(images, dtype=np.uint8)
    rows = images.transpose(0, 3, 1, 2).reshape(images.shape[0], _ROW)
    with open(path, "wb") as f:
        pickle.dump(
            {b"data": rows, label_key: [int(v) for v in labels], b"batch_label": b"fixture"}, f
        )
    return path
