"""What every family of `tracegrad.numpy` shares: operands as `ir.ops` accepts
them, NumPy promotion and broadcasting made explicit, axis normalization and
errors that name the user's line."""
from __future__ import annotations

import operator

import numpy as np

from tracegrad.ir import GraphBuilder, ShapeError, ops, user_source_location
from tracegrad.ir.primitives import PRIMITIVES

from .. import dtypes


class BroadcastError(ShapeError, ValueError):
    """Operands whose shapes do not fit an operation (a ValueError, as in NumPy)."""


def is_boxed(x) -> bool:
    """An eager tensor or a traced value (anything `ops.bind` dispatches on)."""
    return hasattr(x, "_tg_trace")


def concrete_value(x):
    """`x`'s values as a numpy array where they are known (numpy operands, Python values,
    eager tensors), else None (a traced value has none)."""
    if not is_boxed(x):
        return np.asarray(x)
    data = getattr(x, "_tg_concrete", None)
    return None if data is None else np.asarray(data())


def symbolic_value(x):
    """The traced 0-d value behind a traced Python scalar (None for anything else);
    using it keeps the computation symbolic (no guard).  A scalar from `.item()` is
    detached: its gradient is stopped, as PyTorch's `.item()` gives a constant."""
    sym = getattr(x, "_tg_symbolic", None)
    if sym is not None and getattr(x, "_tg_detached", False):
        return ops.stop_gradient(sym)
    return sym


_symbolic = symbolic_value


def _operand(x):
    """`x` as something `ops` accepts: boxed values as they are, the rest as arrays."""
    sym = _symbolic(x)
    if sym is not None:
        return _convert(sym, dtypes.weak_default(x))
    if is_boxed(x):
        return x
    if isinstance(x, np.ndarray):  # a subclass (an eager loop's LoopArray) as a plain array
        if dtypes.is_masked(x):
            raise TypeError(f"tracegrad.numpy takes no numpy masked array: {dtypes.MASKED_HINT}")
        return dtypes.computed(x if type(x) is np.ndarray else x.view(np.ndarray))
    from .constructors import asarray  # constructors build on this module
    return asarray(x)


def _new_value(x):
    """A new array object of `x`'s values, for functions that copy in NumPy and would
    otherwise hand `x` itself back: `x[i] = v` rebinds a traced value's object in place,
    and must not reach the copy.  Traced, it is an identity the cleaning passes drop."""
    if isinstance(x, np.ndarray):
        return np.array(x, copy=True)
    return ops.bind("reshape", x, shape=_shape(x)) if is_boxed(x) else x


def _fresh(result, x):
    """`result`, or a new value of it where it is the object `x` itself."""
    return _new_value(result) if result is x else result


def _lift(x, dt):
    """`x` as an operand of dtype `dt`; Python scalars become 0-d arrays (literals)."""
    sym = _symbolic(x)
    if sym is not None:
        return _convert(sym, dt)
    if dtypes.is_weak(x):
        return np.asarray(x, dt)
    return _convert(_operand(x), dt)


def _shape(x) -> tuple:
    # Operands past `_operand`/`_lift` are boxed values or numpy arrays: read
    # their attributes instead of building an aval (this is the eager hot path).
    s = getattr(x, "shape", None)
    return s if s is not None else ops.shape(x)


def _dtype(x) -> np.dtype:
    d = getattr(x, "dtype", None)
    return d if d is not None else ops.dtype(x)


def _convert(x, dt):
    return x if _dtype(x) == dt else ops.convert(x, dt)


def _describe(x) -> str:
    return f"python {type(x).__name__}" if dtypes.is_weak(x) else str(ops.aval(x))


def _fail(op: str, msg: str, operands=(), exc=BroadcastError):
    shown = ", ".join(_describe(x) for x in operands)
    where = user_source_location()
    raise exc(f"{op}: {msg}" + (f" (operands: {shown})" if shown else "")
              + (f"\n  at {where}" if where else ""))


def _reject(op: str, **unsupported):
    """NumPy keyword arguments we do not offer must not be silently ignored."""
    for name, value in unsupported.items():
        if value is not None:
            hint = _OUT_HINT if name == "out" else ""
            where = user_source_location()
            raise TypeError(f"{op}(..., {name}=...) is not supported by tracegrad{hint}"
                            + (f"\n  at {where}" if where else ""))


