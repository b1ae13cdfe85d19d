"""The recompute policy: which computed values to store, outermost first.

A value evaluated in n distinct (kernel, view) instances is stored when
(n - 1) * cost > RECOMPUTE_BUDGET, cost being the weighted op count of its
subtree down to buffers (each primitive's `cost`).  The write and re-read of
a temp (8-16 bytes per element) costs about as much as a dozen vectorized
arithmetic ops or two vectorized transcendentals: hence the budget.

Storing a value also stops the recomputation of its subtree, so values are
decided outermost first (in reverse equation order), each as if the values
decided before it were stored already: an instance of a value survives where
its kernel still reaches it through values left computed, and a stored value's
own task adds the instances of the subtree it reaches.  That task does not
exist yet.  Its expansion is the one below the value in a task that evaluates
it at its own index over its shape (or, where none does, it is expanded
alone), and its kernel is the first one that evaluates the value there (its
task reads nothing those kernels' tasks do not, so horizontal fusion lets it
join the first of them), else a kernel of its own.  One sweep thus decides a
whole chain of values that feed each other (a loop body unrolled N times),
where storing only the outermost and planning again would take N rounds;
planning re-runs until no value is left to store.

A value broadcast along outer dims of a kernel's domain (`exp(p)` of a per-column p
in a kernel over rows and columns) is evaluated at every domain index, so each of its
elements is computed once per row: it is stored (over its own shape, a small temp
read from cache) when that repeats it at least REPEAT_MIN times, its subtree costs
more than BROADCAST_COST, and the work saved reaches SAVED_MIN (a small program gains
nothing measurable from a kernel more, which costs compile time).  Dims inside the
innermost dim the value varies along do not count: LLVM hoists the work out of those
loops (codegen/units.py, `invariant_work`).
"""
from __future__ import annotations

import math

from .expand import NeedBuffer
from .tasks import Task, expand_task, identity_store
from .views import identity_view

RECOMPUTE_BUDGET = 16
REPEAT_MIN = 4  # a broadcast value evaluated this many times per element, or more, ...
BROADCAST_COST = 3  # ... whose subtree costs more than this (a division, a transcendental)
SAVED_MIN = 1 << 16  # ... is stored when that saves this many op-elements (microseconds)


class _Kernel:
    """A task's instance DAG seen by the sweep, or the predicted kernel of a value
    chosen to be stored (`root`: the key it computes, sharing a task's DAG)."""

    def __init__(self, task, gid, root=None):
        self.task, self.gid, self.root = task, gid, root
        self.live = {}  # instance key -> reached through values left computed
        if root is None:
            for s in task.stores:
                self.live[(s.atom, s.view)] = True
        else:
            self.live[root] = True

    def reaches(self, key, parents, chosen) -> bool:
        """Whether `key` is reached, its parents (later vars) being decided already."""
        if key in self.live:
            return self.live[key]
        live = any(self.live.get(p) and (p[0] not in chosen or p == self.root)
                   for p in parents.get(key, ()))
        self.live[key] = live
        return live


def _own_task(plan, var):
    """The task that will store `var`, expanded against today's buffers (None if it
    cannot be yet: planning stores what it needs first)."""
    t = Task(var.aval.shape, [identity_store(None, var, var.aval.shape)], roots={var})
    try:
        expand_task(plan, t)
    except NeedBuffer:
        return None
    return t


def _parents(task) -> dict:
    """Instance key -> the instance keys in `task` that read it."""
    parents, instances = {}, task.instances
    for key, children in task.children.items():
        for c in children:
            if c in instances:
                parents.setdefault(c, []).append(key)
    return parents


