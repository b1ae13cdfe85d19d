"""The NumPy-like namespace (`tracegrad.numpy`, as `jax.numpy` sits over `lax`).

Every function accepts eager tensors, traced values, numpy arrays and Python
scalars, and lowers to the primitives of `tracegrad.ir` through `ir.ops`: the
same code computes eagerly (recording autograd), builds a graph while tracing,
or evaluates plain numpy.  NumPy 2 semantics: NEP 50 promotion (Python scalars
are weak), explicit `broadcast` for broadcasting, `convert` so that every
binary primitive sees one dtype.

>>> import numpy as np
>>> from tracegrad.tracer import numpy as tnp
>>> tnp.add(np.ones(3, np.float32), 2.0).dtype
dtype('float32')
>>> float(tnp.logsumexp(np.array([1000.0, 1000.0])))  # stable: 1000 + log 2
1000.6931471805599

Differences from NumPy, by design: int and bool inputs of float functions
(`exp`, `log`, ...) compute in float64 (NumPy gives float16 for bool); integer
bitwise operators are not offered (no primitive); `out=` is never accepted.
"""
from __future__ import annotations

import builtins
import math
import operator
import types

import numpy as np

from tracegrad.ir import PRIMITIVES, ShapeError, ops, user_source_location
from tracegrad.ir.core import is_float

from . import dtypes

__all__ = [
    # dtypes and constants
    "float32", "float64", "int32", "int64", "bool_", "dtype", "pi", "e", "inf", "nan", "newaxis",
    # elementwise
    "abs", "absolute", "sign",
    "negative", "positive", "square", "reciprocal", "power", "add", "subtract", "multiply",
    "divide", "true_divide", "maximum", "minimum", "where", "clip", "stop_gradient",
    "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
    "logical_and", "logical_or", "logical_not", "logical_xor",
    "bitwise_and", "bitwise_or", "bitwise_xor", "invert",
    # reductions
    "sum", "mean", "var", "std", "max", "amax", "min", "amin",
    # shapes
    "shape", "ndim", "size", "reshape", "ravel", "transpose", "swapaxes", "moveaxis",
    "broadcast_to", "squeeze", "expand_dims", "concatenate", "stack", "astype",
    # products
    "matmul", "dot", "vdot", "inner", "outer",
    # constructors
    "asarray", "array", "zeros_like", "ones_like", "full_like", "zeros", "ones", "full",
    "arange", "eye",
    # composites
    "sigmoid", "softplus", "relu", "logsumexp", "softmax", "log_softmax",
    "BroadcastError",
]

# dtype and constant names, as in numpy
float32, float64, int32, int64, bool_ = np.float32, np.float64, np.int32, np.int64, np.bool_
dtype = np.dtype
pi, e, inf, nan, newaxis = np.pi, np.e, np.inf, np.nan, None


class BroadcastError(ShapeError, ValueError):
    """Operands whose shapes do not fit an operation (a ValueError, as in NumPy)."""


# ---- operands ----------------------------------------------------------------------

def is_boxed(x) -> bool:
    """An eager tensor or a traced value (anything `ops.bind` dispatches on)."""
    return hasattr(x, "_tg_trace")


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
    if isinstance(x, np.ndarray):
        dtypes.check(x.dtype)
        return x
    return asarray(x)


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
            hint = " (tracegrad arrays are immutable: use the return value)" \
                if name == "out" else ""
            raise TypeError(f"{op}(..., {name}=...) is not supported by tracegrad{hint}")


def _broadcast(op: str, operands):
    """Make NumPy broadcasting explicit; rank-0 operands stay implicit (the IR allows them)."""
    shapes = [_shape(v) for v in operands]
    try:
        out = np.broadcast_shapes(*shapes)
    except ValueError:
        _fail(op, "operands could not be broadcast together with shapes "
              + " ".join(str(s) for s in shapes), operands)
    return [v if _shape(v) in ((), out) else ops.broadcast(v, out) for v in operands]


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


# ---- elementwise -------------------------------------------------------------------

def _float_unary(prim):
    name = prim.numpy_name

    def f(x, /, out=None, **unsupported):
        _reject(name, out=out, **unsupported)
        x = _operand(x)
        return ops.bind(prim.name, _convert(x, dtypes.float_result(_dtype(x))))
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"{prim.doc}, elementwise; int and bool inputs compute in float64."
    return f


