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
    if isinstance(v, str) and not v.isidentifier():
        return repr(v)  # quoted, so that the text parses back (ir/parser.py)
    return str(v)


def _has_body(v) -> bool:
    return isinstance(v, Graph) or (isinstance(v, tuple) and any(isinstance(g, Graph) for g in v))


def _body_param(k, v, namer, indent) -> str:
    bodies = [v] if isinstance(v, Graph) else list(v)
    pad = " " * (indent + 2)
    texts = [_format(b, namer, indent + 4) for b in bodies]
    if isinstance(v, Graph):
        return f"\n{pad}{k}={texts[0]}"
    return f"\n{pad}{k}=(" + "".join(f"\n{pad}  {t}" for t in texts) + f"\n{pad})"


def _params(eqn, namer, indent) -> str:
    items = sorted(eqn.params.items())
    plain = [f"{k}={_param(v)}" for k, v in items if not _has_body(v)]
    bodies = [_body_param(k, v, namer, indent) for k, v in items if _has_body(v)]
    if not plain and not bodies:
        return ""
    tail = f"\n{' ' * indent}" if bodies else ""
    return "[" + " ".join(plain) + "".join(bodies) + tail + "]"


def format_eqn(eqn, namer: Namer, indent: int = 4) -> str:
    params = _params(eqn, namer, indent)
    args = " ".join(namer.atom(a) for a in eqn.inputs)
    outs = " ".join(namer.binder(v) for v in eqn.outs)
    return f"{outs} = {eqn.prim.name}{params} {args}"


def _format(graph: Graph, namer: Namer, indent: int) -> str:
    consts = " ".join(namer.binder(v) for v in graph.constvars)
    ins = " ".join(namer.binder(v) for v in graph.invars)
    pad = " " * indent
    lines = [f"{{ lambda {consts + ' ; ' if consts else ''}{ins} . let"]
    lines += [pad + "  " + format_eqn(e, namer, indent + 2) for e in graph.eqns]
    lines.append(f"{pad}in ({', '.join(namer.atom(v) for v in graph.outvars)}) }}")
    for g in graph.guards:
        lines.append(f"{pad}guard {namer.atom(g.var)} == {np.asarray(g.expected).tolist()!r}  ({g.kind})")
    return "\n".join(lines)


def format_graph(graph: Graph, indent: int = 2, namer: Namer | None = None) -> str:
    """The graph as text; bodies of control flow print nested, with names unique
    across all scopes.  `namer` (filled while printing) maps each Var to its name."""
    return _format(graph, namer if namer is not None else Namer(), indent)
