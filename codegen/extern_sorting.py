"""Native lowerings of the sorting primitives (ir/sorting.py): sort, argsort, argmax and
argmin along one axis, and searchsorted, for float32/64 and int32/64
(extern.register_native).

sort/argsort: each lane is copied into stack scratch as packed integers, an unsigned
key whose order is NumPy's (NaNs last, -0.0 equal to +0.0) above the element's index
in the lane, so that all entries differ and sorting them is stable.  Runs of RUN
entries are insertion-sorted, then merged bottom-up; a merge step's choice is a
conditional move (a branch there is mispredicted half the time).  Then the indices
(argsort) or the elements they point at (sort: payloads and zero signs kept) are
written.  This serves small sorts (below MIN_CALLBACK_SORT elements: inside loops,
mostly), where a call back to the host costs more than the sort.  Larger ones take the
host callback, numpy's SIMD quicksort (ir/sorting.py; argsort checks the result for
ties and sorts stably where there are any), which also keeps the scratch (two lanes of
8- or 16-byte entries) small on the stack.

argmax/argmin view the operand as (outer, n, inner) row-major, n the axis.  Along the
last axis (inner == 1) each row is scanned once with its best value and index in
registers.  Otherwise the index of the best element so far is kept in the output row
and its value reloaded from the operand, so the innermost loop runs over `inner`,
contiguous.  NumPy's order: the first occurrence wins (a strictly better later element
replaces it), and a NaN is better than anything but an earlier NaN, so the first NaN of
a lane is its result.

searchsorted runs, per value, a binary search of a fixed bit_length(m) halvings of
[lo, hi) (a halving of an empty interval changes nothing), with NumPy's NaN-aware
order: `a < b` or (`b` is NaN and `a` is not), so NaNs sort last.
"""
from __future__ import annotations

import math

import numpy as np

from llvmlite import ir

from . import extern
from .irutil import Loop, i64
from .scalar_ops import storage_type

# the dtypes codegen stores (scalar_ops.storage_type); others take the host callback
SUPPORTED = frozenset(np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64))


def _isnan(b, v):
    return b.fcmp_unordered("uno", v, v)


def _better(b, name, v, best, dtype):
    """Whether the later element `v` replaces the best so far (strictly better)."""
    if dtype.kind != "f":
        return b.icmp_signed(">" if name == "argmax" else "<", v, best)
    strictly = b.fcmp_ordered(">" if name == "argmax" else "<", v, best)
    return b.and_(b.not_(_isnan(b, best)), b.or_(strictly, _isnan(b, v)))


def _emit_arg(b, call):
    k = call.kernel
    shape, axis = k.in_avals[0].shape, k.params["axis"]
    dtype = np.dtype(k.in_avals[0].dtype)
    outer, n, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    if outer * inner == 0:
        return
    ty, ity = storage_type(dtype), storage_type(np.dtype(np.int64))
    (x,), (out,) = call.ins, call.outs
    if inner == 1:
        _emit_arg_rows(b, k.prim, x, out, (outer, n), (ty, ity, dtype))
        return

    def x_at(o, i, j):
        flat = b.add(b.mul(b.add(b.mul(o, i64(n)), i), i64(inner)), j)
        return b.gep(x, [flat], inbounds=True, source_etype=ty)

    def out_at(o, j):
        return b.gep(out, [b.add(b.mul(o, i64(inner)), j)], inbounds=True, source_etype=ity)

    with Loop(b, i64(0), i64(outer), "outer") as o:
        with Loop(b, i64(0), i64(inner), "first") as j:
            b.store(i64(0), out_at(o, j))
        with Loop(b, i64(1), i64(n), "scan") as t:
            with Loop(b, i64(0), i64(inner), "inner") as j:
                idx = b.load(out_at(o, j), typ=ity)
                best = b.load(x_at(o, idx, j), typ=ty)
                take = _better(b, k.prim, b.load(x_at(o, t, j), typ=ty), best, dtype)
                b.store(b.select(take, t, idx), out_at(o, j))