# out= writes into a given array; an in-place operator on a NumPy array asks for it too
_OUT_HINT = (": use the return value (y = np.add(a, b)). An in-place operator on a NumPy "
             "array whose right side is a tensor or traced value (w -= g with w = "
             "np.zeros(n)) also reaches here: a NumPy array cannot hold traced values, so "
             "start w from one (w = np.zeros_like(g)) or write w = w - g")


def _broadcast(op: str, operands):
    """Make NumPy broadcasting explicit; rank-0 operands stay implicit (the IR allows them)."""
    shapes = [_shape(v) for v in operands]
    if all(s == shapes[0] for s in shapes):  # the common case costs no broadcast_shapes
        return operands
    try:
        out = np.broadcast_shapes(*shapes)
    except ValueError:
        _fail(op, "operands could not be broadcast together with shapes "
              + " ".join(str(s) for s in shapes), operands)
    trace = ops.find_trace(operands)
    graph = trace if isinstance(trace, GraphBuilder) else None
    return [v if _shape(v) in ((), out) else _broadcast_to(v, out, graph) for v in operands]


def _broadcast_to(v, shape, graph):
    """`v` broadcast to `shape`; a numpy operand of a traced operation is broadcast in the
    graph, so that it stays a constant of its own size (`l[:, None] == np.arange(n)` would
    otherwise capture an n x n constant)."""
    if graph is not None and isinstance(v, np.ndarray) and v.size * 4 < int(np.prod(shape)):
        return graph.process(PRIMITIVES["broadcast"], [v], {"shape": tuple(shape)})
    return ops.broadcast(v, shape)


def _elementwise(op: str, prim: str, xs, dt=None):
    """Promote `xs` to one dtype, broadcast, and apply the n-ary primitive `prim`."""
    dt = dtypes.result_type(*xs) if dt is None else dt
    return ops.bind(prim, *_broadcast(op, [_lift(x, dt) for x in xs]))


def _ndim(x) -> int:
    return len(_shape(x))


def _norm_axis(axis, ndim: int) -> int:
    a = operator.index(axis)
    if not -ndim <= a < ndim:
        raise np.exceptions.AxisError(a, ndim)
    return a % ndim


def _zero_d_axis(axis, ndim: int) -> bool:
    """Whether `axis` is 0 or -1 of a 0-d operand, which NumPy's reductions, argmax,
    cumsum and take treat as one element along a single axis (its sort does not)."""
    return ndim == 0 and axis is not None and operator.index(axis) in (0, -1)


def _reduction_axes(axis, ndim: int) -> tuple:
    """`_norm_axes` for a reduction: a 0-d operand also takes the int axis 0 or -1 (not
    in a tuple, as NumPy), reducing nothing (`_zero_d_axis`)."""
    if ndim == 0 and axis is not None and not isinstance(axis, (tuple, list)):
        if _zero_d_axis(axis, ndim):
            return ()
    return _norm_axes(axis, ndim)


def _norm_axes(axis, ndim: int) -> tuple:
    """`axis` (None, int or tuple, negatives allowed) as sorted non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = [_norm_axis(a, ndim) for a in (axis if isinstance(axis, (tuple, list)) else (axis,))]
    if len(set(axes)) != len(axes):
        raise ValueError(f"duplicate value in 'axis': {axis}")
    return tuple(sorted(axes))


def _kept_shape(shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _reduced_shape(shape, axes):
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def zero_safe_root(s, power=None):
    """sqrt(s) (or s ** power, power > 0) of a non-negative `s`, whose gradient is 0 where
    s == 0 instead of inf * 0 = NaN: the subgradient of a norm or a standard deviation at
    zero, as torch's (a zero row normalized by max(norm, eps) keeps finite gradients).
    The values are the root's, bit for bit: the root of 0 is 0."""
    zero = ops.eq(s, np.asarray(0.0, _dtype(s)))
    safe = ops.where(zero, np.asarray(1.0, _dtype(s)), s)
    root = ops.sqrt(safe) if power is None else ops.pow(safe, np.asarray(power, _dtype(s)))
    return ops.where(zero, np.asarray(0.0, _dtype(s)), root)
