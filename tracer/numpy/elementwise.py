"""Elementwise functions: the float ufuncs derived from the primitive table,
arithmetic with NumPy promotion, comparisons, logic, `where`, `clip`."""
from __future__ import annotations

import types

import numpy as np

from tracegrad.ir import PRIMITIVES, ops

from .. import dtypes
from ._core import (
    _broadcast, _convert, _dtype, _elementwise, _fail, _lift,
    _ndim, _new_value, _operand, _reject, _symbolic, is_boxed,
)


def _float_unary(prim, name=None):
    """The tracegrad.numpy function of a float primitive, named `name` (default: its
    numpy name)."""
    name = name or prim.numpy_name

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
    if dtypes.dtype_of(x) == np.bool_:  # NumPy's ufunc has no bool loop
        _fail("positive", "ufunc 'positive' did not contain a loop for bool (NumPy has none)",
              [x], TypeError)
    return _new_value(_operand(x))


def absolute(x, /, out=None):
    """|x| elementwise; its gradient is sign(x), and 1 at 0 (JAX's convention; PyTorch's
    is 0: docs/derivatives.md)."""
    _reject("absolute", out=out)
    return ops.abs(_operand(x))


abs = absolute


def sign(x, /, out=None):
    """-1, 0 or 1 by the sign of x (NaN for NaN); bools raise TypeError, as NumPy's."""
    _reject("sign", out=out)
    x = _operand(x)
    if _dtype(x) == dtypes.BOOL:
        _fail("sign", "ufunc 'sign' did not contain a loop for bool (NumPy has none)", [x],
              TypeError)
    return ops.sign(x)


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
    """x1 ** x2; a Python int exponent lowers to `integer_pow`: repeated products (float32
    beyond a square in float64, rounded once) and a cheap gradient.  Powers of bools are
    refused (NumPy's are int8); an integer power by a traced negative exponent gives what
    C's integer arithmetic gives, where NumPy raises."""
    _reject("power", out=out)
    _refuse_bool_power("power", (x1, x2))
    _check_integer_power(x1, x2)
    if isinstance(x2, int) and not isinstance(x2, bool) and _symbolic(x2) is None:
        dt = dtypes.result_type(x1, x2)
        if dt.kind in "iu":
            np.array(x2, dtype=dt)  # NumPy's OverflowError for an exponent out of dt's bounds
        return ops.integer_pow(_lift(x1, dt), x2)
    if _is_half(x2):  # NumPy 2's scalar fast path: sqrt (-0.0 stays -0.0, -inf gives NaN)
        dt = dtypes.result_type(x1, x2)
        if np.dtype(dt).kind == "f":
            return ops.sqrt(_lift(x1, dt))
    return _elementwise("power", "pow", (x1, x2))


def _is_half(x2) -> bool:
    """Whether the exponent is a concrete scalar 0.5 (a Python, numpy or 0-d value)."""
    if is_boxed(x2) or _symbolic(x2) is not None:
        return False
    return isinstance(x2, (float, np.floating, np.ndarray)) and np.ndim(x2) == 0 and x2 == 0.5


def _check_integer_power(x1, x2):
    """NumPy's error for a known negative exponent of an integer power (a traced exponent
    is not known: compiled code then gives what C's integer arithmetic gives)."""
    if _symbolic(x2) is not None or np.dtype(dtypes.result_type(x1, x2)).kind not in "iu":
        return
    if is_boxed(x2):  # an eager tensor's values are known, a traced value's are not
        x2 = getattr(x2, "_data", None)
        if not isinstance(x2, np.ndarray):
            return
    if np.any(np.asarray(x2) < 0):
        raise ValueError("Integers to negative integer powers are not allowed.")


pow = power


def square(x, /, out=None):
    _reject("square", out=out)
    _refuse_bool_power("square", (x,))
    x = _operand(x)
    return ops.integer_pow(x, 2)


def _refuse_bool_power(name, xs):
    """NumPy computes a power of bools (with Python ints) in int8, which tracegrad arrays
    do not have: a TypeError, as for bool floor_divide, rather than another dtype."""
    bools = [dtypes.dtype_of(x) == np.bool_ for x in xs]
    python_ints = [dtypes.is_weak(x) and isinstance(x, int) and not isinstance(x, bool)
                   for x in xs]
    if any(bools) and all(b or i for b, i in zip(bools, python_ints)):
        _fail(name, "bool operands are not supported (NumPy's result is int8, which "
              "tracegrad arrays do not have); convert them to int first", tuple(xs), TypeError)


def reciprocal(x, /, out=None):
    """1 / x; of an integer array, C's integer division (1 and -1 keep their value, larger
    magnitudes give 0, 0 gives 0 where NumPy's is undefined), as NumPy's."""
    _reject("reciprocal", out=out)
    x = _operand(x)
    kind = _dtype(x).kind
    if kind == "f":
        return divide(1.0, x)
    if kind == "b":
        _fail("reciprocal", "bool operands are not supported (NumPy's result is int8, which "
              "tracegrad arrays do not have); convert them to int first", (x,), TypeError)
    zero = np.zeros((), _dtype(x))
    return ops.where(ops.eq(ops.abs(x), np.ones((), _dtype(x))), x, zero)


def maximum(x1, x2, /, out=None):
    """Elementwise maximum; at ties the gradient is split evenly."""
    _reject("maximum", out=out)
    return _elementwise("maximum", "max", (x1, x2))


