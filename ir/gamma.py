"""lgamma, digamma and trigamma in float64, written once against an operations object `o`,
so that one algorithm gives the primitives' eager values on numpy arrays (`NUMPY`), their
native code (codegen/mathlib.py supplies LLVM operations) and trigamma as graph operations
(`ir.ops`: digamma's derivative, so that derivatives of every order exist).

`o` provides c(v) (a constant), add, sub, mul, div, sel(cond, a, b), lt, ge, eq
(comparisons), log, log1p, sin, cos, rint, floor, abs and isinf.

Each function is piecewise, every piece computed and one selected per element (so that
vector code has no branch).  Arguments y >= 10 take the asymptotic (Stirling) series in
w = 1/y^2, its terms up to B_16 (the next is below 1e-17 relative).  Below 10 the
recurrences Gamma(y+1) = y Gamma(y) and psi(y+1) = psi(y) + 1/y bring y into a base
interval, with steps y - j that are exact: lgamma(2 + t) = t R(t) on t in [-1/2, 1] and
psi(y) = (y - x0) S(y) on [1, 2], x0 = 1.4616... digamma's positive zero as two doubles,
R and S Chebyshev interpolants (mpmath, 50 digits, 1e-19) as monomials in their interval's
affine map.  Factoring out the zeros (lgamma's at 1 and 2, with log1p(y - 1)) keeps the
relative accuracy there.  Below 0 the reflection formulas (Gamma(x) Gamma(1-x) =
pi / sin(pi x), psi(1-x) - psi(x) = pi cot(pi x), psi1(x) + psi1(1-x) = pi^2 / sin^2(pi x))
take sin and cos of pi r, r = x - rint(x) (exact); near digamma's and lgamma's negative
zeros their error is absolute (a few 1e-16 times the terms, which cancel there).

Special values (scipy's gammaln/psi and C99's lgamma): lgamma is +inf at 0, -0.0, the
negative integers and +-inf; digamma is -inf at +0.0, +inf at -0.0 and +inf, nan at the
negative integers and -inf; trigamma is +inf at 0 and the negative integers.
"""
from __future__ import annotations

import math

import numpy as np

SHIFT = 10.0  # the asymptotic series from here
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
LOG_PI = math.log(math.pi)
DIGAMMA_X0 = (1.4616321449683622, 9.549995429965697e-17)  # psi's positive zero, hi + lo
# the asymptotic series' coefficients of w^k, w = 1/y^2 (Bernoulli numbers B_2 .. B_16)
LGAMMA_Q = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156,
            -3617 / 122400)  # B_2k / (2k (2k-1)): lgamma = ... + Q(w) / y
DIGAMMA_P = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12,
             -3617 / 8160)  # B_2k / 2k: digamma = log y - 1/(2y) - w P(w)
TRIGAMMA_R = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6,
              -3617 / 510)  # B_2k: trigamma = 1/y + 1/(2y^2) + R(w) / y^3
# LGAMMA_R(s) ~ lgamma(2 + t) / t, s = (4t - 1) / 3 on t in [-1/2, 1];
# DIGAMMA_S(s) ~ psi(y) / (y - x0), s = 2y - 3 on y in [1, 2]
LGAMMA_R = (0.4994868595695864, 0.21917882116244464, -0.03054116466683435,
    0.006196636568244215, -0.001475284220188305, 0.00038321988003418834,
    -0.0001050368107005937, 2.9836329731462573e-05, -8.690384882863539e-06,
    2.5781212876535733e-06, -7.755372639940262e-07, 2.3583257961661648e-07,
    -7.23366991184831e-08, 2.2344383286174642e-08, -6.9427377351207674e-09,
    2.168762666727641e-09, -6.801016508760783e-10, 2.128279385952417e-10,
    -6.719696656717626e-11, 2.248825652267228e-11, -7.144072292505968e-12,
    1.5135770594006106e-12, -4.809722891858045e-13, 4.299271436750838e-13,
    -1.3787758675569473e-13)
