"""`tracegrad.numpy.linalg`: norms, solves, inverses, determinants and
decompositions with matrix-calculus gradients (numpy.linalg's API).

The decompositions are the extern primitives of `ir/decompositions.py` (LAPACK in
compiled code); everything else here is written with `ir.ops`, so it traces,
compiles and differentiates like any composite.  `np.linalg.inv(tensor)` and the
other numpy.linalg functions dispatch here through `NUMPY`.

Differences from numpy.linalg, by design (as in jax.numpy.linalg):
  * a singular matrix gives NaN from `solve`/`inv` (a matrix that is not positive
    definite: from `cholesky`) instead of raising LinAlgError;
  * only real float32/float64 arrays (int and bool inputs compute in float64);
    `eig`/`eigvals` (complex results) are not offered;
  * `svd(..., hermitian=True)` computes the ordinary SVD of the symmetric matrix of the
    lower triangle (numpy's reads that triangle only: its values are numpy's, its
    vectors a valid SVD whose signs may differ from numpy's eigh-based one).

>>> import numpy as np
>>> from tracegrad.tracer.numpy import linalg
>>> float(linalg.det(np.array([[2.0, 0.0], [0.0, 3.0]])))
6.0
"""
from __future__ import annotations

import builtins
import operator
import sys
import types
from collections import namedtuple

import numpy as np

from tracegrad.ir import ops
from tracegrad.ir.builder import ConcretizationError

from .. import dtypes
from ._core import (_convert, _dtype, _fail, _fresh, _norm_axis, _operand, _reject, _shape,
                    is_boxed, zero_safe_root)
from .products import matmul as _np_matmul

LINALG = ["norm", "vector_norm", "matrix_norm", "inv", "solve", "det", "slogdet", "cholesky",
          "eigh", "eigvalsh", "svd", "svdvals", "qr", "lstsq", "pinv", "matrix_power",
          "matrix_rank", "cond", "multi_dot", "tensorsolve", "tensorinv", "trace", "outer",
          "matmul", "cross", "diagonal", "matrix_transpose", "vecdot", "tensordot"]
# The family exports one name into tracegrad.numpy: `linalg`, the namespace (made at the
# end of this module) whose __all__ is LINALG, as jax.numpy.linalg (np.linalg.trace and
# np.trace differ, so the functions stay in their namespace).
__all__ = ["linalg"]
LinAlgError = np.linalg.LinAlgError

SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])
QRResult = namedtuple("QRResult", ["Q", "R"])


# ---- operands -------------------------------------------------------------------------------

def _float(x):
    """`x` as an operand of a float dtype (ints and bools compute in float64)."""
    x = _operand(x)
    dt = _dtype(x)
    return x if dt.kind == "f" else ops.convert(x, dtypes.float_result(dt))


def _matrices(name, x, square=False):
    x = _float(x)
    shp = _shape(x)
    if len(shp) < 2:
        _fail(name, f"{len(shp)}-dimensional array given. Array must be at least "
              "two-dimensional", [x], LinAlgError)
    if square and shp[-1] != shp[-2]:
        _fail(name, "Last 2 dimensions of the array must be square", [x], LinAlgError)
    return x


def _square_matrices(name, x):
    """`_matrices(name, x, square=True)` keeping an integer dtype."""
    shp = _shape(x)
    if len(shp) < 2 or shp[-1] != shp[-2]:
        return _matrices(name, x, square=True)  # its error
    return x


def _ndim(x):
    return len(_shape(x))


def _mT(x):
    n = _ndim(x)
    return ops.transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


def _part(x, start, size, axis):
    shp = _shape(x)
    axis %= len(shp)
    starts = tuple(start if i == axis else 0 for i in range(len(shp)))
    sizes = tuple(size if i == axis else d for i, d in enumerate(shp))
    return ops.slice(x, starts, (1,) * len(shp), sizes)


def _drop(x, axis):
    """x with the size-1 `axis` removed."""
    shp = list(_shape(x))
    del shp[axis % len(shp)]
    return ops.reshape(x, shp)


def _c(x, value):
    return np.asarray(value, _dtype(x))


def _promote(*xs):
    """Float operands of one dtype (NumPy promotion, ints to float64)."""
    dt = dtypes.float_result(dtypes.result_type(*xs))
    return [ops.convert(_operand(x), dt) if _dtype(_operand(x)) != dt else _operand(x)
            for x in xs]


