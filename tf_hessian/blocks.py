"""Per-layer (block-diagonal) Hessian analysis.

The diagonal block of layer l is the Hessian of the loss with respect to that
layer's parameters only, H_ll; its top eigenvalue and trace locate where the
curvature sits (PyHessian issues #9/#10).
"""

from __future__ import annotations

import keras

from tf_hessian.hvp import HessianOperator


def layer_blocks(model: keras.Model) -> list[tuple[str, list]]:
    """``(layer name, trainable variables)`` for every leaf layer with parameters, in model order."""
    blocks = []

    def visit(layer):
        children = getattr(layer, "layers", None)
        if children:
            for child in children:
                visit(child)
        elif layer.trainable_weights:
            blocks.append((layer.name, list(layer.trainable_weights)))

    for layer in model.layers:
        visit(layer)
    return blocks


def block_analysis(
    model: keras.Model,
    loss_fn,
    data,
    *,
    top_n: int = 1,
    max_iter: int = 100,
    tol: float = 1e-3,
    method: str = "lanczos",
    with_trace: bool = False,
    seed: int = 0,
    **operator_kwargs,
) -> dict[str, dict]:
    """Top eigenvalues (and optionally the trace) of each layer's diagonal Hessian block.

    Args:
      model, loss_fn, data: As for ``HessianOperator``.
      top_n, max_iter, tol, method: Eigen-solver settings (``HessianOperator.eigenvalues``).
      with_trace: Also estimate each block's trace (Hutchinson, same max_iter/tol).
      seed: Seed of the solvers.
      **operator_kwargs: ``mode``, ``strategy``, ``jit_compile`` for the operators.

    Returns:
      ``{layer name: {"num_parameters", "eigenvalues", "num_hvps"[, "trace"]}}``.
    """
    results = {}
    for name, variables in layer_blocks(model):
        op = HessianOperator(model, loss_fn, data, variables=variables, **operator_kwargs)
        top = min(top_n, op.dim)
        values, _ = op.eigenvalues(top, max_iter, tol, method=method, seed=seed)
        entry = {"num_parameters": op.dim, "eigenvalues": values}
        if with_trace:
            entry["trace"] = op.trace(max_iter, tol, seed=seed)
        entry["num_hvps"] = op.num_hvps
        results[name] = entry
    return results
