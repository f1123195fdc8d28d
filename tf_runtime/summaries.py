"""TensorBoard writers (train/eval/...) and a progress display for long runs.

Only the chief task writes; on other workers every method is a no-op, so trainers call them
unconditionally.
"""

import os
import sys
import time

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api


class SummaryWriters:
    """One `tf.summary` writer per split under `workdir/tensorboard/<split>`.

    Args:
      workdir: run folder.
      enabled: False on non-chief workers (nothing is written).
    """

    def __init__(self, workdir, *, enabled=True):
        self._root = os.path.join(workdir, "tensorboard")
        self._enabled = enabled
        self._writers = {}

    def _writer(self, split):
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(os.path.join(self._root, split))
        return self._writers[split]

    def scalars(self, split, step, values):
        """Writes `{name: scalar}` at `step`; non-scalar or non-numeric values raise ValueError."""
        if not self._enabled:
            return
        with self._writer(split).as_default(step=int(step)):
            for name, value in values.items():
                array = np.asarray(value)
                if array.ndim:
                    raise ValueError(
                        f"Summary {name!r} must be a scalar. Received shape {array.shape}"
                    )
                tf.summary.scalar(name, float(array))

    def images(self, split, step, name, images, max_outputs=8):
        """Writes an image batch `[N, H, W, C]` with values in [0, 1] (clipped)."""
        if not self._enabled:
            return
        images = tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0)
        if images.shape.rank != 4:
            raise ValueError(f"Image summary {name!r} needs [N, H, W, C]. Received {images.shape}")
        with self._writer(split).as_default(step=int(step)):
            tf.summary.image(name, images, max_outputs=max_outputs)

    def hparams(self, values, split="train"):
        """Records the run's hyperparameters (flat dict of scalars/strings) for the HParams tab."""
        if not self._enabled:
            return
        flat = {
            k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in values.items()
        }
        with self._writer(split).as_default():
            hparams_api.hparams(flat)

    def flush(self):
        for writer in self._writers.values():
            writer.flush()

    def close(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def flatten_dict(nested, prefix=""):
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`, for hparams of nested configs."""
    flat = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_dict(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


class ProgressLogger:
    """Prints `step/total`, steps per second, ETA and the latest logs every `every` steps.

    Args:
      total_steps: the run's last step.
      every: print interval in steps (0 disables).
      stream: where to print (stdout by default).
      enabled: False on non-chief workers.
    """

    def __init__(self, total_steps, *, every=10, stream=None, enabled=True):
        self.total_steps = int(total_steps)
        self.every = int(every)
        self._stream = stream or sys.stdout
        self._enabled = enabled and self.every > 0
        self._last_time = None
        self._last_step = None

    def update(self, step, logs):
        """Returns the printed line (or None when nothing was printed)."""
        if not self._enabled:
            return None
        now = time.perf_counter()
        if self._last_time is None:
            self._last_time, self._last_step = now, step
        if step % self.every and step != self.total_steps:
            return None
        elapsed = now - self._last_time
        rate = (step - self._last_step) / elapsed if elapsed > 0 else 0.0
        eta = (self.total_steps - step) / rate if rate > 0 else float("nan")
        metrics = " ".join(f"{k}={float(v):.4g}" for k, v in sorted(logs.items()))
        line = f"step {step}/{self.total_steps}  {rate:.2f} steps/s  eta {eta:.0f}s  {metrics}"
        print(line, file=self._stream, flush=True)
        self._last_time, self._last_step = now, step
        return line


class TaskProgress:
    """One line per finished unit of long work (a study's model, a comparison's cell, a demo's
    section): `[label] i/total name: detail (elapsed 12 s, eta 48 s)`.

    The ETA assumes the remaining units take as long as the mean so far; units reused from an
    earlier run (`reused=True`) are not counted in that mean.

    Args:
      total: number of units.
      label: prefix of every line.
      stream: where to print (stdout by default).
    """

    def __init__(self, total, label, *, stream=None):
        self.total = int(total)
        self.label = label
        self._stream = stream or sys.stdout
        self._start = time.perf_counter()
        self._worked = 0.0
        self._counted = 0
        self._done = 0
        self._unit_start = self._start

    def start(self, name):
        """Prints `[label] i/total name ...` when a unit starts; returns the line."""
        self._unit_start = time.perf_counter()
        line = f"[{self.label}] {self._done + 1}/{self.total} {name} ..."
        print(line, file=self._stream, flush=True)
        return line

    def finish(self, name, detail="", *, reused=False):
        """Prints the finished unit with the elapsed time and the ETA; returns the line."""
        now = time.perf_counter()
        self._done += 1
        if not reused:
            self._worked += now - self._unit_start
            self._counted += 1
        left = self.total - self._done
        mean = self._worked / self._counted if self._counted else float("nan")
        eta = f"eta {left * mean:.0f} s" if self._counted else "eta unknown"
        tail = (
            f" (reused; elapsed {now - self._start:.0f} s, {eta})"
            if reused
            else (f" ({now - self._unit_start:.0f} s; elapsed {now - self._start:.0f} s, {eta})")
        )
        line = f"[{self.label}] {self._done}/{self.total} {name}{': ' + detail if detail else ''}{tail}"
        print(line, file=self._stream, flush=True)
        return line