def _broadcast_batch(name, a, b):
    """a (..., n, n) and b (..., n, k) with their batch dims broadcast together."""
    try:
        batch = np.broadcast_shapes(_shape(a)[:-2], _shape(b)[:-2])
    except ValueError:
        _fail(name, "batch dimensions could not be broadcast together", [a, b])
    return (ops.broadcast(a, batch + _shape(a)[-2:]), ops.broadcast(b, batch + _shape(b)[-2:]))


# ---- solve, inv, det --------------------------------------------------------------------------

def inv(a):
    """Matrix inverse over the last two axes (NaN where singular)."""
    return ops.inv(_matrices("inv", a, square=True))


def solve(a, b):
    """x with a @ x = b; b is a vector (..., n) only when 1-D, as in NumPy 2."""
    a, b = _promote(a, b)
    a = _matrices("solve", a, square=True)
    n = _shape(a)[-1]
    vector = _ndim(b) == 1
    if vector:
        b = ops.reshape(b, (_shape(b)[0], 1))
    if _ndim(b) < 2 or _shape(b)[-2] != n:
        _fail("solve", f"b must have {n} rows to match a", [a, b], ValueError)
    a, b = _broadcast_batch("solve", a, b)
    x = ops.solve(a, b)
    return _drop(x, -1) if vector else x


def slogdet(a):
    """(sign, log|det|) of square matrices; gradients flow through log|det|."""
    packed = ops.slogdet(_matrices("slogdet", a, square=True))
    return SlogdetResult(_drop(_part(packed, 0, 1, -1), -1), _drop(_part(packed, 1, 1, -1), -1))


def det(a):
    """Determinant, sign * exp(log|det|) from the LU factorization.  Its derivative is the
    cofactor matrix adj(a)^T everywhere, singular matrices included (from the SVD there,
    where log|det| would give 0 * inf), as jax's and torch's."""
    a = _matrices("det", a, square=True)
    sign, logdet = slogdet(a)
    value = ops.mul(sign, ops.exp(logdet))
    if not is_boxed(a) or not getattr(a, "requires_grad", True):
        return value  # nothing differentiates it: the value alone
    singular = ops.eq(logdet, _c(logdet, -np.inf))
    # The SVD runs only when some matrix is singular, a branch taken at run time.  The
    # branches factorize `a` again, so that no derivative of the factorization above
    # (0 * inf at a singular matrix) reaches the result.
    from ..branches import cond  # control flow builds on this namespace
    count = ops.reduce_sum(ops.convert(singular, np.float64), tuple(range(_ndim(singular))))
    return cond(ops.gt(count, _c(count, 0.0)), _det_with_singular, _regular_det, a, singular)


def _regular_det(a, singular):
    sign, logdet = slogdet(a)
    return ops.mul(sign, ops.exp(logdet))


def _det_with_singular(a, singular):
    """det where some of the matrices are singular: those from the SVD (_singular_det),
    the others from a factorization where the singular ones are replaced by I (no 0 * inf
    in the derivative)."""
    mask = ops.broadcast(ops.reshape(singular, _shape(singular) + (1, 1)), _shape(a))
    n = _shape(a)[-1]
    safe = ops.where(mask, ops.broadcast(_c(a, np.eye(n)), _shape(a)), a)
    s_sign, s_log = slogdet(safe)
    return ops.where(singular, _singular_det(a), ops.mul(s_sign, ops.exp(s_log)))


def _singular_det(a):
    """0, with derivative adj(a)^T = U adj(S) V^T det(U) det(V) from the SVD a = U S V^T,
    adj(S)_i the product of the other singular values: sum(C * (a - a)), C held constant
    (so the second derivative there is taken as 0)."""
    from .reductions import prod

    n = _shape(a)[-1]
    u, s, vt = svd(ops.stop_gradient(a))
    batch = _shape(s)[:-1]
    others = ops.where(ops.broadcast(np.eye(n, dtype=bool), batch + (n, n)), _c(s, 1.0),
                       ops.broadcast(ops.reshape(s, batch + (1, n)), batch + (n, n)))
    scale = ops.mul(slogdet(u)[0], slogdet(vt)[0])  # det(U) det(V): +-1
    adj_s = ops.mul(prod(others, axis=-1), ops.broadcast(ops.reshape(scale, batch + (1,)),
                                                         batch + (n,)))
    cof = ops.dot(ops.mul(u, ops.broadcast(ops.reshape(adj_s, batch + (1, n)), _shape(u))), vt)
    zero = ops.sub(a, ops.stop_gradient(a))
    r = _ndim(a)
    return ops.reduce_sum(ops.mul(ops.stop_gradient(cof), zero), (r - 2, r - 1))


