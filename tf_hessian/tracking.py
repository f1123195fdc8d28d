"""The Hessian spectrum tracked during training: lambda_max and trace every K steps.

Reference: Yao et al. 2018, §1 (A1): "We backpropagate the second-derivative and
compute its spectrum during training." ``SpectrumTracker`` is a Keras callback
(``model.fit(..., callbacks=[tracker])``); custom loops call ``tracker.track(step)``.
Every record goes to TensorBoard (``hessian/lambda_max``, ``hessian/trace``) and to a
JSON list written atomically; records are keyed by step, so a resumed run that
tracks a step again replaces its record instead of duplicating it.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

import tf_runtime
from tf_hessian import eigen
from tf_hessian.hvp import HessianOperator


class SpectrumTracker(keras.callbacks.Callback):
    """Writes lambda_max (Lanczos, largest algebraic) and the Hutchinson trace every K steps.

    Args:
      data: ``(x, y)`` batch or dataset the Hessian is taken over (inference mode).
      every_steps: K; tracks when the optimizer step count is a multiple of K.
      network: The classifier whose data-loss Hessian is tracked (default: the
        model being trained). Weight decay is never part of it (spec §1.2).
      loss_fn: Loss (default softmax cross-entropy on logits in the weights' dtype).
      log_dir: TensorBoard folder (None: no events).
      json_path: JSON file of the records (None: no file).
      max_iter, tol: Lanczos steps at most and residual tolerance.
      trace_probes: Rademacher probes of the trace estimate (fixed seed: same probes every time).
      seed: Seed of the Lanczos start and the probes.
      strategy: The strategy the network lives under (None: current).

    Attributes:
      records: List of dicts ``{step, lambda_max, trace, trace_stderr, hvps, seconds}``.
    """

    def __init__(
        self,
        data,
        *,
        every_steps: int,
        network: keras.Model | None = None,
        loss_fn=None,
        log_dir: str | None = None,
        json_path: str | None = None,
        max_iter: int = 30,
        tol: float = 1e-3,
        trace_probes: int = 10,
        seed: int = 0,
        strategy=None,
    ):
        super().__init__()
        if every_steps < 1:
            raise ValueError(f"every_steps must be >= 1. Received: every_steps={every_steps}.")
        if trace_probes < 1:
            raise ValueError(f"trace_probes must be >= 1. Received: trace_probes={trace_probes}.")
        self.data = data
        self.every_steps = every_steps
        self.network = network
        self.loss_fn = loss_fn
        self.log_dir = log_dir
        self.json_path = json_path
        self.max_iter = max_iter
        self.tol = tol
        self.trace_probes = trace_probes
        self.seed = seed
        self.strategy = strategy
        self._operator = None
        self._writer = None
        self.records = []
        if json_path and tf.io.gfile.exists(json_path):
            self.records = list(tf_runtime.read_json(json_path))

    def _op(self) -> HessianOperator:
        if self._operator is None:
            network = self.network if self.network is not None else self.model
            dtype = network.trainable_variables[0].dtype
            loss_fn = self.loss_fn or keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, dtype=dtype
            )
            self._operator = HessianOperator(network, loss_fn, self.data, strategy=self.strategy)
        return self._operator

    def track(self, step: int) -> dict:
        """Computes and writes the record of ``step``; returns it."""
        op = self._op()
        start = time.perf_counter()
        before = op.num_hvps
        top = eigen.lanczos_eigenpairs(
            op,
            top_n=1,
            max_iter=min(self.max_iter, op.dim),
            tol=self.tol,
            which="LA",
            seed=self.seed,
        )
        rng = np.random.default_rng(self.seed)
        samples = []
        for _ in range(self.trace_probes):
            v = rng.choice(np.array([-1.0, 1.0]), size=op.dim)
            samples.append(float(v @ op.matvec(v)))
        record = {
            "step": int(step),
            "lambda_max": float(top.eigenvalues[0]),
            "lambda_max_converged": bool(top.converged[0]),
            "trace": float(np.mean(samples)),
            "trace_stderr": float(np.std(samples, ddof=1) / np.sqrt(len(samples)))
            if len(samples) > 1
            else 0.0,
            "hvps": op.num_hvps - before,
            "seconds": time.perf_counter() - start,
        }
        self.records = [r for r in self.records if r["step"] != record["step"]] + [record]
        self.records.sort(key=lambda r: r["step"])
        if self.json_path:
            tf_runtime.atomic_write_json(self.json_path, self.records)
        if self.log_dir:
            if self._writer is None:
                tf.io.gfile.makedirs(self.log_dir)
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default(step=int(step)):
                tf.summary.scalar("hessian/lambda_max", record["lambda_max"])
                tf.summary.scalar("hessian/trace", record["trace"])
            self._writer.flush()
        return record

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations)
        if step % self.every_steps == 0:
            self.track(step)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
