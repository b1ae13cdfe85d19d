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
from .tasks import Task, expand_task, identity_store

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


class Summaries:
    """Per frontier value: the buffers read below it, down to the next frontier.

    Built once per round for every frontier value any task meets (and, below them,
    the frontier values those meet), each expanded once, at its own (identity) view:
    a chain costs its length, however many views of each value the tasks read (a
    stencil's gradient reads each step at every shift its later steps reach).  The
    whole value reads every buffer any view of it reads, so the dependencies are
    kept (at worst a few more).
    """

    def __init__(self, plan, tasks):
        self.reads, self.below = {}, {}  # value -> buffers read; value -> frontier values met
        todo = [k[0] for t in tasks for k in t.frontier]
        while todo:
            atom = todo.pop()
            if atom in self.reads:
                continue
            # expanded as a task, so the expansion is kept: it is the value's own task
            shape = atom.aval.shape
            t = Task(shape, [identity_store(None, atom, shape)], roots={atom})
            expand_task(plan, t)
            self.reads[atom] = {r.buffer for r in t.reads}
            self.below[atom] = list(dict.fromkeys(k[0] for k in t.frontier if k[0] is not atom))
            todo.extend(self.below[atom])
        self._masks = {}

    def mask(self, key, group_bits) -> int:
        """The bit mask of the groups writing what lies below the frontier pair `key`
        (not closed under their dependencies); `group_bits(buffer)` gives one buffer's
        writers."""
        key = key[0]
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
