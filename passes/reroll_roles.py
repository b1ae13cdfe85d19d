"""Roles of a candidate run's operands, and how many iterations they hold for.

Iteration k of a run starting at `start` with period `p` is the equations
`start + k*p .. start + k*p + p - 1`; equation j of it reads operand i.  Its role
(module docstring of `reroll.py`) is read from iteration 1, and iterations 2, 3,
... are rolled while every operand keeps it.  Iteration 0 is peeled, so the
carries' initial values are the values iteration 0 made.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tracegrad.ir import Literal

from .cse import literal_key


@dataclass
class Run:
    """Iterations 1..length of the run at `start` roll into one scan."""

    start: int
    period: int
    length: int
    roles: list                                  # roles[j][i]: ("in"|"carry", j', out) or ("outer",)/("lit",)
    varying: set = field(default_factory=set)    # (j, i): a literal or constant that changes: xs
    slices: dict = field(default_factory=dict)   # j: (axis, step) of an x[t] slice whose start advances

    def eqn(self, eqns, k, j):
        return eqns[self.start + k * self.period + j]

    @property
    def reverse(self) -> bool:
        """The x[t] slices move backwards (`for t in reversed(range(n))`): a reverse scan."""
        return any(step < 0 for _, step in self.slices.values())

    def index(self, k) -> int:
        """Where iteration k (1..length) reads its xs and writes its ys."""
        return self.length - k if self.reverse else k - 1


def producers(graph) -> dict:
    """var -> (index of the equation that makes it, output position)."""
    return {v: (n, o) for n, e in enumerate(graph.eqns) for o, v in enumerate(e.outs)}


def _role(where, start, period, k, a):
    if isinstance(a, Literal):
        return ("lit",)
    q = where.get(a)
    if q is None or q[0] < start:
        return ("outer",)
    kq, jq = divmod(q[0] - start, period)
    if kq == k:
        return ("in", jq, q[1])
    if kq == k - 1:
        return ("carry", jq, q[1])
    return ("bad",)


def _same_atom(a, b) -> bool:
    if isinstance(a, Literal) or isinstance(b, Literal):
        return (isinstance(a, Literal) and isinstance(b, Literal)
                and literal_key(a) == literal_key(b))
    return a is b


class _Checker:
    """Checks iteration k of a run against iteration 1 (the roles)."""

    def __init__(self, graph, where, run):
        self.eqns, self.where, self.run = graph.eqns, where, run
        self.consts = set(graph.constvars)
        self.pending: set = set()

    def first(self) -> bool:
        """Read the roles from iteration 1; False where one cannot roll."""
        run = self.run
        for j in range(run.period):
            e = run.eqn(self.eqns, 1, j)
            run.roles.append([_role(self.where, run.start, run.period, 1, a) for a in e.inputs])
        return not any(r[0] == "bad" for roles in run.roles for r in roles)

    def holds(self, k) -> bool:
        """Whether iteration k plays the roles of iteration 1; the operands found
        to vary join `run.varying` only when it does."""
        self.pending = set()
        if not all(self._eqn_holds(k, j) for j in range(self.run.period)):
            return False
        self.run.varying |= self.pending
        return True

    def _eqn_holds(self, k, j) -> bool:
        run = self.run
        e, e1 = run.eqn(self.eqns, k, j), run.eqn(self.eqns, 1, j)
        for i, (a, role) in enumerate(zip(e.inputs, run.roles[j])):
            if role[0] in ("in", "carry"):
                if _role(self.where, run.start, run.period, k, a) != role:
                    return False
            elif not self._same_or_varying(j, i, a, e1.inputs[i], e.prim.name):
                return False
        return e.prim.name != "slice" or self._slice_holds(k, j, e, e1)

    def _same_or_varying(self, j, i, a, a1, prim) -> bool:
        """An outer operand is the same value each time, or a literal or constant
        array that may change (it becomes an xs input)."""
        if _same_atom(a, a1):
            return True
        if prim == "slice":
            return False  # x[t] reads one array; its start may advance (_slice_holds)
        if isinstance(a, Literal):
            ok = isinstance(a1, Literal)
        else:  # constants are made by no equation: outer in every iteration
            ok = a in self.consts and a1 in self.consts
        if ok:
            self.pending.add((j, i))
        return ok

    def _slice_holds(self, k, j, e, e1) -> bool:
        """`x[t]`: the starts are fixed, or advance by one fixed step on one axis of
        size 1 of an array defined before the run."""
        starts, starts1 = e.params["starts"], e1.params["starts"]
        if k == 2 and starts != starts1:
            step = _advance(starts1, starts, e.params["sizes"])
            if step is None or self.run.roles[j][0] != ("outer",):
                return False
            if self.run.slices and (step[1] < 0) != self.run.reverse:
                return False  # one scan reads all its xs in one direction
            self.run.slices[j] = step
        if j not in self.run.slices:
            return starts == starts1
        axis, delta = self.run.slices[j]
        want = list(starts1)
        want[axis] += (k - 1) * delta
        return tuple(starts) == tuple(want)


def _advance(starts1, starts2, sizes):
    """(axis, step) when the starts move on one axis of size 1."""
    moved = [d for d, (a, b) in enumerate(zip(starts1, starts2)) if a != b]
    if len(moved) != 1 or sizes[moved[0]] != 1:
        return None
    return moved[0], int(starts2[moved[0]] - starts1[moved[0]])


def _computes(eqns, run) -> bool:
    """A body that only moves data (slices and reshapes: reading back a stacked
    result) gains nothing from a loop."""
    return any(run.eqn(eqns, 1, j).prim.kind != "structural" for j in range(run.period))


def rolled_run(graph, where, start, period, trips) -> Run | None:
    """The run at (`start`, `period`), rolled while its roles hold (at most
    `trips - 1` iterations after the peeled one); None when iteration 1 cannot roll."""
    run = Run(start, period, 0, [])
    checker = _Checker(graph, where, run)
    if trips < 3 or not checker.first() or not _computes(graph.eqns, run):
        return None
    k = 2
    while k < trips and checker.holds(k):
        k += 1
    run.length = k - 1
    return run
