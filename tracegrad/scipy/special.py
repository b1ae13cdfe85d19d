"""`scipy.special`'s functions that tracegrad.numpy computes (jax.scipy.special's names).

>>> import numpy as np
>>> from tracegrad.scipy.special import erf, expit, logit, ndtri
>>> float(expit(0.0)), float(logit(0.5)), float(erf(0.0)), float(ndtri(0.5))
(0.5, 0.0, 0.0, 0.0)

scipy.special's own ufuncs of the names in tracegrad.tracer.numpy.special's SCIPY_UFUNCS
(`erf`, `ndtr`, `gamma`, `xlogy`, ...) also work on tensors and traced values
(`scipy.special.ndtr(x)` inside `jit`): they come here.

The functions below that scipy computes in float64 (its float32 loops round the float64
value) compute in float64 too, whatever the input: int and bool inputs give float64,
float32 inputs float32, rounded once.  Accuracy figures are measured against
scipy 1.17 in float64.
"""
from __future__ import annotations

import functools
import math

import numpy as np

import tracegrad.numpy as tnp
from tracegrad.ir import gamma as _gamma_algorithms
from tracegrad.ir.elementwise import _GraphOps
from tracegrad.tracer.numpy._core import concrete_value
from tracegrad.tracer.numpy.polynomial import _I0A, _I0B, _chbevl

__all__ = ["erf", "erfc", "gammaln", "digamma", "psi", "expit", "logit", "logsumexp",
           "softmax", "log_softmax", "xlogy", "xlog1py", "ndtr", "log_ndtr", "ndtri",
           "erfinv", "gamma", "betaln", "entr", "rel_entr", "kl_div", "log_expit", "i0e",
           "i1", "i1e", "polygamma", "multigammaln"]

_F64 = np.dtype(np.float64)
_SQRT1_2 = math.sqrt(0.5)
_SQRT2PI = math.sqrt(2 * math.pi)
_HALF_SQRTPI = 0.5 * math.sqrt(math.pi)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """scipy's logsumexp: log(sum(b * exp(a))) over `axis`, stably (the third positional
    argument is `b`, as scipy's, even a bool; tracegrad.numpy's also reads a bool there as
    keepdims)."""
    if isinstance(b, bool):
        b = np.asarray(b, np.float64)
    return tnp.logsumexp(a, axis, b, keepdims, return_sign)

erf, erfc = tnp.erf, tnp.erfc
gammaln, digamma, psi = tnp.lgamma, tnp.digamma, tnp.digamma


def _float(x):
    """`x`, an int or bool one in float64 (as scipy's ufuncs compute them)."""
    x = tnp.asarray(x)
    return x if np.dtype(x.dtype).kind == "f" else tnp.astype(x, np.float64)


def expit(x):
    """1 / (1 + exp(-x)), accurate in both tails; int and bool inputs compute in float64
    (as scipy's)."""
    return tnp.sigmoid(_float(x))


def logit(p):
    """log(p / (1 - p)): 2 atanh(2p - 1) for p in [0.25, 0.75], where 2p - 1 is exact and
    log(p) - log1p(-p) would cancel (scipy's choice too), else that difference."""
    p = _float(p)
    middle = (p >= 0.25) & (p <= 0.75)
    centred = 2 * tnp.arctanh(2 * tnp.where(middle, p, 0.5) - 1)
    tails = tnp.log(tnp.where(middle, 0.125, p)) - tnp.log1p(-tnp.where(middle, 0.125, p))
    return tnp.where(middle, centred, tails)


def softmax(x, axis=None):
    """exp(x) / sum(exp(x)) over `axis` (all axes by default, as scipy's), the maximum
    subtracted first (exp of log_softmax lost |log p| times an ULP)."""
    if axis is None:
        return tnp.reshape(tnp.softmax(tnp.reshape(x, (-1,))), tnp.shape(x))
    return tnp.softmax(x, axis=axis)


