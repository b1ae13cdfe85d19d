"""NumPy functions whose result is a view of their first argument.

On eager tensors and traced values they are written with the methods that make views
(basic indexing, `transpose`, `reshape`: tracer/views.py, tracer/traced_views.py), so
that writes through the result reach the argument, as in NumPy (`np.flip(y, 1)[0, 0] = 1`
sets `y[0, -1]`; `a, b = np.split(y, 2); b *= 0` zeroes y's second half).  A function
returns None where NumPy gives no view (another memory order, `copy=True`): the
namespace's function then computes a copy.  Argument errors are NumPy's own: where the
arithmetic is NumPy's (split points), NumPy computes it on an index array.
"""
from __future__ import annotations

import numpy as np

from ._core import _norm_axes, is_boxed
from ._core import _norm_axis as _axis


def _reshape(a, newshape=None, order="C", *, shape=None, copy=None):
    shape = newshape if shape is None else shape
    if order != "C" or copy:
        return None
    return a.reshape(shape)


def _moveaxis(a, source, destination):
    from ..views import moved  # views.py imports this package

    return a.transpose(tuple(moved(len(a.shape), source, destination)))


def _along(ndim: int, axis: int, part) -> tuple:
    """The index that takes `part` (a slice or an int) of dim `axis` and all of the others."""
    return (slice(None),) * axis + (part,) + (slice(None),) * (ndim - axis - 1)


def flip(m, axis=None):
    ndim = len(m.shape)
    axes = _norm_axes(axis, ndim)
    return m[tuple(slice(None, None, -1) if d in axes else slice(None) for d in range(ndim))]


def flipud(m):
    if len(m.shape) < 1:
        raise ValueError("Input must be >= 1-d.")
    return flip(m, 0)


def fliplr(m):
    if len(m.shape) < 2:
        raise ValueError("Input must be >= 2-d.")
    return flip(m, 1)


