"""`cond` and `switch`: both branches traced into one `cond` equation when the
predicate is traced; the chosen branch simply called when it is concrete."""
from __future__ import annotations

import numpy as np

from tracegrad.ir import Var, ops

from . import dtypes
from .loop_body import Body, record, trace_of
from .loop_types import (leaf_aval, leaf_paths, leaf_value, located, plain, tree_difference,
                         type_name, with_at)
from .tree import tree_flatten, tree_unflatten

__all__ = ["cond", "switch"]


def _index_of(pred):
    """cond's predicate as a branch index: a Python int, or a traced int32 scalar."""
    pred = leaf_value(pred)
    aval = leaf_aval(pred)
    if aval.shape != ():
        raise TypeError(f"Pred must be a scalar, got {type_name(aval)}")
    if not (aval.dtype == np.bool_ or np.issubdtype(aval.dtype, np.number)):
        raise TypeError(f"Pred type must be either boolean or number, got {aval.dtype}")
    if not hasattr(pred, "_tg_trace") or hasattr(pred, "_tg_concrete"):
        concrete = pred._tg_concrete() if hasattr(pred, "_tg_concrete") else pred
        return int(bool(concrete))
    as_bool = pred if aval.dtype == np.bool_ else ops.ne(pred, np.asarray(0, aval.dtype))
    return ops.convert(as_bool, np.int32)


_NO_OPERAND = object()


def cond(pred, true_fun, false_fun, *operands, operand=_NO_OPERAND):
    """`true_fun(*operands) if pred else false_fun(*operands)`, like `jax.lax.cond`
    (JAX's older single `operand=` keyword too).

    With a traced `pred` both branches are traced and one `cond` equation picks
    one at run time (no guard); both must return the same types.  With a
    concrete `pred` the chosen branch is simply called.

    >>> import numpy as np
    >>> from tracegrad import cond
    >>> float(cond(np.float64(-2.0) > 0, lambda x: x, lambda x: -x, np.float64(-2.0)))
    2.0
    """
    if not (callable(true_fun) and callable(false_fun)):
        raise TypeError("cond: true_fun and false_fun must be callable")
    if operand is not _NO_OPERAND:
        if operands:
            raise TypeError("cond: pass the operands positionally or as operand=, not both")
        operands = (operand,)
    return _branch(_index_of(pred), (false_fun, true_fun), operands,
                   ("false_fun", "true_fun"), display=(1, 0))


def switch(index, branches, *operands):
    """`branches[clip(index, 0, len(branches) - 1)](*operands)`, like `jax.lax.switch`.

    >>> from tracegrad import switch
    >>> switch(5, [lambda x: x + 1, lambda x: x * 10], 2)
    array(20)
    """
    branches = tuple(branches)
    if not branches or not all(callable(b) for b in branches):
        raise TypeError("switch: branches must be a non-empty sequence of callables")
    index = leaf_value(index)
    aval = leaf_aval(index)
    if aval.shape != () or not np.issubdtype(aval.dtype, np.integer):
        raise TypeError(f"switch: the index must be an integer scalar, got {type_name(aval)}")
    if not hasattr(index, "_tg_trace") or hasattr(index, "_tg_concrete"):
        concrete = index._tg_concrete() if hasattr(index, "_tg_concrete") else index
        index = int(concrete)
    else:  # clamped before narrowing, so that an int64 index past 2**31 cannot wrap
        top = np.asarray(len(branches) - 1, aval.dtype)
        index = ops.max(ops.min(index, top), np.zeros((), aval.dtype))
        index = ops.convert(index, np.int32)
    return _branch(index, branches, operands, tuple(f"branches[{k}]" for k in range(len(branches))))


def _branch(index, funs, operands, names, display=None):
    if isinstance(index, int):  # the chosen branch, its NumPy operands with `.at` updates
        leaves, tree = tree_flatten(tuple(operands))
        chosen = funs[min(max(index, 0), len(funs) - 1)]
        out_leaves, out_tree = tree_flatten(chosen(*tree_unflatten(tree, with_at(leaves))))
        out_leaves = [np.asarray(v) if type(v) in (bool, int, float) else v  # (a traced
                      for v in plain(out_leaves)]  # Python float stays one: it is differentiated)
        return tree_unflatten(out_tree, out_leaves)  # (a number as a 0-d array, as traced)
    leaves, tree = tree_flatten(tuple(operands))
    values = [leaf_value(x) for x in leaves]
    args = [np.asarray(v, leaf_aval(v).dtype) if dtypes.is_weak(v) else v for v in values]
    arg_types = [(t, [leaf_aval(v) for v in tree_flatten(op)[0]])
                 for op, t in zip(operands, tree.children)]
    bodies = [Body.trace(fun, arg_types, name) for fun, name in zip(funs, names)]
    order = display or range(len(funs))  # the order errors name the branches in
    _check_branches([bodies[k] for k in order], [names[k] for k in order])
    captured = union_captured(bodies)
    graphs = tuple(with_consts(b, captured) for b in bodies)
    trace = trace_of([index] + values + captured)
    outs = record(trace, "cond", [index] + captured + args, branches=graphs)
    return tree_unflatten(bodies[0].out_tree, outs)


def _check_branches(bodies, names):
    first = bodies[0]
    for body, name in zip(bodies[1:], names[1:]):
        diff = tree_difference(first.out_tree, body.out_tree, "out")
        if diff is not None:
            path, a, b = diff
            raise TypeError(located(f"{names[0]} and {name} output must have the same pytree "
                                    f"structure, but they differ: the output {path} of "
                                    f"{names[0]} is {a} but that of {name} is {b}"))
    _unify_weak(bodies)
    for body, name in zip(bodies[1:], names[1:]):
        bad = [f"  * the output component {p} of {names[0]} has type {type_name(a)} but that "
               f"of {name} has type {type_name(b)}"
               for p, a, b in zip(_out_paths(first), first.out_avals, body.out_avals) if a != b]
        if bad:
            raise TypeError(located(f"{names[0]} and {name} output must have identical types "
                                    f"(shapes and dtypes of arrays), but they differ:\n"
                                    + "\n".join(bad)))


def _out_paths(body):
    return leaf_paths(body.out_tree, "out")


def _unify_weak(bodies):
    """A Python scalar returned by one branch takes the dtype the others give that leaf."""
    n = len(bodies[0].out_avals)
    strong = [next((b.out_avals[i] for b in bodies if not b.out_weak[i]), None) for i in range(n)]
    for body in bodies:
        for i, aval in enumerate(strong):
            if aval is not None and body.out_weak[i] and aval.shape == ():
                body.retype_weak(i, [aval])


def union_captured(bodies):
    """The enclosing traces' values any branch closed over, each once, in order."""
    seen = []
    for body in bodies:
        seen += [v for v in body.captured if not any(v is s for s in seen)]
    return seen


def with_consts(body, captured):
    """The branch's graph taking every branch's captured values first (unused ones too)."""
    graph = body.graph
    mine = dict(zip(map(id, body.captured), graph.invars))
    consts = [mine.get(id(v)) or Var(v.aval) for v in captured]
    return graph.replace(invars=consts + graph.invars[len(body.captured):])
