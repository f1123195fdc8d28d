"""Exact Hessian-vector products of a Keras model's data loss.

Reference: Yao et al. 2018, "Hessian-based Analysis of Large Batch Training and
Robustness to Adversaries", §2 (back-propagating the second derivative).
Pearlmutter's identity ``H v = grad_theta <grad_theta L(theta), v>`` gives the
exact product at the cost of about one extra backward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_hessian import density as density_lib
from tf_hessian import eigen as eigen_lib
from tf_hessian import trace as trace_lib
from tf_hessian.linear_operator import ParameterLayout

HVP_MODES = ("forward_over_reverse", "reverse_over_reverse")


class HessianOperator:
    """The Hessian of ``L(theta) = mean_i loss(f(x_i; theta), y_i)`` as a linear operator.

    The model always runs with ``training=False`` (BatchNorm uses and keeps its
    moving statistics; dropout is off). Over a ``tf.data.Dataset`` the product
    is the sample-weighted mean ``sum_b n_b H_b v / N`` over all batches, the
    short last batch included. Under a ``MirroredStrategy`` every global batch
    is split over the replicas, each replica returns ``n_r H_r v`` and the sums
    are all-reduced, which equals the one-device result. Regularisation losses
    (weight decay) are not part of the objective (spec §1.2).

    Args:
      model: A built ``keras.Model``.
      loss_fn: ``loss_fn(y_true, y_pred)`` returning the batch-mean loss, e.g.
        ``keras.losses.SparseCategoricalCrossentropy(from_logits=True)``. A
        ``keras.losses.Loss`` object's per-replica scaling under a strategy is
        undone; a plain function must return the unscaled per-replica mean.
      data: An ``(x, y)`` batch or a ``tf.data.Dataset`` of ``(x, y)`` batches.
      variables: Parameters the Hessian is taken with respect to (default
        ``model.trainable_variables``); a subset gives a diagonal block.
      mode: ``"forward_over_reverse"`` (a ``ForwardAccumulator`` around a
        gradient tape, default) or ``"reverse_over_reverse"`` (nested tapes).
      strategy: A ``tf.distribute.Strategy``; the model must have been built in
        its scope. ``None`` means the current (default) strategy.
      jit_compile: Compile the per-replica product with XLA.

    Attributes:
      data: The data as given.
      dim: Number of scalar parameters.
      num_hvps: Hessian-vector products computed so far (one per data pass).
    """

    def __init__(
        self,
        model: keras.Model,
        loss_fn,
        data,
        *,
        variables: Sequence | None = None,
        mode: str = "forward_over_reverse",
        strategy: tf.distribute.Strategy | None = None,
        jit_compile: bool = False,
    ):
        if mode not in HVP_MODES:
            raise ValueError(f"mode must be one of {HVP_MODES}. Received: mode={mode!r}.")
        self.model = model
        self.loss_fn = loss_fn
        self.mode = mode
        self.variables = list(model.trainable_variables if variables is None else variables)
        if not self.variables:
            raise ValueError("The model has no trainable variables to take a Hessian over.")
        self.strategy = strategy if strategy is not None else tf.distribute.get_strategy()
        self.dtype = tf.as_dtype(self.variables[0].dtype)
        self.layout = ParameterLayout([v.shape for v in self.variables], self.dtype)
        self.dim = self.layout.dim
        self.num_hvps = 0
        loss_dtype = getattr(loss_fn, "dtype", None)
        if loss_dtype is not None and tf.as_dtype(loss_dtype).size < self.dtype.size:
            raise ValueError(
                f"loss_fn computes in {loss_dtype} but the parameters are {self.dtype.name}; "
                f"pass the loss a matching dtype, e.g. keras.losses.SparseCategoricalCrossentropy("
                f"from_logits=True, dtype='{self.dtype.name}')."
            )
        self.data = data
        reduction = getattr(loss_fn, "reduction", None)
        scaled = isinstance(loss_fn, keras.losses.Loss) and reduction in (
            "sum_over_batch_size",
            "mean",
        )
        self._replica_loss_scale = float(self.strategy.num_replicas_in_sync) if scaled else 1.0
        self._data = self._prepare_data(data)
        self._replica_hvp = tf.function(
            self._weighted_hvp, jit_compile=jit_compile, reduce_retracing=True
        )
        self._replica_grad = tf.function(
            self._weighted_grad, jit_compile=jit_compile, reduce_retracing=True
        )
        self._step_hvp = tf.function(self._distributed_hvp, reduce_retracing=True)
        self._step_grad = tf.function(self._distributed_grad, reduce_retracing=True)

    # ------------------------------------------------------------------ data
    def _prepare_data(self, data):
        if isinstance(data, tf.data.Dataset):
            spec = data.element_spec
            if not isinstance(spec, tuple) or len(spec) != 2:
                raise ValueError(
                    f"The dataset must yield (x, y) batches. Received: element_spec={spec}."
                )
            dataset = data
        else:
            if not isinstance(data, (tuple, list)) or len(data) != 2:
                raise ValueError(
                    f"data must be an (x, y) batch or a tf.data.Dataset. Received: {type(data)}."
                )
            x, y = (tf.convert_to_tensor(t) for t in data)
            if x.shape[0] is not None and y.shape[0] is not None and x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"x and y disagree on the batch size: x.shape={x.shape}, y.shape={y.shape}."
                )
            if self.strategy.num_replicas_in_sync == 1:
                return [(x, y)]
            dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(int(x.shape[0]))
        if self.strategy.num_replicas_in_sync == 1:
            return dataset
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    # ------------------------------------------------------- per-replica math
    def _loss(self, x, y):
        loss = tf.cast(self.loss_fn(y, self.model(x, training=False)), self.dtype)
        # keras.losses objects divide a mean loss by num_replicas_in_sync inside
        # a replica context (for SUM all-reduce of gradients); this operator
        # wants the plain per-replica mean and does its own sample weighting.
        return loss * self._replica_loss_scale

    @staticmethod
    def _non_empty(x, y):
        """Appends one zero example to an empty batch (its result is weighted by n = 0).

        A short last batch split over replicas can leave a replica empty, and
        keras losses of empty batches are not scalars. Padding avoids a
        ``tf.cond`` around the autodiff, which is slow to trace under a strategy.
        """
        pad = tf.maximum(1 - tf.shape(x)[0], 0)

        def padded(t):
            t = tf.convert_to_tensor(t)
            return tf.concat([t, tf.zeros(tf.concat([[pad], tf.shape(t)[1:]], 0), t.dtype)], 0)

        return padded(x), padded(y)

    def _weighted_grad(self, batch):
        """Returns ``(n * grad_b, n, n * loss_b)`` of one (per-replica) batch."""
        x, y = batch
        n_float = tf.cast(tf.shape(x)[0], self.dtype)
        x, y = self._non_empty(x, y)
        with tf.GradientTape() as tape:
            loss = self._loss(x, y)
        grads = tape.gradient(
            loss, self._sources(), unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return [n_float * tf.cast(g, self.dtype) for g in grads], n_float, n_float * loss

    def _weighted_hvp(self, batch, vector):
        """Returns ``(n * H_b v, n)`` of one (per-replica) batch."""
        x, y = batch
        n_float = tf.cast(tf.shape(x)[0], self.dtype)
        x, y = self._non_empty(x, y)
        vector = [tf.cast(t, self.dtype) for t in vector]
        if self.mode == HVP_MODES[0]:
            hv = self._hvp_forward(x, y, vector)
        else:
            hv = self._hvp_reverse(x, y, vector)
        return [n_float * tf.cast(h, self.dtype) for h in hv], n_float

    def _hvp_forward(self, x, y, vector):
        primals = self._sources()
        with tf.autodiff.ForwardAccumulator(primals, vector) as acc:
            with tf.GradientTape() as tape:
                loss = self._loss(x, y)
            grads = tape.gradient(loss, primals, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return acc.jvp(grads, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def _hvp_reverse(self, x, y, vector):
        sources = self._sources()
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = self._loss(x, y)
            grads = inner.gradient(
                loss, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )
            grad_dot_v = tf.add_n(
                [tf.reduce_sum(tf.cast(g, self.dtype) * v) for g, v in zip(grads, vector)]
            )
        return outer.gradient(
            grad_dot_v, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )

    def _sources(self):
        # The backing tf.Variables: Keras 3 variables carry a string dtype that
        # ForwardAccumulator and the zero-filling of unconnected gradients
        # reject (spec §6.2.1).
        return [v.value if isinstance(v, keras.Variable) else v for v in self.variables]

    # -------------------------------------------------- cross-replica steps
    def _distributed_hvp(self, batch, vector):
        hv, n = self.strategy.run(self._replica_hvp, args=(batch, vector))
        reduce = tf.distribute.ReduceOp.SUM
        return [self.strategy.reduce(reduce, h, axis=None) for h in hv], self.strategy.reduce(
            reduce, n, axis=None
        )

    def _distributed_grad(self, batch):
        grads, n, loss = self.strategy.run(self._replica_grad, args=(batch,))
        reduce = tf.distribute.ReduceOp.SUM
        return (
            [self.strategy.reduce(reduce, g, axis=None) for g in grads],
            self.strategy.reduce(reduce, n, axis=None),
            self.strategy.reduce(reduce, loss, axis=None),
        )

    # ------------------------------------------------------------ public API
    def hvp_flat(self, vector: np.ndarray) -> np.ndarray:
        """Hessian times a flat vector: float64 [dim] -> float64 [dim].

        Per-batch products are accumulated in float64 on the host.
        """
        vector = self.layout.unflatten(vector)
        total = np.zeros([self.dim], np.float64)
        count = 0.0
        for batch in self._data:
            hv, n = self._step_hvp(batch, vector)
            total += self.layout.flatten([h.numpy() for h in hv])
            count += float(n)
        if count == 0:
            raise ValueError("The data given to HessianOperator is empty.")
        self.num_hvps += 1
        return total / count

    matvec = hvp_flat

    def hvp(self, vector: Sequence) -> list[tf.Tensor]:
        """Hessian times v, v a list of tensors shaped like the variables (same structure back)."""
        return self.layout.unflatten(self.hvp_flat(self.layout.flatten(vector)))

    def loss_and_gradient(self) -> tuple[float, list[tf.Tensor]]:
        """The data loss L(theta) and its gradient (parameter structure), sample-weighted."""
        total = np.zeros([self.dim], np.float64)
        loss = 0.0
        count = 0.0
        for batch in self._data:
            grads, n, batch_loss = self._step_grad(batch)
            total += self.layout.flatten([g.numpy() for g in grads])
            loss += float(batch_loss)
            count += float(n)
        if count == 0:
            raise ValueError("The data given to HessianOperator is empty.")
        return loss / count, self.layout.unflatten(total / count)

    def loss(self) -> float:
        """The data loss L(theta) (sample-weighted mean over all batches)."""
        return self.loss_and_gradient()[0]

    def eigenvalues(
        self,
        top_n: int = 1,
        max_iter: int = 100,
        tol: float = 1e-3,
        *,
        method: str = "power",
        seed: int = 0,
        return_result: bool = False,
    ):
        """Top eigenpairs, largest magnitude first.

        Args:
          top_n: Number of eigenpairs.
          max_iter: Iteration cap (per eigenpair for power iteration; Lanczos steps for Lanczos).
          tol: Relative tolerance (eigenvalue change for power iteration, Ritz residual for Lanczos).
          method: ``"power"`` (power iteration with deflation) or ``"lanczos"``.
          seed: Seed of the starting vectors.
          return_result: Also return the ``eigen.EigenResult`` (history, HVP count).

        Returns:
          ``(values, vectors)``: a list of floats and a list of eigenvectors, each
          a list of tensors shaped like the variables; plus the result if asked.
        """
        if method == "power":
            result = eigen_lib.power_iteration(
                self, top_n=top_n, max_iter=max_iter, tol=tol, seed=seed
            )
        elif method == "lanczos":
            result = eigen_lib.lanczos_eigenpairs(
                self, top_n=top_n, max_iter=max_iter, tol=tol, seed=seed
            )
        else:
            raise ValueError(f"method must be 'power' or 'lanczos'. Received: method={method!r}.")
        values = [float(v) for v in result.eigenvalues]
        vectors = [self.layout.unflatten(v) for v in result.eigenvectors]
        return (values, vectors, result) if return_result else (values, vectors)

    def trace(
        self, max_iter: int = 100, tol: float = 1e-3, *, seed: int = 0, return_result: bool = False
    ):
        """Hutchinson estimate of tr(H) with Rademacher probes (see ``trace.hutchinson_trace``)."""
        result = trace_lib.hutchinson_trace(self, max_iter=max_iter, tol=tol, seed=seed)
        return (result.trace, result) if return_result else result.trace

    def density(
        self,
        num_iter: int = 100,
        num_runs: int = 1,
        *,
        seed: int = 0,
        num_bins: int = 10000,
        sigma_squared: float = 1e-5,
    ):
        """Smoothed spectral density by stochastic Lanczos quadrature.

        Returns:
          ``(grid, density)``: float64 arrays [num_bins]; the density integrates to 1.
        """
        nodes, weights = density_lib.slq(self, num_iter=num_iter, num_runs=num_runs, seed=seed)
        return density_lib.smooth_density(
            nodes, weights, num_bins=num_bins, sigma_squared=sigma_squared
        )

    def full_hessian(self) -> np.ndarray:
        """The explicit Hessian [dim, dim] (float64) by ``tape.jacobian``; small models only."""
        from tf_hessian import exact

        return exact.full_hessian(self)
