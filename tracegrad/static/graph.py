"""The define-then-run graph: operations in creation order, their names, the
control-flow context each was made in, and the default-graph stack.

An `Operation` is one node.  It reads input tensors and has output tensors
(`Tensor`, `op:index`), and `compute(env, state)` gives its output values
when the graph is replayed into a tracegrad trace (`replay.py`).  Creation order is a
topological order: an op can only read tensors that exist when it is made, and a
`cond`/`while_loop` op is made after the ops of its bodies.  `deps()` lists every
op this one needs to run (inputs, control inputs, and for control flow the ops
of its bodies), which is what `Session.run` walks to keep only what a fetch
needs.
"""
from __future__ import annotations

import contextlib
import itertools
import threading

from tracegrad.codegen import llvm_util
from tracegrad.ir import user_source_location


class Context:
    """The body of a `cond` branch or a `while_loop` (ops made while it is entered
    belong to it and run only inside its control-flow op)."""

    def __init__(self, kind: str, parent):
        self.kind, self.parent = kind, parent

    def encloses(self, ctx) -> bool:
        """Whether a value made in `ctx` may be read here: `ctx` is this one or outside it."""
        c = self
        while c is not None:
            if c is ctx:
                return True
            c = c.parent
        return ctx is None


class Operation:
    """One node: `type` names what it computes, `name` is unique in its graph."""

    def __init__(self, graph, op_type, name, inputs, compute, n_outputs=1, control_inputs=()):
        self.graph = graph
        self.type = op_type
        self.inputs = list(inputs)
        self.control_inputs = list(control_inputs)
        self.compute = compute
        self.extra_deps: list = []  # ops of control-flow bodies, a gradient's ys/xs
        self.ctx = graph._ctx
        self.src = user_source_location()
        self.outputs: list = []
        self.n_outputs = n_outputs
        self.name = graph.unique_name(graph.scoped(name or op_type))
        # ops made under `control_dependencies` run after those and read variables' values
        # as those leave them (replay.py)
        self.after = [op for op in graph._control if op is not self]
        self.control_inputs += [op for op in self.after if op not in self.control_inputs]
        graph._add(self)

    def deps(self) -> list:
        return [t.op for t in self.inputs] + self.control_inputs + self.extra_deps

    def run(self, session=None, feed_dict=None):
        """Run this op in `session` (default: the session entered with `with`)."""
        from .session import default_session
        (session or default_session("Operation.run")).run(self, feed_dict)

    def __repr__(self):
        return f"<tf.Operation '{self.name}' type={self.type}>"


