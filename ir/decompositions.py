"""Matrix decompositions and solvers (LAPACK-backed extern primitives) with their
matrix-calculus derivatives.

Every primitive here is of kind "extern" (fusion never fuses into it; codegen
calls LAPACK natively, codegen/lapack.py, or back into the numpy `impl`), works
on float32/float64 matrices in the last two axes and is batched over any leading
axes, as numpy.linalg is.  The numpy references use numpy.linalg only.

One output per primitive (the eager tensor records one backward node per
primitive), so a factorization with several factors returns them packed along
the second-to-last axis, and `tracer/numpy/linalg.py` slices them apart:
  * eigh   (..., n, n) -> (..., 1 + n, n):        row 0 the eigenvalues (ascending),
                                                  rows 1.. the eigenvectors (columns);
  * svd    (..., m, n) -> (..., 1 + m + n, w):     row 0 the singular values
                                                  (descending, first k = min(m, n) entries),
                                                  rows 1..m U, rows 1+m.. V (not V^T);
                                                  w = k, or max(m, n) with full_matrices
                                                  (U and V then fill m and n columns);
  * qr     (..., m, n) -> (..., m + n, kq):        rows ..m Q, rows m.. R^T (kq = k, or m
                                                  when complete);
  * slogdet (..., n, n) -> (..., 2):              [sign, log|det|].

`cholesky` and `eigh`/`eigvalsh` read the lower triangle only, as numpy.linalg and
LAPACK do, so their values are numpy's.  Their derivatives are those of a symmetric
operand, as JAX's and PyTorch's: a tangent counts through its symmetric part
`(t + t^T) / 2` and a gradient is symmetric (for a symmetric perturbation, the
derivative of the function numpy computes).  Shared with JAX: a batch
entry whose factorization fails (singular `solve`/`inv`, a matrix that is not
positive definite for `cholesky`) is all NaN, never an exception.  Degenerate
spectra: the eigenvector (singular vector) derivatives have 1/(λj - λi) terms,
infinite where eigenvalues coincide, as in JAX; a zero cotangent of the vectors
contributes exactly zero even then (so the values' gradient of a degenerate
matrix stays finite), and `eigvalsh`/`svdvals` have derivatives of their own
that never form those terms.  The gradients of `svd` with full_matrices and of
`qr` in complete mode with m > n are not unique and raise (JAX raises too).

Derivative rules are written with `ir.ops`, so they serve eager autograd, the IR
autodiff pass and higher orders alike.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .core import ShapedArray, is_float
from .primitives import Primitive, bind, fail, register

__all__ = ["cholesky", "triangular_solve", "solve", "inv", "slogdet", "eigh", "eigvalsh", "svd",
           "svdvals", "qr", "pinv"]


# ---- matrix helpers on any operand (numpy, tensor, traced) ------------------------------

def _shp(x):
    return tuple(ops.shape(x))


def _c(x, value):
    """A constant of x's dtype (literal operands of the elementwise primitives)."""
    return np.asarray(value, ops.dtype(x))


def _mT(x):
    n = len(_shp(x))
    return ops.transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


def _mm(a, b):
    return ops.dot(a, b)


def _const(x, array):
    """A constant matrix (last two axes) broadcast to x's shape, in x's dtype."""
    return ops.broadcast(np.asarray(array, ops.dtype(x)), _shp(x))


def _masked(x, mask):
    return ops.mul(x, _const(x, mask))


def _tril(x, k=0):
    m, n = _shp(x)[-2:]
    return _masked(x, np.tri(m, n, k))


def _triu(x, k=0):
    m, n = _shp(x)[-2:]
    return _masked(x, 1.0 - np.tri(m, n, k - 1))


def _eye_like(x):
    m, n = _shp(x)[-2:]
    return _const(x, np.eye(m, n))


def _diag(x):
    """(..., n, n) -> (..., n): the main diagonal."""
    return ops.reduce_sum(ops.mul(x, _eye_like(x)), (len(_shp(x)) - 1,))


def _rows(v, shape):
    """v (..., k) as (..., 1, k) broadcast to `shape`: v[j] in column j."""
    s = _shp(v)
    return ops.broadcast(ops.reshape(v, s[:-1] + (1, s[-1])), shape)


def _cols(v, shape):
    """v (..., k) as (..., k, 1) broadcast to `shape`: v[i] in row i."""
    s = _shp(v)
    return ops.broadcast(ops.reshape(v, s + (1,)), shape)


