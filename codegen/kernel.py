"""One LoopKernel -> one LLVM function `void name(ptr noalias %buf..., [i64 %lo, i64 %hi])`.

Every shape, stride and offset is a compile-time constant: the innermost loop sees
constant strides and LLVM's loop vectorizer turns contiguous loads into vector loads,
stride-0 loads into splats and negative strides into reversed vector loads.  One pointer
argument per distinct buffer the kernel touches (distinct memory, so `noalias` is true);
small constants are private globals of the kernel's own module (their loads fold).
A kernel split over threads (threads.py) also takes `lo, hi`, the rows of its outermost
(collapsed) dimension that one call runs; any other kernel runs all rows, a constant range.

Kernels with many transcendentals call them out of line (outline.py), and those, very
long bodies and float32 sums over the innermost dim (full-width f32 lanes beside a float64
accumulator) get their innermost loop in explicit vector form
(`KernelEmitter._emit_vector_loop`, simd.py) instead of relying on LLVM's loop
vectorizer, whose time grows faster than linearly with the body: see docs/codegen.md,
"Compile time".

Reductions: the accumulator of a store whose innermost dims are reduced lives in a
register (an alloca that mem2reg promotes) and its float `fadd` carries `reassoc`,
without which LLVM keeps the loop scalar: sums are reassociated (see docs/codegen.md,
"Reassociation policy").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from tracegrad.passes.kernels import Const, IndexMap, Load, LoopKernel, Op, Store, distinct

from . import outline, shadow, simd, unrolled
from .irutil import I64, PTR, Function, Loop, i64, walk_image
from .scalar_ops import (combine, constant, convert_value, is_float, lanes_of, llvm_type,
                         lower_op, reduction_identity, storage_type, to_memory, to_register)

# A float64 sum's register accumulators take about this many elements, then add into the
# sum's running total and restart; every GROUP chunks the totals add into a grand total
# (three-level summation): rounding errors grow with CHUNK / lanes + GROUP + n / (CHUNK
# GROUP) instead of n / lanes (a float64 sum of 3e7 values: 1.9 million terms per
# accumulator in sequence, now at most 256, 64 and 115).
CHUNK = 4096
GROUP = 64
# Where the chunked level is an outer dim whose iterations each run at least this many
# elements (a row), the sums fold into their totals after every iteration instead: no
# loop nest around the rows (which cost W8's row kernels 7%), and one fold per row.
FOLD_PER_ROW = 256
BIG_CONST_BYTES = 1024  # larger consts are passed by pointer instead of baked into the code
CONST_ALIGN = 64  # bytes: a cache line, and the widest vector
SEGMENT_BUDGET = 32768  # body instructions a dim's pieces may hold (KernelEmitter.splits)


# ---- index maps after simplification ---------------------------------------------

@dataclass
class Access:
    """An index map over the simplified domain; `never` if a size-1 dim drops it out of bounds."""

    offset: int
    strides: list
    bounds: list  # per dim: None or (lo, hi, step)
    never: bool = False


def _access_of(index: IndexMap, domain) -> Access:
    bounds = list(index.bounds) if index.bounds is not None else [None] * len(domain)
    bounds = [None if b is None or _always(b, n) else tuple(b) for b, n in zip(bounds, domain)]
    return Access(index.offset, list(index.strides), bounds)


def _always(bnd, n: int) -> bool:
    """Bounds that hold at every index of a dim of extent n."""
    lo, hi, step = bnd
    if n <= 1:
        return n == 0 or _valid_at(bnd, 0)
    return step == 1 and lo <= 0 and hi >= n


def _valid_at(b, i):
    lo, hi, step = b
    return lo <= i < hi and (i - lo) % step == 0


def _drop_dim(acc: Access, d: int) -> None:
    """Remove size-1 dim d (where i[d] == 0 always)."""
    if acc.bounds[d] is not None and not _valid_at(acc.bounds[d], 0):
        acc.never = True
    del acc.strides[d], acc.bounds[d]


def _mergeable(acc: Access, d: int, inner: int) -> bool:
    return (acc.bounds[d] is None and acc.bounds[d + 1] is None
            and acc.strides[d] == acc.strides[d + 1] * inner)


def _merge_dim(acc: Access, d: int) -> None:
    del acc.strides[d], acc.bounds[d]  # dim d+1 (now d) keeps the inner stride


def simplify_domain(domain, accesses):
    """Drop size-1 dims and fuse adjacent dims that every access walks contiguously.

    A 2-D elementwise kernel over contiguous buffers becomes one flat loop, so
    the vectorized loop runs over all elements rather than a short row.
    """
    domain = list(domain)
    if 0 in domain:
        return domain, accesses
    for d in reversed(range(len(domain))):
        if domain[d] == 1:
            del domain[d]
            for acc in accesses:
                _drop_dim(acc, d)
    d = len(domain) - 2
    while d >= 0:
        if all(_mergeable(acc, d, domain[d + 1]) for acc in accesses):
            domain[d:d + 2] = [domain[d] * domain[d + 1]]
            for acc in accesses:
                _merge_dim(acc, d)
        d -= 1
    return domain, accesses


# ---- reductions ------------------------------------------------------------------

@dataclass
class _Reduction:
    """One reducing store: its accumulator and the loop level it spans."""

    store: Store
    access: Access
    level: int  # loops level..n-1 are folded into the register accumulator
    needs_fill: bool  # reduced dims outside the accumulator: memory is combined into
    acc_dtype: np.dtype = None  # float32 sums accumulate in float64 (docs: reassociation policy)
    lanes: int = None  # a vector accumulator of this many lanes (explicit vector loop, simd.py)
    slots: list = None  # the accumulator allocas: one, or several in turn (unrolled.py)
    row: list = None  # a row reduction's allocas, one per vector step (unrolled.py)
    row_dtype: np.dtype = None  # their dtype (unrolled.UnrolledInner._row_dtype)
    totals: list = None  # a chunked sum's running totals, one per slot (CHUNK)
    grands: list = None  # and its grand totals (GROUP)
    shadow: object = None  # a float32 sum into memory accumulates in a float64 shadow.Shadow


def injective(strides, extents) -> bool:
    """No two indices map to one address (sufficient test: each |stride| exceeds the span
    of the smaller ones), so every target element is reached from exactly one index."""
    dims = sorted((abs(s), n) for s, n in zip(strides, extents) if n > 1)
    span = 0
    for s, n in dims:
        if s <= span:
            return False
        span += s * (n - 1)
    return True


def _reduction_plan(store: Store, acc: Access, domain) -> _Reduction:
    n = len(domain)
    level = n
    while level > 0 and acc.strides[level - 1] == 0:
        level -= 1
    outer_reduced = not injective(acc.strides[:level], domain[:level])
    dtype = np.dtype(store.buffer.dtype)
    acc_dtype = np.dtype(np.float64) if store.reduce == "sum" and dtype == np.float32 else dtype
    return _Reduction(store, acc, level, outer_reduced, acc_dtype=acc_dtype)


# ---- one kernel --------------------------------------------------------------------

class KernelEmitter(unrolled.UnrolledInner):
    """Emits one LoopKernel as `void name(ptr noalias..., [i64 lo, i64 hi])`.

    Construction only analyses the kernel (simplified domain, accesses, reductions,
    pointer arguments), so threads.py plans a split from an emitter without a module.
    """

    def __init__(self, module: ir.Module | None, kernel: LoopKernel, name: str, math=None,
                 ranged: bool = False, row_align: int = 1):
        """`math`: the module's outline.MathFunctions; None keeps all math inline and the
        innermost loop scalar (for LLVM's loop vectorizer).  `ranged`: the function takes
        the row range `lo, hi` of its outermost dim (a kernel split over threads), whose
        ends are multiples of `row_align` or the dim's end (threads.ROW_ALIGN)."""
        self.module, self.kernel, self.name, self.ranged = module, kernel, name, ranged
        self.row_align = row_align
        touched = distinct(list(kernel.reads()) + list(kernel.writes()))
        self.baked = [buf for buf in touched if baked_const(buf)]
        self.buffers = [buf for buf in touched if not baked_const(buf)]  # pointer arguments
        loads = [ins for ins in kernel.body if isinstance(ins, Load)]
        accesses = [_access_of(ins.index, kernel.domain) for ins in loads]
        accesses += [_access_of(s.index, kernel.domain) for s in kernel.stores]
        self.domain, accesses = simplify_domain(kernel.domain, accesses)
        self.load_access = dict(zip(map(id, loads), accesses))
        self.store_access = accesses[len(loads):]
        self.reductions = [_reduction_plan(s, a, self.domain)
                           for s, a in zip(kernel.stores, self.store_access) if s.reduce]
        # transcendentals as calls of out-of-line functions (outline.py) in large bodies
        self.math = math if math is not None and outline.wants_outline(kernel) else None
        # lanes of an explicit vector innermost loop (simd.py), None for a scalar body
        self.lanes = simd.vector_lanes(self) if math is not None else None
        self.cur_lanes = None  # lanes of the values being emitted: set inside the vector loop
        self.mask = None  # inside the vector loop: the lanes in range, None if all are
        self.sincos_args = _sincos_args(kernel) if self.math is not None and self.lanes else set()

    @property
    def outer_extent(self) -> int:
        return self.domain[0] if self.domain else 1

    def emit(self) -> ir.Function:
        n = len(self.buffers)
        fnty = ir.FunctionType(ir.VoidType(), [PTR] * n + ([I64, I64] if self.ranged else []))
        fn = Function(self.module, fnty, self.name)
        simd.pin_width(fn)
        for arg in fn.args[:n]:
            arg.add_attribute("noalias")
        self.ptrs = {id(buf): arg for buf, arg in zip(self.buffers, fn.args)}
        for j, buf in enumerate(self.baked):
            self.ptrs[id(buf)] = const_global(self.module, f"tg_c{j}", buf)
        self.lo, self.hi = fn.args[n:] if self.ranged else (i64(0), i64(self.outer_extent))
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self._emit_body_loops()
        self.b.ret_void()
        return fn

    def _emit_body_loops(self):
        self.unroll = self._unrolls()
        self.hoisted = self._step_invariant() if self.unroll else None
        self.interleave = self._interleaves()
        for red in self.reductions:
            red.lanes = self.lanes if red.level < len(self.domain) else None
            ty = llvm_type(red.acc_dtype)
            ty = ty if red.lanes is None else simd.vector_of(ty, red.lanes)
            steps = self.unroll or self.interleave
            count = min(unrolled.INNER_ACCUMULATORS, steps) if red.lanes else 1
            red.slots = [self.b.alloca(ty, name="acc") for _ in range(max(count, 1))]
        self.chunk_level = self._chunk_level()
        for red in self.reductions:
            if self._chunks(red):
                red.totals = [self.b.alloca(slot.type.pointee, name="total") for slot in red.slots]
                red.grands = [self.b.alloca(slot.type.pointee, name="grand") for slot in red.slots]
        if 0 in self.domain:
            for red in self.reductions:  # nothing to combine: every target element is the identity
                self._fill(red, force=True)
            return
        self.ivs = [None] * len(self.domain)
        self.segment = [None] * len(self.domain)
        self.row_step = None  # inside an unrolled innermost dim: the vector step's number
        self.slot_step = None  # inside an interleaved vector loop: the step's number
        for red in self.reductions:
            if self.unroll and self.row_reduction(red):
                self._start_row(red)
            else:
                red.shadow = shadow.make(self.b, red, self.domain, self.ptrs)
                self._fill(red)
        self._emit_level(0)
        for red in self.reductions:
            if red.row is not None:
                self._finish_row(red)
            if red.shadow is not None:
                shadow.write_back(self, red, red.shadow)

    def _accesses(self):
        return list(self.load_access.values()) + list(self.store_access)

    def _chunk_level(self):
        """The deepest loop level below which more than CHUNK elements run (None: none)."""
        below = 1
        for d in reversed(range(len(self.domain))):
            below *= self.domain[d]
            if below > CHUNK:
                return d
        return None

    def _chunks(self, red) -> bool:
        """Whether `red` is a float64 sum whose accumulators span the chunked level (float32
        sums accumulate in float64 already: their error is far below a float32 ULP, and the
        loop nest cost W2's kernel 4-10%)."""
        return (self.chunk_level is not None and red.level <= self.chunk_level
                and red.store.reduce == "sum" and np.dtype(red.store.buffer.dtype) == np.float64
                and not (self.unroll and self.row_reduction(red)))

    def _folds_per_row(self, d: int) -> bool:
        return (d < len(self.domain) - 1
                and int(np.prod(self.domain[d + 1:], dtype=np.int64)) >= FOLD_PER_ROW)

    def _chunk_iterations(self, d: int) -> int:
        return max(1, CHUNK // int(np.prod(self.domain[d + 1:], dtype=np.int64)))

    def _emit_chunked(self, d, lo, hi, emit):
        """`emit(lo, hi)` over [lo, hi) of dim d in chunks of CHUNK elements, each chunk's
        sums added into their totals and restarted after it, and the totals into the grand
        totals after every GROUP chunks (CHUNK)."""
        b, step = self.b, self._chunk_iterations(d)
        chunked = [red for red in self.reductions if red.totals is not None]
        with Loop(b, lo, hi, f"d{d}g", step=step * GROUP) as group:
            group_end = self._clamped(group, step * GROUP, hi)
            with Loop(b, group, group_end, f"d{d}c", step=step) as start:
                emit(start, self._clamped(start, step, group_end))
                for red in chunked:
                    self._fold_into(red, red.slots, red.totals)
            for red in chunked:
                self._fold_into(red, red.totals, red.grands)

    def _clamped(self, start, step: int, hi):
        end = self.b.add(start, i64(step), flags=("nsw",))
        return self.b.select(self.b.icmp_signed("<", end, hi), end, hi)

    def _fold_into(self, red, parts, totals):
        """Each part added into its total, then restarted at the identity."""
        b, ident = self.b, reduction_identity(red.store.reduce, red.acc_dtype, red.lanes)
        for part, total in zip(parts, totals):
            b.store(combine(b, "sum", b.load(total), b.load(part), red.acc_dtype), total)
            b.store(ident, part)

    def _cuts(self, d: int) -> list:
        """0, n and every step-1 bound of dim d (clamped into it), sorted."""
        n = self.domain[d]
        points = {0, n}
        for acc in self._accesses():
            bnd = acc.bounds[d]
            if bnd is not None and bnd[2] == 1:
                points.update(min(max(p, 0), n) for p in bnd[:2])
        return sorted(points)

    def splits(self, d: int) -> bool:
        """Whether dim d is split at its bounds (`_segments`).  Every piece holds a copy of
        the body, so when the pieces' copies would exceed SEGMENT_BUDGET instructions (the
        sum of many padded slices: the gradient of a long unrolled loop's `xs[t]`, whose
        pieces and body both grow with the loop) the dim keeps one loop with run-time
        checks: the code stops growing with the square of the loop, the run time does not
        (docs/codegen.md, "Compile units")."""
        return (len(self._cuts(d)) - 1) * len(self.kernel.body) <= SEGMENT_BUDGET

    def _segments(self, d: int):
        """[a, b) pieces of dim d inside which every step-1 bound on d is statically true or
        false, so the loop body needs neither a clamp nor a select there (loop splitting)."""
        cuts = self._cuts(d)
        if not self.splits(d):
            return [(0, self.domain[d])]
        pieces = []  # (a, b, the bounds' states on [a, b))
        for a, b in zip(cuts, cuts[1:]):
            sig = tuple(_bound_state(acc.bounds[d], (a, b)) for acc in self._accesses())
            if pieces and pieces[-1][2] == sig:
                pieces[-1] = (pieces[-1][0], b, sig)
            else:
                pieces.append((a, b, sig))
        return [(a, b) for a, b, _ in pieces]

    def _emit_level(self, d: int):
        if d == len(self.domain):
            self._emit_innermost()
            return
        for red in self.reductions:
            if red.level == d:
                ident = reduction_identity(red.store.reduce, red.acc_dtype, red.lanes)
                for slot in red.slots + (red.totals or []) + (red.grands or []):
                    self.b.store(ident, slot)
        chunked = d == self.chunk_level and any(r.totals is not None for r in self.reductions)
        for a, b in self._segments(d):
            self.segment[d] = (a, b)
            lo, hi = i64(a), i64(b)
            if d == 0:  # this call's rows [self.lo, self.hi), intersected at run time
                lo = self.b.select(self.b.icmp_signed(">", self.lo, lo), self.lo, lo)
                hi = self.b.select(self.b.icmp_signed("<", self.hi, hi), self.hi, hi)
            if self.lanes and d == len(self.domain) - 1 and self.unroll:
                self._emit_unrolled(d, b - a)
            elif chunked and self._folds_per_row(d):
                self._emit_range(d, lo, hi, b - a, fold=True)
            elif chunked and b - a > self._chunk_iterations(d):
                self._emit_chunked(d, lo, hi, lambda lo, hi, n=b - a: self._emit_range(d, lo, hi, n,
                                                                                   exact=False))
            else:
                self._emit_range(d, lo, hi, b - a)
        self.segment[d] = None
        for red in self.reductions:
            if red.level == d:
                self._flush(red, self._fold(red, self._gather(red)), red.acc_dtype)

    def _emit_range(self, d, lo, hi, length: int, exact: bool = True, fold: bool = False):
        """Dim d over [lo, hi): the vector loop if it is the innermost in vector form, else
        a loop running the levels below.  `exact`: hi - lo is the segment's length; `fold`:
        the chunked sums fold into their totals after every iteration (FOLD_PER_ROW)."""
        if self.lanes and d == len(self.domain) - 1:
            self._emit_vector_loop(d, lo, hi, length, exact)
            return
        with Loop(self.b, lo, hi, f"d{d}") as iv:
            self.ivs[d] = iv
            self._emit_level(d + 1)
            for red in self.reductions if fold else ():
                if red.totals is not None:
                    self._fold_into(red, red.slots, red.totals)

    def _emit_vector_loop(self, d, lo, hi, length: int, exact: bool = True):
        """Innermost dim d over [lo, hi) in steps of self.lanes (simd.py).  `length` is the
        segment's static length (the run-time range of dim 0 may be a slice of it).

        A static multiple of the lanes needs no mask.  Short segments run one loop with
        every access masked (one copy of the body: W7's 16 elements).  Long ones run the
        full vectors unmasked and one masked step for the rest."""
        b, lanes = self.b, self.lanes
        if d > 0 and exact and length % lanes == 0:
            self._vector_steps(d, lo, hi, masked=False)
        elif d == 0 and self._whole_vectors():  # a thread's rows may miss the segment
            self._vector_steps(d, lo, b.select(b.icmp_signed("<", hi, lo), lo, hi), masked=False)
        elif length < simd.SPLIT_MIN_LANES * lanes:
            self._vector_steps(d, lo, hi, masked=True)
        else:  # a thread's rows may miss the segment (hi < lo): then run nothing
            count = b.sub(hi, lo)
            count = b.select(b.icmp_signed(">", count, i64(0)), count, i64(0))
            end = b.add(lo, b.and_(count, i64(-lanes)), flags=("nsw",))
            self._vector_steps(d, lo, end, masked=False)
            with b.if_then(b.icmp_signed("<", end, hi)):
                self._vector_step(d, end, simd.lane_mask(b, end, hi, lanes))

    def _whole_vectors(self) -> bool:
        """Whether every range of a one-dim kernel's vector loop starts and ends at a
        multiple of the lanes: the segment's ends are, and so are the call's rows (a
        constant [0, n), or thread shares of `row_align`).  Then no step is masked, and the
        body is emitted once instead of twice (a masked last step doubled the code LLVM
        compiles: W2's kernel).  Chunked sums split the range at multiples of CHUNK."""
        a, b = self.segment[0]
        return (a % self.lanes == 0 and b % self.lanes == 0
                and (not self.ranged or self.row_align % self.lanes == 0))

    def _vector_steps(self, d, lo, hi, masked: bool):
        """Vector steps over [lo, hi); unmasked ones `interleave` at a time, each adding to
        its own accumulators, then one at a time for the rest (hi - lo is then a multiple
        of the lanes and not negative)."""
        b = self.b
        if self.interleave > 1 and not masked:
            width = self.interleave * self.lanes  # a power of two
            main = b.add(lo, b.and_(b.sub(hi, lo), i64(-width)), flags=("nsw",))
            with Loop(b, lo, main, f"d{d}x", step=width) as iv:
                for k in range(self.interleave):
                    self.slot_step = k
                    self._vector_step(d, b.add(iv, i64(k * self.lanes), flags=("nsw",)), None)
            self.slot_step, lo = None, main
        with Loop(b, lo, hi, f"d{d}", step=self.lanes) as iv:
            self._vector_step(d, iv, simd.lane_mask(b, iv, hi, self.lanes) if masked else None)

    def _vector_step(self, d, iv, mask):
        """The body on lanes iv .. iv + lanes - 1 of dim d (those in `mask`, if given)."""
        self.ivs[d], self.mask, self.cur_lanes = iv, mask, self.lanes
        self._emit_innermost()
        self.cur_lanes = self.mask = None

    def _fold(self, red, acc):
        """A vector accumulator folded across its lanes (scalars pass through)."""
        if red.lanes is None:
            return acc
        return simd.fold_lanes(self.b, acc, lambda x, y: combine(self.b, red.store.reduce, x, y,
                                                                 red.acc_dtype))

    def _emit_innermost(self):
        self.sincos = {}  # value index -> (sin, cos) of it, made by one call
        values, dtypes = [], []
        for k, ins in enumerate(self.kernel.body):
            if self.row_step and self.hoisted[k]:  # an unrolled dim's later step: reuse
                value, dtype = self.values[k], np.dtype(ins.dtype)
            else:
                value, dtype = self._emit_instruction(ins, values, dtypes)
            values.append(value)
            dtypes.append(dtype)
        self.values = values
        for store, acc in zip(self.kernel.stores, self.store_access):
            if not store.reduce:
                self._store(store, acc, values[store.value])
        for red in self.reductions:
            x = values[red.store.value]
            if red.row is not None:
                self._accumulate_row(red, x)
            elif red.level == len(self.domain):
                if (not red.needs_fill and red.store.reduce == "sum"
                        and is_float(red.store.buffer.dtype)):
                    # one term: numpy's sum still starts at +0.0 (a sum of -0.0 is +0.0);
                    # a filled target starts at +0.0 already, and a sum from +0.0 never
                    # becomes -0.0, so adding the term to it gives the same bits
                    zero = reduction_identity("sum", red.store.buffer.dtype, self.cur_lanes)
                    x = combine(self.b, "sum", zero, x, red.store.buffer.dtype)
                self._flush(red, x, red.store.buffer.dtype)
            else:
                x = convert_value(self.b, x, red.store.buffer.dtype, red.acc_dtype)
                if self.cur_lanes and self.mask is not None:  # lanes past the end add nothing
                    ident = reduction_identity(red.store.reduce, red.acc_dtype, self.cur_lanes)
                    x = self.b.select(self.mask, x, ident)
                slot = self._inner_slot(red)
                self.b.store(combine(self.b, red.store.reduce, self.b.load(slot), x,
                                     red.acc_dtype), slot)

    def _emit_instruction(self, ins, values, dtypes):
        if isinstance(ins, Load):
            return self._load(ins), np.dtype(ins.dtype)
        if isinstance(ins, Const):
            return constant(ins.value, ins.dtype, self.cur_lanes), np.dtype(ins.dtype)
        if isinstance(ins, Op):
            return self._op(ins, values, dtypes), np.dtype(ins.dtype)
        raise TypeError(f"codegen: unexpected kernel body instruction {ins!r}")

    def _op(self, ins: Op, values, dtypes):
        lanes = self.cur_lanes
        args = [constant(a.value, a.dtype, lanes) if isinstance(a, Const) else values[a]
                for a in ins.args]
        arg_dtypes = [np.dtype(a.dtype) if isinstance(a, Const) else dtypes[a] for a in ins.args]
        if self.math is not None and ins.prim in outline.OUTLINED and is_float(ins.dtype):
            return self._math_call(ins, args)
        return lower_op(self.b, ins.prim, args, arg_dtypes, ins.dtype, ins.params)

    def _math_call(self, ins, args):
        """An out-of-line math call; sin and cos of one vector value share one sincos call."""
        a = ins.args[0]
        if ins.prim not in ("sin", "cos") or a not in self.sincos_args or not self.cur_lanes:
            return self.math.call(self.b, ins.prim, args)
        if a not in self.sincos:
            self.sincos[a] = self.math.sincos(self.b, args[0])
        return self.sincos[a][ins.prim == "cos"]

    # -- memory --
    def _address(self, buf, acc: Access):
        """GEP to buf.flat[offset + sum(i*stride)] with bounded dims clamped to a valid point."""
        b = self.b
        index = i64(acc.offset)
        for iv, stride, bnd, seg in zip(self.ivs, acc.strides, acc.bounds, self.segment):
            if stride == 0:
                continue
            dynamic = bnd is not None and _bound_state(bnd, seg) != "in"
            i = _clamp_to_valid(b, iv, bnd) if dynamic else iv
            index = _add_scaled(b, index, i, stride)
        return b.gep(self.ptrs[id(buf)], [index], inbounds=True,
                     source_etype=storage_type(buf.dtype))

    def _valid(self, acc: Access):
        """The run-time validity condition, None if always valid here."""
        b, ok = self.b, None
        for iv, bnd, seg in zip(self.ivs, acc.bounds, self.segment):
            if bnd is not None and _bound_state(bnd, seg) != "in":
                cond = _in_bounds(b, iv, bnd)
                ok = cond if ok is None else b.and_(ok, cond)
        return ok

    def _never_here(self, acc: Access) -> bool:
        """Out of bounds in the whole current segment (or always)."""
        return acc.never or any(bnd is not None and _bound_state(bnd, seg) == "out"
                                for bnd, seg in zip(acc.bounds, self.segment))

    def _load(self, ins: Load):
        acc, lanes = self.load_access[id(ins)], self.cur_lanes
        if self._never_here(acc):
            return constant(0, ins.dtype, lanes)
        raw = self._read(ins.buffer, acc)
        value = convert_value(self.b, to_register(self.b, raw, ins.buffer.dtype),
                              ins.buffer.dtype, ins.dtype)
        ok = self._valid(acc)
        if ok is None:
            return value
        return self.b.select(ok, value, constant(0, ins.dtype, lanes))  # pad: 0 outside the bounds

    def _read(self, buf, acc):
        """The stored value(s) at acc: one element, or in the vector loop a vector (stride 1
        in the innermost dim) or a splat of one element (stride 0)."""
        ety, ptr = storage_type(buf.dtype), self._address(buf, acc)
        if not self.cur_lanes:
            return self.b.load(ptr, typ=ety)
        if acc.strides[-1] == 0:
            return simd.splat(self.b, self.b.load(ptr, typ=ety), self.cur_lanes)
        return simd.load(self.b, ptr, simd.vector_of(ety, self.cur_lanes), _bytes(buf), self.mask)

    def _store(self, store: Store, acc: Access, value):
        if self._never_here(acc):
            return
        ok = self._valid(acc)
        if ok is None:
            self._write(store.buffer, acc, value)
            return
        with self.b.if_then(ok):
            self._write(store.buffer, acc, value)

    def _write(self, buf, acc, value):
        """Store one element, or a vector (stride 1 in the innermost dim, simd.vector_lanes)."""
        stored, ptr = to_memory(self.b, value, buf.dtype), self._address(buf, acc)
        if lanes_of(value) is None:
            self.b.store(stored, ptr)
        else:
            simd.store(self.b, stored, ptr, _bytes(buf), self.mask)

    def _flush(self, red: _Reduction, x, dtype):
        """Write an accumulated value (of `dtype`); combine with memory if other dims reduce
        into it too (with a float64 shadow.Shadow, into that)."""
        buf, acc = red.store.buffer, red.access
        if red.shadow is not None:
            buf, acc = red.shadow.buffer, red.shadow.access
        x = convert_value(self.b, x, dtype, buf.dtype)
        if not red.needs_fill:
            self._store(red.store, red.access, x)
            return
        old = to_register(self.b, self._read(buf, acc), buf.dtype)
        new = combine(self.b, red.store.reduce, old, x, buf.dtype)
        self._write(buf, acc, new)

    def _fill(self, red: _Reduction, force=False):
        """Identity into every element the store maps to (into its float64 shadow, if it
        has one): a walk over its nonzero strides.

        Dim 0 runs over [lo, hi) only, so a thread fills just its own rows.
        """
        if not (red.needs_fill or force) or red.access.never:
            return
        buf, acc = red.store.buffer, red.access
        if red.shadow is not None:
            buf, acc = red.shadow.buffer, red.shadow.access
        dims = self.image_dims(acc)
        if dims is None:
            return
        ident = to_memory(self.b, reduction_identity(red.store.reduce, buf.dtype), buf.dtype)

        def put(index):
            ptr = self.b.gep(self.ptrs[id(buf)], [index], inbounds=True,
                             source_etype=storage_type(buf.dtype))
            self.b.store(ident, ptr)
        walk_image(self.b, acc.offset, dims, put, "fill")

    def image_dims(self, acc: Access):
        """A store's image as walk_image dims, dim 0 over this call's rows [lo, hi) (None
        when it is empty)."""
        dims = []
        for d, (n, s) in enumerate(zip(self.domain, acc.strides)):
            if s == 0 or n == 1:
                continue
            if n == 0:
                return None
            dims.append(((self.lo, self.hi) if d == 0 else (i64(0), i64(n)), s))
        return dims


def _sincos_args(kernel) -> set:
    """Body value indices that both a sin and a cos op take (W7's forward sin, backward cos)."""
    seen = {"sin": set(), "cos": set()}
    for ins in kernel.body:
        if isinstance(ins, Op) and ins.prim in seen and not isinstance(ins.args[0], Const):
            seen[ins.prim].add(ins.args[0])
    return seen["sin"] & seen["cos"]


def _add_scaled(b, index, i, stride: int):
    """index + i * stride, folded where i (an unrolled step's start) or both are constants."""
    if isinstance(i, ir.Constant):
        if isinstance(index, ir.Constant):
            return i64(index.constant + i.constant * stride)
        return b.add(index, i64(i.constant * stride), flags=("nsw",))
    return b.add(index, b.mul(i, i64(stride), flags=("nsw",)), flags=("nsw",))


def _bytes(buf) -> int:
    return np.dtype(buf.dtype).itemsize


def _bound_state(bnd, seg):
    """'in' / 'out' if bound bnd holds / fails on all of segment seg = (a, b), else None."""
    if bnd is None:
        return "in"
    if seg is None:
        return None
    (lo, hi, step), (a, b) = bnd, seg
    if b <= lo or a >= hi:
        return "out"
    if step == 1 and lo <= a and b <= hi:
        return "in"
    return None


def _in_bounds(b, iv, bnd):
    lo, hi, step = bnd
    ok = b.and_(b.icmp_signed(">=", iv, i64(lo)), b.icmp_signed("<", iv, i64(hi)))
    if step != 1:
        rem = b.srem(b.sub(iv, i64(lo)), i64(step))
        ok = b.and_(ok, b.icmp_signed("==", rem, i64(0)))
    return ok


def _clamp_to_valid(b, iv, bnd):
    """The nearest valid index at or below iv (lo if iv < lo): its address is in bounds."""
    lo, hi, step = bnd
    last = lo + (hi - 1 - lo) // step * step
    i = b.select(b.icmp_signed("<", iv, i64(lo)), i64(lo), iv)
    i = b.select(b.icmp_signed(">", i, i64(last)), i64(last), i)
    if step != 1:
        off = b.sub(i, i64(lo))
        i = b.sub(i, b.srem(off, i64(step)))
    return i


def baked_const(buf) -> bool:
    """A constant small enough to live in the code of every kernel that reads it."""
    return (buf.kind == "const" and buf.value is not None
            and buf.size * np.dtype(buf.dtype).itemsize <= BIG_CONST_BYTES)


def const_global(module, name, buf):
    """A private constant global holding a const buffer's values (aligned to a cache line)."""
    value = np.ascontiguousarray(np.asarray(buf.value, dtype=buf.dtype)).reshape(-1)
    ety = storage_type(buf.dtype)
    if value.dtype == np.bool_:
        value = value.astype(np.uint8)
    ty = ir.ArrayType(ety, max(value.size, 1))
    items = value.tolist() if value.size else [0]
    g = ir.GlobalVariable(module, ty, name)
    g.initializer = ir.Constant(ty, [ir.Constant(ety, v) for v in items])
    g.global_constant = True
    g.linkage = "private"
    g.align = CONST_ALIGN
    return g
