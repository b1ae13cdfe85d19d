"""Special functions, one primitive each: erf, erfc, lgamma (scipy's gammaln), digamma
(scipy's psi), as jax.scipy.special and torch name them, and the functions `scipy.special`
ufuncs map to on tracegrad arrays (`SCIPY_UFUNCS`: these primitives, and by name the
composites of tracegrad.scipy.special, looked up when first called, as that module builds
on this namespace).

>>> import numpy as np
>>> from tracegrad.tracer import numpy as tnp
>>> float(tnp.erf(0.5)), float(tnp.erfc(10.0))
(0.5204998778130465, 2.088487583762545e-45)
>>> float(tnp.lgamma(5.0)), float(tnp.digamma(1.0))   # log(24), -Euler's gamma
(3.1780538303479458, -0.5772156649015329)
"""
from __future__ import annotations

from tracegrad.ir import PRIMITIVES

from .dispatch import scipy_special_name
from .elementwise import _float_unary

erf, erfc, lgamma, digamma = (_float_unary(PRIMITIVES[name], name)
                               for name in ("erf", "erfc", "lgamma", "digamma"))

__all__ = ["erf", "erfc", "lgamma", "digamma"]  # scipy's names: tracegrad.scipy.special
NUMPY: dict = {}  # numpy has neither; scipy.special's ufuncs below

# scipy.special's ufuncs by name -> what computes them on tracegrad arrays (a string: that
# function of tracegrad.scipy.special)
SCIPY_UFUNCS = {"erf": erf, "erfc": erfc, "gammaln": lgamma, "psi": digamma}
SCIPY_UFUNCS.update((name, name) for name in (
    "expit", "logit", "xlogy", "xlog1py", "log_expit", "ndtr", "log_ndtr", "ndtri", "erfinv",
    "gamma", "betaln", "entr", "rel_entr", "kl_div", "i0e", "i1", "i1e"))


def scipy_ufunc(ufunc):
    """Our function for `ufunc` when it is scipy.special's ufunc of a name in SCIPY_UFUNCS,
    else None."""
    fn = SCIPY_UFUNCS.get(scipy_special_name(ufunc))
    if isinstance(fn, str):
        from tracegrad.scipy import special  # builds on this namespace: loaded by now
        fn = getattr(special, fn)
    return fn
