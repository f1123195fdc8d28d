"""Loss landscapes and per-layer Hessian blocks."""

import numpy as np
import pytest

import tf_hessian
from tf_hessian import blocks, landscape
from tf_hessian.testing import classification_data, loss64, quadratic_problem, random_spd, tiny_cnn


def test_landscape_1d_2d_on_quadratic_are_exact_and_restore_weights():
    q = random_spd(6, seed=0)
    w0 = np.linspace(-1, 1, 6)
    model, loss_fn, data = quadratic_problem(q, w0)
    op = tf_hessian.HessianOperator(model, loss_fn, data)
    values, vectors = op.eigenvalues(top_n=2, max_iter=6, tol=1e-12, method="lanczos")
    d1, d2 = op.layout.flatten(vectors[0]), op.layout.flatten(vectors[1])
    alphas = np.linspace(-0.5, 0.5, 5)
    curve = landscape.loss_landscape_1d(op, vectors[0], alphas)
    expected = [0.5 * (w0 + a * d1) @ q @ (w0 + a * d1) for a in alphas]
    np.testing.assert_allclose(curve, expected, rtol=1e-12)
    surface = landscape.loss_landscape_2d(op, d1, d2, alphas, alphas[:3])
    assert surface.shape == (5, 3)
    w = w0 + alphas[4] * d1 + alphas[1] * d2
    assert surface[4, 1] == pytest.approx(0.5 * w @ q @ w, rel=1e-12)
    np.testing.assert_array_equal(model.trainable_variables[0].numpy(), w0)
    # Curvature along the top eigenvector is its eigenvalue: second difference / h^2.
    h = 1e-3
    c = landscape.loss_landscape_1d(op, d1, [-h, 0.0, h])
    assert (c[0] - 2 * c[1] + c[2]) / h**2 == pytest.approx(values[0], rel=1e-5)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        landscape.loss_landscape_1d(op, np.zeros(5), alphas)


def test_random_and_gradient_directions():
    model = tiny_cnn(seed=1)
    op = tf_hessian.HessianOperator(model, loss64(), classification_data(4, (6, 6, 1), seed=1))
    d = landscape.random_direction(op, seed=0)
    parts = op.layout.unflatten(d)
    for variable, part in zip(op.variables, parts):
        w, p = variable.numpy(), part.numpy()
        if w.ndim == 1:
            np.testing.assert_array_equal(p, 0.0)  # biases and BN ignored
        else:
            axes = tuple(range(w.ndim - 1))
            norms = [np.sqrt(np.sum(a**2, axis=axes)) for a in (p, w)]
            np.testing.assert_allclose(norms[0], norms[1], rtol=1e-8)
    unit = landscape.random_direction(op, seed=0, filter_normalize=False)
    assert np.linalg.norm(unit) == pytest.approx(1.0)
    g = landscape.gradient_direction(op)
    assert np.linalg.norm(g) == pytest.approx(1.0)
    # Moving a little along -gradient lowers the loss.
    c = landscape.loss_landscape_1d(op, g, [-1e-3, 0.0])
    assert c[0] < c[1]


def test_block_analysis_matches_explicit_diagonal_blocks():
    model = tiny_cnn(seed=2)
    data = classification_data(4, (6, 6, 1), seed=2)
    result = blocks.block_analysis(
        model, loss64(), data, top_n=1, max_iter=200, tol=1e-12, method="lanczos"
    )
    assert list(result) == ["conv", "bn", "logits"]
    assert [r["num_parameters"] for r in result.values()] == [20, 4, 57]
    full = tf_hessian.HessianOperator(model, loss64(), data).full_hessian()
    start = 0
    for entry in result.values():
        stop = start + entry["num_parameters"]
        eig = np.linalg.eigvalsh(full[start:stop, start:stop])
        assert entry["eigenvalues"][0] == pytest.approx(eig[np.argmax(np.abs(eig))], rel=1e-6)
        start = stop
