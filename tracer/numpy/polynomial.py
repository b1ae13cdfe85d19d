"""Polynomials, interpolation and a few special functions: polyval, polyadd, polysub,
polymul, polyder, polyint, poly, interp, unwrap, i0, isin, histogram_bin_edges.

Each is a composite of the namespace's functions and `ir.ops`, so it runs eagerly,
traces, compiles and differentiates like its parts: polyval is Horner's rule
unrolled over the (static) number of coefficients, polymul a `convolve`, poly a
product of the factors (x - z_k) one at a time, interp a `searchsorted` on the
sample points followed by gathers (the gradient flows into x, xp, fp, left and
right), histogram_bin_edges a linspace between the data's extremes, i0 the Cephes
Chebyshev expansions NumPy uses (Clenshaw's recurrence) with the power series near 0,
so that its derivative, that of the expansions, is I1 to about 1e-14 relative (and
the second derivative (I0 + I2) / 2 as accurately).

Dtypes follow NumPy: polyder and polyint multiply and divide by int64 ramps (float32
coefficients give float64, as in NumPy), interp computes in float64, poly keeps
float32, i0 keeps the float dtype.

Differences from NumPy, by design: interp gives NaN for a NaN in x (NumPy's result
then depends on where its search starts: a flat segment gives its value); `poly` of a
square matrix (NumPy takes its eigenvalues, which may be complex) is not supported;
`isin` ignores `kind` and `assume_unique` (they pick NumPy's algorithm, not the result);
i0 below |x| = 1/2 is the power series (within 1 ULP of I0 there; NumPy's expansion
is within 4).
"""
from __future__ import annotations

import operator
from math import factorial

import numpy as np

from tracegrad.ir import ops

from .. import dtypes
from ._core import (_convert, _dtype, _fail, _lift, _ndim, _norm_axis, _operand, _shape,
                    concrete_value, is_boxed)
from .contractions import convolve
from .elementwise import (absolute, add, divide, equal, greater, less, logical_and, multiply,
                          subtract, where)
from .math import remainder
from .shapes import atleast_1d, concatenate
from .sorting import _bin_edges, _check_finite_range, _estimated_edges, _linspace, cumsum
from .structure import diff, slice_axis

F64 = np.dtype(np.float64)
INDEX = np.dtype(np.int64)


def _c(value, like):
    """A 0-d constant of `like`'s dtype."""
    return np.asarray(value, _dtype(like))


def _row(a, i):
    """a[i] (the leading axis dropped)."""
    return ops.reshape(slice_axis(a, 0, i, 1), _shape(a)[1:])


def _coefficients(name, p):
    p = _operand(p)
    if _ndim(p) == 0:
        _fail(name, "the coefficients must be an array of rank >= 1 (highest power first)",
              [p], TypeError)
    return p


# ---- polynomials (coefficients highest power first) --------------------------------------------

def polyval(p, x):
    """p[0] x^(n-1) + ... + p[n-1] by Horner's rule (NumPy's steps and dtype);
    differentiable in p and x.

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.polyval(np.array([3.0, 0.0, 1.0]), np.array([0.0, 1.0, 2.0])).tolist()
    [1.0, 4.0, 13.0]
    """
    p, x = _coefficients("polyval", p), _operand(x)
    y = multiply(np.zeros(_shape(x), _dtype(x)), x)  # zeros_like(x) * x, as NumPy starts
    for i in range(_shape(p)[0]):
        y = add(multiply(y, x), _row(p, i))
    return y


def _aligned(a1, a2):
    """a1, a2 (rank >= 1) with zeros prepended to the shorter one along the leading axis."""
    a1, a2 = atleast_1d(_operand(a1)), atleast_1d(_operand(a2))
    n1, n2 = _shape(a1)[0], _shape(a2)[0]
    if n1 < n2:
        a1 = concatenate([np.zeros((n2 - n1,) + _shape(a1)[1:], _dtype(a1)), a1])
    elif n2 < n1:
        a2 = concatenate([np.zeros((n1 - n2,) + _shape(a2)[1:], _dtype(a2)), a2])
    return a1, a2


