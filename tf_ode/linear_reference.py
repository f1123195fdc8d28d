"""Closed-form gradients of a linear ODE's solution, the reference for stiff-solver gradients.

For dy/dt = s A y, y(t_0) = y0 and L = sum_k <w_k, y(t_k)>, at s = 1:
  dL/dy0 = sum_k exp(tau_k A)^T w_k (tau_k = t_k - t_0),
  dL/dt_k = <w_k, A y(t_k)> (and -sum of them for t_0),
  dL/dA = sum_k <w_k, D exp(tau_k A)[tau_k E_ij] y0> (the Frechet derivative of expm),
  dL/ds = sum_k tau_k <w_k, A y(t_k)>.
"""

import numpy as np
import scipy.linalg

# Eigenvalues -1 and -1000: the stiff 2x2 system on which TFP's BDF adjoint is wrong.
STIFF_2X2 = np.array([[-500.5, 499.5], [499.5, -500.5]])


def linear_gradients(y0, times, weights, matrix):
    """(dL/dy0, dL/dt, dL/dmatrix, dL/dscale) as numpy arrays (see the module docstring)."""
    n = len(y0)
    d_y0, d_t, d_matrix, d_scale = np.zeros(n), np.zeros(len(times)), np.zeros((n, n)), 0.0
    for k, time in enumerate(times):
        tau = time - times[0]
        flow = scipy.linalg.expm(tau * matrix)
        d_y0 += flow.T @ weights[k]
        rate = weights[k] @ matrix @ flow @ y0  # <w_k, f(t_k, y(t_k))>
        d_t[k] += rate
        d_t[0] -= rate
        d_scale += tau * rate
        for i in range(n):
            for j in range(n):
                direction = np.zeros((n, n))
                direction[i, j] = tau
                frechet = scipy.linalg.expm_frechet(tau * matrix, direction, compute_expm=False)
                d_matrix[i, j] += weights[k] @ frechet @ y0
    return d_y0, d_t, d_matrix, d_scale
