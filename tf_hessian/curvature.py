"""Curvature operators beyond the Hessian: generalised Gauss-Newton and empirical Fisher.

Both reuse ``HessianOperator``'s data handling (batches, sample weights, every
Keras reduction, ``MirroredStrategy``): only the per-batch product differs, so
``eigenvalues``, ``trace`` and ``density`` work unchanged; ``full_hessian()``
returns the operator's explicit matrix (one product per column, small models).

- GGN: ``G = J^T H_out J`` with J = d(model output)/d(theta) and
  H_out = d^2 loss / d(output)^2. For softmax cross-entropy on logits, H_out =
  diag(p) - p p^T and G equals the Fisher information of the model's
  predictive distribution; for MSE G is the Hessian minus the terms of the
  output's curvature (G = H exactly for a linear model). Always PSD for convex losses.
- Empirical Fisher: ``F = sum_i w_i g_i g_i^T / sum W`` with g_i the gradient of
  example i's loss (PSD, rank <= N).

Reference: Schraudolph 2002 (GGN products); Kunstner et al. 2019 (empirical Fisher);
curvlinops / BackPACK / hessian-eigenthings v1 (spec §7.8).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_hessian.hvp import HessianOperator


def explicit_matrix(operator) -> np.ndarray:
    """``[matvec(e_1), ..., matvec(e_dim)]``: the dense matrix of any operator, float64 [dim, dim]."""
    if operator.dim > 5000:
        raise ValueError(
            f"explicit_matrix needs dim <= 5000 (one product per column). Received: dim={operator.dim}."
        )
    eye = np.eye(operator.dim)
    return np.stack([operator.matvec(eye[i]) for i in range(operator.dim)], axis=1)


def _single_output(operator):
    if operator._multi_output:
        raise ValueError(
            f"{type(operator).__name__} supports models with one loss output; this one has "
            f"{[o.name for o in operator._losses]}. Use HessianOperator."
        )


class GaussNewtonOperator(HessianOperator):
    """Generalised Gauss-Newton matrix ``J^T H_out J`` of the data loss (same arguments as HessianOperator).

    A product costs one forward pass with a tangent (J v), an output-space
    Hessian product (cheap) and one backward pass (J^T u).
    """

    def _weighted_hvp(self, batch, vector):
        _single_output(self)
        vector = [tf.cast(t, self.dtype) for t in vector]
        inputs = self._padded(batch)
        primals = self._sources()
        with tf.GradientTape() as tape:
            with tf.autodiff.ForwardAccumulator(primals, vector) as acc:
                y_pred = self._forward(inputs[0])
        jv = acc.jvp(y_pred, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        out = tf.stop_gradient(y_pred)
        with tf.GradientTape() as outer:
            outer.watch(out)
            with tf.GradientTape() as inner:
                inner.watch(out)
                total, norm = self._objective_of(inputs, out)
            g = inner.gradient(total, out)
            g_dot_jv = tf.reduce_sum(tf.cast(g, self.dtype) * tf.cast(jv, self.dtype))
        u = outer.gradient(g_dot_jv, out)
        gv = tape.gradient(
            y_pred,
            primals,
            output_gradients=tf.cast(u, y_pred.dtype),
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        return [tf.cast(t, self.dtype) for t in gv], norm

    def full_hessian(self) -> np.ndarray:
        """The explicit matrix of this operator [dim, dim] (dim products; small models)."""
        return explicit_matrix(self)


class EmpiricalFisherOperator(HessianOperator):
    """Empirical Fisher ``sum_i w_i g_i g_i^T / sum W`` (same arguments as HessianOperator).

    A product is one forward pass with a tangent (the per-example directional
    derivatives ``g_i . v``) and one backward pass of ``sum_i (g_i . v) w_i loss_i``.
    ``sum`` reduction gives ``sum_i g_i g_i^T``.
    """

    def _weighted_hvp(self, batch, vector):
        _single_output(self)
        vector = [tf.cast(t, self.dtype) for t in vector]
        inputs = self._padded(batch)
        if self._unreduced_loss is None:
            raise ValueError(
                "EmpiricalFisherOperator needs per-example losses: pass a keras.losses.Loss."
            )
        primals = self._sources()
        weight = inputs[2]
        with tf.GradientTape() as tape:
            with tf.autodiff.ForwardAccumulator(primals, vector) as acc:
                y_pred = self._forward(inputs[0])
                per_example = self._per_example_losses(inputs, y_pred)
            directional = tf.stop_gradient(
                acc.jvp(per_example, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            )
            if weight is not None:
                # per_example carries one factor w_i; the Fisher needs w_i g_i g_i^T, not w_i^2.
                directional = tf.math.divide_no_nan(directional, tf.cast(weight, self.dtype))
            target = tf.reduce_sum(directional * per_example)
        _, norm = self._objective_of(inputs, tf.stop_gradient(y_pred))
        fv = tape.gradient(target, primals, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return [tf.cast(t, self.dtype) for t in fv], norm

    def _per_example_losses(self, inputs, y_pred):
        """Weighted per-example losses ``w_i loss_i`` [B] (padding masked out)."""
        _, y, weight, real, _ = inputs
        values = tf.cast(self._unreduced_loss(y, y_pred, sample_weight=weight), self.dtype)
        values = tf.reshape(values, [tf.shape(values)[0], -1])
        return tf.reduce_sum(values, axis=1) * real

    def full_hessian(self) -> np.ndarray:
        """The explicit matrix of this operator [dim, dim] (dim products; small models)."""
        return explicit_matrix(self)
