"""A static graph as tracegrad IR: `str(graph)`, `graph.ir(...)`.

The IR of a graph is the program a Session would compile to run every op that
no other op reads (its sinks: final results, training steps; not initializers), for
the placeholders' shapes: fully known static shapes, those given in
`feed_shapes` ({placeholder or its name: shape}), or else the shapes most
recently fed to them in a `Session.run`.  `optimized=True` shows it after the
cleanup passes (what fusion receives), False as traced.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import ShapedArray, debug_checks

from .program import Plan


def _sinks(graph):
    """The root ops no op reads as data, except placeholders and initializers (which
    would chain into the same run as the training step)."""
    read = {t.op for op in graph.ops for t in op.inputs}  # data reads, not dependencies
    tensors, ops = [], []
    for op in graph.ops:
        if (op.ctx is not None or op in read or op.compute is None or op.type == "Placeholder"
                or getattr(op, "is_initializer", False)):
            continue
        if op.outputs:
            tensors += op.outputs
        else:
            ops.append(op)
    return tensors, ops


def _given_shapes(graph, feed_shapes) -> dict:
    """{placeholder tensor: shape tuple} from `feed_shapes` ({placeholder or its name: shape})."""
    given = {}
    for key, shape in (feed_shapes or {}).items():
        t = key if not isinstance(key, str) else graph.get_tensor_by_name(
            key if ":" in key else f"{key}:0")
        if t.graph is not graph or t.op.type != "Placeholder":
            raise ValueError(f"feed_shapes: {key!r} is not a placeholder of this graph")
        try:
            dims = (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise ValueError(f"feed_shapes[{key!r}]: {shape!r} is not a shape (a tuple of "
                             "ints)") from None
        if not t.shape.is_compatible_with(dims) or min(dims, default=0) < 0:
            raise ValueError(f"feed_shapes[{key!r}]: shape {dims} does not fit {t!r}")
        given[t] = dims
    return given


def _feed_avals(graph, feed_shapes) -> dict:
    given = _given_shapes(graph, feed_shapes)
    avals = {}
    for op in graph.ops:
        if op.type != "Placeholder":
            continue
        t = op.outputs[0]
        if t in given:
            avals[t] = ShapedArray(given[t], t.dtype)
        elif t.shape.is_fully_defined():
            avals[t] = ShapedArray(tuple(t.shape.dims), t.dtype)
        elif t in graph.last_feed_avals:
            avals[t] = graph.last_feed_avals[t]
    return avals


def graph_ir(graph, feed_shapes=None, optimized=True, fetches=None) -> str:
    tensors, ops = _sinks(graph) if fetches is None else (list(fetches), [])
    avals = _feed_avals(graph, feed_shapes)
    fed = sorted(avals, key=lambda t: t.op.id)
    plan = Plan(graph, tensors, ops, fed)
    if plan.placeholders:
        names = ", ".join(repr(op.name) for op in plan.placeholders)
        raise ValueError(f"the IR needs the shapes of placeholders {names}: pass "
                         "feed_shapes={name: shape}, or run the graph once in a Session")
    program = plan.trace([avals[t] for t in plan.fed])
    if optimized:
        from tracegrad.passes.manager import cleanup, run_pipeline
        program = run_pipeline(program, [cleanup], debug=debug_checks()).graph
    return str(program)


def graph_ir_or_summary(graph) -> str:
    try:
        return graph_ir(graph)
    except ValueError as e:
        return f"<tf.Graph with {len(graph.ops)} operations; {e}>"
