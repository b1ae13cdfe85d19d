"""The closed set of primitives: for each, its shape/dtype rule and numpy reference.

Autodiff rules are attached to the same objects in `ir/rules.py`; the codegen
lowering table lives in `codegen/`.  Everything the front end offers beyond
these (softmax, mean, relu, ...) is a composite of them.

Conventions the rest of the pipeline relies on:
  * every primitive has exactly one output;
  * elementwise n-ary primitives take operands of one dtype whose shapes are
    equal, except that rank-0 operands broadcast (the front end makes every
    other broadcast explicit with `broadcast`);
  * axes/shape params are tuples of Python ints, so params are hashable.
"""
from __future__ import annotations

import numpy as np

from .core import ShapedArray, is_float


class ShapeError(TypeError):
    """A primitive was applied to operands whose shapes or dtypes do not fit."""


class Primitive:
    def __init__(self, name, kind, shape_rule, impl, differentiable=True):
        self.name = name
        self.kind = kind  # unary | binary | compare | logical | select | reduce | structural | dot | cast
        self.shape_rule = shape_rule
        self.impl = impl
        self.differentiable = differentiable
        self.vjp = None  # filled in by ir/rules.py
        self.jvp = None

    def __repr__(self):
        return self.name


PRIMITIVES: dict[str, Primitive] = {}


def _register(name, kind, shape_rule, impl, differentiable=True):
    PRIMITIVES[name] = Primitive(name, kind, shape_rule, impl, differentiable)


def _fail(name, msg, *avals):
    shown = ", ".join(str(a) for a in avals)
    raise ShapeError(f"{name}: {msg} (operands: {shown})")


# ---- elementwise -------------------------------------------------------------

def _common_shape(name, avals):
    shapes = {a.shape for a in avals if a.shape != ()}
    if len(shapes) > 1:
        _fail(name, "operand shapes differ (only rank-0 operands broadcast implicitly)", *avals)
    return shapes.pop() if shapes else ()


def _same_dtype(name, avals):
    dtypes = {a.dtype for a in avals}
    if len(dtypes) > 1:
        _fail(name, "operand dtypes differ", *avals)
    return dtypes.pop()


def _unary_rule(name, float_only):
    def rule(x):
        if float_only and not is_float(x.dtype):
            _fail(name, "needs a float operand", x)
        return x
    return rule


def _binary_rule(name, out_bool=False):
    def rule(x, y):
        shape = _common_shape(name, (x, y))
        dtype = _same_dtype(name, (x, y))
        return ShapedArray(shape, np.bool_ if out_bool else dtype)
    return rule


def _is_weak(x):
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def _cast_like(x, y):
    """numpy impl helper: Python scalars take the other operand's dtype."""
    weak_x, weak_y = _is_weak(x), _is_weak(y)
    x, y = np.asarray(x), np.asarray(y)
    if weak_x and not weak_y:
        x = x.astype(y.dtype)
    elif weak_y and not weak_x:
        y = y.astype(x.dtype)
    return x, y


def _np_binary(fn, out_dtype=None):
    def impl(x, y):
        x, y = _cast_like(x, y)
        with np.errstate(all="ignore"):
            out = fn(x, y)
        return np.asarray(out, dtype=out_dtype or x.dtype)
    return impl


def _np_unary(fn):
    def impl(x):
        x = np.asarray(x)
        with np.errstate(all="ignore"):
            return np.asarray(fn(x), dtype=x.dtype)
    return impl


UNARY = {
    "neg": (np.negative, False), "exp": (np.exp, True), "log": (np.log, True),
    "log1p": (np.log1p, True), "expm1": (np.expm1, True), "sqrt": (np.sqrt, True),
    "sin": (np.sin, True), "cos": (np.cos, True), "tanh": (np.tanh, True),
    "abs": (np.abs, False), "sign": (np.sign, False),
}
for _n, (_fn, _float_only) in UNARY.items():
    _register(_n, "unary", _unary_rule(_n, _float_only), _np_unary(_fn))

BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "pow": np.power, "max": np.maximum, "min": np.minimum,
}
for _n, _fn in BINARY.items():
    _register(_n, "binary", _binary_rule(_n), _np_binary(_fn))

COMPARE = {"lt": np.less, "le": np.less_equal, "gt": np.greater,
           "ge": np.greater_equal, "eq": np.equal, "ne": np.not_equal}
for _n, _fn in COMPARE.items():
    _register(_n, "compare", _binary_rule(_n, out_bool=True), _np_binary(_fn, np.bool_),
              differentiable=False)

for _n, _fn in {"and": np.logical_and, "or": np.logical_or}.items():
    _register(_n, "logical", _binary_rule(_n, out_bool=True), _np_binary(_fn, np.bool_),
              differentiable=False)
_register("not", "logical", lambda x: ShapedArray(x.shape, np.bool_),
          lambda x: np.logical_not(x), differentiable=False)


def _integer_pow_rule(x, *, y):
    if not isinstance(y, int):
        _fail("integer_pow", f"exponent must be a Python int, got {y!r}", x)
    return x


def _integer_pow_impl(x, *, y):
    x = np.asarray(x)
    with np.errstate(all="ignore"):
        return np.asarray(np.power(x, y) if y >= 0 else 1 / np.power(x, -y), dtype=x.dtype)


_register("integer_pow", "unary", _integer_pow_rule, _integer_pow_impl)


