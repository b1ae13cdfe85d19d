"""An innermost dim written out vector step by vector step (a mixin of kernel.KernelEmitter).

The explicit vector loop (simd.py) runs the light pipeline, which keeps what it is given:
a reduction over the innermost dim is one chain of dependent adds, and a reduction of
every outer index into one row (X.T @ g over a block of rows: `out[j] += x[i, j] * g[i]`)
reads, combines and writes the row in memory for every outer index.  LLVM's O2 unrolls
and interleaves the first and promotes the second's row into registers; for the light
pipeline the emitter does both itself when the innermost dim is one short static
segment (`_unrolls`):

* the vector steps are written out (the last one masked if partial), so every address
  and mask is a constant;
* a sum over the innermost dim cycles through INNER_ACCUMULATORS vector slots, combined
  by a halving tree at the end (reassociated as the loop vectorizer's interleaving does);
* a row reduction (`row_reduction`) keeps one vector slot per step, from the identity,
  and stores the slots once after all loops.  Each slot sums its elements in the order
  of the outer indices, as the memory version does, so the values are the same bits;
* values that do not vary along the dim (`_step_invariant`) are emitted by the first
  step and reused by the others: the light pipeline has no LICM to hoist them.

SROA turns the slots into registers.
"""
from __future__ import annotations

import numpy as np

from tracegrad.passes.kernels import Const, Load, Op

from . import shadow, simd, threads
from .irutil import i64
from .scalar_ops import combine, convert_value, llvm_type, reduction_identity, to_memory

UNROLL_BUDGET = 512  # body instructions an unrolled innermost dim may hold
INNER_ACCUMULATORS = 4  # independent vector sums over an unrolled innermost dim


def invariant_flags(body, load_fixed) -> list:
    """Per body instruction: whether its value does not vary along the innermost dim:
    constants, loads for which `load_fixed(load)` holds (stride 0 there, no bound there),
    and ops of such values only."""
    flags = []
    for ins in body:
        if isinstance(ins, Load):
            flags.append(load_fixed(ins))
        elif isinstance(ins, Op):
            flags.append(all(isinstance(a, Const) or flags[a] for a in ins.args))
        else:
            flags.append(True)
    return flags