def log_softmax(x, axis=None):
    """x - logsumexp(x) over `axis` (all axes by default, as scipy's)."""
    if axis is None:
        return tnp.reshape(tnp.log_softmax(tnp.reshape(x, (-1,))), tnp.shape(x))
    return tnp.log_softmax(x, axis=axis)


def xlogy(x, y):
    """x * log(y), and 0 where x == 0 (y not NaN), as scipy's: also where log(y) is -inf,
    inf or NaN (y <= 0, y = inf); its x-derivative is log(y)."""
    x, y = _floats(x, y)
    odd = (x == 0) & ~tnp.isnan(y) & ((y <= 0) | tnp.isinf(y))
    return x * tnp.log(tnp.where(odd, 1.0, y))


def _floats(x, y):
    """x and y in the float dtype they compute in (a Python number is weak: a float32
    array with 2.0 stays float32, as scipy's and jax's)."""
    dt = tnp.result_type(x, y)
    dt = dt if np.dtype(dt).kind == "f" else np.float64
    return tnp.asarray(x, dtype=dt), tnp.asarray(y, dtype=dt)


def xlog1py(x, y):
    """x * log1p(y), and 0 where x == 0 (y not NaN), as scipy's: also where log1p(y) is not
    finite (y <= -1, y = inf); its x-derivative is log1p(y)."""
    x, y = _floats(x, y)
    odd = (x == 0) & ~tnp.isnan(y) & ((y <= -1) | tnp.isinf(y))
    return x * tnp.log1p(tnp.where(odd, 0.0, y))


# ---- computed in float64 ---------------------------------------------------------------

def _in_float64(f):
    """`f` on its arguments converted to float64, its result in the dtype scipy's ufunc
    gives: float32 for float32 inputs (a Python number is weak), else float64."""
    @functools.wraps(f)
    def call(*args):
        dt = np.dtype(tnp.result_type(*args))
        out = np.dtype(np.float32) if dt.kind == "f" and dt.itemsize <= 4 else _F64
        result = f(*(tnp.asarray(a, dtype=_F64) for a in args))
        return result if out == _F64 else tnp.astype(result, out)
    return call


def _horner(x, coeffs):
    """sum(coeffs[k] x^k), the constant term first."""
    acc = coeffs[-1]
    for c in reversed(coeffs[:-1]):
        acc = acc * x + c
    return acc


@_in_float64
def ndtr(x):
    """The standard normal CDF, (1 + erf(x/sqrt 2)) / 2 for |x| < 1 and from erfc beyond
    (scipy's splitting), so that the lower tail keeps its relative accuracy (ndtr(-37) =
    5.7e-300).  Within 7e-16 of scipy for |x| <= 1 and 1.5e-15 on [-5, 9]; further down
    both round x/sqrt 2, an error erfc's slope multiplies (~x^2 ulps): 1.5e-14 at -20,
    6e-14 at -37.5 (there 1.9e-13 from mpmath, scipy's 2.3e-13).  Its derivative is the
    normal density."""
    z = x * _SQRT1_2
    tail = 0.5 * tnp.erfc(tnp.abs(z))
    return tnp.where(tnp.abs(z) < _SQRT1_2, 0.5 + 0.5 * tnp.erf(z),
                     tnp.where(z > 0, 1.0 - tail, tail))


