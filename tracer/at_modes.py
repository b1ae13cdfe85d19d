"""JAX's out-of-bound modes of `x.at[idx]` (at.py): `mode="clip"` clamps each integer
index into its dim, `mode="drop"` leaves out the updates at out-of-bound positions and
`mode="fill"` gets `fill_value` there (NaN for floats, the most negative integer, True).
`mode=None` and `"promise_in_bounds"` keep tracegrad's indexing rule (a concrete index
out of bounds raises, a traced one is clamped).

The index is mapped onto a table of flat positions whose indexed dims have one more,
sentinel, slot holding -1: a dropped or filled position reads -1, so every gather and
scatter stays in bounds.  Integer components (ints, lists, integer arrays, traced ones),
slices, None and Ellipsis are supported; a boolean mask with a mode raises.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import ops

from . import numpy as tnp
from .indexing import getitem, setitem

MODES = (None, "promise_in_bounds", "clip", "drop", "fill")


def check_mode(mode, method: str) -> None:
    if mode not in MODES or (mode == "fill" and method != "get") or (
            mode == "drop" and method == "get"):
        allowed = ("promise_in_bounds", "clip", "fill") if method == "get" else (
            "promise_in_bounds", "clip", "drop")
        raise ValueError(f"x.at[idx].{method}: mode={mode!r}; expected None or one of {allowed}")


def positions(x, idx, mode: str):
    """The flat positions in `x` that `x[idx]` names (result-shaped, int64), -1 where an
    index is out of bounds (mode "drop"/"fill") or clamped into bounds ("clip")."""
    shape = tuple(ops.shape(x))
    parts, dims = _components(idx, len(shape))
    mapped, padded = [], list(shape)
    for part, d in zip(parts, dims):
        if d is None:
            mapped.append(part)
            continue
        n = shape[d]
        c = tnp.asarray(part)
        c = tnp.where(c < 0, c + n, c)
        if mode == "clip":
            mapped.append(tnp.clip(c, 0, max(n - 1, 0)))
        else:
            mapped.append(tnp.where((c >= 0) & (c < n), c, n))  # n: the sentinel slot
            padded[d] = n + 1
    table = np.full(padded, -1, np.int64)
    table[tuple(slice(0, s) for s in shape)] = np.arange(int(np.prod(shape, dtype=np.int64)),
                                                          dtype=np.int64).reshape(shape)
    return getitem(table, tuple(mapped))


def _components(idx, ndim: int):
    """(index parts, the dim each integer part indexes or None for the rest)."""
    parts = list(idx) if isinstance(idx, tuple) else [idx]
    if any(_is_mask(p) for p in parts):
        raise NotImplementedError("x.at[idx] with a boolean mask takes no mode= here: index "
                                  "with integer positions (np.nonzero(mask))")
    used = sum(1 for p in parts if p is not None and p is not Ellipsis)
    dims, d = [], 0
    for p in parts:
        if p is Ellipsis:
            d += ndim - used
            dims.append(None)
        elif p is None:
            dims.append(None)
        else:
            dims.append(None if isinstance(p, slice) else d)
            d += 1
    return parts, dims


def _is_mask(p) -> bool:
    return (isinstance(p, bool) or (not isinstance(p, (slice, type(None), type(Ellipsis)))
                                    and np.dtype(ops.dtype(tnp.asarray(p))) == np.bool_))


def fill_default(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    if dtype.kind == "b":
        return True
    return np.iinfo(dtype).min


def get(x, idx, mode, fill_value):
    pos = positions(x, idx, mode)
    flat = ops.reshape(x, (int(np.prod(ops.shape(x), dtype=np.int64)),))
    values = tnp.take(flat, tnp.where(pos >= 0, pos, 0))
    if mode == "clip":
        return values
    fill = fill_default(ops.dtype(x)) if fill_value is None else fill_value
    return tnp.where(pos >= 0, values, tnp.astype(tnp.asarray(fill), ops.dtype(x)))


def update(x, idx, values, mode, accumulate: bool):
    """x with `values` set (or added) at x[idx]; out-of-bound updates go to a trash slot
    past the end, which is then cut off."""
    pos = positions(x, idx, mode)
    shape = tuple(ops.shape(x))
    n = int(np.prod(shape, dtype=np.int64))
    m = int(np.prod(ops.shape(pos), dtype=np.int64))
    target = ops.reshape(tnp.where(pos >= 0, pos, n), (m,))
    v = tnp.broadcast_to(tnp.astype(tnp.asarray(values), ops.dtype(x)), tuple(ops.shape(pos)))
    v = ops.reshape(v, (m,))
    flat = tnp.concatenate([ops.reshape(x, (n,)), tnp.zeros(1, ops.dtype(x))])
    flat = ops.scatter_add(flat, v, target) if accumulate else setitem(flat, target, v)
    return ops.reshape(flat[:n], shape)