class Graph:
    """A TF1 graph.  `str(graph)` is its tracegrad IR (see `ir.graph_ir`)."""

    def __init__(self):
        self.ops: list[Operation] = []
        self._names: dict[str, int] = {}
        self._ctx = None
        self._scope = ""  # the name scope: "" or "outer/inner/"
        self._control: list = []  # the ops of the open `control_dependencies` contexts
        self._ids = itertools.count()
        self.variables: list = []
        self.last_feed_avals: dict = {}  # placeholder tensor -> aval most recently fed
        # Compiled runs, shared by every Session of this graph (variables are inputs):
        # (fetch tensors, fetch ops, fed (tensor, shape, dtype)...) -> CompiledRun.
        self.compiled: dict = {}
        self.compile_lock = threading.Lock()
        llvm_util.free_after_fork(self, "compile_lock")

    def _add(self, op):
        op.id = next(self._ids)
        self.ops.append(op)

    @contextlib.contextmanager
    def control_dependencies(self, control_inputs):
        """TF1's: ops made inside run after `control_inputs` (ops or tensors; None clears
        the enclosing contexts' dependencies), and variables they read directly give the
        values those ops left (`with tf.control_dependencies([train]): w_new =
        tf.identity(w)` is w after the step)."""
        saved = self._control
        if control_inputs is None:
            self._control = []
        else:
            ops = [getattr(c, "op", c) for c in control_inputs]
            self._control = saved + [op for op in ops if op not in saved]
        try:
            yield
        finally:
            self._control = saved

    def unique_name(self, base: str) -> str:
        if base not in self._names:
            self._names[base] = 0
            return base
        while True:
            self._names[base] += 1
            name = f"{base}_{self._names[base]}"
            if name not in self._names:
                self._names[name] = 0
                return name

    def scoped(self, name: str) -> str:
        """`name` inside the current name scope; a name ending in "/" is absolute (TF1)."""
        return name[:-1] if name.endswith("/") else self._scope + name

    @contextlib.contextmanager
    def name_scope(self, name):
        """Op names made inside start with the scope's name: `name` made unique the first
        time ("a", then "a_1"), as TF1's name_scope; "a/" re-enters "a", None the root."""
        scope = "" if not name else name if name.endswith("/") else (
            self.unique_name(self.scoped(name)) + "/")
        outer, self._scope = self._scope, scope
        try:
            yield scope
        finally:
            self._scope = outer

    @contextlib.contextmanager
    def body(self, kind: str):
        """Ops made inside belong to a new control-flow context (a branch or loop body)."""
        ctx = Context(kind, self._ctx)
        self._ctx = ctx
        try:
            yield ctx
        finally:
            self._ctx = ctx.parent

    @contextlib.contextmanager
    def root(self):
        """Ops made inside (placeholders, variables) live outside any body, and outside any
        `control_dependencies` context (TF1's init_scope)."""
        ctx, self._ctx = self._ctx, None
        control, self._control = self._control, []
        try:
            yield
        finally:
            self._ctx, self._control = ctx, control

    @contextlib.contextmanager
    def as_default(self):
        _STACK.graphs.append(self)
        try:
            yield self
        finally:  # this entry, even if an InteractiveSession pushed its graph meanwhile
            leave(_STACK.graphs, self)

    def get_operations(self) -> list:
        return list(self.ops)

    def get_operation_by_name(self, name: str) -> Operation:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(f"the graph has no operation named {name!r}")

    def get_tensor_by_name(self, name: str):
        op_name, _, index = name.rpartition(":")
        if not op_name or not index.isdigit():
            raise ValueError(f"{name!r} is not a tensor name ('op:index')")
        op = self.get_operation_by_name(op_name)
        if int(index) >= len(op.outputs):
            raise KeyError(f"operation {op_name!r} has {len(op.outputs)} outputs, no {name!r}")
        return op.outputs[int(index)]

    def ir(self, feed_shapes=None, optimized=True) -> str:
        from .ir import graph_ir
        return graph_ir(self, feed_shapes, optimized)

    def __str__(self):
        from .ir import graph_ir_or_summary
        return graph_ir_or_summary(self)

    def __repr__(self):
        return f"<tf.Graph with {len(self.ops)} operations>"


class _GraphStack(threading.local):
    def __init__(self):
        self.graphs: list[Graph] = []


_STACK = _GraphStack()


def leave(stack: list, item):
    """Remove the last entry of `stack` that is `item` (if any)."""
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is item:
            del stack[i]
            return
_GLOBAL = [Graph()]


def control_dependencies(control_inputs):
    """`get_default_graph().control_dependencies(control_inputs)` (TF1's)."""
    return get_default_graph().control_dependencies(control_inputs)


def get_default_graph() -> Graph:
    """The graph new ops go into: the innermost `with g.as_default():` (or session's
    graph), else the global default graph."""
    return _STACK.graphs[-1] if _STACK.graphs else _GLOBAL[0]


def reset_default_graph():
    """A fresh global default graph (not allowed inside `with g.as_default():`)."""
    if _STACK.graphs:
        raise AssertionError("Do not use tf.reset_default_graph() to clear nested graphs. "
                             "If you need a cleared graph, exit the nesting and create a new graph.")
    _GLOBAL[0] = Graph()


def graph_of(values, what: str) -> Graph:
    """The one graph the symbolic `values` belong to (the default graph if none)."""
    graphs = {id(v.graph): v for v in values}
    if len(graphs) > 1:
        a, b = list(graphs.values())[:2]
        raise ValueError(f"{what}: {a!r} must be from the same graph as {b!r}")
    return next(iter(graphs.values())).graph if graphs else get_default_graph()
