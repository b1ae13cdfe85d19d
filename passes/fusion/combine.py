"""Partners: tasks that shared a kernel in the previous round expand as one task.

A full round expands every task down to buffers.  Where N tasks of one kernel
each expand the chain beneath them (the per-step reductions of an unrolled
loop's gradient), the round costs N times the chain: quadratic in the loop's
length.  Expanded as one task with several stores, they share one memo and one
body, as the kernel shares them at emission, and the round costs the size of the
program.

Partners are tasks that the previous round's merge put in one kernel without
recomputing temps for them (an empty inline set), each with one store into a
buffer no other task writes, and no dot, control-flow or extern step and no
write order, whose expansion must be made again (one kept from an earlier round
is reused as it is).  A combined task is valid only while no member depends on another:
the round checks this after expansion (`ordered`) and otherwise falls back to
the members, as planned without partners.
"""
from __future__ import annotations

import heapq
from collections import Counter

from .tasks import Task, _current, expansion_key


def remember(plan, groups):
    """Record which tasks shared a kernel this round: the next full round's partners."""
    plan.partners = {s.buffer: g.id for g in groups for t in g.tasks
                     if _loop_task(t) and not t.inline for s in t.stores}


def _loop_task(t) -> bool:
    return t.dot is None and t.control is None and not t.after


def _plain(t) -> bool:
    return _loop_task(t) and len(t.stores) == 1 and t.stores[0].buffer is not None


def combine(plan, tasks) -> tuple:
    """(tasks, members): partners combined into one task each, placed at the first
    member's position; `members` maps each combined task to its members."""
    writers = Counter(s.buffer for t in tasks for s in t.stores)
    buckets = {}
    for t in tasks:
        buf = t.stores[0].buffer if _plain(t) and _stale(plan, t) else None
        gid = plan.partners.get(buf) if buf is not None and writers[buf] == 1 else None
        buckets.setdefault(("g", gid) if gid is not None else ("t", id(t)), []).append(t)
    combined, members = [], {}
    for group in buckets.values():
        if len(group) == 1 or len({t.domain for t in group}) != 1:
            combined.extend(group)
            continue
        task = Task(group[0].domain, [s for t in group for s in t.stores],
                    roots=set().union(*[t.roots for t in group]))
        members[task] = group
        combined.append(task)
    order = {id(t): i for i, t in enumerate(tasks)}
    combined.sort(key=lambda t: order[id(members[t][0] if t in members else t)])
    return combined, members


def _stale(plan, t) -> bool:
    """Whether t's expansion must be made again (a kept one costs nothing to reuse)."""
    return _current(plan, plan.expansions.get(expansion_key(t))) is None


def ordered(tasks) -> list | None:
    """`tasks` (expanded) in an order where each comes after the writers of what it
    reads and the tasks it follows, closest to the given order; None on a cycle."""
    writers = {}
    for t in tasks:
        for b in t.writes():
            writers.setdefault(b, []).append(t)
    index = {id(t): i for i, t in enumerate(tasks)}
    waits, readers = [0] * len(tasks), [[] for _ in tasks]
    for i, t in enumerate(tasks):
        firsts = {index[id(w)] for r in t.reads for w in writers.get(r.buffer, ())}
        firsts |= {index[id(a)] for a in t.after}
        if i in firsts:
            return None  # a member reads what another member writes
        waits[i] = len(firsts)
        for j in firsts:
            readers[j].append(i)
    ready = [i for i, w in enumerate(waits) if w == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        i = heapq.heappop(ready)
        out.append(tasks[i])
        for j in readers[i]:
            waits[j] -= 1
            if waits[j] == 0:
                heapq.heappush(ready, j)
    return out if len(out) == len(tasks) else None
