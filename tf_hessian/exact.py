"""Explicit Hessians and full spectra of small models (``tape.jacobian``).

These are the ground truth the Hessian-vector products and eigen-solvers are
tested against, and give the complete spectrum for models with up to a few
thousand parameters.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _batches(data):
    if isinstance(data, tf.data.Dataset):
        return data
    return [data]


def _batch_hessian(operator, x, y) -> np.ndarray:
    variables = operator._sources()
    zero = tf.UnconnectedGradients.ZERO
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            loss = tf.cast(operator.loss_fn(y, operator.model(x, training=False)), operator.dtype)
        grads = inner.gradient(loss, variables, unconnected_gradients=zero)
        flat_grad = tf.concat([tf.reshape(tf.cast(g, operator.dtype), [-1]) for g in grads], axis=0)
    try:
        blocks = outer.jacobian(flat_grad, variables, unconnected_gradients=zero)
    except (ValueError, tf.errors.InvalidArgumentError, NotImplementedError):
        # Some kernels have no pfor converter; the while-loop fallback is exact too.
        blocks = outer.jacobian(
            flat_grad, variables, unconnected_gradients=zero, experimental_use_pfor=False
        )
    del outer
    dim = operator.dim
    return np.concatenate([np.asarray(b, np.float64).reshape(dim, -1) for b in blocks], axis=1)


def full_hessian(operator) -> np.ndarray:
    """The explicit Hessian of a ``HessianOperator``'s objective.

    Uses the operator's model, loss, variables and data (sample-weighted over
    batches, inference mode) on the current device, without distribution.

    Args:
      operator: A ``HessianOperator``.

    Returns:
      float64 [dim, dim].
    """
    if operator.dim > 20000:
        raise ValueError(
            f"full_hessian needs dim <= 20000 (a dense dim x dim matrix). Received: dim={operator.dim}."
        )
    total = np.zeros([operator.dim, operator.dim], np.float64)
    count = 0
    for x, y in _batches(operator.data):
        n = int(tf.shape(x)[0])
        if n == 0:
            continue
        total += n * _batch_hessian(operator, x, y)
        count += n
    if count == 0:
        raise ValueError("The data given to HessianOperator is empty.")
    return total / count


def full_spectrum(operator) -> np.ndarray:
    """All eigenvalues of the (symmetrised) explicit Hessian, ascending, float64 [dim]."""
    hessian = full_hessian(operator)
    return np.linalg.eigvalsh(0.5 * (hessian + hessian.T))
