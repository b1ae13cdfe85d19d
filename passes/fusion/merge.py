"""Horizontal fusion: tasks over equal domains with no path between them share a kernel.

`sum(f(x))` and its gradient `f'(x)` then take one pass over x.  A task that
reads an elementwise temp written by the group it could join, at that
group's own index, recomputes the temp instead (the kernel computes it once
anyway) and joins.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .tasks import expand_task
from .views import identity_view


@dataclass(eq=False)
class Group:
    id: int
    domain: tuple
    dot: bool
    tasks: list = field(default_factory=list)
    deps: set = field(default_factory=set)  # ids of the groups that must run first


def _bits(mask: int):
    """The set bits of `mask`, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class _Candidate:
    """What joining a group means for one task, worked out once for all groups.

    A temp the task reads only at its own index (`identity`), written by a
    single task that computes it itself, may be recomputed instead when the task
    joins that writer's group (`inline[group id]`: the temp and what its writer
    recomputes itself, so the task evaluates it exactly as its writer does, and
    the kernel's CSE shares the work).  Without such temps, the task may join
    any group that is not among its ancestors (`ancestors`, a bit mask).
    """

    def __init__(self, t, m):
        self.identity = identity_view(t.domain)
        reads = {}
        for r in t.reads:
            reads.setdefault(r.var, []).append(r)
        self.inline = {}
        for var, rs in reads.items():
            ws = m.writers.get(rs[0].buffer, ())
            if (len(ws) == 1 and var in ws[0].roots and var.aval.shape == t.domain
                    and all(r.view is not None and r.view == self.identity for r in rs)):
                self.inline.setdefault(m.group_of[ws[0]].id, set()).update({var} | ws[0].inline)
        self.ancestors = m.closure(m.deps_mask(t))


class _Merger:
    """Groups built so far, with each group's ancestors as a bit mask (itself included),
    kept exact as groups grow: a task joining a group hands its ancestors on to
    every group that depends on that one."""

    def __init__(self, plan, summaries=None):
        self.plan, self.summaries = plan, summaries
        self.groups, self.group_of, self.writers = [], {}, {}
        self.bits = {}  # buffer -> bit mask of the groups writing it
        self.loops = {}  # domain -> bit mask of its loop groups
        self.anc = []  # group id -> bit mask of the group and its ancestors

    def deps(self, t) -> set:
        """Ids of the groups writing what t reads, or that t must follow."""
        group_of, writers = self.group_of, self.writers
        deps = {group_of[w].id for r in t.reads for w in writers.get(r.buffer, ())}
        return deps | {group_of[a].id for a in t.after}

    def group_bits(self, buffer) -> int:
        return self.bits.get(buffer, 0)

    def deps_mask(self, t, skip=frozenset()) -> int:
        """The groups t depends on directly, as a bit mask: those writing what it reads
        (but `skip`), also below its frontier in an analysis round, or that it follows."""
        mask, bits = 0, self.bits
        for r in t.reads:
            if r.buffer not in skip:
                mask |= bits.get(r.buffer, 0)
        for a in t.after:
            mask |= 1 << self.group_of[a].id
        for k in t.frontier:
            mask |= self.summaries.mask(k, self.group_bits)
        return mask

    def closure(self, mask) -> int:
        """`mask` with all the ancestors of its groups.  Taking the latest group first,
        most of the others are then ancestors of it already."""
        closed = 0
        while mask:
            top = mask.bit_length() - 1
            closed |= self.anc[top]
            mask &= ~closed
        return closed

    def joins(self, t, g, cand) -> bool:
        """Whether t can join g, recomputing g's temps it reads (t.inline grows if so)."""
        inline = cand.inline.get(g.id)
        if not inline:
            return not cand.ancestors >> g.id & 1
        if any(r.var in inline and r.view != cand.identity for r in t.reads):
            return False  # it would recompute a stored value at another index: not free
        buffers = self.plan.buffers
        if self.closure(self.deps_mask(t, skip={buffers[v] for v in inline})) >> g.id & 1:
            return False
        if inline - t.inline:
            old = set(t.inline)
            t.inline |= inline
            expand_task(self.plan, t)
            if self.closure(self.deps_mask(t)) >> g.id & 1:
                t.inline = old  # recomputing reads something g writes after all
                expand_task(self.plan, t)
                return False
        return True

    def group_for(self, t):
        """The first group of t's domain that t can join, or None."""
        loops = self.loops.get(t.domain, 0)
        if not loops:
            return None
        cand = _Candidate(t, self)
        free = loops & ~cand.ancestors
        with_inline = sum(1 << i for i in cand.inline if loops >> i & 1)
        for i in _bits(free | with_inline):
            g = self.groups[i]
            if self.joins(t, g, cand):
                return g
        return None

    def add(self, t):
        g = None
        if t.dot is None and t.control is None:
            g = self.group_for(t)
        joined = g is not None
        if not joined:
            g = self._new_group(t)
        g.tasks.append(t)
        self.group_of[t] = g
        g.deps |= self.deps(t) - {g.id}
        ancestors = self.closure(self.deps_mask(t) & ~(1 << g.id))
        if joined:
            self._gain(g, ancestors)
        else:  # no group depends on a new one yet
            self.anc[g.id] |= ancestors
        for b in t.writes():
            self.writers.setdefault(b, []).append(t)
            self.bits[b] = self.bits.get(b, 0) | 1 << g.id

    def _new_group(self, t):
        # a dot or a control-flow step is a kernel of its own (`dot` marks both)
        g = Group(len(self.groups), t.domain, t.dot is not None or t.control is not None)
        self.groups.append(g)
        self.anc.append(1 << g.id)
        if not g.dot:
            self.loops[g.domain] = self.loops.get(g.domain, 0) | 1 << g.id
        return g

    def _gain(self, g, ancestors):
        """g (and so every group depending on g) now also depends on `ancestors`."""
        new = ancestors & ~self.anc[g.id]
        if not new:
            return
        for h, mask in enumerate(self.anc):
            if mask >> g.id & 1:
                self.anc[h] = mask | new


def merge(plan, tasks, summaries=None):
    """Tasks -> groups (one kernel each); tasks arrive after the tasks they read from.

    A task joins the first group of its domain it does not depend on (so no
    cycle arises); the groups' order is settled at emission.  In an analysis
    round, `summaries` tell what tasks read below their frontiers.
    """
    m = _Merger(plan, summaries)
    for t in tasks:
        m.add(t)
    return m.groups, m.group_of
