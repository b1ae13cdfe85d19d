"""Kernel program -> the program's entry module, calling one compile unit per distinct kernel.

Every LoopKernel (and every product small enough to be a loop, blas.py) becomes a call of
its compile unit (units.py): one LLVM function per *distinct* kernel, defined in a module
of its own, optimized and cached by itself.  Structurally identical kernels (an unrolled
loop's steps) share one unit and differ only in the pointers they are called with, so
the entry holds nothing but calls, BLAS calls and thread launches, and no kernel is ever
inlined into it: optimization time grows with the number of distinct kernels, not with
the program.  The entry itself is cut into parts of PART_CALLS calls (`tg_part<i>`,
noinline, called in order): in one function the values live across all calls make the
register allocator's time grow with the square of the calls.  Kernels whose stores
need disjoint parts of the body are split first (units.independent_parts).

Entry ABI (what `runtime.py` calls)::

    void tg_entry(ptr %ins, ptr %outs, ptr %arena)
    void tg_run(ptr %ins, ptr %outs)         mutex + tg_entry(ins, outs, @tg_arena)
    void tg_setup(ptr %arena, ptr %consts)   once after loading: arena, const table, mutex

`ins[i]` is the data pointer of input i, `outs[j]` the data pointer of output slot j (one
slot per distinct output buffer, see `Layout.out_slots`), `arena` the scratch memory
holding every temp at its planned offset, `consts[j]` the data of large constant j.
`tg_run` holds a mutex around the program when the arena is not empty, so two Python
threads may call one program at once.
"""
from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from tracegrad.passes.kernels import (Buffer, CondStep, DotKernel, ExternKernel, IndexMap, Load,
                                     LoopKernel, LoopStep, Store)

from . import blas, extern, threads, units
from .irutil import I64, PTR, align_up, declare, i64
from .kernel import BIG_CONST_BYTES, KernelEmitter, const_global
from .kernel import Access, simplify_domain  # noqa: F401  (analysis helpers, used by the tests)

ARENA_ALIGN = 64  # bytes: a cache line, and the widest vector
I8, I32 = ir.IntType(8), ir.IntType(32)
MUTEX_BYTES = 64  # >= sizeof(pthread_mutex_t) on every libc we know (glibc: 40)
PART_CALLS = 32  # kernel calls per part of the entry (module docstring)
ENTRY_O2_CALLS = 64  # an entry with more kernel calls is optimized at O1 (compiler.py)
ENTRY_TYPE = ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR])


# ---- buffer planning -----------------------------------------------------------

@dataclass
class Layout:
    """Where every buffer of a program lives at run time."""

    arena_bytes: int
    temp_offsets: dict  # Buffer -> byte offset in the arena
    out_slots: list  # per kp.outputs position: index of its distinct output buffer
    out_buffers: list  # the distinct output buffers, in slot order
    big_consts: list  # consts passed by pointer (tg_consts[j]), in table order
    copies: list  # (source, output) for outputs that are an input or a const


def _live_ranges(kp) -> dict:
    """Temp -> [first kernel touching it, last kernel touching it] (inclusive)."""
    ranges = {}
    for k, kernel in enumerate(kp.kernels):
        for buf in list(kernel.reads()) + list(kernel.writes()):
            if buf.kind == "temp":
                lo, _ = ranges.get(buf, (k, k))
                ranges[buf] = (lo, k)
    return ranges


def plan_arena(kp) -> tuple[dict, int]:
    """First-fit offsets for the temps: two temps share bytes only if no kernel sees both.

    Ranges are inclusive, so a kernel's inputs and outputs never overlap, which is what
    makes `noalias` on the kernel arguments true.  Temps are placed in order of their
    first kernel; before each, the temps whose last kernel came earlier give their bytes
    back (`_Gaps`), and the temp takes the lowest free gap it fits in.
    """
    gaps, ending = _Gaps(), []  # ending: heap of (last kernel, offset, nbytes)
    offsets, top = {}, 0
    for buf, (lo, hi) in sorted(_live_ranges(kp).items(), key=lambda kv: (kv[1][0], kv[0].name)):
        while ending and ending[0][0] < lo:
            _, offset, nbytes = heapq.heappop(ending)
            gaps.free(offset, nbytes)
        nbytes = align_up(max(buf.size * np.dtype(buf.dtype).itemsize, 1), ARENA_ALIGN)
        offsets[buf] = offset = gaps.take(nbytes)
        heapq.heappush(ending, (hi, offset, nbytes))
        top = max(top, offset + nbytes)
    return offsets, top


