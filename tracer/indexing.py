"""NumPy indexing (`x[idx]`) and functional index updates (`x[idx] = v`) on
tensors, traced values and numpy arrays, lowered to primitives.

An index is first parsed into one entry per axis of `x` with its `None` axes
inserted (a reshape): a static slice, a concrete int, a traced 0-d int, or an
integer index array (concrete or traced).  Bool masks become index arrays
(their `nonzero`), which needs their values.  A traced mask (over leading axes)
cannot select (the result's shape would depend on the data): `x[mask]` is a
`MaskedSelection`, good only for elementwise arithmetic assigned back through the
mask; `x[mask] = v` is `where(mask, v, x)` and `x[mask] += v` is
`where(mask, x + v, x)`.  Then:

* no index arrays: `slice` (static ints and slices), `dynamic_slice` for the
  traced ints (negatives wrapped, then clamped into bounds, as in JAX), and a
  `reshape` dropping the int axes;
* index arrays (advanced indexing): the slices are applied first, the indexed
  axes are transposed to the front and their index arrays (ints count as 0-d
  arrays) broadcast to one shape B, and `gather` takes along them.  As in
  NumPy the B axes then stand where the indexed axes were when those are
  adjacent, and first when a slice separates them.

Concrete out-of-range indices raise NumPy's IndexError; traced ones are
wrapped (negatives) and clamped, as JAX does: compiled code never reads or
writes out of bounds.

`setitem(x, idx, v)` returns the updated array (NumPy's `x[idx] = v` made
functional): static basic indices select with `pad` masks (fusible),
traced ints with `dynamic_update_slice`, advanced indices `scatter` into the
flattened array at the positions that indexing an iota gives.  Duplicate
positions keep the last value written (C order of the index), as NumPy does.

>>> import numpy as np
>>> getitem(np.arange(12.0).reshape(3, 4), (-1, slice(None, None, -2))).tolist()
[11.0, 9.0]
>>> getitem(np.arange(12.0).reshape(3, 4), ([0, 2], slice(None), ))[:, 1].tolist()
[1.0, 9.0]
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from tracegrad.ir import TracedValue, ops, user_source_location


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


# ---- parsing: one entry per axis -------------------------------------------------------------

@dataclass
class Parsed:
    """An index as one entry per axis of `x` reshaped to `shape` (None axes inserted)."""

    shape: tuple      # x's shape with the size-1 axes of None (and scalar bools) inserted
    entries: list     # per axis: slice, int (concrete), TracedValue (0-d int), or Index
    arrays: bool      # whether any entry is an index array (advanced indexing)


@dataclass
class Index:
    """An integer index array: numpy (concrete, checked and non-negative) or traced."""

    value: object


def _is_traced(i) -> bool:
    return isinstance(i, TracedValue)


def _concrete_array(i):
    """Concrete index data (numpy arrays, lists, tensors) as a numpy array; None if traced."""
    if _is_traced(i):
        return None
    data = getattr(i, "_tg_concrete", None)
    return np.asarray(data() if data is not None else i)


def _classify(i):
    """One index item as ("none"|"ellipsis"|"slice"|"int"|"dyn"|"bool"|"mask"|"array", value)."""
    if i is None:
        return "none", None
    if i is Ellipsis:
        return "ellipsis", None
    if isinstance(i, slice):
        return "slice", i
    if isinstance(i, (bool, np.bool_)):
        return "bool", bool(i)
    if _is_int_index(i):
        return ("dyn", i) if _is_traced(i) else ("int", operator.index(i))
    return _classify_array(i)


def _mask_error(mask, src=None) -> IndexError:
    msg = (f"a traced boolean mask {mask.aval} cannot index: the result's shape would depend "
           "on its values. Use tracegrad.numpy.where(mask, x, 0) to keep the shape, or "
           "tracegrad.numpy.nonzero(mask, size=N) for a fixed number of indices. Elementwise "
           "arithmetic on x[mask] assigned back through the same mask (`x[mask] += v`, "
           "`x[mask] = y[mask] * 2`, v broadcasting over the unmasked axes) is a where.")
    return IndexError(msg + f"\n  at {src}") if src else IndexError(_located(msg))


def _classify_array(i):
    if _is_traced(i):
        if i.dtype == np.bool_:
            raise _mask_error(i)
        _check_int_dtype(i.dtype)
        return "array", i
    a = _concrete_array(i)
    if a.dtype == np.bool_:
        return ("bool", bool(a)) if a.ndim == 0 else ("mask", a)
    if a.size == 0 and a.dtype.kind == "f" and isinstance(i, (list, tuple)):
        a = a.astype(np.int64)  # x[[]]: NumPy takes an empty list as an empty int index
    _check_int_dtype(a.dtype)
    return ("int", int(a)) if a.ndim == 0 else ("array", a)


def _check_int_dtype(dtype):
    if not np.issubdtype(dtype, np.integer):
        raise IndexError(_located("only integers, slices (`:`), ellipsis (`...`), "
                                  "numpy.newaxis (`None`) and integer or boolean arrays are "
                                  f"valid indices (got an array of dtype {dtype})"))


def _consumed(kind, value) -> int:
    if kind == "mask":
        return value.ndim
    return 0 if kind in ("none", "ellipsis", "bool") else 1


def _expand_ellipsis(items, ndim: int):
    if sum(k == "ellipsis" for k, _ in items) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(_consumed(k, v) for k, v in items)
    if used > ndim:
        raise IndexError(_located(f"too many indices for array: array is {ndim}-dimensional, "
                                  f"but {used} were indexed"))
    fill = [("slice", slice(None))] * (ndim - used)
    pos = next((n for n, (k, _) in enumerate(items) if k == "ellipsis"), None)
    return items + fill if pos is None else items[:pos] + fill + items[pos + 1:]


def _mask_entries(mask, shape, axis):
    if mask.shape != tuple(shape[axis:axis + mask.ndim]):
        raise IndexError(_located(
            f"boolean index did not match indexed array along axis {axis}; size of axis is "
            f"{shape[axis]} but size of corresponding boolean axis is {mask.shape[0]}"
            if mask.ndim else "a 0-d boolean mask cannot index here"))
    return [Index(p.astype(np.int64)) for p in np.nonzero(mask)]


def parse(shape, idx) -> Parsed:
    """Parse `idx` for an array of `shape` (NumPy's rules; IndexError as NumPy raises them)."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    items = _expand_ellipsis([_classify(i) for i in idx], len(shape))
    new_shape, entries, axis = [], [], 0
    for kind, value in items:
        if kind in ("none", "bool"):
            new_shape.append(1)
            entries.append(slice(None) if kind == "none"
                           else Index(np.zeros(1 if value else 0, np.int64)))
            continue
        n = _consumed(kind, value)
        new_shape.extend(shape[axis:axis + n])
        entries.extend(_entries(kind, value, shape, axis))
        axis += n
    arrays = any(isinstance(e, Index) for e in entries)
    entries = [_checked(e, d, k, arrays) for k, (e, d) in enumerate(zip(entries, new_shape))]
    return Parsed(tuple(new_shape), entries, arrays)


def _entries(kind, value, shape, axis):
    if kind == "mask":
        return _mask_entries(value, shape, axis)
    return [Index(value) if kind == "array" else value]


def _out_of_bounds(k, d, axis):
    return IndexError(_located(f"index {k} is out of bounds for axis {axis} with size {d}"))


def first_outside(index: np.ndarray, d: int):
    """The first entry of a concrete integer index array outside [-d, d), or None."""
    bad = (index < -d) | (index >= d)
    return int(index[bad].flat[0]) if bad.any() else None


def check_in_bounds(index: np.ndarray, d: int, axis: int) -> None:
    """NumPy's IndexError for a concrete index array with an entry outside [-d, d)."""
    k = first_outside(index, d)
    if k is not None:
        raise _out_of_bounds(k, d, axis)


def _checked(entry, d: int, axis: int, arrays: bool):
    """Concrete ints and arrays checked against the axis length and made non-negative."""
    if isinstance(entry, int) and not isinstance(entry, bool):
        if not -d <= entry < d:
            raise _out_of_bounds(entry, d, axis)
        return entry % d
    if isinstance(entry, Index) and isinstance(entry.value, np.ndarray):
        a = entry.value.astype(np.int64)
        check_in_bounds(a, d, axis)
        return Index(np.where(a < 0, a + d, a) if d else a)
    if _is_traced(entry) and d == 0:
        raise _out_of_bounds("(traced)", d, axis)
    return entry


# ---- getitem -----------------------------------------------------------------------------------

def _wrap(i, d: int):
    """A traced index with negatives wrapped to i + d (clamping is the primitive's)."""
    i = ops.convert(i, np.int64) if i.dtype != np.int64 else i
    return ops.where(ops.lt(i, np.int64(0)), ops.add(i, np.int64(d)), i)


def _static_slices(x, p: Parsed):
    """x with the static slices and ints applied (advanced and traced axes kept whole)."""
    starts, steps, sizes = [], [], []
    for e, d in zip(p.entries, p.shape):
        if isinstance(e, slice):
            start, stop, step = e.indices(d)
            size = len(range(start, stop, step))
            starts.append(start if size else 0), steps.append(step), sizes.append(size)
        elif isinstance(e, int) and not p.arrays:
            starts.append(e), steps.append(1), sizes.append(1)
        else:
            starts.append(0), steps.append(1), sizes.append(d)
    whole = all(st == 0 and sp == 1 and sz == d
                for st, sp, sz, d in zip(starts, steps, sizes, p.shape))
    return x if whole else ops.slice(x, starts, steps, sizes)


def _dynamic_starts(p: Parsed, shape):
    return [_wrap(e, d) if _is_traced(e) else np.int64(0) for e, d in zip(p.entries, shape)]


def _basic(x, p: Parsed):
    y = _static_slices(x, p)
    shape = ops.shape(y)
    if any(_is_traced(e) for e in p.entries):
        sizes = [1 if _is_traced(e) else d for e, d in zip(p.entries, shape)]
        y = ops.dynamic_slice(y, *_dynamic_starts(p, shape), sizes=sizes)
    kept = [d for e, d in zip(p.entries, ops.shape(y)) if isinstance(e, slice)]
    return ops.reshape(y, tuple(kept))


def _index_arrays(p: Parsed, axes):
    """The index operands of the advanced axes, broadcast to one shape B."""
    vals = [e.value if isinstance(e, Index) else (np.int64(e) if isinstance(e, int) else e)
            for e in (p.entries[a] for a in axes)]
    b = _index_shape(vals)
    return [_broadcast_index(v, b) for v in vals], b


def _index_shape(vals) -> tuple:
    """The broadcast shape B of the index arrays (NumPy's IndexError when they do not fit)."""
    try:
        return np.broadcast_shapes(*[ops.shape(v) for v in vals])
    except ValueError:
        shapes = " ".join(str(ops.shape(v)) for v in vals)
        raise IndexError(_located(f"shape mismatch: indexing arrays could not be broadcast "
                                  f"together with shapes {shapes}")) from None


def _broadcast_index(v, b):
    if isinstance(v, np.ndarray | np.generic):
        return np.broadcast_to(np.asarray(v, np.int64), b).copy()
    return ops.broadcast(v, b)


def _advanced(x, p: Parsed):
    y = _static_slices(x, p)
    axes = [k for k, e in enumerate(p.entries) if not isinstance(e, slice)]
    rest = [k for k, e in enumerate(p.entries) if isinstance(e, slice)]
    idx, b = _index_arrays(p, axes)
    g = ops.gather(ops.transpose(y, axes + rest), *idx)
    if axes != list(range(axes[0], axes[0] + len(axes))):
        return g  # separated advanced indices: their axes come first (NumPy)
    nb, first = len(b), axes[0]
    perm = [nb + j for j in range(first)] + list(range(nb)) + list(range(nb + first, nb + len(rest)))
    return ops.transpose(g, perm)


def getitem(x, idx):
    """`x[idx]` with NumPy's basic and advanced indexing; a traced bool mask gives a
    `MaskedSelection` (see there)."""
    shape = ops.shape(x)
    mask = _traced_mask(idx, shape)
    if mask is not None:  # of x's value now: a later `x[...] = v` rebinds x's object
        return MaskedSelection(ops.bind("reshape", x, shape=shape), mask)
    p = parse(shape, idx)
    y = ops.reshape(x, p.shape)
    return _advanced(y, p) if p.arrays else _basic(y, p)


# ---- functional updates ----------------------------------------------------------------------

def _value(v, like_dtype, shape, where: str):
    """The assigned value as an operand of x's dtype, broadcast to the selection's `shape`."""
    from .numpy._core import _lift  # the numpy namespace imports this module
    v = _lift(v, like_dtype)
    vs = ops.shape(v)
    while len(vs) > len(shape) and vs[0] == 1:  # NumPy drops leading 1s of the value
        vs = vs[1:]
    try:
        ok = np.broadcast_shapes(vs, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(_located(f"{where}: could not broadcast input array from shape "
                                  f"{ops.shape(v)} into shape {tuple(shape)}"))
    return ops.broadcast(ops.reshape(v, vs), shape)


def _box_shape(p: Parsed, shape):
    """Per axis: the selected extent of the static slice or int (size 1)."""
    out = []
    for e, d in zip(p.entries, shape):
        out.append(len(range(*e.indices(d))) if isinstance(e, slice) else 1)
    return tuple(out)


def _slice_params(p: Parsed):
    starts, steps = [], []
    for e, d in zip(p.entries, p.shape):
        if isinstance(e, slice):
            start, stop, step = e.indices(d)
            starts.append(start if len(range(start, stop, step)) else 0), steps.append(step)
        else:
            starts.append(e if isinstance(e, int) else 0), steps.append(1)
    return starts, steps


def _set_static(y, p: Parsed, v):
    """Static basic index: where(pad(ones), pad(v), y), a fusible select when traced;
    eager unit-step windows are one dynamic_update_slice (a copy and the window's
    writes, where the select would build three arrays of y's size)."""
    box = _box_shape(p, p.shape)
    if 0 in box:
        return y
    starts, steps = _slice_params(p)
    if box == p.shape and all(s == 0 for s in starts) and all(s == 1 for s in steps):
        return ops.reshape(v, box)  # x[...] = v: the whole array
    v = ops.reshape(v, box)
    if not _is_traced(y) and all(s == 1 for s in steps):
        return ops.dynamic_update_slice(y, v, *(np.int64(s) for s in starts))
    mask = ops.pad(np.ones(box, np.bool_), starts, steps, p.shape)
    return ops.where(mask, ops.pad(v, starts, steps, p.shape), y)


def _set_dynamic(y, p: Parsed, v):
    """Traced ints with unit-step slices: one dynamic_update_slice."""
    box = _box_shape(p, p.shape)
    starts, _ = _slice_params(p)
    starts = [_wrap(e, d) if _is_traced(e) else np.int64(s)
              for e, d, s in zip(p.entries, p.shape, starts)]
    return ops.dynamic_update_slice(y, ops.reshape(v, box), *starts)


def _set_scatter(y, p: Parsed, v):
    """Any index: scatter into the flattened array at the positions the index selects
    from an iota (concrete indices give constant positions)."""
    n = _count(p.shape)
    iota = np.arange(n, dtype=np.int64).reshape(p.shape)
    pos = _advanced(iota, p) if p.arrays else _basic(iota, p)
    m = _count(ops.shape(pos))
    flat = ops.scatter(ops.reshape(y, (n,)), ops.reshape(v, (m,)), ops.reshape(pos, (m,)))
    return ops.reshape(flat, p.shape)


def _count(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _selection_shape(p: Parsed) -> tuple:
    """The shape of `x[idx]` (without computing it)."""
    kept = [len(range(*e.indices(d))) for e, d in zip(p.entries, p.shape) if isinstance(e, slice)]
    if not p.arrays:
        return tuple(kept)
    axes = [k for k, e in enumerate(p.entries) if not isinstance(e, slice)]
    b = _index_shape([e.value if isinstance(e, Index) else (e if _is_traced(e) else 0)
                      for e in (p.entries[a] for a in axes)])
    if axes != list(range(axes[0], axes[0] + len(axes))):
        return b + tuple(kept)
    return tuple(kept[:axes[0]]) + b + tuple(kept[axes[0]:])


def _unit_steps(p: Parsed) -> bool:
    return all(e.indices(d)[2] == 1 for e, d in zip(p.entries, p.shape) if isinstance(e, slice))


def _traced_mask(idx, shape):
    """The traced bool mask of `x[mask] = v` (alone, or before a trailing `...`), else None."""
    items = idx if isinstance(idx, tuple) else (idx,)
    if items and items[-1] is Ellipsis:
        items = items[:-1]
    if len(items) != 1 or not _is_traced(items[0]) or items[0].dtype != np.bool_:
        return None
    m = items[0]
    return m if tuple(m.shape) == tuple(shape[:m.ndim]) and m.ndim else None


def _set_masked(x, mask, v):
    """`x[mask] = v` for a traced mask: where(mask, v, x), v broadcast over the rest axes
    (the selection's length is data-dependent, so v must not depend on it), or v's full
    array for a selection through the same mask (`x[mask] += 1`)."""
    shape, k = ops.shape(x), len(ops.shape(mask))
    m = ops.broadcast(ops.reshape(mask, ops.shape(mask) + (1,) * (len(shape) - k)), shape)
    if isinstance(v, MaskedSelection):
        return ops.where(m, _selected_values(v, mask, shape, ops.dtype(x)), x)
    v = _value(v, ops.dtype(x), shape[k:], "setitem with a traced mask (the value must "
               "broadcast over the unmasked axes)")
    return ops.where(m, ops.broadcast(v, shape), x)


def _selected_values(sel, mask, shape, dtype):
    """The full array of `sel`, to be assigned through `mask` into an array of `shape`."""
    from .numpy._core import _convert
    if not _same_mask(sel.mask, mask):
        raise IndexError(_located(
            "x[mask] = y[other_mask] with traced masks: the masks must be the same traced "
            "value (the positions selected on both sides must be the same)"))
    if tuple(ops.shape(sel.full)) != tuple(shape):
        raise ValueError(_located(
            f"x[mask] = y[mask] with a traced mask needs x and y of one shape (got "
            f"{tuple(shape)} and {tuple(ops.shape(sel.full))})"))
    return _convert(sel.full, dtype)


def _same_mask(a, b) -> bool:
    """Whether traced masks a and b are the same value: one variable, or one equation
    applied to the same operands (`x > 0` written twice)."""
    if a is b or a._tg_var is b._tg_var:
        return True
    ea, eb = _defining_eqn(a), _defining_eqn(b)
    return (ea is not None and eb is not None and ea.prim is eb.prim
            and ea.params == eb.params and len(ea.inputs) == len(eb.inputs)
            and all(_same_atom(p, q) for p, q in zip(ea.inputs, eb.inputs)))


def _defining_eqn(value):
    var = value._tg_var
    eqns = getattr(value._tg_trace, "eqns", ())
    return next((e for e in reversed(eqns) if any(o is var for o in e.outs)), None)


def _same_atom(p, q) -> bool:
    if p is q:
        return True
    pv, qv = getattr(p, "value", None), getattr(q, "value", None)  # Literals
    return (pv is not None and qv is not None and pv.dtype == qv.dtype
            and bool(np.array_equal(pv, qv, equal_nan=True)))


# ---- x[mask] for a traced mask ----------------------------------------------------------------

class MaskedSelection(TracedValue):
    """`x[mask]` for a traced bool mask: its shape depends on the data, so it is no array.
    It is kept as `full` (x's shape, the selected values at the mask's positions) for the
    uses whose result has a static shape: elementwise arithmetic with operands that
    broadcast over the unmasked axes (or selections through the same mask), assigned back
    through the mask (`x[mask] += v` is `x = where(mask, x + v, x)`; differentiable).
    Any other use (a numpy function, a method, an output) raises the IndexError that
    indexing with a traced mask raises, naming the line that indexed."""

    def __init__(self, full, mask):
        self._tg_trace = ops.find_trace([full, mask])
        self.full, self.mask, self._src = full, mask, user_source_location()

    @property
    def _tg_var(self):  # every recording of this value (ops, outputs) lands here
        raise _mask_error(self.mask, self._src)

    def __repr__(self):
        return f"MaskedSelection<{ops.aval(self.full)}[{self.mask.aval} mask]>"

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise _mask_error(self.mask, self._src)

    def __bool__(self):
        raise _mask_error(self.mask, self._src)

    __len__ = __iter__ = __array__ = __bool__

    def _apply(self, fn, other, reflected):
        from . import numpy as tnp
        o = other.full if isinstance(other, MaskedSelection) else _over_unmasked(self, other)
        if isinstance(other, MaskedSelection) and not (
                _same_mask(self.mask, other.mask) and ops.shape(self.full) == ops.shape(o)):
            raise _mask_error(self.mask, self._src)
        fn = getattr(tnp, fn)
        return MaskedSelection(fn(o, self.full) if reflected else fn(self.full, o), self.mask)


def _over_unmasked(sel, v):
    """`v` as an operand of `sel.full`: its shape (leading 1s dropped) must broadcast over
    the unmasked axes, as it would against every selected row."""
    rest = tuple(ops.shape(sel.full)[len(ops.shape(sel.mask)):])
    vs = tuple(np.shape(v)) if not hasattr(v, "shape") else tuple(v.shape)
    trimmed = vs
    while len(trimmed) > len(rest) and trimmed[0] == 1:
        trimmed = trimmed[1:]
    try:
        ok = len(trimmed) <= len(rest) and np.broadcast_shapes(trimmed, rest) == rest
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(_located(f"x[mask] with a traced mask: an operand of shape {vs} must "
                                  f"broadcast over the unmasked axes {rest}"))
    return ops.reshape(v, trimmed) if trimmed != vs else v


def _masked_binary(name, reflected):
    def op(self, other):
        return self._apply(name, other, reflected)
    return op


def _masked_unary(name):
    def op(self):
        from . import numpy as tnp
        return MaskedSelection(getattr(tnp, name)(self.full), self.mask)
    return op


_MASKED_BINARY = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide",
                  "floordiv": "floor_divide", "mod": "remainder", "pow": "power",
                  "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor"}
for _name, _fn in _MASKED_BINARY.items():
    setattr(MaskedSelection, f"__{_name}__", _masked_binary(_fn, False))
    setattr(MaskedSelection, f"__r{_name}__", _masked_binary(_fn, True))
for _name, _fn in {"neg": "negative", "pos": "positive", "abs": "absolute",
                   "invert": "invert"}.items():
    setattr(MaskedSelection, f"__{_name}__", _masked_unary(_fn))


def setitem(x, idx, v):
    """The array `x` with `x[idx] = v` applied (NumPy semantics, functional).  A traced
    bool mask is allowed here (`x[x < 0] = 0`): the result's shape does not depend on it."""
    shape = ops.shape(x)
    mask = _traced_mask(idx, shape)
    if mask is not None:
        return _set_masked(x, mask, v)
    p = parse(shape, idx)
    traced = any(_is_traced(e) for e in p.entries)
    v = _value(v, ops.dtype(x), _selection_shape(p), "setitem")
    y = ops.reshape(x, p.shape)
    if p.arrays or (traced and not _unit_steps(p)):
        y = _set_scatter(y, p, v)
    elif traced:
        y = _set_dynamic(y, p, v)
    else:
        y = _set_static(y, p, v)
    return ops.reshape(y, shape)
