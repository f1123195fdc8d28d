"""Reads PyTorch `.pth` state dicts with numpy only, without running pickled code.

Both formats `torch.save` writes are supported:

- the zip format (PyTorch >= 1.6): `<archive>/data.pkl` holds the pickled
  object, whose tensors refer by persistent id to raw storages
  `<archive>/data/<key>` (byte order in `<archive>/byteorder`);
- the legacy format (PyTorch <= 1.5, e.g. CyCADA's 2018 checkpoints): magic
  number, protocol version and system info pickles, the pickled object, the
  list of storage keys, then per storage an int64 element count and its bytes.

Unpickling is restricted: only `collections.OrderedDict`, the torch tensor
rebuild functions and the torch storage classes can be named by the pickle,
and each is replaced by a numpy implementation here (no torch import, no
`__reduce__` of arbitrary classes). Anything else raises
`UnsafeCheckpointError` naming the global. Tensors are rebuilt from their
storage with the recorded offset, size and stride, after a bounds check.

Resource bounds, checked before anything large is allocated: a tensor may not
declare more elements than its storage holds (a stride-0 view of 4 bytes as
(1e6, 1e6) is refused, not expanded to terabytes), a storage may not declare
more bytes than the file has left, all tensors together may not exceed
`MAX_OUTPUT_FACTOR` x the file size, and the unpickled object graph is walked
once per object (pickle's memo shares objects; a 572-byte file of shared lists
describes 2^40 paths) with at most `MAX_OBJECTS` objects. Every error is a
`ValueError` (or `FileNotFoundError`) whose one-line message starts with the file.

Reference: torch/serialization.py (`_load`, `_legacy_load`) and
torch/_utils.py (`_rebuild_tensor_v2`) of PyTorch 2.x.
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# Bounds of what one checkpoint may make us build (see the module docstring).
MAX_OBJECTS = 1_000_000
MAX_OUTPUT_FACTOR = 8  # tied weights (one storage, several names) count once per name
MAX_OUTPUT_SLACK = 64 * 2**20


from tf_madan.torch_pickle import (  # noqa: E402, F401 - part of this module's API
    STORAGE_DTYPES,
    UnsafeCheckpointError,
    _decode,
    _LazyTensor,
    _RestrictedUnpickler,
    _Storage,
    _storage_type,
    _StorageType,
)


def _check_entry_size(archive, entry, path):
    # torch.save stores entries uncompressed; a compressed one may not expand past the file.
    declared = archive.getinfo(entry).file_size
    limit = os.path.getsize(path)
    if declared > limit:
        raise ValueError(
            f"{path}: zip entry {entry} declares {declared} bytes, more than the whole file "
            f"({limit} bytes); refused before reading it."
        )


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(f"{path}: no single '<archive>/data.pkl' in the zip ({names[:5]}).")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in names:
            byteorder = archive.read(f"{prefix}byteorder").decode("ascii").strip()
        storages = {}

        def persistent_load(pid):
            pid = tuple(_decode(p) for p in pid)
            if len(pid) < 5 or pid[0] != "storage":
                raise UnsafeCheckpointError(f"{path}: unexpected persistent id {pid!r}.")
            _, storage_type, key, _location, numel = pid[:5]
            key = str(key)
            if key not in storages:
                storage = _Storage(_storage_type(storage_type, path), numel, key)
                entry = f"{prefix}data/{key}"
                if entry not in names:
                    raise ValueError(f"{path}: storage entry {entry} is missing.")
                _check_entry_size(archive, entry, path)
                storage.data = archive.read(entry)
                # Untyped storages (PyTorch >= 2) record numel in bytes.
                storage.numel = len(storage.data) // storage.storage_type.itemsize
                storages[key] = storage
            return storages[key]

        _check_entry_size(archive, pickles[0], path)
        with archive.open(pickles[0]) as f:
            obj = _RestrictedUnpickler(io.BytesIO(f.read()), persistent_load, path).load()
    return obj, byteorder


def _load_legacy(path):
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        header = _RestrictedUnpickler(f, _no_persistent(path), path)
        if header.load() != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a PyTorch checkpoint (bad magic number).")
        if header.load() != _LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported legacy PyTorch protocol version.")
        sys_info = header.load()
        little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
        storages, views = {}, {}

        def persistent_load(pid):
            pid = tuple(_decode(p) for p in pid)
            if pid[0] == "storage" and len(pid) >= 5:
                _, storage_type, key, _location, numel = pid[:5]
                view = pid[5] if len(pid) > 5 else None
                key = str(key)
                storage_type = _storage_type(storage_type, path)
                if key not in storages:
                    storages[key] = _Storage(storage_type, numel, key)
                if view is None:
                    return storages[key]
                # (view_key, offset, size): elements [offset, offset + size) of the root.
                view_key, offset, size = view
                view_key = str(_decode(view_key))
                if view_key not in views:
                    views[view_key] = _Storage(storage_type, size, view_key)
                    views[view_key].base = storages[key]
                    views[view_key].base_offset = int(offset)
                return views[view_key]
            raise UnsafeCheckpointError(f"{path}: unexpected persistent id {pid!r}.")

        obj = _RestrictedUnpickler(f, persistent_load, path).load()
        keys = _RestrictedUnpickler(f, _no_persistent(path), path).load()
        for key in keys:
            key = str(_decode(key))
            if key not in storages:
                raise ValueError(f"{path}: storage {key!r} is listed but never used.")
            storage = storages[key]
            raw = f.read(8)
            if len(raw) != 8:
                raise ValueError(f"{path}: truncated before storage {key!r}.")
            (numel,) = struct.unpack("<q" if little else ">q", raw)
            nbytes = numel * storage.storage_type.itemsize
            left = file_size - f.tell()
            if numel < 0 or nbytes > left:
                raise ValueError(
                    f"{path}: storage {key!r} declares {numel} elements ({nbytes} bytes) but the "
                    f"file has {left} bytes left (truncated or corrupt)."
                )
            storage.data = f.read(nbytes)
            if len(storage.data) != nbytes:
                raise ValueError(f"{path}: storage {key!r} is truncated.")
            storage.numel = numel
    return obj, "little" if little else "big"


def _no_persistent(path):
    def persistent_load(pid):
        raise UnsafeCheckpointError(f"{path}: unexpected persistent id {pid!r}.")

    return persistent_load


def _materialise(obj, byteorder, path):
    """Replaces every `_LazyTensor` by its array, visiting each shared object once.

    Pickle's memo lets one list appear many times (and inside itself); a walk that follows
    references as a tree may visit it exponentially often, so results are memoised by object
    identity and the number of distinct objects is bounded by `MAX_OBJECTS`.
    """
    memo = {}
    limit = MAX_OUTPUT_FACTOR * os.path.getsize(path) + MAX_OUTPUT_SLACK
    total = [0]

    def count(value):
        if len(memo) > MAX_OBJECTS:
            raise ValueError(
                f"more than {MAX_OBJECTS:,} objects in the pickle; a state dict has far fewer."
            )
        memo[id(value)] = (value, None)  # keeps `value` alive so its id stays unique

    def walk(value):
        seen = memo.get(id(value))
        if seen is not None and seen[1] is not None:
            return seen[1]
        if isinstance(value, _LazyTensor):
            value.check_size()
            total[0] += value.nbytes
            if total[0] > limit:
                raise ValueError(
                    f"its tensors add up to more than {limit:,} bytes "
                    f"({MAX_OUTPUT_FACTOR} x the file size + {MAX_OUTPUT_SLACK:,}); refused "
                    "before allocating."
                )
            out = value.materialise(byteorder)
        elif isinstance(value, dict):
            out = collections.OrderedDict()
            count(value)
            memo[id(value)] = (value, out)  # before the children: a dict may contain itself
            for k, v in value.items():
                out[k] = walk(v)
            return out
        elif isinstance(value, list):
            out = []
            count(value)
            memo[id(value)] = (value, out)
            out.extend(walk(v) for v in value)
            return out
        elif isinstance(value, tuple):
            count(value)
            out = tuple(walk(v) for v in value)
        else:
            return value
        count(value)
        memo[id(value)] = (value, out)
        return out

    return walk(obj)


def load(path):
    """Loads a `torch.save` file into numpy arrays without torch.

    Args:
      path: a `.pth`/`.pt` file written by `torch.save` (zip or legacy).

    Returns:
      The saved object with every tensor replaced by a numpy array (a state
      dict becomes an OrderedDict of name -> np.ndarray).

    Raises:
      FileNotFoundError: if `path` does not exist.
      UnsafeCheckpointError: if the pickle names a global outside the
        allow-list (it is never called); a `ValueError` too.
      ValueError: one line starting with the file, on a corrupt or truncated file
        or one past the resource bounds (see the module docstring).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"PyTorch checkpoint {path} not found.")
    try:
        if zipfile.is_zipfile(path):
            obj, byteorder = _load_zip(path)
        else:
            obj, byteorder = _load_legacy(path)
        return _materialise(obj, byteorder, path)
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(_one_line(path, e)) from e
    except (
        pickle.UnpicklingError,
        EOFError,
        zipfile.BadZipFile,
        struct.error,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
        MemoryError,
        RecursionError,
    ) as e:
        raise ValueError(
            _one_line(path, f"corrupt or truncated PyTorch checkpoint ({type(e).__name__}: {e})")
        ) from e
    except ValueError as e:
        raise ValueError(_one_line(path, e)) from e


def _one_line(path, error):
    """`<path>: <message>` on one line (the path once, even when the message has it already)."""
    message = " ".join(str(error).split())
    return message if message.startswith(f"{path}:") else f"{path}: {message}"


def load_state_dict(path):
    """Loads a state dict (name -> np.ndarray) from `path`.

    Accepts a bare state dict or a dict holding one under `state_dict`,
    `model` or `net` (training checkpoints); strips a `module.` prefix that
    `nn.DataParallel` adds to every key.

    Raises:
      ValueError: if no state dict of arrays is found, naming the file.
    """
    obj = load(path)
    if isinstance(obj, dict) and not _is_state_dict(obj):
        for key in ("state_dict", "model", "net"):
            if key in obj and _is_state_dict(obj[key]):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not _is_state_dict(obj):
        raise ValueError(
            f"{path}: does not hold a state dict of tensors "
            f"(top-level keys: {list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__})."
        )
    if obj and all(k.startswith("module.") for k in obj):
        obj = collections.OrderedDict((k[len("module.") :], v) for k, v in obj.items())
    return obj


def _is_state_dict(obj):
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())
    )
