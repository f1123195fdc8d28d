"""Exact Hessian-vector products of a Keras model's data loss.

Reference: Yao et al. 2018, "Hessian-based Analysis of Large Batch Training and
Robustness to Adversaries", §2 (back-propagating the second derivative).
Pearlmutter's identity ``H v = grad_theta <grad_theta L(theta), v>`` gives the
exact product at the cost of about one extra backward pass.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_hessian import _pfor_conv
from tf_hessian import density as density_lib
from tf_hessian import eigen as eigen_lib
from tf_hessian import objective as objective_lib
from tf_hessian import trace as trace_lib
from tf_hessian.linear_operator import ParameterLayout
from tf_hessian.operator_data import ObjectiveMixin

HVP_MODES = ("forward_over_reverse", "reverse_over_reverse")
REDUCTIONS = objective_lib.REDUCTIONS
# How hvp_batch maps the per-vector product over the k vectors.
BATCH_METHODS = ("vectorized_map", "map_fn")
# Errors with which pfor (tf.vectorized_map with fallback_to_while_loop=False) rejects an op.
_PFOR_ERRORS = (ValueError, NotImplementedError, TypeError, tf.errors.InvalidArgumentError)


class HessianOperator(ObjectiveMixin):
    """The Hessian of ``L(theta) = mean_i loss(f(x_i; theta), y_i)`` as a linear operator.

    The model runs with ``training=False`` by default (BatchNorm uses and keeps its
    moving statistics; dropout is off), as PyHessian's ``model.eval()``. Every
    (per-replica) batch b gives an unnormalised loss S_b (sum of its weighted
    per-example losses) and a normaliser share W_b (its example count, or its
    weight sum); the objective is ``sum_b S_b / sum_b W_b`` over all batches, the
    short last batch included, so ``H v = sum_b H_b v / sum_b W_b``. A model with
    several outputs has ``sum_o loss_weight_o * sum_b S_ob / sum_b W_ob`` (each
    output's normaliser over the whole data, found by one forward pass before the
    first product). Under a ``MirroredStrategy`` every global batch is split over
    the replicas and the sums are all-reduced, which equals the one-device result.
    Regularisation losses (weight decay) are not part of the objective (spec §1.2).

    Args:
      model: A built ``keras.Model`` (any inputs and outputs: a tensor, a tuple,
        a list or a dict of them).
      loss_fn: A ``keras.losses.Loss``, e.g.
        ``keras.losses.SparseCategoricalCrossentropy(from_logits=True)``, with
        reduction ``sum_over_batch_size``/``mean`` (objective: the mean over all
        loss elements of all batches), ``mean_with_sample_weight`` (sum of
        weighted losses over the sum of the weights, over all batches) or
        ``sum`` (the sum over the whole data); ``none`` is rejected. Exact on
        any batching and replica split. A Keras loss name or registered loss
        (``"sparse_categorical_crossentropy"``: Keras's default
        ``from_logits=False``). For several outputs, as in ``model.compile``: one
        loss for all, a dict keyed by output name or a list in output order
        (``None`` leaves an output out). ``None``: the loss (and loss weights)
        given to ``model.compile``. Or a plain ``loss_fn(y_true, y_pred)``
        returning the unscaled per-replica batch mean (one output; batches
        weighted by size). A cross-entropy with ``from_logits=True`` on a
        softmax/sigmoid output, or with ``from_logits=False`` on a linear output,
        is rejected.
      data: An ``(x, y)`` or ``(x, y, sample_weight)`` batch, or a batched
        ``tf.data.Dataset`` of them; each of x, y, sample_weight a tensor or a
        nest (tuple, list, dict) of tensors as ``model.fit`` takes them (y one
        entry per output; sample_weight one array for all outputs or one per
        output).
      variables: Parameters the Hessian is taken with respect to (default
        ``model.trainable_variables``); a subset gives a diagonal block.
      mode: ``"forward_over_reverse"`` (a ``ForwardAccumulator`` around a
        gradient tape, default) or ``"reverse_over_reverse"`` (nested tapes).
      strategy: A ``tf.distribute.Strategy``; the model must have been built in
        its scope. ``None`` means the current (default) strategy.
      jit_compile: Compile the per-replica product with XLA.
      batch_method: How ``hvp_batch`` maps the product over its k vectors:
        ``"vectorized_map"`` (default: pfor, which computes the vector-independent
        primal forward and backward once and batches only the tangent work) or
        ``"map_fn"`` (a ``tf.while_loop``, one full product per vector). If pfor
        has no converter for an op of the model, the operator falls back to
        ``"map_fn"`` with a warning and records why in ``batch_fallback_reason``.
      loss_weights: Per-output weights of the losses (as ``model.compile``);
        default 1, or the compiled ones when ``loss_fn=None``.
      training: Run the model in training mode: BatchNorm normalises by the
        statistics of each (per-replica) batch, so the Hessian is that of the
        training-mode loss (which differs from the inference-mode one). The
        model's variables are never updated: the forward is
        ``model.stateless_call`` and its new BN statistics and dropout seed are
        discarded, so every product uses the same dropout mask.

    Attributes:
      data: The data as given.
      dim: Number of scalar parameters.
      num_hvps: Hessian-vector products computed so far (a product with k
        vectors counts k; each product is one data pass for ``hvp`` and one
        pass per batch of vectors for ``hvp_batch``).
      batch_method: The method ``hvp_batch`` uses (after any fallback).
      batch_fallback_reason: ``None``, or the pfor error that caused the fallback.
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
        batch_method: str = "vectorized_map",
        loss_weights=None,
        training: bool = False,
    ):
        if mode not in HVP_MODES:
            raise ValueError(f"mode must be one of {HVP_MODES}. Received: mode={mode!r}.")
        if batch_method not in BATCH_METHODS:
            raise ValueError(
                f"batch_method must be one of {BATCH_METHODS}. Received: batch_method={batch_method!r}."
            )
        if not isinstance(training, bool):
            raise ValueError(f"training must be True or False. Received: training={training!r}.")
        self.training = training
        self.batch_method = batch_method
        self.batch_fallback_reason = None
        self._jit_compile = jit_compile
        self.model = model
        self.mode = mode
        self.variables = list(model.trainable_variables if variables is None else variables)
        if not self.variables:
            raise ValueError("The model has no trainable variables to take a Hessian over.")
        self.strategy = strategy if strategy is not None else tf.distribute.get_strategy()
        self.dtype = tf.as_dtype(self.variables[0].dtype)
        self.layout = ParameterLayout([v.shape for v in self.variables], self.dtype)
        self.dim = self.layout.dim
        self.num_hvps = 0
        self._output_names = objective_lib.output_names(model)
        self._losses = objective_lib.resolve_losses(loss_fn, model, loss_weights, self.dtype.name)
        objective_lib.check_logits(model, self._losses)
        self.loss_fn = self._losses[0].loss if len(self._losses) == 1 else loss_fn
        self.reduction = self._losses[0].reduction
        self._unreduced_loss = self._losses[0].unreduced
        self._multi_output = len(self._losses) > 1
        # Per-output weight / whole-data normaliser (several outputs), set before the first product.
        self._output_scale = None
        for output in self._losses:
            loss_dtype = getattr(output.loss, "dtype", None)
            if loss_dtype is not None and tf.as_dtype(loss_dtype).size < self.dtype.size:
                raise ValueError(
                    f"loss_fn computes in {loss_dtype} but the parameters are {self.dtype.name}; "
                    f"pass the loss a matching dtype, e.g. keras.losses.SparseCategoricalCrossentropy("
                    f"from_logits=True, dtype='{self.dtype.name}')."
                )
        self.data = data
        self._batches = self._prepare_data(data)
        self._replica_hvp = tf.function(
            self._weighted_hvp, jit_compile=jit_compile, reduce_retracing=True
        )
        self._replica_grad = tf.function(
            self._weighted_grad, jit_compile=jit_compile, reduce_retracing=True
        )
        self._step_hvp = tf.function(self._distributed_hvp, reduce_retracing=True)
        self._build_batch_functions()
        self._step_grad = tf.function(self._distributed_grad, reduce_retracing=True)
        self._step_hessian = tf.function(self._distributed_hessian, reduce_retracing=True)

    def _weighted_grad(self, batch):
        """Returns ``(grad S, W, S)`` of one (per-replica) batch."""
        with tf.GradientTape() as tape:
            total, norm = self._objective(batch)
        grads = tape.gradient(
            total, self._sources(), unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return [tf.cast(g, self.dtype) for g in grads], norm, total

    def _weighted_hvp(self, batch, vector):
        """Returns ``(H_S v, W)`` of one (per-replica) batch."""
        vector = [tf.cast(t, self.dtype) for t in vector]
        if self.mode == HVP_MODES[0]:
            hv, norm = self._hvp_forward(batch, vector)
        else:
            hv, norm = self._hvp_reverse(batch, vector)
        return [tf.cast(h, self.dtype) for h in hv], norm

    def _hvp_forward(self, batch, vector):
        primals = self._sources()
        with tf.autodiff.ForwardAccumulator(primals, vector) as acc:
            with tf.GradientTape() as tape:
                total, norm = self._objective(batch)
            grads = tape.gradient(
                total, primals, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )
        return acc.jvp(grads, unconnected_gradients=tf.UnconnectedGradients.ZERO), norm

    def _hvp_reverse(self, batch, vector):
        sources = self._sources()
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                total, norm = self._objective(batch)
            grads = inner.gradient(
                total, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )
            grad_dot_v = tf.add_n(
                [tf.reduce_sum(tf.cast(g, self.dtype) * v) for g, v in zip(grads, vector)]
            )
        hv = outer.gradient(grad_dot_v, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return hv, norm

    def _weighted_hvp_batch(self, batch, vectors):
        """Returns ``(H_S V, W)`` of one (per-replica) batch for k stacked vectors.

        ``vectors`` are tensors [k, *variable shape]. Under ``vectorized_map``
        pfor leaves every op whose inputs do not depend on the vector (the
        primal forward and backward, the normaliser) unconverted, so they run
        once for all k vectors; only the tangent ops get a leading k axis.
        """
        vectors = [tf.cast(t, self.dtype) for t in vectors]

        def one(vector):
            return self._weighted_hvp(batch, vector)

        if self.batch_method == "vectorized_map":
            hv, norm = tf.vectorized_map(one, vectors, fallback_to_while_loop=False)
        else:
            signature = (
                [tf.TensorSpec(h.shape[1:], self.dtype) for h in vectors],
                tf.TensorSpec([], self.dtype),
            )
            hv, norm = tf.map_fn(one, vectors, fn_output_signature=signature)
        # norm comes back [k] (the same value k times); it does not depend on the vector.
        return hv, norm[0]

    def _build_batch_functions(self):
        if self.batch_method == "vectorized_map":
            _pfor_conv.install()
        self._replica_hvp_batch = tf.function(
            self._weighted_hvp_batch, jit_compile=self._jit_compile, reduce_retracing=True
        )
        self._step_hvp_batch = tf.function(self._distributed_hvp_batch, reduce_retracing=True)

    def _weighted_hessian(self, batch, use_pfor=True):
        """Returns ``(explicit Hessian of S [dim, dim], W)`` of one (per-replica) batch."""
        sources = self._sources()
        zero = tf.UnconnectedGradients.ZERO
        with tf.GradientTape(persistent=True) as outer:
            with tf.GradientTape() as inner:
                total, norm = self._objective(batch)
            grads = inner.gradient(total, sources, unconnected_gradients=zero)
            flat = tf.concat([tf.reshape(tf.cast(g, self.dtype), [-1]) for g in grads], axis=0)
        blocks = outer.jacobian(
            flat, sources, unconnected_gradients=zero, experimental_use_pfor=use_pfor
        )
        del outer
        return (
            tf.concat([tf.reshape(tf.cast(b, self.dtype), [self.dim, -1]) for b in blocks], 1),
            norm,
        )

    def _sources(self):
        # The backing tf.Variables: Keras 3 variables carry a string dtype that
        # ForwardAccumulator and the zero-filling of unconnected gradients
        # reject (spec §6.2.1).
        return [v.value if isinstance(v, keras.Variable) else v for v in self.variables]

    # -------------------------------------------------- cross-replica steps
    def _reduce(self, values):
        return [self.strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None) for t in values]

    def _distributed_hvp(self, batch, vector):
        hv, norm = self.strategy.run(self._replica_hvp, args=(batch, vector))
        return self._reduce(hv), self._reduce([norm])[0]

    def _distributed_hvp_batch(self, batch, stacked):
        """``(H V, W)`` of one batch for k vectors, each a tensor [k, *variable shape]."""
        hv, norm = self.strategy.run(self._replica_hvp_batch, args=(batch, stacked))
        return self._reduce(hv), self._reduce([norm])[0]

    def _distributed_grad(self, batch):
        grads, norm, total = self.strategy.run(self._replica_grad, args=(batch,))
        return self._reduce(grads), *self._reduce([norm, total])

    def _distributed_hessian(self, batch, use_pfor=True):
        hessian, norm = self.strategy.run(self._weighted_hessian, args=(batch, use_pfor))
        return self._reduce([hessian, norm])

    def _normaliser(self, norm_sum: float) -> float:
        if self.reduction == "sum" or self._multi_output:
            return 1.0
        if norm_sum == 0:
            raise ValueError(
                "The data given to HessianOperator is empty (or all its weights are 0)."
            )
        return norm_sum

    # ------------------------------------------------------------ public API
    def hvp_flat(self, vector: np.ndarray) -> np.ndarray:
        """Hessian times a flat vector: float64 [dim] -> float64 [dim].

        Per-batch products are accumulated in float64 on the host.
        """
        vector = self.layout.unflatten(vector)
        product = self._over_data(lambda batch: self._step_hvp(batch, vector))
        self.num_hvps += 1
        return product

    def _over_data(self, step, k=None):
        """Sum over batches of step(batch)'s products, divided by the data's normaliser.

        `step(batch)` returns (per-variable products, the batch's weight W); each product
        is shaped like its variable, with a leading k axis when ``k`` is given. The result
        is float64 [dim], or [k, dim]. Each product is read through a view of its tensor
        (``Tensor.numpy()`` copies) and written into the float64 result: with one batch,
        cast and normaliser take a single pass; further batches are added in place.
        """
        rows = () if k is None else (k,)
        spans = list(zip(self.layout.offsets[:-1], self.layout.offsets[1:]))

        def columns(hv):
            return [
                (np.asarray(h).reshape(*rows, b - a), (..., slice(a, b)))
                for h, (a, b) in zip(hv, spans)
            ]

        first, total, norm = None, None, 0.0
        for batch in self._data:
            hv, n = step(batch)
            norm += float(n)
            if first is None and total is None:
                first = hv  # written out with the normaliser once the data is done
                continue
            if total is None:
                total = np.empty((*rows, self.dim), np.float64)
                for values, where in columns(first):
                    total[where] = values
                first = None
            for values, where in columns(hv):
                total[where] += values
        if first is None and total is None:
            raise ValueError("The data given to HessianOperator is empty.")
        scale = self._normaliser(norm)
        if total is not None:
            total /= scale
            return total
        total = np.empty((*rows, self.dim), np.float64)
        for values, where in columns(first):
            np.divide(values, scale, out=total[where])
        return total

    matvec = hvp_flat

    def hvp_flat_batch(self, vectors: np.ndarray) -> np.ndarray:
        """Hessian times k flat vectors at once: float64 [k, dim] -> float64 [k, dim].

        Exactly ``np.stack([hvp_flat(v) for v in vectors])`` (same per-batch
        products, replica reductions and normaliser), but the vector-independent
        primal forward and backward run once per data batch for all k vectors
        (see ``batch_method``). Memory grows with k: the tangent activations of
        k vectors are held at once.
        """
        vectors = np.asarray(vectors, np.float64)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or vectors.shape[0] < 1:
            raise ValueError(
                f"Expected k >= 1 flat vectors of shape (k, {self.dim}). "
                f"Received: shape={vectors.shape}."
            )
        k = vectors.shape[0]
        # NumPy casts each variable's column block into a buffer its tensor shares (no
        # conversion copy); _over_data reads the products back through views.
        stacked = self.layout.unflatten_rows(vectors)
        products = self._over_data(lambda batch: self._batch_step(batch, stacked), k)
        self.num_hvps += k
        return products

    def _batch_step(self, batch, stacked):
        if self.batch_method != "vectorized_map":
            return self._step_hvp_batch(batch, stacked)
        try:
            return self._step_hvp_batch(batch, stacked)
        except _PFOR_ERRORS as error:
            # pfor has no converter for some op of this model: a while loop over the
            # vectors is exact too (one full product per vector, no shared primal).
            # A tf.function error reads "in user code: <traceback> <the error>": keep the error.
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            reason = f"{type(error).__name__}: {lines[-1] if lines else ''}"
            warnings.warn(
                "HessianOperator.hvp_batch: tf.vectorized_map failed, falling back to "
                f"tf.map_fn (no shared primal pass). Reason: {reason}",
                RuntimeWarning,
                stacklevel=3,
            )
            self.batch_method = "map_fn"
            self.batch_fallback_reason = reason
            self._build_batch_functions()
            return self._step_hvp_batch(batch, stacked)

    matvec_batch = hvp_flat_batch

    def hvp_batch(self, vectors: Sequence[Sequence]) -> list[list[tf.Tensor]]:
        """H times k vectors, each a list of tensors shaped like the variables.

        Returns k products in the same structure (see ``hvp_flat_batch``).
        """
        if len(vectors) < 1:
            raise ValueError("hvp_batch needs at least one vector. Received: 0 vectors.")
        flat = np.stack([self.layout.flatten(v) for v in vectors])
        return [self.layout.unflatten(row) for row in self.hvp_flat_batch(flat)]

    def hvp(self, vector: Sequence) -> list[tf.Tensor]:
        """Hessian times v, v a list of tensors shaped like the variables (same structure back)."""
        return self.layout.unflatten(self.hvp_flat(self.layout.flatten(vector)))

    def loss_and_gradient(self) -> tuple[float, list[tf.Tensor]]:
        """The data loss L(theta) and its gradient (parameter structure), over all the data."""
        total = np.zeros([self.dim], np.float64)
        loss = 0.0
        norm = 0.0
        seen = False
        for batch in self._data:
            grads, n, batch_loss = self._step_grad(batch)
            total += self.layout.flatten([g.numpy() for g in grads])
            loss += float(batch_loss)
            norm += float(n)
            seen = True
        if not seen:
            raise ValueError("The data given to HessianOperator is empty.")
        scale = self._normaliser(norm)
        return loss / scale, self.layout.unflatten(total / scale)

    def loss(self) -> float:
        """The data loss L(theta) over all batches."""
        return self.loss_and_gradient()[0]

    def eigenvalues(
        self,
        top_n: int = 1,
        max_iter: int = 100,
        tol: float = 1e-3,
        *,
        method: str = "lanczos",
        seed: int = 0,
        return_result: bool = False,
    ):
        """Top eigenpairs, largest magnitude first.

        Args:
          top_n: Number of eigenpairs.
          max_iter: Iteration cap (per eigenpair for power iteration; Lanczos steps for Lanczos).
          tol: Relative residual ``||H v - lambda v|| <= tol |lambda|`` that stops either solver.
          method: ``"lanczos"`` (default: Ritz pairs of one Lanczos run with full
            re-orthogonalisation; reaches a given residual in far fewer HVPs) or
            ``"power"`` (power iteration with deflation, as PyHessian).
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
        self,
        max_iter: int = 100,
        tol: float = 1e-3,
        *,
        seed: int = 0,
        return_result: bool = False,
        block_size: int = 1,
    ):
        """Hutchinson estimate of tr(H) with Rademacher probes (see ``trace.hutchinson_trace``).

        Stops once the standard error is at most ``tol * |trace|`` (after 10
        probes) or after ``max_iter`` probes; ``return_result=True`` also returns
        the ``TraceResult`` (standard error, samples, ``converged``).
        ``block_size`` probes share one batched product (``hvp_flat_batch``); same samples.
        """
        result = trace_lib.hutchinson_trace(
            self, max_iter=max_iter, tol=tol, seed=seed, block_size=block_size
        )
        return (result.trace, result) if return_result else result.trace

    def density(
        self,
        num_iter: int = 100,
        num_runs: int = 1,
        *,
        seed: int = 0,
        num_bins: int = 10000,
        sigma_squared: float = 1e-5,
        block_size: int = 1,
    ):
        """Smoothed spectral density by stochastic Lanczos quadrature.

        ``block_size`` of the ``num_runs`` Lanczos runs advance in lockstep with
        one batched product per step (``hvp_flat_batch``); same result.

        Returns:
          ``(grid, density)``: float64 arrays [num_bins]; the density integrates to 1.
        """
        nodes, weights = density_lib.slq(
            self, num_iter=num_iter, num_runs=num_runs, seed=seed, block_size=block_size
        )
        return density_lib.smooth_density(
            nodes, weights, num_bins=num_bins, sigma_squared=sigma_squared
        )

    def full_hessian(self) -> np.ndarray:
        """The explicit Hessian [dim, dim] (float64) by ``tape.jacobian``; small models only."""
        from tf_hessian import exact

        return exact.full_hessian(self)