@_in_float64
def log_ndtr(x):
    """log(ndtr(x)): log1p(-ndtr(-x)) for x > 0 (accurate as it goes to 0), log(ndtr(x))
    down to -20, and below the asymptotic series -x^2/2 - log(-x) - log(2 pi)/2 +
    log(1 - 1/x^2 + 3/x^4 - ...) (16 terms), as scipy's (log_ndtr(-40) = -804.6, no
    underflow).  Its derivative is pdf(x) / ndtr(x).  Within 8e-16 of scipy up to 1
    (7e-16 on the series, down to -1e3); above, ndtr's upper tail: 4e-15 to 9, 6e-14 at
    37."""
    upper, lower = x > 0, x <= -20
    xu = tnp.where(upper, x, 1.0)
    xm = tnp.where(upper | lower, -1.0, x)
    xl = tnp.where(lower, x, -20.0)
    w = 1.0 / (xl * xl)
    series = _horner(w, [0.0] + [(-1) ** k * _double_factorial(2 * k - 1)
                                 for k in range(1, 17)])
    far = -0.5 * xl * xl - tnp.log(-xl) - _HALF_LOG_2PI + tnp.log1p(series)
    return tnp.where(upper, tnp.log1p(-ndtr(-xu)),
                     tnp.where(lower, far, tnp.log(ndtr(xm))))


def _double_factorial(n):
    return float(math.prod(range(n, 0, -2)))


# Wichura's AS241 (PPND16) rational approximations of the normal quantile: the centre
# |p - 1/2| <= 0.425 in s = 0.180625 - q^2, the tails in t = sqrt(-log(min(p, 1-p)))
# - 1.6 (t <= 5) and - 5; coefficients as published, the constant term first
_AS241 = (
    ((3.3871328727963666080e0, 1.3314166789178437745e+2, 1.9715909503065514427e+3,
      1.3731693765509461125e+4, 4.5921953931549871457e+4, 6.7265770927008700853e+4,
      3.3430575583588128105e+4, 2.5090809287301226727e+3),
     (1.0, 4.2313330701600911252e+1, 6.8718700749205790830e+2, 5.3941960214247511077e+3,
      2.1213794301586595867e+4, 3.9307895800092710610e+4, 2.8729085735721942674e+4,
      5.2264952788528545610e+3)),
    ((1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
      3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
      2.27238449892691845833e-2, 7.74545014278341407640e-4),
     (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
      1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
      1.05075007164441684324e-9)),
    ((6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
      2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
      2.71155556874348757815e-5, 2.01033439929228813265e-7),
     (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
      7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
      2.04426310338993978564e-15)))


def _as241(q, r):
    """(centre, x, a): whether |q| <= 0.425, AS241's quantile there (q = p - 1/2, exact),
    and elsewhere its magnitude a in the tail of probability r = min(p, 1 - p) (exact), each
    branch fed harmless arguments where the other is taken."""
    centre = tnp.abs(q) <= 0.425
    qc = tnp.where(centre, q, 0.0)
    s = 0.180625 - qc * qc
    (ca, cb), (na, nb), (fa, fb) = _AS241
    x = qc * _horner(s, ca) / _horner(s, cb)
    rt = tnp.where(centre | ~(r > 0), 0.01, r)
    t = tnp.sqrt(-tnp.log(rt))
    near = t <= 5.0
    tn, tf = tnp.where(near, t, 5.0) - 1.6, tnp.where(near, 5.0, t) - 5.0
    a = tnp.where(near, _horner(tn, na) / _horner(tn, nb), _horner(tf, fa) / _horner(tf, fb))
    return centre, x, a, rt


def _quantile_edges(value, p):
    """`value` with ndtri's special values: -inf at 0, inf at 1, nan outside [0, 1]."""
    value = tnp.where(p == 0, -np.inf, tnp.where(p == 1, np.inf, value))
    return tnp.where((p >= 0) & (p <= 1), value, np.nan)


