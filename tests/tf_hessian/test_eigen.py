"""Power iteration, Lanczos, Hutchinson and SLQ on matrices with known spectra."""

import numpy as np
import pytest

from tf_hessian import density, eigen, linear_operator, trace
from tf_hessian.testing import random_spd


def test_power_iteration_top3_matches_eigvalsh():
    q = random_spd(12, seed=1)
    result = eigen.power_iteration(
        linear_operator.DenseOperator(q), top_n=3, max_iter=2000, tol=1e-12
    )
    np.testing.assert_allclose(result.eigenvalues, [12.0, 11.0, 10.0], rtol=1e-6)
    # Eigenvectors orthonormal and satisfying Q v = lambda v.
    np.testing.assert_allclose(result.eigenvectors @ result.eigenvectors.T, np.eye(3), atol=1e-6)
    residual = q @ result.eigenvectors.T - result.eigenvectors.T * result.eigenvalues
    assert np.max(np.abs(residual)) < 1e-3
    assert result.converged == [True, True, True]
    assert result.num_matvecs == sum(len(h) for h in result.history)


def test_power_iteration_reports_sign_of_dominant_negative_eigenvalue():
    q = -random_spd(6, seed=2)  # spectrum -1..-6
    result = eigen.power_iteration(linear_operator.DenseOperator(q), max_iter=3000, tol=1e-12)
    np.testing.assert_allclose(result.eigenvalues, [-6.0], rtol=1e-6)


def test_power_iteration_iteration_cap():
    q = random_spd(8, seed=3)
    result = eigen.power_iteration(linear_operator.DenseOperator(q), max_iter=3, tol=1e-12)
    assert result.converged == [False]
    assert len(result.history[0]) == 3


@pytest.mark.parametrize(
    "which,expected", [("LM", [-9.0, 8.0]), ("LA", [8.0, 7.0]), ("SA", [-9.0, -7.5])]
)
def test_lanczos_eigenpairs_which(which, expected):
    rng = np.random.default_rng(4)
    basis, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    spectrum = np.array([-9.0, -7.5, 1, 2, 3, 4, 5, 6, 7, 8])
    q = (basis * spectrum) @ basis.T
    op = linear_operator.DenseOperator(q)
    result = eigen.lanczos_eigenpairs(op, top_n=2, max_iter=10, tol=1e-12, which=which)
    np.testing.assert_allclose(result.eigenvalues, expected, rtol=1e-10)
    for value, vector in zip(expected, result.eigenvectors):
        exact = basis[:, list(spectrum).index(value)]
        assert abs(vector @ exact) == pytest.approx(1.0, abs=1e-8)


def test_lanczos_full_reorthogonalisation_reproduces_spectrum():
    q = random_spd(30, seed=5, negative=3)
    run = eigen.lanczos(linear_operator.DenseOperator(q), num_iter=30)
    np.testing.assert_allclose(
        np.linalg.eigvalsh(run.tridiagonal()), np.linalg.eigvalsh(q), atol=1e-10
    )
    np.testing.assert_allclose(run.basis @ run.basis.T, np.eye(30), atol=1e-12)


def test_lanczos_restarts_on_invariant_subspace():
    # Identity-like operator: the Krylov space of any start vector is 1-D.
    op = linear_operator.DenseOperator(np.diag([2.0, 2.0, 2.0, 5.0]))
    run = eigen.lanczos(op, num_iter=4, start=np.array([1.0, 0, 0, 0]))
    assert run.betas[0] == 0.0
    np.testing.assert_allclose(
        np.sort(np.linalg.eigvalsh(run.tridiagonal())), [2, 2, 2, 5], atol=1e-12
    )


def test_lanczos_tolerance_stops_early_with_history():
    q = np.diag(np.concatenate([[100.0], np.linspace(0, 1, 199)]))
    result = eigen.lanczos_eigenpairs(
        linear_operator.DenseOperator(q), top_n=1, max_iter=200, tol=1e-8
    )
    assert result.converged == [True]
    assert result.num_matvecs < 30
    np.testing.assert_allclose(result.eigenvalues, [100.0], rtol=1e-8)
    assert len(result.history[0]) == result.num_matvecs


