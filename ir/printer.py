"""jaxpr-style printing: `{ lambda consts ; inputs . let eqns in (outs) }`.

Names are generated in order of first appearance (a, b, ..., z, ba, ...), so
the text of a graph is stable across runs and usable in golden tests.
"""
from __future__ import annotations

import numpy as np

from .core import Graph, Literal, short_dtype


def _name(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    s = ""
    while True:
        s = letters[i % 26] + s
        i //= 26
        if i == 0:
            return s


class Namer:
    def __init__(self):
        self.names = {}

    def __call__(self, var) -> str:
        if var not in self.names:
            self.names[var] = _name(len(self.names))
        return self.names[var]

    def atom(self, a) -> str:
        if isinstance(a, Literal):
            v = a.value.item()
            return f"{v!r}:{short_dtype(a.aval.dtype)}[]"
        return self(a)

    def binder(self, var) -> str:
        return f"{self(var)}:{var.aval}"


def _param(v) -> str:
    if isinstance(v, np.dtype):
        return short_dtype(v)
    if isinstance(v, tuple):
        return "(" + ",".join(_param(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


def format_eqn(eqn, namer: Namer) -> str:
    params = ""
    if eqn.params:
        params = "[" + " ".join(f"{k}={_param(v)}" for k, v in sorted(eqn.params.items())) + "]"
    args = " ".join(namer.atom(a) for a in eqn.inputs)
    return f"{namer.binder(eqn.out)} = {eqn.prim.name}{params} {args}"


def format_graph(graph: Graph, indent: int = 2) -> str:
    namer = Namer()
    consts = " ".join(namer.binder(v) for v in graph.constvars)
    ins = " ".join(namer.binder(v) for v in graph.invars)
    pad = " " * indent
    lines = [f"{{ lambda {consts + ' ; ' if consts else ''}{ins} . let"]
    lines += [pad + "  " + format_eqn(e, namer) for e in graph.eqns]
    lines.append(f"{pad}in ({', '.join(namer.atom(v) for v in graph.outvars)}) }}")
    for g in graph.guards:
        lines.append(f"{pad}guard {namer.atom(g.var)} == {np.asarray(g.expected).tolist()!r}  ({g.kind})")
    return "\n".join(lines)