def minimum(x1, x2, /, out=None):
    _reject("minimum", out=out)
    return _elementwise("minimum", "min", (x1, x2))


_FLIPPED = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le", "eq": "eq", "ne": "ne"}


def _beyond_range(prim, x1, x2):
    """NumPy 2 compares an integer array with a Python int outside its dtype's range (the
    answer is then the same for every element): a bool array of that answer, or None."""
    if type(x2) is not int and type(x1) is int:
        x1, x2, prim = x2, x1, _FLIPPED[prim]
    if type(x2) is not int or _symbolic(x1) is not None or dtypes.is_weak(x1):
        return None
    dt = _dtype(_operand(x1))
    if dt.kind not in "iu" or np.iinfo(dt).min <= x2 <= np.iinfo(dt).max:
        return None
    true = prim in ("ne", "lt", "le") if x2 > 0 else prim in ("ne", "gt", "ge")
    top = np.asarray(np.iinfo(dt).max, dt)  # x <= max always holds, x > max never
    return _elementwise("less_equal", "le", (x1, top)) if true else \
        _elementwise("greater", "gt", (x1, top))


def _compare(name, prim):
    def f(x1, x2, /, out=None):
        _reject(name, out=out)
        beyond = _beyond_range(prim, x1, x2)
        return beyond if beyond is not None else _elementwise(name, prim, (x1, x2))
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


def _bitwise(name, prim, logical, *xs):
    """Bool operands: the logical operation; integers: bitwise (NumPy rejects floats)."""
    dt = dtypes.result_type(*xs)
    if dt == dtypes.BOOL:
        return logical(*xs)
    if not np.issubdtype(dt, np.integer):
        raise TypeError(f"{name}: only integer and bool operands are supported, as in NumPy "
                        f"(got {dt})")
    if len(xs) == 1:
        return ops.bind(prim, _lift(xs[0], dt))
    return _elementwise(name, prim, xs, dt)


def bitwise_and(x1, x2, /, out=None):
    _reject("bitwise_and", out=out)
    return _bitwise("bitwise_and", "bitwise_and", logical_and, x1, x2)


def bitwise_or(x1, x2, /, out=None):
    _reject("bitwise_or", out=out)
    return _bitwise("bitwise_or", "bitwise_or", logical_or, x1, x2)


def bitwise_xor(x1, x2, /, out=None):
    _reject("bitwise_xor", out=out)
    return _bitwise("bitwise_xor", "bitwise_xor", logical_xor, x1, x2)


def invert(x, /, out=None):
    """~x: bitwise not of integers (two's complement), logical not of bools."""
    _reject("invert", out=out)
    return _bitwise("invert", "bitwise_not", logical_not, x)


bitwise_not = bitwise_invert = invert


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
    # Where a equals a bound (-0.0 and +0.0) NumPy keeps a when both bounds are scalars,
    # else the bound; maximum and minimum give their second operand on ties.
    _reject("clip", out=out)
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    keep_a = lo is not None and hi is not None and _ndim(_operand(lo)) == _ndim(_operand(hi)) == 0
    if lo is not None and hi is not None:  # NumPy promotes the three together, not pairwise
        a = _convert(_operand(a), dtypes.result_type(_operand(a), lo, hi))
    if lo is not None:
        a = maximum(lo, a) if keep_a else maximum(a, lo)
    if hi is not None:
        a = minimum(hi, a) if keep_a else minimum(a, hi)
    return _new_value(_operand(a)) if lo is None and hi is None else _operand(a)


def stop_gradient(x):
    """The value of `x`, but no gradient flows through it (like `detach`); a pytree of
    arrays gets it leafwise, as jax.lax.stop_gradient."""
    if isinstance(x, (dict, list, tuple)) or x is None:
        from ..tree import tree_map  # tracer.tree sits above the numpy front end
        return tree_map(stop_gradient, x)
    x = _operand(x)
    return ops.stop_gradient(x) if is_boxed(x) else x


__all__ = [
    "abs", "absolute", "sign", "negative", "positive", "square", "reciprocal", "power", "add",
    "subtract", "multiply", "divide", "true_divide", "maximum", "minimum", "where", "clip",
    "stop_gradient", "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
    "logical_and", "logical_or", "logical_not", "logical_xor",
    "bitwise_and", "bitwise_or", "bitwise_xor", "invert", "bitwise_not", "bitwise_invert",
    "pow", *UFUNCS,
]

NUMPY = {
    np.add: add, np.subtract: subtract, np.multiply: multiply, np.divide: divide,
    np.power: power, np.negative: negative, np.positive: positive, np.absolute: absolute,
    np.sign: sign, np.square: square, np.reciprocal: reciprocal,
    **{getattr(np, name): f for name, f in UFUNCS.items()},
    np.maximum: maximum, np.minimum: minimum,
    np.less: less, np.less_equal: less_equal, np.greater: greater,
    np.greater_equal: greater_equal, np.equal: equal, np.not_equal: not_equal,
    np.logical_and: logical_and, np.logical_or: logical_or, np.logical_not: logical_not,
    np.logical_xor: logical_xor, np.bitwise_and: bitwise_and, np.bitwise_or: bitwise_or,
    np.bitwise_xor: bitwise_xor, np.invert: invert, np.where: where, np.clip: clip,
}
