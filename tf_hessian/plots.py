"""Matplotlib figures of the analysis: spectrum, density, landscapes, batch-size sweep."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_spectrum(
    eigenvalues: dict[str, list[float]], path: str, title: str = "Top Hessian eigenvalues"
) -> str:
    """Top-k eigenvalues per run (one marker series per key), log-scale when all positive."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, values in eigenvalues.items():
        ax.plot(np.arange(1, len(values) + 1), values, "o-", label=label, markersize=4)
    if all(v > 0 for values in eigenvalues.values() for v in values):
        ax.set_yscale("log")
    ax.set_xlabel("index k")
    ax.set_ylabel(r"$\lambda_k$")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_density(densities: dict[str, tuple[np.ndarray, np.ndarray]], path: str) -> str:
    """SLQ densities on a log scale (``semilogy(phi + 1e-7)`` as in PyHessian)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, (grid, density) in densities.items():
        ax.semilogy(grid, density + 1e-7, label=label)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (smoothed)")
    ax.set_title("Hessian eigenvalue density (SLQ)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_landscape_1d(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str, title: str = ""
) -> str:
    """Loss along directions: ``{label: (alphas, losses)}``."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, (alphas, losses) in curves.items():
        ax.plot(alphas, losses, label=label)
    ax.set_xlabel(r"step $\epsilon$ along the unit direction")
    ax.set_ylabel("loss")
    ax.set_title(title or "1-D loss landscape")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_landscape_2d(alphas1, alphas2, surface: np.ndarray, path: str, title: str = "") -> str:
    """Contours of ``L(theta + a v1 + b v2)``; surface [len(alphas1), len(alphas2)]."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    b, a = np.meshgrid(alphas2, alphas1)
    contour = ax.contourf(a, b, surface, levels=20, cmap="viridis")
    fig.colorbar(contour, ax=ax, label="loss")
    ax.set_xlabel(r"$v_1$")
    ax.set_ylabel(r"$v_2$")
    ax.set_title(title or "2-D loss landscape (top-2 eigenvectors)")
    return _save(fig, path)


def plot_robustness(curves: dict[str, tuple[list, list]], path: str, attack: str = "FGSM") -> str:
    """Accuracy against the attack radius: ``{label: (epsilons, accuracies)}``."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, (epsilons, accuracies) in curves.items():
        ax.plot(epsilons, accuracies, "o-", label=label)
    ax.set_xlabel(r"$\epsilon$ (pixel units, L-inf)")
    ax.set_ylabel(f"{attack} accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_batch_sweep(rows: list[dict], path: str) -> str:
    """lambda_max, trace and accuracies against batch size; robust runs as stars."""
    standard = [r for r in rows if not r["robust"]]
    robust = [r for r in rows if r["robust"]]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, key, label in [
        (axes[0], "lambda_max", r"$\lambda_{max}$"),
        (axes[1], "trace", "trace"),
    ]:
        ax.loglog(
            [r["batch_size"] for r in standard],
            [max(r[key], 1e-12) for r in standard],
            "o-",
            label="standard",
        )
        if robust:
            ax.loglog(
                [r["batch_size"] for r in robust],
                [max(r[key], 1e-12) for r in robust],
                "r*",
                ms=12,
                label="robust training",
            )
        ax.set_xlabel("batch size")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    ax = axes[2]
    ax.semilogx(
        [r["batch_size"] for r in standard],
        [r["test_accuracy"] for r in standard],
        "o-",
        label="test",
    )
    ax.semilogx(
        [r["batch_size"] for r in standard],
        [r["fgsm_accuracy"] for r in standard],
        "s--",
        label="FGSM",
    )
    if robust:
        ax.semilogx(
            [r["batch_size"] for r in robust],
            [r["test_accuracy"] for r in robust],
            "r*",
            ms=12,
            label="robust: test",
        )
        ax.semilogx(
            [r["batch_size"] for r in robust],
            [r["fgsm_accuracy"] for r in robust],
            "mx",
            ms=10,
            label="robust: FGSM",
        )
    ax.set_xlabel("batch size")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7)
    return _save(fig, path)
