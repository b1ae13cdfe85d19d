"""`tf.gradients(ys, xs, grad_ys=None)`: symbolic gradients made by the IR autodiff pass.

The gradients op, when replayed, traces `f(xs) = ys` (the ops between `xs` and
`ys`, replayed with the xs substituted and everything else read from the
enclosing values) and applies `tracegrad.vjp` to it: the IR's reverse-mode
pass, inlined into the run's program, with `grad_ys` (default ones) as the
cotangents of the ys, summed over the ys as TF1 does.  Control flow between
xs and ys differentiates through the primitives' own rules (`cond` by its
branches' VJPs, `while` by `while_vjp`).  As in TF1, an x that the ys do not
depend on (or that is not a float) gets None.
"""
from __future__ import annotations

from collections import ChainMap

from tracegrad.ir.core import is_float as _is_float
from tracegrad.tracer import numpy as tnp

from .building import check_readable, new_op
from .graph import graph_of
from .replay import replay
from .sources import as_tensor


def _as_list(x):
    if x is None:
        return None
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _recomputed(ops, x_ops) -> list:
    """The ops (of `ops`) that read, directly or not, an op of `x_ops`, in creation order.
    An x made from another x (TF1 lets xs depend on each other) is recomputed too."""
    tainted, out = set(x_ops), []
    for op in sorted(ops, key=lambda o: o.id):
        if any(d in tainted for d in op.deps()):
            tainted.add(op)
            out.append(op)
    return out


def gradients(ys, xs, grad_ys=None, name="gradients", stop_gradients=None):
    """d(sum of ys)/d(x) for each x in `xs` (a list; None where ys do not depend on x)."""
    ys, xs = [as_tensor(y) for y in _as_list(ys)], _as_list(xs)
    grad_ys = _as_list(grad_ys) or [None] * len(ys)
    if len(grad_ys) != len(ys):
        raise ValueError(f"gradients: {len(grad_ys)} grad_ys for {len(ys)} ys")
    grad_ys = [None if g is None else as_tensor(g) for g in grad_ys]
    graph = graph_of(ys + xs + [g for g in grad_ys if g is not None], "gradients")
    check_readable(graph, ys + xs, "gradients")
    stops = {as_tensor(s).op for s in _as_list(stop_gradients) or []}
    needed = _reached(ys, stops)
    live = [x for x in dict.fromkeys(xs) if x.op in needed and _is_float(x.dtype)]
    if not live:
        return [None] * len(xs)
    between = [op for op in _recomputed(needed - stops, {x.op for x in live})
               if op.ctx is graph._ctx and op.compute is not None]
    compute = _compute(ys, live, grad_ys, between)
    specs = [(x.shape, x.dtype, x._probes) for x in live]
    op = new_op(graph, "Gradients", name, [], compute, specs)
    # dependencies, not data inputs: the ys stay results of their own (str(graph) shows them).
    # The replay reruns `between`, so their inputs are needed even where a fed tensor
    # cuts them off the ys (TF1's gradient ops read the forward ops' inputs).
    op.extra_deps = ([t.op for t in ys + live + [g for g in grad_ys if g is not None]]
                     + [d for b in between for d in b.deps()])
    by_x = dict(zip(live, op.outputs))
    return [by_x.get(x) for x in xs]


def _reached(ys, stops) -> set:
    """The ops the ys need, not walking past an op of `stops` or a `tf.stop_gradient`
    (nor a `while_loop(back_prop=False)`'s outputs, nor an op of integer or bool results:
    `_carries`): as in TF1, an x reached only through them gets None."""
    stack, seen = [y.op for y in ys], set()
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        if op not in stops and not getattr(op, "stops_gradient", False) and _carries(op):
            stack.extend(op.deps())
    return seen


def _carries(op) -> bool:
    """Whether a gradient can flow back through `op`: not through an op whose results are
    all integer or bool (argmax, a comparison, a cast to int), whose gradient TF1 does not
    define, so that an x reached only through such ops gets None, as in TF1."""
    return not op.outputs or any(_is_float(t.dtype) for t in op.outputs)


def _compute(ys, live, grad_ys, between):
    """The op's compute: `tracegrad.vjp` of the replay of `between` as a function of
    the xs.  A source x (not recomputed) is substituted by the function's input; an
    x recomputed from other xs gets `p - stop_gradient(p)` (zero, derivative one)
    added, so that its gradient is the partial one and the others' the total one,
    as in TF1.  As in TF1 too, a tensor fed in the run keeps its fed value, its
    derivative still that of the op that makes it, and an op that writes a variable
    (assign, assign_add) is not run again: its value from the run is a constant."""
    import tracegrad
    made = {op for op in between}
    rerun = [op for op in between if not getattr(op, "writes_variable", False)]

    def compute(env, state):
        def f(*x_values):
            local = ChainMap({x: p for x, p in zip(live, x_values) if x.op not in made}, env)
            perturb = {x: p - tnp.stop_gradient(p) for x, p in zip(live, x_values)
                       if x.op in made}
            scratch = state.scratch()
            for op in rerun:
                replay([op], local, scratch, recompute=True)
                for t in op.outputs:
                    if t in state.fed:  # the fed value, with the op's derivative
                        local[t] = env[t] + (local[t] - tnp.stop_gradient(local[t]))
                    if t in perturb:
                        local[t] = local[t] + perturb[t]
            return tuple(local[y] for y in ys)
        outs, pullback = tracegrad.vjp(f, *[env[x] for x in live])
        cts = tuple(tnp.ones_like(o) if g is None else env[g] for o, g in zip(outs, grad_ys))
        return list(pullback(cts))
    return compute
