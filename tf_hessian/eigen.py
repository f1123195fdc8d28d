"""Top eigenpairs of a symmetric operator: power iteration and Lanczos.

Both solvers take any object with ``dim`` and ``matvec(x: float64[dim]) ->
float64[dim]`` (``HessianOperator``, ``DenseOperator``) and work in float64 on
the host.

Reference: Yao et al. 2018, §2 (top eigenvalue of the Hessian by power
iteration, as in HessianFlow / PyHessian ``eigenvalues()``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from tf_hessian.linear_operator import orthogonalize, random_unit_vector

_WHICH = ("LM", "LA", "SA")


@dataclasses.dataclass
class EigenResult:
    """Eigenpairs and how they were found.

    Attributes:
      eigenvalues: float64 [k], in the order requested.
      eigenvectors: float64 [k, dim], unit norm, mutually orthogonal.
      history: Per eigenpair, the eigenvalue estimate at every iteration.
      converged: Per eigenpair, whether the tolerance was met before the cap.
      num_matvecs: Operator applications (Hessian-vector products) used.
      method: ``"power"`` or ``"lanczos"``.
      residuals: Per eigenpair, the relative residual ``||H v - lambda v|| / |lambda|``
        of the returned pair (Lanczos: ``beta_m |s_m| / |theta|`` from the last step,
        exact in exact arithmetic; power iteration: measured at its last product).
        ``lambda`` is then within ``residual * |lambda|`` of an eigenvalue of H.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    history: list[list[float]]
    converged: list[bool]
    num_matvecs: int
    method: str
    residuals: np.ndarray | None = None


def _check(operator, top_n: int, max_iter: int, tol: float):
    if top_n < 1 or top_n > operator.dim:
        raise ValueError(f"top_n must be in [1, {operator.dim}]. Received: top_n={top_n}.")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1. Received: max_iter={max_iter}.")
    if tol <= 0:
        raise ValueError(f"tol must be > 0. Received: tol={tol}.")


def power_iteration(
    operator, *, top_n: int = 1, max_iter: int = 100, tol: float = 1e-3, seed: int = 0
) -> EigenResult:
    """Top-``top_n`` eigenpairs (by magnitude) by power iteration with deflation.

    Each eigenpair starts from a Gaussian vector; before every product the
    iterate is Gram-Schmidt-orthogonalised against the eigenvectors already
    found (PyHessian's projection deflation). The iteration stops when the
    residual of the current Rayleigh pair is small:
    ``||H v - lambda v|| <= tol * |lambda|``, which guarantees that lambda lies
    within ``tol * |lambda|`` of an eigenvalue of the (deflated) operator
    (Bauer-Fike for symmetric matrices). PyHessian's test on the change of
    lambda, ``|lambda - lambda_prev| / |lambda_prev| < tol``, is not a bound:
    when the top two eigenvalues are close the estimate creeps and the test
    fires while the error is still many times tol. The returned pair is the
    Rayleigh quotient and vector whose residual met the test.

    Args:
      operator: Symmetric operator with ``dim`` and ``matvec``.
      top_n: Number of eigenpairs.
      max_iter: Products per eigenpair at most (PyHessian 100, HessianFlow drivers 10).
      tol: Relative residual ``||H v - lambda v|| / |lambda||`` that stops the iteration.
      seed: Seed of the starting vectors.

    Returns:
      An ``EigenResult`` in the order found (decreasing magnitude).
    """
    _check(operator, top_n, max_iter, tol)
    rng = np.random.default_rng(seed)
    values, vectors, histories, converged, residuals = [], [], [], [], []
    num_matvecs = 0
    for _ in range(top_n):
        v = orthogonalize(random_unit_vector(operator.dim, rng), vectors)
        v /= np.linalg.norm(v)
        eigenvalue, history, done = None, [], False
        for step in range(max_iter):
            hv = orthogonalize(operator.matvec(v), vectors)
            num_matvecs += 1
            eigenvalue = float(v @ hv)
            history.append(eigenvalue)
            norm = np.linalg.norm(hv)
            residual = float(np.linalg.norm(hv - eigenvalue * v))
            if residual <= tol * abs(eigenvalue) or norm == 0.0:
                # (norm 0: v lies in the null space of the deflated operator.)
                done = True
                break
            if step < max_iter - 1:  # the returned pair is the one whose residual was measured
                v = hv / norm
        values.append(eigenvalue)
        vectors.append(v)
        histories.append(history)
        converged.append(done)
        residuals.append(residual / max(abs(eigenvalue), 1e-300))
    return EigenResult(
        np.array(values),
        np.array(vectors),
        histories,
        converged,
        num_matvecs,
        "power",
        np.array(residuals),
    )


