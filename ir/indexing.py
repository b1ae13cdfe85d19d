"""Indexing primitives: gather, scatter_add, scatter, dynamic_slice,
dynamic_update_slice and nonzero (kind "extern": whole-array routines).

The one gather form is "take along the k leading axes with index arrays of
one shape B" (integer operands, broadcast by the front end):

    gather(x, i_0, ..., i_{k-1})[b, r] = x[i_0[b], ..., i_{k-1}[b], r]

so the output has shape B + x.shape[k:].  Every NumPy advanced index reduces
to it plus slices, transposes and reshapes (tracer/indexing.py).
`scatter_add` is its transpose (duplicate positions accumulate) and `scatter`
overwrites (of duplicate positions the LAST update in C order of B wins,
deterministically; the others get no gradient, nor does any overwritten
element of x).

Index semantics of the primitives (they never read or write out of bounds):
a negative index i of an axis of length d is first wrapped to i + d, then
every index is clamped into [0, d - 1], as JAX does for traced indices.  The
front end raises NumPy's IndexError for out-of-range indices it knows
(concrete ones), so clamping is only ever seen with traced indices.  Reading
from an axis of length 0 gives zeros; writing into one writes nothing.

`dynamic_slice(x, *starts, sizes)` and `dynamic_update_slice(x, u, *starts)`
take one 0-d integer start per axis, clamped into [0, d - size] (JAX's rule:
the window always lies inside the array; negative starts are clamped to 0).
"""
from __future__ import annotations

import numpy as np

from . import ops
from .core import ShapedArray
from .primitives import Primitive, bind, fail, register

__all__ = ["gather", "scatter_add", "scatter", "dynamic_slice", "dynamic_update_slice",
           "nonzero_static", "index_bounds"]

# Primitives whose VJP and JVP read only the shapes of their float operands (and the
# values of their index operands): eager autograd need not guard those against in-place
# changes (PyTorch's index and slice nodes save no data either).  `where` reads its
# bool condition's values and only the shapes of its float branches (PyTorch's
# WhereBackward saves the condition alone); add, sub and neg have constant partials
# (AddBackward, SubBackward and NegBackward save no tensors).
SHAPE_ONLY_VJP = frozenset({"gather", "scatter_add", "scatter", "dynamic_slice",
                            "dynamic_update_slice", "where", "add", "sub", "neg"})


def _declare(name, rule, impl, vjp=None, jvp=None, **facts):
    prim = register(Primitive(name, "extern", rule, impl, **facts))
    if prim.differentiable:
        prim.vjp, prim.jvp = vjp, jvp
    return prim


def _is_int(aval) -> bool:
    return np.issubdtype(aval.dtype, np.integer)


def _check_indices(name, x, idx):
    if not 1 <= len(idx) <= x.ndim:
        fail(name, f"needs 1 to {x.ndim} index arrays for a rank-{x.ndim} operand", x, *idx)
    if not all(_is_int(i) for i in idx):
        fail(name, "index operands must be integer arrays", x, *idx)
    if len({i.shape for i in idx}) != 1:
        fail(name, "index arrays must have one shape (broadcast them first)", x, *idx)
    return idx[0].shape + x.shape[len(idx):]


def index_bounds(i, d: int) -> np.ndarray:
    """numpy: index array `i` of an axis of length d > 0, negatives wrapped, then clamped."""
    i = np.asarray(i, np.int64)
    return np.clip(np.where(i < 0, i + d, i), 0, d - 1)


def _positions(x_shape, idx):
    """The clamped index tuple of numpy arrays, or None when an indexed axis has length 0."""
    if any(d == 0 for d in x_shape[:len(idx)]):
        return None
    return tuple(index_bounds(i, d) for i, d in zip(idx, x_shape))


# ---- gather ----------------------------------------------------------------------------------

def _gather_rule(x, *idx):
    return ShapedArray(_check_indices("gather", x, idx), x.dtype)


def _gather_impl(x, *idx):
    x = np.asarray(x)
    pos = _positions(x.shape, idx)
    if pos is None:
        return np.zeros(np.shape(idx[0]) + x.shape[len(idx):], x.dtype)
    return np.array(x[pos], copy=True)


def _gather_vjp(g, out, x, *idx):
    return (scatter_add(ops.full_like(x, 0), g, *idx),) + (None,) * len(idx)