# The float functions that are one primitive each (exp, log, sqrt, tanh, ...),
# derived from the primitive table (`Primitive.numpy_name`).
UFUNCS = {p.numpy_name: _float_unary(p) for p in PRIMITIVES.values() if p.numpy_name}
globals().update(UFUNCS)
__all__ += list(UFUNCS)
uf = types.SimpleNamespace(**UFUNCS)  # the same functions, for the composites below


def negative(x, /, out=None):
    """-x elementwise (bool is rejected, as in NumPy)."""
    _reject("negative", out=out)
    x = _operand(x)
    if _dtype(x) == dtypes.BOOL:
        raise TypeError("negative: the numpy boolean negative is not supported, use ~ or "
                        "logical_not")
    return ops.neg(x)


def positive(x, /, out=None):
    _reject("positive", out=out)
    return _operand(x)


def absolute(x, /, out=None):
    """|x| elementwise; its gradient is sign(x) (0 at 0)."""
    _reject("absolute", out=out)
    return ops.abs(_operand(x))


abs = absolute


def sign(x, /, out=None):
    _reject("sign", out=out)
    return ops.sign(_operand(x))


def add(x1, x2, /, out=None):
    """x1 + x2 with NumPy promotion and broadcasting."""
    _reject("add", out=out)
    return _elementwise("add", "add", (x1, x2))


def subtract(x1, x2, /, out=None):
    _reject("subtract", out=out)
    if dtypes.result_type(x1, x2) == dtypes.BOOL:
        raise TypeError("subtract: numpy boolean subtract is not supported, use ^ or logical_xor")
    return _elementwise("subtract", "sub", (x1, x2))


def multiply(x1, x2, /, out=None):
    _reject("multiply", out=out)
    return _elementwise("multiply", "mul", (x1, x2))


def divide(x1, x2, /, out=None):
    """True division: integer and bool operands give float64, as in NumPy."""
    _reject("divide", out=out)
    return _elementwise("divide", "div", (x1, x2), dtypes.float_result(dtypes.result_type(x1, x2)))


true_divide = divide


def power(x1, x2, /, out=None):
    """x1 ** x2; a Python int exponent lowers to `integer_pow` (exact, cheap gradient)."""
    _reject("power", out=out)
    if isinstance(x2, int) and not isinstance(x2, bool) and _symbolic(x2) is None:
        return ops.integer_pow(_lift(x1, dtypes.result_type(x1, x2)), x2)
    return _elementwise("power", "pow", (x1, x2))


def square(x, /, out=None):
    _reject("square", out=out)
    x = _operand(x)
    return ops.integer_pow(x, 2)


def reciprocal(x, /, out=None):
    _reject("reciprocal", out=out)
    return divide(1.0, x)


def maximum(x1, x2, /, out=None):
    """Elementwise maximum; at ties the gradient is split evenly."""
    _reject("maximum", out=out)
    return _elementwise("maximum", "max", (x1, x2))


def minimum(x1, x2, /, out=None):
    _reject("minimum", out=out)
    return _elementwise("minimum", "min", (x1, x2))


def _compare(name, prim):
    def f(x1, x2, /, out=None):
        _reject(name, out=out)
        return _elementwise(name, prim, (x1, x2))
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Elementwise `{name}` (bool result, not differentiable)."
    return f


less, less_equal = _compare("less", "lt"), _compare("less_equal", "le")
greater, greater_equal = _compare("greater", "gt"), _compare("greater_equal", "ge")
equal, not_equal = _compare("equal", "eq"), _compare("not_equal", "ne")


def _as_bool(x):
    x = _operand(x)
    return x if _dtype(x) == dtypes.BOOL else ops.ne(x, np.asarray(0, _dtype(x)))


def logical_and(x1, x2, /, out=None):
    _reject("logical_and", out=out)
    return _elementwise("logical_and", "and", (_as_bool(x1), _as_bool(x2)))


def logical_or(x1, x2, /, out=None):
    _reject("logical_or", out=out)
    return _elementwise("logical_or", "or", (_as_bool(x1), _as_bool(x2)))


