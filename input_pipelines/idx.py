"""Reader of the original MNIST IDX files (`train-images-idx3-ubyte[.gz]`, ...).

Format (yann.lecun.com/exdb/mnist): a big-endian header `0x00 0x00 <dtype> <ndim>`, then `ndim`
uint32 dimension sizes, then the data. Only unsigned bytes (dtype 0x08) occur in MNIST.
"""

import gzip
import os

import numpy as np

_UBYTE = 0x08


def find_idx_file(data_dir, stem):
    """Path of `stem` or `stem.gz` under `data_dir`.

    Raises:
      FileNotFoundError: naming both candidate paths.
    """
    for candidate in (os.path.join(data_dir, stem), os.path.join(data_dir, stem + ".gz")):
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f"MNIST IDX file not found: expected {os.path.join(data_dir, stem)} or "
        f"{os.path.join(data_dir, stem)}.gz (the original files from the MNIST site)."
    )


def read_idx(path, expected_ndim=None):
    """Reads one IDX file (gzipped when the name ends in `.gz`) into a uint8 array.

    Args:
      path: file path.
      expected_ndim: 3 for image files, 1 for label files (checked when given).

    Returns:
      np.uint8 array with the shape from the header.

    Raises:
      ValueError: naming the file for a bad magic number, wrong rank, or a truncated or
        oversized body (with the expected and found byte counts).
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise ValueError(
            f"Cannot read IDX file {path}: {error} (truncated or corrupt gzip?)"
        ) from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE:
        raise ValueError(
            f"{path} is not an unsigned-byte IDX file: magic bytes {raw[:4].hex() or '(empty)'}, "
            f"expected 000008xx."
        )
    ndim = raw[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise ValueError(f"{path}: IDX rank {ndim}, expected {expected_ndim}.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated header: expected {header} bytes, found {len(raw)}.")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(
            f"{path}: size mismatch for shape {shape}: expected {expected} bytes, found {len(raw)} "
            f"({'truncated' if len(raw) < expected else 'trailing data'})."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path, array):
    """Writes a uint8 array as an IDX file (gzipped when the name ends in `.gz`); for fixtures."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx needs uint8 data. Received dtype={array.dtype}")
    header = bytes([0, 0, _UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())
    return path
