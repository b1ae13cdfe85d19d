"""Structure: pad, tile, repeat, flip, roll, insert/delete, triangles, meshgrid, diff, diag.

Every function is static index work composed of the structural primitives
(slice, pad, concatenate, broadcast, reshape, transpose) and `where`: fusion
sees through all of it and the gradients are the transposed index maps.
Index maps that NumPy defines by example (pad's reflect/symmetric/wrap modes,
insert, delete, per-element repeat) are computed by running NumPy on
`arange(n)`, then lowered to as few slices as possible (`take_static`).
"""
from __future__ import annotations

import builtins
import operator

import numpy as np

from tracegrad.ir import ops
from tracegrad.ir.core import is_float
from tracegrad.ir.primitives import SYMBOLIC_SCALARS

from .. import dtypes
from ._core import (
    _convert, _dtype, _fail, _fresh, _lift, _ndim, _norm_axes, _norm_axis, _operand, _shape,
    is_boxed,
)
from .elementwise import add, divide, multiply, negative, not_equal, subtract, where
from .elementwise import where as _where
from .reductions import max, mean, min, sum
from .shapes import (broadcast_to, concatenate, expand_dims, moveaxis, ravel, reshape,
                     swapaxes)

# ---- static index maps -------------------------------------------------------------------


def slice_axis(a, axis: int, start: int, size: int, step: int = 1):
    """a[..., start + i*step for i < size, ...] along `axis` (one slice primitive)."""
    shp = _shape(a)
    if size == shp[axis] and step == 1:
        return a
    n = len(shp)
    starts = tuple(start if i == axis and size else 0 for i in range(n))
    steps = tuple(step if i == axis else 1 for i in range(n))
    return ops.slice(a, starts, steps, tuple(size if i == axis else d for i, d in enumerate(shp)))


def _runs(idx):
    """`idx` as maximal arithmetic runs (start, step, length)."""
    runs, i = [], 0
    while i < len(idx):
        j = i + 1
        step = int(idx[j] - idx[i]) if j < len(idx) else 1
        while j < len(idx) and idx[j] - idx[j - 1] == step:
            j += 1
        runs.append((int(idx[i]), step, j - i))
        i = j
    return runs


def _run(a, axis, start, step, length):
    if step != 0:
        return slice_axis(a, axis, start, length, step)
    one = slice_axis(a, axis, start, 1)
    shp = _shape(one)
    return ops.broadcast(one, shp[:axis] + (length,) + shp[axis + 1:])


def take_static(a, idx, axis: int):
    """a.take(idx, axis) for a static index array: slices (broadcasts for repeats) joined
    along `axis`, so fusion and autodiff see plain structural primitives."""
    idx = np.asarray(idx, np.int64).reshape(-1)
    if idx.size == 0:
        return slice_axis(a, axis, 0, 0)
    runs = _runs(idx)
    if len(runs) > MAX_RUNS:
        from .indexing import take  # one gather instead of a long chain of slices
        return take(a, idx, axis=axis)
    parts = [_run(a, axis, *r) for r in runs]
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis)


# More runs than this gather instead (graph size stays independent of the array's size).
MAX_RUNS = 32


def _static_ints(op, value, what):
    if _is_traced_scalar(value):
        _fail(op, f"{what} must be static (Python or NumPy integers), not a traced value",
              exc=TypeError)
    arr = np.asarray(value)
    if arr.dtype.kind not in "biu":
        raise TypeError(f"{op}: {what} must be integers, got {arr.dtype}")
    return arr.astype(np.int64)


# ---- flip, rot90, roll --------------------------------------------------------------------

def flip(m, axis=None):
    """Reverse the order of elements along `axis` (all axes by default)."""
    m = _operand(m)
    for ax in _norm_axes(axis, _ndim(m)):
        d = _shape(m)[ax]
        m = slice_axis(m, ax, d - 1, d, -1) if d > 1 else m
    return m


def fliplr(m):
    m = _operand(m)
    if _ndim(m) < 2:
        raise ValueError("fliplr: input must be >= 2-d")
    return flip(m, 1)


def flipud(m):
    m = _operand(m)
    if _ndim(m) < 1:
        raise ValueError("flipud: input must be >= 1-d")
    return flip(m, 0)


def rot90(m, k=1, axes=(0, 1)):
    """Rotate by 90 degrees `k` times in the plane of `axes` (from the first towards the second)."""
    m = _operand(m)
    n = _ndim(m)
    if len(axes) != 2:
        raise ValueError("rot90: len(axes) must be 2")
    a0, a1 = _norm_axis(axes[0], n), _norm_axis(axes[1], n)
    if a0 == a1:
        raise ValueError("rot90: axes must be different")
    k = operator.index(k) % 4
    if k == 2:
        return flip(m, (a0, a1))
    if k == 1:
        return swapaxes(flip(m, a1), a0, a1)
    return flip(swapaxes(m, a0, a1), a1) if k == 3 else m


def _roll_axis(a, shift, axis):
    d = _shape(a)[axis]
    s = shift % d if d else 0
    if not s:
        return a
    return ops.concatenate([slice_axis(a, axis, d - s, s), slice_axis(a, axis, 0, d - s)], axis)


