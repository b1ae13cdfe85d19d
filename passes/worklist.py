"""The cleaning passes iterated to a fixed point, incrementally.

`clean(graph)` returns exactly the graph that running `simplify`,
`fold_constants`, `cse` and `dce` round after round returns (see
`manager.cleanup`), but after the first round each pass looks again only at
the equations whose context changed since it last looked at them.

Why that is exact.  Each pass is one forward sweep, and what it does at an
equation depends only on that equation and on what comes before it:

* simplify: the equation, the producers of its inputs and constant values
  (a rule that stopped at `MAX_REWRITES_PER_EQN` is retried next sweep);
* fold_constants: whether every input is a literal or a constant;
* cse: the equation's key and the keys of the other equations (the first
  occurrence is kept, the later one redirected);

and dce only on use counts.  An equation a pass has seen unchanged since gives
the same answer again, so the state keeps, per pass, the positions it must
look at (`dirty`) and a sweep visits just those, in graph order.  A rewrite
keeps its equation's position and a removed equation leaves a hole, so
positions stay in graph order throughout.  Uses are redirected eagerly (every
var knows which positions read it), which is what a sweep's lazy redirection
has done by the time it reaches the reader.  Dead equations stay until the
round's dce, as in the rounds: CSE may still keep one as the first occurrence.
A rule that adds equations (an `Expansion`) has no position to put them at:
the state then starts afresh from the graph, every position to visit again,
which is what the next sweep of the rounds does.
"""
from __future__ import annotations

import dataclasses
from collections import Counter

from tracegrad.ir import Eqn, Graph, Literal, Var

from .cse import ConstTable, eqn_key
from .simplify import (MAX_FOLDED_ELEMENTS, MAX_SWEEPS, Expansion, fold_eqn, folded_form,
                       rewrite_eqn)

SIMPLIFY, FOLD, CSE = 0, 1, 2
ALL_PASSES = (SIMPLIFY, FOLD, CSE)


class _Uses:
    """Who reads each var: positions of the equations (`users`) and a count of
    all reads, outputs and guards included (`count`); zero-count vars are
    collected in `unused` for dce."""

    def __init__(self):
        self.users: dict[Var, set] = {}
        self.count: dict[Var, int] = {}
        self.unused: set = set()

    @classmethod
    def of(cls, eqns, roots, droppable) -> "_Uses":
        """The uses in `eqns` and `roots`; the `droppable` vars nothing uses are unused."""
        uses = cls()
        users, count = uses.users, uses.count
        for i, e in enumerate(eqns):
            for a in e.inputs:
                if isinstance(a, Var):
                    users.setdefault(a, set()).add(i)
                    count[a] = count.get(a, 0) + 1
        for a in roots:
            uses.add(a)
        uses.unused = {v for v in droppable if v not in count}
        return uses

    def add(self, atom, pos=None):
        if isinstance(atom, Var):
            if pos is not None:
                self.users.setdefault(atom, set()).add(pos)
            self.count[atom] = self.count.get(atom, 0) + 1

    def remove(self, atom, pos):
        if isinstance(atom, Var):
            self.users[atom].discard(pos)
            self.count[atom] -= 1
            if not self.count[atom]:
                self.unused.add(atom)

    def move(self, var, target) -> set:
        """Every read of `var` now reads `target`; the positions that read it."""
        n = self.count.pop(var, 0)
        if isinstance(target, Var):
            self.count[target] = self.count.get(target, 0) + n
        positions = self.users.pop(var, set())
        if isinstance(target, Var):
            self.users.setdefault(target, set()).update(positions)
        return positions