def _where_rule(c, x, y):
    if c.dtype != np.bool_:
        _fail("where", "condition must be bool", c, x, y)
    shape = _common_shape("where", (c, x, y))
    return ShapedArray(shape, _same_dtype("where", (x, y)))


def _where_impl(c, x, y):
    x, y = _cast_like(x, y)
    return np.asarray(np.where(c, x, y), dtype=x.dtype)


_register("where", "select", _where_rule, _where_impl)


def _convert_rule(x, *, dtype):
    return ShapedArray(x.shape, dtype)


_register("convert", "cast", _convert_rule,
          lambda x, *, dtype: np.asarray(x).astype(dtype))
_register("stop_gradient", "unary", lambda x: x, lambda x: np.asarray(x), differentiable=False)


# ---- reductions ----------------------------------------------------------------

def _reduce_rule(name):
    def rule(x, *, axes):
        if sorted(set(axes)) != list(axes) or any(not 0 <= a < x.ndim for a in axes):
            _fail(name, f"axes {axes} must be sorted, unique and within rank {x.ndim}", x)
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        if name != "reduce_sum" and any(x.shape[a] == 0 for a in axes):
            _fail(name, "zero-size reduction has no identity", x)
        return ShapedArray(shape, x.dtype)
    return rule


for _n, _fn in {"reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min}.items():
    _register(_n, "reduce", _reduce_rule(_n),
              (lambda fn: lambda x, *, axes: np.asarray(fn(np.asarray(x), axis=axes),
                                                        dtype=np.asarray(x).dtype))(_fn))


# ---- structural ----------------------------------------------------------------

def _broadcast_rule(x, *, shape):
    try:
        ok = np.broadcast_shapes(x.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        _fail("broadcast", f"cannot broadcast to {tuple(shape)}", x)
    return ShapedArray(shape, x.dtype)


_register("broadcast", "structural", _broadcast_rule,
          lambda x, *, shape: np.broadcast_to(x, shape).copy())


def _reshape_rule(x, *, shape):
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        _fail("reshape", f"cannot reshape to {tuple(shape)}", x)
    return ShapedArray(shape, x.dtype)


_register("reshape", "structural", _reshape_rule,
          lambda x, *, shape: np.reshape(np.asarray(x), shape).copy())


def _transpose_rule(x, *, perm):
    if sorted(perm) != list(range(x.ndim)):
        _fail("transpose", f"perm {perm} is not a permutation of {x.ndim} axes", x)
    return ShapedArray(tuple(x.shape[p] for p in perm), x.dtype)


_register("transpose", "structural", _transpose_rule,
          lambda x, *, perm: np.array(np.transpose(x, perm), order="C"))


def _slice_rule(x, *, starts, steps, sizes):
    """out[i] = x[start + i*step] per axis; steps may be negative, never 0."""
    if not len(starts) == len(steps) == len(sizes) == x.ndim:
        _fail("slice", "params must give one entry per axis", x)
    for d, st, sp, sz in zip(x.shape, starts, steps, sizes):
        last = st + (sz - 1) * sp
        if sp == 0 or sz < 0 or (sz > 0 and not (0 <= st < d and 0 <= last < d)):
            _fail("slice", f"start={st} step={sp} size={sz} out of bounds for axis of {d}", x)
    return ShapedArray(sizes, x.dtype)


def _slice_index(starts, steps, sizes):
    return np.ix_(*[st + sp * np.arange(sz) for st, sp, sz in zip(starts, steps, sizes)])


def _slice_impl(x, *, starts, steps, sizes):
    x = np.asarray(x)
    if x.ndim == 0:
        return x.copy()
    return x[_slice_index(starts, steps, sizes)]


_register("slice", "structural", _slice_rule, _slice_impl)


def _pad_rule(x, *, starts, steps, shape):
    """The transpose of slice: zeros of `shape` with x at start + i*step."""
    _slice_rule(ShapedArray(shape, x.dtype), starts=starts, steps=steps, sizes=x.shape)
    return ShapedArray(shape, x.dtype)


def _pad_impl(x, *, starts, steps, shape):
    x = np.asarray(x)
    out = np.zeros(shape, x.dtype)
    if x.ndim == 0:
        return x.copy()
    out[_slice_index(starts, steps, x.shape)] = x
    return out


_register("pad", "structural", _pad_rule, _pad_impl)


def _concat_rule(*xs, axis):
    first = xs[0]
    if not 0 <= axis < first.ndim:
        _fail("concatenate", f"axis {axis} out of range", *xs)
    _same_dtype("concatenate", xs)
    for x in xs:
        if x.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape))
                                       if i != axis):
            _fail("concatenate", "shapes differ outside the concatenation axis", *xs)
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return ShapedArray(shape, first.dtype)


_register("concatenate", "structural", _concat_rule,
          lambda *xs, axis: np.concatenate([np.asarray(x) for x in xs], axis=axis))


def _dot_rule(x, y):
    """Batched matmul: (..., m, k) @ (..., k, n) with identical batch dims."""
    if x.ndim < 2 or x.ndim != y.ndim or x.shape[:-2] != y.shape[:-2] or x.shape[-1] != y.shape[-2]:
        _fail("dot", "needs (..., m, k) @ (..., k, n) with equal batch dims", x, y)
    if not is_float(x.dtype):
        _fail("dot", "needs float operands", x, y)
    _same_dtype("dot", (x, y))
    return ShapedArray(x.shape[:-1] + y.shape[-1:], x.dtype)


_register("dot", "dot", _dot_rule, lambda x, y: np.asarray(np.matmul(x, y)))
