"""Shape manipulation: reshape, transpose, broadcast, squeeze, concatenate, stack."""
from __future__ import annotations

import builtins
import math
import operator

import numpy as np

from tracegrad.ir import ops

from .. import dtypes
from ._core import (
    _convert, _fail, _ndim, _norm_axes, _norm_axis, _operand, _reduced_shape, _reject, _shape,
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


__all__ = ["shape", "ndim", "size", "reshape", "ravel", "transpose", "swapaxes", "moveaxis",
           "broadcast_to", "squeeze", "expand_dims", "concatenate", "stack"]

NUMPY = {
    np.reshape: reshape, np.ravel: ravel, np.transpose: transpose, np.swapaxes: swapaxes,
    np.moveaxis: moveaxis, np.broadcast_to: broadcast_to, np.squeeze: squeeze,
    np.expand_dims: expand_dims, np.concatenate: concatenate, np.stack: stack,
    np.shape: shape, np.ndim: ndim, np.size: size,
}