def polyadd(a1, a2):
    """The sum of two polynomials (the shorter one padded with leading zeros).

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.polyadd(np.array([1.0, 2.0]), np.array([1.0, 0.0, 3.0])).tolist()
    [1.0, 1.0, 5.0]
    """
    return add(*_aligned(a1, a2))


def polysub(a1, a2):
    """The difference a1 - a2 of two polynomials."""
    return subtract(*_aligned(a1, a2))


def polymul(a1, a2, *, trim_leading_zeros=None):
    """The product of two polynomials: the convolution of their coefficients.

    NumPy first drops the leading zeros of each factor (as its poly1d does), which
    shortens the result; concrete factors (arrays, eager tensors) are trimmed alike.  A
    traced factor has no values to trim by: it keeps its leading zeros, so the result may
    be longer than NumPy's, with leading zeros (jnp.polymul's trim_leading_zeros=False).
    `trim_leading_zeros=True` or `False` forces either (True needs concrete factors).

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.polymul(np.array([1.0, 1.0]), np.array([1.0, -1.0])).tolist()
    [1.0, 0.0, -1.0]
    >>> tnp.polymul(np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0])).tolist()
    [1.0, 1.0, -2.0]
    """
    return convolve(*(_trimmed(a, trim_leading_zeros) for a in (a1, a2)))


def _trimmed(a, trim):
    """The 1-D coefficients `a` without their leading zeros (one zero if all are)."""
    a = atleast_1d(_operand(a))
    data = None if trim is False else concrete_value(a)
    if data is None or data.ndim != 1:
        if trim and data is None:
            _fail("polymul", "trim_leading_zeros=True needs concrete coefficients (the "
                  "result's length depends on their values)", [a], TypeError)
        return a
    if not data.size:
        return np.zeros(1, data.dtype)  # NumPy's poly1d of no coefficients
    nonzero = np.flatnonzero(data)
    first = int(nonzero[0]) if nonzero.size else data.size - 1
    return slice_axis(a, 0, first, data.size - first)


def polyder(p, m=1):
    """The m-th derivative: m times p[:-1] * [n-1, ..., 1] (int64 ramps, so float32
    coefficients give float64, as in NumPy).

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.polyder(np.array([1.0, 1.0, 1.0, 1.0]), 2).tolist()
    [6.0, 2.0]
    """
    m = operator.index(m)
    if m < 0:
        raise ValueError("Order of derivative must be positive (see polyint)")
    p = _coefficients("polyder", p)
    for _ in range(m):
        n = _shape(p)[0] - 1
        p = multiply(slice_axis(p, 0, 0, max(n, 0)), np.arange(n, 0, -1))
    return p


def _constants(k, m):
    """The m integration constants: k broadcast from one value, or its first m."""
    k = atleast_1d(_operand(np.zeros(m) if k is None else k))
    if _shape(k)[0] == 1 and m > 1:
        k = multiply(_row(k, 0), np.ones(m))
    if _ndim(k) != 1 or _shape(k)[0] < m:
        raise ValueError("k must be a scalar or a rank-1 array of length 1 or >m.")
    return [slice_axis(k, 0, i, 1) for i in range(m)]


def polyint(p, m=1, k=None):
    """The m-th antiderivative; `k` holds the integration constants (the lowest
    coefficient of each step; a scalar is used for every step).  Differentiable in p and k.

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.polyint(np.array([3.0, 2.0, 1.0]), k=5.0).tolist()
    [1.0, 1.0, 1.0, 5.0]
    """
    m = operator.index(m)
    if m < 0:
        raise ValueError("Order of integral must be positive (see polyder)")
    consts = _constants(k, m)
    p = _coefficients("polyint", p)
    if m and _ndim(p) != 1:
        _fail("polyint", "the coefficients must be 1-D", [p], ValueError)
    for c in consts:
        n = _shape(p)[0]
        p = concatenate([divide(p, np.arange(n, 0, -1)), c])
    return p


