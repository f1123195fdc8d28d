"""The restricted unpickler of `tf_madan.torch_reader`: numpy stand-ins for torch's storages,
tensors and rebuild functions, and an allow-list of the globals a state-dict pickle may name
(anything else raises `UnsafeCheckpointError` naming the global).

Reference: torch/_utils.py (`_rebuild_tensor_v2`, `_rebuild_parameter`) of PyTorch 2.x.
"""

import collections
import pickle

import numpy as np

# torch storage class -> numpy dtype (bfloat16 handled apart).
STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """The checkpoint's pickle names a global outside the allow-list (also a `ValueError`)."""


class _StorageType:
    """Stand-in for `torch.<X>Storage` classes named in persistent ids."""

    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]

    @property
    def itemsize(self):
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


class _Storage:
    """A flat storage: raw bytes (filled later in the legacy format) and a dtype."""

    def __init__(self, storage_type, numel, key):
        self.storage_type = storage_type
        self.numel = int(numel)
        self.key = key
        self.data = None  # bytes
        self.base = None  # legacy views: (root storage, element offset)
        self.base_offset = 0

    def array(self, byteorder):
        if self.base is not None:
            root = self.base.array(byteorder)
            if self.base_offset + self.numel > root.size:
                raise ValueError(f"storage view {self.key!r} reads past its root storage.")
            return root[self.base_offset : self.base_offset + self.numel]
        if self.data is None:
            raise ValueError(f"storage {self.key!r} has no data in the checkpoint.")
        expected = self.numel * self.storage_type.itemsize
        if len(self.data) < expected:
            raise ValueError(
                f"storage {self.key!r} is truncated: {len(self.data)} bytes, expected {expected}."
            )
        prefix = "<" if byteorder == "little" else ">"
        if self.storage_type.dtype == "bfloat16":
            raw = np.frombuffer(self.data, np.dtype(f"{prefix}u2"), count=self.numel)
            return (raw.astype(np.uint32) << 16).view(np.float32)
        dtype = np.dtype(self.storage_type.dtype).newbyteorder(prefix)
        array = np.frombuffer(self.data, dtype, count=self.numel)
        return array.astype(array.dtype.newbyteorder("="))


class _LazyTensor:
    """A tensor view on a storage, materialised once all storages are read."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)
        if len(self.size) != len(self.stride) or min(self.size + (0,)) < 0:
            raise ValueError(f"bad tensor size {self.size} / stride {self.stride}.")
        if any(s < 0 for s in self.stride) or self.offset < 0:
            raise ValueError(f"negative stride or offset: {self.stride}, {self.offset}.")

    @property
    def nbytes(self):
        return int(np.prod(self.size, dtype=np.float64)) * self.storage.storage_type.itemsize

    def check_size(self):
        """Raises ValueError when the tensor declares more elements than its storage holds."""
        numel = float(np.prod(self.size, dtype=np.float64))
        available = self.storage.numel
        if numel > max(available, 1):
            raise ValueError(
                f"tensor of size {self.size} (stride {self.stride}) declares {numel:.0f} elements "
                f"but its storage {self.storage.key!r} holds {available}; a saved tensor cannot be "
                "larger than its storage (refused before allocating)."
            )

    def materialise(self, byteorder):
        self.check_size()
        flat = self.storage.array(byteorder)
        if 0 in self.size:
            return np.zeros(self.size, flat.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= flat.size:
            raise ValueError(
                f"tensor (offset {self.offset}, size {self.size}, stride {self.stride}) "
                f"reads past its storage {self.storage.key!r} of {flat.size} elements."
            )
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return np.array(view, copy=True)


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    if not isinstance(storage, _Storage):
        raise UnsafeCheckpointError("tensor rebuilt from something that is not a storage.")
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_):
    return data


def _ordered_dict(*args):
    return collections.OrderedDict(*args)


_ALLOWED = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, persistent_load, source):
        super().__init__(file)
        self._persistent = persistent_load
        self._source = source

    def find_class(self, module, name):
        # torch.cuda.<X>Storage: legacy files saved from GPU tensors (read on CPU here).
        if module in ("torch", "torch.cuda") and name in STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise UnsafeCheckpointError(
            f"{self._source}: the pickle names the global {module}.{name}, which is not a "
            "tensor, storage or OrderedDict. Only state dicts are read (no code runs); if the "
            "file holds a whole pickled model, re-save it in PyTorch with "
            "torch.save(model.state_dict(), path)."
        )

    def persistent_load(self, pid):
        return self._persistent(pid)


def _storage_type(value, source):
    if isinstance(value, _StorageType):
        return value
    if isinstance(value, str) and value in STORAGE_DTYPES:
        return _StorageType(value)
    raise UnsafeCheckpointError(f"{source}: unknown storage type {value!r}.")


def _decode(value):
    return value.decode("ascii") if isinstance(value, bytes) else value
