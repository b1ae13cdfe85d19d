"""Shape manipulation: reshape, transpose, broadcast, squeeze, concatenate, stack."""
from __future__ import annotations

import builtins
import math
import operator

import numpy as np

from tracegrad.ir import ops

from .. import dtypes
from ._core import (
    _convert, _fail, _ndim, _new_value, _norm_axes, _norm_axis, _operand, _reduced_shape, _reject,
    _shape,
)


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
    """NumPy reshape, `-1` infers one dimension; order 'F' (first index fastest) is C order
    on the reversed axes: transpose, reshape to the reversed shape, transpose back."""
    if order not in ("C", "F", "A"):
        raise ValueError(f"reshape: order must be one of 'C', 'F', 'A', got {order!r}")
    a = _operand(a)
    new = _resolve_shape(newshape if shape is None else shape, a)
    if order != "F":
        return ops.reshape(a, new)
    flipped = ops.reshape(transpose(a), new[::-1])
    return ops.transpose(flipped, tuple(reversed(range(len(new)))))


def ravel(a, order="C"):
    if order == "K":
        order = "C"  # tracegrad arrays are always C-contiguous
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
    """Move axes `source` (an int or a sequence) to `destination`, as np.moveaxis."""
    a = _operand(a)
    n = _ndim(a)
    src, dst = (_axes_list(v, n) for v in (source, destination))
    if len(src) != len(dst):
        raise ValueError("`source` and `destination` arguments must have the same number "
                         "of elements")
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError("repeated axis in `source` or `destination` argument")
    perm = [i for i in range(n) if i not in src]
    for d, s in sorted(zip(dst, src)):
        perm.insert(d, s)
    return ops.transpose(a, perm)


def _axes_list(v, n):
    return [_norm_axis(v, n)] if isinstance(v, (int, np.integer)) else [_norm_axis(i, n) for i in v]


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
    return _new_value(arrays[0]) if len(arrays) == 1 else ops.concatenate(arrays, ax)


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


def concat(arrays, /, *, axis=0):
    return concatenate(arrays, axis=axis)


def permute_dims(a, /, axes=None):
    return transpose(a, axes)


def rollaxis(a, axis, start=0):
    """Move `axis` to sit before position `start` (NumPy's older moveaxis)."""
    a = _operand(a)
    n = _ndim(a)
    axis = _norm_axis(axis, n)
    start = operator.index(start)
    start += n if start < 0 else 0  # NumPy's rule (not modulo n + 1)
    if not 0 <= start <= n:
        raise np.exceptions.AxisError(f"rollaxis: 'start' arg requires {-n} <= start < {n + 1}")
    return moveaxis(a, axis, start - 1 if axis < start else start)


def unstack(x, /, *, axis=0):
    """The sub-arrays along `axis`, as a tuple."""
    x = _operand(x)
    ax = _norm_axis(axis, _ndim(x))
    return tuple(_index_axis(x, ax, i) for i in range(_shape(x)[ax]))


def _index_axis(x, ax, i):
    shp = _shape(x)
    starts = tuple(i if k == ax else 0 for k in range(len(shp)))
    part = ops.slice(x, starts, (1,) * len(shp), shp[:ax] + (1,) + shp[ax + 1:])
    return ops.reshape(part, shp[:ax] + shp[ax + 1:])


# ---- at least n-d, the stacks, block -------------------------------------------------------

def _at_least(n, x):
    """`x` with NumPy's atleast_{n}d placement of the new axes."""
    x = _operand(x)
    shp = _shape(x)
    if len(shp) >= n:
        return x
    if n == 3 and len(shp) > 0:
        return ops.reshape(x, ((1,) + shp + (1,)) if len(shp) == 1 else shp + (1,))
    return ops.reshape(x, (1,) * (n - len(shp)) + shp)


def _atleast(n):
    def f(*arys):
        out = tuple(_at_least(n, a) for a in arys)
        return out[0] if len(out) == 1 else out
    f.__name__ = f.__qualname__ = f"atleast_{n}d"
    f.__doc__ = f"Each input viewed with at least {n} dimensions (NumPy's placement)."
    return f


atleast_1d, atleast_2d, atleast_3d = _atleast(1), _atleast(2), _atleast(3)


def vstack(tup, *, dtype=None, casting="same_kind"):
    return concatenate([_at_least(2, a) for a in tup], axis=0, dtype=dtype)


row_stack = vstack


def hstack(tup, *, dtype=None, casting="same_kind"):
    arrs = [_at_least(1, a) for a in tup]
    return concatenate(arrs, axis=0 if arrs and _ndim(arrs[0]) == 1 else 1, dtype=dtype)


def dstack(tup):
    return concatenate([_at_least(3, a) for a in tup], axis=2)


def column_stack(tup):
    """1-D inputs become columns; 2-D inputs are stacked as they are."""
    arrs = [_operand(a) for a in tup]
    arrs = [ops.reshape(a, (_shape(a)[0] if _ndim(a) else 1, 1)) if _ndim(a) < 2 else a
            for a in arrs]
    return concatenate(arrs, axis=1)


def _block_depth(arrays, where="arrays"):
    if isinstance(arrays, tuple):
        raise TypeError(f"block: {where} is a tuple; only lists can be used to arrange blocks")
    if not isinstance(arrays, list):
        return 0, _ndim(_operand(arrays))
    if not arrays:
        raise ValueError(f"block: {where} is an empty list")
    found = [_block_depth(x, f"{where}[{i}]") for i, x in enumerate(arrays)]
    if len({d for d, _ in found}) != 1:
        raise ValueError(f"block: list depths are mismatched at {where}")
    return found[0][0] + 1, builtins.max(nd for _, nd in found)