def matrix_power(a, n):
    """a to the integer power n (n < 0: of the inverse), by repeated squaring; an integer
    or bool a keeps its dtype for n >= 0, as NumPy's (bool: logical products)."""
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError("exponent must be an integer") from None
    a = _operand(a)
    a = _matrices("matrix_power", a, square=True) if n < 0 else \
        _square_matrices("matrix_power", a)
    if n == 0:
        # the identity, selected over a: of a's kind (a tensor for a tensor, with its
        # zero derivative recorded, as torch and jax give), never a's NaNs
        eye = np.broadcast_to(np.eye(_shape(a)[-1], dtype=bool), _shape(a))
        return ops.where(eye, _c(a, 1), ops.where(eye, a, _c(a, 0)))
    base, bits, result = (inv(a) if n < 0 else a), builtins.abs(n), None
    while True:  # binary powering: the low bit first
        if bits & 1:
            result = base if result is None else _np_matmul(result, base)
        bits >>= 1
        if not bits:
            return _fresh(result, a)  # n == 1: a copy, as NumPy's
        base = _np_matmul(base, base)  # integer-aware (ops.dot takes floats only)


# ---- factorizations ------------------------------------------------------------------------------

def cholesky(a, /, *, upper=False):
    """Lower (or upper: reading the upper triangle) Cholesky factor; NaN if not positive
    definite."""
    a = _matrices("cholesky", a, square=True)
    return _mT(ops.cholesky(_mT(a))) if upper else ops.cholesky(a)


def _triangle(name, a, uplo):
    """`a` with the triangle `uplo` names in the lower one (what the primitives read)."""
    uplo = uplo.upper() if isinstance(uplo, str) else uplo
    if uplo not in ("L", "U"):
        raise ValueError("UPLO argument must be 'L' or 'U'")
    a = _matrices(name, a, square=True)
    return _mT(a) if uplo == "U" else a


def _hermitian(name, a, hermitian):
    """`a`, or with `hermitian` the symmetric matrix of its lower triangle: NumPy's
    hermitian=True reads that triangle only (eigh), whatever the other holds."""
    a = _matrices(name, a, square=bool(hermitian))
    if not hermitian:
        return a
    lower = np.tril(np.ones(_shape(a)[-2:], np.bool_))
    return ops.where(ops.broadcast(lower, _shape(a)), a, _mT(a))


def eigh(a, UPLO="L"):
    """Eigenvalues (ascending) and eigenvectors (columns), reading the triangle UPLO."""
    a = _triangle("eigh", a, UPLO)
    packed = ops.eigh(a)
    n = _shape(a)[-1]
    return EighResult(_drop(_part(packed, 0, 1, -2), -2), _part(packed, 1, n, -2))


def eigvalsh(a, UPLO="L"):
    return ops.eigvalsh(_triangle("eigvalsh", a, UPLO))


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """U, S, Vh with a = U @ diag(S) @ Vh.  Gradients need full_matrices=False or a
    square a (the extra columns of a full U or V are not unique)."""
    a = _hermitian("svd", a, hermitian)
    if not compute_uv:
        return ops.svdvals(a)
    m, n = _shape(a)[-2:]
    k = min(m, n)
    full = bool(full_matrices) and m != n
    packed = ops.svd(a, full_matrices=full)
    u_cols, v_cols = (m, n) if full else (k, k)
    s = _drop(_part(packed, 0, 1, -2), -2)
    u = _part(_part(packed, 1, m, -2), 0, u_cols, -1)
    v = _part(_part(packed, 1 + m, n, -2), 0, v_cols, -1)
    return SVDResult(u, _part(s, 0, k, -1) if full else s, _mT(v))