def test_extreme_eigenvalues():
    q = random_spd(20, seed=6, negative=2)
    lo, hi = eigen.extreme_eigenvalues(linear_operator.DenseOperator(q), max_iter=20, tol=1e-12)
    np.testing.assert_allclose([lo, hi], [-2.0, 20.0], rtol=1e-10)
    op = linear_operator.DenseOperator(q)
    lo, hi = eigen.extreme_eigenvalues(op, max_iter=20, tol=1e-3)
    np.testing.assert_allclose([lo, hi], [-2.0, 20.0], rtol=1e-3)
    assert op.num_matvecs < 20


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"top_n": 0}, "top_n"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": 0.0}, "tol"),
        ({"top_n": 9}, "top_n"),
    ],
)
def test_power_iteration_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        eigen.power_iteration(linear_operator.DenseOperator(np.eye(8)), **kwargs)


def test_lanczos_validates_which():
    with pytest.raises(ValueError, match="which"):
        eigen.lanczos_eigenpairs(linear_operator.DenseOperator(np.eye(3)), which="BE")


def test_hutchinson_exact_for_diagonal_matrix():
    # v^T D v = tr(D) for every Rademacher v.
    result = trace.hutchinson_trace(
        linear_operator.DenseOperator(np.diag([1.0, -2.0, 7.5])), max_iter=50
    )
    assert result.trace == pytest.approx(6.5, abs=1e-12)
    assert result.converged
    assert result.num_matvecs == 10  # min_iter probes, then the running mean does not move


def test_hutchinson_within_estimator_tolerance():
    q = random_spd(40, seed=7)
    result = trace.hutchinson_trace(linear_operator.DenseOperator(q), max_iter=400, tol=1e-6)
    # Rademacher variance: 2 * sum_{i != j} Q_ij^2.
    std = np.sqrt(2 * (np.sum(q**2) - np.sum(np.diag(q) ** 2)))
    assert abs(result.trace - np.trace(q)) < 4 * std / np.sqrt(result.num_matvecs)
    assert result.standard_error > 0


def test_slq_nodes_are_exact_eigenvalues_and_weights_sum_to_one():
    q = random_spd(15, seed=8, negative=4)
    nodes, weights = density.slq(linear_operator.DenseOperator(q), num_iter=15, num_runs=3)
    assert nodes.shape == weights.shape == (3, 15)
    np.testing.assert_allclose(nodes, np.tile(np.linalg.eigvalsh(q), (3, 1)), atol=1e-9)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)


def test_smooth_density_integrates_to_one_and_sits_on_eigenvalues():
    q = random_spd(6, seed=9)  # eigenvalues 1..6
    nodes, weights = density.slq(linear_operator.DenseOperator(q), num_iter=6, num_runs=2)
    grid, phi = density.smooth_density(nodes, weights, num_bins=5000)
    step = grid[1] - grid[0]
    assert grid.shape == phi.shape == (5000,)
    assert np.sum(phi) * step == pytest.approx(1.0, abs=1e-12)
    near = np.min(np.abs(grid[:, None] - np.arange(1.0, 7.0)[None, :]), axis=1) < 0.05
    assert np.sum(phi[near]) * step > 0.999
    # Mass per eigenvalue equals the averaged quadrature weight.
    for k, lam in enumerate(range(1, 7)):
        window = np.abs(grid - lam) < 0.05
        assert np.sum(phi[window]) * step == pytest.approx(weights[:, k].mean(), abs=1e-3)


def test_smooth_density_validates_shapes():
    with pytest.raises(ValueError, match="same shape"):
        density.smooth_density(np.zeros((1, 3)), np.zeros((1, 4)))


def test_parameter_layout_round_trip_and_errors():
    layout = linear_operator.ParameterLayout([(2, 3), (4,)])
    flat = np.arange(10.0)
    tensors = layout.unflatten(flat)
    assert [t.shape.as_list() for t in tensors] == [[2, 3], [4]]
    np.testing.assert_array_equal(layout.flatten(tensors), flat)
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        layout.unflatten(np.zeros(9))
    with pytest.raises(ValueError, match="Expected 2 tensors"):
        layout.flatten([np.zeros((2, 3))])