def _diag_embed(v):
    n = _shp(v)[-1]
    full = _rows(v, _shp(v)[:-1] + (n, n))
    return ops.mul(full, _eye_like(full))


def _symmetric(x):
    """(x + x^T) / 2: a tangent of a symmetric operand, and the gradient of one (its own
    adjoint), as JAX and PyTorch define the derivatives of cholesky and eigh."""
    return ops.mul(ops.add(x, _mT(x)), 0.5)


def _sum(*terms):
    terms = [t for t in terms if t is not None]
    total = terms[0]
    for t in terms[1:]:
        total = ops.add(total, t)
    return total


def _part(x, start, size, axis=-2):
    """x[..., start:start + size, :] along `axis` (a slice primitive)."""
    shp = _shp(x)
    axis %= len(shp)
    starts = tuple(start if i == axis else 0 for i in range(len(shp)))
    sizes = tuple(size if i == axis else d for i, d in enumerate(shp))
    return ops.slice(x, starts, (1,) * len(shp), sizes)


def _row(x, i):
    """x[..., i, :] with the axis dropped."""
    part = _part(x, i, 1)
    shp = _shp(part)
    return ops.reshape(part, shp[:-2] + shp[-1:])


def _pack(parts, axis=-2):
    return ops.concatenate(parts, len(_shp(parts[0])) + axis if axis < 0 else axis)


def _zero_safe_mul(f, x):
    """f * x where x == 0 gives exactly 0 even where f is infinite (degenerate spectra)."""
    return ops.where(ops.eq(x, _c(x, 0.0)), _c(x, 0.0), ops.mul(f, x))


def _inverse_gaps(w):
    """F[i, j] = 1 / (w[j] - w[i]) off the diagonal, 0 on it (inf where w[i] == w[j])."""
    n = _shp(w)[-1]
    shape = _shp(w)[:-1] + (n, n)
    diff = ops.sub(_rows(w, shape), _cols(w, shape))
    eye = _const(diff, np.eye(n))
    return ops.sub(ops.div(_c(diff, 1.0), ops.add(diff, eye)), eye)


# ---- numpy references: batches, failures as NaN --------------------------------------------

def _per_matrix(fn, a, out_shape, *rest):
    """fn over each matrix of the batch; a failing entry (LinAlgError) is all NaN."""
    a = np.asarray(a)
    batch = a.shape[:-2]
    flat = a.reshape((-1,) + a.shape[-2:])
    others = [np.asarray(r).reshape((-1,) + np.shape(r)[len(batch):]) for r in rest]
    out = np.empty((flat.shape[0],) + tuple(out_shape), a.dtype)
    for i in range(flat.shape[0]):
        try:
            out[i] = fn(flat[i], *[o[i] for o in others])
        except np.linalg.LinAlgError:
            out[i] = np.nan
    return out.reshape(batch + tuple(out_shape))


def _guarded(fn, out_shape):
    """numpy.linalg `fn` on the whole batch, per matrix (NaN entries) if it raises."""
    def impl(a, *rest):
        a = np.asarray(a)
        try:
            with np.errstate(all="ignore"):
                return np.asarray(fn(a, *rest), a.dtype)
        except np.linalg.LinAlgError:
            with np.errstate(all="ignore"):
                return _per_matrix(fn, a, out_shape(a, *rest), *rest)
    return impl


# ---- shape rules ------------------------------------------------------------------------------

def _matrix(name, a, square=False):
    if a.ndim < 2:
        fail(name, "needs an operand of rank >= 2 (a batch of matrices)", a)
    if not is_float(a.dtype):
        fail(name, "needs a float operand", a)
    if square and a.shape[-1] != a.shape[-2]:
        fail(name, "needs square matrices in the last two axes", a)
    return a


def _square_rule(name):
    def rule(a, **params):
        return _matrix(name, a, square=True)
    return rule


def _solve_rule(name):
    def rule(a, b, **params):
        _matrix(name, a, square=True)
        _matrix(name, b)
        if b.ndim != a.ndim or b.shape[:-2] != a.shape[:-2] or b.shape[-2] != a.shape[-1]:
            fail(name, "needs a (..., n, n) and b (..., n, k) with equal batch dims", a, b)
        if a.dtype != b.dtype:
            fail(name, "operand dtypes differ", a, b)
        return b
    return rule