def roll(a, shift, axis=None):
    """Shift elements cyclically along `axis` (the flattened array if None)."""
    a = _operand(a)
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), _shape(a))
    shifts, axes = np.broadcast_arrays(_static_ints("roll", shift, "shift"), np.asarray(axis))
    total = {}
    for s, ax in zip(shifts.reshape(-1), axes.reshape(-1)):
        ax = _norm_axis(ax, _ndim(a))
        total[ax] = total.get(ax, 0) + int(s)
    for ax, s in total.items():
        a = _roll_axis(a, s, ax)
    return a


# ---- tile, repeat, resize -----------------------------------------------------------------

def tile(A, reps):
    """Repeat the whole of `A` `reps` times per axis (one broadcast and one reshape)."""
    A = _operand(A)
    reps = tuple(int(r) for r in _static_ints("tile", reps, "reps").reshape(-1))
    if builtins.min(reps, default=0) < 0:
        raise ValueError("tile: negative dimensions are not allowed")
    n = builtins.max(len(reps), _ndim(A))
    shp = (1,) * (n - _ndim(A)) + _shape(A)
    reps = (1,) * (n - len(reps)) + reps
    inter = tuple(x for r, d in zip(reps, shp) for x in (r, d))
    spread = ops.broadcast(ops.reshape(A, tuple(x for d in shp for x in (1, d))), inter)
    return ops.reshape(spread, tuple(r * d for r, d in zip(reps, shp)))


def repeat(a, repeats, axis=None):
    """Repeat each element `repeats` times (an int, or one count per element) along `axis`."""
    a = _operand(a)
    if axis is None:
        a, axis = ravel(a), 0
    ax = _norm_axis(axis, _ndim(a))
    counts = _static_ints("repeat", repeats, "repeats")
    if (counts < 0).any():
        raise ValueError("repeat: negative repeats are not allowed")
    d = _shape(a)[ax]
    if counts.ndim == 0 or counts.size == 1:
        r = int(counts.reshape(-1)[0])
        shp = _shape(a)
        wide = ops.broadcast(ops.reshape(a, shp[:ax + 1] + (1,) + shp[ax + 1:]),
                             shp[:ax + 1] + (r,) + shp[ax + 1:])
        return ops.reshape(wide, shp[:ax] + (d * r,) + shp[ax + 1:])
    if counts.shape != (d,):
        raise ValueError(f"repeat: {counts.size} repeats cannot be broadcast to an axis of {d}")
    return take_static(a, np.repeat(np.arange(d), counts), ax)


