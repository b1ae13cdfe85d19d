"""`tracegrad.scipy`: the SciPy functions that JAX ports reach for (as `jax.scipy`).

>>> import numpy as np
>>> from tracegrad.scipy.linalg import solve_triangular
>>> solve_triangular(np.array([[2.0, 0.0], [1.0, 1.0]]), np.array([2.0, 3.0]), lower=True).tolist()
[1.0, 2.0]
"""
from . import linalg, special

__all__ = ["linalg", "special"]