def _close_top_pair_quadratic(n=40, seed=21):
    """Q with eigenvalues 10, 9.8, then 0.1..5: power iteration converges at rate 0.98."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    spectrum = np.concatenate([[10.0, 9.8], np.linspace(0.1, 5.0, n - 2)])
    return (basis * spectrum) @ basis.T


@pytest.mark.parametrize("tol", [1e-2, 1e-3, 1e-4])
def test_power_iteration_stops_only_within_its_tolerance(tol):
    # 0.5 x^T Q x through the HessianOperator: its Hessian is Q (eigenvalues 10, 9.8, ...).
    import tf_hessian
    from tf_hessian.testing import quadratic_problem

    q = _close_top_pair_quadratic()
    exact = np.linalg.eigvalsh(q)
    op = tf_hessian.HessianOperator(*quadratic_problem(q, np.linspace(-1, 1, 40)))
    for seed in range(3):
        values, _, result = op.eigenvalues(
            1, max_iter=5000, tol=tol, method="power", seed=seed, return_result=True
        )
        assert result.converged == [True]
        # The guarantee: within tol |lambda| of an eigenvalue of Q ...
        assert np.min(np.abs(exact - values[0])) <= tol * abs(values[0])
        # ... which is the top one once tol |lambda| is below half the gap (0.2) to the second.
        # The old stop (relative change of lambda < tol) ended at 2-25x tol from 10 here.
        if tol * 10.0 < 0.1:
            assert abs(values[0] - 10.0) / 10.0 <= tol


def test_lanczos_reaches_tolerance_in_fewer_products_than_power_iteration():
    op = linear_operator.DenseOperator(_close_top_pair_quadratic())
    lanczos = eigen.lanczos_eigenpairs(op, top_n=1, max_iter=40, tol=1e-6)
    power = eigen.power_iteration(op, top_n=1, max_iter=5000, tol=1e-6)
    assert lanczos.converged == power.converged == [True]
    assert abs(lanczos.eigenvalues[0] - 10.0) <= 1e-5
    assert abs(power.eigenvalues[0] - 10.0) <= 1e-5
    assert lanczos.num_matvecs < power.num_matvecs / 5


def _indefinite(n=40, seed=7):
    """Symmetric with eigenvalues -10..-1 and 1..30 (trace 345): a noisy Rademacher estimate."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    spectrum = np.concatenate([-np.arange(1.0, 11.0), np.arange(1.0, 31.0)])
    return (basis * spectrum) @ basis.T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hutchinson_stops_on_its_standard_error(seed):
    q = _indefinite()
    tol = 0.02
    result = trace.hutchinson_trace(
        linear_operator.DenseOperator(q), max_iter=2000, tol=tol, seed=seed
    )
    assert result.converged
    assert result.standard_error <= tol * abs(result.trace)
    # The error is within 4 standard errors, i.e. 8 % of the trace (345).
    assert abs(result.trace - np.trace(q)) <= 4 * tol * abs(result.trace)


def test_hutchpp_tol_stops_early_with_its_standard_error():
    q = _indefinite()
    result = trace.hutchpp_trace(
        linear_operator.DenseOperator(q), num_matvecs=300, tol=0.02, seed=0, block_size=4
    )
    assert result.converged
    assert result.standard_error <= 0.02 * abs(result.trace)
    assert result.num_products < 300
    assert result.num_products == 200 + len(result.samples)
    assert abs(result.trace - np.trace(q)) <= 4 * 0.02 * abs(result.trace)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_eigen_solvers_report_the_true_residual(method):
    q = random_spd(30, seed=11)
    op = linear_operator.DenseOperator(q)
    if method == "lanczos":
        result = eigen.lanczos_eigenpairs(op, top_n=2, max_iter=8, tol=1e-12)
    else:
        result = eigen.power_iteration(op, top_n=1, max_iter=5, tol=1e-12)
    exact = np.linalg.eigvalsh(q)
    for value, vector, reported in zip(result.eigenvalues, result.eigenvectors, result.residuals):
        true = np.linalg.norm(q @ vector - value * vector) / abs(value)
        assert reported == pytest.approx(true, rel=1e-6)
        assert reported > 1e-6  # not converged: the residual is what the caller must see
        # The bound it gives: an eigenvalue within residual * |value|.
        assert np.min(np.abs(exact - value)) <= reported * abs(value) * (1 + 1e-9)