def resize(a, new_shape):
    """`a` flattened, repeated cyclically and cut to `new_shape` (zeros if `a` is empty)."""
    a = _operand(a)
    new_shape = (new_shape,) if isinstance(new_shape, (int, np.integer)) else tuple(new_shape)
    if builtins.min(new_shape, default=0) < 0:
        raise ValueError("resize: all elements of `new_shape` must be non-negative")
    total, flat = int(np.prod(new_shape, dtype=np.int64)), ravel(a)
    n = _shape(flat)[0]
    if n == 0 or total == 0:
        return ops.broadcast(np.zeros((), _dtype(a)), new_shape) if is_boxed(a) \
            else np.zeros(new_shape, _dtype(a))
    reps = -(-total // n)
    cyc = ops.reshape(ops.broadcast(ops.reshape(flat, (1, n)), (reps, n)), (reps * n,))
    return ops.reshape(slice_axis(cyc, 0, 0, total), new_shape)


# ---- pad ------------------------------------------------------------------------------------

def _pairs(op, value, n, what, cast=int):
    arr = np.asarray(value)
    try:
        arr = np.broadcast_to(arr, (n, 2))
    except ValueError:
        raise ValueError(f"{op}: {what} {value!r} cannot be broadcast to ({n}, 2)") from None
    return [(cast(x), cast(y)) for x, y in arr.tolist()]


def _is_traced_scalar(v) -> bool:
    """A tensor or traced value, or a traced Python scalar (not a static value)."""
    return is_boxed(v) or getattr(v, "_tg_symbolic", None) is not None


def _value_pairs(value, n, what, cast):
    """`_pairs` for values that may be traced scalars (kept as they are, differentiable):
    a scalar, a (before, after) pair, or one pair per axis, as NumPy broadcasts them."""
    def leaves(v):
        return [v] if not isinstance(v, (list, tuple)) else [x for y in v for x in leaves(y)]
    if not any(_is_traced_scalar(v) for v in leaves(value)):
        return _pairs("pad", value, n, what, cast=cast)
    if _is_traced_scalar(value):
        if _ndim(_operand(value)) != 0:
            raise TypeError(f"pad: a traced {what} must be a scalar")
        return [(value, value)] * n
    rows = list(value)
    if len(rows) == 2 and not any(isinstance(r, (list, tuple)) for r in rows):
        return [tuple(rows)] * n
    rows = rows * n if len(rows) == 1 else rows
    if len(rows) != n:
        raise ValueError(f"pad: {what} {value!r} cannot be broadcast to ({n}, 2)")
    return [tuple(r) * (2 // len(r)) if isinstance(r, (list, tuple)) else (r, r) for r in rows]


def _pad_constant(a, widths, values):
    if all(not is_boxed(v) and np.all(np.asarray(v) == 0) for pair in values for v in pair):
        shp = _shape(a)
        out = tuple(b + d + e for (b, e), d in zip(widths, shp))
        return ops.pad(a, tuple(b for b, _ in widths), (1,) * len(shp), out) \
            if out != shp else a
    for ax, ((b, e), (vb, ve)) in enumerate(zip(widths, values)):
        a = _join_pads(a, ax, _fill(a, ax, b, vb), _fill(a, ax, e, ve))
    return a


def _fill(a, axis, width, value):
    shp = _shape(a)
    return ops.broadcast(_lift(value, _dtype(a)), shp[:axis] + (width,) + shp[axis + 1:])


def _join_pads(a, axis, before, after):
    parts = [p for p in (before, a, after) if _shape(p)[axis] or p is a]
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis)


def _pad_indexed(a, widths, mode, kwargs):
    for ax, (b, e) in enumerate(widths):
        if b or e:
            idx = np.pad(np.arange(_shape(a)[ax]), (b, e), mode=mode, **kwargs)
            a = take_static(a, idx, ax)
    return a


def _pad_odd(a, widths, mode):
    # reflect_type='odd' is linear in `a` but not an index map: its matrix along each
    # axis comes from NumPy on the identity, applied as a (float) contraction.
    from .contractions import tensordot
    for ax, (b, e) in enumerate(widths):
        if b or e:
            d = _shape(a)[ax]
            mat = np.pad(np.eye(d, dtype=_dtype(a)), ((b, e), (0, 0)), mode=mode,
                         reflect_type="odd")
            a = moveaxis(tensordot(mat, a, ([1], [ax])), 0, ax)
    return a


def _extended_size(a, ax) -> int:
    """The size of axis `ax`, which the statistic and ramp modes extend from its values."""
    d = _shape(a)[ax]
    if d == 0:
        raise ValueError(f"pad: can't extend empty axis {ax} using modes other than "
                         "'constant' or 'empty'")
    return d


def _pad_stat(a, widths, stat, lengths):
    reduce = {"maximum": max, "minimum": min, "mean": mean, "median": _median}[stat]
    for ax, ((b, e), (lb, le)) in enumerate(zip(widths, lengths)):
        if not (b or e):
            continue
        d = _extended_size(a, ax)
        head = reduce(slice_axis(a, ax, 0, builtins.min(lb, d) or d), axis=ax, keepdims=True)
        last = builtins.min(le, d) or d
        tail = reduce(slice_axis(a, ax, d - last, last), axis=ax, keepdims=True)
        if stat in ("mean", "median") and not is_float(_dtype(a)):
            head, tail = _round_to(head, _dtype(a)), _round_to(tail, _dtype(a))
        a = _join_pads(a, ax, _spread(head, ax, b), _spread(tail, ax, e))
    return a


def _round_to(x, dt):
    """Round half to even and cast, as NumPy does for integer mean and ramp pads."""
    from . import elementwise, math
    rint = getattr(elementwise, "rint", None) or getattr(math, "rint", None)
    if rint is None:
        raise TypeError(f"pad: modes 'mean' and 'linear_ramp' of {dt} arrays need rounding, "
                        "which is not available; pad a float array")
    return _convert(rint(x), dt)


def _median(a, axis, keepdims):
    from . import sorting
    return sorting.median(a, axis=axis, keepdims=keepdims)


def _spread(x, axis, n):
    shp = _shape(x)
    return ops.broadcast(x, shp[:axis] + (n,) + shp[axis + 1:])


def _pad_ramp(a, widths, ends):
    for ax, ((b, e), (vb, ve)) in enumerate(zip(widths, ends)):
        if not (b or e):
            continue
        d = _extended_size(a, ax)
        before = _ramp(slice_axis(a, ax, 0, 1), ax, vb, b, False)
        after = _ramp(slice_axis(a, ax, d - 1, 1), ax, ve, e, True)
        a = _join_pads(a, ax, before, after)
    return a


def _ramp(edge, axis, end, n, reverse):
    """n values going linearly from `end` towards (not reaching) `edge`, computed as NumPy's
    linear_ramp does: end + i * ((edge - end) / n)."""
    dt = _dtype(edge)
    ft = dtypes.float_result(dt)
    e = _convert(edge, ft)
    end = _lift(end, ft)
    shape = [1] * _ndim(edge)
    shape[axis] = n
    i = np.arange(n, dtype=ft)[::-1 if reverse else 1].reshape(shape)
    full = _shape(_spread(e, axis, n))
    step = ops.broadcast(ops.div(ops.sub(e, end), np.asarray(n, ft)), full)
    vals = ops.add(ops.broadcast(end, full), ops.mul(step, ops.broadcast(i, full)))
    return vals if is_float(dt) else _floor_to(vals, dt)


def _floor_to(x, dt):
    """NumPy's ramps are linspace(..., dtype=int), which floors."""
    from .constructors import _floor_int
    return _floor_int(x, dt)


PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap", "linear_ramp", "maximum",
             "minimum", "mean", "median", "empty")


def pad(array, pad_width, mode="constant", **kwargs):
    """NumPy's pad: constant (per-axis values), edge, reflect/symmetric (even and odd), wrap,
    linear_ramp, maximum, minimum, mean and median (with `stat_length`); 'empty' pads with
    zeros."""
    a = _operand(array)
    n = _ndim(a)
    if callable(mode) or mode not in PAD_MODES:
        raise ValueError(f"pad: mode {mode!r} is not supported (supported: {', '.join(PAD_MODES)})")
    widths = _pairs("pad", _static_ints("pad", pad_width, "pad_width"), n, "pad_width")
    if builtins.min((w for p in widths for w in p), default=0) < 0:
        raise ValueError("pad: index can't contain negative values")
    allowed = {"constant": {"constant_values"}, "linear_ramp": {"end_values"},
               "reflect": {"reflect_type"}, "symmetric": {"reflect_type"},
               "maximum": {"stat_length"}, "minimum": {"stat_length"}, "mean": {"stat_length"},
               "median": {"stat_length"}}
    extra = set(kwargs) - allowed.get(mode, set())
    if extra:
        raise ValueError(f"pad: unsupported keyword arguments for mode '{mode}': {sorted(extra)}")
    return _fresh(_pad_mode(a, widths, mode, kwargs), a)


def _pad_mode(a, widths, mode, kwargs):
    n = _ndim(a)
    if mode in ("constant", "empty"):
        values = _value_pairs(kwargs.get("constant_values", 0), n, "constant_values",
                              cast=lambda v: v)
        return _pad_constant(a, widths, values)
    if mode == "linear_ramp":
        return _pad_ramp(a, widths, _value_pairs(kwargs.get("end_values", 0), n, "end_values",
                                                 cast=float))
    if mode in ("maximum", "minimum", "mean", "median"):
        lengths = kwargs.get("stat_length")
        lengths = [(0, 0)] * n if lengths is None else _pairs("pad", lengths, n, "stat_length")
        return _pad_stat(a, widths, mode, lengths)
    if kwargs.get("reflect_type", "even") == "odd":
        return _pad_odd(a, widths, mode)
    return _pad_indexed(a, widths, mode, {})


# ---- insert, delete, append ----------------------------------------------------------------

def append(arr, values, axis=None):
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], axis=0)
    return concatenate([arr, values], axis=axis)