def _declare(name, rule, impl, vjp, jvp, torch_name, doc):
    register(Primitive(name, "extern", rule, impl, vjp, jvp, torch_name=torch_name, doc=doc))


def _binder(name):
    def f(*args, **params):
        return bind(name, *args, **params)
    f.__name__ = f.__qualname__ = name
    return f


# ---- cholesky -----------------------------------------------------------------------------------

def _phi(x):
    """The lower triangle with the diagonal halved (the Cholesky derivative's projection)."""
    n = _shp(x)[-1]
    return _masked(x, np.tri(n) - 0.5 * np.eye(n))


def _cholesky_jvp(tangents, out, a):
    t, = tangents
    if t is None:
        return None
    y = triangular_solve(out, _symmetric(t), lower=True)                       # L^-1 dA
    x = _mT(triangular_solve(out, _mT(y), lower=True))                   # L^-1 dA L^-T
    return _mm(out, _phi(x))


def _cholesky_vjp(g, out, a):
    p = _phi(_mm(_mT(out), g))
    z = triangular_solve(out, p, lower=True, transpose_a=True)          # L^-T P
    s = _mT(triangular_solve(out, _mT(z), lower=True, transpose_a=True))  # L^-T P L^-1
    return (_symmetric(s),)


_declare("cholesky", _square_rule("cholesky"),
         lambda a: _guarded(np.linalg.cholesky, lambda a: a.shape[-2:])(a),
         _cholesky_vjp, _cholesky_jvp, "LinalgCholeskyExBackward0",
         "Lower Cholesky factor (reads the lower triangle); NaN where not positive definite")
cholesky = _binder("cholesky")


# ---- triangular_solve -----------------------------------------------------------------------------

def _tri_mask(n, lower, unit_diagonal):
    mask = np.tri(n) if lower else np.tri(n).T
    return mask - np.eye(n) if unit_diagonal else mask


def _tri_matrix_np(a, lower, unit_diagonal):
    """a's triangle (strict with unit_diagonal, which then adds ones): np.tril/np.triu,
    one pass, where a mask product took three."""
    n = a.shape[-1]
    k = (-1 if lower else 1) if unit_diagonal else 0
    t = np.tril(a, k) if lower else np.triu(a, k)
    return t + np.eye(n, dtype=a.dtype) if unit_diagonal else t


def _substitute(t, b, lower):
    """Solve t x = b for a triangular t by substitution (zero pivots give inf/NaN); the
    reference, which eager calls replace by cblas trsm where numpy's OpenBLAS has it
    (tracegrad/eager_linalg.py)."""
    n = t.shape[-1]
    x = np.zeros(np.broadcast_shapes(t.shape[:-2], b.shape[:-2]) + b.shape[-2:], b.dtype)
    for i in (range(n) if lower else range(n - 1, -1, -1)):
        known = t[..., i:i + 1, :] @ x                                   # (..., 1, k)
        x[..., i, :] = (b[..., i, :] - known[..., 0, :]) / t[..., i, i:i + 1]
    return x


def _trisolve_impl(a, b, *, lower, transpose_a, unit_diagonal):
    a, b = np.asarray(a), np.asarray(b)
    t = _tri_matrix_np(a, lower, unit_diagonal)
    if transpose_a:
        t, lower = np.swapaxes(t, -1, -2), not lower
    with np.errstate(all="ignore"):
        return _substitute(t, b, lower).astype(b.dtype)


def _trisolve_params(params):
    return dict(lower=params["lower"], unit_diagonal=params["unit_diagonal"])


def _op_masked(ta, lower, transpose_a, unit_diagonal):
    m = _masked(ta, _tri_mask(_shp(ta)[-1], lower, unit_diagonal))
    return _mT(m) if transpose_a else m


def _trisolve_vjp(g, out, a, b, *, lower, transpose_a, unit_diagonal):
    gb = triangular_solve(a, g, lower=lower, transpose_a=not transpose_a,
                          unit_diagonal=unit_diagonal)
    ga = ops.neg(_mm(gb, _mT(out)) if not transpose_a else _mm(out, _mT(gb)))
    return _masked(ga, _tri_mask(_shp(a)[-1], lower, unit_diagonal)), gb


def _trisolve_jvp(tangents, out, a, b, *, lower, transpose_a, unit_diagonal):
    ta, tb = tangents
    rhs = [tb] if tb is not None else []
    if ta is not None:
        rhs.append(ops.neg(_mm(_op_masked(ta, lower, transpose_a, unit_diagonal), out)))
    return triangular_solve(a, _sum(*rhs), lower=lower, transpose_a=transpose_a,
                            unit_diagonal=unit_diagonal)


