"""`scipy.linalg`'s triangular and Cholesky solves, on arrays, tensors and traced values,
with gradients (the `triangular_solve` primitive; jax.scipy.linalg's signatures).

>>> import numpy as np
>>> from tracegrad.scipy.linalg import cho_factor, cho_solve
>>> a = np.array([[4.0, 2.0], [2.0, 3.0]])
>>> x = cho_solve(cho_factor(a), np.array([2.0, 1.0]))
>>> np.allclose(a @ x, [2.0, 1.0])
True
"""
from __future__ import annotations

import numpy as np

import tracegrad.numpy as tnp
from tracegrad.ir.decompositions import triangular_solve

__all__ = ["solve_triangular", "cholesky", "cho_factor", "cho_solve"]

_TRANS = {0: False, "N": False, 1: True, "T": True, 2: True, "C": True}


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """x with op(a) x = b for triangular `a` (its other triangle is never read); `trans`
    0/'N' solves a x = b, 1/'T' and 2/'C' a^T x = b.  `b` is a vector (..., n) or
    matrices (..., n, k); leading dimensions batch, as jax's."""
    if trans not in _TRANS:
        raise ValueError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', got {trans!r}")
    a, b = _floats(a, b)
    vector = tnp.ndim(b) == tnp.ndim(a) - 1
    if tnp.ndim(a) < 2 or tnp.shape(a)[-1] != tnp.shape(a)[-2]:
        raise ValueError(f"solve_triangular: a must be square matrices, got shape {tnp.shape(a)}")
    if tnp.shape(b)[-1 if vector else -2] != tnp.shape(a)[-1]:
        raise ValueError(f"solve_triangular: shapes of a {tnp.shape(a)} and b {tnp.shape(b)} "
                         "are incompatible")
    x = triangular_solve(a, tnp.expand_dims(b, -1) if vector else b, lower=bool(lower),
                         transpose_a=_TRANS[trans], unit_diagonal=bool(unit_diagonal))
    return x[..., 0] if vector else x


def cholesky(a, lower=False, overwrite_a=False, check_finite=True):
    """The Cholesky factor of `a`: upper (u^T u = a) by default, as scipy's."""
    return tnp.linalg.cholesky(a, upper=not lower)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """(c, lower) for `cho_solve`; c's other triangle is zero (scipy leaves it unspecified)."""
    return cholesky(a, lower=lower), bool(lower)


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """x with a x = b, from `cho_factor(a)`'s (c, lower)."""
    c, lower = c_and_lower
    y = solve_triangular(c, b, trans=0 if lower else 1, lower=lower)
    return solve_triangular(c, y, trans=1 if lower else 0, lower=lower)


def _floats(a, b):
    dtype = np.result_type(tnp.result_type(a, b), np.float32)
    return tnp.asarray(a).astype(dtype), tnp.asarray(b).astype(dtype)