class _State:
    """A graph being cleaned in place: equations by position, constants, uses,
    and per pass the positions still to visit.  Also the rules' context
    (`value`, `producer`), as `simplify._Context` is for one sweep."""

    def __init__(self, graph: Graph, max_elements: int):
        self.source, self.max_elements = graph, max_elements
        self.slots: list = list(graph.eqns)
        self.pos = {v: i for i, e in enumerate(self.slots) for v in e.outs}
        self.consts = dict(zip(graph.constvars, graph.constvals))
        self.outvars, self.guards = list(graph.outvars), list(graph.guards)
        roots = self.outvars + [g.var for g in self.guards]
        self.roots = set(roots)  # what a redirect must edit besides equations
        self.uses = _Uses.of(self.slots, roots, list(self.pos) + list(self.consts))
        # Per pass, one flag per position: visit it on the pass's next sweep.
        self.dirty = [bytearray(b"\1" * len(self.slots)) for _ in ALL_PASSES]
        self.keys: dict[tuple, int] = {}  # cse: key -> position of its first occurrence
        self.key_at: dict[int, tuple] = {}
        self.const_table, self.new_consts = ConstTable(), list(self.consts)
        self.unsettled = False  # simplify: a rule chain hit its bound this sweep
        # simplify: position -> the new equations an Expansion put before it.  They
        # have no position, so `clean` starts a fresh state from `graph()` at once.
        self.expansions: dict[int, tuple] = {}

    # -- the rules' context --------------------------------------------------------
    def value(self, atom):
        return atom.value if isinstance(atom, Literal) else self.consts.get(atom)

    def producer(self, atom, prim_name: str):
        i = self.pos.get(atom)
        eqn = self.slots[i] if i is not None else None
        return eqn if eqn is not None and eqn.prim.name == prim_name else None

    # -- edits -----------------------------------------------------------------
    def _mark(self, i: int, passes):
        for p in passes:
            self.dirty[p][i] = 1
        if CSE in passes:
            self._unkey(i)

    def _unkey(self, i: int):
        key = self.key_at.pop(i, None)
        if key is not None:
            del self.keys[key]

    def _producer_changed(self, var: Var):
        for q in self.uses.users.get(var, ()):
            self._mark(q, (SIMPLIFY, FOLD))

    def _set(self, i: int, eqn: Eqn, passes):
        """Equation `i` becomes `eqn` (same output var); `passes` look at it again."""
        for a in self.slots[i].inputs:
            self.uses.remove(a, i)
        for a in eqn.inputs:
            self.uses.add(a, i)
        self.slots[i] = eqn
        self._mark(i, passes)
        self._producer_changed(eqn.out)

    def _drop(self, i: int):
        """Remove equation `i`; its var is then unused, or a constant."""
        eqn = self.slots[i]
        for a in eqn.inputs:
            self.uses.remove(a, i)
        self.slots[i] = None
        for v in eqn.outs:
            del self.pos[v]
        self._unkey(i)

    def _redirect(self, var: Var, target):
        """Every use of `var` reads `target` instead (an atom defined before them)."""
        for q in self.uses.move(var, target):
            e = self.slots[q]
            inputs = [target if a is var else a for a in e.inputs]
            self.slots[q] = Eqn(e.prim, inputs, e.params, e.outs, e.src)
            self._mark(q, ALL_PASSES)
        if var in self.roots:
            self.roots.discard(var)
            self.roots.add(target)
            self.outvars = [target if a is var else a for a in self.outvars]
            self.guards = [dataclasses.replace(g, var=target) if g.var is var else g
                           for g in self.guards]

    def _sweep(self, p: int, visit) -> bool:
        """Visit the dirty positions of pass `p` in graph order.  A visit marks only
        later positions (the readers of a value), which this sweep then reaches;
        a position re-marked while visited waits for the next sweep."""
        flags, changed = self.dirty[p], False
        i = flags.find(1)
        while i >= 0:
            flags[i] = 0
            if self.slots[i] is not None:
                changed = visit(i) or changed
            i = flags.find(1, i + 1)
        return changed

    # -- simplify --------------------------------------------------------------
    def simplify(self, counts: Counter, max_sweeps: int = MAX_SWEEPS) -> bool:
        changed = False
        for _ in range(max_sweeps):
            self.unsettled = False
            fired = self._sweep(SIMPLIFY, lambda i: self._simplify_at(i, counts))
            changed = changed or fired
            if not self.unsettled:  # a further sweep would fire no rule
                break
            if self.expansions:  # new equations wait for a fresh state: a further sweep
                break            # could redirect a value they read (they have no position)
        return changed

    def _simplify_at(self, i: int, counts: Counter) -> bool:
        eqn = self.slots[i]
        result, settled = rewrite_eqn(eqn, self, counts)
        if not settled:  # the next sweep goes on with it
            self.dirty[SIMPLIFY][i] = 1
            self.unsettled = True
        if result is eqn:
            return False
        if isinstance(result, Expansion):
            self.expansions[i] = result.helpers
            result = result.eqn
        if isinstance(result, Eqn):
            self._set(i, result, (FOLD, CSE))
        else:
            self._redirect(eqn.out, result)
            self._drop(i)
        return True

    # -- fold_constants ----------------------------------------------------------
    def fold(self) -> bool:
        return self._sweep(FOLD, self._fold_at)

    def _fold_at(self, i: int) -> bool:
        eqn = self.slots[i]
        if eqn.prim.multiple_results:  # control flow: never run a loop at compile time
            return False
        value = fold_eqn(eqn, self.consts, self.max_elements)
        if value is None:
            return False
        form = folded_form(eqn, value)
        if isinstance(form, Eqn):
            self._set(i, form, (SIMPLIFY, CSE))
        elif isinstance(form, Literal):
            self._redirect(eqn.out, form)
            self._drop(i)
        else:
            self._drop(i)
            self.consts[eqn.out] = value
            self.new_consts.append(eqn.out)
            self._producer_changed(eqn.out)
        return True

    # -- cse ---------------------------------------------------------------------
    def cse(self) -> bool:
        changed = False
        for var in self.new_consts:  # the older constants are already distinct
            first = self.const_table.first_equal(var, self.consts[var])
            if first is not None:
                del self.consts[var]
                self._redirect(var, first)
                changed = True
        self.new_consts = []
        return self._sweep(CSE, self._cse_at) or changed

    def _cse_at(self, i: int) -> bool:
        eqn = self.slots[i]
        if eqn.prim.multiple_results:  # control flow (bodies are not keyed): kept as is
            return False
        key = eqn_key(eqn)
        j = self.keys.get(key)
        if j is None:
            self.keys[key], self.key_at[i] = i, key
            return False
        if j < i:
            self._redirect(eqn.out, self.slots[j].out)
            self._drop(i)
            return True
        # j has not changed since it was keyed, and comes later: i is the first occurrence.
        later = self.slots[j]
        self._redirect(later.out, eqn.out)
        self._drop(j)
        self.keys[key], self.key_at[i] = i, key
        return True

    # -- dce ---------------------------------------------------------------------
    def dce(self) -> bool:
        changed, uses = False, self.uses
        while uses.unused:
            var = uses.unused.pop()
            if uses.count.get(var):
                continue
            if var in self.pos:
                if any(uses.count.get(v) for v in self.slots[self.pos[var]].outs):
                    continue  # another output of a multi-output equation is read
                self._drop(self.pos[var])
                changed = True
            elif var in self.consts:
                del self.consts[var]
                self.const_table.remove(var)
                changed = True
        return changed

    def _eqns(self) -> list:
        eqns = []
        for i, e in enumerate(self.slots):
            if e is not None:
                eqns.extend(self.expansions.get(i, ()))
                eqns.append(e)
        return eqns

    def graph(self) -> Graph:
        return self.source.replace(eqns=self._eqns(),
                                   constvars=list(self.consts),
                                   constvals=list(self.consts.values()),
                                   outvars=self.outvars, guards=self.guards)


def clean(graph: Graph, max_rounds: int, max_elements: int = MAX_FOLDED_ELEMENTS) -> Graph:
    """Rounds of simplify, fold_constants, cse and dce until a round changes
    nothing (at most `max_rounds`); `graph` itself when the first changes nothing."""
    state, counts, changed_any = _State(graph, max_elements), Counter(), False
    for _ in range(max_rounds):
        changed = state.simplify(counts)
        while state.expansions:  # equations were added: positions start afresh
            state = _State(state.graph(), max_elements)
            state.simplify(counts)
        changed = state.fold() or changed
        changed = state.cse() or changed
        changed = state.dce() or changed
        if not changed:
            break
        changed_any = True
    return state.graph() if changed_any else graph