def _poly_dtype(dt):
    """NumPy's mintypecode: float32 stays, everything else computes in float64."""
    return dt if dt == np.float32 else F64


def poly(seq_of_zeros):
    """The monic polynomial with the given (1-D) zeros: the product of (x - z_k), one
    factor at a time (NumPy's order of rounding); differentiable in the zeros.

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.poly(np.array([1.0, 2.0])).tolist()
    [1.0, -3.0, 2.0]
    """
    z = atleast_1d(_operand(seq_of_zeros))
    shape = _shape(z)
    if len(shape) == 2 and shape[0] == shape[1] and shape[0]:
        raise NotImplementedError(
            "poly of a square matrix needs its eigenvalues, which may be complex (tracegrad "
            "arrays are real): pass the eigenvalues instead, e.g. linalg.eigvalsh(a) for a "
            "symmetric a")
    if len(shape) != 1:
        raise ValueError("input must be 1d or non-empty square 2d array.")
    if not shape[0]:
        return 1.0
    z = _convert(z, _poly_dtype(_dtype(z)))
    a = np.ones(1, _dtype(z))
    for i in range(shape[0]):
        zi = _row(z, i)
        head = concatenate([a, np.zeros(1, _dtype(z))])
        tail = concatenate([np.zeros(1, _dtype(z)), ops.neg(multiply(a, zi))])
        a = add(head, tail)
    return a


# ---- interp ------------------------------------------------------------------------------------

def _periodic(x, xp, fp, period):
    """NumPy's periodic interp: x and xp reduced modulo the period, xp sorted, and one
    point wrapped around at each end."""
    if is_boxed(period):
        raise NotImplementedError("interp: a traced period is not supported; pass a number")
    period = abs(float(period))
    if period == 0:
        raise ValueError("period must be a non-zero value")
    x, xp = remainder(x, period), remainder(xp, period)
    order = ops.argsort(xp, 0)
    xp, fp = ops.gather(xp, order), ops.gather(fp, order)
    n = _shape(xp)[0]
    first, last = (lambda a: slice_axis(a, 0, 0, 1)), (lambda a: slice_axis(a, 0, n - 1, 1))
    xp = concatenate([subtract(last(xp), period), xp, add(first(xp), period)])
    fp = concatenate([last(fp), fp, first(fp)])
    return x, xp, fp


def _segment_value(x, xp, fp):
    """NumPy's interpolation between the sample points around each x (searchsorted on
    xp): exact at the sample points, a NaN retried from the right end, x >= xp[-1]
    given fp[-1]; the slope still carries the gradient in x there, as JAX's does."""
    n = _shape(xp)[0]
    idx = ops.searchsorted(xp, x, "right")
    j = ops.max(ops.min(ops.sub(idx, np.int64(1)), np.int64(n - 2)), np.int64(0))
    j1 = ops.add(j, np.int64(1))
    xj, xj1, fj, fj1 = ops.gather(xp, j), ops.gather(xp, j1), ops.gather(fp, j), ops.gather(fp, j1)
    dx = ops.sub(xj1, xj)
    flat = ops.eq(dx, _c(0, dx))  # repeated sample points: only ever an unused lane
    slope = where(flat, 0.0, ops.div(ops.sub(fj1, fj), where(flat, 1.0, dx)))
    f = ops.add(ops.mul(slope, ops.sub(x, xj)), fj)
    retry = ops.add(ops.mul(slope, ops.sub(x, xj1)), fj1)
    f = where(ops.ne(f, f), retry, f)
    f = where(logical_and(ops.ne(f, f), ops.eq(fj, fj1)), fj, f)
    finite = where(ops.lt(ops.abs(slope), _c(np.inf, slope)), slope, 0.0)
    f = where(ops.eq(x, xj), ops.add(fj, ops.mul(finite, ops.sub(x, xj))), f)
    at_end = ops.eq(idx, np.int64(n))
    return where(at_end, ops.add(fj1, ops.mul(finite, ops.sub(x, xj1))), f)


