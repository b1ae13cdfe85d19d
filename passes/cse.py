"""Common-subexpression elimination, and the use-redirection helper the
cleaning passes share.

Two equations are the same computation when they apply the same primitive
with the same params to the same inputs.  Inputs compare as Vars by identity
and as Literals by dtype and bytes: so `-0.0` and `0.0` stay different
(`1/-0.0` is `-inf`), while a NaN literal equals itself.  Identical constants
(same dtype, shape and bytes) merge too.  The later duplicate is never deleted here, only its uses are
redirected to the first occurrence; DCE removes what became unused.

>>> import numpy as np
>>> from tracegrad.ir import GraphBuilder, ShapedArray, ops
>>> b = GraphBuilder()
>>> x = b.new_input(ShapedArray((3,), np.float32))
>>> g = b.build([ops.add(ops.sin(x), ops.sin(x))])
>>> len(g.eqns), len(cse(g).eqns)
(3, 2)
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from tracegrad.ir import Eqn, Graph, Literal, Var


class Redirects:
    """Values replaced by an equivalent atom that is defined earlier.

    Invariant: every target is already resolved when it is recorded (it was
    read through `atom` first), so one lookup resolves any chain.
    """

    def __init__(self):
        self.map: dict[Var, object] = {}

    def __len__(self):
        return len(self.map)

    def set(self, var: Var, target):
        self.map[var] = self.atom(target)

    def atom(self, a):
        return self.map.get(a, a) if isinstance(a, Var) else a

    def eqn(self, eqn: Eqn) -> Eqn:
        """`eqn` with redirected inputs; a new Eqn so the input graph is untouched."""
        inputs = [self.atom(a) for a in eqn.inputs]
        if all(a is b for a, b in zip(inputs, eqn.inputs)):
            return eqn
        return dataclasses.replace(eqn, inputs=inputs)

    def finish(self, graph: Graph, eqns: list, **changes) -> Graph:
        """The rewritten graph: new equations, outputs and guards redirected."""
        outvars = [self.atom(a) for a in graph.outvars]
        guards = [g if self.atom(g.var) is g.var else dataclasses.replace(g, var=self.atom(g.var))
                  for g in graph.guards]
        return graph.replace(eqns=eqns, outvars=outvars, guards=guards, **changes)


def literal_key(lit: Literal) -> tuple:
    """Literals are equal iff dtype and bytes are: -0.0 != 0.0, NaN == same NaN."""
    return ("lit", lit.aval.dtype, lit.value.tobytes())


def _freeze(v):
    """A hashable, type-exact key for a param value (1 vs True vs 1.0 differ); numbers
    by their bytes, so -0.0 and 0.0 differ and a NaN equals itself."""
    if isinstance(v, (tuple, list)):
        return (type(v).__name__,) + tuple(_freeze(x) for x in v)
    if isinstance(v, (np.ndarray, np.generic)):
        return (type(v).__name__, v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, float):
        return ("float", np.float64(v).tobytes())
    return (type(v).__name__, v)


def eqn_key(eqn: Eqn) -> tuple:
    inputs = tuple([literal_key(a) if isinstance(a, Literal) else a for a in eqn.inputs])
    params = tuple(sorted([(k, _freeze(v)) for k, v in eqn.params.items()])) if eqn.params else ()
    return (eqn.prim.name, params, inputs)


def _raw_bytes(val: np.ndarray) -> np.ndarray:
    """The array's bytes as a flat uint8 view (no copy when already contiguous)."""
    return np.ascontiguousarray(val).reshape(-1).view(np.uint8)


class ConstTable:
    """Constants by dtype, shape and bytes: the first of each kind is the one kept."""

    def __init__(self):
        self.groups: dict[tuple, list] = {}
        self.group_of: dict[Var, tuple] = {}

    def first_equal(self, var: Var, val) -> Var | None:
        """An earlier constant with `val`'s bytes; if there is none, `var` is recorded."""
        raw = _raw_bytes(np.asarray(val))
        key = (val.dtype.str, val.shape, hashlib.sha1(raw).digest())
        group = self.groups.setdefault(key, [])
        # The digest only narrows the search; the bytes decide.
        first = next((v for v, r in group if np.array_equal(r, raw)), None)
        if first is None:
            group.append((var, raw))
            self.group_of[var] = key
        return first

    def remove(self, var: Var):
        group = self.groups[self.group_of.pop(var)]
        group[:] = [(v, r) for v, r in group if v is not var]


def _merge_constants(graph: Graph, redirects: Redirects) -> tuple[list, list]:
    """Keep the first of each group of byte-identical constants."""
    table = ConstTable()
    constvars, constvals = [], []
    for var, val in zip(graph.constvars, graph.constvals):
        first = table.first_equal(var, val)
        if first is not None:
            redirects.set(var, first)
            continue
        constvars.append(var)
        constvals.append(val)
    return constvars, constvals


def cse(graph: Graph) -> Graph:
    """Merge repeated equations and identical constants (see module docstring).

    Returns `graph` itself when nothing merges.
    """
    redirects = Redirects()
    constvars, constvals = _merge_constants(graph, redirects)
    first: dict[tuple, Var] = {}
    eqns = []
    for eqn in graph.eqns:
        eqn = redirects.eqn(eqn)
        key = eqn_key(eqn)
        if key in first:
            redirects.set(eqn.out, first[key])
            continue
        first[key] = eqn.out
        eqns.append(eqn)
    if not redirects:
        return graph
    return redirects.finish(graph, eqns, constvars=constvars, constvals=constvals)