def delete(arr, obj, axis=None):
    """`arr` without the entries `obj` (static ints, slice or bool mask) along `axis`."""
    a = _operand(arr)
    if axis is None:
        a, axis = ravel(a), 0
    ax = _norm_axis(axis, _ndim(a))
    keep = np.ones(_shape(a)[ax], bool)
    if isinstance(obj, builtins.slice):
        keep[obj] = False
    else:
        sel = np.asarray(obj) if not is_boxed(obj) else _static_ints("delete", obj, "obj")
        if sel.dtype == np.bool_:
            if sel.shape != keep.shape:
                raise ValueError("delete: boolean array argument obj must be one dimensional "
                                 "and match the axis length")
            keep = ~sel
        else:
            keep[_static_ints("delete", sel, "obj")] = False
    return take_static(a, np.flatnonzero(keep), ax)


def insert(arr, obj, values, axis=None):
    """`values` inserted before the static indices `obj` along `axis` (NumPy's rules for
    scalar and sequence `obj`, and for broadcasting `values`)."""
    a = _operand(arr)
    if axis is None:
        a, axis = ravel(a), 0
    ax = _norm_axis(axis, _ndim(a))
    d = _shape(a)[ax]
    index = np.arange(d)[obj] if isinstance(obj, builtins.slice) else \
        _static_ints("insert", obj, "obj")
    v = _convert(_operand(values), _dtype(a))
    v = ops.reshape(v, (1,) * (_ndim(a) - _ndim(v)) + _shape(v))
    if index.ndim == 0:
        v = moveaxis(v, 0, ax)
        numnew = _shape(v)[ax]
    else:
        numnew = index.size
    target = _shape(a)[:ax] + (numnew,) + _shape(a)[ax + 1:]
    v = broadcast_to(v, target)
    order = np.insert(np.arange(d), index, np.arange(d, d + numnew))
    return take_static(ops.concatenate([a, v], ax), order, ax) if numnew else a


# ---- triangles -------------------------------------------------------------------------------

def tri(N, M=None, k=0, dtype=float):
    return np.tri(N, M, k, dtype=dtypes.check(dtype))


def _masked(name, m, mask_fn):
    m = _operand(m)
    shp = _shape(m)
    rows, cols = (shp[-2], shp[-1]) if len(shp) >= 2 else (shp[-1], shp[-1]) if shp else (0, 0)
    if not shp:
        raise ValueError(f"{name}: input must be at least 1-d")
    return where(mask_fn(rows, cols), m, np.zeros((), _dtype(m)))


def tril(m, k=0):
    """Lower triangle of the last two axes (entries above diagonal `k` zeroed)."""
    return _masked("tril", m, lambda r, c: np.tri(r, c, k, dtype=bool))


def triu(m, k=0):
    """Upper triangle of the last two axes (entries below diagonal `k` zeroed)."""
    return _masked("triu", m, lambda r, c: ~np.tri(r, c, k - 1, dtype=bool))


