"""Checkpoints with resume: step, models, optimizers and the RNG state in one object.

`tf.train.CheckpointManager` writes the checkpoint's data and index files first and the `checkpoint`
state file last, through an atomic rename, so a process killed mid-save leaves the previous
checkpoint as the latest readable one. Under `MultiWorkerMirroredStrategy` every worker must take
part in a save (variables may be gathered collectively); only the chief writes into `workdir`, the
others into a scratch folder that is deleted afterwards.
"""

import os
import shutil

import tensorflow as tf

from tf_runtime import strategy as strategy_lib


class CheckpointHelper:
    """Tracks `step`, a `tf.random.Generator` and the given trackables; saves and resumes.

    Args:
      workdir: run folder; checkpoints go to `workdir/checkpoints`.
      max_to_keep: number of checkpoints kept.
      strategy: the strategy the trackables live under (decides chief vs scratch folder).
      seed: seed of the tracked `tf.random.Generator` (`self.rng`).
      **trackables: models, optimizers, variables to save (keyword = checkpoint key).

    Example:
      ckpt = CheckpointHelper(workdir, model=model, optimizer=model.optimizer)
      start = ckpt.restore_latest()
      ...
      ckpt.save(step)
    """

    def __init__(self, workdir, *, max_to_keep=3, strategy=None, seed=0, **trackables):
        reserved = {"step", "rng"} & set(trackables)
        if reserved:
            raise ValueError(
                f"Trackable names {sorted(reserved)} are reserved by CheckpointHelper."
            )
        strategy = strategy or tf.distribute.get_strategy()
        self._chief = strategy_lib.is_chief(strategy)
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.rng = tf.random.Generator.from_seed(seed)
        self.checkpoint = tf.train.Checkpoint(step=self.step, rng=self.rng, **trackables)
        directory = os.path.join(workdir, "checkpoints")
        if not self._chief:
            directory = os.path.join(workdir, f"_worker_scratch_{strategy_lib.task_id(strategy)}")
        self._directory = directory
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory, max_to_keep=max_to_keep
        )

    @property
    def latest_path(self):
        """Path prefix of the latest complete checkpoint, or None."""
        return self.manager.latest_checkpoint

    def restore_latest(self):
        """Restores the latest checkpoint if there is one.

        Returns:
          The restored step (0 when starting fresh).

        Raises:
          ValueError: if the latest checkpoint exists but cannot be read or does not match the
            trackables (for example a different model configuration in the same workdir).
        """
        path = self.manager.latest_checkpoint
        if path is None:
            return 0
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, tf.errors.OpError, ValueError) as error:
            raise ValueError(
                f"Cannot restore checkpoint {path}: {error}. Use a fresh --workdir or the same config."
            ) from error
        return int(self.step.numpy())

    def save(self, step):
        """Writes a checkpoint for `step` and returns its path (the chief's path on every worker)."""
        self.step.assign(step)
        path = self.manager.save(checkpoint_number=step)
        if not self._chief:
            shutil.rmtree(self._directory, ignore_errors=True)
        return path
