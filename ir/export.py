"""Export a graph to networkx and to Graphviz DOT text.

Nodes are values, named as the printer names them; an output's node has `output` (its
first position) and `outputs` (every position: a value returned twice), and a literal
output a node of its own (op "literal").  A control-flow equation
gives one node per output (attribute `result`); its bodies are exported too,
as the node attribute `bodies` ({param: networkx graph}: `cond_graph`, `branches[1]`, in
the printer's order, so that their values have the printer's names), and drawn as DOT
clusters labelled by their param.
"""
from __future__ import annotations

import networkx as nx

from .core import Graph, Literal
from .printer import Namer, _has_body, _param, body_params


def _add_eqn(g, eqn, namer):
    params = {k: _param(p) for k, p in eqn.params.items() if not _has_body(p)}
    bodies = {label: _graph(b, namer.body()) for label, b in body_params(eqn)}
    for i, out in enumerate(eqn.outs):
        name = namer(out)
        g.add_node(name, op=eqn.prim.name, shape=out.aval.shape, dtype=str(out.aval.dtype),
                   params=params)
        if eqn.prim.multiple_results:
            g.nodes[name]["result"] = i
        if bodies and i == 0:
            g.nodes[name]["bodies"] = bodies
        for pos, a in enumerate(eqn.inputs):
            if isinstance(a, Literal):
                continue
            src = namer(a)
            if g.has_edge(src, name):  # `mul a a`: one edge, every position it feeds
                g.edges[src, name]["operands"] += (pos,)
            else:
                g.add_edge(src, name, operand=pos, operands=(pos,))


def _graph(graph: Graph, namer: Namer) -> nx.DiGraph:
    g = nx.DiGraph()
    for v in graph.constvars:
        g.add_node(namer(v), op="const", shape=v.aval.shape, dtype=str(v.aval.dtype))
    for v in graph.invars:
        g.add_node(namer(v), op="input", shape=v.aval.shape, dtype=str(v.aval.dtype))
    for eqn in graph.eqns:
        _add_eqn(g, eqn, namer)
    for i, v in enumerate(graph.outvars):  # `output`: the first position, `outputs`: all
        if isinstance(v, Literal):
            g.add_node(f"literal{i}", op="literal", value=v.value.item(), shape=(),
                       dtype=str(v.aval.dtype))
            node = g.nodes[f"literal{i}"]
        else:
            node = g.nodes[namer(v)]
        node.setdefault("output", i)
        node["outputs"] = node.get("outputs", ()) + (i,)
    return g


def to_networkx(graph: Graph) -> nx.DiGraph:
    """Nodes are values (named as the printer names them) with op, shape, dtype."""
    return _graph(graph, Namer())


def _dot_nodes(g, lines, pad, clusters):
    for node, d in g.nodes(data=True):
        shape = "box" if d["op"] in ("input", "const") else "ellipse"
        style = ", peripheries=2" if "output" in d else ""
        label = f"{node}: {d['op']}\\n{d['dtype']}{list(d['shape'])}"
        lines.append(f'{pad}"{node}" [label="{label}", shape={shape}{style}];')
        for key, body in d.get("bodies", {}).items():
            clusters.append((f"{node}_{key}", f"{d['op']} {key}", body))
    for a, b in g.edges():
        lines.append(f'{pad}"{a}" -> "{b}";')


def _dot_graph(g, lines, pad):
    clusters = []
    _dot_nodes(g, lines, pad, clusters)
    for name, label, body in clusters:
        lines.append(f'{pad}subgraph "cluster_{name}" {{')
        lines.append(f'{pad}  label="{label}"; style=dashed;')
        _dot_graph(body, lines, pad + "  ")
        lines.append(f"{pad}}}")


def to_dot(graph: Graph, name: str = "tracegrad") -> str:
    """Graphviz DOT text: boxes for inputs/constants, ellipses for operations,
    dashed clusters for the bodies of loops and branches."""
    lines = [f"digraph {name} {{", "  rankdir=TB;"]
    _dot_graph(to_networkx(graph), lines, "  ")
    lines.append("}")
    return "\n".join(lines)
