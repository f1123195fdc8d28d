"""Checkpoints with resume: step, models, optimizers and the RNG state in one object.

`tf.train.CheckpointManager` writes the checkpoint's data and index files first and the `checkpoint`
state file last, through an atomic rename, so a process killed mid-save leaves the previous
checkpoint as the latest readable one. A checkpoint corrupted afterwards (disk, copy) falls back
to the previous intact one, and an unreadable state file is recovered from the `ckpt-*` files:
a resume never silently restarts at step 0 over the old checkpoints. Under
`MultiWorkerMirroredStrategy` every worker must take part in a save (variables may be gathered
collectively); only the chief writes into `workdir`, the others into a scratch folder that is
deleted afterwards. Every worker restores from the chief's `workdir/checkpoints`.
"""

import os
import re
import shutil

import tensorflow as tf
from absl import logging

from tf_runtime import strategy as strategy_lib


class CheckpointHelper:
    """Tracks `step`, a `tf.random.Generator` and the given trackables; saves and resumes.

    Args:
      workdir: run folder; checkpoints go to `workdir/checkpoints`.
      max_to_keep: number of checkpoints kept.
      strategy: the strategy the trackables live under (decides chief vs scratch folder).
      seed: seed of the tracked `tf.random.Generator` (`self.rng`).
      optional_trackables: dict of more objects that are saved like `trackables` but restored
        only when the checkpoint holds them (checkpoints written before they were added still
        resume; e.g. the Keras metric trackers' running sums).
      **trackables: models, optimizers, variables to save (keyword = checkpoint key).

    Example:
      ckpt = CheckpointHelper(workdir, model=model, optimizer=model.optimizer)
      start = ckpt.restore_latest()
      ...
      ckpt.save(step)
    """

    def __init__(
        self,
        workdir,
        *,
        max_to_keep=3,
        strategy=None,
        seed=0,
        optional_trackables=None,
        **trackables,
    ):
        optional_trackables = dict(optional_trackables or {})
        reserved = {"step", "rng"} & (set(trackables) | set(optional_trackables))
        if set(trackables) & set(optional_trackables):
            raise ValueError(
                f"Names {sorted(set(trackables) & set(optional_trackables))} are given both as "
                "trackables and optional_trackables."
            )
        if reserved:
            raise ValueError(
                f"Trackable names {sorted(reserved)} are reserved by CheckpointHelper."
            )
        strategy = strategy or tf.distribute.get_strategy()
        self._chief = strategy_lib.is_chief(strategy)
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.rng = tf.random.Generator.from_seed(seed)
        # Saved: everything. Restored and checked: the required part, then the optional part
        # when the checkpoint has it.
        self._required = tf.train.Checkpoint(step=self.step, rng=self.rng, **trackables)
        self._optional = optional_trackables
        self.checkpoint = tf.train.Checkpoint(
            step=self.step, rng=self.rng, **trackables, **optional_trackables
        )
        directory = os.path.join(workdir, "checkpoints")
        if not self._chief:
            directory = os.path.join(workdir, f"_worker_scratch_{strategy_lib.task_id(strategy)}")
        self._directory = directory
        self._read_directory = os.path.join(workdir, "checkpoints")
        self._max_to_keep = max_to_keep
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory, max_to_keep=max_to_keep
        )

    @property
    def latest_path(self):
        """Path prefix of the latest complete checkpoint, or None."""
        return self.manager.latest_checkpoint

    def _candidates(self):
        """Checkpoint prefixes to try, newest first, and whether the state file was unusable."""
        directory = self._read_directory
        state_path = os.path.join(directory, "checkpoint")
        on_disk = sorted(
            (
                p[: -len(".index")]
                for p in tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index"))
            ),
            key=_checkpoint_number,
            reverse=True,
        )
        if not tf.io.gfile.exists(state_path):
            return on_disk, bool(on_disk)
        try:
            state = tf.train.get_checkpoint_state(directory)
        except Exception:  # noqa: BLE001 - any unreadable state file is handled below
            state = None
        if state is None or not state.model_checkpoint_path:
            if not on_disk:
                raise ValueError(
                    f"The checkpoint state file {state_path} is unreadable and there are no "
                    f"ckpt-*.index files beside it. Delete {directory} to start afresh."
                )
            logging.warning(
                "Checkpoint state file %s is unreadable; recovering from the checkpoint files %s.",
                state_path,
                [os.path.basename(p) for p in on_disk],
            )
            return on_disk, True
        listed = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
        listed = [p if os.path.isabs(p) else os.path.join(directory, p) for p in listed]
        return sorted(set(listed), key=_checkpoint_number, reverse=True), False

    def restore_latest(self):
        """Restores the newest intact checkpoint if there is one.

        A corrupt or truncated latest checkpoint falls back to the previous intact one (logging a
        warning that names the file); an unreadable `checkpoints/checkpoint` state file is
        recovered from the `ckpt-*` files. The state file is then rewritten to list only the
        intact checkpoints up to the restored one.

        Returns:
          The restored step (0 when starting fresh).

        Raises:
          ValueError: naming the files when checkpoints exist but none can be read, or when the
            latest one does not match the trackables (a different model in the same workdir).
        """
        candidates, repair = self._candidates()
        if not candidates:
            return 0
        failures = []
        for path in candidates:
            try:
                status = self._required.restore(path)
            except (AssertionError, ValueError) as error:  # shapes/objects of another model
                raise ValueError(
                    f"Cannot restore checkpoint {path}: it does not match this model ({error}). "
                    "Use a fresh --workdir or the same config."
                ) from error
            except Exception as error:  # noqa: BLE001 - corrupt files raise many types
                failures.append((path, error))
                logging.warning(
                    "Checkpoint %s is unreadable (%s); trying the previous one.",
                    _files_of(path),
                    error,
                )
                continue
            try:
                status.assert_existing_objects_matched()
            except (AssertionError, ValueError) as error:
                raise ValueError(
                    f"Cannot restore checkpoint {path}: it does not match this model ({error}). "
                    "Use a fresh --workdir or the same config."
                ) from error
            if self._optional:
                self._restore_optional(path)
            if failures or repair:
                self._rewrite_state(path, candidates)
            return int(self.step.numpy())
        detail = "; ".join(f"{_files_of(p)}: {type(e).__name__}: {e}" for p, e in failures)
        raise ValueError(
            f"No readable checkpoint in {self._read_directory}: {detail}. Delete the folder to "
            "start afresh (nothing was overwritten)."
        )

    def _restore_optional(self, path):
        saved = {name for name, _ in tf.train.list_variables(path)}
        for name, trackable in self._optional.items():
            if any(key.startswith(f"{name}/") for key in saved):
                tf.train.Checkpoint(**{name: trackable}).restore(
                    path
                ).assert_existing_objects_matched()

    def _rewrite_state(self, restored, candidates):
        if not self._chief:
            return
        number = _checkpoint_number(restored)
        kept = sorted(
            (p for p in candidates if _checkpoint_number(p) <= number), key=_checkpoint_number
        )
        tf.compat.v1.train.update_checkpoint_state(
            self._read_directory, restored, all_model_checkpoint_paths=kept
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._directory, max_to_keep=self._max_to_keep
        )

    def save(self, step):
        """Writes a checkpoint for `step` and returns its path (the chief's path on every worker)."""
        self.step.assign(step)
        path = self.manager.save(checkpoint_number=step)
        if not self._chief:
            shutil.rmtree(self._directory, ignore_errors=True)
        return path


