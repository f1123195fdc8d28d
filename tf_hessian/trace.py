"""Hutchinson trace estimation with Rademacher probes.

Reference: Hutchinson 1990; PyHessian ``trace()``: tr(H) = E[v^T H v] for
Rademacher v (entries +-1), whose variance is 2 * sum_{i != j} H_ij^2.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_hessian.eigen import apply_batch


@dataclasses.dataclass
class TraceResult:
    """A Hutchinson estimate.

    Attributes:
      trace: Mean of the samples.
      samples: The individual ``v^T H v`` values, float64 [num_samples].
      standard_error: ``std(samples) / sqrt(num_samples)`` (0 for one sample).
      converged: Whether the relative-change test fired before ``max_iter``.
      num_products: Operator applications made (more than ``num_matvecs`` when
        a block of probes was cut short by the stopping test); ``None`` if not
        recorded.
    """

    trace: float
    samples: np.ndarray
    standard_error: float
    converged: bool
    num_products: int | None = None

    @property
    def num_matvecs(self) -> int:
        return len(self.samples)


def hutchinson_trace(
    operator,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    min_iter: int = 10,
    seed: int = 0,
    block_size: int = 1,
) -> TraceResult:
    """Estimates tr(H) by averaging ``v^T H v`` over Rademacher probes.

    Stops once ``|mean - mean_prev| / (|mean_prev| + 1e-6) < tol`` (with ``abs``
    so negative curvature does not stop it early, spec §6.1.6) and at least
    ``min_iter`` probes were drawn: the running mean of a few probes can stand
    still by chance, which stops PyHessian's loop after two samples.

    Args:
      operator: Symmetric operator with ``dim`` and ``matvec``.
      max_iter: Probes at most.
      tol: Relative change of the running mean that stops the loop.
      min_iter: Probes at least before the test may fire.
      seed: Seed of the probes.
      block_size: Probes multiplied at once (``eigen.apply_batch``; a
        ``HessianOperator`` then computes the primal pass once per block). The
        stopping test still runs after every probe, so the samples equal those
        of ``block_size=1``; a block cut short by the test wastes its remaining
        products (``num_products`` counts them).

    Returns:
      A ``TraceResult``.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1. Received: block_size={block_size}.")
    if max_iter < 1 or min_iter < 1:
        raise ValueError(
            f"max_iter and min_iter must be >= 1. Received: max_iter={max_iter}, min_iter={min_iter}."
        )
    if tol <= 0:
        raise ValueError(f"tol must be > 0. Received: tol={tol}.")
    rng = np.random.default_rng(seed)
    samples: list[float] = []
    mean_prev, converged = None, False
    products = 0
    while len(samples) < max_iter and not converged:
        # Probes are drawn one by one, as for block_size=1, so the seed gives the same probes.
        count = min(block_size, max_iter - len(samples))
        probes = np.stack(
            [rng.choice(np.array([-1.0, 1.0]), size=operator.dim) for _ in range(count)]
        )
        products += count
        for v, hv in zip(probes, apply_batch(operator, probes)):
            samples.append(float(v @ hv))
            mean = float(np.mean(samples))
            if (
                mean_prev is not None
                and len(samples) >= min_iter
                and abs(mean - mean_prev) / (abs(mean_prev) + 1e-6) < tol
            ):
                converged = True
                break
            mean_prev = mean
    samples_array = np.array(samples)
    stderr = (
        float(np.std(samples_array, ddof=1) / np.sqrt(len(samples))) if len(samples) > 1 else 0.0
    )
    return TraceResult(float(np.mean(samples_array)), samples_array, stderr, converged, products)


def hutchpp_trace(
    operator, *, num_matvecs: int = 99, seed: int = 0, block_size: int = 1
) -> TraceResult:
    """Hutch++ estimate of tr(H) (Meyer, Musco, Musco & Woodruff 2021).

    A third of the products sketch the top of the spectrum (Q = orth(H S)),
    whose trace ``tr(Q^T H Q)`` is taken exactly; a third estimate the trace of
    the deflated rest ``(I - QQ^T) H (I - QQ^T)`` with Rademacher probes. The
    variance falls as 1/m^2 instead of Hutchinson's 1/m; exact for rank <= m/3.

    Args:
      operator: Symmetric operator with ``dim`` and ``matvec``.
      num_matvecs: Products m (a multiple of 3, at least 3).
      seed: Seed of the sketch and probes.
      block_size: Products taken at once in each of the three independent
        groups (sketch, Q, deflated probes) via ``eigen.apply_batch``; the
        result equals ``block_size=1`` up to the rounding of the product.

    Returns:
      A ``TraceResult``; ``samples`` are the deflated probes' ``g^T A g`` plus the exact
      low-rank part (their mean is the estimate), ``standard_error`` is the probes'.
    """
    if num_matvecs < 3 or num_matvecs % 3:
        raise ValueError(f"num_matvecs must be a positive multiple of 3. Received: {num_matvecs}.")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1. Received: block_size={block_size}.")
    k = num_matvecs // 3

    def apply_rows(rows):  # [k, dim] -> [k, dim], block_size rows per product
        return np.concatenate(
            [
                apply_batch(operator, rows[i : i + block_size])
                for i in range(0, len(rows), block_size)
            ]
        )

    rng = np.random.default_rng(seed)
    sketch = rng.choice(np.array([-1.0, 1.0]), size=(operator.dim, k))
    q, _ = np.linalg.qr(apply_rows(sketch.T).T)
    low_rank = float(np.sum(q.T * apply_rows(q.T)))
    probes = rng.choice(np.array([-1.0, 1.0]), size=(operator.dim, k))
    deflated = (probes - q @ (q.T @ probes)).T  # [k, dim]
    samples = np.sum(deflated * apply_rows(deflated), axis=1)
    samples_array = low_rank + samples
    stderr = float(np.std(samples, ddof=1) / np.sqrt(k)) if k > 1 else 0.0
    return TraceResult(float(np.mean(samples_array)), samples_array, stderr, True, 3 * k)