# ---- meshgrid, broadcast_arrays ------------------------------------------------------------

def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """Coordinate grids from 1-D coordinate vectors ('xy': Cartesian, 'ij': matrix)."""
    if indexing not in ("xy", "ij"):
        raise ValueError("meshgrid: valid values for `indexing` are 'xy' and 'ij'")
    xs = [ravel(x) for x in xi]
    n = len(xs)
    where_ = list(range(n))
    if indexing == "xy" and n > 1:
        where_[0], where_[1] = 1, 0
    lens = [_shape(x)[0] for x in xs]
    full = tuple(lens[where_.index(i)] for i in range(n))
    out = [ops.reshape(x, tuple(lens[k] if i == p else 1 for i in range(n)))
           for k, (x, p) in enumerate(zip(xs, where_))]
    return tuple(out if sparse else (ops.broadcast(o, full) for o in out))


def broadcast_shapes(*shapes):
    return np.broadcast_shapes(*shapes)


def broadcast_arrays(*args, subok=False):
    arrays = [_operand(x) for x in args]
    try:
        shape = np.broadcast_shapes(*(_shape(x) for x in arrays))
    except ValueError:
        _fail("broadcast_arrays", "shape mismatch: objects cannot be broadcast to a single shape",
              arrays, ValueError)
    return tuple(ops.broadcast(x, shape) for x in arrays)


# ---- diff, ediff1d ----------------------------------------------------------------------------

def _edge_values(v, a, ax):
    v = _operand(v)
    if _ndim(v) == 0:
        shp = _shape(a)
        return ops.broadcast(v, shp[:ax] + (1,) + shp[ax + 1:])
    return v


def diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    """n-th discrete difference along `axis` (not_equal for bools, as in NumPy)."""
    a = _operand(a)
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"diff: order must be non-negative but got {n}")
    if _ndim(a) == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    ax = _norm_axis(axis, _ndim(a))
    parts = [a]
    if prepend is not np._NoValue:
        parts.insert(0, _edge_values(prepend, a, ax))
    if append is not np._NoValue:
        parts.append(_edge_values(append, a, ax))
    a = concatenate(parts, axis=ax) if len(parts) > 1 else a
    op = not_equal if _dtype(a) == dtypes.BOOL else subtract
    for _ in range(n):
        d = _shape(a)[ax]
        if d == 0:
            break
        a = op(slice_axis(a, ax, 1, d - 1), slice_axis(a, ax, 0, d - 1))
    return a


def ediff1d(ary, to_end=None, to_begin=None):
    """Differences of consecutive elements of the flattened array, with optional ends."""
    a = ravel(ary)
    d = diff(a) if _shape(a)[0] else a
    parts = [ravel(_convert(_operand(x), _dtype(a))) for x in (to_begin,) if x is not None]
    parts += [d] + [ravel(_convert(_operand(x), _dtype(a))) for x in (to_end,) if x is not None]
    return concatenate(parts) if len(parts) > 1 else d


# ---- diagonals ---------------------------------------------------------------------------------

def diagonal(a, offset=0, axis1=0, axis2=1):
    """The `offset` diagonal of the plane (axis1, axis2), as the last axis (one strided slice)."""
    a = _operand(a)
    n = _ndim(a)
    if n < 2:
        raise ValueError("diagonal requires an array of at least two dimensions")
    i, j = _norm_axis(axis1, n), _norm_axis(axis2, n)
    if i == j:
        raise ValueError("diagonal: axis1 and axis2 cannot be the same")
    rest = [x for x in range(n) if x not in (i, j)]
    a = ops.transpose(a, rest + [i, j])
    shp = _shape(a)
    rows, cols = shp[-2:]
    k = operator.index(offset)
    size = builtins.max(0, builtins.min(rows, cols - k) if k >= 0 else builtins.min(rows + k, cols))
    flat = ops.reshape(a, shp[:-2] + (rows * cols,))
    start = k if k >= 0 else -k * cols
    return slice_axis(flat, n - 2, start if size else 0, size, cols + 1)


def diag(v, k=0):
    """The `k` diagonal of a 2-D `v`, or a 2-D array with 1-D `v` on its `k` diagonal."""
    v = _operand(v)
    if _ndim(v) == 2:
        return diagonal(v, k)
    if _ndim(v) != 1:
        raise ValueError("diag: input must be 1-d or 2-d")
    k = operator.index(k)
    m = _shape(v)[0]
    size = m + builtins.abs(k)
    start = k if k >= 0 else -k * size
    flat = ops.pad(v, (start if m else 0,), (size + 1,), (size * size,))
    return ops.reshape(flat, (size, size))


def diagflat(v, k=0):
    return diag(ravel(v), k)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """Sum along a diagonal (int and bool sum in int64, as in NumPy)."""
    return sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype, out=out)


# ---- numerical derivatives and integrals ------------------------------------------------------

def _along(c, axis, ndim):
    """A 1-D coefficient array shaped to broadcast along `axis` of an ndim array."""
    c = _operand(c)
    if _ndim(c) != 1 or ndim < 2:
        return c
    return ops.reshape(c, tuple(_shape(c)[0] if i == axis else 1 for i in range(ndim)))


