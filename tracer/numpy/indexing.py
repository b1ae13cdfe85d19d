"""Indexing functions: take, take_along_axis, put_along_axis, choose, select,
compress, nonzero / argwhere / flatnonzero / where(cond) / extract with a
static `size=`, the index constructors (diag_indices, tril_indices, indices,
ix_, ...) and unravel_index / ravel_multi_index.

All lower to `x[idx]` (tracer/indexing.py: gather, slices) or `x[idx] = v`
(scatter), so they differentiate through the values they pick.  Index
semantics are the ones of indexing: concrete out-of-range indices raise
NumPy's IndexError (mode="raise"); traced ones are wrapped and clamped, as
in JAX.  Functions whose output shape depends on the data (nonzero & co.)
take a static `size=` with a `fill_value` as in JAX; concrete inputs (numpy
arrays, eager tensors) may omit it.  `put_along_axis` updates its array in
place as NumPy does (a tensor in place, a traced value as `x[idx] = v` does).
"""
from __future__ import annotations


import builtins
import operator

import numpy as np

from tracegrad.ir import TracedValue, ops

from .. import dtypes
from ..indexing import getitem
from ._core import (_dtype, _fail, _lift, _norm_axis, _operand, _reject, _shape, _zero_d_axis,
                    concrete_value)
from .elementwise import (greater_equal, less, logical_and, maximum, minimum, not_equal)
from .elementwise import where as _where3
from .reductions import count_nonzero
from .shapes import broadcast_to, ravel, reshape, stack


def _int_operand(x):
    """Indices as operands: traced values as they are, concrete ones as numpy int arrays."""
    if isinstance(x, TracedValue):
        return x
    data = getattr(x, "_tg_concrete", None)
    return np.asarray(data() if data is not None else x)


def _is_traced(x) -> bool:
    return isinstance(x, TracedValue)


def _divmod(i, d: int):
    """Exact floor division and modulo of a traced int64 array by a static d > 0 (the float
    quotient is within one of the true one for |i| < 2**53; one correction fixes it)."""
    i = ops.convert(i, np.int64) if ops.dtype(i) != np.int64 else i
    q = ops.convert(ops.div(ops.convert(i, np.float64), np.float64(d)), np.int64)
    for _ in range(2):
        r = ops.sub(i, ops.mul(q, np.int64(d)))
        q = ops.where(ops.lt(r, np.int64(0)), ops.sub(q, np.int64(1)), q)
        r = ops.sub(i, ops.mul(q, np.int64(d)))
        q = ops.where(ops.ge(r, np.int64(d)), ops.add(q, np.int64(1)), q)
    return q, ops.sub(i, ops.mul(q, np.int64(d)))


def _mode(ind, n: int, mode, op: str):
    """Indices for an axis of length n under NumPy's take modes (raise, wrap, clip)."""
    if mode in (None, "raise"):
        return ind
    if n == 0:
        raise IndexError(f"{op}: cannot do a non-empty take from an empty axis")
    if mode == "wrap":
        return _divmod(ind, n)[1] if _is_traced(ind) else np.mod(ind, n)
    if mode == "clip":
        return minimum(maximum(ind, 0), n - 1) if _is_traced(ind) else np.clip(ind, 0, n - 1)
    raise ValueError(f"{op}: clipmode must be one of 'clip', 'raise', or 'wrap' (got {mode!r})")


# ---- take, take_along_axis, put_along_axis, choose ----------------------------------------------

def take(a, indices, axis=None, out=None, mode=None, *, fill_value=None):
    """a's elements at `indices` along `axis` (the flattened array when axis is None).
    NumPy's modes, and jax's mode='fill': an index outside [-n, n) gives `fill_value`
    (default NaN for floats, the most negative int for ints, True for bools)."""
    _reject("take", out=out)
    a = _operand(a)
    if axis is None or _zero_d_axis(axis, len(_shape(a))):
        a, axis = ravel(a), 0  # NumPy takes from a 0-d array along axis 0 or -1 as well
    axis = _norm_axis(axis, len(_shape(a)))
    if mode == "fill":
        return _take_filled(a, _int_operand(indices), axis, fill_value)
    ind = _mode(_int_operand(indices), _shape(a)[axis], mode, "take")
    return getitem(a, (slice(None),) * axis + (ind,))


