"""More elementwise math: trigonometric and hyperbolic functions and their inverses,
logarithm bases, rounding, floating-point classification, remainders and integer
division, sign manipulation and comparisons with tolerances.

Each function is written once from primitives (`ir.ops`), so it runs eagerly, traces
and compiles.  The composites are arranged for accuracy, not just the textbook formula
(tolerances are asserted in tests/test_numpy_math.py against numpy's own results):

* arcsin/arccos are `atan2` of (x, sqrt((1-x)(1+x))): no cancellation near |x| = 1;
* sinh/arcsinh/arctanh/arccosh use expm1/log1p for small arguments and switch to a
  form that cannot overflow for large ones;
* hypot scales by the larger magnitude; logaddexp(2) adds log1p(exp(-|d|)) to the max;
* divmod, floor_divide and remainder follow numpy's `npy_divmod` step by step, so that
  signs, zeros, infinities and the rounding of the quotient agree with NumPy.

Branches are `where` selections whose untaken side never sees a value that would turn
its derivative into nan (the "double where" rule), so gradients stay finite.  Rounding,
classification and integer operations have zero gradient, as in JAX.  Int and bool
inputs of float-valued functions compute in float64 (NumPy's result dtype except for
bool, where NumPy gives float16).
"""
from __future__ import annotations

import math

import functools

import numpy as np

from tracegrad.ir import ops

from .. import dtypes
from ._core import _broadcast, _dtype, _fail, _lift, _new_value, _operand, _reject, _shape
from .elementwise import uf


def _ufunc(f):
    """NumPy's ufunc keyword `out=` is refused by name rather than ignored."""
    @functools.wraps(f)
    def wrapper(*args, out=None, **kwargs):
        _reject(f.__name__, out=out)
        return f(*args, **kwargs)
    return wrapper


def _float(x):
    """x as a float operand (int and bool compute in float64)."""
    x = _operand(x)
    dt = dtypes.float_result(_dtype(x))
    return x if _dtype(x) == dt else ops.convert(x, dt)


def _floats(name, *xs):
    """Operands promoted together to a float dtype and broadcast."""
    dt = dtypes.float_result(dtypes.result_type(*xs))
    return _broadcast(name, [_lift(x, dt) for x in xs])


def _promoted(name, *xs):
    """Operands promoted together (NumPy's dtype) and broadcast."""
    dt = dtypes.result_type(*xs)
    return _broadcast(name, [_lift(x, dt) for x in xs])


def _c(value, like):
    """A 0-d constant of `like`'s dtype (rank-0 operands broadcast implicitly); a traced
    number (`nan=c[0]` of a traced c) converted to that dtype."""
    if isinstance(value, (int, float, np.generic)) and not isinstance(value, bool) or value is None:
        return np.asarray(value, _dtype(like))
    return _lift(value, _dtype(like))


def _is_float(x) -> bool:
    return np.issubdtype(_dtype(x), np.floating)


def _select(cond, a, b):
    return ops.where(cond, a, b)


def _odd(f, x):
    """f(|x|) with x's sign, for an odd f; -0.0 keeps its sign and its derivative: the
    magnitude is -x exactly where the result is negated."""
    neg = ops.signbit(x)
    y = f(_select(neg, ops.neg(x), x))
    return _select(neg, ops.neg(y), y)


def _clamp_hi(x, hi):
    """min(x, hi) that keeps nan (the branch fed with it is then not taken)."""
    return _select(ops.gt(x, _c(hi, x)), _c(hi, x), x)


def _clamp_lo(x, lo):
    return _select(ops.lt(x, _c(lo, x)), _c(lo, x), x)


def _big(x, f64, f32):
    return f64 if _dtype(x) == np.float64 else f32


# ---- trigonometric ----------------------------------------------------------------------

def _via_f64(fn, x):
    """`fn(x)` computed in float64 for a float32 `x`, rounded once: composed of several
    float32 roundings, these functions would be 2-3.5 ULP off (numpy's: under 1)."""
    if _dtype(x) != np.float32:
        return fn(x)
    return ops.convert(fn(ops.convert(x, np.dtype(np.float64))), np.dtype(np.float32))


@_ufunc
def tan(x, /):
    """sin(x) / cos(x) (sharing the argument reduction in compiled code; float32 through
    float64)."""
    return _via_f64(lambda v: ops.div(ops.sin(v), ops.cos(v)), _float(x))


def _cos_of_asin(x):
    # sqrt(1 - x^2) as sqrt(1 - x) sqrt(1 + x): 1 - x is exact near 1 (no cancellation),
    # and at x = +-1 the infinite derivative of one root meets the other's finite one
    # (the root of the product would multiply inf by 0: a NaN gradient)
    return ops.mul(ops.sqrt(ops.sub(_c(1, x), x)), ops.sqrt(ops.add(_c(1, x), x)))


@_ufunc
def arcsin(x, /):
    """atan2(x, sqrt((1-x)(1+x))): accurate over [-1, 1], nan outside (float32 through
    float64)."""
    return _via_f64(lambda v: ops.atan2(v, _cos_of_asin(v)), _float(x))