_declare("triangular_solve", _solve_rule("triangular_solve"), _trisolve_impl, _trisolve_vjp,
         _trisolve_jvp, "LinalgSolveTriangularBackward0",
         "x with op(a) x = b, a triangular (lower/upper; op = transpose with transpose_a; "
         "unit_diagonal: a's diagonal is taken as ones and never read)")


def triangular_solve(a, b, *, lower=True, transpose_a=False, unit_diagonal=False):
    return bind("triangular_solve", a, b, lower=bool(lower), transpose_a=bool(transpose_a),
                unit_diagonal=bool(unit_diagonal))


# ---- solve, inv, slogdet (LU) -------------------------------------------------------------------------

def _solve_vjp(g, out, a, b):
    gb = solve(_mT(a), g)
    return ops.neg(_mm(gb, _mT(out))), gb


def _solve_jvp(tangents, out, a, b):
    ta, tb = tangents
    rhs = _sum(tb, None if ta is None else ops.neg(_mm(ta, out)))
    return solve(a, rhs)


_declare("solve", _solve_rule("solve"),
         _guarded(np.linalg.solve, lambda a, b: np.shape(b)[-2:]), _solve_vjp, _solve_jvp,
         "LinalgSolveExBackward0", "x with a x = b (LU with partial pivoting); NaN where singular")
solve = _binder("solve")


def _inv_vjp(g, out, a):
    xt = _mT(out)
    return (ops.neg(_mm(_mm(xt, g), xt)),)


def _inv_jvp(tangents, out, a):
    t, = tangents
    return None if t is None else ops.neg(_mm(_mm(out, t), out))


_declare("inv", _square_rule("inv"), _guarded(np.linalg.inv, lambda a: a.shape[-2:]),
         _inv_vjp, _inv_jvp, "LinalgInvExBackward0", "Matrix inverse (LU); NaN where singular")
inv = _binder("inv")


def _slogdet_rule(a):
    _matrix("slogdet", a, square=True)
    return ShapedArray(a.shape[:-2] + (2,), a.dtype)


def _slogdet_impl(a):
    a = np.asarray(a)
    sign, logdet = np.linalg.slogdet(a)
    return np.stack([sign, logdet], axis=-1).astype(a.dtype)


def _slogdet_vjp(g, out, a):
    glog = _part(g, 1, 1, axis=-1)                                      # (..., 1)
    scale = ops.broadcast(ops.reshape(glog, _shp(glog) + (1,)), _shp(a))
    return (ops.mul(scale, _mT(inv(a))),)


def _slogdet_jvp(tangents, out, a):
    t, = tangents
    if t is None:
        return None
    d = _diag(solve(a, t))                                              # tr(a^-1 da)
    dlog = ops.reshape(ops.reduce_sum(d, (len(_shp(d)) - 1,)), _shp(out)[:-1] + (1,))
    return _pack([ops.mul(dlog, _c(dlog, 0.0)), dlog], axis=-1)


_declare("slogdet", _slogdet_rule, _slogdet_impl, _slogdet_vjp, _slogdet_jvp,
         "LinalgSlogdetBackward0", "[sign, log|det|] of square matrices (LU)")
slogdet = _binder("slogdet")


# ---- eigh, eigvalsh ----------------------------------------------------------------------------------

def _eigh_rule(a):
    _matrix("eigh", a, square=True)
    return ShapedArray(a.shape[:-2] + (a.shape[-1] + 1, a.shape[-1]), a.dtype)


def _eigh_np(a):
    w, v = np.linalg.eigh(a)
    return np.concatenate([w[..., None, :], v], axis=-2)


def _eigh_impl(a):
    a = np.asarray(a)
    n = a.shape[-1]
    return _guarded(_eigh_np, lambda a: (n + 1, n))(a)


def _eigh_parts(out):
    n = _shp(out)[-1]
    return _row(out, 0), _part(out, 1, n)


def _eigh_vjp(g, out, a):
    w, v = _eigh_parts(out)
    gw, gv = _eigh_parts(g)
    inner = ops.add(_diag_embed(gw), _zero_safe_mul(_inverse_gaps(w), _mm(_mT(v), gv)))
    return (_symmetric(_mm(_mm(v, inner), _mT(v))),)