def _uniform_gradient(f, ax, h, edge_order):
    d = _shape(f)[ax]
    mid = divide(subtract(slice_axis(f, ax, 2, d - 2), slice_axis(f, ax, 0, d - 2)),
                 multiply(2.0, h))
    at = [slice_axis(f, ax, i % d, 1) for i in (0, 1, 2, -3, -2, -1)]
    if edge_order == 1:
        first = divide(subtract(at[1], at[0]), h)
        last = divide(subtract(at[5], at[4]), h)
    else:
        first = _combine(at[:3], [divide(-1.5, h), divide(2.0, h), divide(-0.5, h)])
        last = _combine(at[3:], [divide(0.5, h), divide(-2.0, h), divide(1.5, h)])
    return concatenate([first, mid, last], axis=ax)


def _combine(terms, coefs):
    out = multiply(coefs[0], terms[0])
    for c, t in zip(coefs[1:], terms[1:]):
        out = add(out, multiply(c, t))
    return out


def _coordinate_gradient(f, ax, x, edge_order):
    d, n = _shape(f)[ax], _ndim(f)
    dx = diff(x)
    dx1, dx2 = slice_axis(dx, 0, 0, d - 2), slice_axis(dx, 0, 1, d - 2)
    s = add(dx1, dx2)
    a = negative(divide(dx2, multiply(dx1, s)))
    b = divide(subtract(dx2, dx1), multiply(dx1, dx2))
    c = divide(dx1, multiply(dx2, s))
    mid = _combine([slice_axis(f, ax, k, d - 2) for k in range(3)],
                   [_along(a, ax, n), _along(b, ax, n), _along(c, ax, n)])
    at = [slice_axis(f, ax, i % d, 1) for i in (0, 1, 2, -3, -2, -1)]
    h = [slice_axis(dx, 0, i % (d - 1), 1) for i in (0, 1, -2, -1)]
    if edge_order == 1:
        first = divide(subtract(at[1], at[0]), _along(h[0], ax, n))
        last = divide(subtract(at[5], at[4]), _along(h[3], ax, n))
    else:
        first = _combine(at[:3], [_along(c, ax, n) for c in _edge2(h[0], h[1], True)])
        last = _combine(at[3:], [_along(c, ax, n) for c in _edge2(h[2], h[3], False)])
    return concatenate([first, mid, last], axis=ax)


def _edge2(d1, d2, first):
    s = add(d1, d2)
    if first:
        return (negative(divide(add(multiply(2.0, d1), d2), multiply(d1, s))),
                divide(s, multiply(d1, d2)), negative(divide(d1, multiply(d2, s))))
    return (divide(d2, multiply(d1, s)), negative(divide(s, multiply(d1, d2))),
            divide(add(multiply(2.0, d2), d1), multiply(d2, s)))


def gradient(f, *varargs, axis=None, edge_order=1):
    """Second-order central differences inside, one-sided (order `edge_order`) at the ends;
    spacing per axis: a scalar step or the coordinates (NumPy's formulas)."""
    f = _operand(f)
    f = _convert(f, dtypes.float_result(_dtype(f)))
    n = _ndim(f)
    axes = tuple(range(n)) if axis is None else _axes_in_order(axis, n)
    spacing = list(varargs) if len(varargs) != 1 else list(varargs) * len(axes)
    if not spacing:
        spacing = [1.0] * len(axes)
    if len(spacing) != len(axes):
        raise TypeError("gradient: invalid number of arguments (one spacing per axis)")
    if edge_order not in (1, 2):
        raise ValueError("gradient: 'edge_order' greater than 2 not supported")
    # NumPy writes the result into an array of f's (float) dtype
    out = [_convert(_gradient_axis(f, ax, h, edge_order), _dtype(f))
           for ax, h in zip(axes, spacing)]
    return out[0] if len(out) == 1 else tuple(out)


def _axes_in_order(axis, n):
    """`axis` (an int or a tuple) as non-negative axes in the user's order (NumPy's
    normalize_axis_tuple): gradient's outputs and spacings follow it."""
    _norm_axes(axis, n)  # range and duplicate checks
    return tuple(_norm_axis(a, n) for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))


def _gradient_axis(f, ax, h, edge_order):
    d = _shape(f)[ax]
    if d < edge_order + 1:
        raise ValueError("gradient: shape of the array too small to calculate a numerical "
                         "gradient, at least (edge_order + 1) elements are required")
    if _ndim(_operand(h)) == 0:
        # a static step stays a Python float (weak): float32 data stays float32
        step = h if _is_traced_scalar(h) else float(h)
        return _uniform_gradient(f, ax, step, edge_order)
    x = _operand(h)
    if _shape(x) != (d,):
        raise ValueError("gradient: when 1d, distances must match the length of the "
                         "corresponding dimension")
    x = _convert(x, dtypes.float_result(_dtype(x)))
    return _coordinate_gradient(f, ax, x, edge_order)


