"""Constructors: asarray, the *_like family, zeros/ones/full, arange, eye."""
from __future__ import annotations

import builtins
import operator

import numpy as np

from tracegrad.ir import PRIMITIVES, ops

from .. import dtypes
from ._core import (
    _convert, _dtype, _fresh, _operand, _shape, _symbolic, is_boxed,
)
from .shapes import expand_dims, moveaxis, stack


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
        x = dtypes.computed(np.asarray(a))
    return x if dtype is None else _convert(x, dtypes.check(dtype))


def array(a, dtype=None, *, copy=True, order=None, subok=False, ndmin=0, like=None):
    """An array from `a` with at least `ndmin` dimensions (new axes in front, as in NumPy)."""
    x = asarray(a, dtype)
    x = np.array(x, copy=True) if copy and isinstance(x, np.ndarray) else x
    missing = operator.index(ndmin) - len(_shape(x))
    return ops.reshape(x, (1,) * missing + _shape(x)) if missing > 0 else x


def asanyarray(a, dtype=None, order=None, *, like=None):
    return asarray(a, dtype)


def astype(x, dtype, /, *, copy=True):
    x = _operand(x)
    out = _convert(x, dtypes.check(dtype))
    return _fresh(out, x) if copy else out


def _filled_like(like, value, dtype, shape=None):
    like = _operand(like)
    dt = dtypes.check(dtype) if dtype is not None else _dtype(like)
    shape = _shape(like) if shape is None else _static_shape("shape", shape)
    if is_boxed(value) or _symbolic(value) is not None:
        return ops.broadcast(_convert(_operand(value), dt), shape)
    return constant_like(like, np.asarray(value, dt), shape)


def constant_like(like, value: np.ndarray, shape) -> object:
    """The constant `value` broadcast to `shape`, of `like`'s kind: a tensor for a
    tensor, a traced value for a traced one, else a numpy array."""
    trace = ops.find_trace([like])
    if trace is None:
        return np.array(np.broadcast_to(value, shape))
    # Bound in `like`'s trace so that the result is of its kind (tensor, traced value).
    return trace.process(PRIMITIVES["broadcast"], (value,), {"shape": tuple(shape)})


def zeros_like(a, dtype=None, order="K", subok=True, shape=None):
    """Zeros of a's shape (or `shape`) and dtype, of a's kind (a tensor for a tensor)."""
    return _filled_like(a, 0, dtype, shape)


def ones_like(a, dtype=None, order="K", subok=True, shape=None):
    return _filled_like(a, 1, dtype, shape)


def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None):
    return _filled_like(a, fill_value, dtype, shape)


def empty_like(prototype, dtype=None, order="K", subok=True, shape=None):
    """Zeros: tracegrad gives uninitialized arrays a defined value (deterministic programs)."""
    return _filled_like(prototype, 0, dtype, shape)


def _static_shape(op, shape) -> tuple:
    if _contains_boxed(shape):
        raise TypeError(f"{op}: the shape must be static (Python ints), not a traced value; "
                        "use zeros_like/full_like of an array of the wanted shape")
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return tuple(operator.index(d) for d in shape)


def zeros(shape, dtype=float, order="C", *, like=None):
    return np.zeros(_static_shape("zeros", shape), dtypes.check(dtype))


def ones(shape, dtype=float, order="C", *, like=None):
    return np.ones(_static_shape("ones", shape), dtypes.check(dtype))


def empty(shape, dtype=float, order="C", *, like=None):
    """Zeros (see empty_like)."""
    return np.zeros(_static_shape("empty", shape), dtypes.check(dtype))


def full(shape, fill_value, dtype=None, order="C", *, like=None):
    """`shape` filled with `fill_value`; a traced `fill_value` gives a traced array."""
    shape = _static_shape("full", shape)
    if _contains_boxed(fill_value):
        v = asarray(fill_value, dtype)
        return ops.broadcast(v, np.broadcast_shapes(_shape(v), shape))
    dt = dtypes.check(dtype if dtype is not None else np.asarray(fill_value).dtype)
    return np.full(shape, fill_value, dt)


