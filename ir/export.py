"""Export a graph to networkx and to Graphviz DOT text."""
from __future__ import annotations

import networkx as nx

from .core import Graph, Literal
from .printer import Namer, _param


def to_networkx(graph: Graph) -> nx.DiGraph:
    """Nodes are values (named as the printer names them) with op, shape, dtype."""
    namer, g = Namer(), nx.DiGraph()
    for v in graph.constvars:
        g.add_node(namer(v), op="const", shape=v.aval.shape, dtype=str(v.aval.dtype))
    for v in graph.invars:
        g.add_node(namer(v), op="input", shape=v.aval.shape, dtype=str(v.aval.dtype))
    for eqn in graph.eqns:
        name = namer(eqn.out)
        params = {k: _param(p) for k, p in eqn.params.items()}
        g.add_node(name, op=eqn.prim.name, shape=eqn.out.aval.shape,
                   dtype=str(eqn.out.aval.dtype), params=params)
        for pos, a in enumerate(eqn.inputs):
            if not isinstance(a, Literal):
                g.add_edge(namer(a), name, operand=pos)
    for i, v in enumerate(graph.outvars):
        if not isinstance(v, Literal):
            g.nodes[namer(v)]["output"] = i
    return g


def to_dot(graph: Graph, name: str = "tracegrad") -> str:
    """Graphviz DOT text: boxes for inputs/constants, ellipses for operations."""
    g = to_networkx(graph)
    lines = [f"digraph {name} {{", "  rankdir=TB;"]
    for node, d in g.nodes(data=True):
        shape = "box" if d["op"] in ("input", "const") else "ellipse"
        style = ", peripheries=2" if "output" in d else ""
        label = f"{node}: {d['op']}\\n{d['dtype']}{list(d['shape'])}"
        lines.append(f'  "{node}" [label="{label}", shape={shape}{style}];')
    for a, b in g.edges():
        lines.append(f'  "{a}" -> "{b}";')
    lines.append("}")
    return "\n".join(lines)