class _Gaps:
    """The free byte ranges of the arena: sorted, disjoint, never adjacent; everything
    from `end` on is free."""

    def __init__(self):
        self.starts, self.stops, self.end = [], [], 0

    def take(self, nbytes: int) -> int:
        """The lowest offset of `nbytes` free bytes, now taken."""
        for i, (start, stop) in enumerate(zip(self.starts, self.stops)):
            if stop - start >= nbytes:
                if stop - start == nbytes:
                    del self.starts[i], self.stops[i]
                else:
                    self.starts[i] = start + nbytes
                return start
        offset, self.end = self.end, self.end + nbytes
        return offset

    def free(self, offset: int, nbytes: int) -> None:
        start, stop = offset, offset + nbytes
        i = bisect.bisect_left(self.starts, start)
        if i > 0 and self.stops[i - 1] == start:  # joins the gap below
            i -= 1
            start = self.starts[i]
            del self.starts[i], self.stops[i]
        if i < len(self.starts) and self.starts[i] == stop:  # joins the gap above
            stop = self.stops[i]
            del self.starts[i], self.stops[i]
        if stop == self.end:
            self.end = start
            return
        self.starts.insert(i, start)
        self.stops.insert(i, stop)


def plan_layout(kp) -> Layout:
    offsets, arena_bytes = plan_arena(kp)
    out_buffers, out_slots, copies, seen = [], [], [], {}
    for buf in kp.outputs:
        if id(buf) not in seen:
            seen[id(buf)] = len(out_buffers)
            out_buffers.append(_output_for(buf, copies))
        out_slots.append(seen[id(buf)])
    big = [c for c in kp.consts if c.size * np.dtype(c.dtype).itemsize > BIG_CONST_BYTES]
    return Layout(arena_bytes, offsets, out_slots, out_buffers, big, copies)


def _output_for(buf, copies):
    """Outputs are fresh arrays on every call: an input or const returned is copied."""
    if buf.kind not in ("input", "const"):
        return buf
    out = Buffer(f"{buf.name}_out", tuple(buf.shape), np.dtype(buf.dtype), "output")
    copies.append((buf, out))
    return out


# ---- the program -------------------------------------------------------------------

@dataclass
class Lowered:
    """The entry module, the distinct compile units it calls (first-call order), the layout."""

    module: ir.Module
    units: list
    layout: Layout
    n_calls: int  # kernel calls in the entry (>= len(units))
    host_calls: int = 0  # extern kernels calling back into Python (extern.py)

    def text(self) -> str:
        """The unoptimized IR of the entry and of every unit."""
        return "\n".join([str(self.module)] + [str(u.build_module()) for u in self.units])