class _Sweep:
    """Decides, outermost first, which computed values to store."""

    def __init__(self, plan, tasks, groups, group_of):
        self.plan, self.chosen = plan, set()
        self.new_groups = len(groups)  # ids for predicted kernels: the next ones
        self.by_var = {}  # var -> [(task, key)] over every task's instances
        self.parents = {}  # task -> its _parents
        self.kernels = {}  # task -> [_Kernel]: its own, then the predicted ones sharing its DAG
        self.reference = {}  # (domain, key) -> a task evaluating key over domain, inline-free
        for t in tasks:
            if t.instances:  # dots and control-flow steps compute nothing element-wise
                self.add(t, group_of[t].id)

    def instances(self, var) -> set:
        """The distinct (kernel, view) pairs evaluating `var`, given the choices so far."""
        pairs, chosen = set(), self.chosen
        for t, key in self.by_var.get(var, ()):
            parents = self.parents[t]
            for k in self.kernels[t]:
                if k.reaches(key, parents, chosen):
                    pairs.add((k.gid, key[1]))
        return pairs

    def choose(self, var):
        """Store `var`: its kernel, predicted, evaluates what lies below it from now on."""
        self.chosen.add(var)
        shape = var.aval.shape
        root = (var, identity_view(shape))
        gid = self._joined_by_reference(var, root)
        t = None if var in self.plan.stop else self.reference.get((shape, root))
        if t is not None:  # the expansion below `root` in t is the kernel's own
            self.kernels[t].append(_Kernel(t, gid, root))
            return
        t = _own_task(self.plan, var)  # (a frontier value: no task expanded below it)
        if t is not None:
            self.add(t, gid, root)

    def _joined_by_reference(self, var, root) -> int:
        """The kernel the value's own task will join, when kernels evaluate it at its own
        index over its shape: the first of them (the task reads nothing more than their
        tasks do, so it depends on none of them)."""
        shape = var.aval.shape
        joinable = [k.gid for t, key in self.by_var[var] if key == root and t.domain == shape
                    for k in self.kernels[t][:1] if k.live.get(key)]
        return min(joinable) if joinable else self._new()

    def _new(self) -> int:
        self.new_groups += 1
        return self.new_groups

    def add(self, t, gid, root=None):
        self.kernels[t] = [_Kernel(t, gid, root)]
        if t.expansion.parents is None:  # shared by the tasks sharing the expansion
            t.expansion.parents = _parents(t)
        self.parents[t] = t.expansion.parents
        for key in t.instances:
            self.by_var.setdefault(key[0], []).append((t, key))
            if not t.inline:
                self.reference.setdefault((t.domain, key), t)

    def heavy(self, var, pairs) -> bool:
        """Whether recomputing `var` at its instances `pairs` costs more than storing it."""
        n = len(pairs)
        if n > 1 and self.plan.cost_exceeds(var, RECOMPUTE_BUDGET // (n - 1)):
            return True
        return broadcast_heavy(var, [view for _, view in pairs], self.plan.cost_exceeds)


def broadcast_heavy(var, views, cost_exceeds) -> bool:
    """Whether a value evaluated at `views` is repeated enough, costs enough, and saves
    enough to store (module docstring); `cost_exceeds(var, limit)` as Plan's."""
    repeats = max((outer_repeats(view) for view in views), default=1)
    if repeats < REPEAT_MIN or not cost_exceeds(var, BROADCAST_COST):
        return False
    size = math.prod(var.aval.shape)
    limit = SAVED_MIN // max((repeats - 1) * size, 1)
    return limit <= BROADCAST_COST or cost_exceeds(var, limit)


def outer_repeats(view) -> int:
    """How many times a kernel evaluating a value at `view` computes each of its elements
    in loops LLVM cannot hoist it from: the product of the domain dims the value does not
    vary along, outside the innermost one it varies along."""
    varying = [k for k in range(len(view.box)) if any(coefs[k] for _, coefs in view.rows)]
    if not varying:
        return 1
    repeats = 1
    for k, (lo, hi) in enumerate(view.box[:max(varying)]):
        if k not in varying:
            repeats *= max(hi - lo, 1)
    return repeats


def to_store(plan, tasks, groups, group_of) -> tuple:
    """(chosen, rejected): the computed values to store, outermost first (see the
    module docstring), and the frontier values of an analysis round left computed.

    Below a frontier value left computed, the round has not seen every instance:
    the values there (`tainted`) wait for a round that expands through it.
    """
    sweep = _Sweep(plan, tasks, groups, group_of)
    users = plan.users
    chosen, rejected, tainted = [], set(), set()
    for eqn in reversed(plan.eqns):
        v = eqn.outs[0]
        if v not in plan.buffers and any(u in rejected or u in tainted for u in users.get(v, ())):
            tainted.add(v)
        if v not in sweep.by_var:
            continue
        pairs = sweep.instances(v)  # every instance's reach is settled, in order
        if v in plan.buffers or v in tainted:
            continue
        if sweep.heavy(v, pairs):
            sweep.choose(v)
            chosen.append(v)
        elif v in plan.stop:
            rejected.add(v)
    return chosen, rejected
