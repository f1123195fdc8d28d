"""tf_hessian: exact Hessian analysis of Keras models (Yao et al. 2018).

Public API::

    op = tf_hessian.HessianOperator(model, loss_fn, data)
    op.hvp(v)
    values, vectors = op.eigenvalues(top_n=1, max_iter=100, tol=1e-3)  # Lanczos
    tf_hessian.GaussNewtonOperator(model, loss_fn, data)      # also EmpiricalFisherOperator
    op.trace(max_iter=100, tol=1e-3)
    grid, density = op.density(num_iter=100, num_runs=1)
"""

import tf_runtime  # noqa: F401  # isort: skip  (first: TensorFlow imported quietly)
from tf_hessian.curvature import EmpiricalFisherOperator, GaussNewtonOperator
from tf_hessian.density import slq, smooth_density
from tf_hessian.eigen import (
    EigenResult,
    ResampledOperator,
    extreme_eigenvalues,
    lanczos,
    lanczos_eigenpairs,
    power_iteration,
    stochastic_power_iteration,
)
from tf_hessian.exact import full_hessian, full_spectrum
from tf_hessian.hvp import HVP_MODES, HessianOperator
from tf_hessian.linear_operator import DenseOperator, ParameterLayout
from tf_hessian.trace import TraceResult, hutchinson_trace, hutchpp_trace

__all__ = [
    "HVP_MODES",
    "DenseOperator",
    "EigenResult",
    "EmpiricalFisherOperator",
    "GaussNewtonOperator",
    "HessianOperator",
    "ParameterLayout",
    "ResampledOperator",
    "TraceResult",
    "extreme_eigenvalues",
    "full_hessian",
    "full_spectrum",
    "hutchinson_trace",
    "hutchpp_trace",
    "lanczos",
    "lanczos_eigenpairs",
    "power_iteration",
    "slq",
    "smooth_density",
    "stochastic_power_iteration",
]
