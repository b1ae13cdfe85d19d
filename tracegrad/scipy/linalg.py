"""`scipy.linalg`'s solves, factorizations and matrix exponential on arrays, tensors and
traced values, with gradients (jax.scipy.linalg's signatures, scipy's semantics): the
triangular and Cholesky solves (the `triangular_solve` primitive), `solve` (scipy's
`assume_a` structures), `inv`, `det`, `eigh`, `svd`, `qr` (tracegrad.numpy.linalg's
decompositions), `block_diag` and `expm` (scaling and squaring).

As jax's (and tracegrad.numpy.linalg's), a singular matrix gives NaN or inf from `solve` and
`inv` where scipy raises LinAlgError.  `lu_factor`/`lu_solve` are not offered (tracegrad has
no LU primitive: `solve` factorizes inside its primitive).

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
from tracegrad.tracer.numpy._core import concrete_value

__all__ = ["solve_triangular", "cholesky", "cho_factor", "cho_solve", "solve", "inv", "det",
           "eigh", "svd", "qr", "block_diag", "expm"]
LinAlgError = np.linalg.LinAlgError

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


# ---- solve, inv, det ------------------------------------------------------------------------

_STRUCTURES = {None: "gen", "general": "gen", "gen": "gen", "banded": "gen",
               "diagonal": "diagonal", "tridiagonal": "tridiagonal",
               "upper triangular": "upper", "lower triangular": "lower",
               "pos": "pos", "positive definite": "pos", "sym": "sym", "symmetric": "sym",
               "her": "sym", "hermitian": "sym"}


def _structure(assume_a):
    if not isinstance(assume_a, (str, type(None))) or assume_a not in _STRUCTURES:
        raise ValueError(f"{assume_a} is not a recognized matrix structure")
    return _STRUCTURES[assume_a]


def _symmetric_from(a, lower):
    """The symmetric matrix of a's lower (or upper) triangle: what scipy's symmetric
    solvers read."""
    n = tnp.shape(a)[-1]
    keep = np.tri(n, dtype=bool) if lower else np.tri(n, dtype=bool).T
    return tnp.where(keep, a, tnp.swapaxes(a, -1, -2))


def _band(a, width):
    n = tnp.shape(a)[-1]
    i = np.arange(n)
    return tnp.where(np.abs(i[:, None] - i[None, :]) <= width, a, 0.0)


def solve(a, b, lower=False, overwrite_a=False, overwrite_b=False, check_finite=True,
          assume_a=None, transposed=False):
    """x with a @ x = b (a.T @ x = b if `transposed`), reading what scipy's solver for
    `assume_a` reads: the `lower` (default upper) triangle for 'sym'/'her'/'pos' (through the
    Cholesky factor for 'pos', as jax's), the diagonal, the tridiagonal band, the triangle
    for 'upper/lower triangular'; 'gen', 'banded' and None (scipy's structure detection:
    the same solution) solve the full matrix.  `b` is a vector only when 1-D; leading
    dimensions batch."""
    kind = _structure(assume_a)
    a, b = _floats(a, b)
    if tnp.ndim(a) < 2 or tnp.shape(a)[-1] != tnp.shape(a)[-2]:
        raise ValueError(f"Expected square matrix, got a.shape={tnp.shape(a)}")
    vector = tnp.ndim(b) == 1
    a, b = _batched(a, tnp.expand_dims(b, -1) if vector else b)
    if kind in ("upper", "lower"):
        x = solve_triangular(a, b, trans=1 if transposed else 0, lower=kind == "lower")
    elif kind == "pos":
        x = cho_solve(cho_factor(a, lower=lower), b)
    elif kind == "diagonal":
        x = b / tnp.expand_dims(tnp.diagonal(a, axis1=-2, axis2=-1), -1)
    else:
        a = _symmetric_from(a, lower) if kind == "sym" else _band(a, 1) \
            if kind == "tridiagonal" else a
        x = tnp.linalg.solve(tnp.swapaxes(a, -1, -2) if transposed else a, b)
    return x[..., 0] if vector else x


def _batched(a, b):
    """a (..., n, n) and b (..., n, k) with their batch dimensions broadcast together."""
    if tnp.shape(b)[-2] != tnp.shape(a)[-1]:
        raise ValueError(f"incompatible shapes: a.shape={tnp.shape(a)} and "
                         f"b.shape={tnp.shape(b)}")
    batch = np.broadcast_shapes(tnp.shape(a)[:-2], tnp.shape(b)[:-2])
    return (tnp.broadcast_to(a, batch + tnp.shape(a)[-2:]),
            tnp.broadcast_to(b, batch + tnp.shape(b)[-2:]))


def inv(a, overwrite_a=False, check_finite=True, *, assume_a=None, lower=False):
    """The inverse of (batches of) square matrices, reading what `solve` reads for
    `assume_a` (scipy's keyword)."""
    kind = _structure(assume_a)
    a = _float(a)
    if kind == "gen":
        return tnp.linalg.inv(a)
    n = tnp.shape(a)[-1]
    return solve(a, tnp.broadcast_to(np.eye(n, dtype=a.dtype), tnp.shape(a)), lower=lower,
                 assume_a=assume_a)


def det(a, overwrite_a=False, check_finite=True):
    """The determinant of (batches of) square matrices (tracegrad.numpy.linalg.det: its
    derivative is the cofactor matrix, singular matrices included)."""
    a = _float(a)
    if tnp.ndim(a) < 2:
        raise ValueError("The input array must be at least two-dimensional")
    return tnp.linalg.det(a)


def _float(a):
    a = tnp.asarray(a)
    return a if np.dtype(a.dtype).kind == "f" else tnp.astype(a, np.float64)


# ---- decompositions -------------------------------------------------------------------------

def eigh(a, b=None, *, lower=True, eigvals_only=False, overwrite_a=False, overwrite_b=False,
         type=1, check_finite=True, subset_by_index=None, subset_by_value=None, driver=None):
    """Eigenvalues (ascending) and eigenvectors (columns) of the symmetric matrix of a's
    `lower` (default) or upper triangle; with `b` (type 1, a v = w b v) through b's Cholesky
    factor L: eigh(L^-1 a L^-T), the vectors L^-T V (so that v.T b v = I, as scipy's).
    `subset_by_index=(lo, hi)` keeps those (inclusive); `subset_by_value` and types 2, 3
    are not offered (NotImplementedError)."""
    if subset_by_value is not None or type != 1:
        raise NotImplementedError("eigh: subset_by_value and type 2 or 3 are not offered")
    uplo = "L" if lower else "U"
    a = _float(a)
    if b is None:
        w, v = tnp.linalg.eigh(a, UPLO=uplo)
    else:
        a, b = _floats(a, b)
        chol = cholesky(b, lower=True) if lower else tnp.swapaxes(cholesky(b), -1, -2)
        c = solve_triangular(chol, _symmetric_from(a, lower), lower=True)
        c = solve_triangular(chol, tnp.swapaxes(c, -1, -2), lower=True)
        w, v = tnp.linalg.eigh(c)
        v = solve_triangular(chol, v, trans=1, lower=True)
    if subset_by_index is not None:
        lo, hi = (int(i) for i in subset_by_index)
        w, v = w[..., lo:hi + 1], v[..., lo:hi + 1]
    return w if eigvals_only else (w, v)


def svd(a, full_matrices=True, compute_uv=True, overwrite_a=False, check_finite=True,
        lapack_driver="gesdd"):
    """(U, s, Vh) with a = U @ diag(s) @ Vh (s alone without `compute_uv`), as scipy's;
    tracegrad.numpy.linalg.svd (gradients need full_matrices=False or square matrices)."""
    out = tnp.linalg.svd(_float(a), full_matrices=full_matrices, compute_uv=compute_uv)
    return tuple(out) if compute_uv else out


def qr(a, overwrite_a=False, lwork=None, mode="full", pivoting=False, check_finite=True):
    """(Q, R) of a = Q @ R: Q (M, M) and R (M, N) for mode 'full', Q (M, K) and R (K, N) for
    'economic' (K = min(M, N)), the tuple (R,) for 'r', as scipy's.  `pivoting` and mode
    'raw' are not offered (NotImplementedError)."""
    if pivoting or mode == "raw":
        raise NotImplementedError("qr: pivoting and mode='raw' are not offered")
    modes = {"full": "complete", "economic": "reduced", "r": "r"}
    if mode not in modes:
        raise ValueError("Mode argument should be one of ['full', 'r', 'economic', 'raw']")
    out = tnp.linalg.qr(_float(a), mode="complete" if mode == "r" else modes[mode])
    return (out[1],) if mode == "r" else tuple(out)


# ---- block_diag, expm -----------------------------------------------------------------------

def block_diag(*arrs):
    """The block diagonal matrix of the arguments (0-d and 1-D ones as 1-row matrices, `[]`
    a (1, 0) block; none gives shape (1, 0)), zeros elsewhere, in their result dtype;
    leading dimensions batch (broadcast), as scipy 1.17's."""
    arrs = [tnp.atleast_2d(tnp.asarray(a)) for a in (arrs or ([],))]
    batch = np.broadcast_shapes(*(tnp.shape(a)[:-2] for a in arrs))
    dtype = tnp.result_type(*arrs)
    arrs = [tnp.broadcast_to(tnp.astype(a, dtype), batch + tnp.shape(a)[-2:]) for a in arrs]
    total, start, rows = sum(tnp.shape(a)[-1] for a in arrs), 0, []
    for a in arrs:
        r, c = tnp.shape(a)[-2:]
        rows.append(tnp.concatenate([np.zeros(batch + (r, start), dtype), a,
                                     np.zeros(batch + (r, total - start - c), dtype)], axis=-1))
        start += c
    return tnp.concatenate(rows, axis=-2)


# Higham (2005)'s degree-13 Pade approximant of exp: its coefficients b_0 .. b_13, and the
# largest 1-norm for which it is accurate to double precision unscaled
_PADE13 = (64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0,
           129060195264000.0, 10559470521600.0, 670442572800.0, 33522128640.0, 1323241920.0,
           40840800.0, 960960.0, 16380.0, 182.0, 1.0)
_THETA13 = 5.371920351148152
MAX_SQUARINGS = 16  # under tracing, as jax's expm: beyond (|A|_1 > 3.5e5) the result is NaN


def _pade13(a):
    """exp(a) ~ (V - U)^-1 (V + U), U and V the odd and even parts of the approximant."""
    b = _PADE13
    eye = np.eye(tnp.shape(a)[-1], dtype=a.dtype)
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    u = a @ (a6 @ (b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4 + b[3] * a2
             + b[1] * eye)
    v = a6 @ (b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 \
        + b[0] * eye
    return tnp.linalg.solve(v - u, v + u)


def _squarings(a):
    """s = max(0, ceil(log2(|a|_1 / theta_13))) per matrix (0 where the norm is not finite),
    held constant for the gradient, and how many squarings to unroll: the largest s where
    `a` has values, MAX_SQUARINGS under tracing."""
    norm = tnp.max(tnp.sum(tnp.abs(tnp.stop_gradient(a)), axis=-2), axis=-1)
    s = tnp.ceil(tnp.log2(tnp.where(norm > 0, norm, 1.0) / _THETA13))
    s = tnp.where(tnp.isfinite(s) & (s > 0), s, 0.0)
    known = concrete_value(s)
    return s, (int(np.max(known, initial=0)) if known is not None else MAX_SQUARINGS), known


def expm(A):
    """The matrix exponential of (batches of) square matrices by scaling and squaring with
    Higham (2005)'s degree-13 Pade approximant: exp(A) = r(A / 2^s)^(2^s), s chosen per
    matrix from its 1-norm (under tracing the squarings are masked, up to MAX_SQUARINGS,
    as jax's; beyond it the result is NaN).  Differentiable through the algorithm (its
    gradient is the Frechet derivative's, as jax's rule).  Its error grows like 2^s ulps:
    within 5e-15 (relative to the largest entry) of mpmath for random 5x5 matrices of norm
    up to 50, where scipy 1.17's reaches 8e-13; a diagonal matrix of norm 40 is 3e-14 off
    (scipy exponentiates diagonals, and triangular matrices' diagonals, directly).  A
    scalar or 1x1 input gives exp (shape (1, 1) for one of fewer than 2 dimensions, as
    scipy's); int input computes in float64, float32 in float64 rounded once."""
    a = tnp.asarray(A)
    if tnp.ndim(a) < 2 and int(np.prod(tnp.shape(a))) == 1:
        return tnp.reshape(tnp.exp(_float(a)), (1, 1))
    if tnp.ndim(a) < 2:
        raise LinAlgError("The input array must be at least two-dimensional")
    if tnp.shape(a)[-1] != tnp.shape(a)[-2]:
        raise LinAlgError("Last 2 dimensions of the array must be square")
    out = a.dtype if np.dtype(a.dtype) == np.float32 else np.dtype(np.float64)
    a = tnp.astype(a, np.float64)
    if tnp.shape(a)[-1] <= 1:
        return tnp.astype(tnp.exp(a), out)
    s, count, known = _squarings(a)
    r = _pade13(a * tnp.expand_dims(tnp.exp2(-s), (-1, -2)))
    uniform = known is not None and np.all(known == count)
    mask = tnp.expand_dims(s, (-1, -2))
    for k in range(count):
        r = r @ r if uniform else tnp.where(mask > k, r @ r, r)
    if known is None:
        r = tnp.where(mask > MAX_SQUARINGS, np.nan, r)
    return tnp.astype(r, out)