def interp(x, xp, fp, left=None, right=None, period=None):
    """Piecewise-linear interpolation of the points (xp, fp) (xp increasing) at x, in
    float64 as NumPy; `left`/`right` (default fp[0], fp[-1]) outside [xp[0], xp[-1]].
    Differentiable in x, xp, fp, left and right.

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.interp(np.array([-1.0, 0.5, 1.5, 3.0]), np.array([0.0, 1.0, 2.0]),
    ...            np.array([0.0, 10.0, 0.0])).tolist()
    [0.0, 5.0, 5.0, 0.0]
    """
    x, xp, fp = (_convert(_operand(v), F64) for v in (x, xp, fp))
    if _ndim(xp) != 1 or _ndim(fp) != 1:
        _fail("interp", "Data points must be 1-D sequences", [xp, fp], ValueError)
    if _shape(xp)[0] != _shape(fp)[0]:
        _fail("interp", "fp and xp are not of the same length", [xp, fp], ValueError)
    if not _shape(xp)[0]:
        raise ValueError("array of sample points is empty")
    if period is not None:
        x, xp, fp = _periodic(x, xp, fp, period)
        left = right = None
    n = _shape(xp)[0]
    first, last = _row(xp, 0), _row(xp, n - 1)
    lo = _row(fp, 0) if left is None else _lift(left, F64)
    hi = _row(fp, n - 1) if right is None else _lift(right, F64)
    f = ops.broadcast(_row(fp, 0), _shape(x)) if n == 1 else _segment_value(x, xp, fp)
    for end, value in ((first, _row(fp, 0)), (last, _row(fp, n - 1))):  # x at an infinite
        f = where(logical_and(equal(x, end), equal(absolute(end), np.inf)), value, f)  # end
    f = where(less(x, first), lo, f)
    return where(greater(x, last), hi, f)


# ---- unwrap ------------------------------------------------------------------------------------

def unwrap(p, discont=None, axis=-1, *, period=2 * np.pi):
    """p with jumps between neighbours larger than `discont` (default period/2) along
    `axis` replaced by their complement modulo `period` (NumPy's steps and dtypes);
    its gradient is the identity (the corrections are piecewise constant).

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.unwrap(np.array([0.0, 5.0, 10.0, 15.0]), period=6.0).tolist()
    [0.0, -1.0, -2.0, -3.0]
    """
    p = _operand(p)
    if _ndim(p) == 0:
        raise ValueError("unwrap: p must be at least one-dimensional")
    ax = _norm_axis(axis, _ndim(p))
    dd = diff(p, axis=ax)
    dt = dtypes.result_type(dd, period)
    n = _shape(p)[ax]
    if n < 2:
        return _convert(p, dt)
    discont = period / 2 if discont is None else discont
    if dt.kind in "iu":
        high, rem = divmod(period, 2)
        ambiguous = rem == 0
    else:
        high, ambiguous = period / 2, True
    ddmod = subtract(remainder(add(dd, high), period), high)
    if ambiguous:  # a jump of exactly period/2 keeps its sign, as in NumPy
        ddmod = where(logical_and(equal(ddmod, -high), greater(dd, 0)), high, ddmod)
    correct = where(less(absolute(dd), discont), 0, subtract(ddmod, dd))
    rest = add(slice_axis(p, ax, 1, n - 1), cumsum(correct, axis=ax))
    return _convert(concatenate([slice_axis(p, ax, 0, 1), rest], axis=ax), dt)


# ---- i0 ------------------------------------------------------------------------------------------