def rot90(m, k=1, axes=(0, 1)):
    """NumPy's rot90: flips and a swap of `axes`."""
    np.rot90(np.empty((1,) * len(m.shape), np.int8), k, axes)  # NumPy's argument checks
    ndim = len(m.shape)
    a0, a1 = (_axis(a, ndim) for a in axes)
    k %= 4
    if k == 0:
        return m[...]
    if k == 2:
        return flip(flip(m, a0), a1)
    perm = list(range(ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    return flip(m, a1).transpose(perm) if k == 1 else flip(m.transpose(perm), a1)


def _pieces(a, numpy_split, indices_or_sections, axis):
    """The views of `a` along `axis` that `numpy_split` makes of an index array."""
    ndim = len(a.shape)
    axis = _axis(axis, ndim)
    ranges = numpy_split(np.arange(a.shape[axis]), indices_or_sections)
    # each piece's own first position: pieces of non-increasing indices overlap (numpy
    # slices a[idx[i]:idx[i + 1]]), so their lengths do not add up to their starts
    starts = [int(r[0]) if len(r) else 0 for r in ranges]
    return [a[_along(ndim, axis, slice(s, s + len(r)))] for s, r in zip(starts, ranges)]


def split(ary, indices_or_sections, axis=0):
    return _pieces(ary, np.split, indices_or_sections, axis)


def array_split(ary, indices_or_sections, axis=0):
    return _pieces(ary, np.array_split, indices_or_sections, axis)


def _split_at(name, min_ndim, axis_of):
    def f(ary, indices_or_sections):
        if len(ary.shape) < min_ndim:
            raise ValueError(f"{name} only works on arrays of {min_ndim} or more dimensions")
        return _pieces(ary, np.split, indices_or_sections, axis_of(len(ary.shape)))
    f.__name__ = name
    return f


hsplit = _split_at("hsplit", 1, lambda ndim: 1 if ndim > 1 else 0)
vsplit = _split_at("vsplit", 2, lambda ndim: 0)
dsplit = _split_at("dsplit", 3, lambda ndim: 2)


def unstack(x, /, *, axis=0):
    ndim = len(x.shape)
    if ndim == 0:
        raise ValueError("Input array must be at least 1-d.")
    axis = _axis(axis, ndim)
    return tuple(x[_along(ndim, axis, i)] for i in range(x.shape[axis]))


def matrix_transpose(x, /):
    if len(x.shape) < 2:
        raise ValueError(f"Input array must be at least 2-dimensional, but it is {len(x.shape)}")
    return x.swapaxes(-1, -2)


def rollaxis(a, axis, start=0):
    """NumPy's rollaxis: the permutation NumPy computes, as a transpose view."""
    ndim = len(a.shape)
    np.rollaxis(np.empty((1,) * ndim, np.int8), axis, start)  # NumPy's argument checks
    axis = _axis(axis, ndim)
    start = start + ndim if start < 0 else start
    if axis < start:
        start -= 1
    if axis == start:
        return a[...]
    axes = [d for d in range(ndim) if d != axis]
    axes.insert(start, axis)
    return a.transpose(tuple(axes))


def _atleast(m, index_by_ndim):
    if len(m.shape) == 0:
        return m.reshape(index_by_ndim[0])
    index = index_by_ndim.get(len(m.shape))
    return m if index is None else m[index]


def _atleast_each(index_by_ndim):
    def f(*arys):
        out = [_atleast(a, index_by_ndim) for a in arys]
        return out[0] if len(out) == 1 else tuple(out)
    return f


atleast_1d = _atleast_each({0: (1,)})
atleast_2d = _atleast_each({0: (1, 1), 1: (None, slice(None))})
atleast_3d = _atleast_each({0: (1, 1, 1), 1: (None, slice(None), None),
                            2: (slice(None), slice(None), None)})


def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """NumPy's meshgrid(copy=False): the inputs reshaped (views), and unless sparse
    broadcast to the grid (an eager tensor's `expand`: a view that refuses writes, as
    NumPy's broadcast views are to); copy=True gives no view."""
    if copy:
        return None
    np.meshgrid(*(np.empty(1) for _ in xi), indexing=indexing)  # NumPy's argument checks
    out = [_grid_lane(x, i, len(xi), indexing) for i, x in enumerate(xi)]
    if sparse:
        return tuple(out)
    shape = np.broadcast_shapes(*(o.shape for o in out))
    return tuple(o.expand(shape) if is_boxed(o) else np.broadcast_to(o, shape) for o in out)


def _grid_lane(x, i, n, indexing):
    """Input `i` of n as meshgrid's lane: all its elements along its own grid axis."""
    if indexing == "xy" and n > 1 and i < 2:
        i = 1 - i
    shape = (1,) * i + (-1,) + (1,) * (n - i - 1)
    return x.reshape(shape) if is_boxed(x) else np.asarray(x).reshape(shape)


_BY_NAME = {
    "flip": flip, "flipud": flipud, "fliplr": fliplr, "rot90": rot90, "split": split,
    "array_split": array_split, "hsplit": hsplit, "vsplit": vsplit, "dsplit": dsplit,
    "unstack": unstack, "matrix_transpose": matrix_transpose, "rollaxis": rollaxis,
    "atleast_1d": atleast_1d, "atleast_2d": atleast_2d, "atleast_3d": atleast_3d,
    "meshgrid": meshgrid,
}

VIEW_FUNCTIONS = {
    np.reshape: _reshape,
    np.ravel: lambda a, order="C": a.ravel() if order == "C" else None,
    np.transpose: lambda a, axes=None: a.transpose() if axes is None else a.transpose(tuple(axes)),
    np.swapaxes: lambda a, axis1, axis2: a.swapaxes(axis1, axis2),
    np.moveaxis: _moveaxis,
    np.expand_dims: lambda a, axis: a.expand_dims(axis),
    np.squeeze: lambda a, axis=None: a.squeeze(axis),
    **{getattr(np, name): f for name, f in _BY_NAME.items() if hasattr(np, name)},
}