def logical_not(x, /, out=None):
    _reject("logical_not", out=out)
    return ops.logical_not(_as_bool(x))


def logical_xor(x1, x2, /, out=None):
    _reject("logical_xor", out=out)
    return _elementwise("logical_xor", "ne", (_as_bool(x1), _as_bool(x2)))


def _bool_only(op, *xs):
    if any(dtypes.dtype_of(_operand(x)) != dtypes.BOOL for x in xs):
        raise TypeError(f"{op}: only bool operands are supported (integer bitwise ops "
                        "have no tracegrad primitive)")


def bitwise_and(x1, x2, /, out=None):
    _bool_only("bitwise_and", x1, x2)
    return logical_and(x1, x2, out=out)


def bitwise_or(x1, x2, /, out=None):
    _bool_only("bitwise_or", x1, x2)
    return logical_or(x1, x2, out=out)


def bitwise_xor(x1, x2, /, out=None):
    _bool_only("bitwise_xor", x1, x2)
    return logical_xor(x1, x2, out=out)


def invert(x, /, out=None):
    _bool_only("invert", x)
    return logical_not(x, out=out)


def where(condition, x=None, y=None, /):
    """Elementwise choice; the gradient flows only into the chosen branch."""
    if x is None or y is None:
        raise TypeError("where(condition) (the nonzero form) is not supported: its result "
                        "shape depends on the data; pass both x and y")
    dt = dtypes.result_type(x, y)
    c, a, b = _broadcast("where", [_as_bool(condition), _lift(x, dt), _lift(y, dt)])
    return ops.where(c, a, b)


def clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None):
    """min(max(a, a_min), a_max); either bound may be None."""
    _reject("clip", out=out)
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    if lo is not None:
        a = maximum(a, lo)
    if hi is not None:
        a = minimum(a, hi)
    return _operand(a)


def stop_gradient(x):
    """The value of `x`, but no gradient flows through it (like `detach`)."""
    x = _operand(x)
    return ops.stop_gradient(x) if is_boxed(x) else x


# ---- reductions ----------------------------------------------------------------------

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


# ---- shapes --------------------------------------------------------------------------

def shape(a):
    return _shape(_operand(a))


def ndim(a):
    return _ndim(_operand(a))


def size(a, axis=None):
    s = _shape(_operand(a))
    return int(np.prod(s, dtype=np.int64)) if axis is None else s[axis]


