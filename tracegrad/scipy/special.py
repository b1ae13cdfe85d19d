"""`scipy.special`'s functions that tracegrad.numpy computes (jax.scipy.special's names).

>>> import numpy as np
>>> from tracegrad.scipy.special import erf, expit, logit
>>> float(expit(0.0)), float(logit(0.5)), float(erf(0.0))
(0.5, 0.0, 0.0)

scipy.special's own ufuncs `erf`, `erfc`, `expit`, `gammaln` and `psi` (`digamma`) also
work on tensors and traced values (`scipy.special.erf(x)` inside `jit`).
"""
from __future__ import annotations

import numpy as np

import tracegrad.numpy as tnp

__all__ = ["erf", "erfc", "gammaln", "digamma", "psi", "expit", "logit", "logsumexp",
           "softmax", "log_softmax", "xlogy", "xlog1py"]



def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """scipy's logsumexp: log(sum(b * exp(a))) over `axis`, stably (the third positional
    argument is `b`, as scipy's, even a bool; tracegrad.numpy's also reads a bool there as
    keepdims)."""
    if isinstance(b, bool):
        b = np.asarray(b, np.float64)
    return tnp.logsumexp(a, axis, b, keepdims, return_sign)

erf, erfc = tnp.erf, tnp.erfc
gammaln, digamma, psi = tnp.lgamma, tnp.digamma, tnp.digamma


def expit(x):
    """1 / (1 + exp(-x)), accurate in both tails."""
    return tnp.sigmoid(x)


def logit(p):
    """log(p / (1 - p)): 2 atanh(2p - 1) for p in [0.25, 0.75], where 2p - 1 is exact and
    log(p) - log1p(-p) would cancel (scipy's choice too), else that difference."""
    p = tnp.asarray(p)
    p = p if np.dtype(p.dtype).kind == "f" else tnp.astype(p, np.float64)
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
