"""The resolved configuration of a run in its workdir, and the run-settings section.

Run settings (how a run is watched and saved, not what it computes) live in one section,
`config.runtime` (see `runtime_config`); `run_setting(config, name)` reads it, falling back to a
top-level field of the same name for configs written before the section existed.
"""

import os

import ml_collections

from tf_runtime import files

RUNTIME_DEFAULTS = dict(
    checkpoint_every=100,
    summary_every=10,
    log_every=10,
    profile_steps=(),
    allow_config_change=False,
)


def runtime_config(**overrides):
    """`ConfigDict` of the run settings with the project's defaults (`RUNTIME_DEFAULTS`).

    Raises:
      KeyError: naming an unknown setting.
    """
    unknown = sorted(set(overrides) - set(RUNTIME_DEFAULTS))
    if unknown:
        raise KeyError(f"Unknown run settings {unknown}; known: {sorted(RUNTIME_DEFAULTS)}")
    return ml_collections.ConfigDict({**RUNTIME_DEFAULTS, **overrides})


def run_setting(config, name):
    """`config.runtime.<name>`, else `config.<name>`, else the default in `RUNTIME_DEFAULTS`."""
    if name not in RUNTIME_DEFAULTS:
        raise KeyError(f"Unknown run setting {name!r}; known: {sorted(RUNTIME_DEFAULTS)}")
    runtime = config.get("runtime") if hasattr(config, "get") else None
    if runtime is not None and name in runtime:
        return runtime[name]
    if hasattr(config, "get") and config.get(name) is not None:
        return config.get(name)
    return RUNTIME_DEFAULTS[name]


def config_to_dict(config):
    """Plain nested dict of an `ml_collections.ConfigDict` (or a dict); tuples become lists."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if isinstance(config, dict):
        return {str(k): config_to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    return config


def write_config(config, workdir, filename="config.json"):
    """Writes `config` as sorted JSON to `workdir/filename` atomically and returns the path.

    Raises:
      TypeError: naming the field when a value is not JSON-serialisable.
    """
    as_dict = config_to_dict(config)
    try:
        return files.atomic_write_json(os.path.join(os.fspath(workdir), filename), as_dict)
    except TypeError as error:
        raise TypeError(f"Config is not JSON-serialisable: {error}") from error


def read_config(workdir, filename="config.json"):
    """The `ConfigDict` recorded in `workdir/filename`.

    Raises:
      FileNotFoundError / ValueError: naming the file when it is missing or not valid JSON.
    """
    path = os.path.join(os.fspath(workdir), filename)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {filename} in the run folder {workdir!r}.")
    stored = files.read_json(path)
    if not isinstance(stored, dict):
        raise ValueError(f"{path} holds a JSON {type(stored).__name__}, not a config object.")
    return ml_collections.ConfigDict(stored)