# Cephes' Chebyshev coefficients (as in numpy.i0): exp(-x) I0(x) on [0, 8] ...
_I0A = (
    -4.41534164647933937950E-18, 3.33079451882223809783E-17, -2.43127984654795469359E-16,
    1.71539128555513303061E-15, -1.16853328779934516808E-14, 7.67618549860493561688E-14,
    -4.85644678311192946090E-13, 2.95505266312963983461E-12, -1.72682629144155570723E-11,
    9.67580903537323691224E-11, -5.18979560163526290666E-10, 2.65982372468238665035E-9,
    -1.30002500998624804212E-8, 6.04699502254191894932E-8, -2.67079385394061173391E-7,
    1.11738753912010371815E-6, -4.41673835845875056359E-6, 1.64484480707288970893E-5,
    -5.75419501008210370398E-5, 1.88502885095841655729E-4, -5.76375574538582365885E-4,
    1.63947561694133579842E-3, -4.32430999505057594430E-3, 1.05464603945949983183E-2,
    -2.37374148058994688156E-2, 4.93052842396707084878E-2, -9.49010970480476444210E-2,
    1.71620901522208775349E-1, -3.04682672343198398683E-1, 6.76795274409476084995E-1)
# ... and exp(-x) sqrt(x) I0(x) on [8, inf), in 32/x - 2
_I0B = (
    -7.23318048787475395456E-18, -4.83050448594418207126E-18, 4.46562142029675999901E-17,
    3.46122286769746109310E-17, -2.82762398051658348494E-16, -3.42548561967721913462E-16,
    1.77256013305652638360E-15, 3.81168066935262242075E-15, -9.55484669882830764870E-15,
    -4.15056934728722208663E-14, 1.54008621752140982691E-14, 3.85277838274214270114E-13,
    7.18012445138366623367E-13, -1.79417853150680611778E-12, -1.32158118404477131188E-11,
    -3.14991652796324136454E-11, 1.18891471078464383424E-11, 4.94060238822496958910E-10,
    3.39623202570838634515E-9, 2.26666899049817806459E-8, 2.04891858946906374183E-7,
    2.89137052083475648297E-6, 6.88975834691682398426E-5, 3.36911647825569408990E-3,
    8.04490411014108831608E-1)


def _chbevl(t, coeffs):
    """Cephes' chbevl: the Chebyshev series sum' c_k T_k(t/2) by Clenshaw's recurrence."""
    b0, b1, b2 = _c(coeffs[0], t), _c(0.0, t), _c(0.0, t)
    for c in coeffs[1:]:
        b2, b1 = b1, b0
        b0 = ops.add(ops.sub(ops.mul(t, b1), b2), _c(c, t))
    return ops.mul(ops.sub(b0, b2), _c(0.5, t))


# ... and, below |x| = 1/2, the power series sum (x/2)^(2k) / (k!)^2 (9 terms reach the
# rounding error there; its derivative has no cancellation near 0, the expansion's has)
_I0_SERIES = tuple(1.0 / factorial(k) ** 2 for k in reversed(range(9)))


def _clamped(x, lo, hi):
    """x moved into [lo, hi], NaN kept: each branch of i0 only sees its own interval,
    so that an unused branch cannot turn the gradient into NaN."""
    x = ops.where(ops.lt(x, _c(lo, x)), _c(lo, x), x)
    return ops.where(ops.gt(x, _c(hi, x)), _c(hi, x), x)


def _i0_series(x):
    y = ops.mul(ops.mul(x, x), _c(0.25, x))
    s = _c(_I0_SERIES[0], x)
    for c in _I0_SERIES[1:]:
        s = ops.add(ops.mul(s, y), _c(c, x))
    return s