def _take_filled(a, ind, axis, fill_value):
    shape, n = _shape(a), _shape(a)[axis]
    wrapped = _where3(less(ind, 0), ind + n, ind)  # in-range negatives count from the end
    got = getitem(a, (slice(None),) * axis + (_mode(wrapped, builtins.max(n, 1), "clip", "take"),))
    inside = logical_and(greater_equal(ind, -n), less(ind, n))
    inside = reshape(inside, (1,) * axis + tuple(_shape(ind)) + (1,) * (len(shape) - axis - 1))
    dt = _dtype(a)
    if fill_value is None:
        fill_value = (np.nan if dt.kind == "f" else True if dt.kind == "b"
                      else np.iinfo(dt).min if dt.kind == "i" else np.iinfo(dt).max)
    return _where3(inside, got, np.asarray(fill_value, dt))


def _arange_along(k: int, shape):
    """np.arange(shape[k]) shaped to broadcast along axis k of `shape`."""
    d = shape[k]
    return np.arange(d).reshape(tuple(d if j == k else 1 for j in range(len(shape))))


def _along_axis_index(shape, ind, axis, op):
    if len(_shape(ind)) != len(shape):
        raise ValueError(f"{op}: `indices` and `arr` must have the same number of dimensions")
    return tuple(ind if k == axis else _arange_along(k, shape) for k in range(len(shape)))


def _along_axis(arr, indices, axis, op):
    arr = _operand(arr)
    if axis is None:
        arr, axis = ravel(arr), 0
    axis = _norm_axis(axis, len(_shape(arr)))
    return arr, _along_axis_index(_shape(arr), _int_operand(indices), axis, op)


def take_along_axis(arr, indices, axis=-1):
    """arr[..., indices[..., j, ...], ...] along `axis`, the other axes broadcast (as np)."""
    arr, index = _along_axis(arr, indices, axis, "take_along_axis")
    return getitem(arr, index)


def put_along_axis(arr, indices, values, axis):
    """`arr[index along axis] = values` in place, as NumPy (tensors in place; a traced
    value then stands for the updated array, see `x[idx] = v`); returns None."""
    if axis is None:
        raise ValueError("put_along_axis: axis=None is not supported on tracegrad arrays "
                         "(assign into x.ravel() and reshape instead)")
    _, index = _along_axis(arr, indices, axis, "put_along_axis")
    arr[index] = values


def choose(a, choices, out=None, mode="raise"):
    """choices[a[i]][i] elementwise, everything broadcast together (np.choose)."""
    _reject("choose", out=out)
    choices = list(choices) if isinstance(choices, (list, tuple)) else \
        [getitem(choices, k) for k in range(_shape(choices)[0])]
    ind = _mode(_int_operand(a), len(choices), mode, "choose")
    dt = dtypes.result_type(*choices)
    shape = np.broadcast_shapes(_shape(ind), *[_shape(_lift(c, dt)) for c in choices])
    stacked = stack([broadcast_to(_lift(c, dt), shape) for c in choices])
    return getitem(stacked, (ind,) + tuple(_arange_along(k, shape) for k in range(len(shape))))


def select(condlist, choicelist, default=0):
    """The first choice whose condition holds, elementwise; `default` where none does."""
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    if not condlist:
        raise ValueError("select with an empty condition list is not possible")
    result = default
    for k, (c, ch) in reversed(list(enumerate(zip(condlist, choicelist)))):
        c = _operand(c)
        if ops.dtype(c) != np.bool_:
            raise TypeError(f"invalid entry {k} in condlist: should be boolean ndarray")
        result = _where3(c, ch, result)
    return _operand(result)


# ---- data-dependent sizes: compress, nonzero & co. -------------------------------------------------

def _concrete(x, op: str) -> np.ndarray:
    data = concrete_value(x)
    if data is None:
        _fail(op, "needs a concrete condition (its result's shape depends on the "
                  f"values); call tracegrad.numpy.{op}(..., size=N) for a fixed-size result "
                  "(numpy's own signature has no size=), or use where(cond, x, 0)",
              (x,), exc=TypeError)
    return data


