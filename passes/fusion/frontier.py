"""Analysis rounds: expansions that stop at the values likely to be stored.

A loop body unrolled N times is a chain of values that feed each other.
Until planning stores the links, every kernel below the chain's top expands
the whole chain beneath it: N kernels of up to N steps each.  So a round
first stops its expansions at the *candidates*: computed values read twice
whose recomputation alone is over the budget (`candidates`).  A candidate is
an instance like any other value where a kernel meets it, so the recompute
policy decides it as before; what lies below it is summarised once per
(value, view) for the dependencies horizontal fusion needs (`Summaries`), and
values below a candidate it leaves computed wait for a round that expands
through that candidate.  Only a round with no candidates left is final, so
the kernels emitted come from full expansions as always.
"""
from __future__ import annotations

from .recompute import RECOMPUTE_BUDGET
from .tasks import StoreSpec, Task, expand_task

# A round summarises at most this many frontier (value, view) pairs per equation (and
# SUMMARY_FLOOR in all): shifted views multiply them (the gradient of a stencil reads
# each step at every shift its later steps reach, about T^2 of them per step in 2-D,
# and the summaries cost T^3 and more).  Past it the round gives up deciding the
# frontier values one by one and stores them all (`TooManyViews`).
SUMMARIES_PER_EQN = 8
SUMMARY_FLOOR = 1024


class TooManyViews(Exception):
    """The frontier's summaries would cost more than the planner's bound."""


def candidates(plan, rejected) -> set:
    """Computed values read more than once whose subtree costs more than the budget
    (storing them is likely), but those a round has decided to leave computed."""
    found = set()
    for e in plan.eqns:
        if len(e.outs) != 1:
            continue
        v = e.outs[0]
        if (v not in plan.buffers and v not in rejected and plan.uses.get(v, 0) > 1
                and plan.cost_exceeds(v, RECOMPUTE_BUDGET)):
            found.add(v)
    return found


def _domain_of(view) -> tuple:
    return tuple(max(hi, 0) for _, hi in view.box)


class Summaries:
    """Per frontier (value, view): the buffers read below it, down to the next frontier.

    Built once per round for every frontier any task meets (and, below them,
    the frontiers those meet), each expanded once: a chain costs its length.
    """

    def __init__(self, plan, tasks):
        self.reads, self.below = {}, {}  # key -> buffers read; key -> frontier keys met
        todo = [k for t in tasks for k in t.frontier]
        limit = max(SUMMARY_FLOOR, SUMMARIES_PER_EQN * len(plan.eqns))
        while todo:
            key = todo.pop()
            if key in self.reads:
                continue
            if len(self.reads) >= limit:
                raise TooManyViews()
            atom, view = key
            # expanded as a task, so the expansion is kept: the value's own task is the
            # same one where the view is the identity (and it is stored)
            t = Task(_domain_of(view), [StoreSpec(None, atom, view, None)], roots={atom})
            expand_task(plan, t)
            self.reads[key] = {r.buffer for r in t.reads}
            self.below[key] = [k for k in t.frontier if k != key]
            todo.extend(self.below[key])
        self._masks = {}

    def mask(self, key, group_bits) -> int:
        """The bit mask of the groups writing what lies below `key` (not closed under
        their dependencies); `group_bits(buffer)` gives one buffer's writers."""
        stack = [key]
        while stack:
            k = stack[-1]
            if k in self._masks:
                stack.pop()
                continue
            pending = [b for b in self.below[k] if b not in self._masks]
            if pending:
                stack.extend(pending)
                continue
            mask = 0
            for buf in self.reads[k]:
                mask |= group_bits(buf)
            for b in self.below[k]:
                mask |= self._masks[b]
            self._masks[k] = mask
            stack.pop()
        return self._masks[key]