def _block(arrays, depth, ndim):
    if not isinstance(arrays, list):
        x = _operand(arrays)
        return ops.reshape(x, (1,) * (ndim - _ndim(x)) + _shape(x))
    return concatenate([_block(x, depth - 1, ndim) for x in arrays], axis=ndim - depth)


def block(arrays):
    """Assemble an array from nested lists of blocks (the innermost lists join the last axis)."""
    depth, ndim = _block_depth(arrays)
    return _block(arrays, depth, builtins.max(depth, ndim))


# ---- split ------------------------------------------------------------------------------------

def _split_points(op, d, sections, even):
    if isinstance(sections, (int, np.integer)):
        n = operator.index(sections)
        if n <= 0:
            raise ValueError(f"{op}: number sections must be larger than 0")
        if even and d % n:
            raise ValueError(f"{op}: array split does not result in an equal division")
        q, r = divmod(d, n)
        sizes = [q + 1] * r + [q] * (n - r)
        return list(np.cumsum([0] + sizes))
    cuts = [operator.index(i) for i in sections]
    return [0] + cuts + [d]


def _split(op, ary, sections, axis, even):
    a = _operand(ary)
    ax = _norm_axis(axis, _ndim(a))
    shp = _shape(a)
    d = shp[ax]
    pts = _split_points(op, d, sections, even)
    out = []
    for lo, hi in zip(pts[:-1], pts[1:]):
        lo, hi = (builtins.min(builtins.max(p + d if p < 0 else p, 0), d) for p in (lo, hi))
        size = builtins.max(hi - lo, 0)
        starts = tuple(lo if k == ax and size else 0 for k in range(len(shp)))
        out.append(ops.slice(a, starts, (1,) * len(shp), shp[:ax] + (size,) + shp[ax + 1:]))
    return out


def split(ary, indices_or_sections, axis=0):
    """Equal sections, or pieces between the static indices, along `axis` (a list)."""
    return _split("split", ary, indices_or_sections, axis, True)


def array_split(ary, indices_or_sections, axis=0):
    """As split, but sections may differ in size by one (the first ones are larger)."""
    return _split("array_split", ary, indices_or_sections, axis, False)


def hsplit(ary, indices_or_sections):
    a = _operand(ary)
    if _ndim(a) == 0:
        raise ValueError("hsplit only works on arrays of 1 or more dimensions")
    return split(a, indices_or_sections, 1 if _ndim(a) > 1 else 0)


def vsplit(ary, indices_or_sections):
    a = _operand(ary)
    if _ndim(a) < 2:
        raise ValueError("vsplit only works on arrays of 2 or more dimensions")
    return split(a, indices_or_sections, 0)


def dsplit(ary, indices_or_sections):
    a = _operand(ary)
    if _ndim(a) < 3:
        raise ValueError("dsplit only works on arrays of 3 or more dimensions")
    return split(a, indices_or_sections, 2)


def sliding_window_view(x, window_shape, axis=None, *, subok=False, writeable=False):
    """np.lib.stride_tricks.sliding_window_view: every window of `window_shape` along
    `axis` (all axes by default), the window dims last.  A copy, not a view (traced values
    have no strides); `writeable=True` is refused for that reason."""
    if writeable:
        _fail("sliding_window_view", "writeable=True needs a strided view; tracegrad's windows "
              "are copies", [x])
    x = _operand(x)
    windows = tuple(window_shape) if np.iterable(window_shape) else (window_shape,)
    axes = tuple(range(_ndim(x))) if axis is None else (
        tuple(axis) if np.iterable(axis) else (axis,))
    if len(windows) != len(axes):
        raise ValueError(f"Since axis is `{axis}`, window_shape must have the same number of "
                         f"entries as the axes ({len(axes)}), got {window_shape}")
    for w, a in zip(windows, axes):
        x = _windows(x, int(w), _norm_axis(a, _ndim(x)))
    return x


def _windows(x, w, a):
    """The windows of length w along axis a, as a new last axis."""
    n = _shape(x)[a]
    if w < 0:
        raise ValueError("`window_shape` cannot contain negative values")
    if w > n:
        raise ValueError("window shape cannot be larger than input array shape")
    m = n - w + 1
    if w <= 32:  # shifted slices: they fuse with their neighbours
        lead = (builtins.slice(None),) * a
        return stack([x[lead + (builtins.slice(i, i + m),)] for i in range(w)], axis=-1)
    from .indexing import take
    index = np.arange(m)[:, None] + np.arange(w)[None, :]
    return moveaxis(take(x, index, axis=a), a + 1, -1)


__all__ = ["shape", "ndim", "size", "reshape", "ravel", "transpose", "swapaxes", "moveaxis",
           "broadcast_to", "squeeze", "expand_dims", "concatenate", "stack", "concat",
           "permute_dims", "rollaxis", "unstack", "atleast_1d", "atleast_2d", "atleast_3d",
           "vstack", "row_stack", "hstack", "dstack", "column_stack", "block", "split",
           "array_split", "hsplit", "vsplit", "dsplit", "sliding_window_view"]

NUMPY = {
    np.reshape: reshape, np.ravel: ravel, np.transpose: transpose, np.swapaxes: swapaxes,
    np.moveaxis: moveaxis, np.broadcast_to: broadcast_to, np.squeeze: squeeze,
    np.expand_dims: expand_dims, np.concatenate: concatenate, np.stack: stack,
    np.shape: shape, np.ndim: ndim, np.size: size,
}
# np.concat is np.concatenate: an alias must not replace the full signature's entry
NUMPY.update({getattr(np, name): globals()[name] for name in __all__[13:-1]
              if getattr(np, name) not in NUMPY})
NUMPY[np.lib.stride_tricks.sliding_window_view] = sliding_window_view