def svdvals(x, /):
    return ops.svdvals(_matrices("svdvals", x))


def qr(a, mode="reduced"):
    """Q and R (mode 'reduced' or 'complete'), or R alone (mode 'r')."""
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"qr: unrecognized mode {mode!r} (tracegrad offers 'reduced', "
                         "'complete' and 'r'; 'raw' is not supported)")
    a = _matrices("qr", a)
    m, n = _shape(a)[-2:]
    packed = ops.qr(a, complete=mode == "complete")
    q, r = _part(packed, 0, m, -2), _mT(_part(packed, m, n, -2))
    return r if mode == "r" else QRResult(q, r)


# ---- pseudo-inverse, least squares, rank, condition -------------------------------------------------

_UNSET = object()  # NumPy's "argument not given" (pinv's rtol: None there means something)


def _pinv_rcond(a, rcond, rtol):
    """NumPy 2's rule: rcond, else rtol (None: max(m, n) * eps), else 1e-15."""
    if rcond is not None:
        if rtol is not _UNSET:
            raise ValueError("`rtol` and `rcond` can't be both set.")
        return float(rcond)
    if rtol is _UNSET:
        return 1e-15
    return builtins.max(_shape(a)[-2:]) * float(np.finfo(_dtype(a)).eps) if rtol is None \
        else float(rtol)


def pinv(a, rcond=None, hermitian=False, *, rtol=_UNSET):
    """Moore-Penrose pseudo-inverse; singular values <= rcond * largest are dropped
    (rcond and rtol as NumPy 2 reads them).  Its derivative is the fixed-rank one (JAX's)."""
    a = _hermitian("pinv", a, hermitian)
    return ops.pinv(a, rcond=_pinv_rcond(a, rcond, rtol))


def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """Number of singular values above tol (default max(m, n) * eps * largest), as int64."""
    a = _float(A)
    if _ndim(a) < 2:  # NumPy: 1 unless every entry is 0
        if not builtins.all(_shape(a)):
            return np.int64(0)
        nonzero = ops.convert(ops.ne(a, _c(a, 0.0)), np.int64)
        return ops.reduce_max(nonzero, tuple(range(_ndim(a)))) if _ndim(a) else nonzero
    s = svdvals(_hermitian("matrix_rank", a, hermitian))
    if not _shape(s)[-1]:
        return ops.broadcast(np.int64(0), _shape(s)[:-1])
    if tol is None:
        rtol = builtins.max(_shape(a)[-2:]) * np.finfo(_dtype(a)).eps if rtol is None else rtol
        t = ops.mul(ops.reduce_max(s, (_ndim(s) - 1,)), _c(s, rtol))
    else:
        t = ops.convert(_operand(tol), _dtype(s)) if _dtype(_operand(tol)) != _dtype(s) \
            else _operand(tol)
    t = ops.broadcast(ops.reshape(ops.broadcast(t, _shape(s)[:-1]), _shape(s)[:-1] + (1,)),
                      _shape(s))
    return ops.reduce_sum(ops.convert(ops.gt(s, t), np.int64), (_ndim(s) - 1,))


def lstsq(a, b, rcond=None):
    """Least-squares solution (x, residuals, rank, s) of a @ x ~ b, as numpy.linalg.lstsq
    (x = pinv(a) @ b; rcond default eps * max(m, n)).  Residuals are computed when
    rank == n < m, a decision that is a guard under tracing; where the rank is not known
    (vmap, abstract tracing) a tall `a` always gets them, as jax.numpy's lstsq.  The
    gradient is pinv's (fixed rank): where `rcond` cuts a singular value that is not
    negligible it is not the derivative of the truncated solution (JAX's SVD route is)."""
    a, b = _promote(a, b)
    a = _matrices("lstsq", a)
    if _ndim(a) != 2:
        _fail("lstsq", "a must be 2-dimensional", [a], LinAlgError)
    m, n = _shape(a)
    vector = _ndim(b) == 1
    b2 = ops.reshape(b, (_shape(b)[0], 1)) if vector else b
    if _ndim(b2) != 2 or _shape(b2)[0] != m:
        _fail("lstsq", "Incompatible dimensions", [a, b], LinAlgError)
    r = np.finfo(_dtype(a)).eps * builtins.max(m, n) if rcond is None else float(rcond)
    x = ops.dot(ops.pinv(a, rcond=r), b2)
    s = svdvals(a)
    rank = _convert(matrix_rank(a, rtol=r), np.dtype(np.int32))  # numpy's lstsq: int32
    resid = _residuals(a, b2, x, m, n, rank)
    x = _drop(x, -1) if vector else x
    return x, resid, rank, s