def _gather_jvp(tangents, out, x, *idx):
    t = tangents[0]
    return None if t is None else gather(t, *idx)


_declare("gather", _gather_rule, _gather_impl, _gather_vjp, _gather_jvp,
         torch_name="IndexBackward0",
         doc="x[i_0[b], ..., i_{k-1}[b], ...]: take along the k leading axes")


def gather(x, *idx):
    return bind("gather", x, *idx)


# ---- scatter_add, scatter -----------------------------------------------------------------------

def _scatter_rule(name):
    def rule(x, u, *idx):
        want = _check_indices(name, x, idx)
        if u.shape != want or u.dtype != x.dtype:
            fail(name, f"updates must be {ShapedArray(want, x.dtype)}", x, u, *idx)
        return x
    return rule


def _scatter_add_impl(x, u, *idx):
    out = np.array(x, copy=True)
    pos = _positions(out.shape, idx)
    if pos is not None:
        np.add.at(out, pos, np.asarray(u, out.dtype))
    return out


def _last_writes(pos, lead_shape):
    """Flat positions into B of the updates that win: the last one per target (C order)."""
    flat = np.ravel_multi_index(tuple(p.ravel() for p in pos), lead_shape)
    _, first_of_reversed = np.unique(flat[::-1], return_index=True)
    return flat.size - 1 - first_of_reversed


def _scatter_impl(x, u, *idx):
    out = np.array(x, copy=True)
    pos = _positions(out.shape, idx)
    if pos is None or pos[0].size == 0:
        return out
    k = len(idx)
    win = _last_writes(pos, out.shape[:k])
    u = np.asarray(u, out.dtype).reshape((-1,) + out.shape[k:])
    out[tuple(p.ravel()[win] for p in pos)] = u[win]
    return out


def _linear_scatter_jvp(name):
    def jvp(tangents, out, x, u, *idx):
        tx, tu = tangents[0], tangents[1]
        if tx is None and tu is None:
            return None
        tx = ops.full_like(x, 0) if tx is None else tx
        tu = ops.full_like(u, 0) if tu is None else tu
        return bind(name, tx, tu, *idx)
    return jvp


def _scatter_add_vjp(g, out, x, u, *idx):
    return (g, gather(g, *idx)) + (None,) * len(idx)


def _winner_mask(u, idx, lead_shape):
    """Bool of u's shape: which updates are the last write to their position."""
    b_shape = ops.shape(idx[0])
    order = np.arange(int(np.prod(b_shape, dtype=np.int64)), dtype=np.int64).reshape(b_shape)
    table = scatter(np.full(lead_shape, -1, np.int64), order, *idx)
    wins = ops.eq(gather(table, *idx), order)
    u_shape = ops.shape(u)
    wins = ops.reshape(wins, b_shape + (1,) * (len(u_shape) - len(b_shape)))
    return ops.broadcast(wins, u_shape)


def _scatter_vjp(g, out, x, u, *idx):
    gx = scatter(g, ops.full_like(u, 0), *idx)
    lead = ops.shape(x)[:len(idx)]
    if any(d == 0 for d in lead):
        return (gx, ops.full_like(u, 0)) + (None,) * len(idx)
    gu = ops.where(_winner_mask(u, idx, lead), gather(g, *idx), ops.full_like(u, 0))
    return (gx, gu) + (None,) * len(idx)


_declare("scatter_add", _scatter_rule("scatter_add"), _scatter_add_impl, _scatter_add_vjp,
         _linear_scatter_jvp("scatter_add"), torch_name="IndexPutBackward0",
         doc="x with u added at the gathered positions (duplicates accumulate)")
_declare("scatter", _scatter_rule("scatter"), _scatter_impl, _scatter_vjp,
         _linear_scatter_jvp("scatter"), torch_name="IndexPutBackward0",
         doc="x with u written at the gathered positions (last write wins)")


def scatter_add(x, u, *idx):
    return bind("scatter_add", x, u, *idx)


def scatter(x, u, *idx):
    return bind("scatter", x, u, *idx)


# ---- dynamic_slice, dynamic_update_slice --------------------------------------------------------

def _check_starts(name, x, starts, *others):
    if len(starts) != x.ndim or any(s.shape != () or not _is_int(s) for s in starts):
        fail(name, f"needs {x.ndim} integer scalar start indices", x, *others, *starts)


