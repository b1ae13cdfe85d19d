"""Multithreading of large kernels: the outermost loop split across pthreads.

Policy (docs/codegen.md, "Threads"): a LoopKernel whose estimated cost (domain
elements x per-element op cost) reaches PARALLEL_MIN_COST runs on
`thread_count()` threads; smaller kernels, and every kernel of a program
compiled for one thread, run inline in the caller's thread.  A program that
calls a multi-threaded BLAS gets only the cores OpenBLAS's spinning workers
leave free (`beside_blas`; on 2 cores with 2 BLAS threads, none).  The generated
entry hands T contiguous slices of the outermost dimension to the process's
persistent worker pool (pool.py, `tg_pool_run`): the calling thread runs slice 0,
T-1 parked workers wake for the others, and the call returns when all are done.
A slice without a worker (none could be created, or another thread holds the pool)
runs on the calling thread.

Splitting is safe when every store owns its rows: a plain store must move
with dim 0, and a reducing store either moves with dim 0 (each thread owns
its output rows) or reduces over dim 0; such a target is privatized: thread
t > 0 writes a private copy in the arena's scratch area and the entry combines
the copies into the target after the join (per-thread partial sums of a full
reduction).  Any other kernel stays on one thread.  Only LoopKernels are ever split:
extern kernels (extern.py) may call back into Python, which needs the GIL, so they
always run on the calling thread.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from tracegrad.ir.primitives import PRIMITIVES
from tracegrad.passes.kernels import Load, Op

from . import pool
from .irutil import I64, PTR, align_up, declare, i64, walk_image
from .scalar_ops import combine, storage_type, to_memory, to_register

# Below this many simple ops a second thread does not pay for waking a pool worker and
# joining it (a few microseconds, pool.py) plus sharing the data between two cores;
# from about here it did, for memory-bound and transcendental kernels alike
# (benchmarks/threads.py measures one thread against two by cost).
PARALLEL_MIN_COST = 1 << 17
# A kernel over one (collapsed) dim gives each thread a whole number of ROW_ALIGN elements
# (the last thread the rest): a multiple of any vector's lanes, so the explicit vector loop
# needs no masked last step except at the domain's end (KernelEmitter, `row_align`).
ROW_ALIGN = 64
I32 = ir.IntType(32)


def thread_count(requested: int | None = None) -> int:
    """Threads for large kernels: the argument, else TRACEGRAD_NUM_THREADS, else os.cpu_count()."""
    if requested is None:
        env = os.environ.get("TRACEGRAD_NUM_THREADS", "").strip()
        requested = int(env) if env.isdigit() else (os.cpu_count() or 1)
    return max(1, int(requested))


def beside_blas(n_threads: int, blas_threads: int, cpus: int | None = None) -> int:
    """Threads for a program that calls BLAS: only the cores OpenBLAS's workers leave free.

    After each call OpenBLAS's blas_threads - 1 workers busy-wait for the next one, so
    inside a program that calls it they are always spinning, and a thread of ours on their
    core shares it with them and runs several times slower (docs/codegen.md, "Threads").
    The count is read, never set (the user's setting).
    """
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(n_threads, cpus - (blas_threads - 1)))


def symbols(make_object=None) -> dict:
    """The pool's entry point (pool.symbols; `make_object` gives its code, e.g. from the cache)."""
    return pool.symbols(make_object)


COSTLY_BODY = 16  # op_cost of a body that keeps the core busy on its own (two transcendentals)


def op_cost(kernel) -> int:
    """The body's ops per element, weighted by the primitives' costs (in simple vector ops)."""
    return sum(PRIMITIVES[ins.prim].cost for ins in kernel.body if isinstance(ins, Op))


def kernel_cost(kernel) -> int:
    """Elements x (loads + weighted ops): the work estimate the thread policy uses."""
    loads = sum(isinstance(ins, Load) for ins in kernel.body)
    return int(np.prod(kernel.domain, dtype=np.int64)) * max(op_cost(kernel) + loads, 1)


@dataclass
class ParallelPlan:
    chunks: list  # (lo, hi) rows of dim 0 per thread
    private: list  # _Reduction objects whose target each thread > 0 writes privately
    private_offsets: list  # per private target: byte offset of thread 1's copy in the scratch
    private_bytes: int  # bytes of one thread's copies together
    row_align: int = 1  # each share's rows but the last's are a multiple of it (_row_align)

    @property
    def scratch_bytes(self) -> int:
        return self.private_bytes * (len(self.chunks) - 1)


def _rows_disjoint(strides, domain) -> bool:
    """Different i0 never reach the same element: |s0| exceeds the span of the other dims."""
    span = sum(abs(s) * (n - 1) for s, n in zip(strides[1:], domain[1:]))
    return abs(strides[0]) > span


def may_split(kernel, n_threads: int) -> bool:
    """Whether a kernel is worth a thread plan at all (cheap: no analysis)."""
    return n_threads >= 2 and kernel_cost(kernel) >= PARALLEL_MIN_COST


def _row_align(domain) -> int:
    """ROW_ALIGN for a one-dim domain, whose dim 0 is the vector loop's; else 1."""
    return ROW_ALIGN if len(domain) == 1 else 1


def _edges(domain, n: int) -> list:
    """Thread i runs rows [edges[i], edges[i + 1]) of dim 0: equal shares, in multiples of
    `_row_align` (fewer threads where a share would be empty)."""
    edges = [domain[0] * t // n for t in range(n + 1)]
    align = _row_align(domain)
    if align > 1:
        edges = [e - e % align for e in edges[:-1]] + edges[-1:]
        edges = [e for j, e in enumerate(edges) if j == 0 or e > edges[j - 1]]
    return edges


def plan_parallel(em, n_threads: int) -> ParallelPlan | None:
    """How to split kernel emitter `em` over threads, or None to run it inline."""
    if not may_split(em.kernel, n_threads):
        return None
    if not em.domain or em.domain[0] < 2 or 0 in em.domain:
        return None
    written = [s.buffer for s in em.kernel.stores]
    private = []
    for store, acc in zip(em.kernel.stores, em.store_access):
        if acc.never:
            continue
        if acc.strides[0] != 0:
            if not _rows_disjoint(acc.strides, em.domain):
                return None
            continue
        if store.reduce is None or sum(b is store.buffer for b in written) > 1:
            return None  # rows shared between threads
        private.append(next(r for r in em.reductions if r.store is store))
    if any(any(r.store.buffer is b for b in em.kernel.reads()) for r in private):
        return None
    edges = _edges(em.domain, min(n_threads, em.domain[0]))
    if len(edges) < 3:
        return None  # one thread's share
    offsets, total = [], 0
    for red in private:
        offsets.append(total)
        total += align_up(red.store.buffer.size * np.dtype(red.store.buffer.dtype).itemsize, 64)
    return ParallelPlan(list(zip(edges[:-1], edges[1:])), private, offsets, total,
                        _row_align(em.domain))


# ---- code ------------------------------------------------------------------------

def _context_type(n_ptrs: int):
    """One thread's arguments: the kernel's buffer pointers, then lo and hi."""
    return ir.LiteralStructType([PTR] * n_ptrs + [I64, I64])


def _task(module, fn, n_ptrs: int):
    """`void task(ptr ctx)`: unpacks a context and calls the kernel (the pool's task);
    one per kernel function in the module."""
    name = fn.name + "_task"
    if name in module.globals:
        return module.globals[name]
    task = ir.Function(module, pool.TASK_TYPE, name)
    task.linkage = "internal"
    # the entry also runs slice 0 through it: one copy of the unpacking per kernel
    task.attributes.add("noinline")
    b = ir.IRBuilder(task.append_basic_block("entry"))
    ctx, cty = task.args[0], _context_type(n_ptrs)
    fields = [b.gep(ctx, [i64(0), I32(j)], source_etype=cty) for j in range(n_ptrs + 2)]
    args = [b.load(f, typ=PTR) for f in fields[:n_ptrs]] + [b.load(f, typ=I64) for f in fields[n_ptrs:]]
    b.call(fn, args)
    b.ret_void()
    return task


class ParallelCall:
    """Emits, at the builder's position, the threaded run of one kernel function."""

    def __init__(self, b, em, fn, ptrs, shifts, plan: ParallelPlan, scratch):
        """`ptrs[j]`: argument j of the kernel function, `shifts[j]` bytes past its buffer's
        start (units.canonical_form); a private copy is entered at the same shift."""
        self.b, self.em, self.fn, self.ptrs, self.plan = b, em, fn, ptrs, plan
        self.shifts, self.scratch = shifts, scratch

    def emit(self):
        b, n = self.b, len(self.plan.chunks)
        module = b.module
        task = _task(module, self.fn, len(self.ptrs))
        cty = _context_type(len(self.ptrs))
        ctx = b.alloca(cty, size=i64(n), name="ctx")
        for t in range(n):
            self._fill_context(ctx, t)
        stride = b.sub(b.ptrtoint(b.gep(ctx, [i64(1)], source_etype=cty), I64), b.ptrtoint(ctx, I64))
        run = declare(module, "tg_pool_run", ir.VoidType(), [PTR, PTR, I64, I64])
        b.call(run, [task, ctx, stride, i64(n)])  # returns when every slice has run
        for red, offset in zip(self.plan.private, self.plan.private_offsets):
            self._combine(red, offset)

    def _private_ptr(self, t: int, offset: int, shift: int):
        """Thread t's copy of a private target (at `offset` in one thread's copies), entered
        `shift` bytes in like the target's own pointer."""
        at = (t - 1) * self.plan.private_bytes + offset + shift
        return self.b.gep(self.scratch, [i64(at)], inbounds=True, source_etype=ir.IntType(8))

    def _fill_context(self, ctx, t):
        b = self.b
        private = {id(r.store.buffer): off for r, off in zip(self.plan.private, self.plan.private_offsets)}
        for j, (buf, ptr) in enumerate(zip(self.em.buffers, self.ptrs)):
            if t > 0 and id(buf) in private:
                ptr = self._private_ptr(t, private[id(buf)], self.shifts[j])
            b.store(ptr, b.gep(ctx, [i64(t), I32(j)]))  # typed GEPs: llvmlite checks the stores
        for j, v in enumerate(self.plan.chunks[t]):
            b.store(i64(v), b.gep(ctx, [i64(t), I32(len(self.ptrs) + j)]))

    def _combine(self, red, offset):
        """target[e] = target[e] (+) copy_1[e] (+) ... over the store's image."""
        b, buf = self.b, red.store.buffer
        ety = storage_type(buf.dtype)
        j = next(j for j, x in enumerate(self.em.buffers) if x is buf)
        target = self.ptrs[j]
        dims = [((i64(0), i64(n)), s) for n, s in zip(self.em.domain, red.access.strides)
                if s != 0 and n != 1]
        copies = [self._private_ptr(t, offset, self.shifts[j]) for t in range(1, len(self.plan.chunks))]

        def merge(index):
            ptr = b.gep(target, [index], inbounds=True, source_etype=ety)
            acc = to_register(b, b.load(ptr, typ=ety), buf.dtype)
            for copy in copies:
                part = b.load(b.gep(copy, [index], inbounds=True, source_etype=ety), typ=ety)
                acc = combine(b, red.store.reduce, acc, to_register(b, part, buf.dtype), buf.dtype)
            b.store(to_memory(b, acc, buf.dtype), ptr)
        walk_image(b, red.access.offset, dims, merge, "merge")


def emit_parallel_call(b, em, fn, ptrs, shifts, plan: ParallelPlan, scratch):
    ParallelCall(b, em, fn, ptrs, shifts, plan, scratch).emit()