DIGAMMA_S = (0.9510558760318328, -0.21181371064073024, 0.06013562106019673,
    -0.01855061538173966, 0.005936795278307164, -0.001935066664741276,
    0.0006368880302864755, -0.00021074841280927333, 6.99501892077337e-05,
    -2.32582331094511e-05, 7.741229128505858e-06, -2.578131716100528e-06,
    8.589251863098652e-07, -2.862193104653834e-07, 9.53885212905258e-08,
    -3.179037042138413e-08, 1.0596076826917857e-08, -3.53601505743959e-09,
    1.178643219581012e-09, -3.87559467334894e-10, 1.2918535196059924e-10,
    -4.771931207635686e-11, 1.5906391763896165e-11, -2.651066990840664e-12,
    8.836872511698434e-13, -1.178246894522134e-12, 3.927488691994595e-13)


def _poly(o, x, coeffs):
    acc = o.c(coeffs[-1])
    for ck in reversed(coeffs[:-1]):
        acc = o.add(o.mul(acc, x), o.c(ck))
    return acc


def _reflected(o, x):
    """(negative, shifted, y, r): x < 0; -1/2 < x < 0, where one step of the recurrence
    replaces the reflection (pi x would lose digits as a subnormal); the positive branch's
    argument (1 - x, or x + 1 where shifted); and r = x - rint(x) in [-1/2, 1/2] (exact),
    whose sin and cos are pi x's up to sign."""
    negative = o.lt(x, o.c(0.0))
    shifted = o.lt(o.c(-0.5), x)  # (and negative)
    y = o.sel(negative, o.sel(shifted, o.add(x, o.c(1.0)), o.sub(o.c(1.0), x)), x)
    return negative, shifted, y, o.sub(x, o.rint(x))


def _steps_down(o, y, base, count):
    """[(y - j >= base, y - j), j = 1 .. count]: the steps of the recurrence from y down to
    its base interval [base, base + 1) (exact differences), and whether y takes step j."""
    steps = [o.sub(y, o.c(float(j))) for j in range(1, count + 1)]
    return [(o.ge(step, o.c(base)), step) for step in steps]


def _lgamma_pos(o, y):
    """lgamma(y) for y >= 0 (y = +-0: inf)."""
    frac = o.sub(y, o.floor(y))
    below_half, below_two, below_three = (o.lt(y, o.c(v)) for v in (0.5, 1.5, 3.0))
    far = o.ge(y, o.c(SHIFT))
    # t R(t) = lgamma(2 + t), t = y (y < 1/2), y - 1 (y < 3/2), y - 2 (y < 3), frac(y) (y < 10):
    # the zeros at 1 and 2 are t = 0 of the middle two pieces
    t = o.sel(below_half, y, o.sel(below_two, o.sub(y, o.c(1.0)),
                                   o.sel(below_three, o.sub(y, o.c(2.0)), frac)))
    base = o.mul(t, _poly(o, o.div(o.sub(o.mul(o.c(4.0), t), o.c(1.0)), o.c(3.0)), LGAMMA_R))
    product = o.c(1.0)
    for taken, factor in _steps_down(o, y, 2.0, 7):
        product = o.mul(product, o.sel(taken, factor, o.c(1.0)))
    # one log for the far series' log y, the factors y (y + 1) below 1/2 and the product
    arg = o.sel(far, y, o.sel(below_half, o.mul(y, o.add(y, o.c(1.0))), product))
    log_arg = o.log(arg)
    w = o.div(o.c(1.0), o.mul(y, y))
    series = o.add(o.sub(o.mul(o.sub(y, o.c(0.5)), log_arg), y),
                   o.add(o.c(HALF_LOG_2PI), o.div(_poly(o, w, LGAMMA_Q), y)))
    near = o.sel(below_half, o.sub(base, log_arg),
                 o.sel(below_two, o.sub(base, o.log1p(t)),
                       o.sel(below_three, base, o.add(base, log_arg))))
    return o.sel(far, series, near)


def lgamma(o, x):
    """log|Gamma(x)|."""
    negative, shifted, y, r = _reflected(o, x)
    positive = _lgamma_pos(o, y)
    sin = o.abs(o.sin(o.mul(o.c(math.pi), r)))
    log_term = o.log(o.sel(shifted, o.sub(o.c(0.0), x), sin))  # log|x| or log|sin(pi x)|
    reflected = o.sel(shifted, o.sub(positive, log_term),
                      o.sub(o.sub(o.c(LOG_PI), log_term), positive))
    pole = o.eq(r, o.c(0.0))  # the negative integers (every x < 0 from 2^52 on)
    return o.sel(o.isinf(x), o.c(math.inf),
                 o.sel(negative, o.sel(pole, o.c(math.inf), reflected), positive))