def compress(condition, a, axis=None, out=None, *, size=None, fill_value=0):
    """The slices of `a` along `axis` where the 1-D condition holds.  A traced condition
    needs a static `size` (as jnp.compress): the first `size` chosen slices, then slices
    of `fill_value` (in a's dtype); there, condition entries past a's length along `axis`
    are ignored."""
    _reject("compress", out=out)
    a = _operand(a)
    if axis is None:
        a, axis = ravel(a), 0
    axis = _norm_axis(axis, len(_shape(a)))
    if size is not None:
        return _compress_sized(condition, a, axis, operator.index(size), fill_value)
    cond = np.asarray(_concrete(condition, "compress"), bool).ravel()
    return take(a, _compress_indices(cond, _shape(a)[axis], axis), axis)


def _compress_indices(cond, n, axis):
    """The indices where the concrete condition holds, which must lie below n."""
    idx = np.nonzero(cond)[0]
    if idx.size and idx[-1] >= n:
        raise IndexError(f"compress: index {idx[-1]} is out of bounds for axis {axis} with "
                         f"size {n}")
    return idx


def _compress_sized(condition, a, axis, size, fill_value):
    """`size` slices: the chosen ones, then `fill_value` (an index past the end, filled)."""
    n = _shape(a)[axis]
    cond = ravel(_operand(condition))
    if not _is_traced(cond):
        _compress_indices(np.asarray(_concrete(cond, "compress"), bool), n, axis)
    if _shape(cond)[0] > n:
        cond = ops.slice(cond, (0,), (1,), (n,))
    idx = getitem(_nonzero_matrix(cond, size, n, "compress"), 0)
    return take(a, idx, axis=axis, mode="fill", fill_value=fill_value)


def _nonzero_matrix(a, size, fill_value, op):
    """(ndim, size) int64 indices of a's nonzeros (C order), fill_value after the last."""
    a = _operand(a)
    mask = a if ops.dtype(a) == np.bool_ else not_equal(a, 0)
    if size is None:
        size = int(np.count_nonzero(_concrete(a, op)))
    return ops.nonzero_static(mask, size, 0 if fill_value is None else fill_value)


def nonzero(a, *, size=None, fill_value=None):
    """Indices of the nonzero elements, one array per axis.  `size` makes the count static
    (needed for traced inputs): extra nonzeros are dropped, missing ones are `fill_value`."""
    a = _operand(a)
    if len(_shape(a)) == 0:
        raise ValueError("Calling nonzero on 0d arrays is not allowed. Use "
                         "np.atleast_1d(scalar).nonzero() instead.")
    m = _nonzero_matrix(a, size, fill_value, "nonzero")
    return tuple(getitem(m, k) for k in range(len(_shape(a))))


def argwhere(a, *, size=None, fill_value=None):
    """The (N, a.ndim) indices of the nonzero elements (N = `size` when given)."""
    a = _operand(a)
    if len(_shape(a)) == 0:
        return getitem(argwhere(reshape(a, (1,)), size=size, fill_value=fill_value),
                       (slice(None), slice(0, 0)))
    return ops.transpose(_nonzero_matrix(a, size, fill_value, "argwhere"), (1, 0))


def flatnonzero(a, *, size=None, fill_value=None):
    """Indices of the nonzero elements of the flattened array."""
    return nonzero(ravel(_operand(a)), size=size, fill_value=fill_value)[0]


def where(condition, x=None, y=None, /, *, size=None, fill_value=None):
    """where(c, x, y) chooses elementwise; where(c) is nonzero(c) (with a static size)."""
    if x is None and y is None:
        return nonzero(condition, size=size, fill_value=fill_value)
    if x is None or y is None:
        raise ValueError("either both or neither of x and y should be given")
    if size is not None or fill_value is not None:
        raise TypeError("where(condition, x, y) takes no size or fill_value")
    return _where3(condition, x, y)


def extract(condition, arr, *, size=None, fill_value=0):
    """The elements of arr where condition is nonzero (flattened); with a static `size`,
    the first `size` of them and `fill_value` after."""
    flat = ravel(_operand(arr))
    idx = getitem(_nonzero_matrix(ravel(_operand(condition)), size, 0, "extract"), 0)
    vals = take(flat, idx)
    if size is None:
        return vals
    valid = np.arange(size) < count_nonzero(condition)
    return _where3(valid, vals, fill_value)


# ---- index constructors ----------------------------------------------------------------------------

def diag_indices(n, ndim=2):
    return np.diag_indices(n, ndim)


def diag_indices_from(arr):
    shape = _shape(_operand(arr))
    if len(shape) < 2 or len(set(shape)) != 1:
        raise ValueError("diag_indices_from: input array must be at least 2-d with all "
                         "dimensions of equal length")
    return np.diag_indices(shape[0], len(shape))