def trapezoid(y, x=None, dx=1.0, axis=-1):
    """Integral along `axis` by the trapezoidal rule (spacing `dx`, or the points `x`)."""
    y = _operand(y)
    ax = _norm_axis(axis, _ndim(y))
    d = _shape(y)[ax]
    if x is None:
        step = dx
    else:
        x = _operand(x)
        step = diff(x, axis=ax if _ndim(x) > 1 else 0)
        step = _along(step, ax, _ndim(y)) if _ndim(x) == 1 else step
    mids = add(slice_axis(y, ax, 1, builtins.max(d - 1, 0)),
               slice_axis(y, ax, 0, builtins.max(d - 1, 0)))
    return sum(divide(multiply(step, mids), 2.0), axis=ax)


# ---- applying functions along axes -------------------------------------------------------------

def apply_along_axis(func1d, axis, arr, *args, **kwargs):
    """func1d on every 1-D slice along `axis` (a Python loop over the other indices);
    its output's axes take the place of `axis`."""
    from .constructors import asarray
    from .shapes import stack
    a = _operand(arr)
    n = _ndim(a)
    ax = _norm_axis(axis, n)
    a = moveaxis(a, ax, -1)
    outer = _shape(a)[:-1]
    if 0 in outer:
        raise ValueError("Cannot apply_along_axis when any iteration dimensions are 0")
    rows = ops.reshape(a, (int(np.prod(outer, dtype=np.int64)), _shape(a)[-1]))
    results = [asarray(func1d(_row(rows, i), *args, **kwargs))
               for i in range(_shape(rows)[0])]
    r = stack(results)
    inner = _shape(r)[1:]
    r = ops.reshape(r, outer + inner)
    k = len(inner)
    perm = list(range(ax)) + [n - 1 + i for i in range(k)] + list(range(ax, n - 1))
    return ops.transpose(r, perm)


def _row(rows, i):
    w = _shape(rows)[1]
    return ops.reshape(ops.slice(rows, (i, 0), (1, 1), (1, w)), (w,))


def apply_over_axes(func, a, axes):
    """func(a, axis) for each axis in turn; a result that lost the axis gets it back (size 1)."""
    a = _operand(a)
    for ax in np.atleast_1d(np.asarray(axes)).tolist():
        ax = _norm_axis(ax, _ndim(a))
        r = func(a, ax)
        if _ndim(r) == _ndim(a) - 1:
            r = expand_dims(r, ax)
        elif _ndim(r) != _ndim(a):
            raise ValueError("apply_over_axes: function is not returning an array of the "
                             "correct shape")
        a = r
    return a


# ---- in-place updates (NumPy's functions that write into their argument) -----------------

def _scatter_flat(flat, positions, values):
    """`flat` with values[k] at positions[k] (static; the last write wins), as one take
    from [flat, values] so that it stays structural."""
    n = _shape(flat)[0]
    idx = np.arange(n)
    idx[np.asarray(positions, np.int64)] = n + np.arange(len(positions))
    return take_static(ops.concatenate([flat, values], 0), idx, 0)


def _write_flat(a, positions, vals, op):
    """a.flat[positions] = cycled `vals`, in place: a functional update of a tensor or a
    traced value (recorded as x[...] = new); plain NumPy arrays are written by NumPy."""
    if not is_boxed(a):
        raise TypeError(f"{op}: needs a tracegrad array (plain NumPy arrays: use np.{op})")
    flat = ravel(a)
    v = ravel(_convert(_operand(vals), _dtype(a)))
    count = len(positions)
    if count and _shape(v)[0] == 0:
        raise ValueError(f"{op}: cannot write from an empty sequence of values")
    cycled = take_static(v, np.arange(count) % builtins.max(_shape(v)[0], 1), 0) \
        if count else None
    if count:
        a[...] = reshape(_scatter_flat(flat, positions, cycled), _shape(a))


def fill_diagonal(a, val, wrap=False):
    """Write `val` (cycled) on the main diagonal of `a`, in place (NumPy's semantics)."""
    if not is_boxed(a):
        return np.fill_diagonal(a, val, wrap)
    shp = _shape(a)
    if len(shp) < 2:
        raise ValueError("fill_diagonal: array must be at least 2-d")
    if len(shp) > 2 and len(set(shp)) != 1:
        raise ValueError("fill_diagonal: all dimensions of input must be of equal length")
    size = int(np.prod(shp, dtype=np.int64))
    step = 1 + int(np.cumprod(shp[:-1]).sum()) if len(shp) > 2 else shp[1] + 1
    end = size if wrap or len(shp) > 2 else shp[1] * shp[1]
    _write_flat(a, np.arange(0, builtins.min(end, size), step), val, "fill_diagonal")


def _unboxed(x):
    """x for a NumPy function writing into a NumPy array: a tensor's values (np.asarray),
    a traced value's TypeError explaining that a NumPy array cannot hold it, a traced
    Python float's value (guarded; grad warns that its derivative is cut there); anything
    else as it is.  (Passing boxed values or traced floats on would dispatch back here,
    without end.)"""
    return np.asarray(x) if is_boxed(x) or type(x) in SYMBOLIC_SCALARS else x


