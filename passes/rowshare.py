"""Row runs: a costly value that two kernels of a run compute alike is computed once.

Inside a row-block step (passes/rowblock.py) a softmax's `exp(x - max)` is
evaluated by the kernel that sums it and again by the kernel that divides by
the sum.  Fusion's recompute policy (passes/fusion/recompute.py) priced storing
the whole array against computing it twice; inside a block the store is a
write and a read of a slice that stays in cache.  So the first kernel of the
run that computes such a value also stores it into a row-wise temp (one block
long once the step is built), and later kernels over the same domain load it.

A value is shared when
* its subtree costs at least SHARE_COST (a division or a transcendental: more
  than a store and a load that hit the cache),
* it varies along a row (a value per row is computed once per row anyway: LLVM
  hoists it out of the inner loop),
* no kernel from the one that stores it up to the one that loads it writes a
  buffer the subtree reads,
* and its temp holds no more per row than the run's widest row slice (the
  block still fits the cache).
Invariant: every kernel computes each value with the same instructions as
before, only fetched from the temp instead of recomputed, and the step keeps the
block size planned without the temps (passes/rowblock.py), so results are the
same bits.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir.primitives import PRIMITIVES
from tracegrad.passes.fusion.body import compact
from tracegrad.passes.kernels import Buffer, Const, IndexMap, Load, LoopKernel, Op, Store

SHARE_COST = 4


def shared(run, widest: int) -> list:
    """`run` with the costly values that a later kernel recomputes stored once.

    `widest` is the largest row slice (elements) of the run's row-wise buffers."""
    ids, keys = [], {}
    for k in run:
        ids.append(_keys(k, keys))
    first, stores, replaced = {}, {}, {}
    for j, k in enumerate(run):
        for p in _reused(run, j, ids, first, widest):
            i, pos = first[(k.domain, ids[j][p])]
            temp = stores.get((i, pos))
            if temp is None:
                temp = stores[(i, pos)] = Buffer("share", k.domain, np.dtype(k.body[p].dtype), "temp")
            replaced.setdefault(j, {})[p] = temp
        for p, kid in enumerate(ids[j]):
            first.setdefault((k.domain, kid), (j, p))
    if not stores:
        return run
    return [_rewritten(k, j, stores, replaced.get(j, {})) for j, k in enumerate(run)]


def _keys(kernel, table) -> list:
    """Per body position, an id equal for equal computations across the run's kernels."""
    out = []
    for ins in kernel.body:
        if isinstance(ins, Load):
            key = ("load", id(ins.buffer), ins.index, np.dtype(ins.dtype))
        elif isinstance(ins, Const):
            key = ("const", ins)
        else:
            args = tuple([a if isinstance(a, Const) else out[a] for a in ins.args])
            params = tuple(sorted(ins.params.items())) if ins.params else ()
            key = ("op", ins.prim, args, params, np.dtype(ins.dtype))
        out.append(table.setdefault(key, len(table)))
    return out


def _reused(run, j, ids, first, widest) -> list:
    """Positions of kernel j to load from an earlier kernel: the outermost values an
    earlier kernel over the same domain computes, where that pays and is safe."""
    k = run[j]
    if int(np.prod(k.domain[1:], dtype=np.int64)) > widest:
        return []
    known = {p for p, kid in enumerate(ids[j])
             if isinstance(k.body[p], Op) and (k.domain, kid) in first}
    used_outside = {s.value for s in k.stores}
    for p, ins in enumerate(k.body):
        if isinstance(ins, Op) and p not in known:
            used_outside.update(a for a in ins.args if not isinstance(a, Const))
    out = []
    for p in sorted(known & used_outside):
        loads = [ins for ins in _subtree(k, p) if isinstance(ins, Load)]
        i = first[(k.domain, ids[j][p])][0]
        written = {id(b) for m in run[i:j] for b in m.writes()}
        if (_cost(k, p) >= SHARE_COST and not {id(ld.buffer) for ld in loads} & written
                and any(any(ld.index.strides[1:]) for ld in loads)):
            out.append(p)
    return out


def _subtree(kernel, p) -> list:
    seen, stack = set(), [p]
    while stack:
        q = stack.pop()
        if q not in seen:
            seen.add(q)
            ins = kernel.body[q]
            if isinstance(ins, Op):
                stack.extend(a for a in ins.args if not isinstance(a, Const))
    return [kernel.body[q] for q in seen]


def _cost(kernel, p) -> int:
    prims = [ins.prim for ins in _subtree(kernel, p) if isinstance(ins, Op)]
    return sum(PRIMITIVES[n].cost if n in PRIMITIVES else 1 for n in prims)


def _identity(domain) -> IndexMap:
    strides = [int(s) for s in np.cumprod((1,) + tuple(domain[:0:-1]))[::-1]]
    return IndexMap(0, tuple(strides))


def _rewritten(k, j, stores, replaced) -> LoopKernel:
    """Kernel j storing the values later kernels take from it and loading those it takes."""
    body = list(k.body)
    for p, temp in replaced.items():
        body[p] = Load(temp, _identity(k.domain), temp.dtype)
    new = [Store(s.buffer, s.value, s.index, s.reduce) for s in k.stores]
    new += [Store(temp, pos, _identity(k.domain)) for (i, pos), temp in stores.items() if i == j]
    return LoopKernel(k.name, k.domain, compact(body, new), new)
