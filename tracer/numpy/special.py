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

import sys

from tracegrad.ir import PRIMITIVES, ops

from .. import dtypes
from ._core import _convert, _dtype, _operand, _reject
from .composites import sigmoid


def _special_unary(name):
    prim = PRIMITIVES[name]

    def f(x, /, out=None, **unsupported):
        _reject(name, out=out, **unsupported)
        x = _operand(x)
        return ops.bind(name, _convert(x, dtypes.float_result(_dtype(x))))
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"{prim.doc}, elementwise; int and bool inputs compute in float64."
    return f


erf = _special_unary("erf")
erfc = _special_unary("erfc")
lgamma = _special_unary("lgamma")
digamma = _special_unary("digamma")

__all__ = ["erf", "erfc", "lgamma", "digamma"]  # scipy's names: tracegrad.scipy.special
NUMPY: dict = {}  # numpy has neither; scipy.special's ufuncs below

# scipy.special's ufuncs by name -> what computes them on tracegrad arrays
SCIPY_UFUNCS = {"erf": erf, "erfc": erfc, "expit": sigmoid, "gammaln": lgamma, "psi": digamma}


def scipy_ufunc(ufunc):
    """Our function for `ufunc` when it is scipy.special's ufunc of a name in SCIPY_UFUNCS
    (scipy is never imported here: a caller of its ufuncs has imported it), else None."""
    special = sys.modules.get("scipy.special")
    name = getattr(ufunc, "__name__", None)
    if special is None or name not in SCIPY_UFUNCS or getattr(special, name, None) is not ufunc:
        return None
    return SCIPY_UFUNCS[name]
