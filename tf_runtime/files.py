"""Atomic writes: text, JSON, "done" markers and whole folders (temporary name + rename).

A process killed mid-write leaves either the previous file or the new one, never half of one, so
a re-run never takes a half-written result, marker or export for finished.
"""

import contextlib
import json
import math
import os
import shutil
import tempfile


def atomic_write_text(path, text):
    """Writes `text` to `path` through a temporary file in the same folder and `os.replace`.

    Returns:
      `path`.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return path


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / tf scalar
        value = value.item()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    return value


def atomic_write_json(path, obj):
    """Writes `obj` as sorted, indented JSON atomically (numpy scalars/arrays become numbers/lists).

    Raises:
      TypeError: naming `path` when a value is not JSON-serialisable.
    """
    try:
        text = json.dumps(_jsonable(obj), indent=2, sort_keys=True)
    except TypeError as error:
        raise TypeError(f"Cannot write {path} as JSON: {error}") from error
    return atomic_write_text(path, text + "\n")


def read_json(path):
    """The JSON object in `path`.

    Raises:
      FileNotFoundError: naming `path` when it does not exist.
      ValueError: naming `path` when it is not valid JSON (e.g. truncated).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file: {path}")
    with open(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete or restore it.") from error


def write_marker(path, info=None):
    """Atomically writes a "done" marker (a small JSON file) at `path`; returns `path`."""
    return atomic_write_json(path, {"done": True, **(info or {})})


def has_marker(path):
    """True when a complete marker written by `write_marker` exists at `path`."""
    try:
        return read_json(path).get("done") is True
    except (FileNotFoundError, ValueError, AttributeError):
        return False


def remove_marker(path):
    """Deletes the marker at `path` if present."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.fspath(path))


@contextlib.contextmanager
def atomic_directory(path):
    """Yields a temporary folder beside `path`; on success it replaces `path` in one rename.

    On an exception the temporary folder is deleted and `path` is left as it was. A previous
    `path` is moved aside before the rename and deleted after it, so at every instant `path` is
    either absent, the old complete folder or the new complete folder.

    Example:
      with atomic_directory(f"{workdir}/saved_model") as tmp:
          write_savedmodel(tmp)
    """
    path = os.fspath(path).rstrip(os.sep)
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    for stale in os.listdir(parent):  # leftovers of killed writers
        if stale.startswith(f".{base}.") and stale.endswith((".partial", ".old")):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".partial", dir=parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.exists(path):
        old = tempfile.mkdtemp(prefix=f".{base}.", suffix=".old", dir=parent)
        os.rmdir(old)
        os.replace(path, old)
    os.replace(tmp, path)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def is_missing(value):
    """True for None and float NaN (values a merge must not write over a stored result)."""
    return value is None or (isinstance(value, float) and math.isnan(value))