def _resolve_shape(new, a) -> tuple:
    """The target shape of reshaping `a` to `new` (one -1 is inferred)."""
    size_ = math.prod(_shape(a))  # Python ints: a huge shape cannot wrap around
    new = (new,) if isinstance(new, (int, np.integer)) else tuple(new)
    new = tuple(operator.index(d) for d in new)
    known = math.prod(d for d in new if d != -1)
    if new.count(-1) == 1 and known and size_ % known == 0:
        new = tuple(size_ // known if d == -1 else d for d in new)
    if math.prod(new) != size_ or builtins.min(new, default=0) < 0:
        _fail("reshape", f"cannot reshape an array of size {size_} into shape {new}", [a],
              ValueError)
    return new


def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    """NumPy reshape (C order), `-1` infers one dimension."""
    if order != "C":
        raise TypeError("reshape: only order='C' is supported")
    a = _operand(a)
    return ops.reshape(a, _resolve_shape(newshape if shape is None else shape, a))


def ravel(a, order="C"):
    return reshape(a, -1, order=order)


def transpose(a, axes=None):
    """Permute axes (reverse them by default)."""
    a = _operand(a)
    n = _ndim(a)
    perm = tuple(reversed(range(n))) if axes is None else tuple(_norm_axis(p, n) for p in axes)
    if sorted(perm) != list(range(n)):
        _fail("transpose", f"axes {axes} don't match an array of {n} dimensions", [a], ValueError)
    return ops.transpose(a, perm)


def swapaxes(a, axis1, axis2):
    a = _operand(a)
    n = _ndim(a)
    perm = list(range(n))
    i, j = _norm_axis(axis1, n), _norm_axis(axis2, n)
    perm[i], perm[j] = perm[j], perm[i]
    return ops.transpose(a, perm)


def moveaxis(a, source, destination):
    a = _operand(a)
    n = _ndim(a)
    src, dst = _norm_axis(source, n), _norm_axis(destination, n)
    perm = [i for i in range(n) if i != src]
    perm.insert(dst, src)
    return ops.transpose(a, perm)


def broadcast_to(array, shape):
    """Broadcast to `shape` (an explicit `broadcast` primitive)."""
    a = _operand(array)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    problem = ops.size_problem(shape)
    if problem:
        _fail("broadcast_to", problem, [a])
    try:
        ok = np.broadcast_shapes(_shape(a), shape) == shape
    except ValueError:
        ok = False
    if not ok:
        _fail("broadcast_to", f"cannot broadcast to shape {shape}", [a])
    return ops.broadcast(a, shape)


def squeeze(a, axis=None):
    """Remove size-1 axes (all of them, or those named by `axis`)."""
    a = _operand(a)
    shp = _shape(a)
    if axis is None:
        axes = tuple(i for i, d in enumerate(shp) if d == 1)
    else:
        axes = _norm_axes(axis, len(shp))
    if any(shp[i] != 1 for i in axes):
        _fail("squeeze", f"cannot squeeze axis {axis}: its size is not one", [a], ValueError)
    return ops.reshape(a, _reduced_shape(shp, axes))


def expand_dims(a, axis):
    """Insert size-1 axes at the positions `axis` of the result."""
    a = _operand(a)
    shp = _shape(a)
    axes = _norm_axes(axis, len(shp) + (len(axis) if isinstance(axis, (tuple, list)) else 1))
    it = iter(shp)
    return ops.reshape(a, tuple(1 if i in axes else next(it) for i in range(len(shp) + len(axes))))


def concatenate(arrays, axis=0, out=None, dtype=None):
    """Join arrays along an existing axis (`axis=None` flattens first)."""
    _reject("concatenate", out=out)
    arrays = [_operand(x) for x in arrays]
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    if axis is None:
        arrays, axis = [ravel(x) for x in arrays], 0
    dt = dtypes.check(dtype) if dtype is not None else dtypes.result_type(*arrays)
    arrays = [_convert(x, dt) for x in arrays]
    shapes = [_shape(x) for x in arrays]
    if builtins.min(len(s) for s in shapes) == 0:
        _fail("concatenate", "zero-dimensional arrays cannot be concatenated", arrays)
    ax = _norm_axis(axis, len(shapes[0]))
    if any(len(s) != len(shapes[0]) or s[:ax] + s[ax + 1:] != shapes[0][:ax] + shapes[0][ax + 1:]
           for s in shapes):
        _fail("concatenate", f"array shapes must match except along axis {ax}", arrays)
    return arrays[0] if len(arrays) == 1 else ops.concatenate(arrays, ax)


def stack(arrays, axis=0, out=None, dtype=None):
    """Join equally shaped arrays along a new axis."""
    _reject("stack", out=out)
    arrays = [_operand(x) for x in arrays]
    if not arrays:
        raise ValueError("need at least one array to stack")
    if len({_shape(x) for x in arrays}) != 1:
        _fail("stack", "all input arrays must have the same shape", arrays)
    ax = _norm_axis(axis, _ndim(arrays[0]) + 1)
    return concatenate([expand_dims(x, ax) for x in arrays], axis=ax, dtype=dtype)


# ---- products ------------------------------------------------------------------------

def _batched_dot(a, b):
    """(..., m, k) @ (..., k, n) with equal batch dims; integers via mul + reduce_sum."""
    if is_float(_dtype(a)):
        return ops.dot(a, b)
    shp_a, shp_b = _shape(a), _shape(b)
    out = shp_a[:-1] + shp_b[-1:]
    prod = ops.mul(ops.broadcast(ops.reshape(a, shp_a + (1,)), out[:-1] + shp_a[-1:] + out[-1:]),
                   ops.broadcast(ops.reshape(b, shp_b[:-2] + (1,) + shp_b[-2:]),
                                 out[:-1] + shp_b[-2:]))
    return ops.reduce_sum(prod, (len(out) - 1,))


def matmul(x1, x2, /, out=None, **unsupported):
    """NumPy matmul: 1-D operands are promoted to matrices and back, batch dims broadcast.

    >>> import numpy as np
    >>> matmul(np.ones((2, 3)), np.ones(3)).tolist()
    [3.0, 3.0]
    """
    _reject("matmul", out=out, **unsupported)
    dt = dtypes.result_type(x1, x2)
    a, b = _lift(x1, dt), _lift(x2, dt)
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        _fail("matmul", "operands must be at least 1-D (use multiply for scalars)", [a, b])
    a2 = ops.reshape(a, (1,) + sa) if len(sa) == 1 else a
    b2 = ops.reshape(b, sb + (1,)) if len(sb) == 1 else b
    (m, k), (k2, n) = _shape(a2)[-2:], _shape(b2)[-2:]
    if k != k2:
        _fail("matmul", f"contracted dimensions differ ({k} != {k2})", [a, b])
    try:
        batch = np.broadcast_shapes(_shape(a2)[:-2], _shape(b2)[:-2])
    except ValueError:
        _fail("matmul", "batch dimensions could not be broadcast together", [a, b])
    r = _batched_dot(ops.broadcast(a2, batch + (m, k)), ops.broadcast(b2, batch + (k, n)))
    final = batch + ((m,) if len(sa) > 1 else ()) + ((n,) if len(sb) > 1 else ())
    return ops.reshape(r, final)


def dot(a, b, out=None):
    """NumPy dot: sum over the last axis of `a` and the second-to-last of `b`."""
    _reject("dot", out=out)
    dt = dtypes.result_type(a, b)
    a, b = _lift(a, dt), _lift(b, dt)
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        return multiply(a, b)
    if len(sb) <= 2:
        return matmul(a, b)
    if sa[-1] != sb[-2]:
        _fail("dot", f"shapes {sa} and {sb} not aligned: {sa[-1]} != {sb[-2]}", [a, b])
    nb = len(sb)
    bt = ops.transpose(b, (nb - 2,) + tuple(range(nb - 2)) + (nb - 1,))
    rows = int(np.prod(sa[:-1], dtype=np.int64))
    cols = int(np.prod(sb[:-2] + sb[-1:], dtype=np.int64))
    r = matmul(ops.reshape(a, (rows, sa[-1])), ops.reshape(bt, (sb[-2], cols)))
    return ops.reshape(r, sa[:-1] + sb[:-2] + sb[-1:])


def vdot(a, b):
    return sum(multiply(ravel(a), ravel(b)))


def inner(a, b):
    """Sum over the last axes of `a` and `b` (`b` of at most 2 dimensions)."""
    a, b = _operand(a), _operand(b)
    if not _shape(a) or not _shape(b):
        return multiply(a, b)
    if _ndim(b) > 2:
        _fail("inner", "operands `b` of more than 2 dimensions are not supported", [a, b],
              TypeError)
    return dot(a, swapaxes(b, -1, -2) if _ndim(b) == 2 else b)


def outer(a, b):
    return multiply(reshape(ravel(a), (-1, 1)), ravel(b))


# ---- constructors ----------------------------------------------------------------------

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


# ---- composites (written once, in terms of primitives) ---------------------------------

def sigmoid(x):
    """1 / (1 + exp(-x)) computed as 0.5 * (tanh(x / 2) + 1): no overflow for any x."""
    x = _operand(x)
    return multiply(0.5, add(uf.tanh(multiply(0.5, x)), 1.0))


def softplus(x):
    """log(1 + exp(x)) computed as log1p(exp(-|x|)) + max(x, 0): stable for large |x|."""
    x = _operand(x)
    return add(uf.log1p(uf.exp(negative(absolute(x)))), maximum(x, 0.0))


def relu(x):
    """max(x, 0) as where(x > 0, x, 0): the gradient at 0 is 0, as in PyTorch."""
    x = _operand(x)
    return where(greater(x, 0), x, 0)


def logsumexp(a, axis=None, keepdims=False):
    """log(sum(exp(a))) with the maximum subtracted (under stop_gradient) for stability."""
    a = _operand(a)
    a = _convert(a, dtypes.float_result(_dtype(a)))
    axes = _norm_axes(axis, _ndim(a))
    m = max(a, axis=axes, keepdims=True)
    # An infinite maximum would give inf - inf = nan; shifting by 0 keeps the exact answer.
    m = stop_gradient(where(less(absolute(m), inf), m, 0.0))
    out = add(uf.log(sum(uf.exp(subtract(a, m)), axis=axes, keepdims=True)), m)
    return out if keepdims else ops.reshape(out, _reduced_shape(_shape(a), axes))


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`, with the maximum subtracted first."""
    x = _operand(x)
    e = uf.exp(subtract(x, stop_gradient(max(x, axis=axis, keepdims=True))))
    return divide(e, sum(e, axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along `axis`."""
    return subtract(x, logsumexp(x, axis=axis, keepdims=True))


# ---- NumPy protocol dispatch ----------------------------------------------------------

# The ONE table mapping numpy callables (ufuncs and functions) to this namespace;
# `__array_ufunc__` and `__array_function__` of tensors and traced values read it.
NUMPY_TABLE = {
    np.add: add, np.subtract: subtract, np.multiply: multiply, np.divide: divide,
    np.power: power, np.negative: negative, np.positive: positive, np.absolute: absolute,
    np.sign: sign, np.square: square, np.reciprocal: reciprocal,
    **{getattr(np, name): f for name, f in UFUNCS.items()},
    np.maximum: maximum, np.minimum: minimum, np.matmul: matmul,
    np.less: less, np.less_equal: less_equal, np.greater: greater,
    np.greater_equal: greater_equal, np.equal: equal, np.not_equal: not_equal,
    np.logical_and: logical_and, np.logical_or: logical_or, np.logical_not: logical_not,
    np.logical_xor: logical_xor, np.bitwise_and: bitwise_and, np.bitwise_or: bitwise_or,
    np.bitwise_xor: bitwise_xor, np.invert: invert,
    np.sum: sum, np.mean: mean, np.var: var, np.std: std, np.max: max, np.amax: max,
    np.min: min, np.amin: min, np.where: where, np.clip: clip, np.dot: dot, np.vdot: vdot,
    np.inner: inner, np.outer: outer, np.reshape: reshape, np.ravel: ravel,
    np.transpose: transpose, np.swapaxes: swapaxes, np.moveaxis: moveaxis,
    np.broadcast_to: broadcast_to, np.squeeze: squeeze, np.expand_dims: expand_dims,
    np.concatenate: concatenate, np.stack: stack, np.zeros_like: zeros_like,
    np.ones_like: ones_like, np.full_like: full_like, np.shape: shape, np.ndim: ndim,
    np.size: size,
}

# ufunc.reduce methods we offer, as the reductions they are.
UFUNC_REDUCE = {np.add: sum, np.maximum: max, np.minimum: min}


def _numpy_name(f) -> str:
    """`np.sum`, `np.linalg.norm`: how the user spelled the numpy callable."""
    module = getattr(f, "__module__", None) or "numpy"
    prefix = "np" + module[len("numpy"):] if module.startswith("numpy") else module
    return f"{prefix}.{getattr(f, '__name__', repr(f))}"


def dispatch_ufunc(ufunc, method, inputs, kwargs):
    """Implementation of `__array_ufunc__` for tracegrad arrays."""
    _reject(_numpy_name(ufunc), out=kwargs.pop("out", None))
    if method == "__call__" and ufunc in NUMPY_TABLE:
        if kwargs:
            raise TypeError(f"{_numpy_name(ufunc)}: keyword arguments {sorted(kwargs)} are "
                            "not supported on tracegrad arrays")
        return NUMPY_TABLE[ufunc](*inputs)
    if method == "reduce" and ufunc in UFUNC_REDUCE:
        (a, *rest), axis = inputs, kwargs.pop("axis", 0)
        if rest:
            axis = rest[0]
        return UFUNC_REDUCE[ufunc](a, axis=axis, **kwargs)
    raise TypeError(f"{_numpy_name(ufunc)}.{method} is not supported on tracegrad arrays"
                    if method != "__call__" else
                    f"{_numpy_name(ufunc)} is not supported on tracegrad arrays")


def dispatch_function(func, args, kwargs):
    """Implementation of `__array_function__` for tracegrad arrays."""
    impl = NUMPY_TABLE.get(func)
    if impl is None:
        raise TypeError(f"{_numpy_name(func)} is not supported on tracegrad arrays (tensors "
                        "and traced values); supported: the functions of tracegrad.numpy")
    return impl(*args, **kwargs)