def _digamma_pos(o, y):
    """psi(y) for y >= 0 (+0: -inf, -0.0: +inf)."""
    below_one, below_two = o.lt(y, o.c(1.0)), o.lt(y, o.c(2.0))
    far = o.ge(y, o.c(SHIFT))
    # the base interval [1, 2): y + 1 below 1 (then - 1/y), 1 + frac(y) from 2 (then + terms)
    b = o.sel(below_one, o.add(y, o.c(1.0)),
              o.sel(below_two, y, o.add(o.sub(y, o.floor(y)), o.c(1.0))))
    s = o.sub(o.mul(o.c(2.0), b), o.c(3.0))
    base = o.mul(o.sub(o.sub(b, o.c(DIGAMMA_X0[0])), o.c(DIGAMMA_X0[1])), _poly(o, s, DIGAMMA_S))
    terms = o.c(0.0)
    for taken, step in reversed(_steps_down(o, y, 1.0, 8)):  # the small terms first
        terms = o.add(terms, o.sel(taken, o.div(o.c(1.0), step), o.c(0.0)))
    near = o.sel(below_one, o.sub(base, o.div(o.c(1.0), y)),
                 o.sel(below_two, base, o.add(base, terms)))
    w = o.div(o.c(1.0), o.mul(y, y))
    series = o.sub(o.sub(o.log(y), o.div(o.c(0.5), y)), o.mul(w, _poly(o, w, DIGAMMA_P)))
    return o.sel(far, series, near)


def digamma(o, x):
    """psi(x) = Gamma'(x) / Gamma(x)."""
    negative, shifted, y, r = _reflected(o, x)
    positive = _digamma_pos(o, y)
    pr = o.mul(o.c(math.pi), r)
    cot = o.div(o.mul(o.c(math.pi), o.cos(pr)), o.sin(pr))
    reflected = o.sel(shifted, o.sub(positive, o.div(o.c(1.0), x)),
                      o.sel(o.eq(r, o.c(0.0)), o.c(math.nan), o.sub(positive, cot)))
    return o.sel(negative, reflected, positive)


def trigamma(o, x):
    """psi'(x)."""
    negative, shifted, y, r = _reflected(o, x)
    small = o.lt(y, o.c(SHIFT))
    z = o.sel(small, o.add(y, o.c(SHIFT)), y)
    iz = o.div(o.c(1.0), z)
    w = o.mul(iz, iz)
    series = o.add(o.add(iz, o.mul(o.c(0.5), w)), o.mul(o.mul(w, iz), _poly(o, w, TRIGAMMA_R)))
    terms = o.c(0.0)
    for k in reversed(range(int(SHIFT))):  # the small terms first
        t = o.div(o.c(1.0), o.add(y, o.c(float(k))))
        terms = o.add(terms, o.mul(t, t))
    positive = o.sel(small, o.add(series, terms), series)
    # the unselected branches see harmless arguments (the double-where trick): their
    # infinities at the integers would make trigamma's own derivative nan there
    sin = o.sin(o.mul(o.c(math.pi), o.sel(negative, r, o.c(0.5))))
    near = o.sel(negative, x, o.c(1.0))
    reflected = o.sel(shifted, o.add(positive, o.div(o.c(1.0), o.mul(near, near))),
                      o.sub(o.div(o.c(math.pi * math.pi), o.mul(sin, sin)), positive))
    return o.sel(negative, reflected, positive)


class _NumpyOps:
    """`o` on float64 numpy arrays (callers ignore floating-point errors: the infinities
    and nans are the algorithms' own)."""

    c = staticmethod(np.float64)
    add, sub, mul, div = (staticmethod(f) for f in (np.add, np.subtract, np.multiply,
                                                     np.true_divide))
    sel = staticmethod(np.where)
    lt, ge, eq = staticmethod(np.less), staticmethod(np.greater_equal), staticmethod(np.equal)
    log, log1p, sin, cos = (staticmethod(f) for f in (np.log, np.log1p, np.sin, np.cos))
    rint, floor, abs, isinf = (staticmethod(f) for f in (np.rint, np.floor, np.abs, np.isinf))


NUMPY = _NumpyOps()
