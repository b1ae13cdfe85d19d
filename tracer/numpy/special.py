"""Special functions, one primitive each: erf, erfc, lgamma (scipy's gammaln), digamma
(scipy's psi), as jax.scipy.special and torch name them, and the functions `scipy.special`
ufuncs map to on tracegrad arrays (`SCIPY_UFUNCS`).

>>> import numpy as np
>>> from tracegrad.tracer import numpy as tnp
>>> float(tnp.erf(0.5)), float(tnp.erfc(10.0))
(0.5204998778130465, 2.088487583762545e-45)
>>> float(tnp.lgamma(5.0)), float(tnp.digamma(1.0))   # log(24), -Euler's gamma
(3.1780538303479458, -0.5772156649015329)
"""
from __future__ import annotations

from tracegrad.ir import PRIMITIVES

from .composites import sigmoid
from .dispatch import scipy_special_name
from .elementwise import _float_unary

erf, erfc, lgamma, digamma = (_float_unary(PRIMITIVES[name], name)
                               for name in ("erf", "erfc", "lgamma", "digamma"))

__all__ = ["erf", "erfc", "lgamma", "digamma"]  # scipy's names: tracegrad.scipy.special
NUMPY: dict = {}  # numpy has neither; scipy.special's ufuncs below

# scipy.special's ufuncs by name -> what computes them on tracegrad arrays
SCIPY_UFUNCS = {"erf": erf, "erfc": erfc, "expit": sigmoid, "gammaln": lgamma, "psi": digamma}


def scipy_ufunc(ufunc):
    """Our function for `ufunc` when it is scipy.special's ufunc of a name in SCIPY_UFUNCS,
    else None."""
    return SCIPY_UFUNCS.get(scipy_special_name(ufunc))