def _eigh_jvp(tangents, out, a):
    t, = tangents
    if t is None:
        return None
    w, v = _eigh_parts(out)
    d = _mm(_mm(_mT(v), _symmetric(t)), v)
    dw = _diag(d)
    dv = _mm(v, ops.mul(_inverse_gaps(w), d))
    return _pack([ops.reshape(dw, _shp(dw)[:-1] + (1, _shp(dw)[-1])), dv])


_declare("eigh", _eigh_rule, _eigh_impl, _eigh_vjp, _eigh_jvp, "LinalgEighBackward0",
         "Eigenvalues (ascending, row 0) and eigenvectors (rows 1..); reads the lower triangle")
eigh = _binder("eigh")


def _eigvalsh_rule(a):
    _matrix("eigvalsh", a, square=True)
    return ShapedArray(a.shape[:-1], a.dtype)


def _eigvalsh_vjp(g, out, a):
    _, v = _eigh_parts(eigh(a))
    return (_symmetric(_mm(ops.mul(v, _rows(g, _shp(v))), _mT(v))),)


def _eigvalsh_jvp(tangents, out, a):
    t, = tangents
    if t is None:
        return None
    _, v = _eigh_parts(eigh(a))
    return _diag(_mm(_mm(_mT(v), _symmetric(t)), v))


_declare("eigvalsh", _eigvalsh_rule,
         lambda a: _guarded(np.linalg.eigvalsh, lambda a: a.shape[-1:])(a),
         _eigvalsh_vjp, _eigvalsh_jvp, "LinalgEighBackward0",
         "Eigenvalues (ascending); reads the lower triangle")
eigvalsh = _binder("eigvalsh")


# ---- svd, svdvals ----------------------------------------------------------------------------------------

def _svd_width(m, n, full_matrices):
    return max(m, n) if full_matrices else min(m, n)


def _svd_rule(a, *, full_matrices):
    _matrix("svd", a)
    m, n = a.shape[-2:]
    return ShapedArray(a.shape[:-2] + (1 + m + n, _svd_width(m, n, full_matrices)), a.dtype)


def _svd_np(full_matrices):
    def fn(a):
        m, n = a.shape[-2:]
        w = _svd_width(m, n, full_matrices)
        u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
        out = np.zeros(a.shape[:-2] + (1 + m + n, w), a.dtype)
        out[..., 0, :s.shape[-1]] = s
        out[..., 1:1 + m, :u.shape[-1]] = u
        out[..., 1 + m:, :vh.shape[-2]] = np.swapaxes(vh, -1, -2)
        return out
    return fn


def _svd_impl(a, *, full_matrices):
    a = np.asarray(a)
    m, n = a.shape[-2:]
    shape = (1 + m + n, _svd_width(m, n, full_matrices))
    return _guarded(_svd_np(full_matrices), lambda a: shape)(a)


def _svd_parts(out, m):
    n = _shp(out)[-2] - 1 - m
    return _row(out, 0), _part(out, 1, m), _part(out, 1 + m, n)


def _no_full_gradient(full_matrices):
    if full_matrices:
        raise NotImplementedError("svd: the derivative with full_matrices=True is not unique "
                                  "(as in JAX): use full_matrices=False")


def _svd_gaps(s):
    """F[i, j] = 1 / (s[j]^2 - s[i]^2) off the diagonal, 0 on it."""
    return _inverse_gaps(ops.mul(s, s))


def _svd_vjp(g, out, a, *, full_matrices):
    _no_full_gradient(full_matrices)
    m, n = _shp(a)[-2:]
    s, u, v = _svd_parts(out, m)
    gs, gu, gv = _svd_parts(g, m)
    f = _svd_gaps(s)
    j = _zero_safe_mul(f, _mm(_mT(u), gu))
    k = _zero_safe_mul(f, _mm(_mT(v), gv))
    shape = _shp(f)
    core = _sum(_diag_embed(gs), ops.mul(ops.add(j, _mT(j)), _rows(s, shape)),
                ops.mul(ops.add(k, _mT(k)), _cols(s, shape)))
    ga = _mm(_mm(u, core), _mT(v))
    if m > n:
        z = ops.div(gu, _rows(s, _shp(gu)))
        ga = ops.add(ga, _mm(ops.sub(z, _mm(u, _mm(_mT(u), z))), _mT(v)))
    if n > m:
        w = ops.div(gv, _rows(s, _shp(gv)))
        ga = ops.add(ga, _mm(u, _mT(ops.sub(w, _mm(v, _mm(_mT(v), w))))))
    return (ga,)


