"""Basic NumPy indexing lowered to the `slice` primitive plus one `reshape`.

Supported: integers (negative too), slices with any step (negative too),
`None` and `...`.  Arrays as indices (advanced indexing) would need a gather
primitive and raise a TypeError.

>>> import numpy as np
>>> getitem(np.arange(12.0).reshape(3, 4), (-1, slice(None, None, -2))).tolist()
[11.0, 9.0]
"""
from __future__ import annotations

import operator

import numpy as np

from tracegrad.ir import ops, user_source_location


def _located(msg: str) -> str:
    where = user_source_location()
    return msg + (f"\n  at {where}" if where else "")


def _is_int_index(i) -> bool:
    if isinstance(i, (bool, np.bool_)):
        return False
    if isinstance(i, (int, np.integer)):
        return True
    # A 0-d integer array (tensor, traced value) is an integer index, as in NumPy.
    a = getattr(i, "aval", None)
    return a is not None and a.shape == () and np.issubdtype(a.dtype, np.integer)


def _check_basic(idx):
    for i in idx:
        if i is None or i is Ellipsis or isinstance(i, slice) or _is_int_index(i):
            continue
        raise TypeError(_located(
            f"tracegrad supports basic indexing only (integers, slices, None, ...); got an "
            f"index of type {type(i).__name__}: advanced indexing with arrays, lists or "
            "booleans is not supported (use tracegrad.numpy.where or reshape/slices)"))


def _expand_ellipsis(idx, ndim: int):
    if sum(i is Ellipsis for i in idx) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(i is not None and i is not Ellipsis for i in idx)
    if used > ndim:
        raise IndexError(_located(f"too many indices for array: array is {ndim}-dimensional, "
                                  f"but {used} were indexed"))
    fill = (slice(None),) * (ndim - used)
    # `is`, never `==`: an index may be a tensor, whose == is elementwise.
    pos = next((k for k, i in enumerate(idx) if i is Ellipsis), None)
    return idx + fill if pos is None else idx[:pos] + fill + idx[pos + 1:]


def _axis_slice(i, dim: int, axis: int):
    """(start, step, size, kept) of one index on an axis of length `dim`."""
    if isinstance(i, slice):
        start, stop, step = i.indices(dim)
        size = len(range(start, stop, step))
        return (start if size else 0), step, size, True
    k = operator.index(i)
    if not -dim <= k < dim:
        raise IndexError(_located(f"index {k} is out of bounds for axis {axis} with size {dim}"))
    return k % dim, 1, 1, False


def getitem(x, idx):
    """`x[idx]` for basic indices, through `slice` and `reshape`."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    _check_basic(idx)
    shape = ops.shape(x)
    idx = _expand_ellipsis(idx, len(shape))
    starts, steps, sizes, out_shape, axis = [], [], [], [], 0
    for i in idx:
        if i is None:
            out_shape.append(1)
            continue
        start, step, size, kept = _axis_slice(i, shape[axis], axis)
        starts.append(start), steps.append(step), sizes.append(size)
        if kept:
            out_shape.append(size)
        axis += 1
    whole = all(st == 0 and sp == 1 and sz == d
                for st, sp, sz, d in zip(starts, steps, sizes, shape))
    y = x if whole else ops.slice(x, starts, steps, sizes)
    return ops.reshape(y, tuple(out_shape))
