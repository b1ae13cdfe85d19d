"""Inline `custom_call` equations: once a graph is differentiated, a function's
custom derivative rules have served, and its primal body `fun` replaces the call
(so that cleaning, fusion and codegen see ordinary equations).  Bodies of control
flow are inlined too.  Returns the graph itself when it holds no call.

>>> import numpy as np
>>> import tracegrad as tg
>>> f = tg.custom_vjp(lambda x: np.sin(x) * 2.0)
>>> f.defvjp(lambda x: (f(x), np.cos(x)), lambda c, g: (2.0 * c * g,))
>>> g = tg.trace(f)(np.ones(3)).graph
>>> [e.prim.name for e in g.eqns], [e.prim.name for e in inline_calls(g).eqns]
(['custom_call'], ['sin', 'mul'])
"""
from __future__ import annotations

from tracegrad.ir import Eqn, Graph, Literal, Var
from tracegrad.ir.core import map_subgraphs, subgraphs

CALL = "custom_call"


def _has_call(graph: Graph) -> bool:
    return any(e.prim.name == CALL or any(_has_call(b) for b in subgraphs(e))
               for e in graph.eqns)


def inline_calls(graph: Graph) -> Graph:
    """`graph` with every custom_call replaced by its `fun` (module docstring)."""
    if not _has_call(graph):
        return graph
    subst, eqns = {}, []
    consts, vals = list(graph.constvars), list(graph.constvals)

    def read(a):
        return a if isinstance(a, Literal) else subst.get(a, a)
    for eqn in graph.eqns:
        eqn = map_subgraphs(eqn, inline_calls)
        inputs = [read(a) for a in eqn.inputs]
        if eqn.prim.name != CALL:
            eqns.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outs, eqn.src))
            continue
        fun = inline_calls(eqn.params["fun"])
        outs = _splice(fun, inputs, eqns, consts, vals, eqn.src)
        subst.update(zip(eqn.outs, outs))
    guards = [g if isinstance(g.var, Literal) or g.var not in subst
              else type(g)(read(g.var), g.expected, g.kind, g.src) for g in graph.guards]
    return Graph(graph.invars, consts, vals, eqns, [read(v) for v in graph.outvars], guards)


def _splice(fun: Graph, inputs, eqns, consts, vals, src) -> list:
    """Append `fun`'s equations (fresh vars, reading `inputs`); its outputs' atoms."""
    env = dict(zip(fun.invars, inputs))
    for var, val in zip(fun.constvars, fun.constvals):
        env[var] = Var(var.aval)
        consts.append(env[var])
        vals.append(val)

    def read(a):
        return a if isinstance(a, Literal) else env[a]
    for e in fun.eqns:
        outs = [Var(v.aval) for v in e.outs]
        env.update(zip(e.outs, outs))
        eqns.append(Eqn(e.prim, [read(a) for a in e.inputs], e.params, outs, e.src or src))
    return [read(v) for v in fun.outvars]