@dataclasses.dataclass
class LanczosResult:
    """A Lanczos tridiagonalisation ``Q H Q^T = T``.

    Attributes:
      alphas: Diagonal of T, float64 [m].
      betas: Off-diagonal of T, float64 [m - 1] (0 where the iteration restarted).
      basis: Orthonormal Lanczos vectors Q, float64 [m, dim].
      residual_norm: Norm of the last unnormalised residual (beta_m).
    """

    alphas: np.ndarray
    betas: np.ndarray
    basis: np.ndarray
    residual_norm: float

    def tridiagonal(self) -> np.ndarray:
        """The tridiagonal matrix T [m, m]."""
        return np.diag(self.alphas) + np.diag(self.betas, 1) + np.diag(self.betas, -1)


def apply_batch(operator, vectors: np.ndarray) -> np.ndarray:
    """The operator applied to each row of ``vectors`` [k, dim] -> float64 [k, dim].

    Uses ``operator.matvec_batch`` when it has one (``HessianOperator``: one
    batched Hessian product whose primal pass is shared by the k vectors),
    else one ``matvec`` per row.
    """
    vectors = np.asarray(vectors, np.float64)
    batched = getattr(operator, "matvec_batch", None)
    if batched is not None and len(vectors) > 1:
        return np.asarray(batched(vectors), np.float64)
    return np.stack([np.asarray(operator.matvec(v), np.float64) for v in vectors])


class _LanczosRun:
    """One Lanczos run as a stepper: ``vector`` is the next operator input, ``feed`` its product.

    Splitting the loop this way lets several independent runs share one
    batched product per step (``lanczos_runs``) with exactly the arithmetic of
    a run on its own (``lanczos``).
    """

    def __init__(self, dim, *, num_iter, seed, start=None, start_kind="normal", stop_fn=None):
        if num_iter < 1:
            raise ValueError(f"num_iter must be >= 1. Received: num_iter={num_iter}.")
        self.dim = dim
        self.rng = np.random.default_rng(seed)
        self.steps = min(num_iter, dim)
        q = (
            random_unit_vector(dim, self.rng, start_kind)
            if start is None
            else np.asarray(start, np.float64)
        )
        self.vector = q / np.linalg.norm(q)
        self.stop_fn = stop_fn
        self.basis, self.alphas, self.betas = [], [], []
        self.beta = 0.0
        self.done = False

    def feed(self, w: np.ndarray):
        q = self.vector
        j = len(self.basis)
        self.basis.append(q)
        alpha = float(q @ w)
        self.alphas.append(alpha)
        w = w - alpha * q - (self.beta * self.basis[-2] if j > 0 else 0.0)
        w = orthogonalize(w, self.basis)
        self.beta = float(np.linalg.norm(w))
        stop = self.stop_fn is not None and self.stop_fn(
            np.array(self.alphas), np.array(self.betas), self.beta
        )
        if stop or j == self.steps - 1:
            self.done = True
            return
        if self.beta <= 1e-10 * max(1.0, np.max(np.abs(self.alphas))):
            q = orthogonalize(random_unit_vector(self.dim, self.rng), self.basis)
            q /= np.linalg.norm(q)
            self.beta = 0.0
        else:
            q = w / self.beta
        self.betas.append(self.beta)
        self.vector = q

    def result(self) -> LanczosResult:
        return LanczosResult(
            np.array(self.alphas), np.array(self.betas), np.array(self.basis), self.beta
        )


