"""Helpers of the control-flow derivative rules: building closed graphs (bodies)
from Python functions and other graphs, and the activity fixed point of loops.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import GraphBuilder, ops
from tracegrad.ir.core import Graph, is_float
from tracegrad.ir.interpreter import read, write
from tracegrad.ir.primitives import PRIMITIVES

from . import autodiff
from .dce import dce


def zeros(builder, aval):
    """Zeros of `aval` recorded in `builder` (a literal for scalars)."""
    scalar = np.zeros((), aval.dtype)
    if aval.shape == ():
        return scalar
    return builder.process(PRIMITIVES["broadcast"], [scalar], {"shape": aval.shape})


def inline(builder, graph, args):
    """Record `graph`'s equations into `builder` applied to `args`; its outputs.

    Every equation is recorded (none is evaluated eagerly, so no loop runs
    while graphs are built)."""
    env = {v: builder.value_cls(builder, builder.const(c))
           for v, c in zip(graph.constvars, graph.constvals)}
    env.update(zip(graph.invars, args))
    for eqn in graph.eqns:
        write(env, eqn, builder.process(eqn.prim, [read(env, a) for a in eqn.inputs], eqn.params))
    return [read(env, v) for v in graph.outvars]


def graph_of(fn, in_avals) -> Graph:
    """The closed graph of `fn(*inputs) -> list of outputs`, cleaned by DCE."""
    builder = GraphBuilder(record_source=False)
    ins = [builder.new_input(a) for a in in_avals]
    graph = builder.build(fn(builder, *ins))
    assert not builder.captured, "a body read a value of its enclosing graph"
    return dce(graph)


def relabel(graph: Graph) -> Graph:
    """A copy of `graph` with fresh Vars (bodies never share Vars with other graphs)."""
    return graph_of(lambda b, *ins: inline(b, graph, ins), graph.in_avals)


def permuted(graph: Graph, in_order, out_order) -> Graph:
    """`graph` with its inputs and outputs reordered (lists of indices)."""
    return graph.replace(invars=[graph.invars[i] for i in in_order],
                         outvars=[graph.outvars[i] for i in out_order])


def outputs(graph: Graph, keep) -> Graph:
    """`graph` returning only the outputs at indices `keep`, dead code removed."""
    return dce(graph.replace(outvars=[graph.outvars[i] for i in keep]))


def flags(values, n):
    """Which of `values` (tangents or cotangents, None = zero) are nonzero."""
    return [v is not None for v in values] if values is not None else [False] * n


def where(mask, items):
    """The items whose mask entry is true."""
    return [x for f, x in zip(mask, items) if f]


def spread(flags, items, fill=None):
    """Inverse of `where`: items placed at the flagged positions, `fill` elsewhere."""
    it = iter(items)
    return [next(it) if f else fill for f in flags]


def fixed_point(body, consts_on, carry_on, xs_on, nk):
    """Carries whose tangent/cotangent may be nonzero, and the active body outputs."""
    carry_on = list(carry_on)
    while True:
        out_on = autodiff.active_outputs(body, consts_on + carry_on + xs_on)
        grown = [a or b for a, b in zip(carry_on, out_on[:nk])]
        if grown == carry_on:
            return carry_on, out_on
        carry_on = grown


def float_flags(values, mask):
    """`mask`, true only where the value is a float (only floats carry derivatives)."""
    return [bool(f) and is_float(ops.dtype(v)) for v, f in zip(values, mask)]


def split3(values, a, b):
    """`values` cut into its first a, next b, and the rest (an equation's operand roles)."""
    values = list(values)
    return values[:a], values[a:a + b], values[a + b:]
