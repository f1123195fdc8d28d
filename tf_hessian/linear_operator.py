"""Flat-vector view of parameter-shaped tensors and a dense test operator.

The eigen-solvers in this package (power iteration, Lanczos, Hutchinson, SLQ)
work on flat float64 NumPy vectors on the host, as google/spectral-density
does, while Hessian-vector products run on the device in the model's dtype.
This module converts between the two views: a "parameter vector" is a list of
tensors shaped like ``model.trainable_variables``; its flat form is the
row-major concatenation, so inner products and norms run over all parameters
at once (never per tensor, the bug of the TF port noted in the spec, §6.1.7).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

# TensorFlow's CPU tensors must start on a 64-byte boundary (EIGEN_MAX_ALIGN_BYTES) to
# share a host buffer through DLPack; an unaligned one aborts the process.
_TENSOR_ALIGNMENT = 64


def host_tensor(array: np.ndarray, dtype, shape=None) -> tf.Tensor:
    """A CPU tensor of ``dtype`` with the values of ``array`` (reshaped to ``shape``).

    ``tf.constant(array, dtype=float32)`` of a float64 array converts element by
    element and costs about 4x NumPy's cast (60 ms vs 15 ms for 18M values). Here
    NumPy casts into a fresh 64-byte aligned buffer, which the tensor then shares
    through DLPack without a copy; the buffer is owned by the tensor alone. A
    strided ``array`` (a column block of a [k, dim] array) is read in place.
    """
    dtype = tf.as_dtype(dtype)
    array = np.asarray(array)
    if dtype not in (tf.float16, tf.float32, tf.float64):
        return tf.constant(array if shape is None else array.reshape(shape), dtype=dtype)
    nbytes = array.size * dtype.size
    raw = np.empty(nbytes + _TENSOR_ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % _TENSOR_ALIGNMENT
    buffer = raw[start : start + nbytes].view(dtype.as_numpy_dtype)
    np.copyto(buffer.reshape(array.shape), array, casting="unsafe")
    shape = array.shape if shape is None else tuple(shape)
    return tf.experimental.dlpack.from_dlpack(buffer.reshape(shape).__dlpack__())


class ParameterLayout:
    """Shapes and offsets of a list of parameter tensors.

    Args:
      shapes: Shape of each tensor, e.g. ``[v.shape for v in variables]``.
      dtype: Device dtype used when a flat vector is turned back into tensors.
    """

    def __init__(self, shapes: Sequence[Sequence[int]], dtype=tf.float32):
        self.shapes = [tuple(int(d) for d in s) for s in shapes]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.dim = int(self.offsets[-1])
        self.dtype = tf.as_dtype(dtype)

    def flatten(self, tensors: Sequence) -> np.ndarray:
        """Concatenates parameter-shaped tensors into one float64 vector [dim]."""
        if len(tensors) != len(self.shapes):
            raise ValueError(
                f"Expected {len(self.shapes)} tensors shaped like the parameters. "
                f"Received: {len(tensors)} tensors."
            )
        flat = np.empty([self.dim], np.float64)
        for t, shape, a, b in zip(tensors, self.shapes, self.offsets[:-1], self.offsets[1:]):
            # np.asarray of a CPU tensor is a view of it (Tensor.numpy() copies).
            values = np.asarray(t)
            if values.shape != shape:
                raise ValueError(
                    f"Expected a tensor of shape {shape}. Received: shape={values.shape}."
                )
            flat[a:b] = values.reshape(-1)
        return flat

    def unflatten(self, flat: np.ndarray, dtype=None) -> list[tf.Tensor]:
        """Splits a flat vector [dim] into tensors shaped like the parameters."""
        flat = np.asarray(flat)
        if flat.shape != (self.dim,):
            raise ValueError(
                f"Expected a flat vector of shape ({self.dim},). Received: shape={flat.shape}."
            )
        dtype = self.dtype if dtype is None else tf.as_dtype(dtype)
        return [
            host_tensor(flat[a:b], dtype, s)
            for a, b, s in zip(self.offsets[:-1], self.offsets[1:], self.shapes)
        ]

    def unflatten_rows(self, rows: np.ndarray, dtype=None) -> list[tf.Tensor]:
        """Splits k flat vectors [k, dim] into tensors [k, *shape], one per parameter."""
        rows = np.asarray(rows)
        dtype = self.dtype if dtype is None else tf.as_dtype(dtype)
        return [
            host_tensor(rows[:, a:b], dtype, (len(rows), *s))
            for a, b, s in zip(self.offsets[:-1], self.offsets[1:], self.shapes)
        ]


class DenseOperator:
    """A symmetric matrix as a linear operator (for tests and cross-checks).

    Args:
      matrix: Symmetric array [n, n].
    """

    def __init__(self, matrix):
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"Expected a square matrix. Received: shape={matrix.shape}.")
        self.matrix = matrix
        self.dim = matrix.shape[0]
        self.num_matvecs = 0

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """Returns ``matrix @ x`` for x [dim]."""
        self.num_matvecs += 1
        return self.matrix @ np.asarray(x, dtype=np.float64)


def orthogonalize(
    v: np.ndarray, basis: Sequence[np.ndarray] | np.ndarray, passes: int = 2
) -> np.ndarray:
    """Removes the components of v along orthonormal vectors (Gram-Schmidt).

    Two classical Gram-Schmidt passes ("twice is enough") keep the result
    orthogonal to rounding even when v is nearly in the span.

    Args:
      v: Vector [dim].
      basis: Orthonormal vectors, a list of [dim] arrays or an array [k, dim].

    Returns:
      The projected vector [dim].
    """
    if len(basis) == 0:
        return v
    q = np.asarray(basis)
    for _ in range(passes):
        v = v - q.T @ (q @ v)
    return v


def random_unit_vector(dim: int, rng: np.random.Generator, kind: str = "normal") -> np.ndarray:
    """Draws a random unit vector [dim] (``normal`` or ``rademacher`` entries)."""
    if kind == "normal":
        v = rng.standard_normal(dim)
    elif kind == "rademacher":
        v = rng.choice(np.array([-1.0, 1.0]), size=dim)
    else:
        raise ValueError(f"kind must be 'normal' or 'rademacher'. Received: kind={kind!r}.")
    return v / np.linalg.norm(v)