def lanczos(
    operator,
    *,
    num_iter: int,
    seed: int = 0,
    start: np.ndarray | None = None,
    start_kind: str = "normal",
    stop_fn: Callable[[np.ndarray, np.ndarray, float], bool] | None = None,
) -> LanczosResult:
    """Lanczos iteration with full re-orthogonalisation.

    If the Krylov space is exhausted (beta ~ 0) the iteration restarts from a
    random vector orthogonal to the basis, recording beta = 0; T is then block
    diagonal and its eigenvalues are still eigenvalues of the operator.

    Args:
      operator: Symmetric operator with ``dim`` and ``matvec``.
      num_iter: Lanczos steps m (capped at ``dim``).
      seed: Seed of the start vector and restarts.
      start: Optional start vector [dim] (normalised here).
      start_kind: ``"normal"`` or ``"rademacher"`` random start.
      stop_fn: Optional ``stop_fn(alphas, betas_next, beta_last) -> bool`` checked after every step.

    Returns:
      A ``LanczosResult`` with m' <= m steps.
    """
    run = _LanczosRun(
        operator.dim,
        num_iter=num_iter,
        seed=seed,
        start=start,
        start_kind=start_kind,
        stop_fn=stop_fn,
    )
    while not run.done:
        run.feed(operator.matvec(run.vector))
    return run.result()


