"""The primitive-binding layer (JAX's `lax`): one small function per primitive.

`bind` applies a primitive to whatever its operands are.  Boxed values (eager
tensors, traced values) carry a `_tg_trace` object with a `level` and a
`process(prim, args, params)` method; the operand with the highest level
decides.  Plain numpy arrays and Python scalars are evaluated with the numpy
reference implementation.  The autodiff rules in `rules.py` are written
against these functions, so the same rules serve eager autograd (numpy or
tensors) and the IR autodiff pass (traced values).
"""
from __future__ import annotations

import numpy as np

from .core import aval_of
from .primitives import PRIMITIVES


def find_trace(args):
    best = None
    for a in args:
        t = getattr(a, "_tg_trace", None)
        if t is not None and (best is None or t.level > best.level):
            best = t
    return best


def bind(name, *args, **params):
    prim = PRIMITIVES[name]
    trace = find_trace(args)
    if trace is None:
        return prim.impl(*args, **params)
    return trace.process(prim, args, params)


def aval(x):
    """Shape and dtype of a boxed value, numpy array or scalar."""
    a = getattr(x, "aval", None)
    if a is not None:
        return a
    return aval_of(x)


def shape(x):
    # numpy arrays are the hot case in eager backward: skip building a ShapedArray
    return x.shape if isinstance(x, np.ndarray) else aval(x).shape


def dtype(x):
    return x.dtype if isinstance(x, np.ndarray) else aval(x).dtype


def _unary(name):
    def f(x):
        return bind(name, x)
    f.__name__ = name
    return f


def _binary(name):
    def f(x, y):
        return bind(name, x, y)
    f.__name__ = name
    return f


neg, exp, log, log1p, expm1, sqrt, sin, cos, tanh, abs, sign = map(
    _unary, ["neg", "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tanh", "abs", "sign"])
add, sub, mul, div, pow, max, min = map(
    _binary, ["add", "sub", "mul", "div", "pow", "max", "min"])
lt, le, gt, ge, eq, ne = map(_binary, ["lt", "le", "gt", "ge", "eq", "ne"])
logical_and, logical_or = _binary("and"), _binary("or")
logical_not = _unary("not")
stop_gradient = _unary("stop_gradient")


def integer_pow(x, y: int):
    return bind("integer_pow", x, y=int(y))


def where(c, x, y):
    return bind("where", c, x, y)


def convert(x, dtype):
    dt = np.dtype(dtype)
    return x if _is_boxed_or_array(x) and aval(x).dtype == dt else bind("convert", x, dtype=dt)


def _is_boxed_or_array(x):
    return hasattr(x, "_tg_trace") or isinstance(x, np.ndarray)


def _reducer(name):
    def f(x, axes):
        axes = tuple(sorted(set(int(a) for a in axes)))
        if not axes:
            return x
        return bind(name, x, axes=axes)
    f.__name__ = name
    return f


reduce_sum, reduce_max, reduce_min = map(_reducer, ["reduce_sum", "reduce_max", "reduce_min"])


def broadcast(x, shape_):
    shape_ = tuple(int(d) for d in shape_)
    return x if aval(x).shape == shape_ else bind("broadcast", x, shape=shape_)


def reshape(x, shape_):
    shape_ = tuple(int(d) for d in shape_)
    return x if aval(x).shape == shape_ else bind("reshape", x, shape=shape_)


def transpose(x, perm):
    perm = tuple(int(p) for p in perm)
    return x if perm == tuple(range(len(perm))) else bind("transpose", x, perm=perm)


def slice(x, starts, steps, sizes):
    return bind("slice", x, starts=tuple(starts), steps=tuple(steps), sizes=tuple(sizes))


def pad(x, starts, steps, shape_):
    return bind("pad", x, starts=tuple(starts), steps=tuple(steps), shape=tuple(shape_))


def concatenate(xs, axis):
    return bind("concatenate", *xs, axis=int(axis))


def dot(x, y):
    return bind("dot", x, y)


def zeros(shape_, dtype_):
    return np.zeros(shape_, dtype_)


def full_like(x, value):
    a = aval(x)
    return broadcast(np.asarray(value, a.dtype), a.shape)


def sum_to_shape(g, shape_):
    """The one central helper reducing a broadcast gradient back to `shape_`.

    Leading axes that broadcasting added are summed away; axes where the
    original had size 1 are summed and kept as size 1.
    """
    gshape = aval(g).shape
    shape_ = tuple(shape_)
    if gshape == shape_:
        return g
    lead = len(gshape) - len(shape_)
    axes = list(range(lead)) + [lead + i for i, d in enumerate(shape_) if d == 1 and gshape[lead + i] != 1]
    return reshape(reduce_sum(g, axes), shape_)
