"""Explicit Hessians and full spectra of small models (``tape.jacobian``).

These are the ground truth the Hessian-vector products and eigen-solvers are
tested against, and give the complete spectrum for models with up to a few
thousand parameters.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def full_hessian(operator) -> np.ndarray:
    """The explicit Hessian of a ``HessianOperator``'s objective.

    Uses the operator's model, loss (every supported reduction), variables,
    data and strategy: each (per-replica) batch gives the Hessian of its
    unnormalised loss by ``tape.jacobian``, the sums are all-reduced and
    normalised once, as for the operator's HVPs (inference mode).

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
    norm = 0.0
    seen = False
    for batch in operator._data:
        try:
            hessian, n = operator._step_hessian(batch, True)
        except (ValueError, tf.errors.InvalidArgumentError, NotImplementedError):
            # Some kernels have no pfor converter; the while-loop fallback is exact too.
            hessian, n = operator._step_hessian(batch, False)
        total += np.asarray(hessian, np.float64)
        norm += float(n)
        seen = True
    if not seen:
        raise ValueError("The data given to HessianOperator is empty.")
    return total / operator._normaliser(norm)


def full_spectrum(operator) -> np.ndarray:
    """All eigenvalues of the (symmetrised) explicit Hessian, ascending, float64 [dim]."""
    hessian = full_hessian(operator)
    return np.linalg.eigvalsh(0.5 * (hessian + hessian.T))