def _svd_jvp(tangents, out, a, *, full_matrices):
    t, = tangents
    if t is None:
        return None
    _no_full_gradient(full_matrices)
    m, n = _shp(a)[-2:]
    s, u, v = _svd_parts(out, m)
    ds_mat = _mm(_mm(_mT(u), t), v)
    f = _svd_gaps(s)
    shape = _shp(f)
    dss = ops.mul(ds_mat, _rows(s, shape))
    sds = ops.mul(ds_mat, _cols(s, shape))
    du = _mm(u, ops.mul(f, ops.add(dss, _mT(dss))))
    dv = _mm(v, ops.mul(f, ops.add(sds, _mT(sds))))
    if m > n:
        dav = _mm(t, v)
        du = ops.add(du, ops.div(ops.sub(dav, _mm(u, _mm(_mT(u), dav))), _rows(s, _shp(du))))
    if n > m:
        dau = _mm(_mT(t), u)
        dv = ops.add(dv, ops.div(ops.sub(dau, _mm(v, _mm(_mT(v), dau))), _rows(s, _shp(dv))))
    ds = _diag(ds_mat)
    return _pack([ops.reshape(ds, _shp(ds)[:-1] + (1, _shp(ds)[-1])), du, dv])


_declare("svd", _svd_rule, _svd_impl, _svd_vjp, _svd_jvp, "LinalgSvdBackward0",
         "Singular values (descending, row 0), U (rows 1..m) and V (rows 1+m..)")


def svd(a, *, full_matrices=False):
    return bind("svd", a, full_matrices=bool(full_matrices))


def _svdvals_rule(a):
    _matrix("svdvals", a)
    return ShapedArray(a.shape[:-2] + (min(a.shape[-2:]),), a.dtype)


def _uv(a):
    _, u, v = _svd_parts(svd(a), _shp(a)[-2])
    return u, v


def _svdvals_vjp(g, out, a):
    u, v = _uv(a)
    return (_mm(ops.mul(u, _rows(g, _shp(u))), _mT(v)),)


def _svdvals_jvp(tangents, out, a):
    t, = tangents
    if t is None:
        return None
    u, v = _uv(a)
    return _diag(_mm(_mm(_mT(u), t), v))


_declare("svdvals", _svdvals_rule,
         lambda a: _guarded(lambda a: np.linalg.svd(a, compute_uv=False),
                            lambda a: (min(a.shape[-2:]),))(a),
         _svdvals_vjp, _svdvals_jvp, "LinalgSvdBackward0", "Singular values (descending)")
svdvals = _binder("svdvals")


# ---- qr -------------------------------------------------------------------------------------------------------

def _qr_width(m, n, complete):
    return m if complete else min(m, n)


def _qr_rule(a, *, complete):
    _matrix("qr", a)
    m, n = a.shape[-2:]
    return ShapedArray(a.shape[:-2] + (m + n, _qr_width(m, n, complete)), a.dtype)


def _qr_np(complete):
    def fn(a):
        q, r = np.linalg.qr(a, mode="complete" if complete else "reduced")
        return np.concatenate([q, np.swapaxes(r, -1, -2)], axis=-2)
    return fn


def _qr_impl(a, *, complete):
    a = np.asarray(a)
    m, n = a.shape[-2:]
    shape = (m + n, _qr_width(m, n, complete))
    return _guarded(_qr_np(complete), lambda a: shape)(a)


def _qr_parts(out, m):
    q = _part(out, 0, m)
    return q, _mT(_part(out, m, _shp(out)[-2] - m))


def _right_solve_rt(x, r):
    """x R^-T for an upper triangular R."""
    return _mT(triangular_solve(r, _mT(x), lower=False))


def _right_solve_r(x, r):
    """x R^-1 for an upper triangular R."""
    return _mT(triangular_solve(r, _mT(x), lower=False, transpose_a=True))


def _qr_tall_vjp(q, r, gq, gr):
    """A = QR with m >= n, Q (m, n), R (n, n) upper."""
    mm = ops.sub(_mm(_mT(q), gq), _mm(gr, _mT(r)))
    nn = ops.sub(_tril(ops.sub(mm, _mT(mm)), -1), mm)
    return _right_solve_rt(ops.add(gq, _mm(q, nn)), r)