def arange(*args, dtype=None, like=None, **kwargs):
    """NumPy's arange; the bounds must be static (the length of an array is)."""
    if _contains_boxed(list(args) + list(kwargs.values())):
        raise TypeError("arange: start, stop and step must be static (Python or NumPy numbers), "
                        "not traced values: an array's length cannot depend on traced data; "
                        "use arange(n) * step + start with static n")
    out = np.arange(*args, dtype=dtype, **kwargs)
    dtypes.check(out.dtype)
    return out


def eye(N, M=None, k=0, dtype=float, order="C", *, like=None):
    return np.eye(N, M, k, dtype=dtypes.check(dtype))


def identity(n, dtype=None, *, like=None):
    return np.identity(n, dtype=dtypes.check(dtype if dtype is not None else float))


# ---- evenly spaced values -----------------------------------------------------------------

def _count(op, num) -> int:
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"{op}: number of samples, {num}, must be non-negative")
    return num


def _floor_int(y, dt):
    # floor for integer dtypes (NumPy floors linspace's values): truncate, then step
    # down where truncation went up (negative non-integers).
    t = ops.convert(y, dt)
    up = ops.convert(ops.gt(ops.convert(t, _dtype(y)), y), dt)
    return ops.sub(t, up)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *,
             device=None):
    """`num` evenly spaced values from `start` to `stop`; traced (and array) bounds give a
    traced result computed as NumPy does: start + i * ((stop - start) / div)."""
    num = _count("linspace", num)
    if not _contains_boxed([start, stop]):
        out = np.linspace(start, stop, num, endpoint, retstep, dtype, axis)
        dtypes.check((out[0] if retstep else out).dtype)
        return out
    ft = dtypes.float_result(dtypes.result_type(start, stop, 1.0))
    a, b = _operand(start), _operand(stop)
    a, b = _convert(a, ft), _convert(b, ft)
    s = np.broadcast_shapes(_shape(a), _shape(b))
    a, b = ops.broadcast(a, s), ops.broadcast(b, s)
    div = num - 1 if endpoint else num
    delta = ops.sub(b, a)
    step = ops.div(delta, np.asarray(div, ft)) if div > 0 else ops.mul(delta, np.asarray(np.nan, ft))
    full_shape = (num,) + s
    i = np.arange(num, dtype=ft).reshape((num,) + (1,) * len(s))
    y = ops.mul(ops.broadcast(i, full_shape), ops.broadcast(step if div > 0 else delta, full_shape))
    y = ops.add(y, ops.broadcast(a, full_shape))
    if endpoint and num > 1:
        y = ops.concatenate([ops.slice(y, (0,) * len(full_shape), (1,) * len(full_shape),
                                       (num - 1,) + s), ops.reshape(b, (1,) + s)], 0)
    y = moveaxis(y, 0, axis) if s else y
    y = _cast_result(y, dtype)
    return (y, step) if retstep else y


def _cast_result(y, dtype):
    if dtype is None:
        return y
    dt = dtypes.check(dtype)
    return _floor_int(y, dt) if dt.kind in "iu" else _convert(y, dt)


def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    """base ** linspace(start, stop): evenly spaced on a log scale."""
    if not _contains_boxed([start, stop, base]):
        out = np.logspace(start, stop, num, endpoint, base, dtype, axis)
        dtypes.check(out.dtype)
        return out
    from .elementwise import power
    y = linspace(start, stop, num, endpoint, axis=axis)
    # a scalar base is weak (a Python float): the result keeps linspace's float dtype
    b = _operand(base) if _contains_boxed(base) else (
        float(base) if np.ndim(base) == 0 else np.asarray(base))
    if np.ndim(b) if not _contains_boxed(b) else len(_shape(b)):
        b = expand_dims(b, axis)
    return _cast_result(power(b, y), dtype)


