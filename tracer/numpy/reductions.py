"""Reductions: sum, mean, var, std, max, min over NumPy-style axes."""
from __future__ import annotations

import builtins

import numpy as np

from tracegrad.ir import ops

from .. import dtypes
from ._core import (
    _convert, _dtype, _kept_shape, _ndim, _norm_axes, _operand, _reject, _shape,
)
from .elementwise import divide, subtract, uf


def _keep(r, shape, axes, keepdims):
    return ops.reshape(r, _kept_shape(shape, axes)) if keepdims else r


def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Sum over `axis` (None, int or tuple; negatives allowed).

    >>> import numpy as np
    >>> sum(np.arange(6.0).reshape(2, 3), axis=-1, keepdims=True).tolist()
    [[3.0], [12.0]]
    """
    _reject("sum", out=out, initial=initial, where=where)
    a = _operand(a)
    dt = dtypes.check(dtype) if dtype is not None else dtypes.sum_result(_dtype(a))
    a = _convert(a, dt)
    axes = _norm_axes(axis, _ndim(a))
    return _keep(ops.reduce_sum(a, axes), _shape(a), axes, keepdims)


def _count(shape, axes) -> int:
    return int(np.prod([shape[i] for i in axes], dtype=np.int64))


def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """Arithmetic mean; integer inputs give float64, as in NumPy."""
    _reject("mean", out=out, where=where)
    a = _operand(a)
    dt = dtypes.check(dtype) if dtype is not None else dtypes.float_result(_dtype(a))
    axes = _norm_axes(axis, _ndim(a))
    total = sum(_convert(a, dt), axis=axes, keepdims=keepdims)
    return divide(total, float(_count(_shape(a), axes)))


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None):
    """Variance, mean((a - mean(a))**2) with `ddof` degrees of freedom removed."""
    _reject("var", out=out, where=where)
    a = _operand(a)
    dt = dtypes.check(dtype) if dtype is not None else dtypes.float_result(_dtype(a))
    a = _convert(a, dt)
    axes = _norm_axes(axis, _ndim(a))
    d = subtract(a, mean(a, axis=axes, keepdims=True))
    n = builtins.max(_count(_shape(a), axes) - ddof, 0)
    return divide(sum(ops.integer_pow(d, 2), axis=axes, keepdims=keepdims), float(n))


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None):
    """Standard deviation, sqrt(var)."""
    return uf.sqrt(var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, where=where))


def _extremum(name, prim):
    def f(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        _reject(name, out=out, initial=initial, where=where)
        a = _operand(a)
        axes = _norm_axes(axis, _ndim(a))
        r = ops.bind(prim, a, axes=axes) if axes else a
        return _keep(r, _shape(a), axes, keepdims)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"Reduce with `{name}` over `axis`; the gradient is shared evenly by the "
                 "entries that attain it.")
    return f


max = amax = _extremum("max", "reduce_max")
min = amin = _extremum("min", "reduce_min")


__all__ = ["sum", "mean", "var", "std", "max", "amax", "min", "amin"]

NUMPY = {np.sum: sum, np.mean: mean, np.var: var, np.std: std, np.max: max, np.amax: max,
         np.min: min, np.amin: min}

# ufunc.reduce methods we offer, as the reductions they are.
UFUNC_REDUCE = {np.add: sum, np.maximum: max, np.minimum: min}