def _residuals(a, b, x, m, n, rank):
    if not (m > n and _full_rank(rank, n)):
        return np.zeros((0,), _dtype(a))
    r = ops.sub(ops.dot(a, x), b)
    return ops.reduce_sum(ops.mul(r, r), (0,))


def _full_rank(rank, n) -> bool:
    try:
        return int(rank) == n
    except ConcretizationError:  # no value to decide on: JAX's residuals, whatever the rank
        return True


def cond(x, p=None):
    """Condition number: largest / smallest singular value (p None, 2, -2), or
    norm(x, p) * norm(inv(x), p)."""
    x = _matrices("cond", x)
    if p is None or p in (2, -2):
        s = svdvals(x)
        last = _ndim(s) - 1
        hi, lo = ops.reduce_max(s, (last,)), ops.reduce_min(s, (last,))
        r = ops.div(lo, hi) if p == -2 else ops.div(hi, lo)
    else:
        r = ops.mul(norm(x, p, axis=(-2, -1)), norm(inv(x), p, axis=(-2, -1)))
    # NumPy's: a NaN that the input's own NaNs do not explain is a singular matrix's inf
    # (0 / 0 for the zero matrix)
    nd = _ndim(x)
    clean = ops.eq(ops.reduce_max(ops.convert(ops.ne(x, x), np.dtype(np.int32)), (nd - 2, nd - 1)),
                   np.asarray(0, np.int32))
    return ops.where(ops.logical_and(ops.ne(r, r), clean), _c(r, np.inf), r)


# ---- norms ------------------------------------------------------------------------------------------------

def _sumsq(x, axes):
    return ops.reduce_sum(ops.mul(x, x), axes)


def _vector_norm(x, ord, axes):
    """The vector norm of `x` over the (sorted) `axes`, which are reduced away."""
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order '{ord}' for vectors")
    if ord is None or ord == 2:
        return zero_safe_root(_sumsq(x, axes))
    if ord == np.inf:
        if 0 in [_shape(x)[a] for a in axes]:  # no elements: 0, as NumPy's max(|x|, initial=0)
            return ops.reduce_sum(_abs0(x), axes)
        return ops.reduce_max(_abs0(x), axes)
    if ord == -np.inf:
        return ops.reduce_min(_abs0(x), axes)
    if ord == 0:
        return ops.reduce_sum(_nonzero(x), axes)
    if ord == 1:
        return ops.reduce_sum(_abs0(x), axes)
    total = ops.reduce_sum(_pow0(x, ord), axes)
    if ord > 0:
        return zero_safe_root(total, 1.0 / ord)
    return ops.pow(total, _c(x, 1.0 / ord))


def _nonzero(x):
    """1 where x != 0 (NaN included), else 0, as a function of x with zero derivative: the
    0-"norm" stays in the graph as PyTorch's (a grad_fn, zero gradient), where a converted
    comparison would cut it off."""
    return ops.where(ops.ne(x, x), _c(x, 1.0), ops.abs(ops.sign(x)))


def _abs0(x):
    """|x| whose derivative at 0 is 0: the norms' subgradient there, as PyTorch's
    (docs/derivatives.md), where abs's own derivative at 0 is JAX's 1."""
    zero = ops.eq(x, _c(x, 0.0))
    return ops.where(zero, _c(x, 0.0), ops.abs(x))


def _pow0(x, p):
    """|x|**p with the value 0 (inf for p < 0) and derivative 0 at x = 0, where the power's
    own derivative is inf (p < 1) and would make the norm's gradient NaN."""
    zero = ops.eq(x, _c(x, 0.0))
    safe = ops.where(zero, _c(x, 1.0), ops.abs(x))
    return ops.where(zero, _c(x, 0.0 if p > 0 else np.inf), ops.pow(safe, _c(x, p)))


