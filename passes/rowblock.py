"""Row-block fusion: loop kernels over the same rows run together, one block of rows at a time.

Fusion planning stores a reduction's result before its consumers read it, so a
normalization layer (mean, variance, scale, then the backward's row sums) is
several kernels that each stream the whole array: `k0` sums the rows of x,
`k1` reads x again for the variance, `k2` reads it a third time, ...  Each pass
over an array larger than the cache costs a trip to memory.

This pass rewrites a run of such kernels into a `LoopStep` over blocks of rows
(passes/kernels.py): trip t runs every kernel of the run on rows
[t*B, (t+1)*B), so a block is read from memory once and the later kernels find
it in cache, and a temp that lives only inside the run shrinks to one block.

A run is legal when every buffer its kernels touch is accessed in one of two
ways, checked per access (dim 0 is the rows):
* row-wise: stride s0 > 0 on dim 0, the buffer holds R*s0 elements and every
  other dim stays inside [0, s0): row i of every kernel touches only slice i.
  Slices of inputs become the step's `xs`; slices the run writes and someone
  reads later become `ys`; the others are temps of the body, one block long.
* row-invariant: stride 0 on dim 0.  Read only: a const of the body (passed
  whole).  Written: only by one reducing store and never read in the run; it
  becomes a carry (starting at the reduction's identity) that each trip
  combines with the block's partial result, in a combine kernel.
Kernels that do not join a run may move after it when they neither read what
the run writes later nor write what it touches.

The step's blocks form `groups` contiguous ranges (LoopStep.groups, GROUPS at
most): each range accumulates its own carries from the identity, and the `merge`
program folds the ranges' carries in range order.  Ranges share nothing they
write, so codegen runs them on the program's threads (codegen/rowsteps.py), and
the fold order, fixed here, makes the sums the same on any thread count: a sum
is sequential over the blocks of a range (each block's partial sum as the
kernel computes it), then ((range 0 + range 1) + range 2) + ...

Invariant: the rewritten program computes what the original did, up to the
reassociation of sums the kernel semantics already allow.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from tracegrad.passes.fusion.emission import buffers_used, name_temps
from tracegrad.passes.rowshare import shared
from tracegrad.passes.kernels import (REDUCTIONS, Buffer, IndexMap, KernelProgram, Load, LoopKernel, LoopStep,
                                      Op, Store)

# A block's working set (all row slices it touches): the blocks stay in the L2 cache.
BLOCK_BYTES = 256 << 10
# Kernels that may move past a run at one place (more: the run ends).
MAX_DEFERRED = 8
# Kernels in one run (bounds the quadratic legality checks).
MAX_RUN = 32
# Independent ranges of blocks per step (LoopStep.groups): threads take whole ranges, so
# the sums come out the same on any thread count; a thread claims the next range when it
# is done with one, so more ranges than threads balance them.
GROUPS = 16
# The reducing store's combine, as an elementwise primitive per (reduce, dtype kind).


@dataclass
class Access:
    """How a run touches one buffer: row-wise (s0 > 0) or invariant (s0 == 0)."""

    s0: int
    loads: list = field(default_factory=list)  # kernels that load it
    stores: list = field(default_factory=list)  # (kernel, Store)


def rowblock(kp: KernelProgram) -> KernelProgram:
    """`kp` with each profitable run of row kernels as one LoopStep over row blocks."""
    kernels, out, i, consts = list(kp.kernels), [], 0, list(kp.consts)
    while i < len(kernels):
        run, deferred, end = _run(kernels, i)
        step = _step(kp, run, kernels[end:] + deferred, consts) if len(run) > 1 else None
        if step is None:
            out.append(kernels[i])
            i += 1
            continue
        out += [step] + deferred
        i = end
    if len(out) == len(kernels):
        return kp
    return _renamed(KernelProgram(kp.inputs, kp.outputs, consts, [], out))


# ---- finding a run ---------------------------------------------------------------------------

def _rows(k) -> int | None:
    """The row count of a kernel that may join a run (None: it may not)."""
    if not isinstance(k, LoopKernel) or len(k.domain) == 0 or k.domain[0] < 2:
        return None
    return k.domain[0]


def _starts(k) -> bool:
    """Only a kernel over more data than a few blocks starts a run (a cheap test that keeps
    long programs of small kernels linear)."""
    return _rows(k) is not None and int(np.prod(k.domain, dtype=np.int64)) * 4 > BLOCK_BYTES


def _touches(k):
    return {id(b) for b in k.reads()}, {id(b) for b in k.writes()}


def _conflicts(k, deferred) -> bool:
    reads, writes = _touches(k)
    for d in deferred:
        d_reads, d_writes = _touches(d)
        if reads & d_writes or writes & (d_reads | d_writes):
            return True
    return False


def _run(kernels, i):
    """(run, deferred, end): the longest legal run starting at kernel i."""
    rows = _rows(kernels[i])
    run, deferred, j = [kernels[i]], [], i + 1
    if not _starts(kernels[i]) or _accesses(run) is None:
        return [kernels[i]], [], i + 1
    while j < len(kernels) and len(deferred) <= MAX_DEFERRED and len(run) < MAX_RUN:
        k = kernels[j]
        if _rows(k) == rows and not _conflicts(k, deferred) and _accesses(run + [k]) is not None:
            run.append(k)
        elif _rows(k) == rows or len(deferred) == MAX_DEFERRED:
            break
        else:
            deferred.append(k)
        j += 1
    while deferred and deferred[-1] is kernels[j - 1]:  # trailing kernels stay in place
        deferred.pop()
        j -= 1
    return run, deferred, j


def _inner_range(index: IndexMap, domain) -> tuple[int, int]:
    """The lowest and highest offset the dims after the first add to `index.offset`."""
    lo = hi = index.offset
    for s, n in zip(index.strides[1:], domain[1:]):
        lo, hi = lo + min(0, s * (n - 1)), hi + max(0, s * (n - 1))
    return lo, hi


def _access_kind(buf, index: IndexMap, domain) -> int | None:
    """s0 of one access, or None when it is neither row-wise nor invariant."""
    if index.bounds is not None and index.bounds[0] is not None:
        return None
    s0 = index.strides[0]
    if s0 == 0:
        return 0
    lo, hi = _inner_range(index, domain)
    if s0 < 0 or buf.size != domain[0] * s0 or lo < 0 or hi >= s0:
        return None
    return s0


def _record(table, buf, s0, k, store=None) -> bool:
    acc = table.setdefault(id(buf), (buf, Access(s0)))[1]
    if acc.s0 != s0:
        return False
    if store is None:
        acc.loads.append(k)
    else:
        acc.stores.append((k, store))
    return True


def _accesses(run):
    """id(buffer) -> (buffer, Access) for a legal run, else None."""
    table = {}
    for k in run:
        for ins in k.body:
            if isinstance(ins, Load):
                s0 = _access_kind(ins.buffer, ins.index, k.domain)
                if s0 is None or not _record(table, ins.buffer, s0, k):
                    return None
        for st in k.stores:
            s0 = _access_kind(st.buffer, st.index, k.domain)
            if s0 is None or not _record(table, st.buffer, s0, k, st):
                return None
    order = {id(k): n for n, k in enumerate(run)}
    legal = all(_legal(acc, order) for _, acc in table.values())
    return table if legal else None


def _legal(acc: Access, order) -> bool:
    """Row-wise: a written slice is first written whole (by one kernel, before any kernel
    of the run reads it), and a reduced one by one kernel only.  Invariant: read only, or
    one reducing store that the run never reads."""
    if not acc.stores:
        return True
    if acc.s0 == 0:
        return not acc.loads and len(acc.stores) == 1 and acc.stores[0][1].reduce is not None
    first_kernel, first = acc.stores[0]
    reducers = {id(k) for k, st in acc.stores if st.reduce is not None}
    if reducers and len({id(k) for k, _ in acc.stores}) > 1:
        return False
    read_early = any(order[id(k)] <= order[id(first_kernel)] for k in acc.loads)
    return not read_early and _covers(first.index, first_kernel.domain, acc.s0)


def _covers(index: IndexMap, domain, s0: int) -> bool:
    """Whether the store writes every element of each row slice [0, s0) (dims of stride 0
    are reduced over)."""
    if index.bounds is not None or index.offset != 0:
        return False
    dims = sorted(((s, n) for s, n in zip(index.strides[1:], domain[1:]) if s != 0 and n > 1),
                  reverse=True)
    expect = s0
    for s, n in dims:
        if expect % n or s != expect // n:
            return False
        expect //= n
    return expect == 1


# ---- building the step -----------------------------------------------------------------------

@dataclass
class Body:
    """The body program under construction: outer buffer id -> body buffer."""

    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    temps: list = field(default_factory=list)
    mapping: dict = field(default_factory=dict)

    def input(self, buf, shape):
        b = Buffer(f"in{len(self.inputs)}", shape, buf.dtype, "input", index=len(self.inputs))
        self.inputs.append(b)
        return b

    def output(self, buf, shape):
        b = Buffer(f"out{len(self.outputs)}", shape, buf.dtype, "output", index=len(self.outputs))
        self.outputs.append(b)
        return b

    def temp(self, shape, dtype):
        b = Buffer(f"t{len(self.temps)}", shape, dtype, "temp")
        self.temps.append(b)
        return b


def _read_later(later, outputs) -> set:
    ids = {id(b) for b in outputs}
    for k in later:
        ids |= {id(b) for b in k.reads()}
    return ids


def _block(rows: int, row_bytes: int) -> int | None:
    """Rows per block: the largest divisor of `rows` whose slices fit BLOCK_BYTES; None when
    the whole run fits (then it is in cache already and blocking gains nothing)."""
    if rows * row_bytes <= 2 * BLOCK_BYTES:
        return None
    fit = max(1, BLOCK_BYTES // max(row_bytes, 1))
    return max(d for d in range(1, min(fit, rows) + 1) if rows % d == 0)


def _step(kp, run, later, consts):
    """The LoopStep running `run` block by block, or None when it does not pay."""
    table = _accesses(run)
    wise = [(b, a) for b, a in table.values() if a.s0 > 0]
    rows = run[0].domain[0]
    block = _block(rows, _row_bytes(wise))
    if block is None or not _shares_rows(run, wise):
        return None
    # Costly values computed once (passes/rowshare.py).  The block stays the one planned
    # without their temps, so the sums over blocks, and with them the bits, are the same.
    sharing = shared(run, max(a.s0 for _, a in wise))
    shared_table = _accesses(sharing) if sharing is not run else None
    if shared_table is not None:
        run, table = sharing, shared_table
        wise = [(b, a) for b, a in table.values() if a.s0 > 0]
    live = _read_later(later, kp.outputs)
    body, step = Body(), LoopStep(f"{run[0].name}_rows", None, [], [], [], [], [], [],
                                   length=rows // block)
    for buf, acc in table.values():
        if acc.s0 == 0 and not acc.stores:
            body.mapping[id(buf)] = body.input(buf, buf.shape)
            step.consts.append(buf)
    carried = [(buf, acc.stores[0][1].reduce) for buf, acc in table.values()
               if acc.s0 == 0 and acc.stores]
    combines = [_carry(body, step, buf, reduce, consts) for buf, reduce in carried]
    _slices(body, step, wise, block, live)
    kernels = [_body_kernel(k, body, block) for k in run] + combines
    # body outputs: the carries' next values (built first), then the y slices
    step.body = KernelProgram(body.inputs, body.outputs, [], body.temps, kernels)
    step.groups, step.merge = min(GROUPS, step.length), _merge(carried)
    return step


def _row_bytes(wise) -> int:
    return sum(a.s0 * np.dtype(b.dtype).itemsize for b, a in wise)


def _shares_rows(run, wise) -> bool:
    """Blocking pays when some row slice is touched by two kernels of the run."""
    users = {}
    for k in run:
        for b in {id(b) for b in k.reads() + k.writes()}:
            users[b] = users.get(b, 0) + 1
    return any(users.get(id(b), 0) > 1 for b, _ in wise)


def _carry(body, step, buf, reduce, consts):
    """An accumulator: carry in/out, the block's partial result, and its combine kernel."""
    identity = np.full(buf.shape, REDUCTIONS[reduce].identity(buf.dtype), buf.dtype)
    init = Buffer(f"c{len(consts)}", buf.shape, buf.dtype, "const", value=identity)
    consts.append(init)
    scratch = Buffer("t", buf.shape, buf.dtype, "temp")
    step.init.append(init)
    step.carries.append(buf)
    step.scratch.append(scratch)
    cur, nxt = body.input(buf, buf.shape), body.output(buf, buf.shape)
    partial = body.mapping[id(buf)] = body.temp(buf.shape, buf.dtype)
    return _combine(cur, partial, nxt, reduce)


