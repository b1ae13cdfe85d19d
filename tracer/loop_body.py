"""Tracing a loop body or a branch once, abstractly, into a closed graph, and
recording a control-flow equation into the running trace (tracer/control_flow.py).
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import TRACES, ConcretizationError, GraphBuilder, Literal, ops
from tracegrad.ir.primitives import PRIMITIVES

from . import dtypes
from .loop_types import value_name, weak_fits
from .trace import make_graph
from .tree import tree_flatten, tree_unflatten

_HINT = ("Loop bodies and branches are traced once for all iterations, abstractly (shapes "
         "and dtypes, no values), so Python control flow inside them cannot depend on traced "
         "values: use tracegrad.cond (or tracegrad.numpy.where) for data-dependent choices.")
CUSTOM_HINT = ("A custom rule's functions are traced once, abstractly (shapes and dtypes, no "
               "values), so Python control flow inside them cannot depend on traced values: "
               "use tracegrad.cond (or tracegrad.numpy.where) for data-dependent choices.")


# ---- which mode ------------------------------------------------------------------------

def trace_of(values):
    """The trace to record into (the innermost running one), or None: run eagerly."""
    if TRACES.traces:
        return TRACES.traces[-1]
    trace = ops.find_trace(values)
    return trace if isinstance(trace, GraphBuilder) else None


# ---- tracing a body ---------------------------------------------------------------------

def _placeholder(aval):
    # make_graph reads only the shape and dtype: a broadcast zero allocates nothing
    return np.broadcast_to(np.zeros((), aval.dtype), aval.shape)


def _guarded_body_message(guards, what) -> str:
    where = "; ".join(sorted({g.src for g in guards if g.src})) or "its trace"
    return (f"{what} applies a traced program that holds guards (Python decisions taken when "
            f"it was traced, at {where}): they would have to be checked on every iteration or "
            "branch, where the values are abstract, so they cannot be kept. Call the original "
            "function in the body instead (its decisions then need tracegrad.cond/while_loop), "
            "or trace a version without data-dependent Python decisions")


class Body:
    """A function traced abstractly into a closed graph.

    `graph` takes the values of enclosing traces it closed over first (the
    equation's consts, `captured`), then the arguments' leaves; `out_tree` is
    the structure of its output, `out_weak[i]` whether output leaf i was a
    Python scalar (a weak literal).
    """

    def __init__(self, fun, args, what, hint=_HINT):
        out_weak = []

        def recorded(*a):
            out = fun(*a)
            out_weak[:] = [dtypes.is_weak(x) and getattr(x, "_tg_symbolic", None) is None
                           for x in tree_flatten(out)[0]]
            return out
        recorded.__qualname__ = getattr(fun, "__qualname__", what)
        try:
            prog = make_graph(recorded, args, concrete=False)
        except ConcretizationError as e:
            raise (e if hint in str(e) else ConcretizationError(f"{e}\n{what}: {hint}")) from None
        if prog.graph.guards:  # from a traced program applied inside the body
            raise ConcretizationError(_guarded_body_message(prog.graph.guards, what))
        n = len(prog.graph.invars) - len(prog.captured)
        graph = prog.graph
        self.graph = graph.replace(invars=graph.invars[n:] + graph.invars[:n])
        self.captured, self.out_tree, self.out_weak = list(prog.captured), prog.out_tree, out_weak

    @classmethod
    def trace(cls, fun, arg_types, what, hint=_HINT):
        """Trace `fun(*args)`; `arg_types` is a list of (treedef, leaf avals) per argument."""
        args = [tree_unflatten(tree, [_placeholder(a) for a in avals]) for tree, avals in arg_types]
        return cls(fun, args, what, hint)

    @property
    def out_avals(self):
        return self.graph.out_avals

    def retype_weak(self, start, avals):
        """Python scalars returned at outputs start.. take the dtype of `avals`."""
        outvars = list(self.graph.outvars)
        for i, aval in enumerate(avals, start):
            v = outvars[i]
            if (self.out_weak[i] and isinstance(v, Literal) and v.aval.dtype != aval.dtype
                    and weak_fits(v.value.item(), aval.dtype)):
                outvars[i] = Literal(v.value, aval.dtype)
        self.graph = self.graph.replace(outvars=outvars)


def pair(out, what):
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"{what} must return a pair (carry, y), got {value_name(out)}"
                        + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
    return out


def record(trace, name, args, **params):
    return trace.process(PRIMITIVES[name], list(args), params)


