"""Eager calls of custom functions (custom_vjp, custom_jvp, autograd.Function) on tensors
that require grad: one backward node per call, as PyTorch's Function nodes.

The forward rule runs on the data with grad mode off; its outputs become tensors whose
history is the call's node.  Backward calls the user's backward rule once with every
output's cotangent (zeros for the outputs that got none, as PyTorch's default
`materialize_grads`).  With several outputs, each output tensor's `grad_fn` is a small
node that routes its cotangent to its slot of the call's node (`_Slots`, summed slot by
slot when an output is used several times); the call's node runs once all have arrived.
The saved residuals' tensors are version-checked, as saved tensors are in PyTorch, and a
call that saved nothing may be run backward again.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import apply_graph, ops
from tracegrad.tracer import Tensor, no_grad, tree_flatten, tree_unflatten
from tracegrad.tracer import eager_control
from tracegrad.tracer.autograd import Absent, Node
from tracegrad.tracer.tensor import _edge
from tracegrad.tracer.tree import flatten_like


class _Slots:
    """The cotangents of a call's outputs gathered so far (None: none yet); the engine
    sums two of them with `+`, slot by slot."""

    __slots__ = ("cts",)

    def __init__(self, cts):
        self.cts = cts

    def __add__(self, other):
        return _Slots([b if a is None else a if b is None else a + b
                       for a, b in zip(self.cts, other.cts)])


class CallBackward(Node):
    """The node of one call: `prim` is its `_Call`, `saved` holds the residuals."""

    __slots__ = ()

    def apply(self, g, create_graph: bool, box, edges=None):
        self._check_saved()
        return self.prim.backward(g.cts if isinstance(g, _Slots) else [g], create_graph)


class OutputBackward(Node):
    """The `grad_fn` of output `params["index"]` of a call with several outputs."""

    __slots__ = ()

    def apply(self, g, create_graph: bool, box, edges=None):
        cts = [None] * self.params["count"]
        cts[self.params["index"]] = g
        return (_Slots(cts),)


_CLASSES: dict = {}


def _node_class(base, name):
    cls = _CLASSES.get((base, name))
    if cls is None:
        cls = _CLASSES.setdefault((base, name), type(name, (base,), {"__slots__": ()}))
    return cls


class _Call:
    """What a call's backward needs: the rules, the argument and output structures, the
    inputs (for shapes, dtypes and which are tensors) and the residuals."""

    def __init__(self, rules, tree, values, outs, out_tree, res):
        self.rules, self.tree, self.values = rules, tree, values
        self.outs, self.out_tree, self.res = outs, out_tree, res

    def backward(self, cts, create_graph):
        torch_style = self.rules.torch_style
        if not self.rules.materialize:
            full = list(cts)
        else:
            full = [np.zeros(o.shape, o.dtype) if c is None else c for c, o in zip(cts, self.outs)]
        if torch_style:  # PyTorch's backward sees tensors
            full = [c if c is None or isinstance(c, Tensor) else Tensor._make(np.asarray(c))
                    for c in full]
        result = self.rules.bwd(self.res, tree_unflatten(self.out_tree, full))
        flat = tuple(self._flat(result, create_graph))
        return Absent(flat) if torch_style else flat

    def _flat(self, result, create_graph):
        children = self.tree.children
        name = self.rules.name
        if self.rules.torch_style and len(result) != len(children):
            raise RuntimeError(f"function {name}Backward returned an incorrect number of "
                               f"gradients (expected {len(children)}, got {len(result)})")
        leaf = 0
        for position, (ct, child) in enumerate(zip(result, children)):
            # in the argument's order: a dict cotangent is matched by key (custom.py)
            for c in arg_cotangents(ct, child, name, position):
                yield None if c is None else self._checked(c, leaf, create_graph)
                leaf += 1

    def _checked(self, c, i, create_graph):
        """Gradient `c` of input leaf `i`: of the input's shape (summed down where it
        broadcasts to it, as PyTorch's validation does) and dtype; data unless the
        backward builds a graph."""
        x = self.values[i]
        if not isinstance(x, Tensor):
            if self.rules.torch_style:
                raise RuntimeError(f"function {self.rules.name}Backward returned a gradient "
                                   f"different than None at position {i + 1}, but the "
                                   "corresponding forward input was not a Variable")
            return None
        if not create_graph and isinstance(c, Tensor):
            c = c.data
        shape = np.shape(c)
        if shape != x.shape:
            c = _summed_to(c, x.shape, self.rules.name, i)
        if not create_graph:
            c = np.asarray(c, x.dtype)
        return c


def _summed_to(c, shape, name, i):
    got = np.shape(c)
    try:
        if np.broadcast_shapes(shape, got) != got:
            raise ValueError
    except ValueError:
        raise RuntimeError(f"function {name}Backward returned an invalid gradient at index {i} - "
                           f"got {list(got)} but expected shape compatible with {list(shape)}") from None
    return ops.sum_to_shape(c, shape)


def arg_cotangents(ct, child, name, position):
    """The leaves of the cotangent `ct` the backward rule returned for an argument of
    structure `child`, in the argument's order (dict entries by key); None: all None."""
    if ct is None:
        return [None] * child.num_leaves
    try:
        return flatten_like(ct, child)
    except ValueError as e:
        raise TypeError(f"{name}: the backward rule's cotangent for argument {position} has "
                        f"structure {tree_flatten(ct)[1]}, the argument {child} ({e})") from None