@_in_float64
def ndtri(p):
    """The inverse of ndtr: AS241 (Wichura 1988, ~1e-16) refined by one Newton step on
    ndtr in the centre and on the tail probability min(p, 1 - p) (exact) outside, so that
    its derivative, that of the Newton step, is sqrt(2 pi) exp(x^2/2) to rounding.  -inf at
    0, inf at 1, nan outside [0, 1]; within 6.5e-16 relative of scipy down to p = 5e-324
    (below 1e-290 the step, whose terms are subnormal there, is skipped)."""
    q, r = p - 0.5, tnp.minimum(p, 1.0 - p)
    centre, x, a, rt = _as241(q, r)
    x = x - (0.5 * tnp.erf(x * _SQRT1_2) - tnp.where(centre, q, 0.0)) * _SQRT2PI * \
        tnp.exp(0.5 * x * x)
    refine = rt > 1e-290
    ar = tnp.where(refine, a, 1.0)
    step = (0.5 * tnp.erfc(ar * _SQRT1_2) - rt) * _SQRT2PI * tnp.exp(0.5 * ar * ar)
    a = a + tnp.where(refine, step, 0.0)
    return _quantile_edges(tnp.where(centre, x, tnp.where(q < 0, -a, a)), p)


@_in_float64
def erfinv(y):
    """The inverse of erf: AS241's ndtri((1 + y)/2) / sqrt 2 from q = y/2 and the tail
    probability (1 - |y|)/2 (both exact, so that small |y| keep their relative accuracy:
    erfinv(1e-300) = 8.86e-301), refined by one Newton step on erf (erfc in the tails), whose
    derivative is sqrt(pi)/2 exp(erfinv(y)^2).  +-inf at +-1, nan beyond; within 5e-16
    relative of scipy."""
    centre, x, a, _ = _as241(0.5 * y, 0.5 * (1.0 - tnp.abs(y)))
    z = x * _SQRT1_2
    z = z - (tnp.erf(z) - tnp.where(centre, y, 0.0)) * _HALF_SQRTPI * tnp.exp(z * z)
    za = tnp.where(centre, 1.0, a * _SQRT1_2)
    za = za + (tnp.erfc(za) - tnp.where(centre, tnp.erfc(1.0), 1.0 - tnp.abs(y))) * \
        _HALF_SQRTPI * tnp.exp(za * za)
    value = tnp.where(centre, z + 0.0, tnp.where(y < 0, -za, za))  # (+0 at -0, as scipy's)
    value = tnp.where(y == -1, -np.inf, tnp.where(y == 1, np.inf, value))
    return tnp.where(tnp.abs(y) <= 1, value, np.nan)


_LGAMMA_Q = _gamma_algorithms.LGAMMA_Q  # Stirling's series: lgamma's correction Q(1/y^2) / y


def _stirling_correction(y):
    """lgamma(y) - ((y - 1/2) log y - y + log(2 pi)/2) for y >= 10 (1e-17 relative)."""
    return _horner(1.0 / (y * y), _LGAMMA_Q) / y


_GAMMA_MAX = 171.6243769563027  # Gamma overflows beyond
_GAMMA_STIRLING = 24.0  # Stirling's formula from here; below, products (exact factorials)


def _gamma_positive(y):
    """Gamma(y) for y > -1/2: exp(lgamma(b)) on b in [1/2, 2) (|lgamma| < 0.6 there: no
    error amplified) times the exact steps y - j down to it (Gamma(y) = Gamma(y + 1) / y
    below 1; factorials come out exact, as scipy's), and from 24 Stirling's formula
    y^(y/2 - 1/4) (y^(y/2 - 1/4) / e^y) sqrt(2 pi) exp(correction), split so that it
    overflows only where Gamma does."""
    small, far = y < 1.0, y >= _GAMMA_STIRLING
    yn = tnp.where(far, 1.5, y)
    b = tnp.where(small, yn + 1.0, yn - tnp.floor(yn) + 1.0)
    product = tnp.exp(tnp.lgamma(b))
    for j in range(1, int(_GAMMA_STIRLING) - 1):
        product = product * tnp.where(yn - j >= 1.0, yn - j, 1.0)
    near = tnp.where(small, product / tnp.where(small, yn, 1.0), product)
    yf = tnp.where(far, tnp.minimum(y, _GAMMA_MAX), _GAMMA_STIRLING)
    v = tnp.power(yf, 0.5 * yf - 0.25)
    stirling = _SQRT2PI * v * (v / tnp.exp(yf)) * tnp.exp(_stirling_correction(yf))
    return tnp.where(far, tnp.where(y > _GAMMA_MAX, np.inf, stirling), near)