class UnrolledInner:
    """KernelEmitter's methods for an unrolled innermost dim (module docstring).  State:
    `unroll` (vector steps, 0 for a loop), `row_step` (the step being emitted, None
    outside), and per reduction `slots` (its accumulators) and `row` (a row's slots)."""

    def _unrolls(self) -> int:
        """Vector steps of the innermost dim if it is written out, else 0: a vector kernel of
        two or more dims whose innermost dim is one static segment of at most
        simd.row_vectors() steps, and the copies of the body stay within UNROLL_BUDGET."""
        n = len(self.domain)
        if not self.lanes or n < 2 or len(self._segments(n - 1)) != 1:
            return 0
        steps = -(-self.domain[-1] // self.lanes)
        fits = steps <= simd.row_vectors() and steps * len(self.kernel.body) <= UNROLL_BUDGET
        return steps if fits else 0

    def _step_invariant(self) -> list:
        """Per body instruction: whether its value is the same at every step of the innermost
        dim (`invariant_flags`, with this emitter's simplified accesses).  The first step of
        a row emits those values and the later ones reuse them, the hoisting that the light
        pipeline (no LICM) would not do."""
        def fixed(load):
            acc = self.load_access[id(load)]
            return acc.never or (acc.strides[-1] == 0 and acc.bounds[-1] is None)
        return invariant_flags(self.kernel.body, fixed)

    def row_reduction(self, red) -> bool:
        """Whether reduction `red` combines every outer index into one contiguous row, and
        is the kernel's only store to its buffer, which the kernel does not read."""
        n, acc, buf = len(self.domain), red.access, red.store.buffer
        if n < 2 or red.level != n or not red.needs_fill or acc.never:
            return False
        alone = (sum(s.buffer is buf for s in self.kernel.stores) == 1
                 and all(b is not buf for b in self.kernel.reads()))
        return (alone and all(s == 0 for s in acc.strides[:-1]) and acc.strides[-1] == 1
                and all(bnd is None for bnd in acc.bounds))

    def _row_dtype(self, red):
        """The row slots' dtype: the accumulation dtype (float32 sums in float64) where
        many rows add up (shadow.MIN_TERMS), else the target's."""
        many = shadow.terms(red.access, self.domain) >= shadow.MIN_TERMS
        return red.acc_dtype if many else np.dtype(red.store.buffer.dtype)

    def _start_row(self, red):
        """One slot per vector step, holding the identity, in `_row_dtype`."""
        red.row_dtype = self._row_dtype(red)
        ty = simd.vector_of(llvm_type(red.row_dtype), self.lanes)
        ident = reduction_identity(red.store.reduce, red.row_dtype, self.lanes)
        red.row = [self.b.alloca(ty, name="row") for _ in range(self.unroll)]
        for slot in red.row:
            self.b.store(ident, slot)

    def _accumulate_row(self, red, x):
        slot, dtype = red.row[self.row_step], red.row_dtype
        x = convert_value(self.b, x, red.store.buffer.dtype, dtype)
        if self.mask is not None:  # lanes past the row's end add nothing
            x = self.b.select(self.mask, x, reduction_identity(red.store.reduce, dtype, self.lanes))
        self.b.store(combine(self.b, red.store.reduce, self.b.load(slot), x, dtype), slot)

    def _finish_row(self, red):
        """The row's slots into memory.  No fill ran before: the kernel is the only writer
        of the row (a split kernel's threads each write their own copy), and the identity
        combined with a slot is the slot, so the slots replace what memory held."""
        n, buf = self.domain[-1], red.store.buffer
        self.ivs = [i64(0)] * len(self.domain)
        for k, slot in enumerate(red.row):
            start = k * self.lanes
            self.ivs[-1] = i64(start)
            mask = (None if start + self.lanes <= n
                    else simd.lane_mask(self.b, i64(start), i64(n), self.lanes))
            value = convert_value(self.b, self.b.load(slot), red.row_dtype, buf.dtype)
            stored = to_memory(self.b, value, buf.dtype)
            simd.store(self.b, stored, self._address(buf, red.access),
                       np.dtype(buf.dtype).itemsize, mask)

    def _emit_unrolled(self, d, length: int):
        """Innermost dim d as its vector steps, written out (the last masked if partial)."""
        for k, start in enumerate(range(0, length, self.lanes)):
            self.row_step = k
            partial = start + self.lanes > length
            self._vector_step(d, i64(start), simd.lane_mask(self.b, i64(start), i64(length), self.lanes)
                              if partial else None)
        self.row_step = None

    def _inner_slot(self, red):
        """The slot a sum over the innermost dim adds this step's value to."""
        step = self.row_step if self.row_step is not None else self.slot_step
        return red.slots[(step or 0) % len(red.slots)]

    def _interleaves(self) -> int:
        """Vector steps of a loop-form innermost dim that run together, each adding to its
        own accumulators (1: one at a time).  LLVM's O2 interleaves a sum's loop so that
        its adds do not wait on each other; the light pipeline leaves the loop as emitted,
        so the emitter does it: for a cheap body with a sum over the innermost dim of at
        least two rounds of INNER_ACCUMULATORS vector steps."""
        inner, k = len(self.domain), INNER_ACCUMULATORS
        if not self.lanes or self.unroll or not any(r.level < inner for r in self.reductions):
            return 1
        long_enough = self.domain[-1] >= 2 * k * self.lanes
        cheap = (len(self.kernel.body) * k <= UNROLL_BUDGET
                 and threads.op_cost(self.kernel) < threads.COSTLY_BODY)
        return k if long_enough and cheap else 1

    def _gather(self, red):
        """The slots of `red` (with their chunks' totals, kernel.CHUNK) combined into one
        value (a halving tree)."""
        accs = [self.b.load(slot) for slot in red.slots]
        for partials in (red.totals, red.grands):
            if partials is not None:
                accs = [combine(self.b, "sum", self.b.load(p), acc, red.acc_dtype)
                        for p, acc in zip(partials, accs)]
        while len(accs) > 1:
            pairs = [combine(self.b, red.store.reduce, x, y, red.acc_dtype)
                     for x, y in zip(accs[::2], accs[1::2])]
            accs = pairs + accs[len(pairs) * 2:]
        return accs[0]
