"""Loss landscapes along Hessian eigenvectors, random and gradient directions.

Reference: Yao et al. 2018, §4 (1-D and 2-D loss plots along the top
eigenvectors of small- and large-batch minima); random directions are
filter-normalised as in Li et al. 2018, "Visualizing the Loss Landscape of
Neural Nets", §4.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tf_hessian.hvp import HessianOperator


def _as_flat(op: HessianOperator, direction) -> np.ndarray:
    if isinstance(direction, np.ndarray) and direction.ndim == 1:
        if direction.shape != (op.dim,):
            raise ValueError(
                f"A flat direction must have shape ({op.dim},). Received: {direction.shape}."
            )
        return direction.astype(np.float64)
    return op.layout.flatten(direction)


def random_direction(
    op: HessianOperator,
    *,
    seed: int = 0,
    filter_normalize: bool = True,
    ignore_bias_and_bn: bool = True,
) -> np.ndarray:
    """A Gaussian direction, filter-normalised or of unit norm.

    With ``filter_normalize`` each filter (last axis of a conv or dense kernel)
    of the direction is rescaled to the norm of the same filter of the weights,
    so the plot is comparable across networks of different scale; 1-D
    parameters (biases, BN) are zeroed when ``ignore_bias_and_bn``, else
    rescaled as a whole. Without it the direction is a unit vector over all
    parameters (PyHessian's random comparison direction).

    Args:
      op: The operator whose variables define the parameter space.
      seed: Seed of the draw.
      filter_normalize: Filter-wise normalisation (Li et al. 2018).
      ignore_bias_and_bn: Zero 1-D parameters under filter normalisation.

    Returns:
      float64 [dim].
    """
    rng = np.random.default_rng(seed)
    parts = []
    for variable in op.variables:
        weight = np.asarray(variable.numpy(), np.float64)
        d = rng.standard_normal(weight.shape)
        if filter_normalize:
            if weight.ndim <= 1:
                d = (
                    np.zeros_like(d)
                    if ignore_bias_and_bn
                    else d * np.linalg.norm(weight) / np.linalg.norm(d)
                )
            else:
                axes = tuple(range(weight.ndim - 1))
                w_norm = np.sqrt(np.sum(weight**2, axis=axes, keepdims=True))
                d_norm = np.sqrt(np.sum(d**2, axis=axes, keepdims=True))
                d = d * w_norm / (d_norm + 1e-10)
        parts.append(d)
    flat = op.layout.flatten(parts)
    return flat if filter_normalize else flat / np.linalg.norm(flat)


def gradient_direction(op: HessianOperator) -> np.ndarray:
    """The unit-norm gradient of the operator's data loss, float64 [dim]."""
    _, grad = op.loss_and_gradient()
    flat = op.layout.flatten(grad)
    norm = np.linalg.norm(flat)
    if norm == 0:
        raise ValueError("The gradient is exactly zero; no gradient direction exists.")
    return flat / norm


def _evaluate(op: HessianOperator, offsets: list[np.ndarray]) -> np.ndarray:
    """Loss at theta + offset for each flat offset, restoring theta by assignment."""
    saved = [np.array(v.numpy()) for v in op.variables]
    base = op.layout.flatten(saved)
    losses = []
    try:
        for offset in offsets:
            for variable, value in zip(op.variables, op.layout.unflatten(base + offset)):
                variable.assign(value)
            losses.append(op.loss())
    finally:
        # Assign the saved copies (not subtract the offset) so no drift accumulates.
        for variable, value in zip(op.variables, saved):
            variable.assign(value)
    return np.array(losses)


def loss_landscape_1d(op: HessianOperator, direction, alphas: Sequence[float]) -> np.ndarray:
    """``L(theta + alpha d)`` for each alpha, on the operator's data in inference mode.

    Args:
      op: Defines the model, loss, data and parameters.
      direction: Flat float64 [dim] array or tensors shaped like the variables.
      alphas: Step sizes, e.g. ``np.linspace(-0.5, 0.5, 21)`` (PyHessian tutorial).

    Returns:
      float64 [len(alphas)].
    """
    d = _as_flat(op, direction)
    return _evaluate(op, [a * d for a in alphas])


def loss_landscape_2d(
    op: HessianOperator, direction1, direction2, alphas1: Sequence[float], alphas2: Sequence[float]
) -> np.ndarray:
    """``L(theta + a d1 + b d2)`` on a grid (e.g. top-2 eigenvectors).

    Returns:
      float64 [len(alphas1), len(alphas2)], row i for ``alphas1[i]``.
    """
    d1, d2 = _as_flat(op, direction1), _as_flat(op, direction2)
    offsets = [a * d1 + b * d2 for a in alphas1 for b in alphas2]
    return _evaluate(op, offsets).reshape(len(alphas1), len(alphas2))
