"""The reference interpreter: evaluates a graph with the numpy implementations (through
`Primitive.run`, so with the native eager kernels where the facade installed them, exactly
as eager tensors compute: docs/eager.md).

It is the oracle every later stage is checked against.  `eval_graph_bind`
evaluates through `ops.bind` instead, which inlines a graph into whatever
trace its arguments belong to (used to compose transformations).
"""
from __future__ import annotations

import numpy as np

from . import ops
from .core import Graph, Literal


def read(env, atom):
    return atom.value if isinstance(atom, Literal) else env[atom]


def eval_eqns(eqns, env, partial=False):
    """Evaluate `eqns` in order into `env` (Var -> array), skipping known values; with
    `partial`, also those reading a value `env` lacks (theirs stay unknown)."""
    for eqn in eqns:
        if eqn.outs[0] in env:
            continue
        if partial and any(not isinstance(a, Literal) and a not in env for a in eqn.inputs):
            continue
        args = [read(env, a) for a in eqn.inputs]
        write(env, eqn, eqn.prim.run(*args, **eqn.params))  # as eager: native kernel or impl
    return env


def write(env, eqn, result):
    """Bind an equation's result (a list for multi-output primitives) to its outputs."""
    if eqn.prim.multiple_results:
        env.update(zip(eqn.outs, result))
    else:
        env[eqn.outs[0]] = result


def _bind_inputs(graph: Graph, args):
    if len(args) != len(graph.invars):
        raise TypeError(f"graph takes {len(graph.invars)} inputs, got {len(args)}")
    env = dict(zip(graph.constvars, graph.constvals))
    env.update(zip(graph.invars, args))
    return env


def eval_graph(graph: Graph, *args, with_guards=False):
    """Evaluate with numpy; returns the list of outputs (and guard values if asked)."""
    env = _bind_inputs(graph, [np.asarray(a) for a in args])
    eval_eqns(graph.eqns, env)
    outs = [np.asarray(read(env, v)) for v in graph.outvars]
    if with_guards:
        return outs, [np.asarray(read(env, g.var)) for g in graph.guards]
    return outs


def eval_graph_bind(graph: Graph, *args, with_guards=False, into=None):
    """Evaluate through `ops.bind`: the graph is re-applied in the caller's trace.

    With `into` (a trace), an equation that reads no traced value is recorded in
    `into` rather than evaluated with numpy: a gradient's seed broadcast to an
    input's shape then stays an equation (constant folding, which bounds what it
    folds, decides later) instead of entering `into` as a captured array.
    """
    env = _bind_inputs(graph, args)
    for eqn in graph.eqns:
        inputs = [read(env, a) for a in eqn.inputs]
        if into is not None and ops.find_trace(inputs) is None:
            write(env, eqn, into.process(eqn.prim, inputs, eqn.params))
        else:
            write(env, eqn, ops.bind(eqn.prim.name, *inputs, **eqn.params))
    outs = [read(env, v) for v in graph.outvars]
    if with_guards:
        return outs, [read(env, g.var) for g in graph.guards]
    return outs


def apply_graph(graph: Graph, inputs) -> list:
    """`graph` applied to `inputs`: evaluated with numpy when none is boxed, otherwise
    inlined into the inputs' trace (eager tensors record autograd, traced values
    record equations).  A guard of `graph` whose value is traced becomes a guard of
    the outer trace: the inner program's decision binds the outer one."""
    trace = ops.find_trace(inputs)
    if trace is None:
        return eval_graph(graph, *inputs)
    outs, guard_values = eval_graph_bind(graph, *inputs, with_guards=True, into=trace)
    for guard, value in zip(graph.guards, guard_values):
        trace = getattr(value, "_tg_trace", None)
        add_guard = getattr(trace, "add_guard", None)
        if add_guard is not None:
            # a trace with example values can tell now that the decision differs
            example = getattr(trace, "example_value", lambda v: None)(value)
            if example is not None and not guard.holds(example):
                raise _failed(guard, example)
            add_guard(value, guard.expected, guard.kind, guard.src)
        elif not guard.holds(getattr(value, "data", value)):
            raise _failed(guard, getattr(value, "data", value))
    return outs


class GuardFailed(ValueError):
    """A guard of an applied program does not hold for these inputs: the function must be
    traced again for them."""


def _failed(guard, value) -> ValueError:
    return GuardFailed(f"guard ({guard.kind}) of the applied program failed: it assumed "
                      f"{np.asarray(guard.expected).tolist()!r}, these inputs give "
                      f"{np.asarray(value).tolist()!r}; trace the function again for them")
