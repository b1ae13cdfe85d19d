"""Planning: store values until every task expands and nothing is recomputed beyond budget.

Recompute vs store.  A kernel evaluates each (value, view) once, however many
of its stores need it.  A value evaluated in several (kernel, view) instances
is recomputed in each unless (instances - 1) * cost > RECOMPUTE_BUDGET, cost
being the weighted op count of its subtree down to buffers (each primitive's
`cost`: a transcendental weighs 8 simple ops); then it becomes a temp buffer.
The write and re-read of a temp (8-16 bytes per element) costs about as much
as a dozen vectorized arithmetic ops or two vectorized transcendentals: hence
the budget.  The outermost such values are stored first and planning re-runs
until nothing changes.
"""
from __future__ import annotations

from .expand import NeedBuffer
from .merge import merge
from .state import Plan
from .tasks import all_tasks, expand_task

RECOMPUTE_BUDGET = 16


def _build(plan):
    """All tasks, expanded; or the vars that must be stored before they can be."""
    needs = []
    tasks = all_tasks(plan, needs)
    for t in tasks:
        try:
            expand_task(plan, t)
        except NeedBuffer as nb:
            needs.append(nb.var)
    return tasks, list(dict.fromkeys(needs))


def _to_store(plan, tasks, group_of) -> list:
    """Computed values to store: recomputing them costs more than the budget.

    Outermost first: storing a value also stops the recomputation of its subtree.
    """
    inst = {}
    for t in tasks:
        gid = group_of[t].id
        for var, view in t.instances:
            if var not in plan.buffers:
                inst.setdefault(var, set()).add((gid, view))
    heavy = {v for v, s in inst.items()
             if len(s) > 1 and (len(s) - 1) * plan.cost(v) > RECOMPUTE_BUDGET}
    chosen, covered = [], set()
    for eqn in reversed(plan.eqns):
        v = eqn.outs[0]
        if v in heavy and v not in covered:
            chosen.append(v)
            covered |= plan.subtree(v)
    return chosen


def plan(graph):
    """(Plan, groups): the buffers, and the tasks grouped into kernels."""
    state = Plan(graph)
    for _ in range(len(state.eqns) + 2):  # each round stores at least one more value
        tasks, needs = _build(state)
        if not needs:
            groups, group_of = merge(state, tasks)
            needs = _to_store(state, tasks, group_of)
            if not needs:
                return state, groups
        for v in needs:
            state.store(v)
    raise RuntimeError("fusion planning did not converge")