def _dynamic_slice_rule(x, *starts, sizes):
    _check_starts("dynamic_slice", x, starts)
    if len(sizes) != x.ndim or any(not 0 <= s <= d for s, d in zip(sizes, x.shape)):
        fail("dynamic_slice", f"sizes {tuple(sizes)} do not fit the operand", x)
    return ShapedArray(sizes, x.dtype)


def _window(starts, sizes, shape):
    """The clamped window of `sizes` at `starts` (each start in [0, d - size])."""
    out = []
    for s, sz, d in zip(starts, sizes, shape):
        s = min(max(int(np.asarray(s)), 0), d - sz)
        out.append(np.s_[s:s + sz])
    return tuple(out)


def _dynamic_slice_impl(x, *starts, sizes):
    x = np.asarray(x)
    return np.array(x[_window(starts, sizes, x.shape)], copy=True)


def _dynamic_slice_vjp(g, out, x, *starts, sizes):
    return (dynamic_update_slice(ops.full_like(x, 0), g, *starts),) + (None,) * len(starts)


def _dynamic_slice_jvp(tangents, out, x, *starts, sizes):
    t = tangents[0]
    return None if t is None else dynamic_slice(t, *starts, sizes=sizes)


def _dus_rule(x, u, *starts):
    _check_starts("dynamic_update_slice", x, starts, u)
    if u.ndim != x.ndim or u.dtype != x.dtype or any(a > b for a, b in zip(u.shape, x.shape)):
        fail("dynamic_update_slice", "the update must fit inside the operand (same rank and "
             "dtype)", x, u)
    return x


def _dus_impl(x, u, *starts):
    out = np.array(x, copy=True)
    u = np.asarray(u, out.dtype)
    out[_window(starts, u.shape, out.shape)] = u
    return out


def _dus_vjp(g, out, x, u, *starts):
    gx = dynamic_update_slice(g, ops.full_like(u, 0), *starts)
    return (gx, dynamic_slice(g, *starts, sizes=ops.shape(u))) + (None,) * len(starts)


_declare("dynamic_slice", _dynamic_slice_rule, _dynamic_slice_impl, _dynamic_slice_vjp,
         _dynamic_slice_jvp, torch_name="SliceBackward0",
         doc="the window of `sizes` at traced starts (clamped into bounds)")
_declare("dynamic_update_slice", _dus_rule, _dus_impl, _dus_vjp,
         _linear_scatter_jvp("dynamic_update_slice"), torch_name="SliceScatterBackward0",
         doc="x with the window at traced starts (clamped) replaced by u")


def _start(s):
    """A start index as an operand: Python ints become int64 0-d arrays (not weak literals)."""
    return np.asarray(s, np.int64) if isinstance(s, (int, np.integer)) else s


def dynamic_slice(x, *starts, sizes):
    return bind("dynamic_slice", x, *[_start(s) for s in starts],
                sizes=tuple(int(s) for s in sizes))


def dynamic_update_slice(x, u, *starts):
    return bind("dynamic_update_slice", x, u, *[_start(s) for s in starts])


# ---- nonzero with a static size -------------------------------------------------------------------

def _nonzero_rule(x, *, size, fill_value):
    if x.ndim == 0:
        fail("nonzero", "needs an operand of rank >= 1", x)
    if size < 0 or len(fill_value) != x.ndim:
        fail("nonzero", f"size {size} must be >= 0 with one fill value per axis", x)
    return ShapedArray((x.ndim, size), np.int64)


def _nonzero_impl(x, *, size, fill_value):
    found = np.stack(np.nonzero(np.asarray(x))).astype(np.int64)[:, :size]
    out = np.broadcast_to(np.asarray(fill_value, np.int64)[:, None], (len(fill_value), size)).copy()
    out[:, :found.shape[1]] = found
    return out


_declare("nonzero", _nonzero_rule, _nonzero_impl, differentiable=False,
         doc="(ndim, size) indices of the first `size` nonzeros in C order, fill_value after")


def nonzero_static(x, size, fill_value=0):
    fill = fill_value if isinstance(fill_value, (tuple, list)) else (fill_value,) * ops.aval(x).ndim
    return bind("nonzero", x, size=int(size), fill_value=tuple(int(f) for f in fill))
