"""The planning state: which values are stored, and in which buffers.

Inputs, constants and outputs are buffers from the start, and so are the
results of reductions, dots and concatenations (always stored), except a
reduction absorbed by the reduction of the same kind that alone reads it.
Planning adds temps (`Plan.store`) until every task expands and no value is
recomputed beyond the budget.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir.core import Var
from tracegrad.passes.dce import live_eqns
from tracegrad.passes.identities import VALUE_IDENTITY_PRIMS
from tracegrad.passes.kernels import Buffer

from .body import const


def _use_counts(eqns, outvars) -> dict:
    uses = {}
    for atom in [a for e in eqns for a in e.inputs] + list(outvars):
        if isinstance(atom, Var):
            uses[atom] = uses.get(atom, 0) + 1
    return uses


def _users(eqns) -> dict:
    out = {}
    for e in eqns:
        for a in e.inputs:
            if isinstance(a, Var):
                out.setdefault(a, []).extend(e.outs)
    return out


def always_stored(eqn) -> bool:
    return eqn.prim.kind in ("reduce", "dot", "control", "extern") or eqn.prim.name == "concatenate"


def op_cost(eqn) -> int:
    """The per-element cost of evaluating `eqn` in a kernel body."""
    return 0 if eqn.prim.name in VALUE_IDENTITY_PRIMS else eqn.prim.cost


class Plan:
    """The planning state: which vars are stored, and in which buffers."""

    def __init__(self, graph):
        self.graph = graph
        self.eqns = live_eqns(graph)[0]
        self.producer = {v: e for e in self.eqns for v in e.outs}
        self.uses = _use_counts(self.eqns, graph.outvars)
        self.buffers = {}  # Var -> Buffer
        self.inputs = [Buffer(f"in{i}", v.aval.shape, v.aval.dtype, "input", index=i)
                       for i, v in enumerate(graph.invars)]
        self.buffers.update(zip(graph.invars, self.inputs))
        for v, val in zip(graph.constvars, graph.constvals):
            self.buffers[v] = Buffer("c", v.aval.shape, v.aval.dtype, "const",
                                     value=np.asarray(val, v.aval.dtype))
        self.aliases = set()  # outputs that are reshapes of a stored value: no task of their own
        self.outputs, self.copies = self._output_buffers(graph.outvars)
        self.absorbed = self._absorbed_reductions()
        self._mask, self._uniform, self._literals = None, {}, {}
        self.stop = set()  # an analysis round's values that expansions do not enter
        # Per epoch (the last one open): the vars whose status (stored, in `stop`)
        # changed, and apart from them the vars of `stop` that were stored (promoted).
        # An expansion remembers the vars it consulted and its epoch, so a later round
        # reuses it while they kept their status (`tasks.expand_task`).
        self._changes, self._promoted = [set()], [set()]
        self._reserved = {}  # var in `stop` -> the buffer it gets if stored
        self.expansions = {}  # tasks.expansion_key -> tasks.Expansion
        self.partners = {}  # buffer -> its writer's kernel last round (`combine.py`)
        self.index_maps = {}  # (view, shape, domain, buffer shape) -> a load's IndexMap
        self._within = set()  # (var, limit): its subtree costs no more than limit
        self.elementwise = {}  # eqn -> expand.Elementwise
        self.users = _users(self.eqns)  # var -> the vars of the equations reading it
        for e in self.eqns:
            for v in e.outs:
                if v not in self.buffers and v not in self.absorbed and always_stored(e):
                    self.store(v)

    def _output_buffers(self, outvars):
        """One fresh buffer per output; the (buffer, atom) pairs that need a copy store."""
        outputs, copies = [], []
        for i, atom in enumerate(outvars):
            buf = Buffer(f"out{i}", atom.aval.shape, atom.aval.dtype, "output", index=i)
            outputs.append(buf)
            if isinstance(atom, Var) and atom in self.producer and atom not in self.buffers:
                self.buffers[atom] = buf
                src = self._reshaped_stored(atom)
                if src is not None:  # e.g. a dot writes straight into the output's memory
                    self.buffers[src] = buf
                    self.aliases.add(atom)
            else:
                copies.append((buf, atom))
        return outputs, copies

    def _reshaped_stored(self, var):
        """The not yet stored reduction, dot or concatenation that `var` only reshapes, if any."""
        if self.producer[var].prim.name != "reshape":
            return None
        while (isinstance(var, Var) and var in self.producer
               and self.producer[var].prim.name == "reshape"):
            var = self.producer[var].inputs[0]
        if (isinstance(var, Var) and var in self.producer and var not in self.buffers
                and always_stored(self.producer[var])):
            return var
        return None

    def _absorbed_reductions(self) -> set:
        """Reductions read only by a reduction of the same kind (it then reduces both)."""
        absorbed = set()
        for e in self.eqns:
            x = e.inputs[0] if e.prim.kind == "reduce" else None
            inner = self.producer.get(x) if x is not None else None
            if inner is not None and inner.prim is e.prim and self.uses[x] == 1 \
                    and x not in self.buffers:
                absorbed.add(x)
        return absorbed

    def store(self, var):
        if var in self.buffers:
            raise RuntimeError(f"fusion planning asked twice to store {var!r}")
        if var in self.stop:  # expansions loaded it from its reserved buffer already
            self.buffers[var] = self.frontier_buffer(var)
            self._promoted[-1].add(var)
        else:
            self.buffers[var] = Buffer("t", var.aval.shape, var.aval.dtype, "temp")
            self._changes[-1].add(var)

    def frontier_buffer(self, var):
        """The buffer a value of `stop` will have if stored: expansions load it from
        there, so a stored frontier value changes nothing in their bodies."""
        buf = self._reserved.get(var)
        if buf is None:
            buf = self._reserved[var] = Buffer("t", var.aval.shape, var.aval.dtype, "temp")
        return buf

    def set_stop(self, stop):
        """Make `stop` the values expansions do not enter."""
        self._changes[-1].update(v for v in self.stop ^ stop if v not in self.buffers)
        self.stop = stop

    def epoch(self) -> int:
        """The current epoch: status changes from now on are in epochs >= it."""
        if self._changes[-1] or self._promoted[-1]:
            self._changes.append(set())
            self._promoted.append(set())
        return len(self._changes) - 1

    def changed_since(self, epoch, vars_) -> bool:
        """Whether any of `vars_` changed status in `epoch` or later (promotions aside)."""
        return not all(vars_.isdisjoint(c) for c in self._changes[epoch:])

    def promoted_since(self, epoch, var) -> bool:
        """Whether `var`, then in `stop`, was stored in `epoch` or later."""
        return any(var in p for p in self._promoted[epoch:])

    def literal(self, lit):
        """The Const a Literal operand is in kernel bodies."""
        c = self._literals.get(lit)
        if c is None:
            c = self._literals[lit] = const(lit.value, lit.aval.dtype)
        return c

    def mask_buffer(self):
        if self._mask is None:
            self._mask = Buffer("mask", (), np.dtype(np.bool_), "const", value=np.array(True))
        return self._mask

    def is_mask(self, buf):
        return buf is self._mask

    def uniform(self, buf):
        """The Const every element of a constant buffer holds (bit for bit), or None."""
        if buf.kind != "const" or buf.size == 0 or buf is self._mask:
            return None
        if id(buf) not in self._uniform:
            raw = np.ascontiguousarray(buf.value).tobytes()
            size = np.dtype(buf.dtype).itemsize
            same = raw == raw[:size] * buf.size
            self._uniform[id(buf)] = const(buf.value.reshape(-1)[0], buf.dtype) if same else None
        return self._uniform[id(buf)]

    # -- the recompute policy's measure -------------------------------------------
    def cost_exceeds(self, var, limit) -> bool:
        """Whether the cost of `var`'s subtree (down to buffers) is above `limit`; it
        stops counting there, so a long subtree costs no more to ask about than a short one.
        Storing values only shrinks subtrees: a subtree within a limit stays within it."""
        if (var, limit) in self._within:
            return False
        if self._cost_exceeds(var, limit):
            return True
        self._within.add((var, limit))
        return False

    def _cost_exceeds(self, var, limit) -> bool:
        seen, stack, total = set(), [var], 0
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            total += op_cost(self.producer[v])
            if total > limit:
                return True
            stack.extend(a for a in self.producer[v].inputs
                         if isinstance(a, Var) and a not in self.buffers and a not in seen)
        return False