def lanczos_runs(
    operator,
    *,
    num_iter: int,
    seeds,
    start_kind: str = "normal",
    block_size: int = 1,
) -> list[LanczosResult]:
    """Independent Lanczos runs (one per seed) advanced in lockstep.

    Every step applies the operator to the current vectors of up to
    ``block_size`` runs at once (``apply_batch``); each run's arithmetic is
    that of ``lanczos(operator, num_iter=num_iter, seed=seed)``, so the results
    equal the sequential runs (up to the rounding of the batched product).

    Args:
      operator: Symmetric operator with ``dim`` and ``matvec`` (and optionally ``matvec_batch``).
      num_iter: Lanczos steps per run.
      seeds: One seed per run.
      start_kind: ``"normal"`` or ``"rademacher"`` random start.
      block_size: Runs that share one batched product (1 = sequential products).

    Returns:
      One ``LanczosResult`` per seed, in order.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1. Received: block_size={block_size}.")
    runs = [
        _LanczosRun(operator.dim, num_iter=num_iter, seed=seed, start_kind=start_kind)
        for seed in seeds
    ]
    for first in range(0, len(runs), block_size):
        group = runs[first : first + block_size]
        while not all(run.done for run in group):
            active = [run for run in group if not run.done]
            products = apply_batch(operator, np.stack([run.vector for run in active]))
            for run, w in zip(active, products):
                run.feed(w)
    return [run.result() for run in runs]


def _select(values: np.ndarray, which: str) -> np.ndarray:
    if which == "LM":
        return np.argsort(-np.abs(values), kind="stable")
    if which == "LA":
        return np.argsort(-values, kind="stable")
    return np.argsort(values, kind="stable")


def lanczos_eigenpairs(
    operator,
    *,
    top_n: int = 1,
    max_iter: int = 100,
    tol: float = 1e-3,
    which: str = "LM",
    seed: int = 0,
) -> EigenResult:
    """Top-``top_n`` eigenpairs from Ritz pairs of a Lanczos run.

    Stops when every selected Ritz pair has residual
    ``||H y - theta y|| = beta_m |s_{m,i}| <= tol * |theta|`` or after
    ``max_iter`` steps (always exact once ``max_iter >= dim``).

    Args:
      operator: Symmetric operator with ``dim`` and ``matvec``.
      top_n: Number of eigenpairs.
      max_iter: Lanczos steps at most.
      tol: Relative Ritz residual that stops the run.
      which: ``"LM"`` largest magnitude, ``"LA"`` largest algebraic, ``"SA"`` smallest algebraic.
      seed: Seed of the start vector.

    Returns:
      An ``EigenResult``; ``history[i]`` holds the i-th selected Ritz value after every step.
    """
    _check(operator, top_n, max_iter, tol)
    if which not in _WHICH:
        raise ValueError(f"which must be one of {_WHICH}. Received: which={which!r}.")
    history: list[list[float]] = [[] for _ in range(top_n)]
    state = {"converged": False}

    def stop_fn(alphas, betas, beta_last):
        t = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        theta, s = np.linalg.eigh(t)
        order = _select(theta, which)[:top_n]
        for i, k in enumerate(order):
            history[i].append(float(theta[k]))
        if len(alphas) < top_n:
            return False
        residuals = beta_last * np.abs(s[-1, order])
        state["converged"] = bool(
            np.all(residuals <= tol * np.maximum(np.abs(theta[order]), 1e-12))
        )
        return state["converged"]

    result = lanczos(operator, num_iter=max_iter, seed=seed, stop_fn=stop_fn)
    theta, s = np.linalg.eigh(result.tridiagonal())
    order = _select(theta, which)[:top_n]
    if len(order) < top_n:
        raise ValueError(
            f"Lanczos produced {len(order)} Ritz values, fewer than top_n={top_n}; raise max_iter."
        )
    vectors = (result.basis.T @ s[:, order]).T
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exhausted = len(result.alphas) == operator.dim
    converged = [state["converged"] or exhausted] * top_n
    residuals = (0.0 if exhausted else result.residual_norm) * np.abs(s[-1, order])
    return EigenResult(
        theta[order],
        vectors,
        history,
        converged,
        len(result.alphas),
        "lanczos",
        residuals / np.maximum(np.abs(theta[order]), 1e-300),
    )


def extreme_eigenvalues(
    operator, *, max_iter: int = 100, tol: float = 1e-3, seed: int = 0
) -> tuple[float, float]:
    """The smallest and largest eigenvalue ``(lambda_min, lambda_max)`` by one Lanczos run.

    Negative ``lambda_min`` with ``|lambda_min| / lambda_max`` far from 0 means
    significant negative curvature (the paper's saddle-point question, §1.1).
    """
    _check(operator, 1, max_iter, tol)

    def stop_fn(alphas, betas, beta_last):
        if len(alphas) < 2:
            return False
        t = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        theta, s = np.linalg.eigh(t)
        ends = np.array([0, len(theta) - 1])
        return bool(
            np.all(beta_last * np.abs(s[-1, ends]) <= tol * np.maximum(np.abs(theta[ends]), 1e-12))
        )

    result = lanczos(operator, num_iter=max_iter, seed=seed, stop_fn=stop_fn)
    theta = np.linalg.eigvalsh(result.tridiagonal())
    return float(theta[0]), float(theta[-1])


class ResampledOperator:
    """An operator whose every product uses the next mini-batch (cycling), as in hessian-eigenthings.

    Args:
      operators: One operator per mini-batch (e.g. ``HessianOperator``s of the
        batches of a dataset), all of one ``dim``. Their mean is the full-data operator
        when the batches are of equal size.
    """

    def __init__(self, operators):
        self.operators = list(operators)
        if not self.operators:
            raise ValueError("ResampledOperator needs at least one operator.")
        dims = {op.dim for op in self.operators}
        if len(dims) != 1:
            raise ValueError(f"The operators disagree on dim: {sorted(dims)}.")
        self.dim = dims.pop()
        self.num_matvecs = 0

    def matvec(self, x: np.ndarray) -> np.ndarray:
        op = self.operators[self.num_matvecs % len(self.operators)]
        self.num_matvecs += 1
        return op.matvec(x)


def stochastic_power_iteration(
    operator, *, num_iter: int = 100, average_last: int | None = None, seed: int = 0
) -> dict:
    """Top eigenvalue of E[H_b] by power iteration whose products resample the mini-batch.

    With a ``ResampledOperator`` every step sees a new batch: the iterate
    follows the mean operator while each Rayleigh quotient is noisy, so the
    estimate is the mean of the last ``average_last`` quotients (default half)
    with its standard error; a residual stop would never fire on the noise.

    Returns:
      Dict with ``eigenvalue``, ``standard_error``, ``eigenvector`` [dim], ``history``, ``num_matvecs``.
    """
    if num_iter < 2:
        raise ValueError(f"num_iter must be >= 2. Received: num_iter={num_iter}.")
    average_last = average_last or num_iter // 2
    if not 1 <= average_last <= num_iter:
        raise ValueError(f"average_last must be in [1, num_iter]. Received: {average_last}.")
    rng = np.random.default_rng(seed)
    v = random_unit_vector(operator.dim, rng)
    history = []
    for _ in range(num_iter):
        hv = operator.matvec(v)
        history.append(float(v @ hv))
        v = hv / np.linalg.norm(hv)
    tail = np.array(history[-average_last:])
    stderr = float(np.std(tail, ddof=1) / np.sqrt(len(tail))) if len(tail) > 1 else 0.0
    return {
        "eigenvalue": float(np.mean(tail)),
        "standard_error": stderr,
        "eigenvector": v,
        "history": history,
        "num_matvecs": num_iter,
    }
