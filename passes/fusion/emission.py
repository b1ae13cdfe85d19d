"""Emission: groups become kernels in dependency order, temps and constants get names.

Temps are listed in the order of their first write; `liveness(program)`
gives each temp's first and last kernel.

A loop kernel whose work (iterations times body length) does not fit an int64
count, or that would iterate more than MAX_ITERATIONS times (days on any
machine), is refused with a `KernelSizeError` naming its domain, rather than
compiled to run for ever.
"""
from __future__ import annotations

import math

from tracegrad.passes.kernels import Const, DotKernel, KernelProgram, LoopKernel, Store

MAX_ITERATIONS = 2**50
MAX_WORK = 2**63 - 1  # codegen counts work in int64


class KernelSizeError(ValueError):
    """A loop kernel would do more work than can be counted or waited for."""

from .body import Body, compact


def _topo(groups):
    """Groups in dependency order, ties by creation."""
    done, order, pending = set(), [], list(groups)
    while pending:
        ready = next(g for g in pending if g.deps <= done)
        pending.remove(ready)
        done.add(ready.id)
        order.append(ready)
    return order


def emit_loop(plan, g, name):
    """The group's tasks in one body, which CSEs them.

    Each task's last expansion during planning (with the final buffers and its
    own inline set) is replayed into the body rather than expanded again: the
    expansion adds the same instructions in the same order either way.
    """
    body, stores = Body(), []
    for t in g.tasks:
        remap, start = {}, 0
        for s, value, end in zip(t.stores, t.values, t.marks):
            body.replay(t.body, start, end, remap)
            start = end
            val = value if isinstance(value, Const) else remap[value]
            if isinstance(val, Const):
                val = body.emit("convert", (val,), {"dtype": val.dtype}, val.dtype)
            stores.append(Store(s.buffer, val, s.index, s.reduce))
    kernel = LoopKernel(name, g.domain, compact(body.instrs, stores), stores)
    _check_work(plan, g, kernel)
    return kernel


def _origin(plan, g) -> str:
    """Where the user made the values a group stores, for error messages."""
    srcs = [plan.producer[s.atom].src for t in g.tasks for s in t.stores
            if s.atom in plan.producer and plan.producer[s.atom].src]
    return f" (the value made at {srcs[0]})" if srcs else ""


def _check_work(plan, g, kernel):
    iterations = math.prod(kernel.domain)
    work = iterations * max(1, len(kernel.body))
    if work > MAX_WORK:
        why = f"{work} operations in all, more than an int64 counts"
    elif iterations > MAX_ITERATIONS:
        why = f"more than the {MAX_ITERATIONS} iterations any kernel may run"
    else:
        return
    raise KernelSizeError(f"a fused loop over domain {tuple(kernel.domain)}{_origin(plan, g)} "
                          f"would run {iterations} iterations of {len(kernel.body)} operations: "
                          f"{why}. An operation on a broadcast runs once per copy: "
                          "reduce the sizes.")


def _emit_group(plan, g, name):
    if g.tasks[0].control is not None:
        from .control import emit_control  # it plans bodies with the package's `fuse`
        from .extern import ExternSpec, emit_extern
        if isinstance(g.tasks[0].control, ExternSpec):
            return emit_extern(g.tasks[0], name)
        return emit_control(g.tasks[0], name)
    if not g.dot:
        return emit_loop(plan, g, name)
    (t,) = g.tasks
    d = t.dot
    return DotKernel(name, d.a, d.b, t.stores[0].buffer, d.batch, d.m, d.k, d.n,
                     d.trans_a, d.trans_b)


def buffers_used(kernels):
    seen = {}
    for k in kernels:
        for b in k.reads() + k.writes():
            seen.setdefault(id(b), b)
    return list(seen.values())


def name_temps(used) -> list:
    """The temps among `used` (buffers in first-touch order), named t0, t1, ..."""
    temps = [b for b in used if b.kind == "temp"]
    for i, b in enumerate(temps):
        b.name = f"t{i}"
    return temps


def emit(plan, groups) -> KernelProgram:
    kernels = [_emit_group(plan, g, f"k{i}") for i, g in enumerate(_topo(groups))]
    used = buffers_used(kernels)
    temps = name_temps(used)
    const_order = [plan.buffers[v] for v in plan.graph.constvars] + [plan.mask_buffer()]
    used_ids = {id(b) for b in used}
    consts = [b for b in const_order if id(b) in used_ids]
    for i, b in enumerate(consts):
        b.name = "mask" if plan.is_mask(b) else f"c{i}"
    return KernelProgram(list(plan.inputs), list(plan.outputs), consts, temps, kernels)


def liveness(program: KernelProgram) -> dict:
    """Temp name -> (first, last) index of the kernels that touch it.

    A temp's memory is free before its first kernel and after its last one, so
    temps whose ranges do not overlap may share memory.
    """
    spans = {}
    for i, k in enumerate(program.kernels):
        for b in k.reads() + k.writes():
            if b.kind == "temp":
                first, _ = spans.get(b.name, (i, i))
                spans[b.name] = (first, i)
    return spans
