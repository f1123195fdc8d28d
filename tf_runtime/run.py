"""A run folder: workdir lock, config check on resume, results and the run's "done" marker.

Every trainer wraps its work in `open_run`:

    validate(config)                                       # package checks first
    with tf_runtime.open_run(workdir, config, strategy=strategy) as run:
        if run.done:
            return run.results                             # a finished run re-run is a no-op
        results = ...train, evaluate, export...
        return run.finish(results)                         # merged results.json, then DONE

`config.json` is written only after the caller validated the config and the stored one (if any)
matched; a different config in an existing run folder is an error naming the differing keys unless
`allow_config_change=True` (then the new config is recorded and the run is no longer "done").
"""

import contextlib
import errno
import json
import os
import socket
import time

from tf_runtime import config as config_lib
from tf_runtime import files
from tf_runtime import results as results_lib
from tf_runtime import strategy as strategy_lib

LOCK_NAME = ".lock"
DONE_NAME = "DONE"
# Settings that change how a run is watched, not what it computes: a resume may change them.
RUN_SETTING_KEYS = (
    "log_every",
    "summary_every",
    "checkpoint_every",
    "profile_steps",
    "runtime",
    "allow_config_change",
)


class WorkdirLockedError(RuntimeError):
    """Another live process holds the workdir's lock."""


class ConfigMismatchError(ValueError):
    """The config differs from the one recorded in the workdir."""


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.EPERM
    return True


_HELD = {}  # lock path -> re-entry count in this process


class WorkdirLock:
    """An exclusive lock file `workdir/.lock` holding the owner's pid and host.

    A second run in the same workdir fails with an error naming the workdir and the holder's pid;
    a lock left by a dead process on this host is taken over. Re-entrant within one process
    (a study that trains its rows in sub-folders may also lock the parent).
    """

    def __init__(self, workdir):
        self.workdir = os.fspath(workdir)
        # One key per folder however it is spelt (relative, trailing slash, symlink).
        self.path = os.path.join(os.path.realpath(self.workdir), LOCK_NAME)

    def _holder(self):
        try:
            info = files.read_json(self.path)
            return int(info["pid"]), str(info.get("host", ""))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def acquire(self):
        if _HELD.get(self.path):
            _HELD[self.path] += 1
            return self
        os.makedirs(self.workdir, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:  # being written right now, or garbage: look again
                    time.sleep(0.05)
                    holder = self._holder()
                if holder is not None:
                    pid, host = holder
                    if pid == os.getpid() and host == me["host"]:
                        pass  # our own lock left by an earlier, unreleased open_run
                    elif host != me["host"] or _pid_alive(pid):
                        raise WorkdirLockedError(
                            f"Workdir {self.workdir} is in use by another run (pid {pid} on "
                            f"{host or 'unknown host'}; lock file {self.path}). Wait for it to "
                            "finish or use another --workdir."
                        ) from None
                # A dead holder (or an unreadable lock file): take it over.
                files.remove_marker(self.path)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            _HELD[self.path] = 1
            return self
        raise WorkdirLockedError(f"Could not take the lock {self.path} (contended).")

    def release(self):
        count = _HELD.get(self.path, 0)
        if count > 1:
            _HELD[self.path] = count - 1
            return
        _HELD.pop(self.path, None)
        holder = self._holder()
        if holder is not None and holder[0] == os.getpid():
            files.remove_marker(self.path)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _flat(config):
    flat = {}

    def walk(value, prefix):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{prefix}{k}.")
            if not value and prefix:
                flat[prefix[:-1]] = {}
        else:
            flat[prefix[:-1]] = value

    walk(config_lib.config_to_dict(config), "")
    return flat


def config_differences(stored, config, ignore=RUN_SETTING_KEYS):
    """Sorted dotted keys whose values differ between two configs (added/removed keys included).

    Keys with any path component in `ignore` are skipped.
    """
    a, b = _flat(stored), _flat(config)
    keys = sorted(set(a) | set(b))

    def ignored(key):
        return any(part in ignore for part in key.split("."))

    return [k for k in keys if not ignored(k) and a.get(k, "<missing>") != b.get(k, "<missing>")]


def check_config(workdir, config, *, allow_change=False, filename="config.json"):
    """Compares `config` with `workdir/filename` (if present).

    Returns:
      The list of differing keys (empty when equal or when there is no stored config).

    Raises:
      ConfigMismatchError: naming the workdir and each differing key with its stored and new
        value, unless `allow_change`.
    """
    path = os.path.join(os.fspath(workdir), filename)
    if not os.path.exists(path):
        return []
    stored = files.read_json(path)
    diffs = config_differences(stored, config)
    if diffs and not allow_change:
        a, b = _flat(stored), _flat(config)
        detail = ", ".join(
            f"{k}: {a.get(k, '<missing>')!r} -> {b.get(k, '<missing>')!r}" for k in diffs[:20]
        )
        raise ConfigMismatchError(
            f"The config differs from the one this run was started with ({path}) in "
            f"{len(diffs)} key(s): {detail}. Use a fresh --workdir, or pass "
            "--allow_config_change (allow_config_change=True) to continue with the new config."
        )
    return diffs


class Run:
    """An open run folder (see the module docstring). Create it with `open_run`."""

    def __init__(self, workdir, *, results_name, chief):
        self.workdir = os.fspath(workdir)
        self.results_path = os.path.join(self.workdir, results_name)
        self.done_path = os.path.join(self.workdir, DONE_NAME)
        self.chief = chief

    @property
    def done(self):
        """True when an earlier call of `finish` completed (results written, then the marker)."""
        return files.has_marker(self.done_path) and os.path.exists(self.results_path)

    @property
    def results(self):
        """The stored results (dict; empty if none)."""
        return results_lib.load_results(self.results_path) or {}

    def write_results(self, update):
        """Merges `update` into the results file (chief only); returns the merged results."""
        if not self.chief:
            return results_lib.merge_dicts(self.results, files._jsonable(update))
        return results_lib.merge_results(self.results_path, update)

    def finish(self, results):
        """Merges `results` into the results file, then writes the DONE marker; returns them."""
        merged = self.write_results(results)
        if self.chief:
            files.write_marker(self.done_path, {"time": time.time()})
        return merged


@contextlib.contextmanager
def open_run(
    workdir,
    config,
    *,
    strategy=None,
    allow_config_change=False,
    results_name="results.json",
    config_name="config.json",
):
    """Locks `workdir`, checks `config` against the stored one, records it; yields a `Run`.

    Call it after validating `config`: `config.json` is written here, once the check passed.
    Under multi-worker strategies only the chief locks and writes.

    Raises:
      WorkdirLockedError: another live process holds the workdir (names it and the pid).
      ConfigMismatchError: the stored config differs (names the keys), unless allowed.
    """
    chief = strategy is None or strategy_lib.is_chief(strategy)
    lock = WorkdirLock(workdir) if chief else contextlib.nullcontext()
    with lock:
        run = Run(workdir, results_name=results_name, chief=chief)
        diffs = check_config(
            workdir, config, allow_change=allow_config_change, filename=config_name
        )
        if chief:
            if diffs:  # allowed change: the run continues under the new config
                files.remove_marker(run.done_path)
            config_lib.write_config(config, workdir, filename=config_name)
        yield run