def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """Evenly spaced on a log scale between the endpoints themselves (same sign, non-zero);
    the endpoints are exact, as in NumPy."""
    if not _contains_boxed([start, stop]):
        out = np.geomspace(start, stop, num, endpoint, dtype, axis)
        dtypes.check(out.dtype)
        return out
    from .elementwise import divide, multiply, sign, uf
    num = _count("geomspace", num)
    # NumPy computes in result_type(start, stop, float, dtype): float64 unless dtype says
    ft = dtypes.float_result(np.promote_types(dtypes.result_type(start, stop, 1.0),
                                              dtypes.check(dtype if dtype is not None else float)))
    a, b = _convert(_operand(start), ft), _convert(_operand(stop), ft)
    sgn = sign(a)
    a, b = divide(a, sgn), divide(b, sgn)
    ln10 = float(np.log(10.0))  # weak: keeps float32 bounds float32
    y = logspace(divide(uf.log(a), ln10), divide(uf.log(b), ln10), num, endpoint)
    y = _exact_ends(y, a, b, num, endpoint)
    y = moveaxis(multiply(sgn, y), 0, axis) if _shape(y)[1:] else multiply(sgn, y)
    return _cast_result(y, dtype)


def _exact_ends(y, a, b, num, endpoint):
    s = _shape(y)
    rest = s[1:]
    if num == 0:
        return y
    parts = [ops.reshape(ops.broadcast(a, rest), (1,) + rest)]
    last = 1 if (endpoint and num > 1) else 0
    if num - 1 - last > 0:
        parts.append(ops.slice(y, (1,) + (0,) * len(rest), (1,) * len(s), (num - 1 - last,) + rest))
    if last:
        parts.append(ops.reshape(ops.broadcast(b, rest), (1,) + rest))
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, 0)


# ---- Vandermonde, windows, arrays from functions and buffers --------------------------------

def vander(x, N=None, increasing=False):
    """Columns of powers of the 1-D `x` (decreasing unless `increasing`), as repeated products."""
    from .elementwise import multiply
    x = _operand(x)
    x = _convert(x, dtypes.check(np.promote_types(_dtype(x), np.int64)))  # NumPy's dtype
    if len(_shape(x)) != 1:
        raise ValueError("vander: x must be a one-dimensional array or sequence")
    n = _shape(x)[0] if N is None else operator.index(N)
    cols = [ops.broadcast(np.ones((), _dtype(x)), _shape(x))] if n else []
    while len(cols) < n:
        cols.append(multiply(cols[-1], x) if len(cols) > 1 else x)
    if not cols:
        return ops.broadcast(np.zeros((), _dtype(x)), _shape(x) + (0,))
    return stack(cols if increasing else cols[::-1], axis=1)


def _window(name):
    f = getattr(np, name)

    def window(M, *args):
        return f(M, *args)
    window.__name__ = window.__qualname__ = name
    window.__doc__ = f"NumPy's {name} window (a constant)."
    return window


bartlett, blackman, hamming, hanning, kaiser = (
    _window(n) for n in ("bartlett", "blackman", "hamming", "hanning", "kaiser"))


def fromfunction(function, shape, *, dtype=float, like=None, **kwargs):
    """function(*indices): the coordinate arrays are constants, the result is whatever
    `function` computes from them (traced when it uses traced values)."""
    return function(*np.indices(shape, dtype=dtypes.check(dtype)), **kwargs)


def fromiter(iter, dtype, count=-1, *, like=None):
    items = list(iter)
    items = items if count < 0 else items[:count]
    if count >= 0 and len(items) < count:
        raise ValueError(f"fromiter: iterator too short: {len(items)} < {count} items")
    return asarray(items, dtype) if items else np.zeros(0, dtypes.check(dtype))


def frombuffer(buffer, dtype=float, count=-1, offset=0, *, like=None):
    return np.frombuffer(buffer, dtypes.check(dtype), count, offset).copy()


__all__ = ["asarray", "array", "asanyarray", "astype", "zeros_like", "ones_like", "full_like",
           "empty_like", "zeros", "ones", "empty", "full", "arange", "eye", "identity",
           "linspace", "logspace", "geomspace", "vander", "bartlett", "blackman", "hamming",
           "hanning", "kaiser", "fromfunction", "fromiter", "frombuffer"]

NUMPY = {np.zeros_like: zeros_like, np.ones_like: ones_like, np.full_like: full_like,
         np.empty_like: empty_like, np.array: array, np.asarray: asarray,
         np.asanyarray: asanyarray, np.astype: astype, np.linspace: linspace,
         np.logspace: logspace, np.geomspace: geomspace, np.vander: vander}
