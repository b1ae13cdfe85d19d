"""`tracegrad.lax`: the `jax.lax` names JAX code uses most, with JAX's signatures and
semantics, written with `tracegrad.numpy` and tracegrad's primitives (so each works on
numpy arrays, eager tensors and traced values, under `jit`, `grad` and `vmap`).

Control flow is tracegrad's own (`cond`, `switch`, `while_loop`, `fori_loop`, `scan`)
plus `map`; `dynamic_slice` and its kin clamp their start indices into bounds (and wrap
negative ones) as JAX's do; `div` and `rem` round toward zero and `round` rounds half
away from zero, as XLA's; `dot_general` is an einsum; `associative_scan` is JAX's
log-depth (Blelloch) algorithm; `reduce` takes any associative computation.

>>> import numpy as np
>>> from tracegrad import lax
>>> lax.dynamic_slice(np.arange(5.0), (4,), (2,)).tolist()  # start clamped to 3
[3.0, 4.0]
>>> lax.associative_scan(lax.add, np.arange(5.0)).tolist()
[0.0, 1.0, 3.0, 6.0, 10.0]
>>> lax.div(np.array([-7, 7]), np.array([2, 2])).tolist()
[-3, 3]
"""
from __future__ import annotations

import builtins
import enum
import operator

import numpy as np

import tracegrad.numpy as tnp
from tracegrad.ir import ops
from tracegrad.tracer.control_flow import cond, fori_loop, scan, switch, while_loop
from tracegrad.tracer.tree import tree_flatten, tree_leaves, tree_unflatten

stop_gradient = tnp.stop_gradient

__all__ = [
    "cond", "switch", "while_loop", "fori_loop", "scan", "map", "stop_gradient",
    "select", "clamp", "rsqrt", "square", "integer_pow", "logistic", "iota",
    "broadcast_in_dim", "dynamic_slice", "dynamic_update_slice", "dynamic_index_in_dim",
    "dynamic_slice_in_dim", "dynamic_update_slice_in_dim", "dynamic_update_index_in_dim",
    "dot_general", "dot", "batch_matmul", "associative_scan", "top_k", "sort", "argmax",
    "argmin", "cumsum", "cumprod", "cummax", "cummin", "reduce", "reduce_sum", "reduce_prod",
    "reduce_max", "reduce_min", "add", "sub", "mul", "div", "rem", "neg", "exp", "expm1",
    "log", "log1p", "sin", "cos", "tan", "tanh", "atan2", "erf", "erfc", "lgamma", "digamma",
    "abs", "max", "min", "pow", "sqrt", "sign", "floor", "ceil", "round", "RoundingMethod",
    "eq", "ne", "lt", "le", "gt", "ge", "convert_element_type", "full", "full_like",
    "reshape", "transpose", "squeeze", "expand_dims", "concatenate", "slice", "slice_in_dim",
    "index_in_dim", "rev",
]


# ---- control flow ----------------------------------------------------------------------

