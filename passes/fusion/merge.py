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


def _task_deps(t, group_of, writers, skip=frozenset()) -> set:
    deps = {group_of[w].id for buf, _, _ in t.reads if buf not in skip
            for w in writers.get(buf, ())}
    return deps | {group_of[a].id for a in t.after}


def _ancestors(groups, ids) -> set:
    seen, stack = set(), list(ids)
    while stack:
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            stack.extend(groups[i].deps)
    return seen


def _inlinable(plan, t, g, writers) -> set:
    """Elementwise temps of group g that t reads only at g's own index: t may recompute them.

    With each comes what its writer recomputes itself, so that t evaluates the
    temp exactly as its writer does (and the kernel's CSE shares the work).
    """
    by_var = {}
    for buf, var, view in t.reads:
        by_var.setdefault(var, []).append((buf, view))
    out = set()
    for var, reads in by_var.items():
        ws = writers.get(reads[0][0], ())
        if (len(ws) == 1 and ws[0] in g.tasks and var in ws[0].roots
                and all(view is not None and view == identity_view(t.domain)
                        and var.aval.shape == t.domain for _, view in reads)):
            out |= {var} | ws[0].inline
    return out


def _joins(plan, t, g, groups, group_of, writers) -> bool:
    """Whether t can join g, recomputing g's temps it reads (t.inline grows if so)."""
    inline = _inlinable(plan, t, g, writers)
    identity = identity_view(t.domain)
    if any(var in inline and view != identity for _, var, view in t.reads):
        return False  # it would recompute a stored value at another index: not free
    deps = _task_deps(t, group_of, writers, skip={plan.buffers[v] for v in inline})
    if g.id in _ancestors(groups, deps):
        return False
    if inline - t.inline:
        old = set(t.inline)
        t.inline |= inline
        expand_task(plan, t)
        if g.id in _ancestors(groups, _task_deps(t, group_of, writers)):
            t.inline = old  # recomputing reads something g writes after all
            expand_task(plan, t)
            return False
    return True


def merge(plan, tasks):
    """Tasks -> groups (one kernel each); tasks arrive after the tasks they read from.

    A task joins the first group of its domain it does not depend on (so no
    cycle arises); the groups' order is settled at emission.
    """
    groups, group_of, writers = [], {}, {}
    for t in tasks:
        g = None
        if t.dot is None and t.control is None:
            g = next((h for h in groups if not h.dot and h.domain == t.domain
                      and _joins(plan, t, h, groups, group_of, writers)), None)
        if g is None:
            # a dot or a control-flow step is a kernel of its own (`dot` marks both)
            g = Group(len(groups), t.domain, t.dot is not None or t.control is not None)
            groups.append(g)
        g.tasks.append(t)
        group_of[t] = g
        g.deps |= _task_deps(t, group_of, writers) - {g.id}
        for b in t.writes():
            writers.setdefault(b, []).append(t)
    return groups, group_of