@_ufunc
def arccos(x, /):
    """atan2(sqrt((1-x)(1+x)), x): accurate over [-1, 1] (pi at -1), nan outside (float32
    through float64)."""
    return _via_f64(lambda v: ops.atan2(_cos_of_asin(v), v), _float(x))


@_ufunc
def arctan2(x1, x2, /):
    """The angle of the point (x2, x1), quadrant-correct, signed zeros as numpy."""
    y, x = _floats("arctan2", x1, x2)
    return ops.atan2(y, x)


@_ufunc
def deg2rad(x, /):
    x = _float(x)
    dt = _dtype(x).type
    return ops.mul(x, _c(dt(np.pi) / dt(180.0), x))   # numpy's constant, in x's precision


@_ufunc
def rad2deg(x, /):
    x = _float(x)
    dt = _dtype(x).type
    return ops.mul(x, _c(dt(180.0) / dt(np.pi), x))


radians, degrees = deg2rad, rad2deg


def sinc(x):
    """sin(pi x) / (pi x), and for |pi x| < SINC_SERIES_BELOW its Taylor polynomial (to
    x^16): the value 1 at 0 as numpy's, and values and derivatives accurate to the last
    digits near 0 (the quotient's derivative cos(pi x)/x - sin(pi x)/(pi x^2) cancels there,
    and overflows for subnormal x), every derivative exact at 0 to 16th order.  Each branch
    sees a harmless input where it is not taken (0, 1), so its derivative there is finite
    and masking it out cannot make a NaN (0 * inf) of a large or tiny x."""
    x = _float(x)
    near = ops.lt(ops.abs(ops.mul(_c(np.pi, x), x)), _c(SINC_SERIES_BELOW, x))
    t = ops.integer_pow(ops.mul(_c(np.pi, x), _select(near, x, _c(0, x))), 2)  # (pi x)^2
    series = _c(0, x)
    for k in range(17, 0, -2):  # 1 - t/3! + t^2/5! - ... + t^8/17!, by Horner
        series = ops.add(_c((-1) ** (k // 2) / math.factorial(k), x), ops.mul(t, series))
    y = ops.mul(_c(np.pi, x), _select(near, _c(1.0, x), x))
    return _select(near, series, ops.div(ops.sin(y), y))


# |pi x| below which sinc is its Taylor polynomial: there the polynomial's truncation is
# below 1e-21 relative and the quotient's derivative would lose a digit or more to
# cancellation.
SINC_SERIES_BELOW = 0.5


# itemsize -> (below this the operands are scaled, by this exact power of two)
_HYPOT_SCALE = {4: (2.0 ** -63, 2.0 ** 80), 8: (2.0 ** -511, 2.0 ** 600)}


@_ufunc
def hypot(x1, x2, /):
    """sqrt(x1^2 + x2^2) without overflow or underflow: a * sqrt(1 + (b/a)^2) with a the
    larger magnitude (float32 computed so in float64); inf if either is inf (even with a
    nan), as numpy."""
    x, y = _floats("hypot", x1, x2)
    if np.dtype(_dtype(x)) == np.float32:  # in float64, rounded once: 0.5 ULP, not 2
        return ops.convert(hypot(ops.convert(x, np.float64), ops.convert(y, np.float64)),
                           np.float32)
    ax, ay = ops.abs(x), ops.abs(y)
    # Tiny (subnormal) magnitudes are scaled up by an exact power of two first and the
    # result back down: the same value, and b/a's derivative 1/a no longer overflows
    # (which made a zero cotangent times inf a NaN gradient).
    tiny, up = _HYPOT_SCALE[np.dtype(_dtype(x)).itemsize]
    small = ops.lt(ops.max(ax, ay), _c(tiny, x))
    scale = _select(small, _c(up, x), _c(1, x))
    ax, ay = ops.mul(ax, scale), ops.mul(ay, scale)
    a, b = ops.max(ax, ay), ops.min(ax, ay)
    zero = ops.eq(a, _c(0, a))
    q = ops.div(b, _select(zero, _c(1, a), a))
    r = ops.mul(a, ops.sqrt(ops.add(_c(1, a), ops.mul(q, q))))
    r = ops.mul(_select(zero, _c(0, a), r), _select(small, _c(1 / up, x), _c(1, x)))
    inf = ops.logical_or(ops.eq(ax, _c(np.inf, a)), ops.eq(ay, _c(np.inf, a)))
    return _select(inf, _c(np.inf, a), r)


# ---- hyperbolic ------------------------------------------------------------------------------

def _sinh_pos(a):
    """sinh(a), a >= 0: (t + t/(t+1))/2 with t = expm1(a) (accurate near 0); past the
    overflow of t, e^a / 2 (`_half_exp`)."""
    big = _big(a, 700.0, 80.0)
    small = ops.expm1(_clamp_hi(a, big))
    s = ops.mul(_c(0.5, a), ops.add(small, ops.div(small, ops.add(small, _c(1, a)))))
    return _select(ops.gt(a, _c(big, a)), _half_exp(_clamp_lo(a, big)), s)


# ln 2 split so that a - LN2_HI is exact for the arguments of _half_exp (few bits)
LN2_HI = {np.dtype(np.float64): 6.93147180369123816490e-01, np.dtype(np.float32): 0.693145751953125}
LN2_LO = {np.dtype(np.float64): 1.90821492927058770002e-10, np.dtype(np.float32): 1.428606765330187e-06}


def _half_exp(a):
    """e^a / 2 for a past exp's overflow (up to where e^a / 2 overflows) as exp(a - ln 2):
    one exp, so that its derivative (itself) never passes through e^a, which overflows."""
    # exp(a - 2 ln 2) * 2: exp(a - ln 2) would overflow just below e^a / 2's own limit
    dt = _dtype(a)
    return ops.mul(ops.exp(ops.sub(a, _c(2 * LN2_HI[dt], a))), _c(2 * np.exp(-2 * LN2_LO[dt]), a))


@_ufunc
def sinh(x, /):
    return _odd(_sinh_pos, _float(x))


@_ufunc
def cosh(x, /):
    """(e + 1/e)/2 with e = exp(|x|); past exp's overflow e^|x| / 2 (`_half_exp`);
    below |x| = 1/2, 1 + 2 sinh(|x|/2)^2, whose derivative (the product 2 sinh cosh of
    |x|/2) is sinh(x) to working precision where e - 1/e cancels."""
    x = _float(x)
    a = ops.abs(x)
    big = _big(a, 700.0, 80.0)
    e = ops.exp(_clamp_hi(a, big))
    c = ops.mul(_c(0.5, a), ops.add(e, ops.div(_c(1, a), e)))
    half = _sinh_pos(ops.mul(_c(0.5, a), _clamp_hi(a, 0.5)))
    near = ops.add(_c(1, a), ops.mul(_c(2, a), ops.mul(half, half)))
    far = _select(ops.gt(a, _c(big, a)), _half_exp(_clamp_lo(a, big)), c)
    return _select(ops.lt(a, _c(0.5, a)), near, far)


def _log_big(a, big):
    """log(2a) for a > big, where sqrt(a^2 + 1) = a to working precision."""
    return ops.add(ops.log(_clamp_lo(a, big)), _c(np.log(2.0), a))


def _arcsinh_pos(a):
    """log1p(a + a^2 / (1 + sqrt(1 + a^2))), a >= 0; log(2a) for a > 2^26."""
    big = 2.0 ** 26
    s = _clamp_hi(a, big)
    s2 = ops.mul(s, s)
    small = ops.log1p(ops.add(s, ops.div(s2, ops.add(_c(1, s), ops.sqrt(ops.add(_c(1, s), s2))))))
    return _select(ops.gt(a, _c(big, a)), _log_big(a, big), small)


@_ufunc
def arcsinh(x, /):
    return _odd(_arcsinh_pos, _float(x))


@_ufunc
def arccosh(x, /):
    """log1p(t + sqrt(t (t + 2))) with t = x - 1 (exact near 1); log(2x) for x > 2^26;
    nan below 1."""
    x = _float(x)
    big = 2.0 ** 26
    t = ops.sub(_clamp_lo(_clamp_hi(x, big), 1.0), _c(1, x))
    # sqrt(t) sqrt(t + 2), not sqrt(t (t + 2)): at x = 1 the derivative is then inf, not
    # the inf * 0 of the product rule under one root
    small = ops.log1p(ops.add(t, ops.mul(ops.sqrt(t), ops.sqrt(ops.add(t, _c(2, x))))))
    r = _select(ops.gt(x, _c(big, x)), _log_big(x, big), small)
    # below 1: sqrt(x - 1), whose value and derivative are nan there (a constant nan would
    # give a zero derivative where the value is nan; JAX and PyTorch give nan or inf); of 1
    # elsewhere, so that its derivative there is finite (the double-where trick)
    below = ops.lt(x, _c(1, x))
    return _select(below, ops.sqrt(_select(below, ops.sub(x, _c(1, x)), _c(1, x))), r)


def _arctanh_pos(a):
    # (log1p(a) - log1p(-a)) / 2: no cancellation (the terms have opposite signs), and the
    # derivative 1/(1 - a^2) reaches inf at 1 instead of 0 * inf
    return ops.mul(_c(0.5, a), ops.sub(ops.log1p(a), ops.log1p(ops.neg(a))))


@_ufunc
def arctanh(x, /):
    """(log1p(|x|) - log1p(-|x|)) / 2 with x's sign: accurate near 0, inf at +-1."""
    return _odd(_arctanh_pos, _float(x))


# ---- exponentials and logarithms ---------------------------------------------------------

def _logaddexp(name, x1, x2, exp, log1p_scale):
    x, y = _floats(name, x1, x2)
    if _dtype(x) == np.float32:   # the sum cancels when the result is near 0: f64 inside
        f64 = np.dtype(np.float64)
        r = _logaddexp(name, ops.convert(x, f64), ops.convert(y, f64), exp, log1p_scale)
        return ops.convert(r, _dtype(x))
    ge = ops.ge(x, y)
    m = _select(ge, x, y)
    # equal infinities: inf - inf would be nan, in the value and (through the branch
    # not taken) in the gradient; their result (x + y) / 2 gives each half, as a tie
    same_inf = ops.logical_and(ops.eq(x, y), ops.eq(ops.abs(x), _c(np.inf, x)))
    d = _select(ge, ops.sub(y, x), ops.sub(x, y))     # -|x - y|, nan for nan
    d = _select(same_inf, _c(0.0, d), d)
    r = ops.add(m, ops.mul(ops.log1p(exp(d)), _c(log1p_scale, m)))
    return _select(same_inf, ops.mul(ops.add(x, y), _c(0.5, x)), r)


@_ufunc
def logaddexp(x1, x2, /):
    """log(exp(x1) + exp(x2)) = max + log1p(exp(-|x1 - x2|)): no overflow; at ties the
    gradient is 1/2 to each."""
    return _logaddexp("logaddexp", x1, x2, ops.exp, 1.0)


@_ufunc
def logaddexp2(x1, x2, /):
    """log2(2**x1 + 2**x2), as logaddexp in base 2."""
    return _logaddexp("logaddexp2", x1, x2, ops.exp2, np.log2(np.e))


def _cbrt_pos(a):
    """a^(1/3) by pow, then one Newton step (pow's 1/3 is not exact); 0 and inf as is."""
    special = ops.logical_or(ops.eq(a, _c(0, a)), ops.eq(a, _c(np.inf, a)))
    s = _select(special, _c(1, a), a)
    y = ops.pow(s, _c(1.0 / 3.0, a))
    # y - (y^3 - s) / (3 y^2) written without y^3, which underflows for tiny s
    y = ops.sub(y, ops.div(ops.sub(y, ops.div(s, ops.mul(y, y))), _c(3, a)))
    # 0 and inf through pow itself: the same values, and its derivatives there (inf, 0)
    return _select(special, ops.pow(a, _c(1.0 / 3.0, a)), y)


@_ufunc
def cbrt(x, /):
    return _odd(_cbrt_pos, _float(x))


@_ufunc
def float_power(x1, x2, /):
    """x1 ** x2 in float64 (NumPy's float_power never computes in a narrower float)."""
    dt = np.dtype(np.float64)
    x, y = _broadcast("float_power", [_lift(x1, dt), _lift(x2, dt)])
    return ops.pow(x, y)


def _times_pow2(x, ef):
    """x * 2**ef for an integral float ef, in two exact steps (2**ef alone may overflow)."""
    half = ops.floor(ops.mul(ef, _c(0.5, x)))
    return ops.mul(ops.mul(x, ops.exp2(half)), ops.exp2(ops.sub(ef, half)))


@_ufunc
def ldexp(x1, x2, /):
    """x1 * 2**x2 (x2 integer)."""
    x, e = _float(x1), _operand(x2)
    if not np.issubdtype(_dtype(e), np.integer):
        _fail("ldexp", "the exponent must be an integer", (x1, x2), TypeError)
    x, e = _broadcast("ldexp", [x, e])
    return _ldexp(x, ops.convert(e, _dtype(x)))


def _clamp(v, lo, hi):
    return ops.min(ops.max(v, _c(lo, v)), _c(hi, v))


def _ldexp(x, e):
    """x * 2**e rounded once, for any integral float e: x = m 2**k (frexp), then m times
    2**(k + e) in two exact-power steps, the first keeping m normal (so a subnormal result
    rounds once, and 0 or inf never meet an overflowed or vanished power: no NaN)."""
    info = np.finfo(_dtype(x))
    # m 2**E is normal for E in [lo, maxexp]; NumPy's float32 exp2 (the eager impl) is
    # exact at every integer but 127, so the first power stops below it
    lo, hi = info.minexp + 1, info.maxexp - 2
    m, k = _frexp(x)
    big = _clamp(ops.add(k, e), lo - info.nmant - 3, hi + 3)
    first = _clamp(big, lo, hi)
    r = ops.mul(ops.mul(m, ops.exp2(first)), ops.exp2(ops.sub(big, first)))
    special = ops.logical_not(ops.logical_and(ops.gt(ops.abs(x), _c(0, x)),
                                              ops.lt(ops.abs(x), _c(np.inf, x))))
    # 0, inf and NaN are their own results (times a power that is neither 0 nor inf, so
    # that the derivative at 0 is 2**e where that is finite)
    kept = ops.mul(x, ops.exp2(_clamp(e, lo - info.nmant, hi)))
    return _select(special, kept, r)


def _frexp(x):
    """(m, e) with x = m * 2**e, 0.5 <= |m| < 1, e a float; 0, inf, nan give (x, 0).
    e = floor(log2|x|) + 1, then one correction step each way makes it exact."""
    ax = ops.abs(x)
    special = ops.logical_not(ops.logical_and(ops.gt(ax, _c(0, x)), ops.lt(ax, _c(np.inf, x))))
    e = ops.add(ops.floor(ops.log2(_select(special, _c(1, x), ax))), _c(1, x))
    m = _times_pow2(x, ops.neg(e))
    for wrong, factor, step in ((ops.ge(ops.abs(m), _c(1, x)), 0.5, 1),
                                (ops.lt(ops.abs(m), _c(0.5, x)), 2.0, -1)):
        m = _select(wrong, ops.mul(m, _c(factor, x)), m)
        e = _select(wrong, ops.add(e, _c(step, x)), e)
    return _select(special, x, m), _select(special, _c(0, x), e)


@_ufunc
def frexp(x, /):
    """(mantissa, exponent): x = m * 2**e with 0.5 <= |m| < 1 and e int32, exactly."""
    m, e = _frexp(_float(x))
    return m, ops.convert(e, np.dtype(np.int32))


@_ufunc
def nextafter(x1, x2, /):
    """The next float after x1 toward x2, from frexp's exponent: one ULP, half of one
    toward zero from a power of two, the subnormal spacing near zero."""
    x, y = _floats("nextafter", x1, x2)
    info = np.finfo(_dtype(x))
    m, e = _frexp(x)
    lowest = float(info.minexp - info.nmant)           # the subnormal spacing's exponent
    ulp = ops.max(ops.sub(e, _c(1 + info.nmant, x)), _c(lowest, x))
    up = ops.gt(y, x)
    toward_zero = ops.ne(up, ops.lt(x, _c(0, x)))
    toward_zero = ops.logical_and(ops.logical_not(toward_zero), ops.ne(x, _c(0, x)))
    half = ops.logical_and(ops.logical_and(toward_zero, ops.eq(ops.abs(m), _c(0.5, x))),
                           ops.gt(ulp, _c(lowest, x)))
    step = _times_pow2(_c(1, x), _select(half, ops.sub(ulp, _c(1, x)), ulp))
    r = _select(up, ops.add(x, step), ops.sub(x, step))
    r = ops.copysign(r, x)      # from the smallest subnormal to zero: numpy keeps x's sign
    tiny = info.smallest_subnormal
    r = _select(ops.eq(x, _c(0, x)), _select(up, _c(tiny, x), _c(-tiny, x)), r)
    r = _select(ops.eq(ops.abs(x), _c(np.inf, x)), ops.copysign(_c(info.max, x), x), r)
    r = _select(ops.eq(x, y), y, r)
    return _select(ops.logical_or(ops.ne(x, x), ops.ne(y, y)), ops.add(x, y), r)


@_ufunc
def spacing(x, /):
    """The distance to the next float away from zero, with x's sign (+-0: the smallest
    subnormal; inf, nan: nan)."""
    x = ops.stop_gradient(_float(x))      # piecewise constant: zero gradient everywhere
    r = ops.sub(nextafter(x, ops.copysign(_c(np.inf, x), x)), x)
    return _select(ops.eq(x, _c(0, x)), _c(np.finfo(_dtype(x)).smallest_subnormal, x), r)


# ---- classification --------------------------------------------------------------------

@_ufunc
def isnan(x, /):
    x = _operand(x)
    return ops.ne(x, x)


@_ufunc
def isinf(x, /):
    x = _operand(x)
    if not _is_float(x):
        return ops.ne(x, x)
    return ops.eq(ops.abs(x), _c(np.inf, x))


@_ufunc
def isfinite(x, /):
    x = _operand(x)
    if not _is_float(x):
        return ops.eq(x, x)
    return ops.lt(ops.abs(x), _c(np.inf, x))


def isposinf(x, out=None):
    _reject("isposinf", out=out)
    x = _operand(x)
    return ops.eq(x, _c(np.inf, x)) if _is_float(x) else ops.ne(x, x)


def isneginf(x, out=None):
    _reject("isneginf", out=out)
    x = _operand(x)
    return ops.eq(x, _c(-np.inf, x)) if _is_float(x) else ops.ne(x, x)


@_ufunc
def signbit(x, /):
    """The sign bit: True for -0.0 and for nan with the sign set, as numpy."""
    x = _operand(x)
    if _is_float(x):
        return ops.signbit(x)
    return ops.lt(x, _c(0, x))


# ---- sign manipulation, extrema ---------------------------------------------------------

@_ufunc
def copysign(x1, x2, /):
    x, y = _floats("copysign", x1, x2)
    return ops.copysign(x, y)


@_ufunc
def fabs(x, /):
    return ops.abs(_float(x))


@_ufunc
def heaviside(x1, x2, /):
    """0 for x1 < 0, x2 at 0, 1 for x1 > 0, nan for nan; the gradient flows to x2 at 0."""
    x, h = _floats("heaviside", x1, x2)
    r = _select(ops.lt(x, _c(0, x)), _c(0, x), _select(ops.gt(x, _c(0, x)), _c(1, x), h))
    return _select(ops.ne(x, x), x, r)


def _nan_ignoring(name, prim, wins, x1, x2):
    """x1 where it `wins` or x2 is NaN, else x2: jax.numpy's fmax/fmin, whose derivative
    goes to the value picked and at a tie to x2 (maximum's splits it)."""
    x, y = _promoted(name, x1, x2)
    if not _is_float(x):
        return ops.bind(prim, x, y)
    return _select(ops.logical_or(wins(x, y), ops.ne(y, y)), x, y)


@_ufunc
def fmax(x1, x2, /):
    """Elementwise maximum ignoring nan (nan only if both are)."""
    return _nan_ignoring("fmax", "max", ops.gt, x1, x2)


@_ufunc
def fmin(x1, x2, /):
    """Elementwise minimum ignoring nan (nan only if both are)."""
    return _nan_ignoring("fmin", "min", ops.lt, x1, x2)


# ---- rounding ------------------------------------------------------------------------------

def _rounding(name, prim, doc):
    def f(x, /):
        x = _operand(x)
        return ops.bind(prim, x) if _is_float(x) else x   # integers are already integral
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"{doc}; integer and bool inputs are returned unchanged, as NumPy 2."
    return _ufunc(f)


floor = _rounding("floor", "floor", "Largest integer <= x (zero gradient)")
ceil = _rounding("ceil", "ceil", "Smallest integer >= x (zero gradient)")
trunc = _rounding("trunc", "trunc", "Round toward zero (zero gradient)")


def fix(x, out=None):
    """Round toward zero (numpy.fix is trunc)."""
    _reject("fix", out=out)
    return trunc(x)


def _power_of_ten(n: int) -> float:
    """10.0**n as numpy's round builds it (its power_of_ten): exact up to 1e8, then 1e9
    times 10 repeatedly, so that the scaled values round as numpy's do (the correctly
    rounded 10.0**30 differs by an ULP); inf past the float range, where numpy gives NaN."""
    if n < 9:
        return 10.0 ** n
    scale = 1e9
    for _ in range(n - 9):
        scale *= 10.0
    return scale


def round(a, decimals=0, out=None):
    """Round half to even at `decimals` places: rint(x * 10**d) / 10**d, as numpy
    (so, as in numpy, the scaling may round: round(2.675, 2) is 2.67)."""
    _reject("round", out=out)
    x = _operand(a)
    decimals = int(decimals)
    if _dtype(x) == np.bool_:   # NumPy gives float16; float functions of bool: float64
        x = ops.convert(x, np.dtype(np.float64))
    if not _is_float(x):
        if decimals >= 0:
            return x
        f = ops.convert(x, np.dtype(np.float64))
        scale = np.float64(10.0 ** -decimals)
        return ops.convert(ops.mul(ops.round(ops.div(f, scale)), scale), _dtype(x))
    if decimals == 0:
        return ops.round(x)
    scale = _c(_power_of_ten(abs(decimals)), x)
    if decimals > 0:
        return ops.div(ops.round(ops.mul(x, scale)), scale)
    return ops.mul(ops.round(ops.div(x, scale)), scale)


around = round


# ---- remainders and floor division --------------------------------------------------------

def _int_divmod(x, y):
    """NumPy's integer floor division and remainder (the remainder has y's sign);
    division by zero gives 0 for both."""
    zero = _c(0, x)
    r = ops.rem(x, y)
    fix_ = ops.logical_and(ops.ne(r, zero), ops.ne(ops.lt(r, zero), ops.lt(y, zero)))
    q = _select(fix_, ops.sub(ops.div(x, y), _c(1, x)), ops.div(x, y))
    q = _select(ops.eq(y, zero), zero, q)
    return q, _select(fix_, ops.add(r, y), r)


def _float_divmod(a, b):
    """numpy's npy_divmod: mod = fmod(a, b) moved to b's sign, the quotient (a - mod)/b
    snapped to the nearest integer; b == 0 gives (a / b, fmod(a, b))."""
    zero = _c(0, a)
    mod = ops.rem(a, b)
    div = ops.div(ops.sub(a, mod), b)
    fix_ = ops.logical_and(ops.ne(mod, zero), ops.ne(ops.lt(b, zero), ops.lt(mod, zero)))
    mod_fixed = _select(fix_, ops.add(mod, b), mod)
    div = _select(fix_, ops.sub(div, _c(1, a)), div)
    # an exact multiple: numpy's zero takes b's sign; minus ((1 - mod) - 1), which is +0.0
    # there, keeps mod's derivative (1 in a, as jax's remainder has) without touching the sign
    one = _c(1, a)
    signed_zero = ops.sub(ops.copysign(zero, b), ops.sub(ops.sub(one, mod), one))
    mod_fixed = _select(ops.eq(mod, zero), signed_zero, mod_fixed)
    fl = ops.floor(div)
    fl = _select(ops.gt(ops.sub(div, fl), _c(0.5, a)), ops.add(fl, _c(1, a)), fl)
    q = _select(ops.ne(div, zero), fl, ops.copysign(zero, ops.div(a, b)))
    by_zero = ops.eq(b, zero)
    return _select(by_zero, ops.div(a, b), q), _select(by_zero, mod, mod_fixed)


def _divmod_parts(name, x1, x2):
    x, y = _promoted(name, x1, x2)
    if _dtype(x) == np.bool_:
        _fail(name, "bool operands are not supported (NumPy's result is int8, which "
              "tracegrad arrays do not have); convert them to int first", (x1, x2), TypeError)
    return (_float_divmod if _is_float(x) else _int_divmod)(x, y)


@_ufunc
def floor_divide(x1, x2, /):
    """x1 // x2 with NumPy's rounding (floor) and signs."""
    return _divmod_parts("floor_divide", x1, x2)[0]


@_ufunc
def remainder(x1, x2, /):
    """x1 % x2 with the sign of x2 (Python's and NumPy's mod)."""
    return _divmod_parts("remainder", x1, x2)[1]


mod = remainder


@_ufunc
def divmod(x1, x2, /):
    """(x1 // x2, x1 % x2) computed together."""
    return _divmod_parts("divmod", x1, x2)


@_ufunc
def fmod(x1, x2, /):
    """C's fmod: the remainder with the sign of x1 (integer division by zero gives 0)."""
    x, y = _promoted("fmod", x1, x2)
    if _dtype(x) == np.bool_:
        _fail("fmod", "bool operands are not supported (NumPy's result is int8)", (x1, x2),
              TypeError)
    return ops.rem(x, y)


@_ufunc
def modf(x, /):
    """(fractional part, integral part), both with x's sign; modf(inf) = (0, inf)."""
    x = _float(x)
    whole = ops.trunc(x)
    # |x| - |trunc(x)| >= 0, exact, signed by x: -0.0 at negative integers, as NumPy, with
    # the derivative 1 of x - trunc(x) everywhere (x - trunc(x) is +0.0 there, and
    # copysign's derivative in its first operand is -1 where the signs differ); at 0, x itself
    size = ops.sub(ops.abs(x), ops.abs(whole))
    size = _select(ops.eq(ops.abs(x), _c(np.inf, x)), _c(0, x), size)
    return _select(ops.eq(x, _c(0, x)), x, ops.copysign(size, x)), whole


# ---- NaN replacement, complex parts ----------------------------------------------------

def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """nan -> `nan`, +-inf -> `posinf`/`neginf` (default: the largest finite values)."""
    x = _operand(x)
    if not _is_float(x):
        return x
    info = np.finfo(_dtype(x))
    hi = info.max if posinf is None else posinf
    lo = info.min if neginf is None else neginf
    x = _select(ops.ne(x, x), _c(nan, x), x)
    x = _select(ops.eq(x, _c(np.inf, x)), _c(hi, x), x)
    return _select(ops.eq(x, _c(-np.inf, x)), _c(lo, x), x)


def real(val):
    """The real part: the array itself (tracegrad arrays are real)."""
    return _operand(val)


def imag(val):
    """The imaginary part of a real array: zeros of its shape and dtype."""
    x = _operand(val)
    return ops.broadcast(np.zeros((), _dtype(x)), _shape(x)) if _shape(x) else \
        np.zeros((), _dtype(x))


@_ufunc
def conjugate(x, /):
    return _new_value(_operand(x))


conj = conjugate


def angle(z, deg=False):
    """The argument of a real number: 0 for x >= +0, pi for x < 0 and -0.0 (atan2(0, x))."""
    x = _float(z)
    a = ops.atan2(_select(ops.eq(x, x), _c(0, x), x), x)
    return ops.mul(a, _c(180.0 / np.pi, x)) if deg else a


# ---- comparisons with tolerance -------------------------------------------------------------

def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|a - b| <= atol + rtol |b| for finite values; infinities must be equal."""
    x, y = _floats("isclose", a, b)
    close = ops.le(ops.abs(ops.sub(x, y)),
                   ops.add(_c(atol, x), ops.mul(_c(rtol, x), ops.abs(y))))
    finite = ops.logical_and(isfinite(x), isfinite(y))
    r = _select(finite, close, ops.eq(x, y))
    if equal_nan:
        r = ops.logical_or(r, ops.logical_and(ops.ne(x, x), ops.ne(y, y)))
    return r


def _all(x):
    from .reductions import all as all_
    return all_(x)


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return _all(isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def array_equal(a1, a2, equal_nan=False):
    """Same shape and equal elements (nan equal to nan only with `equal_nan`)."""
    x, y = _operand(a1), _operand(a2)
    if _shape(x) != _shape(y):
        return np.bool_(False)
    x, y = _promoted("array_equal", x, y)
    eq = ops.eq(x, y)
    if equal_nan and _is_float(x):
        eq = ops.logical_or(eq, ops.logical_and(ops.ne(x, x), ops.ne(y, y)))
    return _all(eq)


def array_equiv(a1, a2):
    """Equal elements after broadcasting; False if the shapes do not broadcast."""
    x, y = _operand(a1), _operand(a2)
    try:
        np.broadcast_shapes(_shape(x), _shape(y))
    except ValueError:
        return np.bool_(False)
    x, y = _promoted("array_equiv", x, y)
    return _all(ops.eq(x, y))


# ---- integers --------------------------------------------------------------------------------

def _int_operands(name, x1, x2):
    x, y = _promoted(name, x1, x2)
    if _is_float(x) or _dtype(x) == np.bool_:
        _fail(name, "needs integer operands (NumPy does not define it for floats or, with "
              "tracegrad's dtypes, for bool)", (x1, x2), TypeError)
    return x, y


@_ufunc
def left_shift(x1, x2, /):
    """x1 << x2; a count outside [0, bits) gives 0, as numpy."""
    return ops.shift_left(*_int_operands("left_shift", x1, x2))


@_ufunc
def right_shift(x1, x2, /):
    """x1 >> x2 (arithmetic); a count outside [0, bits) gives 0 or -1, as numpy."""
    return ops.shift_right(*_int_operands("right_shift", x1, x2))


def _gcd_steps(dtype) -> int:
    # Euclid's algorithm takes at most ~1.44 log2(max) + 2 steps (Lame)
    return int(1.45 * 8 * np.dtype(dtype).itemsize) + 3


@_ufunc
def gcd(x1, x2, /):
    """Greatest common divisor (nonnegative; gcd(0, 0) = 0) by a fixed number of
    elementwise Euclid steps, enough for the dtype (Lame's bound)."""
    a, b = _int_operands("gcd", x1, x2)
    a, b = ops.abs(a), ops.abs(b)
    zero = _c(0, a)
    for _ in range(_gcd_steps(_dtype(a))):
        nz = ops.ne(b, zero)
        r = ops.rem(a, _select(nz, b, _c(1, b)))
        a, b = _select(nz, b, a), _select(nz, r, zero)
    return ops.abs(a)  # abs(INT_MIN) is INT_MIN: its remainders may come out negative


@_ufunc
def lcm(x1, x2, /):
    """Least common multiple: |x1 / gcd * x2|, 0 if either is 0."""
    a, b = _int_operands("lcm", x1, x2)
    g = gcd(a, b)
    zero = _c(0, a)
    nz = ops.ne(g, zero)
    return ops.abs(ops.mul(ops.div(a, _select(nz, g, _c(1, g))), b))


__all__ = [
    "tan", "arcsin", "arccos", "arctan2", "deg2rad", "rad2deg", "radians", "degrees", "sinc",
    "hypot", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "logaddexp", "logaddexp2",
    "cbrt", "float_power", "ldexp", "frexp", "nextafter", "spacing", "isnan", "isinf", "isfinite", "isposinf", "isneginf",
    "signbit", "copysign", "fabs",
    "heaviside", "fmax", "fmin", "floor", "ceil", "trunc", "fix", "round", "around",
    "floor_divide", "remainder", "mod", "divmod", "fmod", "modf", "nan_to_num", "real", "imag",
    "conjugate", "conj", "angle", "isclose", "allclose", "array_equal", "array_equiv",
    "left_shift", "right_shift", "gcd", "lcm",
    # NumPy 2's short names
    "asin", "acos", "atan", "atan2", "asinh", "acosh", "atanh", "bitwise_left_shift",
    "bitwise_right_shift",
]
asin, acos, atan2, asinh, acosh, atanh = arcsin, arccos, arctan2, arcsinh, arccosh, arctanh
bitwise_left_shift, bitwise_right_shift = left_shift, right_shift
atan = uf.arctan

NUMPY = {
    np.tan: tan, np.arcsin: arcsin, np.arccos: arccos, np.arctan2: arctan2,
    np.deg2rad: deg2rad, np.rad2deg: rad2deg, np.radians: radians, np.degrees: degrees,
    np.sinc: sinc, np.hypot: hypot, np.sinh: sinh, np.cosh: cosh, np.arcsinh: arcsinh,
    np.arccosh: arccosh, np.arctanh: arctanh, np.logaddexp: logaddexp,
    np.logaddexp2: logaddexp2, np.cbrt: cbrt, np.float_power: float_power, np.ldexp: ldexp,
    np.frexp: frexp, np.nextafter: nextafter, np.spacing: spacing,
    np.isnan: isnan, np.isinf: isinf, np.isfinite: isfinite, np.isposinf: isposinf,
    np.isneginf: isneginf, np.signbit: signbit, np.copysign: copysign,
    np.fabs: fabs, np.heaviside: heaviside, np.fmax: fmax, np.fmin: fmin, np.floor: floor,
    np.ceil: ceil, np.trunc: trunc, np.fix: fix, np.round: round, np.around: around,
    np.floor_divide: floor_divide, np.remainder: remainder, np.divmod: divmod, np.fmod: fmod,
    np.modf: modf, np.nan_to_num: nan_to_num, np.real: real, np.imag: imag,
    np.conjugate: conjugate, np.angle: angle, np.isclose: isclose, np.allclose: allclose,
    np.array_equal: array_equal, np.array_equiv: array_equiv, np.left_shift: left_shift,
    np.right_shift: right_shift, np.gcd: gcd, np.lcm: lcm,
}