def tril_indices(n, k=0, m=None):
    return np.tril_indices(n, k, m)


def triu_indices(n, k=0, m=None):
    return np.triu_indices(n, k, m)


def _matrix_shape(arr, op):
    shape = _shape(_operand(arr))
    if len(shape) != 2:
        raise ValueError(f"{op}: input array must be 2-d")
    return shape


def tril_indices_from(arr, k=0):
    n, m = _matrix_shape(arr, "tril_indices_from")
    return np.tril_indices(n, k, m)


def triu_indices_from(arr, k=0):
    n, m = _matrix_shape(arr, "triu_indices_from")
    return np.triu_indices(n, k, m)


def indices(dimensions, dtype=int, sparse=False):
    return np.indices(dimensions, dtypes.check(dtype), sparse)


def ix_(*args):
    """Open-mesh index arrays: the k-th of n is shaped (1, .., len, .., 1)."""
    out = []
    for k, a in enumerate(args):
        a = _int_or_mask(a)
        if len(_shape(a)) != 1:
            raise ValueError("Cross index must be 1 dimensional")
        out.append(reshape(a, tuple(-1 if j == k else 1 for j in range(len(args)))))
    return tuple(out)


def _int_or_mask(a):
    if _is_traced(a):
        if ops.dtype(a) == np.bool_:
            _concrete(a, "ix_")
        return a
    a = _int_operand(a)
    if a.dtype == np.bool_:
        return np.nonzero(a)[0]
    return a.astype(np.int64) if a.size == 0 else a


def unravel_index(indices, shape, order="C"):
    """Coordinate arrays of flat indices into `shape`; traced indices are wrapped
    (negatives) and clamped into range, as in JAX."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    ind = _int_operand(indices)
    if not _is_traced(ind):
        return np.unravel_index(ind, shape, order=order)
    total = int(np.prod(shape, dtype=np.int64))
    ind = _clamped(ind, total)
    coords = []
    for d in (reversed(shape) if order == "C" else shape):
        ind, r = _divmod(ind, d)
        coords.append(r)
    return tuple(reversed(coords) if order == "C" else coords)


def _clamped(ind, n: int):
    ind = ops.convert(ind, np.int64) if ops.dtype(ind) != np.int64 else ind
    ind = ops.where(ops.lt(ind, np.int64(0)), ops.add(ind, np.int64(n)), ind)
    return ops.max(ops.min(ind, np.int64(max(n - 1, 0))), np.int64(0))


def ravel_multi_index(multi_index, dims, mode="raise", order="C"):
    """Flat indices of coordinate arrays into `dims`; traced coordinates under mode
    "raise" follow the rule of traced indices (a negative one wrapped, then clamped into
    range, so `x.ravel()[ravel_multi_index((i, j), x.shape)]` is `x[i, j]`), "wrap" and
    "clip" act as in NumPy."""
    coords = [_int_operand(c) for c in multi_index]
    if not any(_is_traced(c) for c in coords):
        return np.ravel_multi_index(coords, dims, mode=mode, order=order)
    modes = (mode,) * len(dims) if isinstance(mode, str) else tuple(mode)
    coords = [_clamped(c, d) if m == "raise" and _is_traced(c) else _mode(c, d, m, "ravel_multi_index")
              for c, d, m in zip(coords, dims, modes)]
    strides = np.cumprod((1,) + tuple(dims[::-1]))[:-1][::-1] if order == "C" else \
        np.cumprod((1,) + tuple(dims))[:-1]
    total = None
    for c, s in zip(coords, strides):
        term = ops.mul(_lift(c, np.int64), np.int64(s))
        total = term if total is None else ops.add(*_same_shape(total, term))
    return total


def _same_shape(a, b):
    shape = np.broadcast_shapes(_shape(a), _shape(b))
    return ops.broadcast(a, shape), ops.broadcast(b, shape)


__all__ = ["take", "take_along_axis", "put_along_axis", "choose", "select", "compress",
           "nonzero", "argwhere", "flatnonzero", "where", "extract", "diag_indices",
           "diag_indices_from", "tril_indices", "triu_indices", "tril_indices_from",
           "triu_indices_from", "indices", "ix_", "unravel_index", "ravel_multi_index"]

NUMPY = {getattr(np, name): globals()[name] for name in __all__}
