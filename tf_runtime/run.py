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
import fcntl
import json
import os
import socket
import time

from tf_runtime import config as config_lib
from tf_runtime import files, validation
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


_HELD = {}  # lock path -> [open file descriptor, re-entry count] in this process


def _read_holder(path):
    """`(pid, host)` written into the lock file by its holder, or None (absent or being written)."""
    try:
        info = files.read_json(path)
        return int(info["pid"]), str(info.get("host", ""))
    except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
        return None


class WorkdirLock:
    """An exclusive `fcntl.flock` on `workdir/.lock`; the file also records the holder's pid and host.

    The kernel owns the lock: it is released when the holder's file descriptor closes, so a process
    that dies in any way (SIGKILL, OOM killer, power loss of a container) frees it, and a pid that
    is reused by an unrelated process afterwards blocks nothing. Taking the lock is one atomic
    `flock(LOCK_EX | LOCK_NB)`, so of any number of processes racing for it exactly one wins.
    The holder deletes the file before it unlocks; a process that locked a file which was deleted
    or replaced meanwhile (compared by inode) retries on the current file, so two holders of two
    different `.lock` inodes are impossible (flock(2): a lock belongs to the open file).

    A second run in the same workdir fails at once with an error naming the workdir, the holder's
    pid and host. Re-entrant within one process (a study that trains its rows in sub-folders may
    also lock the parent). The lock is local to one machine's kernel: run folders on a network
    file system shared by several hosts need one host per folder.
    """

    def __init__(self, workdir):
        self.workdir = os.fspath(workdir)
        # One key per folder however it is spelt (relative, trailing slash, symlink).
        self.path = os.path.join(os.path.realpath(self.workdir), LOCK_NAME)

    def _holder(self):
        return _read_holder(self.path)

    def _refuse(self):
        holder = self._holder()
        who = f"pid {holder[0]} on {holder[1] or 'unknown host'}" if holder else "pid unknown"
        return WorkdirLockedError(
            f"Workdir {self.workdir} is in use by another run ({who}; lock file {self.path}). "
            "Wait for it to finish or use another --workdir."
        )

    def acquire(self):
        held = _HELD.get(self.path)
        if held:
            held[1] += 1
            return self
        os.makedirs(self.workdir, exist_ok=True)
        for _ in range(100):
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._refuse() from None
            except BaseException:
                os.close(fd)
                raise
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is None or current.st_ino != os.fstat(fd).st_ino:
                os.close(fd)  # locked a file its holder deleted meanwhile: lock the current one
                continue
            me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            _HELD[self.path] = [fd, 1]
            return self
        raise WorkdirLockedError(f"Could not take the lock {self.path} (contended).")

    def release(self):
        held = _HELD.get(self.path)
        if held is None:
            return
        if held[1] > 1:
            held[1] -= 1
            return
        del _HELD[self.path]
        # Delete while still locked: a waiter that locks the deleted inode sees it and retries.
        files.remove_marker(self.path)
        os.close(held[0])

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


def config_differences(stored, config, ignore=RUN_SETTING_KEYS, *, subset=False):
    """Sorted dotted keys whose values differ between two configs (added/removed keys included).

    Keys with any path component in `ignore` are skipped. With `subset`, only the keys of
    `config` are compared: a key that only `stored` holds is not a difference (a stored record
    may name more than the fields its reader now records).
    """
    a, b = _flat(stored), _flat(config)
    keys = sorted(set(b) if subset else set(a) | set(b))

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
    if not isinstance(stored, dict):
        raise ConfigMismatchError(
            f"{path} holds a JSON {type(stored).__name__}, not a config object (overwritten by "
            "something else?). Restore it, or delete it to record the current config."
        )
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
        """True when an earlier `finish` completed and every artefact its marker lists exists.

        `finish` records in the DONE marker the files and folders its results name (e.g. a
        `saved_model` path); one deleted since makes the run not done, so a re-run recreates it
        instead of reporting a path that is gone (the missing paths are printed).
        """
        if not (files.has_marker(self.done_path) and os.path.exists(self.results_path)):
            return False
        missing = self.missing_artefacts()
        if missing:
            print(
                f"{self.done_path} lists {', '.join(missing)}, which no longer exist(s): "
                "running again to recreate them.",
                flush=True,
            )
            return False
        return True

    def missing_artefacts(self):
        """Paths listed by the DONE marker that no longer exist (relative to the workdir)."""
        try:
            listed = files.read_json(self.done_path).get("artefacts", [])
        except (FileNotFoundError, ValueError, AttributeError):
            return []
        if not isinstance(listed, list):
            return []
        return [
            p
            for p in listed
            if isinstance(p, str) and not os.path.exists(os.path.join(self.workdir, p))
        ]

    def _artefacts(self, results):
        """Relative paths of the existing files/folders inside the workdir that `results` names."""
        root = os.path.realpath(self.workdir)
        found = []

        def walk(value):
            if isinstance(value, dict):
                for v in value.values():
                    walk(v)
            elif isinstance(value, (list, tuple)):
                for v in value:
                    walk(v)
            elif isinstance(value, str) and value and len(value) < 4096:
                path = value if os.path.isabs(value) else os.path.join(self.workdir, value)
                try:
                    real = os.path.realpath(path)
                    inside = os.path.commonpath([root, real]) == root and real != root
                    exists = os.path.exists(real)
                except (ValueError, OSError):
                    return
                if inside and exists:
                    rel = os.path.relpath(real, root)
                    if rel not in found:
                        found.append(rel)

        walk(results)
        return found

    @property
    def results(self):
        """The stored results (dict; empty if none)."""
        stored = results_lib.load_results(self.results_path) or {}
        if not isinstance(stored, dict):
            raise ValueError(
                f"{self.results_path} holds a JSON {type(stored).__name__}, not a results "
                "object; restore it or delete it (and DONE) to recompute the results."
            )
        return stored

    def write_results(self, update):
        """Merges `update` into the results file (chief only); returns the merged results."""
        if not self.chief:
            return results_lib.merge_dicts(self.results, files._jsonable(update))
        return results_lib.merge_results(self.results_path, update)

    def finish(self, results):
        """Merges `results` into the results file, then writes the DONE marker; returns them.

        The marker lists the files and folders inside the workdir that the results name (see
        `done`).
        """
        merged = self.write_results(results)
        if self.chief:
            files.write_marker(
                self.done_path, {"time": time.time(), "artefacts": self._artefacts(merged)}
            )
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
      ValueError: naming each invalid run setting (`validation.RUN_SETTING_RULES`), before
        anything is written.
      WorkdirLockedError: another live process holds the workdir (names it and the pid).
      ConfigMismatchError: the stored config differs (names the keys), unless allowed.
    """
    validation.check_run_settings(config)
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