@_in_float64
def gamma(x):
    """The Gamma function: from the positive side above -1/2, below by the reflection
    Gamma(x) = -pi / (x sin(pi x) Gamma(-x)) with the sign of (-1)^ceil(-x); inf at +0,
    -inf at -0, nan at the negative integers and -inf, +-0 below -171.6 (as scipy's);
    exact factorials up to 22!.  Within 1.1e-15 relative of scipy for |x| < 171.6 (against
    mpmath 7.6e-16, scipy's 9e-16).  Its derivative is gamma(x) digamma(x)."""
    positive = x > -0.5
    xr = tnp.where(positive, -0.5, x)
    g = _gamma_positive(tnp.where(positive, x, -xr))  # Gamma(x), or Gamma(-x) to reflect
    r = xr - tnp.rint(xr)  # exact; sin(pi r) = +-sin(pi x)
    fl = tnp.floor(xr)
    sign = tnp.where(fl - 2.0 * tnp.floor(0.5 * fl) == 0.0, 1.0, -1.0)
    den = (tnp.abs(tnp.sin(math.pi * r)) * -xr) * g  # Cephes' order
    reflected = tnp.where(r == 0.0, np.nan, sign * (math.pi / den))
    return tnp.where(positive, g, reflected)


def _lbeta_stirling(lo, hi):
    """log|B(lo, hi)| for hi >= 10 and lo + hi >= 10 from Stirling's series with the
    cancelling terms taken out analytically (DiDonato and Morris's, as jax's and TFP's):
    lgamma(hi) - lgamma(lo + hi) as corrections, -(s - 1/2) log1p(lo/hi) - lo log(hi) + lo,
    and lgamma(lo) below 10, the same expansion of lgamma(lo) from 10."""
    s = lo + hi
    difference = (_stirling_correction(hi) - _stirling_correction(s)
                  - (s - 0.5) * tnp.log1p(lo / hi) - lo * tnp.log(hi) + lo)
    big = tnp.where(lo >= 10.0, lo, 10.0)
    both = (_HALF_LOG_2PI - 0.5 * tnp.log(hi) + _stirling_correction(big)
            + (big - 0.5) * tnp.log(big / (big + hi)) - hi * tnp.log1p(big / hi)
            + _stirling_correction(hi) - _stirling_correction(big + hi))
    return tnp.where(lo >= 10.0, both, tnp.lgamma(tnp.where(lo < 10.0, lo, 1.0)) + difference)


def _lbeta_ratio(lo, hi):
    """log|Gamma(lo) Gamma(hi) / Gamma(lo + hi)| from the Gamma functions, divided in
    scipy's (Cephes') order; -inf where lo + hi is a pole (and lo, hi are not)."""
    s = lo + hi
    ga, gb, gs = gamma(tnp.where(tnp.abs(hi) >= tnp.abs(lo), hi, lo)), \
        gamma(tnp.where(tnp.abs(hi) >= tnp.abs(lo), lo, hi)), gamma(s)
    first = tnp.abs(tnp.abs(ga) - tnp.abs(gs)) > tnp.abs(tnp.abs(gb) - tnp.abs(gs))
    value = tnp.log(tnp.abs(tnp.where(first, gb / gs * ga, ga / gs * gb)))
    return tnp.where((s <= 0) & (s == tnp.floor(s)), -np.inf, value)


