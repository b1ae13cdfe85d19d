"""Which of an eager operation's values its backward reads.

PyTorch saves for backward only the tensors its formula needs: changing another one in
place later is fine (`b = a + 1; c = b.sum(); b[0] = 5; c.backward()` works), while
changing a saved one, the operation's own result included (`b = a.exp(); b *= 2`),
makes backward raise instead of returning a wrong gradient.  tracegrad's node keeps the
operands and the result, so it finds out which of them the primitive's VJP rule reads
by tracing the rule abstractly once per (primitive, params, needed cotangents) and
following the cotangents it returns back to the rule's inputs.
Only those values get version checks (tensor._record).  When the rule cannot be traced
so, every value counts as read: an error where PyTorch might not raise, never a wrong
gradient.

>>> import numpy as np
>>> from tracegrad.ir.primitives import PRIMITIVES
>>> x = np.ones(3)
>>> reads(PRIMITIVES["mul"], (x, x), x, {}, (True, False))   # d/dx x*y reads y only
(False, True, False)
>>> reads(PRIMITIVES["exp"], (x,), x, {}, (True,))           # exp's backward reads exp(x)
(False, True)
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir.core import Graph, Literal
from tracegrad.ir.indexing import SHAPE_ONLY_VJP

_CACHE: dict = {}
CACHE_LIMIT = 4096  # distinct signatures kept; past it, each new one is traced again


def reads(prim, datas, out, params, needed) -> tuple:
    """Per operand in `datas`, then for `out`: whether the backward of `prim` reads its
    values when the cotangents flagged in `needed` are asked for.  Structural
    primitives' rules read shapes only, indexing ones their integer operands (the
    indices): no tracing for them, whose params (shapes, slices) vary the most.  The
    others are cached per primitive, params and `needed`: which values a rule reads
    does not change with shapes."""
    if prim.kind == "structural":
        return (False,) * (len(datas) + 1)
    if prim.name in SHAPE_ONLY_VJP:
        return (*(np.result_type(d).kind not in "fc" for d in datas), False)
    # Which operands are arrays is part of the key: a Python-number operand is never
    # "read" (_analyse), so a rule cached for `x * 2.0` would skip the version check of
    # a tensor `y` in a later `x * y` and let an in-place change of y corrupt the gradient
    from .trace import is_array_leaf  # trace.py imports the tensor module

    arrays = tuple(map(is_array_leaf, datas))
    try:
        key = (prim, needed, arrays, tuple(params.items())) if params else (prim, needed, arrays)
        found = _CACHE.get(key)
    except TypeError:  # an array-valued param: no key, traced each time
        key = found = None
    if found is None:
        found = _analyse(prim, datas, out, params, needed)
        if key is not None and len(_CACHE) < CACHE_LIMIT:
            _CACHE[key] = found
    return found


def _analyse(prim, datas, out, params, needed) -> tuple:
    from .trace import is_array_leaf, make_graph  # trace.py imports the tensor module

    everything = (True,) * (len(datas) + 1)

    def rule(g, result, *operands):
        if getattr(prim, "selective_vjp", False):
            cts = prim.vjp(g, result, *operands, needed=needed, **params)
        else:
            cts = prim.vjp(g, result, *operands, **params)
        return [ct for ct, want in zip(cts, needed) if want and ct is not None]

    args = (out, out, *datas)
    try:
        graph = make_graph(rule, args, concrete=False).graph
    except Exception:  # noqa: BLE001 - any rule that needs more than shapes: all read
        return everything
    live = _live(graph)
    if live is None:
        return everything
    invars = iter(graph.invars)
    flags = [next(invars) in live if is_array_leaf(a) else False for a in args]
    return (*flags[2:], flags[1])


def _live(graph):
    """The graph's values that its outputs depend on, or None when an equation holds a
    sub-graph (whose reads of outer values this walk does not follow)."""
    live = {v for v in graph.outvars if not _is_literal(v)}
    for eqn in reversed(graph.eqns):
        if any(_holds_graph(p) for p in eqn.params.values()):
            return None
        if any(o in live for o in eqn.outs):
            live.update(a for a in eqn.inputs if not _is_literal(a))
    return live


def _is_literal(atom) -> bool:
    return isinstance(atom, Literal) or not hasattr(atom, "aval")


def _holds_graph(value) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_holds_graph(v) for v in value)
    return isinstance(value, Graph) or hasattr(value, "graph")