def put(a, ind, v, mode="raise"):
    """a.flat[ind] = v (cycled), in place; static indices with NumPy's raise/wrap/clip modes."""
    if not is_boxed(a):  # into a NumPy array: values as NumPy's (a traced one says why not)
        return np.put(a, _unboxed(ind), _unboxed(v), mode)
    n = int(np.prod(_shape(a), dtype=np.int64))
    pos = _static_ints("put", ind, "ind").reshape(-1)
    if mode == "wrap":
        pos = pos % n
    elif mode == "clip":
        pos = np.clip(pos, 0, n - 1)
    elif ((pos < -n) | (pos >= n)).any():
        raise IndexError(f"put: index out of range for an array of size {n}")
    _write_flat(a, pos % builtins.max(n, 1), v, "put")


def place(arr, mask, vals):
    """Write `vals` (cycled) where the static `mask` is true, in place."""
    if not is_boxed(arr):
        return np.place(arr, _unboxed(mask), _unboxed(vals))
    if is_boxed(mask):
        _fail("place", "the mask must be static (a NumPy bool array): the number of written "
              "elements cannot depend on traced data; use where(mask, vals, arr)", [mask],
              TypeError)
    positions = np.flatnonzero(np.broadcast_to(np.asarray(mask, bool), _shape(arr)))
    _write_flat(arr, positions, vals, "place")


def copyto(dst, src, casting="same_kind", where=True):
    """dst[...] = src (broadcast, cast to dst's dtype) where `where`, in place."""
    if not is_boxed(dst):
        return np.copyto(dst, _unboxed(src), casting=casting, where=_unboxed(where))
    s = _operand(src)
    if not np.can_cast(_dtype(s), _dtype(dst), casting) and not dtypes.is_weak(src):
        raise TypeError(f"copyto: cannot cast from {_dtype(s)} to {_dtype(dst)} according to "
                        f"the rule {casting!r}")
    s = broadcast_to(_convert(s, _dtype(dst)), _shape(dst))
    if where is True:
        dst[...] = s
    elif is_boxed(where):
        dst[...] = _where(where, s, dst)
    else:
        # a static mask writes only its positions (dst's old values are not read, so an
        # eager dst that requires grad keeps a valid backward)
        positions = np.flatnonzero(np.broadcast_to(np.asarray(where, bool), _shape(dst)))
        _write_flat(dst, positions, take_static(ravel(s), positions, 0), "copyto")


def mask_indices(n, mask_func, k=0):
    return np.mask_indices(n, mask_func, k)


# ---- copies, type queries ---------------------------------------------------------------------

def copy(a, order="K", subok=False):
    """A new array of the same values (a new boxed value: `x[i] = v` on it leaves `a` alone)."""
    a = _operand(a)
    if isinstance(a, np.ndarray):
        return np.array(a, copy=True)
    return ops.bind("reshape", a, shape=_shape(a))  # identity; the cleaning passes drop it


def ascontiguousarray(a, dtype=None, *, like=None):
    a = _operand(a)
    a = _convert(a, dtypes.check(dtype)) if dtype is not None else a
    return ops.reshape(a, (1,)) if _ndim(a) == 0 else a


def _type_stand_in(x):
    """What numpy's type functions should see for `x`: its dtype if it is an array."""
    if type(x) in SYMBOLIC_SCALARS:  # a traced Python float: its kind, as a Python float
        return 0.0
    if dtypes.is_weak(x) or isinstance(x, (np.dtype, type, str)):
        return x
    return np.dtype(_dtype(_operand(x)))


def result_type(*arrays_and_dtypes):
    return np.result_type(*(_type_stand_in(x) for x in arrays_and_dtypes))


def promote_types(type1, type2):
    return np.promote_types(type1, type2)


def can_cast(from_, to, casting="safe"):
    return np.can_cast(_type_stand_in(from_), to, casting)


def isscalar(element):
    """Only Python and NumPy scalars are scalars (0-d arrays are not), as in NumPy."""
    return not is_boxed(element) and np.isscalar(element)


def iscomplexobj(x):
    return False if is_boxed(x) else np.iscomplexobj(x)


def isrealobj(x):
    return not iscomplexobj(x)


def iscomplex(x):
    """No tracegrad dtype is complex: all False (a constant of `x`'s shape)."""
    return np.zeros(_shape(_operand(x)), bool)


def isreal(x):
    return np.ones(_shape(_operand(x)), bool)


def isdtype(dtype, kind):
    return np.isdtype(dtype, kind)


def issubdtype(arg1, arg2):
    return np.issubdtype(arg1, arg2)


def iterable(y):
    """Whether `y` can be iterated (a 0-d array cannot)."""
    return _ndim(y) > 0 if is_boxed(y) else np.iterable(y)


__all__ = ["pad", "tile", "repeat", "resize", "flip", "fliplr", "flipud", "rot90", "roll",
           "append", "insert", "delete", "tri", "tril", "triu", "meshgrid", "broadcast_shapes",
           "broadcast_arrays", "diff", "ediff1d", "diagonal", "diag", "diagflat", "trace", "copy",
           "ascontiguousarray", "result_type", "promote_types", "can_cast", "isscalar",
           "iscomplexobj", "isrealobj", "iscomplex", "isreal", "gradient", "trapezoid",
           "apply_along_axis", "apply_over_axes", "fill_diagonal", "put", "place", "copyto",
           "mask_indices",
           "isdtype", "issubdtype", "iterable"]

NUMPY = {getattr(np, name): globals()[name] for name in __all__}