class ProgramEmitter:
    """Builds the entry module: a call per kernel, BLAS calls, thread launches, setup/run."""

    def __init__(self, kp, name: str = "program", n_threads: int = 1, environment: str = ""):
        """`environment`: fingerprint.kernel_environment(), hashed into every unit's key."""
        self.kp, self.layout, self.n_threads = kp, plan_layout(kp), n_threads
        self.environment = environment
        self.module = ir.Module(name=name)
        self.units = {}  # key -> KernelUnit
        self.n_calls = 0
        self.input_slot = {id(b): (b.index if b.index is not None else i)
                           for i, b in enumerate(kp.inputs)}
        self.out_slot = {id(b): j for j, b in enumerate(self.layout.out_buffers)}
        self.big_slot = {id(b): j for j, b in enumerate(self.layout.big_consts)}
        self.const_globals = {}
        self.host_calls = extern.host_calls(kp)  # loops then check the host-call status

    def emit(self) -> Lowered:
        self._emit_const_table()
        entry = ir.Function(self.module, ENTRY_TYPE, "tg_entry")
        self.entry_b = ir.IRBuilder(entry.append_basic_block("entry"))
        self.parts = []
        self._new_part()
        copies = [_copy_kernel(src, dst) for src, dst in self.layout.copies]
        self.scratch_offset, self.scratch_bytes = self.layout.arena_bytes, 0
        for kernel in list(self.kp.kernels) + copies:
            for part in units.independent_parts(kernel):
                if self.part_calls >= PART_CALLS:
                    self._new_part()
                self._emit_kernel(part)
        self.b.ret_void()
        self.entry_b.ret_void()
        if len(self.parts) > 1:  # one part is inlined into tg_entry
            for fn in self.parts:
                fn.attributes.add("noinline")
        # threads' private reduction copies live after the temps (kernels run one at a time)
        self.layout.arena_bytes = self.scratch_offset + self.scratch_bytes
        if self.host_calls:  # each run starts with a clean status (extern.py)
            self.entry_b.position_at_start(self.entry_b.function.entry_basic_block)
            extern.reset_status(self.entry_b, self.module)
        mutex, arena = _emit_setup(self.module, len(self.layout.big_consts))
        locked = self.layout.arena_bytes > 0 or self.host_calls > 0
        _emit_run(self.module, mutex, arena, locked=locked)
        return Lowered(self.module, list(self.units.values()), self.layout, self.n_calls,
                       self.host_calls)

    def _new_part(self):
        """Continue in a new part of the entry: `tg_entry` calls its parts in order."""
        if self.parts:
            self.b.ret_void()
        fn = ir.Function(self.module, ENTRY_TYPE, f"tg_part{len(self.parts)}")
        fn.linkage = "internal"
        self.parts.append(fn)
        self.entry_b.call(fn, self.entry_b.function.args)
        self.ins, self.outs, self.arena = fn.args
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.part_calls, self.part_pointers = 0, {}

    def _emit_const_table(self):
        big = self.layout.big_consts
        if big:
            table = ir.GlobalVariable(self.module, ir.ArrayType(PTR, len(big)), "tg_consts")
            table.initializer = ir.Constant(ir.ArrayType(PTR, len(big)), None)
            table.align = 8
            self.const_table = table

    def _pointer(self, buf, shift: int = 0):
        """The data pointer of `buf` in the entry, advanced by `shift` elements; made once
        per part (fewer instructions to print and parse)."""
        key = (id(buf), shift)
        if key not in self.part_pointers:
            base = self._base_pointer(buf)
            if shift:
                nbytes = shift * np.dtype(buf.dtype).itemsize
                base = self.b.gep(base, [i64(nbytes)], inbounds=True, source_etype=I8)
            self.part_pointers[key] = base
        return self.part_pointers[key]

    def _base_pointer(self, buf):
        if buf.kind == "input":
            return self._load_slot(self.ins, self.input_slot[id(buf)])
        if buf.kind == "temp":
            return self.b.gep(self.arena, [i64(self.layout.temp_offsets.get(buf, 0))],
                              inbounds=True, source_etype=I8)
        if buf.kind == "const":
            if id(buf) in self.big_slot:
                return self._load_slot(self.const_table, self.big_slot[id(buf)])
            return self._const_global(buf)
        if id(buf) not in self.out_slot:
            raise KeyError(f"codegen: buffer {buf} is not an output of the program")
        return self._load_slot(self.outs, self.out_slot[id(buf)])

    def _const_global(self, buf):
        """A small constant the entry itself reads (a BLAS operand)."""
        if id(buf) not in self.const_globals:
            name = f"tg_c{len(self.const_globals)}"
            self.const_globals[id(buf)] = const_global(self.module, name, buf)
        return self.const_globals[id(buf)]

    def _load_slot(self, table, i):
        slot = self.b.gep(table, [i64(i)], inbounds=True, source_etype=PTR)
        return self.b.load(slot, typ=PTR)

    def _emit_kernel(self, kernel):
        self.part_calls += 1
        if isinstance(kernel, (LoopStep, CondStep)):
            from . import loops  # loops.py builds on this module's emitter
            loops.emit_step(self, kernel)
            return
        if isinstance(kernel, ExternKernel):  # never split over threads (extern.py)
            extern.emit_extern(self, kernel)
            return
        if isinstance(kernel, DotKernel):
            if not blas.prefers_inline(kernel):
                ptrs = [self._pointer(buf) for buf in (kernel.a, kernel.b, kernel.out)]
                blas.emit_product(self.b, kernel, *ptrs, n_threads=self.n_threads)
                return
            kernel = blas.dot_as_loop(kernel)
        canon, args = units.canonical_form(kernel)
        plan = None
        if threads.may_split(canon, self.n_threads):
            probe = KernelEmitter(None, canon, kernel.name)  # analysis only: the thread plan
            plan = threads.plan_parallel(probe, self.n_threads)
        align = plan.row_align if plan is not None else 1
        unit = units.KernelUnit.of(canon, len(args), plan is not None, self.environment, align)
        unit = self.units.setdefault(unit.key, unit)
        self.n_calls += 1
        fn = declare(self.module, unit.symbol, ir.VoidType(), unit.arg_types())
        ptrs = [self._pointer(buf, shift) for buf, shift in args]
        if plan is None:
            self.b.call(fn, ptrs)
            return
        scratch = self.b.gep(self.arena, [i64(self.scratch_offset)], inbounds=True, source_etype=I8)
        shifts = [shift * np.dtype(buf.dtype).itemsize for buf, shift in args]
        threads.emit_parallel_call(self.b, probe, fn, ptrs, shifts, plan, scratch)
        self.scratch_bytes = max(self.scratch_bytes, plan.scratch_bytes)