def _qr_tall_jvp(q, r, t):
    dx_rinv = _right_solve_r(t, r)
    c = _mm(_mT(q), dx_rinv)
    low = _tril(c, -1)
    omega = ops.sub(low, _mT(low))
    dq = ops.add(_mm(q, ops.sub(omega, c)), dx_rinv)
    return dq, _mm(ops.sub(c, omega), r)


def _qr_check(m, n, complete):
    if complete and m > n:
        raise NotImplementedError("qr: the derivative in complete mode with m > n is not unique "
                                  "(Q's last columns may turn freely): use mode='reduced'")


def _qr_vjp(g, out, a, *, complete):
    m, n = _shp(a)[-2:]
    _qr_check(m, n, complete)
    q, r = _qr_parts(out, m)
    gq, gr = _qr_parts(g, m)
    if m >= n:
        return (_qr_tall_vjp(q, r, gq, gr),)
    y = _part(a, m, n - m, axis=-1)
    r1, gr1, gr2 = _part(r, 0, m, axis=-1), _part(gr, 0, m, axis=-1), _part(gr, m, n - m, axis=-1)
    gx = _qr_tall_vjp(q, r1, ops.add(gq, _mm(y, _mT(gr2))), gr1)
    return (_pack([gx, _mm(q, gr2)], axis=-1),)


def _qr_jvp(tangents, out, a, *, complete):
    t, = tangents
    if t is None:
        return None
    m, n = _shp(a)[-2:]
    _qr_check(m, n, complete)
    q, r = _qr_parts(out, m)
    if m >= n:
        dq, dr = _qr_tall_jvp(q, r, t)
    else:
        y, dy = _part(a, m, n - m, axis=-1), _part(t, m, n - m, axis=-1)
        dq, dr1 = _qr_tall_jvp(q, _part(r, 0, m, axis=-1), _part(t, 0, m, axis=-1))
        dr2 = ops.add(_mm(_mT(dq), y), _mm(_mT(q), dy))
        dr = _pack([dr1, dr2], axis=-1)
    return _pack([dq, _mT(dr)])


_declare("qr", _qr_rule, _qr_impl, _qr_vjp, _qr_jvp, "LinalgQrBackward0",
         "Q (rows ..m) and R^T (rows m..) of the QR factorization (Householder)")


def qr(a, *, complete=False):
    return bind("qr", a, complete=bool(complete))


# ---- pinv -------------------------------------------------------------------------------------------------------

def _pinv_rule(a, *, rcond):
    _matrix("pinv", a)
    return ShapedArray(a.shape[:-2] + (a.shape[-1], a.shape[-2]), a.dtype)


def _pinv_impl(a, *, rcond):
    a = np.asarray(a)
    with np.errstate(all="ignore"):
        return np.asarray(np.linalg.pinv(a, rcond=rcond), a.dtype)


def _pinv_vjp(g, out, a, *, rcond):
    p, gt = out, _mT(g)
    t1 = ops.neg(_mm(_mm(_mT(p), g), _mT(p)))
    t2 = _mm(_mm(gt, p), _mT(p))
    t2 = ops.sub(t2, _mm(a, _mm(p, t2)))                               # (I - A P) G^T P P^T
    t3 = _mm(_mT(p), _mm(p, gt))
    t3 = ops.sub(t3, _mm(_mm(t3, p), a))                               # P^T P G^T (I - P A)
    return (_sum(t1, t2, t3),)


def _pinv_jvp(tangents, out, a, *, rcond):
    t, = tangents
    if t is None:
        return None
    p, tt = out, _mT(t)
    t1 = ops.neg(_mm(_mm(p, t), p))
    z = ops.sub(tt, _mm(_mm(tt, a), p))                                # dA^T (I - A P)
    t2 = _mm(p, _mm(_mT(p), z))
    w = _mm(tt, _mm(_mT(p), p))
    t3 = ops.sub(w, _mm(p, _mm(a, w)))                                 # (I - P A) dA^T P^T P
    return _sum(t1, t2, t3)


_declare("pinv", _pinv_rule, _pinv_impl, _pinv_vjp, _pinv_jvp, "LinalgPinvBackward0",
         "Moore-Penrose pseudo-inverse (SVD; singular values <= rcond * largest are dropped); "
         "derivative of the fixed-rank map, as JAX's")


def pinv(a, *, rcond):
    return bind("pinv", a, rcond=float(rcond))
