"""Dead-code elimination: keep only the work that an output or a guard reads.

Live roots are the output atoms and the guard vars (a guard is checked on
every call, so the value it reads must still be computed).  Equations are pure,
so any equation whose result is not live can be dropped; so can constants that
no live equation, output or guard reads.  Inputs are never dropped: the
graph's signature stays what the caller binds.

>>> import numpy as np
>>> from tracegrad.ir import GraphBuilder, ShapedArray, ops
>>> b = GraphBuilder()
>>> x = b.new_input(ShapedArray((3,), np.float32))
>>> _unused = ops.exp(x)
>>> g = b.build([ops.sin(x)])
>>> len(g.eqns), len(dce(g).eqns)
(2, 1)
"""
from __future__ import annotations

from tracegrad.ir import Graph, Var


def live_roots(graph: Graph) -> set:
    """The vars the graph's caller observes: outputs and guard vars."""
    atoms = list(graph.outvars) + [g.var for g in graph.guards]
    return {a for a in atoms if isinstance(a, Var)}


def live_eqns(graph: Graph) -> tuple[list, set]:
    """Walk backwards once; an equation is live iff one of its outputs is read later.

    A primitive with a `dce_rule` (control flow) may drop its unused outputs
    and the inputs only they needed; its bodies are cleaned by the rule.
    """
    live = live_roots(graph)
    kept = []
    for eqn in reversed(graph.eqns):
        used = [v in live for v in eqn.outs]
        if not any(used):
            continue
        reads = eqn.inputs
        if eqn.prim.dce_rule is not None:
            eqn, used_inputs = eqn.prim.dce_rule(eqn, used)
            reads = [a for a, u in zip(eqn.inputs, used_inputs) if u]
        kept.append(eqn)
        live.update([a for a in reads if isinstance(a, Var)])
    kept.reverse()
    return kept, live


def dce(graph: Graph) -> Graph:
    """Drop equations and constants that no output or guard depends on.

    Returns `graph` itself when nothing is dead, so a fixed-point driver can
    tell "no change" by identity.
    """
    eqns, live = live_eqns(graph)
    keep_const = [v in live for v in graph.constvars]
    same = len(eqns) == len(graph.eqns) and all(a is b for a, b in zip(eqns, graph.eqns))
    if same and all(keep_const):
        return graph
    constvars = [v for v, k in zip(graph.constvars, keep_const) if k]
    constvals = [c for c, k in zip(graph.constvals, keep_const) if k]
    return graph.replace(eqns=eqns, constvars=constvars, constvals=constvals)


from . import dce_control  # noqa: E402,F401  (registers the control-flow DCE rules)
