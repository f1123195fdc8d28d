"""A run's results file, written atomically and merged on re-run.

A re-run that produces fewer or missing values (a resumed run, an evaluation skipped) never
overwrites stored numbers with nothing: `merge_results` keeps a stored value wherever the update
is None/NaN or lacks the key.
"""

import os

from tf_runtime import files


def merge_dicts(stored, update):
    """`stored` updated recursively by `update`, ignoring None/NaN values of `update`."""
    merged = dict(stored)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_dicts(merged[key], value)
        elif not files.is_missing(value) or key not in merged:
            merged[key] = value
    return merged


def load_results(path):
    """The results dict stored at `path`, or None if there is none.

    Raises:
      ValueError: naming `path` if the file is not valid JSON.
    """
    if not os.path.exists(os.fspath(path)):
        return None
    return files.read_json(path)


def merge_results(path, update):
    """Merges `update` into the results at `path` (see `merge_dicts`), writes atomically.

    Returns:
      The merged results as written (JSON types: tuples became lists).
    """
    merged = merge_dicts(load_results(path) or {}, files._jsonable(update))
    files.atomic_write_json(path, merged)
    return merged