@_in_float64
def betaln(a, b):
    """log|B(a, b)| = log|Gamma(a) Gamma(b) / Gamma(a + b)|, scipy's special values
    included.  With the larger argument and the sum from 10, Stirling's series with the
    cancelling terms taken out (betaln(1e10, 1) = -log(1e10) to the last digit; scipy's
    lgamma differences lose digits beyond 171); below, the Gamma functions' ratio as
    scipy's; a non-positive integer argument gives inf (nan or not the other), except
    B(-m, n) for integers 0 < n <= m (scipy's lbeta(1 + m - n, n)).  Within 1e-15
    absolute of mpmath on [-30, 30]^2 and beyond; scipy's own error reaches 5e-14 from 10
    on (its Gamma ratio) and 1e-11 where it subtracts lgammas (beyond 171.6), and it gives
    nan or -inf for finite values from 1e77 on."""
    lo, hi = tnp.minimum(a, b), tnp.maximum(a, b)
    pole = _nonpositive_integer(a) | _nonpositive_integer(b)  # (-inf too, as scipy's)
    finite = _nonpositive_integer(lo) & (lo > -2.0 ** 31) & (hi > 0) & (hi == tnp.floor(hi)) \
        & (lo + hi < 1)
    lo = tnp.where(finite, 1.0 - lo - hi, lo)  # B(-m, n) -> B(1 + m - n, n), both positive
    lo, hi = tnp.minimum(lo, hi), tnp.maximum(lo, hi)
    s = lo + hi
    stirling = (hi >= 10) & (s >= 10) & (hi < np.inf)
    ratio = ~stirling & (tnp.abs(hi) < 171.6) & (tnp.abs(lo) < 171.6) & (tnp.abs(s) < 171.6)
    value = tnp.where(stirling, _lbeta_stirling(tnp.where(stirling, lo, 1.0),
                                                tnp.where(stirling, hi, 10.0)),
                      _lbeta_ratio(tnp.where(ratio, lo, 1.0), tnp.where(ratio, hi, 1.0)))
    other = tnp.lgamma(lo) + tnp.lgamma(hi) - tnp.lgamma(s)
    other = tnp.where(hi == np.inf, tnp.where(lo == np.inf, np.nan, tnp.where(
        lo > 0, -np.inf, np.inf)), other)
    value = tnp.where(stirling | ratio, value, other)
    return tnp.where(pole & ~finite, np.inf, value)


def _nonpositive_integer(v):
    return (v <= 0) & (v == tnp.floor(v))


@_in_float64
def entr(x):
    """-x log(x) for x > 0, 0 at 0, -inf below (nan stays nan), as scipy's (within 4e-16);
    its derivative is -log(x) - 1 (0 at 0, where jax's is inf)."""
    xs = tnp.where(x > 0, x, 1.0)
    return tnp.where(x > 0, -xs * tnp.log(xs), tnp.where(x == 0, 0.0, tnp.where(
        x < 0, -np.inf, x)))


def _positive_pair(x, y):
    """(both, xs, ys): where x > 0 and y > 0, and x, y there (1 elsewhere)."""
    both = (x > 0) & (y > 0)
    return both, tnp.where(both, x, 1.0), tnp.where(both, y, 1.0)


@_in_float64
def rel_entr(x, y):
    """x log(x / y) for x, y > 0 (x log1p((x - y) / y) where x / y is within (1/2, 2), and
    x (log x - log y) where x / y over- or underflows: scipy's three forms), 0 for x = 0 and
    y >= 0, inf elsewhere, nan where either is nan; within 4.5e-16 of scipy.  Its
    derivatives are log(x / y) + 1 and -x / y."""
    both, xs, ys = _positive_pair(x, y)
    ratio = xs / ys
    close = (ratio > 0.5) & (ratio < 2.0)
    normal = (ratio >= np.finfo(np.float64).tiny) & (ratio < np.inf)
    safe = tnp.where(normal & ~close, ratio, 1.0)
    value = tnp.where(close, xs * tnp.log1p((xs - ys) / ys),
                      tnp.where(normal, xs * tnp.log(safe), xs * (tnp.log(xs) - tnp.log(ys))))
    edge = tnp.where((x == 0) & (y >= 0), 0.0, np.inf)
    return tnp.where(tnp.isnan(x) | tnp.isnan(y), np.nan, tnp.where(both, value, edge))