def _moved_last(x, row, col):
    others = [i for i in range(_ndim(x)) if i not in (row, col)]
    return ops.transpose(x, tuple(others) + (row, col))


def _matrix_norm(x, ord, row, col):
    """The matrix norm over axes (row, col), which are reduced away."""
    if ord in (None, "fro", "f"):
        return zero_safe_root(_sumsq(x, tuple(sorted((row, col)))))
    if ord in ("nuc", 2, -2):
        s = ops.svdvals(_moved_last(x, row, col))
        last = (_ndim(s) - 1,)
        if ord == "nuc":
            return ops.reduce_sum(s, last)
        return _max_from_zero(s, last[0]) if ord == 2 else ops.reduce_min(s, last)
    if ord in (1, -1, np.inf, -np.inf):
        summed, kept = (row, col) if ord in (1, -1) else (col, row)
        sums = ops.reduce_sum(_abs0(x), (summed,))
        kept -= kept > summed
        return _max_from_zero(sums, kept) if ord > 0 else ops.reduce_min(sums, (kept,))
    raise ValueError("Invalid norm order for matrices.")


def _max_from_zero(v, axis):
    """The maximum of `v` (>= 0) over `axis`, from 0 as numpy's norms take it (initial=0):
    an empty matrix's 2-, 1- and inf-norms are 0 (the minimum-based ones raise, as numpy's)."""
    shape = _shape(v)
    if shape[axis] == 0:
        return ops.broadcast(_c(v, 0.0), shape[:axis] + shape[axis + 1:])
    return ops.reduce_max(v, (axis,))


def _keep(r, shape, axes, keepdims):
    if not keepdims:
        return r
    return ops.reshape(r, tuple(1 if i in axes else d for i, d in enumerate(shape)))


def _axes(axis, nd):
    axis = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    axes = tuple(_norm_axis(a, nd) for a in axis)
    if len(set(axes)) != len(axes):
        raise ValueError("Duplicate axes given.")
    return axes


def norm(x, ord=None, axis=None, keepdims=False):
    """Vector and matrix norms as numpy.linalg.norm: ord None, 'fro', 'nuc', inf, -inf,
    0, 1, -1, 2, -2 and other real orders for vectors."""
    x = _float(x)
    nd, shp = _ndim(x), _shape(x)
    if axis is None:
        if ord is None or (ord in ("f", "fro") and nd == 2) or (ord == 2 and nd == 1):
            return _keep(zero_safe_root(_sumsq(x, tuple(range(nd)))), shp, range(nd), keepdims)
        if nd not in (1, 2):
            raise ValueError("Improper number of dimensions to norm.")
        axis = tuple(range(nd))
    axes = _axes(axis, nd)
    if len(axes) == 1:
        return _keep(_vector_norm(x, ord, axes), shp, axes, keepdims)
    if len(axes) == 2:
        return _keep(_matrix_norm(x, ord, *axes), shp, axes, keepdims)
    raise ValueError("Improper number of dimensions to norm.")


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """The vector norm over `axis` (None: all axes, flattened; a tuple: those axes)."""
    x = _float(x)
    nd, shp = _ndim(x), _shape(x)
    axes = tuple(range(nd)) if axis is None else tuple(sorted(_axes(axis, nd)))
    return _keep(_vector_norm(x, ord, axes), shp, axes, keepdims)


def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    return norm(_matrices("matrix_norm", x), ord=ord, axis=(-2, -1), keepdims=keepdims)


# ---- products and tensor forms --------------------------------------------------------------------------

def _chain_order(dims):
    """NumPy's multi_dot: the cheapest parenthesization (dynamic programming)."""
    n = len(dims) - 1
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


def _chain(arrays, split, i, j):
    if i == j:
        return arrays[i]
    k = split[i][j]
    return ops.dot(_chain(arrays, split, i, k), _chain(arrays, split, k + 1, j))


