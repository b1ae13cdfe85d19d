"""Planning: store values until every task expands and nothing is recomputed beyond budget.

A round builds every task and expands it against the current buffers.  Values
a task cannot compute in place (`NeedBuffer`) are stored and the round starts
again; otherwise the tasks are merged into kernels and the recompute policy
(`recompute.py`) names the values to store.  A round whose expansions stop at
candidate values (`frontier.py`) only decides; the plan comes from the first
round that expands everything and stores nothing.  Each round costs about the
size of the program, and a chain of N values that feed each other is decided
in a few rounds, not N.  A round re-expands only the tasks whose expansion
consulted a value whose status changed since it was made (`tasks.expand_task`):
a frontier value that gets stored changes nothing in them, so the final round
mostly reuses the expansions of the round before.
"""
from __future__ import annotations

from .combine import combine, ordered, remember
from .expand import NeedBuffer
from .frontier import Summaries, candidates
from .merge import merge
from .recompute import to_store
from .state import Plan
from .tasks import all_tasks, expand_task


def _build(plan):
    """All tasks, expanded; or the vars that must be stored before they can be.
    A full round expands the previous round's kernel partners together
    (`combine.py`), unless that puts a member after another."""
    needs = []
    tasks = all_tasks(plan, needs)
    if not plan.stop and plan.partners and not needs:
        together, members = combine(plan, tasks)
        if members:
            order = ordered(together) if _expand_all(plan, together, needs) else None
            if order is not None or needs:
                return order, list(dict.fromkeys(needs))
    _expand_all(plan, tasks, needs)
    return tasks, list(dict.fromkeys(needs))


def _expand_all(plan, tasks, needs) -> bool:
    """Expand every task; the vars to store first go to `needs` (False if any)."""
    for t in tasks:
        try:
            expand_task(plan, t)
        except NeedBuffer as nb:
            needs.extend(nb.vars)
    return not needs


def _analysis(plan):
    """An analysis round's (tasks, summaries, needs): the vars a task or summary
    needs stored.  Storing those takes a round of its own; found by the analysis
    expansions, which stop at the frontier, they cost no full expansion of every
    chain beneath every task (quadratic in a long chain)."""
    tasks, needs = _build(plan)
    if needs:
        return tasks, None, needs
    try:
        return tasks, Summaries(plan, tasks), []
    except NeedBuffer as nb:
        return tasks, None, nb.vars


# Analysis rounds decide a chain in a few rounds; where they keep deciding one value
# per round (a chain whose every link is read three times, W7), full rounds that
# store outermost-first converge faster: past this many rounds, planning uses those.
ANALYSIS_ROUNDS = 6


def _round(plan, rejected, analyse=True):
    """(groups or None, vars to store): one planning round.  Groups are returned
    only from a final round: one that expands everything and stores nothing."""
    plan.set_stop(candidates(plan, rejected) if analyse else set())
    if plan.stop:
        tasks, summaries, needs = _analysis(plan)
    else:
        (tasks, needs), summaries = _build(plan), None
    if needs:
        return None, needs
    groups, group_of = merge(plan, tasks, summaries)
    remember(plan, groups)
    chosen, left = to_store(plan, tasks, groups, group_of)
    rejected |= left if chosen or left else plan.stop  # a round always decides something
    final = not chosen and not plan.stop
    return (groups if final else None), chosen


def plan(graph):
    """(Plan, groups): the buffers, and the tasks grouped into kernels."""
    state, rejected = Plan(graph), set()
    for i in range(2 * len(state.eqns) + 2):  # each round stores or rejects one value at least
        groups, needs = _round(state, rejected, analyse=i < ANALYSIS_ROUNDS)
        if groups is not None:
            return state, groups
        for v in needs:
            state.store(v)
    raise RuntimeError("fusion planning did not converge")