@_in_float64
def kl_div(x, y):
    """x log(x / y) - x + y for x, y > 0 (that expression, as scipy's: it overflows with
    x / y and cancels where x ~ y, as scipy's does), y for x = 0 and y >= 0, inf elsewhere,
    nan where either is nan: within 2e-16 (|x log(x / y)| + x + y) of scipy.  Its
    derivatives are log(x / y) and 1 - x / y."""
    both, xs, ys = _positive_pair(x, y)
    value = xs * tnp.log(xs / ys) - xs + ys
    edge = tnp.where((x == 0) & (y >= 0), y, np.inf)
    return tnp.where(tnp.isnan(x) | tnp.isnan(y), np.nan, tnp.where(both, value, edge))


@_in_float64
def log_expit(x):
    """log(expit(x)) = -log1p(exp(-x)) for x >= 0 and x - log1p(exp(x)) below, as scipy's:
    no overflow, accurate in both tails (within 3e-16 of scipy).  Its derivative is
    expit(-x)."""
    e = tnp.exp(-tnp.abs(x))
    return tnp.where(x < 0, x - tnp.log1p(e), -tnp.log1p(e))


def _bessel_scaled(x, small, large, odd):
    """exp(-|x|) I(x) from Cephes' Chebyshev expansions (numpy.i0's for order 0) on |x| <= 8
    (times |x| for order 1) and beyond (over sqrt|x|), the order-1 function odd."""
    z = tnp.abs(x)
    zn, zf = tnp.where(z <= 8.0, z, 8.0), tnp.where(z <= 8.0, 8.0, z)
    near = _chbevl(zn * 0.5 - 2.0, small)
    near = near * zn if odd else near
    far = _chbevl(32.0 / zf - 2.0, large) / tnp.sqrt(zf)
    value = tnp.where(z <= 8.0, near, far)  # nan: the far side
    return tnp.where(x < 0, -value, value) if odd else value


# Cephes' Chebyshev coefficients for exp(-x) I1(x) / x on [0, 8] and exp(-x) sqrt(x) I1(x)
# on [8, inf) (in 32/x - 2)
_I1A = (
    2.77791411276104639959E-18, -2.11142121435816608115E-17, 1.55363195773620046921E-16,
    -1.10559694773538630805E-15, 7.60068429473540693410E-15, -5.04218550472791168711E-14,
    3.22379336594557470981E-13, -1.98397439776494371520E-12, 1.17361862988909016308E-11,
    -6.66348972350202774223E-11, 3.62559028155211703701E-10, -1.88724975172282928790E-9,
    9.38153738649577178388E-9, -4.44505912879632808065E-8, 2.00329475355213526229E-7,
    -8.56872026469545474066E-7, 3.47025130813767847674E-6, -1.32731636560394358279E-5,
    4.78156510755005422638E-5, -1.61760815825896745588E-4, 5.12285956168575772895E-4,
    -1.51357245063125314899E-3, 4.15642294431288815669E-3, -1.05640848946261981558E-2,
    2.47264490306265168283E-2, -5.29459812080949914269E-2, 1.02643658689847095384E-1,
    -1.76416518357834055153E-1, 2.52587186443633654823E-1)
_I1B = (
    7.51729631084210481353E-18, 4.41434832307170791151E-18, -4.65030536848935832153E-17,
    -3.20952592199342395980E-17, 2.96262899764595013876E-16, 3.30820231092092828324E-16,
    -1.88035477551078244854E-15, -3.81440307243700780478E-15, 1.04202769841288027642E-14,
    4.27244001671195135429E-14, -2.10154184277266431302E-14, -4.08355111109219731823E-13,
    -7.19855177624590851209E-13, 2.03562854414708950722E-12, 1.41258074366137813316E-11,
    3.25260358301548823856E-11, -1.89749581235054123450E-11, -5.58974346219658380687E-10,
    -3.83538038596423702205E-9, -2.63146884688951950684E-8, -2.51223623787020892529E-7,
    -3.88256480887769039346E-6, -1.10588938762623716291E-4, -9.76109749136146840777E-3,
    7.78576235018280120474E-1)