def multi_dot(arrays, *, out=None):
    """The product of 2-D arrays (the first and last may be 1-D) in the cheapest order."""
    _reject("multi_dot", out=out)
    arrays = _promote(*arrays)
    if len(arrays) < 2:
        raise ValueError("Expecting at least two arrays.")
    first_1d, last_1d = _ndim(arrays[0]) == 1, _ndim(arrays[-1]) == 1
    mats = list(arrays)
    if first_1d:
        mats[0] = ops.reshape(mats[0], (1,) + _shape(mats[0]))
    if last_1d:
        mats[-1] = ops.reshape(mats[-1], _shape(mats[-1]) + (1,))
    for m in mats:
        if _ndim(m) != 2:
            _fail("multi_dot", "arrays must be 2-dimensional (the first and last may be 1-D)",
                  [m], LinAlgError)
    if len(mats) == 2:
        result = _np_matmul(mats[0], mats[1])
    else:
        dims = [_shape(m)[0] for m in mats] + [_shape(mats[-1])[1]]
        for a, b in zip(mats, mats[1:]):
            if _shape(a)[1] != _shape(b)[0]:
                _fail("multi_dot", "shapes not aligned", [a, b])
        result = _chain(mats, _chain_order(dims), 0, len(mats) - 1)
    final = _shape(result)
    final = final[1:] if first_1d else final
    final = final[:-1] if last_1d else final
    return ops.reshape(result, final)


def tensorsolve(a, b, axes=None):
    """x with tensordot(a, x, x.ndim) = b (NumPy's reshape to a square solve)."""
    a, b = _promote(a, b)
    an = _ndim(a)
    if axes is not None:
        order = [i for i in range(an) if i not in [_norm_axis(k, an) for k in axes]]
        a = ops.transpose(a, tuple(order) + tuple(_norm_axis(k, an) for k in axes))
    old = _shape(a)[-(an - _ndim(b)):] if an > _ndim(b) else ()
    size = int(np.prod(old, dtype=np.int64))
    if int(np.prod(_shape(a)[:_ndim(b)], dtype=np.int64)) != size:
        _fail("tensorsolve", "Input arrays must satisfy the requirement "
              "prod(a.shape[b.ndim:]) == prod(a.shape[:b.ndim])", [a, b], LinAlgError)
    x = solve(ops.reshape(a, (size, size)), ops.reshape(b, (size,)))
    return ops.reshape(x, old)


def tensorinv(a, ind=2):
    """The inverse of `a` read as a matrix of its first `ind` axes by the rest."""
    a = _float(a)
    if ind <= 0:
        raise ValueError("Invalid ind argument.")
    old = _shape(a)
    size = int(np.prod(old[:ind], dtype=np.int64))
    if int(np.prod(old[ind:], dtype=np.int64)) != size:
        _fail("tensorinv", "a is not square when read with ind axes", [a], LinAlgError)
    return ops.reshape(inv(ops.reshape(a, (size, size))), old[ind:] + old[:ind])


def diagonal(x, /, *, offset=0):
    """The diagonal(s) of the last two axes (one strided slice of the flattened matrix)."""
    x = _operand(x)
    if _ndim(x) < 2:
        raise ValueError("diagonal requires an array of at least two dimensions")
    shp = _shape(x)
    m, n = shp[-2:]
    k = operator.index(offset)
    size = builtins.max(0, builtins.min(m, n - k) if k >= 0 else builtins.min(m + k, n))
    flat = ops.reshape(x, shp[:-2] + (m * n,))
    start = (k if k >= 0 else -k * n) if size else 0
    nb = len(shp) - 2
    return ops.slice(flat, (0,) * nb + (start,), (1,) * nb + (n + 1,), shp[:-2] + (size,))


def trace(x, /, *, offset=0, dtype=None):
    """Sum of the diagonal of the last two axes (int and bool sum as NumPy sums them)."""
    d = diagonal(x, offset=offset)
    dt = dtypes.sum_result(_dtype(d)) if dtype is None else np.dtype(dtype)
    d = d if _dtype(d) == dt else ops.convert(d, dt)
    return ops.reduce_sum(d, (_ndim(d) - 1,))


def matrix_transpose(x, /):
    x = _operand(x)
    if _ndim(x) < 2:
        raise ValueError("Input array must be at least 2-dimensional")
    return _mT(x)


def outer(x1, x2, /):
    """The outer product of two 1-D arrays."""
    a, b = _operand(x1), _operand(x2)
    if _ndim(a) != 1 or _ndim(b) != 1:
        _fail("outer", "Input arrays must be one-dimensional", [a, b], ValueError)
    from .elementwise import multiply
    return multiply(ops.reshape(a, _shape(a) + (1,)), ops.reshape(b, (1,) + _shape(b)))