def call(rules, tree, values):
    """The outputs of the custom function on `values` (flattened arguments), recorded."""
    # as PyTorch's Function: forward sees the inputs themselves, with grad mode off, so
    # that what it saves for backward keeps their graph (for a create_graph backward)
    with no_grad():
        out, res = rules.fwd(*tree_unflatten(tree, values))
    out_leaves, out_tree = tree_flatten(out)
    outs = [np.asarray(o.data if isinstance(o, Tensor) else o) for o in out_leaves]
    skip = rules.non_differentiable
    live = [i for i, (o, d) in enumerate(zip(out_leaves, outs))
            if d.dtype.kind == "f" and id(o) not in skip]
    saved = [t for t in tree_flatten(res)[0] if isinstance(t, Tensor)]
    node = _node_class(CallBackward, f"{rules.name}Backward")(
        _Call(rules, tree, values, outs, out_tree, res), {}, [res],
        [(t._version, t._version.value) for t in saved], [_edge(v) for v in values])
    node.reads = bool(tree_flatten(res)[0])
    results = [Tensor._make(d, None, _saved_version(d, saved)) for d in outs]
    if rules.torch_style:  # a Function's forward may return other values: kept as they are
        kept = [i for i, o in enumerate(out_leaves) if not isinstance(o, (Tensor, np.ndarray))]
        for i in kept:
            results[i] = out_leaves[i]
        live = [i for i in live if i not in kept]
    for i in live:
        results[i] = Tensor._make(outs[i], _output_node(node, i, len(outs), rules.name),
                                  results[i]._version)
    return tree_unflatten(out_tree, results)


def _saved_version(data, saved):
    """The version counter of a saved tensor whose buffer the output `data` shares (forward
    returned what it saved, or a view of it): an in-place change of the output is then a
    change of the saved tensor, which its backward refuses, as PyTorch's does."""
    for t in saved:
        if t._data is data or _overlap(t._data, data):
            return t._version
    return None


def _overlap(a, b) -> bool:
    """Whether two arrays share an element (interleaved views of one buffer do not);
    where NumPy cannot tell cheaply, they are taken to."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=10_000))
    except np.exceptions.TooHardError:
        return True


class _GraphRules:
    """A `custom_call` equation's rules (its `fwd` and `bwd` graphs) in the form `call`
    takes: a traced or loaded program holding a custom function, applied to tensors."""

    torch_style, materialize, non_differentiable = False, True, frozenset()

    def __init__(self, params):
        self.params, self.name = params, params["fn_name"]
        self.n_outs = len(params["fun"].outvars)

    def fwd(self, *values):
        results = apply_graph(self.params["fwd"], list(values))
        consts = list(values[:self.params["num_consts"]])
        return tuple(results[:self.n_outs]), (consts, list(results[self.n_outs:]))

    def bwd(self, res, cts):
        consts, residuals = res
        arg_cts = apply_graph(self.params["bwd"], consts + residuals + list(cts))
        return [None] * len(consts) + list(arg_cts)


def graph_call(args, params):
    """The outputs of a `custom_call` equation on tensors, recorded as one node whose
    backward applies the equation's `bwd` graph (tracer/eager_control.py's GRAD_RULES)."""
    if any(getattr(a, "requires_grad", False) for a in args[:params["num_consts"]]):
        raise TypeError(f"{params['fn_name']}: the function closes over a tensor that requires "
                        "grad; pass it as an argument of the custom function instead")
    if params["fwd"] is None:  # custom_jvp only: reverse mode through its primal body
        return apply_graph(params["fun"], list(args))
    values = list(args)
    tree = tree_flatten(tuple(values))[1]
    return list(call(_GraphRules(params), tree, values))


def _output_node(node, index, count, name):
    if count == 1:
        return node
    out = _node_class(OutputBackward, f"{name}Backward")(None, {"index": index, "count": count},
                                                         [], [], [node])
    out.reads = False
    return out


eager_control.GRAD_RULES["custom_call"] = graph_call