@_in_float64
def i0e(x):
    """exp(-|x|) I0(x), Cephes' expansions as scipy's (its values; 0 at +-inf).  Its
    derivative is i1e(x) - sign(x) i0e(x) (to 1e-14)."""
    return _bessel_scaled(x, _I0A, _I0B, odd=False)


@_in_float64
def i1e(x):
    """exp(-|x|) I1(x), Cephes' expansions as scipy's (its values; +-0 at +-inf).  Its
    derivative is i0e(x) - i1e(x) (1/x + sign(x)) (to 1e-14)."""
    return _bessel_scaled(x, _I1A, _I1B, odd=True)


@_in_float64
def i1(x):
    """The modified Bessel function of the first kind of order 1: exp(|x|) i1e(x), as scipy's
    (Cephes'; within 4.5e-16 of it); nan at +-inf, as scipy's.  Its derivative is
    i0(x) - i1(x)/x."""
    return i1e(x) * tnp.exp(tnp.abs(x))


def _trigamma(x):
    """psi'(x), digamma's derivative in tracegrad's primitives (ir/gamma.py); inf at the
    poles 0, -1, ... and at -inf (scipy's polygamma(1, -inf)), 0 at inf."""
    return tnp.where(x == -np.inf, np.inf, _gamma_algorithms.trigamma(_GraphOps(), x))


def polygamma(n, x):
    """The n-th derivative of digamma, for n = 0 (digamma) and 1 (trigamma, digamma's own
    derivative rule: ir/gamma.py); n may be an array of them (broadcast with x), known
    (not traced); a non-integer or negative n gives nan, as scipy's.  n >= 2 is not
    offered (NotImplementedError).  Derivatives flow to x only (trigamma's is psi''(x) to
    1e-14).  Trigamma is within 1.1e-15 of scipy; digamma within 5e-16 for x >= 0 (below,
    scipy's psi loses up to 3e-12 next to the poles, tracegrad's stays within 1e-15 of
    mpmath)."""
    nv = concrete_value(n)
    if nv is None:
        raise TypeError("polygamma: n must be known (not a traced value)")
    nv = np.asarray(nv, np.float64)
    if np.any((nv >= 2) & (nv == np.floor(nv))):
        raise NotImplementedError("polygamma: only n = 0 (digamma) and n = 1 (trigamma) "
                                  "are offered")

    @_in_float64
    def of_x(x):
        if nv.ndim == 0 and nv in (0.0, 1.0):
            return tnp.digamma(x) if nv == 0 else _trigamma(x)
        value = tnp.where(nv == 0, tnp.digamma(x), _trigamma(x))
        return tnp.where((nv == 0) | (nv == 1), value, np.nan)
    return of_x(x)


def multigammaln(a, d):
    """log of the multivariate Gamma function, d (d - 1)/4 log(pi) + sum over j < d of
    gammaln(a - j/2), as scipy's (within 1.1e-15 of it); `d` a positive integer, and a
    known `a` must exceed (d - 1)/2 (ValueError, as scipy's; a traced `a` is not
    checked)."""
    if not np.isscalar(d) or np.floor(d) != d:
        raise ValueError("d should be a positive integer (dimension)")
    known = concrete_value(a)
    if known is not None and np.any(known <= 0.5 * (d - 1)):
        raise ValueError(f"condition a ({known}) > 0.5 * (d-1) ({0.5 * (d - 1)}) not met")
    a = _float(a)
    total = tnp.zeros_like(a)
    for j in range(int(d)):
        total = total + tnp.lgamma(a - 0.5 * j)
    return total + (d * (d - 1) * 0.25) * math.log(math.pi)