def matmul(x1, x2, /):
    return _np_matmul(x1, x2)


def vecdot(x1, x2, /, *, axis=-1):
    """sum(x1 * x2, axis) with broadcasting (real inputs: no conjugation needed)."""
    from .elementwise import multiply
    prod = _operand(multiply(x1, x2))
    return ops.reduce_sum(prod, (_norm_axis(axis, _ndim(prod)),))


def _component(x, i, axis):
    return _drop(_part(x, i, 1, axis), axis)


def cross(x1, x2, /, *, axis=-1):
    """The cross product of 3-vectors along `axis`, with broadcasting."""
    from .elementwise import multiply, subtract
    a, b = _operand(x1), _operand(x2)
    for v in (a, b):
        if not _ndim(v) or _shape(v)[axis % _ndim(v)] != 3:
            _fail("cross", "both input arrays must be (arrays of) 3-dimensional vectors",
                  [a, b], ValueError)
    ca = [_component(a, i, axis % _ndim(a)) for i in range(3)]
    cb = [_component(b, i, axis % _ndim(b)) for i in range(3)]
    parts = [subtract(multiply(ca[(i + 1) % 3], cb[(i + 2) % 3]),
                      multiply(ca[(i + 2) % 3], cb[(i + 1) % 3])) for i in range(3)]
    parts = [_operand(p) for p in parts]
    shp = _shape(parts[0])
    out = ops.concatenate([ops.reshape(p, shp + (1,)) for p in parts], len(shp))
    dest = axis % (len(shp) + 1) if axis < 0 else axis
    perm = list(range(len(shp)))
    perm.insert(dest, len(shp))
    return ops.transpose(out, tuple(perm))


def _size(shape, axes):
    return int(np.prod([shape[i] for i in axes], dtype=np.int64))


def _axis_list(spec, nd):
    spec = [spec] if isinstance(spec, (int, np.integer)) else list(spec)
    return [_norm_axis(i, nd) for i in spec]


def tensordot(x1, x2, /, *, axes=2):
    """Sum over the last `axes` axes of x1 and the first of x2 (or the listed pairs),
    as one matrix product of the transposed, flattened operands."""
    dt = dtypes.result_type(x1, x2)
    a, b = (ops.convert(_operand(x), dt) if _dtype(_operand(x)) != dt else _operand(x)
            for x in (x1, x2))
    na, nb = _ndim(a), _ndim(b)
    if isinstance(axes, (int, np.integer)):
        axes_a, axes_b = list(range(na - int(axes), na)), list(range(int(axes)))
    else:
        axes_a, axes_b = _axis_list(axes[0], na), _axis_list(axes[1], nb)
    sa, sb = _shape(a), _shape(b)
    if [sa[i] for i in axes_a] != [sb[i] for i in axes_b]:
        _fail("tensordot", "shape-mismatch for sum", [a, b], ValueError)
    free_a = [i for i in range(na) if i not in axes_a]
    free_b = [i for i in range(nb) if i not in axes_b]
    k = _size(sa, axes_a)
    a2 = ops.reshape(ops.transpose(a, tuple(free_a + axes_a)), (_size(sa, free_a), k))
    b2 = ops.reshape(ops.transpose(b, tuple(axes_b + free_b)), (k, _size(sb, free_b)))
    out_shape = tuple(sa[i] for i in free_a) + tuple(sb[i] for i in free_b)
    return ops.reshape(_np_matmul(a2, b2), out_shape)


# numpy.linalg's callables (those this numpy has) -> the implementations above
NUMPY = {getattr(np.linalg, name): globals()[name] for name in LINALG if hasattr(np.linalg, name)}


def _namespace():
    space = types.ModuleType("tracegrad.numpy.linalg", __doc__)
    space.__all__ = list(LINALG)
    for name in LINALG + ["LinAlgError", "SlogdetResult", "EighResult", "SVDResult", "QRResult"]:
        setattr(space, name, globals()[name])
    return space


linalg = _namespace()
# `import tracegrad.numpy.linalg` (tracegrad.numpy is a module, not a package): the import
# system finds a submodule already in sys.modules once its parent is imported.
sys.modules.setdefault("tracegrad.numpy.linalg", linalg)