def _emit_arg_rows(b, prim, x, out, sizes, types):
    """argmax/argmin along the last axis: each row's best value and index so far in
    registers (allocas of the entry block, which SROA promotes), the row read once in
    order; `sizes` (rows, n), `types` (element type, index type, dtype)."""
    (outer, n), (ty, ity, dtype) = sizes, types
    best_v, best_i = b.alloca(ty, name="best"), b.alloca(ity, name="best_at")

    def x_at(flat):
        return b.load(b.gep(x, [flat], inbounds=True, source_etype=ty), typ=ty)

    with Loop(b, i64(0), i64(outer), "row") as o:
        row = b.mul(o, i64(n))
        b.store(x_at(row), best_v)
        b.store(i64(0), best_i)
        with Loop(b, i64(1), i64(n), "scan") as t:
            v, best = x_at(b.add(row, t)), b.load(best_v, typ=ty)
            take = _better(b, prim, v, best, dtype)
            b.store(b.select(take, v, best), best_v)
            b.store(b.select(take, t, b.load(best_i, typ=ity)), best_i)
        b.store(b.load(best_i, typ=ity), b.gep(out, [o], inbounds=True, source_etype=ity))


def _less(b, a, v, dtype):
    """NumPy's sort order: a < v, NaNs last."""
    if dtype.kind != "f":
        return b.icmp_signed("<", a, v)
    return b.or_(b.fcmp_ordered("<", a, v), b.and_(_isnan(b, v), b.not_(_isnan(b, a))))


def _emit_searchsorted(b, call):
    k = call.kernel
    m, count = k.in_avals[0].shape[0], math.prod(k.in_avals[1].shape)
    dtype = np.dtype(k.in_avals[0].dtype)
    ty, ity = storage_type(dtype), storage_type(np.dtype(np.int64))
    (a, v), (out,) = call.ins, call.outs
    lo_slot, hi_slot = b.alloca(ity, name="lo"), b.alloca(ity, name="hi")
    with Loop(b, i64(0), i64(count), "value") as q:
        value = b.load(b.gep(v, [q], inbounds=True, source_etype=ty), typ=ty)
        b.store(i64(0), lo_slot)
        b.store(i64(m), hi_slot)
        with Loop(b, i64(0), i64(m.bit_length()), "halve"):
            _halve(b, k.params["side"], a, value, (lo_slot, hi_slot), m, dtype)
        b.store(b.load(lo_slot, typ=ity), b.gep(out, [q], inbounds=True, source_etype=ity))


def _halve(b, side, a, value, slots, m, dtype):
    """One step of the binary search for the first position whose entry is not
    before `value` (left) or is after it (right)."""
    ty, ity = storage_type(dtype), storage_type(np.dtype(np.int64))
    lo, hi = (b.load(s, typ=ity) for s in slots)
    mid = b.lshr(b.add(lo, hi), i64(1))
    safe = b.select(b.icmp_signed("<", mid, i64(m)), mid, i64(max(m - 1, 0)))
    entry = b.load(b.gep(a, [safe], inbounds=True, source_etype=ty), typ=ty)
    right = _less(b, entry, value, dtype) if side == "left" else \
        b.not_(_less(b, value, entry, dtype))
    active = b.icmp_signed("<", lo, hi)
    b.store(b.select(b.and_(active, right), b.add(mid, i64(1)), lo), slots[0])
    b.store(b.select(b.and_(active, b.not_(right)), mid, hi), slots[1])


MAX_NATIVE_SORT = 4096
# From this many elements the host callback's SIMD sort (numpy's, ir/sorting.py) is faster
# than the merge sort below despite the call's ~12 us (benchmarks/sorting.py).
MIN_CALLBACK_SORT = 1024
RUN = 16  # runs of this length are insertion-sorted before the merge passes


