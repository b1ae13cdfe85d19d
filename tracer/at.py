"""JAX's indexed updates: `x.at[idx].set(v)`, `.add`, `.multiply`, `.min`, ... as new arrays.

`x.at[idx]` names the elements `x[idx]` names (NumPy's basic and advanced indexing);
each method returns a new array and leaves `x` alone.  `set` is `x[idx] = v` on a copy
(one of several writes to the same element wins, as JAX leaves unspecified); `add`
and `subtract` accumulate every update of a repeated index, as JAX's scatter-add
does; `multiply`, `divide`, `power`, `min` and `max` combine the element with every
update aimed at it too (at_combine.py), as JAX's.  Out-of-range concrete indices raise
and traced ones are clamped (tracegrad's indexing rule; JAX drops such updates), unless
`mode=` says otherwise: "clip", "drop" and "fill" (with `fill_value`)
as JAX's (at_modes.py).

>>> import numpy as np, tracegrad as tg
>>> tg.jit(lambda x: x.at[np.array([0, 0, 2])].add(1.0))(np.zeros(3)).tolist()
[2.0, 0.0, 1.0]
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import ops

from . import at_combine, at_modes
from . import numpy as tnp
from .indexing import _concrete_array, check_in_bounds, getitem, setitem


class At:
    """`x.at`: indexing it gives the updates of those elements."""

    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x

    def __getitem__(self, idx):
        return IndexUpdate(self.x, idx)


class IndexUpdate:
    """The updates of `x[idx]` (see the module docstring)."""

    __slots__ = ("x", "idx")

    def __init__(self, x, idx):
        self.x, self.idx = x, idx

    # mode= and fill_value= are JAX's (at_modes.py); JAX's other keywords
    # (indices_are_sorted, unique_indices) are hints that change no result.
    def get(self, *, mode=None, fill_value=None, **_):
        at_modes.check_mode(mode, "get")
        if mode in ("clip", "fill"):
            return at_modes.get(self.x, self.idx, mode, fill_value)
        return getitem(self.x, self.idx)

    def set(self, values, *, mode=None, **_):
        at_modes.check_mode(mode, "set")
        if mode in ("clip", "drop"):
            return at_modes.update(self.x, self.idx, values, mode, accumulate=False)
        return setitem(tnp.copy(self.x), self.idx, values)

    def add(self, values, *, mode=None, **_):
        at_modes.check_mode(mode, "add")
        if mode in ("clip", "drop"):
            return at_modes.update(self.x, self.idx, values, mode, accumulate=True)
        x = self.x
        rows = _rows(x, self.idx)
        if rows is not None:  # whole rows: one scatter over dim 0, no element table
            v = tnp.broadcast_to(tnp.astype(tnp.asarray(values), ops.dtype(x)),
                                 tuple(ops.shape(rows)) + tuple(ops.shape(x)[1:]))
            return ops.scatter_add(x, v, rows)
        shape, n = ops.shape(x), int(np.prod(ops.shape(x), dtype=np.int64))
        pos = getitem(np.arange(n, dtype=np.int64).reshape(shape), self.idx)
        m = int(np.prod(ops.shape(pos), dtype=np.int64))
        v = tnp.broadcast_to(tnp.astype(tnp.asarray(values), ops.dtype(x)), ops.shape(pos))
        flat = ops.scatter_add(ops.reshape(x, (n,)), ops.reshape(v, (m,)), ops.reshape(pos, (m,)))
        return ops.reshape(flat, shape)

    def subtract(self, values, *, mode=None, **_):
        return self.add(tnp.negative(tnp.asarray(values)), mode=mode)

    def multiply(self, values, *, mode=None, **_):
        return self._combined(values, mode, "multiply")

    mul = multiply

    def divide(self, values, *, mode=None, **_):
        return self._combined(values, mode, "divide")

    def power(self, values, *, mode=None, **_):
        return self._combined(values, mode, "power")

    def min(self, values, *, mode=None, **_):
        return self._combined(values, mode, "min")

    def max(self, values, *, mode=None, **_):
        return self._combined(values, mode, "max")

    def apply(self, func, *, mode=None, **_):
        return self.set(func(self.get(mode="clip" if mode == "drop" else mode)), mode=mode)

    def _combined(self, values, mode, method):
        """An index known to name each element once combines directly; any other (traced,
        or repeating an element) through at_combine, every update included."""
        at_modes.check_mode(mode, "set")
        if mode in (None, "promise_in_bounds") and _unique_concrete(self.x, self.idx):
            return self.set(at_combine.element_op(method)(self.get(), values))
        effective = "clip" if mode in (None, "promise_in_bounds") else mode  # (traced: clamped)
        return at_combine.combine(self.x, self.idx, values, method, effective)


def _rows(x, idx):
    """`idx` as int64 positions along dim 0 (negatives wrapped by scatter_add, as NumPy's)
    when it is an integer array, list or scalar indexing whole rows of an array of rank 2 or more;
    else None (the element-table path handles every other index)."""
    if len(ops.shape(x)) < 2 or isinstance(idx, (tuple, slice, bool)) or idx is None \
            or idx is Ellipsis:
        return None
    if isinstance(idx, list) and not all(isinstance(i, (int, np.integer)) for i in idx):
        return None
    index = tnp.asarray(idx)
    if not np.issubdtype(ops.dtype(index), np.integer):
        return None
    index = tnp.astype(index, np.int64)
    concrete = _concrete_array(index)
    if concrete is not None:  # a concrete index out of bounds raises, as NumPy's
        check_in_bounds(concrete, ops.shape(x)[0], 0)
    return index  # (scatter_add wraps negatives itself, then clamps: ir/indexing.py)


def _unique_concrete(x, idx) -> bool:
    """Whether `idx` is known (no traced part) and names no element twice."""
    shape = ops.shape(x)
    try:
        pos = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)[idx]
    except (IndexError, TypeError, ValueError):
        return False  # traced or symbolic parts (or out of bounds: the direct path raises)
    return np.unique(np.ravel(pos)).size == np.size(pos)
