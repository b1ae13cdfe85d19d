"""Sorting and searching primitives: sort, argsort, argmax/argmin, searchsorted.

All are whole-array routines (kind "extern"): fusion never fuses into them;
codegen runs their native lowerings (codegen/extern_sorting.py) and otherwise
calls the numpy `impl`.  Each works along one axis, a non-negative int.

Conventions (NumPy's): sorting is stable and puts NaNs last; `argmax`/`argmin`
give the first occurrence, and a NaN counts as the extremum; indices are int64.
Only `sort` has a derivative: its output is a permutation of its operand, so
the gradient flows back through that permutation: the JVP gathers the tangent
by it (`take_along`), the VJP scatters the cotangent back (`add_along`, its transpose).
"""
from __future__ import annotations

import numpy as np

from . import ops
from .core import ShapedArray
from .primitives import Primitive, bind, fail, register

__all__ = ["sort", "argsort", "argmax", "argmin", "searchsorted", "take_along", "add_along"]

INDEX = np.dtype(np.int64)


def _check_axis(name, x, axis):
    if not 0 <= axis < x.ndim:
        fail(name, f"axis {axis} out of range for rank {x.ndim}", x)


def _declare(name, rule, impl, **facts):
    return register(Primitive(name, "extern", rule, impl, **facts))


# ---- sort, argsort ------------------------------------------------------------------

def _sort_rule(x, *, axis):
    _check_axis("sort", x, axis)
    return ShapedArray(x.shape, x.dtype)


def _argsort_rule(x, *, axis):
    _check_axis("argsort", x, axis)
    return ShapedArray(x.shape, INDEX)


def _sort_impl(x, *, axis):
    # The sorted values are the same for every algorithm, up to the order of equal
    # elements that differ in bits (-0.0 and +0.0, NaN payloads): NumPy's default sort
    # (SIMD quicksort on x86) is many times faster than its stable one, and is what a
    # plain np.sort call gives.
    return np.sort(np.asarray(x), axis=axis)


def _sort_into(out, x, *, axis):
    np.copyto(out, x)
    out.sort(axis=axis)  # in place: NumPy's default sort, as _sort_impl


def _argsort_impl(x, *, axis):
    # Without ties every sorting permutation is the stable one, and NumPy's SIMD quicksort
    # (values, then indices) is several times faster than its stable argsort.
    x = np.asarray(x)
    kind = "stable" if _has_ties(np.sort(x, axis=axis), axis) else None
    return np.argsort(x, axis=axis, kind=kind).astype(INDEX, copy=False)


def _has_ties(s, axis):
    """Whether sorted `s` holds equal neighbours (NaNs equal) along `axis`."""
    s = np.moveaxis(s, axis, -1)
    a, b = s[..., :-1], s[..., 1:]
    same = a == b
    if s.dtype.kind == "f":
        same |= np.isnan(a) & np.isnan(b)
    return bool(same.any())


def _lanes(shape, axis):
    """(perm moving `axis` last, the moved shape, lane count, lane length)."""
    perm = tuple(i for i in range(len(shape)) if i != axis) + (axis,)
    moved = tuple(shape[p] for p in perm)
    return perm, moved, int(np.prod(moved[:-1], dtype=np.int64)), moved[-1]


def _flat_positions(idx, perm, lanes, n):
    """Positions into the flattened moved operand: each lane's offset plus `idx`."""
    offsets = np.arange(lanes, dtype=INDEX).reshape(lanes, 1) * n
    return ops.add(ops.reshape(ops.transpose(idx, perm), (lanes, n)),
                   ops.broadcast(offsets, (lanes, n)))


def _moved_back(flat, perm, moved):
    return ops.transpose(ops.reshape(flat, moved), tuple(int(i) for i in np.argsort(perm)))


def take_along(x, idx, axis: int):
    """`np.take_along_axis(x, idx, axis)` for an `idx` of x's shape, as one `gather`
    from the flattened operand (the axis moved last, each lane's offset added)."""
    perm, moved, lanes, n = _lanes(ops.shape(x), axis)
    flat = ops.reshape(ops.transpose(x, perm), (lanes * n,))
    return _moved_back(ops.gather(flat, _flat_positions(idx, perm, lanes, n)), perm, moved)


def add_along(u, idx, axis: int):
    """The transpose of `take_along` in its operand: zeros with `u` added at `idx`
    along `axis` (one `scatter_add` into the flattened result)."""
    perm, moved, lanes, n = _lanes(ops.shape(u), axis)
    zeros = np.zeros(lanes * n, ops.dtype(u))
    flat = ops.scatter_add(zeros, ops.reshape(ops.transpose(u, perm), (lanes, n)),
                           _flat_positions(idx, perm, lanes, n))
    return _moved_back(flat, perm, moved)


def _sort_vjp(g, out, x, *, axis):
    # out = take_along(x, p) for p = argsort(x): its transpose adds g back at p
    return (add_along(g, argsort(x, axis), axis),)


def _sort_jvp(tangents, out, x, *, axis):
    t, = tangents
    return None if t is None else take_along(t, argsort(x, axis), axis)


_declare("sort", _sort_rule, _sort_impl, vjp=_sort_vjp, jvp=_sort_jvp, torch_name="SortBackward0",
         impl_into=_sort_into, doc="Stable sort along `axis`, NaNs last.")
_declare("argsort", _argsort_rule, _argsort_impl, differentiable=False,
         doc="The int64 permutation that stably sorts along `axis` (NaNs last).")


def sort(x, axis: int):
    return bind("sort", x, axis=int(axis))


def argsort(x, axis: int):
    return bind("argsort", x, axis=int(axis))


# ---- argmax, argmin ---------------------------------------------------------------------

def _arg_rule(name):
    def rule(x, *, axis):
        _check_axis(name, x, axis)
        if x.shape[axis] == 0:
            fail(name, f"attempt to get {name} of an empty sequence (axis {axis})", x)
        return ShapedArray(x.shape[:axis] + x.shape[axis + 1:], INDEX)
    return rule


def _arg_impl(fn):
    def impl(x, *, axis):
        return np.asarray(fn(np.asarray(x), axis=axis), dtype=INDEX)
    return impl


_declare("argmax", _arg_rule("argmax"), _arg_impl(np.argmax), differentiable=False,
         doc="Index of the first maximum along `axis` (a NaN is the maximum).")
_declare("argmin", _arg_rule("argmin"), _arg_impl(np.argmin), differentiable=False,
         doc="Index of the first minimum along `axis` (a NaN is the minimum).")


def argmax(x, axis: int):
    return bind("argmax", x, axis=int(axis))


def argmin(x, axis: int):
    return bind("argmin", x, axis=int(axis))


# ---- searchsorted --------------------------------------------------------------------------

SIDES = ("left", "right")


def _searchsorted_rule(a, v, *, side):
    if a.ndim != 1:
        fail("searchsorted", "the sorted operand must be 1-D", a, v)
    if a.dtype != v.dtype:
        fail("searchsorted", "operand dtypes differ", a, v)
    if side not in SIDES:
        fail("searchsorted", f"side must be 'left' or 'right', not {side!r}", a, v)
    return ShapedArray(v.shape, INDEX)


def _searchsorted_impl(a, v, *, side):
    return np.asarray(np.searchsorted(np.asarray(a), np.asarray(v), side=side), dtype=INDEX)


_declare("searchsorted", _searchsorted_rule, _searchsorted_impl, differentiable=False,
         doc="Insertion indices of `v` into the sorted 1-D `a` (NaNs sort last).")


def searchsorted(a, v, side: str = "left"):
    return bind("searchsorted", a, v, side=str(side))