def _checkpoint_number(prefix):
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else -1


def _files_of(prefix):
    names = sorted(os.path.basename(p) for p in tf.io.gfile.glob(prefix + ".*"))
    return f"{prefix} ({', '.join(names) or 'no files'})"


def load_weights(model, path):
    """`model.load_weights(path)` with errors that name the file.

    Raises:
      FileNotFoundError: naming `path` when it does not exist.
      ValueError: naming `path` and its size when it is truncated, corrupt or holds weights of
        another architecture.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Weights file not found: {path}")
    try:
        model.load_weights(path)
    except Exception as error:  # noqa: BLE001 - h5py/keras raise OSError, ValueError, KeyError...
        raise ValueError(
            f"Cannot load weights from {path} ({os.path.getsize(path)} bytes; truncated, corrupt "
            f"or of another model?): {type(error).__name__}: {error}"
        ) from error
    return model


def save_weights_atomic(model, path):
    """`model.save_weights` into a temporary `.weights.h5` beside `path`, then `os.replace`.

    A kill mid-write leaves the previous file (or none), never a half-written one.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".tmp-{os.getpid()}-{os.path.basename(path)}")
    if not tmp.endswith(".weights.h5"):
        raise ValueError(f"Keras weights files must end in .weights.h5. Received: {path}")
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
