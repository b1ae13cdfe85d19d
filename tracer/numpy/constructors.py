"""Constructors: asarray, the *_like family, zeros/ones/full, arange, eye."""
from __future__ import annotations

import builtins

import numpy as np

from tracegrad.ir import PRIMITIVES, ops

from .. import dtypes
from ._core import (
    _convert, _dtype, _operand, _shape, _symbolic, is_boxed,
)
from .shapes import stack


def _contains_boxed(x) -> bool:
    if isinstance(x, (list, tuple)):
        return builtins.any(_contains_boxed(e) for e in x)
    return is_boxed(x) or _symbolic(x) is not None


def asarray(a, dtype=None, order=None, *, copy=None):
    """An array from `a`; a boxed `a` stays boxed, sequences of boxed values are stacked."""
    if isinstance(a, (list, tuple)) and _contains_boxed(a):
        return stack([asarray(e, dtype) for e in a]) if a else np.asarray(a)
    if is_boxed(a) or _symbolic(a) is not None:
        x = _operand(a)
    else:
        x = np.asarray(a)
        dtypes.check(x.dtype)
    return x if dtype is None else _convert(x, dtypes.check(dtype))


def array(a, dtype=None, *, copy=True, order=None, ndmin=0):
    x = asarray(a, dtype)
    return np.array(x, copy=True) if copy and isinstance(x, np.ndarray) else x


def astype(x, dtype, /, *, copy=True):
    return _convert(_operand(x), dtypes.check(dtype))


def _filled_like(like, value, dtype):
    like = _operand(like)
    dt = dtypes.check(dtype) if dtype is not None else _dtype(like)
    if is_boxed(value) or _symbolic(value) is not None:
        return ops.broadcast(_convert(_operand(value), dt), _shape(like))
    fill = np.asarray(value, dt)
    trace = ops.find_trace([like])
    if trace is None:
        return np.full(_shape(like), fill)
    # Bound in `like`'s trace so that the result is of its kind (tensor, traced value).
    return trace.process(PRIMITIVES["broadcast"], (fill,), {"shape": _shape(like)})


def zeros_like(a, dtype=None):
    return _filled_like(a, 0, dtype)


def ones_like(a, dtype=None):
    return _filled_like(a, 1, dtype)


def full_like(a, fill_value, dtype=None):
    return _filled_like(a, fill_value, dtype)


def zeros(shape, dtype=float):
    return np.zeros(shape, dtypes.check(dtype))


def ones(shape, dtype=float):
    return np.ones(shape, dtypes.check(dtype))


def full(shape, fill_value, dtype=None):
    dt = dtypes.check(dtype if dtype is not None else np.asarray(fill_value).dtype)
    return np.full(shape, fill_value, dt)


def arange(*args, dtype=None):
    out = np.arange(*args, dtype=dtype)
    dtypes.check(out.dtype)
    return out


def eye(N, M=None, k=0, dtype=float):
    return np.eye(N, M, k, dtype=dtypes.check(dtype))


__all__ = ["asarray", "array", "astype", "zeros_like", "ones_like", "full_like", "zeros", "ones",
           "full", "arange", "eye"]

NUMPY = {np.zeros_like: zeros_like, np.ones_like: ones_like, np.full_like: full_like}