def i0(x):
    """The modified Bessel function of the first kind, order 0: NumPy's (Cephes')
    Chebyshev expansions of |x| on [0, 8] and [8, inf) (the power series below 1/2);
    differentiable (the derivative is I1, to about 1e-14 relative).  Int and bool inputs
    compute in float64.

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> round(float(tnp.i0(np.array(1.0))), 12)
    1.266065877752
    """
    x = _operand(x)
    x = ops.abs(_convert(x, dtypes.float_result(_dtype(x))))
    two = _c(2.0, x)
    near, far = _clamped(x, 0.0, 8.0), _clamped(x, 8.0, np.inf)
    mid = ops.mul(ops.exp(near), _chbevl(ops.sub(ops.div(near, two), two), _I0A))
    big = ops.div(ops.mul(ops.exp(far), _chbevl(ops.sub(ops.div(_c(32.0, x), far), two), _I0B)),
                  ops.sqrt(far))
    r = ops.where(ops.le(x, _c(8.0, x)), mid, big)  # NaN: the far side, as in NumPy
    return ops.where(ops.lt(x, _c(0.5, x)), _i0_series(_clamped(x, 0.0, 0.5)), r)


# ---- isin, histogram_bin_edges -------------------------------------------------------------------

def isin(element, test_elements, assume_unique=False, invert=False, *, kind=None):
    """Bool array of element's shape: whether each entry is among `test_elements`
    (sorted once, then searched); NaN is in nothing.  No gradient.

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.isin(np.array([1.0, 2.0, np.nan]), np.array([2.0, 5.0, np.nan])).tolist()
    [False, True, False]
    """
    if kind not in (None, "sort", "table"):
        raise ValueError(f"Invalid kind: '{kind}'. Please use None, 'sort' or 'table'.")
    e, t = _operand(element), _operand(test_elements)
    dt = dtypes.result_type(e, t)
    dt = INDEX if dt == dtypes.BOOL else dt
    n = int(np.prod(_shape(t), dtype=np.int64))
    e, t = _convert(e, dt), ops.reshape(_convert(t, dt), (n,))
    if not n:
        return np.full(_shape(e), bool(invert))
    s = ops.sort(t, 0)
    at = ops.min(ops.searchsorted(s, e, "left"), np.int64(n - 1))
    found = ops.eq(ops.gather(s, at), e)
    return ops.logical_not(found) if invert else found


def _extremes(a):
    """(min, max) of the 1-D traced `a`, moved apart by 0.5 each way when equal (NumPy's
    rule); differentiable (into the extreme entries)."""
    lo, hi = (ops.bind(p, a, axes=(0,)) for p in ("reduce_min", "reduce_max"))
    same, half = ops.eq(lo, hi), _c(0.5, a)
    return ops.where(same, ops.sub(lo, half), lo), ops.where(same, ops.add(hi, half), hi)


def histogram_bin_edges(a, bins=10, range=None, weights=None):
    """The bin edges `histogram` uses: `bins` equal bins over `range` (default: a's
    minimum and maximum, widened by 0.5 each way when equal), or the given edges.
    Differentiable in `a` through its extremes (JAX's gradient).

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.histogram_bin_edges(np.array([1.0, 2.0, 5.0]), 4).tolist()
    [1.0, 2.0, 3.0, 4.0, 5.0]
    """
    if isinstance(bins, str):
        return _estimated_edges("histogram_bin_edges", a, bins, range, weights)
    a = _operand(a)
    a = ops.reshape(a, (int(np.prod(_shape(a), dtype=np.int64)),))
    if isinstance(bins, (int, np.integer)) and range is None and is_boxed(a):
        if bins < 1:
            raise ValueError("`bins` must be positive, when an integer")
        if not _shape(a)[0]:
            range = (0.0, 1.0)  # NumPy's range for no data
        else:
            lo, hi = _extremes(a)
            _check_finite_range(lo, hi)
            return _linspace(lo, hi, bins + 1, dtypes.float_result(_dtype(a)))
    return _bin_edges(a, bins, range)


__all__ = ["polyval", "polyadd", "polysub", "polymul", "polyder", "polyint", "poly", "interp",
           "unwrap", "i0", "isin", "histogram_bin_edges"]

NUMPY = {getattr(np, name): globals()[name] for name in __all__}