def map(f, xs, *, batch_size=None):  # noqa: A001 (JAX's name)
    """`f` applied to each slice of `xs` (a pytree) along its leading axis, stacked:
    `lax.scan` with no carry, as JAX's.  `batch_size=b` maps `vmap(f)` over batches of
    `b` slices (the remainder in one more `vmap`)."""
    if batch_size is None:
        return scan(lambda _, x: ((), f(x)), (), xs)[1]
    from tracegrad.vectorize import vmap
    leaves, tree = tree_flatten(xs)
    n = tnp.shape(leaves[0])[0]
    b = n if batch_size == 0 else builtins.min(int(batch_size), n)
    full = (n // b) * b if b else 0
    parts = []
    if full:
        batched = tree_unflatten(tree, [tnp.reshape(x[:full], (full // b, b, *tnp.shape(x)[1:]))
                                        for x in leaves])
        ys = scan(lambda _, x: ((), vmap(f)(x)), (), batched)[1]
        parts.append(_tree_map(lambda y: tnp.reshape(y, (full, *tnp.shape(y)[2:])), ys))
    if full < n:
        parts.append(vmap(f)(tree_unflatten(tree, [x[full:] for x in leaves])))
    if len(parts) == 1:
        return parts[0]
    return _tree_map(lambda a, c: tnp.concatenate([a, c], axis=0), *parts)


def _tree_map(f, tree, *rest):
    from tracegrad.tracer.tree import tree_map
    return tree_map(f, tree, *rest)


# ---- elementwise -----------------------------------------------------------------------

def _asarray(x):
    return tnp.asarray(x)


def _is_int(x) -> bool:
    return tnp.issubdtype(_asarray(x).dtype, np.integer)


def add(x, y):
    """x + y."""
    return tnp.add(x, y)


def sub(x, y):
    """x - y."""
    return tnp.subtract(x, y)


def mul(x, y):
    """x * y."""
    return tnp.multiply(x, y)


def div(x, y):
    """x / y; integers round toward zero (C's and XLA's division, not NumPy's floor)."""
    if not (_is_int(x) and _is_int(y)):
        return tnp.divide(x, y)
    q = tnp.floor_divide(x, y)
    inexact = tnp.logical_and(tnp.not_equal(tnp.remainder(x, y), 0),
                              tnp.not_equal(tnp.less(x, 0), tnp.less(y, 0)))
    return tnp.where(inexact, q + 1, q)


def rem(x, y):
    """The remainder of `div`: it has the sign of x (C's fmod)."""
    return tnp.fmod(x, y)


def neg(x):
    """-x."""
    return tnp.negative(x)


def max(x, y):  # noqa: A001 (JAX's name)
    """The elementwise maximum (NaN propagates)."""
    return tnp.maximum(x, y)


def min(x, y):  # noqa: A001 (JAX's name)
    """The elementwise minimum (NaN propagates)."""
    return tnp.minimum(x, y)


def pow(x, y):  # noqa: A001 (JAX's name)
    """x ** y."""
    return tnp.power(x, y)


def integer_pow(x, y):
    """x ** y for a Python int y (x ** 0 is 1 everywhere, with derivative 0)."""
    y = operator.index(y)
    if y == 0:
        return tnp.ones_like(x)
    if y < 0:
        return tnp.reciprocal(integer_pow(x, -y))
    return tnp.power(x, y)


def square(x):
    """x * x."""
    return tnp.square(x)


def rsqrt(x):
    """1 / sqrt(x)."""
    return tnp.reciprocal(tnp.sqrt(x))


def logistic(x):
    """1 / (1 + exp(-x)), stable for large |x|."""
    return tnp.sigmoid(x)


def _unary(name, f, doc):
    def op(x):
        return f(x)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


exp = _unary("exp", tnp.exp, "e ** x.")
expm1 = _unary("expm1", tnp.expm1, "e ** x - 1, accurate near 0.")
log = _unary("log", tnp.log, "The natural logarithm.")
log1p = _unary("log1p", tnp.log1p, "log(1 + x), accurate near 0.")
sin = _unary("sin", tnp.sin, "The sine.")
cos = _unary("cos", tnp.cos, "The cosine.")
tan = _unary("tan", tnp.tan, "The tangent.")
tanh = _unary("tanh", tnp.tanh, "The hyperbolic tangent.")
erf = _unary("erf", tnp.erf, "The error function.")
erfc = _unary("erfc", tnp.erfc, "1 - erf(x).")
lgamma = _unary("lgamma", tnp.lgamma, "log |Gamma(x)|.")
digamma = _unary("digamma", tnp.digamma, "The derivative of lgamma.")
abs = _unary("abs", tnp.abs, "|x|.")  # noqa: A001 (JAX's name)
sqrt = _unary("sqrt", tnp.sqrt, "The square root.")
sign = _unary("sign", tnp.sign, "-1, 0 or 1 (NaN for NaN).")
floor = _unary("floor", tnp.floor, "The largest integer <= x.")
ceil = _unary("ceil", tnp.ceil, "The smallest integer >= x.")


def atan2(x, y):
    """The angle of the point (y, x): arctan(x / y) in the right quadrant."""
    return tnp.arctan2(x, y)


class RoundingMethod(enum.IntEnum):
    """`round`'s rule for halves, as JAX's."""

    AWAY_FROM_ZERO = 0
    TO_NEAREST_EVEN = 1


def round(x, rounding_method=RoundingMethod.AWAY_FROM_ZERO):  # noqa: A001 (JAX's name)
    """x rounded to an integer value; halves go away from zero (JAX's default) or to
    the even neighbour (`RoundingMethod.TO_NEAREST_EVEN`)."""
    if int(rounding_method) == RoundingMethod.TO_NEAREST_EVEN:
        return tnp.round(x)
    t = tnp.trunc(x)
    return tnp.where(tnp.abs(tnp.subtract(x, t)) >= 0.5, t + tnp.sign(x), t)


def _compare(name, f):
    def op(x, y):
        return f(x, y)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"x {dict(eq='==', ne='!=', lt='<', le='<=', gt='>', ge='>=')[name]} y, elementwise."
    return op


eq = _compare("eq", tnp.equal)
ne = _compare("ne", tnp.not_equal)
lt = _compare("lt", tnp.less)
le = _compare("le", tnp.less_equal)
gt = _compare("gt", tnp.greater)
ge = _compare("ge", tnp.greater_equal)


def select(pred, on_true, on_false):
    """on_true where the bool `pred` is True, else on_false (JAX's lax.select)."""
    return tnp.where(pred, on_true, on_false)


def clamp(min, x, max):  # noqa: A002 (JAX's names)
    """x clipped to [min, max]; the derivative is 0 at the bounds and past them (JAX's),
    and a NaN stays NaN."""
    x = _asarray(x)
    at_bound = tnp.logical_or(tnp.equal(x, min), tnp.equal(x, max))
    inside = tnp.where(at_bound, tnp.stop_gradient(x), x)
    return tnp.where(tnp.less(x, min), min, tnp.where(tnp.greater(x, max), max, inside))


# ---- construction, conversion, shapes ---------------------------------------------------

def iota(dtype, size):
    """[0, 1, ..., size - 1] of `dtype`."""
    return tnp.arange(int(size), dtype=dtype)


def convert_element_type(operand, new_dtype):
    """`operand` as `new_dtype`."""
    return tnp.astype(_asarray(operand), new_dtype)


def full(shape, fill_value, dtype=None):
    """An array of `shape` filled with `fill_value`."""
    return tnp.full(shape, fill_value, dtype=dtype)


def full_like(x, fill_value, dtype=None, shape=None):
    """An array like `x` (or of `shape`) filled with `fill_value`."""
    x = _asarray(x)
    return tnp.full(x.shape if shape is None else shape, fill_value,
                    dtype=x.dtype if dtype is None else dtype)


def reshape(operand, new_sizes, dimensions=None):
    """`operand` (transposed by `dimensions` first, if given) reshaped to `new_sizes`."""
    x = _asarray(operand)
    if dimensions is not None:
        x = tnp.transpose(x, tuple(dimensions))
    return tnp.reshape(x, tuple(new_sizes))


def transpose(operand, permutation):
    """The axes of `operand` permuted."""
    return tnp.transpose(_asarray(operand), tuple(permutation))


def squeeze(array, dimensions):
    """`array` without its size-1 axes `dimensions`."""
    return tnp.squeeze(_asarray(array), axis=tuple(dimensions))


def expand_dims(array, dimensions):
    """`array` with size-1 axes inserted at `dimensions`."""
    return tnp.expand_dims(_asarray(array), tuple(dimensions))


def concatenate(operands, dimension):
    """The operands joined along `dimension`."""
    return tnp.concatenate(list(operands), axis=dimension)


def rev(operand, dimensions):
    """`operand` reversed along `dimensions`."""
    return tnp.flip(_asarray(operand), axis=tuple(dimensions))


def broadcast_in_dim(operand, shape, broadcast_dimensions):
    """`operand` broadcast to `shape`, its axis i becoming axis broadcast_dimensions[i]
    (each of size 1 or the target's size)."""
    x = _asarray(operand)
    shape = tuple(int(d) for d in shape)
    dims = tuple(broadcast_dimensions)
    if len(dims) != x.ndim:
        raise ValueError(f"broadcast_in_dim: {len(dims)} broadcast_dimensions for an operand "
                         f"of rank {x.ndim}")
    placed = [1] * len(shape)
    for d, size in zip(dims, x.shape):
        placed[d] = size
    return tnp.broadcast_to(tnp.reshape(x, tuple(placed)), shape)


def _axis_slice(x, axis, start, stop=None, step=None):
    index = [builtins.slice(None)] * x.ndim
    index[axis] = builtins.slice(start, stop, step)
    return x[tuple(index)]


def slice(operand, start_indices, limit_indices, strides=None):  # noqa: A001
    """operand[start:limit:stride] on every axis."""
    strides = strides or (1,) * len(start_indices)
    return _asarray(operand)[tuple(builtins.slice(a, b, s) for a, b, s
                                   in zip(start_indices, limit_indices, strides))]


def slice_in_dim(operand, start_index, limit_index, stride=1, axis=0):
    """operand[start:limit:stride] along `axis`."""
    return _axis_slice(_asarray(operand), axis, start_index, limit_index, stride)


def index_in_dim(operand, index, axis=0, keepdims=True):
    """The slice at the static `index` along `axis` (kept as a size-1 axis by default)."""
    x = _asarray(operand)
    index = index + x.shape[axis] if index < 0 else index
    y = _axis_slice(x, axis, index, index + 1)
    return y if keepdims else tnp.squeeze(y, axis=axis)


# ---- dynamic slicing -------------------------------------------------------------------

def _starts(x, start_indices, allow_negative_indices):
    """One int64 start per axis, negatives wrapped (when allowed); the primitives clamp
    them into bounds."""
    if isinstance(start_indices, (list, tuple)):
        starts = list(start_indices)
    else:
        starts = [start_indices[i] for i in range(x.ndim)]
    if len(starts) != x.ndim:
        raise ValueError(f"{len(starts)} start indices for an operand of rank {x.ndim}")
    allow = allow_negative_indices
    allow = [allow] * x.ndim if isinstance(allow, (bool, np.bool_)) else list(allow)
    out = []
    for s, d, wrap in zip(starts, x.shape, allow):
        if isinstance(s, (int, np.integer)):
            out.append(np.int64(s + d if wrap and s < 0 else s))
        else:
            s = tnp.astype(tnp.asarray(s), np.int64)
            out.append(tnp.where(tnp.less(s, 0), s + d, s) if wrap else s)
    return out


def dynamic_slice(operand, start_indices, slice_sizes, *, allow_negative_indices=True):
    """The window of `slice_sizes` at `start_indices` (ints or traced scalars); starts
    are clamped so that the window stays in bounds, as JAX's."""
    x = _asarray(operand)
    return ops.dynamic_slice(x, *_starts(x, start_indices, allow_negative_indices),
                             sizes=tuple(int(s) for s in slice_sizes))


def dynamic_update_slice(operand, update, start_indices, *, allow_negative_indices=True):
    """`operand` with the window at `start_indices` (clamped into bounds) replaced by
    `update` (converted to operand's dtype)."""
    x = _asarray(operand)
    u = tnp.astype(_asarray(update), x.dtype)
    return ops.dynamic_update_slice(x, u, *_starts(x, start_indices, allow_negative_indices))


def _in_dim(x, index, axis):
    starts = [0] * x.ndim
    starts[axis % x.ndim] = index
    return starts


def dynamic_slice_in_dim(operand, start_index, slice_size, axis=0, *,
                         allow_negative_indices=True):
    """`slice_size` entries from `start_index` (clamped) along `axis`."""
    x = _asarray(operand)
    sizes = list(x.shape)
    sizes[axis] = slice_size
    return dynamic_slice(x, _in_dim(x, start_index, axis), sizes,
                         allow_negative_indices=allow_negative_indices)


def dynamic_index_in_dim(operand, index, axis=0, keepdims=True, *, allow_negative_indices=True):
    """The slice at `index` (clamped) along `axis`, kept as a size-1 axis by default."""
    y = dynamic_slice_in_dim(operand, index, 1, axis,
                             allow_negative_indices=allow_negative_indices)
    return y if keepdims else tnp.squeeze(y, axis=axis)


def dynamic_update_slice_in_dim(operand, update, start_index, axis, *,
                                allow_negative_indices=True):
    """`operand` with `update` written from `start_index` (clamped) along `axis`."""
    x = _asarray(operand)
    return dynamic_update_slice(x, update, _in_dim(x, start_index, axis),
                                allow_negative_indices=allow_negative_indices)


def dynamic_update_index_in_dim(operand, update, index, axis, *, allow_negative_indices=True):
    """`operand` with the slice at `index` along `axis` replaced by `update` (which may
    lack that axis)."""
    x, u = _asarray(operand), _asarray(update)
    if u.ndim == x.ndim - 1:
        u = tnp.expand_dims(u, axis)
    return dynamic_update_slice_in_dim(x, u, index, axis,
                                       allow_negative_indices=allow_negative_indices)


# ---- contractions ----------------------------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """The contraction `((lhs_contract, rhs_contract), (lhs_batch, rhs_batch))`: the
    result's axes are the batch axes, then lhs's free axes, then rhs's (an einsum)."""
    (lc, rc), (lb, rb) = dimension_numbers
    lhs, rhs = _asarray(lhs), _asarray(rhs)
    letters = iter(_LETTERS)
    ls = [next(letters) for _ in range(lhs.ndim)]
    rs = [next(letters) for _ in range(rhs.ndim)]
    for a, b in [*zip(lc, rc), *zip(lb, rb)]:
        rs[b] = ls[a]
    out = ([ls[a] for a in lb] + [c for i, c in enumerate(ls) if i not in (*lc, *lb)]
           + [c for i, c in enumerate(rs) if i not in (*rc, *rb)])
    res = tnp.einsum(f"{''.join(ls)},{''.join(rs)}->{''.join(out)}", lhs, rhs)
    return res if preferred_element_type is None else tnp.astype(res, preferred_element_type)


def dot(lhs, rhs, precision=None, preferred_element_type=None):
    """Vector and matrix products (lhs's last axis with rhs's first)."""
    res = tnp.dot(lhs, rhs)
    return res if preferred_element_type is None else tnp.astype(res, preferred_element_type)


def batch_matmul(lhs, rhs, precision=None):
    """Batched matrix products over the leading axes."""
    return tnp.matmul(lhs, rhs)


# ---- scans, sorting, reductions ---------------------------------------------------------

def _cumulative(name, op):
    def f(operand, axis=0, reverse=False):
        return op(_asarray(operand), axis, reverse=bool(reverse))
    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"The running {name[3:]} along `axis` (from the end when `reverse`), "
                 "with the operand's dtype.")
    return f


cumsum = _cumulative("cumsum", ops.cumsum)
cumprod = _cumulative("cumprod", ops.cumprod)
cummax = _cumulative("cummax", ops.cummax)
cummin = _cumulative("cummin", ops.cummin)


def _interleave(a, b, axis):
    """a[0], b[0], a[1], b[1], ... along `axis` (a has as many entries as b, or one more)."""
    extra = a.shape[axis] - b.shape[axis]
    head = _axis_slice(a, axis, 0, a.shape[axis] - extra)
    pairs = tnp.stack([head, b], axis=axis + 1)
    shape = list(a.shape)
    shape[axis] = 2 * b.shape[axis]
    merged = tnp.reshape(pairs, tuple(shape))
    return tnp.concatenate([merged, _axis_slice(a, axis, -1)], axis=axis) if extra else merged


def associative_scan(fn, elems, reverse=False, axis=0):
    """Prefix combinations `[a, fn(a, b), fn(fn(a, b), c), ...]` of the pytree `elems`
    along `axis`, for an associative `fn` applied elementwise to batches of elements
    (JAX's log-depth algorithm: about 2 log2(n) calls of `fn`).  `reverse` scans from
    the end."""
    if not callable(fn):
        raise TypeError("lax.associative_scan: fn argument should be callable.")
    leaves, tree = tree_flatten(elems)
    leaves = [_asarray(x) for x in leaves]
    axis = axis % leaves[0].ndim
    if builtins.any(x.shape[axis] != leaves[0].shape[axis] for x in leaves):
        raise ValueError("Array inputs to associative_scan must have the same size along "
                         f"the scanned axis (saw: {[x.shape for x in leaves]})")
    if reverse:
        leaves = [tnp.flip(x, axis) for x in leaves]

    def combine(a, b):
        return tree_leaves(fn(tree_unflatten(tree, a), tree_unflatten(tree, b)))

    def part(xs, start, stop=None, step=None):
        return [_axis_slice(x, axis, start, stop, step) for x in xs]

    def run(xs):
        n = xs[0].shape[axis]
        if n < 2:
            return xs
        odd = run(combine(part(xs, 0, -1, 2), part(xs, 1, None, 2)))
        even = combine(part(odd, 0, -1) if n % 2 == 0 else odd, part(xs, 2, None, 2))
        even = [tnp.concatenate([first, e], axis=axis) for first, e in zip(part(xs, 0, 1), even)]
        return [_interleave(e, o, axis) for e, o in zip(even, odd)]

    out = run(leaves)
    if reverse:
        out = [tnp.flip(x, axis) for x in out]
    return tree_unflatten(tree, out)


def top_k(operand, k, *, axis=-1):
    """(values, indices) of the `k` largest entries along `axis` (the last by default),
    largest first; ties keep the lower index first and NaN counts as the largest, as
    JAX's.  Indices are int32, as JAX's."""
    x = tnp.moveaxis(_asarray(operand), axis, -1)
    k = operator.index(k)
    if not 0 <= k <= x.shape[-1]:
        raise ValueError(f"top_k: k={k} is not within [0, {x.shape[-1]}]")
    nan = tnp.isnan(x) if tnp.issubdtype(x.dtype, np.floating) else tnp.zeros(x.shape, bool)
    key = tnp.where(nan, 0, tnp.negative(x))
    idx = tnp.lexsort((key, tnp.logical_not(nan)))[..., :k]
    values = tnp.take_along_axis(x, idx, axis=-1)
    return tnp.moveaxis(values, -1, axis), tnp.moveaxis(tnp.astype(idx, np.int32), -1, axis)


def sort(operand, dimension=-1, is_stable=True, num_keys=1):
    """`operand` sorted along `dimension`; a tuple of operands is sorted by its first
    one (`num_keys=1` only), the others permuted alike."""
    if not isinstance(operand, (tuple, list)):
        return tnp.sort(_asarray(operand), axis=dimension)
    if num_keys != 1:
        raise NotImplementedError("lax.sort: only num_keys=1 is supported")
    order = tnp.argsort(_asarray(operand[0]), axis=dimension, stable=True)
    return tuple(tnp.take_along_axis(_asarray(x), order, axis=dimension) for x in operand)


def argmax(operand, axis, index_dtype):
    """The index of the largest entry along `axis`, as `index_dtype`."""
    return tnp.astype(tnp.argmax(_asarray(operand), axis=axis), index_dtype)


def argmin(operand, axis, index_dtype):
    """The index of the smallest entry along `axis`, as `index_dtype`."""
    return tnp.astype(tnp.argmin(_asarray(operand), axis=axis), index_dtype)


def reduce_sum(operand, axes):
    """The sum over `axes`."""
    return tnp.sum(_asarray(operand), axis=tuple(axes))


def reduce_prod(operand, axes):
    """The product over `axes`."""
    return tnp.prod(_asarray(operand), axis=tuple(axes))


def reduce_max(operand, axes):
    """The maximum over `axes`."""
    return tnp.max(_asarray(operand), axis=tuple(axes))


def reduce_min(operand, axes):
    """The minimum over `axes`."""
    return tnp.min(_asarray(operand), axis=tuple(axes))


_MONOIDS = {add: tnp.sum, mul: tnp.prod, max: tnp.max, min: tnp.min,
            tnp.add: tnp.sum, tnp.multiply: tnp.prod, tnp.maximum: tnp.max,
            tnp.minimum: tnp.min, np.add: tnp.sum, np.multiply: tnp.prod,
            np.maximum: tnp.max, np.minimum: tnp.min, operator.add: tnp.sum,
            operator.mul: tnp.prod}


def _is_leaf_tree(tree) -> bool:
    """Whether the treedef is a single leaf (no container)."""
    return tree.num_leaves == 1 and not tree.children


def reduce(operands, init_values, computation, dimensions):
    """`operands` (an array or a pytree of arrays) reduced over `dimensions` with the
    associative, commutative `computation(a, b)`, combined once with `init_values`.
    add/mul/max/min (lax's, numpy's or operator's) are one reduction; any other
    computation is applied pairwise, in log2(n) rounds."""
    leaves, tree = tree_flatten(operands)
    leaves = [_asarray(x) for x in leaves]
    inits = [tnp.asarray(v, dtype=x.dtype) for v, x in zip(tree_leaves(init_values), leaves)]
    dims = tuple(sorted({d % leaves[0].ndim for d in dimensions}))
    monoid = _MONOIDS.get(computation) if _is_leaf_tree(tree) else None
    if monoid is not None:
        return computation(inits[0], monoid(leaves[0], axis=dims))

    def combine(a, b):
        return tree_leaves(computation(tree_unflatten(tree, a), tree_unflatten(tree, b)))

    kept = [d for d in range(leaves[0].ndim) if d not in dims]
    shape = tuple(leaves[0].shape[d] for d in kept)
    flat = [tnp.reshape(tnp.transpose(x, (*kept, *dims)), (*shape, -1)) for x in leaves]
    n = flat[0].shape[-1]
    if n == 0:
        return tree_unflatten(tree, [tnp.broadcast_to(v, shape) for v in inits])
    while n > 1:
        h = n // 2
        merged = combine([x[..., :h] for x in flat], [x[..., h:2 * h] for x in flat])
        flat = [tnp.concatenate([m, x[..., 2 * h:]], axis=-1) if n % 2 else m
                for m, x in zip(merged, flat)]
        n = h + n % 2
    return tree_unflatten(tree, combine(inits, [x[..., 0] for x in flat]))