def _emit_sort(b, call):
    k = call.kernel
    shape, axis = k.in_avals[0].shape, k.params["axis"]
    dtype = np.dtype(k.in_avals[0].dtype)
    outer, n, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    if outer * n * inner == 0:
        return
    ty, ity = storage_type(dtype), storage_type(np.dtype(np.int64))
    bits = 8 * dtype.itemsize
    pty = ir.IntType(2 * bits)
    bufs = [b.alloca(pty, size=i64(n), name=f"packed{i}") for i in (0, 1)]
    slots = tuple(b.alloca(ity, name=name) for name in ("i", "j", "back_i", "back_j"))
    (x,), (out,) = call.ins, call.outs
    runs = min(RUN, n)
    passes = (-(-n // runs) - 1).bit_length()  # merges from runs up to the whole lane
    done = bufs[passes % 2]

    def at(ptr, o, t, j, typ):
        flat = b.add(b.mul(b.add(b.mul(o, i64(n)), t), i64(inner)), j)
        return b.gep(ptr, [flat], inbounds=True, source_etype=typ)

    with Loop(b, i64(0), i64(outer), "outer") as o:
        with Loop(b, i64(0), i64(inner), "lane") as j:
            with Loop(b, i64(0), i64(n), "load") as t:
                key = _sortable(b, b.load(at(x, o, t, j, ty), typ=ty), dtype)
                index = t if pty.width == 64 else b.zext(t, pty)
                packed = b.or_(b.shl(b.zext(key, pty), ir.Constant(pty, bits)), index)
                b.store(packed, _elem(b, bufs[0], t, pty))
            _insertion_runs(b, (bufs[0], pty), n, runs, slots[0])
            with Loop(b, i64(0), i64(passes), "pass") as p:
                _merge_pass(b, p, (bufs, pty), slots, n, runs)
            with Loop(b, i64(0), i64(n), "store") as t:
                position = _index_of(b, b.load(_elem(b, done, t, pty), typ=pty), bits)
                if k.prim == "sort":
                    b.store(b.load(at(x, o, position, j, ty), typ=ty), at(out, o, t, j, ty))
                else:
                    b.store(position, at(out, o, t, j, ity))


def _index_of(b, packed, bits):
    """The lane index in the low `bits` of a packed entry, as i64."""
    low = b.trunc(packed, ir.IntType(bits))
    return low if bits == 64 else b.zext(low, i64(0).type)


def _sortable(b, v, dtype):
    """An unsigned integer of v's width whose order is NumPy's sort order of v: signed
    integers with the sign bit flipped; floats by their bits, negative ones inverted,
    after -0.0 is made +0.0 (they are equal, so their order stays the input's) and every
    NaN the one positive quiet NaN (after +inf; NaNs keep their input order)."""
    bits = 8 * dtype.itemsize
    ity = ir.IntType(bits)
    sign = ir.Constant(ity, 1 << (bits - 1))
    if dtype.kind != "f":
        return b.xor(v, sign)
    nan = ir.Constant(ity, int(np.array(np.nan, dtype).view(f"u{dtype.itemsize}")))
    v = b.fadd(v, ir.Constant(v.type, 0.0))  # -0.0 + 0.0 is +0.0, every other value itself
    raw = b.select(_isnan(b, v), nan, b.bitcast(v, ity))
    negative = b.icmp_signed("<", raw, ir.Constant(ity, 0))
    return b.xor(raw, b.select(negative, ir.Constant(ity, (1 << bits) - 1), sign))


def _elem(b, ptr, i, typ):
    return b.gep(ptr, [i], inbounds=True, source_etype=typ)


def _insertion_runs(b, scratch, n, runs, slot):
    """Sort each run of `runs` entries of the scratch buffer in place by insertion (the
    packed entries are distinct: equal keys are ordered by their indices)."""
    if runs < 2:
        return
    buf, pty = scratch
    with Loop(b, i64(0), i64(-(-n // runs)), "run") as r:
        lo = b.mul(r, i64(runs))
        hi = _min(b, b.add(lo, i64(runs)), i64(n))
        with Loop(b, b.add(lo, i64(1)), hi, "insert") as t:
            v = b.load(_elem(b, buf, t, pty), typ=pty)
            b.store(t, slot)
            _shift_greater(b, buf, lo, v, slot, pty)
            b.store(v, _elem(b, buf, b.load(slot, typ=i64(0).type), pty))


def _shift_greater(b, buf, lo, v, slot, pty):
    """While the entry before position *slot (not before lo) is greater than v, move it
    up one place and step *slot down."""
    fn = b.function
    test, body, end = (fn.append_basic_block(f"shift.{s}") for s in ("test", "body", "end"))
    b.branch(test)
    b.position_at_end(test)
    s = b.load(slot, typ=i64(0).type)
    inside = b.icmp_signed(">", s, lo)
    before = b.sub(s, i64(1))
    prev = b.load(_elem(b, buf, b.select(inside, before, s), pty), typ=pty)
    b.cbranch(b.and_(inside, b.icmp_unsigned(">", prev, v)), body, end)
    b.position_at_end(body)
    b.store(prev, _elem(b, buf, s, pty))
    b.store(before, slot)
    b.branch(test)
    b.position_at_end(end)


def _merge_pass(b, p, scratch, slots, n, runs):
    """Merge pass p: sorted runs of width runs * 2**p from one scratch buffer into the
    other.  Each pair of runs is merged from both ends at once, the least entries to
    the front and the greatest to the back: two independent chains of dependent loads
    and compares instead of one (the entries are distinct, so the halves never meet)."""
    bufs, pty = scratch
    odd = b.trunc(p, ir.IntType(1))
    src, dst = b.select(odd, bufs[1], bufs[0]), b.select(odd, bufs[0], bufs[1])
    width = b.shl(i64(runs), p)
    pair = b.shl(width, i64(1))
    blocks = b.udiv(b.add(i64(n), b.sub(pair, i64(1))), pair)
    with Loop(b, i64(0), blocks, "block") as q:
        lo = b.mul(q, pair)
        mid, hi = (_min(b, b.add(lo, d), i64(n)) for d in (width, pair))
        for slot, start in zip(slots, (lo, mid, b.sub(mid, i64(1)), b.sub(hi, i64(1)))):
            b.store(start, slot)
        run = _Merge(b, (src, dst), slots, (lo, mid, hi), n, pty)
        half = b.lshr(b.sub(hi, lo), i64(1))
        with Loop(b, i64(0), half, "merge") as t:
            run.front(b.add(lo, t))
            run.back(b.sub(b.sub(hi, i64(1)), t))
        with _If(b, b.trunc(b.sub(hi, lo), ir.IntType(1))):  # odd count: the middle one
            run.front(b.add(lo, half))


class _If:
    """`if cond:` as a block the builder enters and leaves (no else)."""

    def __init__(self, b, cond):
        self.b, self.cond = b, cond

    def __enter__(self):
        fn = self.b.function
        self.then, self.end = fn.append_basic_block("then"), fn.append_basic_block("endif")
        self.b.cbranch(self.cond, self.then, self.end)
        self.b.position_at_end(self.then)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.b.branch(self.end)
            self.b.position_at_end(self.end)
        return False


def _unpredictable(b, select):
    """Mark a data-dependent select so that the code generator keeps it a conditional
    move: as a branch it would be mispredicted half the time on unsorted data."""
    select.set_metadata("unpredictable", b.module.add_metadata([]))
    return select


def _min(b, u, v):
    return b.select(b.icmp_signed("<", u, v), u, v)


def _max(b, u, v):
    return b.select(b.icmp_signed(">", u, v), u, v)


class _Merge:
    """The steps of merging src[lo:mid] and src[mid:hi] into dst[lo:hi].  Cursors live
    in slots (front i, j; back i, j); reads are clamped into the lane and an exhausted
    run is never taken.  The taken entry is loaded again by its position: a select of
    the two wide values becomes a branch whatever its metadata says."""

    def __init__(self, b, bufs, slots, bounds, n, pty):
        self.b, self.bufs, self.slots, self.bounds, self.n, self.pty = b, bufs, slots, bounds, n, pty

    def _read(self, k):
        b = self.b
        k = _max(b, _min(b, k, i64(self.n - 1)), i64(0))
        return b.load(_elem(b, self.bufs[0], k, self.pty), typ=self.pty)

    def _take(self, left, i, j, t):
        b = self.b
        pos = _unpredictable(b, b.select(left, i, j))
        b.store(self._read(pos), _elem(b, self.bufs[1], t, self.pty))

    def front(self, t):
        """dst[t] = the lesser head."""
        self._step(t, self.slots[:2], forward=True)

    def back(self, t):
        """dst[t] = the greater tail."""
        self._step(t, self.slots[2:], forward=False)

    def _step(self, t, slots, forward: bool):
        b, (lo, mid, hi) = self.b, self.bounds
        i, j = (b.load(s, typ=i64(0).type) for s in slots)
        pi, pj = self._read(i), self._read(j)
        if forward:  # the left run is live below mid, the right one below hi
            left_live, right_done = b.icmp_signed("<", i, mid), b.icmp_signed(">=", j, hi)
            left_wins, move = b.icmp_unsigned("<", pi, pj), b.add
        else:  # from the ends: the left run is live from lo, the right one from mid
            left_live, right_done = b.icmp_signed(">=", i, lo), b.icmp_signed("<", j, mid)
            left_wins, move = b.icmp_unsigned(">", pi, pj), b.sub
        left = b.and_(left_live, b.or_(right_done, left_wins))
        self._take(left, i, j, t)
        b.store(move(i, b.zext(left, i64(0).type)), slots[0])
        b.store(move(j, b.zext(b.not_(left), i64(0).type)), slots[1])


def _supports_sort(kernel) -> bool:
    shape = kernel.in_avals[0].shape
    return (_supports(kernel) and shape[kernel.params["axis"]] <= MAX_NATIVE_SORT
            and math.prod(shape) < MIN_CALLBACK_SORT)


def _supports(kernel) -> bool:
    return all(np.dtype(a.dtype) in SUPPORTED for a in kernel.in_avals)


# argmax/argmin along the last axis (inner == 1): a row of up to NATIVE_ROW elements is
# unrolled by LLVM, and its lanes run at about half a nanosecond an element, ten times
# numpy's per-row argmin (f32 (262144, 16): 1.75 against 16 ms); longer rows run a
# serial select chain, about three times slower than numpy's SIMD argmin.  From
# MIN_CALLBACK_ARG elements such lanes take the host callback (numpy's own argmax).
NATIVE_ROW = 32
MIN_CALLBACK_ARG = 4096


def _supports_arg(kernel) -> bool:
    shape, axis = kernel.in_avals[0].shape, kernel.params["axis"]
    long_rows = math.prod(shape[axis + 1:]) == 1 and shape[axis] > NATIVE_ROW
    return _supports(kernel) and not (long_rows and math.prod(shape) >= MIN_CALLBACK_ARG)


def _supports_search(kernel) -> bool:
    return _supports(kernel) and kernel.in_avals[0].shape[0] > 0


extern.register_native("sort", _emit_sort, _supports_sort)
extern.register_native("argsort", _emit_sort, _supports_sort)
extern.register_native("argmax", _emit_arg, _supports_arg)
extern.register_native("argmin", _emit_arg, _supports_arg)
extern.register_native("searchsorted", _emit_searchsorted, _supports_search)
