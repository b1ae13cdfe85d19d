"""Batching (vmap) as a graph transformation: `batch_graph(graph, batched, size)`.

The per-example graph is replayed into a new one in which every value is either
unbatched (as before) or batched: the same value for each of `size` examples,
stacked along a new leading axis 0 (the only batch position: rules never move it).
Each primitive has a batching rule in `RULES` (keyed by name; the elementwise kinds
share one): `rule(prim, size, args, flags, params) -> (outputs, out_flags)`, with
outputs a value (or a list for multi-output primitives) and flags saying which
operands / outputs are batched.  An equation none of whose operands is batched is
replayed as it is.  A primitive without a rule (control flow, gathers, custom
calls) is batched by applying it to each example and stacking the results: exact,
but `size` equations instead of one (`uses_fallback`; tests/test_vmap.py keeps
that list honest).

>>> import numpy as np
>>> from tracegrad.ir import GraphBuilder, ShapedArray, ops, eval_graph
>>> b = GraphBuilder()
>>> x = b.new_input(ShapedArray((3,), np.float64))
>>> g = b.build([ops.reduce_sum(ops.mul(x, x), (0,))])
>>> bg, flags = batch_graph(g, [True], 2)
>>> [str(a) for a in bg.in_avals], flags
(['f64[2,3]'], [True])
>>> eval_graph(bg, np.arange(6.0).reshape(2, 3))[0].tolist()
[5.0, 50.0]
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import Graph, GraphBuilder, Literal, ShapedArray, ops
from tracegrad.ir.primitives import ELEMENTWISE_KINDS

RULES: dict = {}


def _rule(*names):
    def register(fn):
        for name in names:
            RULES[name] = fn
        return fn
    return register


def _per_example_shape(x, batched):
    shape = ops.shape(x)
    return shape[1:] if batched else shape


def _batched_as(x, batched, size, shape):
    """`x` (per-example shape `shape` or rank 0) as a batched value of shape (size,) + shape."""
    if batched:
        own = ops.shape(x)[1:]
        if own == shape:
            return x
        x = ops.reshape(x, (size,) + (1,) * (len(shape) - len(own)) + own)
        return ops.broadcast(x, (size,) + shape)
    return ops.broadcast(x, (size,) + shape)


# ---- elementwise ---------------------------------------------------------------------

def _elementwise(prim, size, args, flags, params):
    """Operands have equal per-example shapes except rank-0 ones (which broadcast): every
    batched operand, and every unbatched one that is not rank 0, gets the full shape."""
    shape = max((_per_example_shape(a, f) for a, f in zip(args, flags)), key=len)
    out = [_batched_as(a, f, size, shape) if f or ops.shape(a) != () else a
           for a, f in zip(args, flags)]
    return ops.bind(prim.name, *out, **params), True


# ---- reductions, structure, products -------------------------------------------------

@_rule("reduce_sum", "reduce_prod", "reduce_max", "reduce_min")
def _reduce(prim, size, args, flags, params):
    return ops.bind(prim.name, args[0], axes=tuple(a + 1 for a in params["axes"])), True


@_rule("broadcast")
def _broadcast(prim, size, args, flags, params):
    return _batched_as(args[0], True, size, tuple(params["shape"])), True


@_rule("reshape")
def _reshape(prim, size, args, flags, params):
    return ops.reshape(args[0], (size,) + tuple(params["shape"])), True


@_rule("transpose")
def _transpose(prim, size, args, flags, params):
    return ops.transpose(args[0], (0,) + tuple(p + 1 for p in params["perm"])), True


@_rule("slice")
def _slice(prim, size, args, flags, params):
    return ops.slice(args[0], (0,) + tuple(params["starts"]), (1,) + tuple(params["steps"]),
                     (size,) + tuple(params["sizes"])), True


@_rule("pad")
def _pad(prim, size, args, flags, params):
    return ops.pad(args[0], (0,) + tuple(params["starts"]), (1,) + tuple(params["steps"]),
                   (size,) + tuple(params["shape"])), True


@_rule("concatenate")
def _concatenate(prim, size, args, flags, params):
    xs = [a if f else _batched_as(a, False, size, ops.shape(a)) for a, f in zip(args, flags)]
    return ops.concatenate(xs, params["axis"] + 1), True


@_rule("cumsum", "cumprod", "cummax", "cummin", "sort", "argsort", "argmax", "argmin")
def _along_axis(prim, size, args, flags, params):
    return ops.bind(prim.name, args[0], **{**params, "axis": params["axis"] + 1}), True


@_rule("dot")
def _dot(prim, size, args, flags, params):
    (x, y), (fx, fy) = args, flags
    if fx and not fy and len(ops.shape(y)) == 2:  # (B, m, k) @ (k, n): one (B*m, k) product
        m, k = ops.shape(x)[1:]
        out = ops.dot(ops.reshape(x, (size * m, k)), y)
        return ops.reshape(out, (size, m, ops.shape(y)[1])), True
    if fy and not fx and len(ops.shape(x)) == 2:  # (m, k) @ (B, k, n): one (m, k) @ (k, B*n)
        k, n = ops.shape(y)[1:]
        yt = ops.reshape(ops.transpose(y, (1, 0, 2)), (k, size * n))
        out = ops.reshape(ops.dot(x, yt), (ops.shape(x)[0], size, n))
        return ops.transpose(out, (1, 0, 2)), True
    return _leading_batch(prim, size, args, flags, params)


@_rule("cholesky", "triangular_solve", "solve", "inv", "slogdet", "eigh", "eigvalsh", "svd",
       "svdvals", "qr", "pinv", "correlate")
def _leading_batch(prim, size, args, flags, params):
    """Primitives batched over leading dims already (dot, numpy.linalg's routines): the
    unbatched operands get the batch dim too."""
    xs = [a if f else _batched_as(a, False, size, ops.shape(a)) for a, f in zip(args, flags)]
    out = ops.bind(prim.name, *xs, **params)
    return out, ([True] * len(out) if prim.multiple_results else True)


# ---- the fallback: one application per example ----------------------------------------

def _example(x, batched, i):
    if not batched:
        return x
    shape = ops.shape(x)
    one = ops.slice(x, (i,) + (0,) * (len(shape) - 1), (1,) * len(shape), (1,) + shape[1:])
    return ops.reshape(one, shape[1:])


def _stack(values):
    return ops.concatenate([ops.reshape(v, (1,) + ops.shape(v)) for v in values], 0)


def _unrolled(prim, size, args, flags, params):
    if size == 0:
        return _empty_batch(prim, args, flags, params)
    results = [ops.bind(prim.name, *[_example(a, f, i) for a, f in zip(args, flags)], **params)
               for i in range(size)]
    if prim.multiple_results:
        return [_stack(list(col)) for col in zip(*results)], [True] * len(results[0])
    return _stack(results), True


def _empty_batch(prim, args, flags, params):
    """A batch of no examples: empty results of the shapes the primitive's rule gives for
    one example (there is no example to run)."""
    avals = [ShapedArray(tuple(ops.shape(a))[1:] if f else tuple(ops.shape(a)), ops.dtype(a))
             for a, f in zip(args, flags)]
    out = prim.shape_rule(*avals, **params)

    def empty(aval):
        return ops.broadcast(np.zeros((), aval.dtype), (0,) + tuple(aval.shape))
    if prim.multiple_results:
        return [empty(a) for a in out], [True] * len(out)
    return empty(out), True


def uses_fallback(prim) -> bool:
    """Batched one example at a time (control flow, indexing, custom calls, ...)."""
    return rule_of(prim) is _unrolled


def rule_of(prim):
    if prim.name in RULES:
        return RULES[prim.name]
    if prim.kind in ELEMENTWISE_KINDS:
        return _elementwise
    return _unrolled


# ---- the pass ---------------------------------------------------------------------------

def batch_graph(graph: Graph, batched, size: int):
    """(the batched graph, which outputs are batched); `batched[i]` says whether input i
    is batched (the batched graph's input i then has shape (size,) + its shape)."""
    b = GraphBuilder(record_source=False)
    env = {}
    for var, flag in zip(graph.invars, batched):
        aval = ShapedArray((size,) + var.aval.shape, var.aval.dtype) if flag else var.aval
        env[var] = (b.new_input(aval), bool(flag))
    for var, val in zip(graph.constvars, graph.constvals):
        env[var] = (b.value_cls(b, b.const(val)), False)
    for eqn in graph.eqns:
        _batch_eqn(b, eqn, env, size)
    outs = [_read(env, v) for v in graph.outvars]
    for g in graph.guards:
        value, flag = _read(env, g.var)
        if flag:
            raise ValueError(f"vmap: a Python decision ({g.kind} at {g.src}) depends on a "
                             "batched value; use tracegrad.numpy.where or tracegrad.cond")
        b.add_guard(value, g.expected, g.kind, g.src)
    return b.build([v for v, _ in outs]), [f for _, f in outs]


def _read(env, atom):
    return (atom.value, False) if isinstance(atom, Literal) else env[atom]


def _batch_eqn(b, eqn, env, size):
    args, flags = zip(*[_read(env, a) for a in eqn.inputs]) if eqn.inputs else ((), ())
    if not any(flags):
        outs = b.process(eqn.prim, list(args), eqn.params)
        out_flags = False
    else:
        outs, out_flags = rule_of(eqn.prim)(eqn.prim, size, list(args), list(flags), eqn.params)
    if eqn.prim.multiple_results:
        flags_out = out_flags if isinstance(out_flags, list) else [out_flags] * len(outs)
        env.update({v: (o, f) for v, o, f in zip(eqn.outs, outs, flags_out)})
    else:
        env[eqn.out] = (outs, out_flags)