def _merge(carried) -> KernelProgram:
    """The step's merge program: the carries so far (+) one range's carries, per carry."""
    prog = Body()
    so_far = [prog.input(buf, buf.shape) for buf, _ in carried]
    ranges = [prog.input(buf, buf.shape) for buf, _ in carried]
    kernels = [_combine(a, r, prog.output(buf, buf.shape), reduce)
               for a, r, (buf, reduce) in zip(so_far, ranges, carried)]
    return KernelProgram(prog.inputs, prog.outputs, [], [], kernels)


def _combine(cur, partial, nxt, reduce):
    flat, n = IndexMap(0, (1,)), (max(cur.size, 1),)
    prim = "or" if reduce == "sum" and cur.dtype == np.bool_ else REDUCTIONS[reduce].combine
    body = [Load(cur, flat, cur.dtype), Load(partial, flat, cur.dtype),
            Op(prim, (0, 1), {}, cur.dtype)]
    return LoopKernel(f"combine_{nxt.name}", n, body, [Store(nxt, 2, flat)])


def _slices(body, step, wise, block, live):
    """Row-wise buffers: x slices, y slices, or one-block temps of the body."""
    for buf, acc in wise:
        shape = (block, acc.s0) if acc.s0 > 1 else (block,)
        if not acc.stores:
            body.mapping[id(buf)] = body.input(buf, shape)
            step.xs.append(buf)
        elif id(buf) in live or buf.kind == "output":
            body.mapping[id(buf)] = body.output(buf, shape)
            step.ys.append(buf)
        else:
            body.mapping[id(buf)] = body.temp(shape, buf.dtype)


def _body_kernel(k, body, block):
    """`k` on one block: same index maps, body buffers, `block` rows."""
    instrs = [replace(ins, buffer=body.mapping[id(ins.buffer)]) if isinstance(ins, Load) else ins
              for ins in k.body]
    stores = [replace(st, buffer=body.mapping[id(st.buffer)]) for st in k.stores]
    return LoopKernel(k.name, (block,) + tuple(k.domain[1:]), instrs, stores)


def _renamed(kp: KernelProgram) -> KernelProgram:
    """The temps the kernels touch, named as emission names them."""
    temps = name_temps(buffers_used(kp.kernels))
    return KernelProgram(kp.inputs, kp.outputs, kp.consts, temps, kp.kernels)