def _copy_kernel(src, dst):
    shape = tuple(src.shape)
    strides = tuple(int(np.prod(shape[d + 1:], dtype=np.int64)) for d in range(len(shape)))
    index = IndexMap(0, strides)
    body = [Load(src, index, np.dtype(src.dtype))]
    return LoopKernel(f"copy_{src.name}", shape, body, [Store(dst, 0, index)])


# ---- setup and run -------------------------------------------------------------------

def _emit_setup(module, n_big_consts: int):
    mutex = ir.GlobalVariable(module, ir.ArrayType(I8, MUTEX_BYTES), "tg_mutex")
    mutex.initializer = ir.Constant(ir.ArrayType(I8, MUTEX_BYTES), None)
    mutex.align = 16
    arena = ir.GlobalVariable(module, PTR, "tg_arena")
    arena.initializer = ir.Constant(PTR, None)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR]), "tg_setup")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.store(fn.args[0], arena)
    if n_big_consts:
        table = module.get_global("tg_consts")
        for j in range(n_big_consts):
            src = b.load(b.gep(fn.args[1], [I64(j)], source_etype=PTR), typ=PTR)
            b.store(src, b.gep(table, [I64(0), I64(j)]))  # typed GEP: llvmlite checks the store
    init = declare(module, "tg_sys_pthread_mutex_init", I32, [PTR, PTR])
    b.call(init, [mutex, ir.Constant(PTR, None)])
    b.ret_void()
    return mutex, arena


def _emit_run(module, mutex, arena, locked: bool):
    entry = module.get_global("tg_entry")
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR]), "tg_run")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    if locked:
        b.call(declare(module, "tg_sys_pthread_mutex_lock", I32, [PTR]), [mutex])
    b.call(entry, [fn.args[0], fn.args[1], b.load(arena, typ=PTR)])
    if locked:
        b.call(declare(module, "tg_sys_pthread_mutex_unlock", I32, [PTR]), [mutex])
    b.ret_void()
    return fn


def lower_program(kp, name: str = "program", n_threads: int = 1, environment: str = "") -> Lowered:
    """The entry module and compile units of a kernel program (unoptimized).  The units'
    keys hash `environment` (the compiler passes fingerprint.kernel_environment())."""
    return ProgramEmitter(kp, name, n_threads, environment).emit()
