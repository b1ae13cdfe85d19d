"""`tf.cond` and `tf.while_loop` (TF1 signatures) on tracegrad's control-flow primitives.

As in TF1 the branch and body functions run once, at graph construction, on
symbolic tensors; the ops they make belong to their body (`Graph.body`) and run
only inside the control-flow op.  When a run replays the op it calls
`tracegrad.cond` / `tracegrad.while_loop` with functions that replay the body's
ops, so the program holds one `cond` or `while` equation whose bodies are those
ops (closed over the outer values they read), and gradients go through the
primitives' rules.
"""
from __future__ import annotations

from collections import ChainMap

import numpy as np

import tracegrad
from tracegrad.tracer import tree_flatten, tree_unflatten

from .building import check_readable, new_op
from .graph import graph_of
from .replay import body_ops, replay
from .shapes import TensorShape, compatible, merge
from .sources import as_tensor, constant

__all__ = ["cond", "while_loop"]


def _traced_body(graph, kind, fn, args):
    """Run `fn(*args)` with its ops in a new body: (ctx, output tensors, structure)."""
    with graph.body(kind) as ctx:
        result = fn(*args)
        leaves, tree = tree_flatten(result)
        outs = [as_tensor(x) for x in leaves]
    return ctx, outs, tree


def _replayer(ops, outs, env, state, inputs=()):
    def run(*values):
        local = ChainMap(dict(zip(inputs, values)), env)
        replay(ops, local, state.scratch())
        return tuple(local[t] for t in outs)
    return run


def _joined(a, b, what):
    """The spec of a cond output whose branches give tensors `a` and `b`."""
    if a.dtype != b.dtype:
        raise ValueError(f"{what}: true_fn and false_fn return different dtypes "
                         f"({a.dtype.name} and {b.dtype.name}) for output {a!r} / {b!r}")
    if not compatible(a.shape, b.shape):  # tracegrad.cond needs one type per output
        raise ValueError(f"{what}: true_fn and false_fn return different shapes ({a.shape} and "
                         f"{b.shape}) for output {a!r} / {b!r}")
    probes = [p if p == q else None for p, q in zip(a._probes, b._probes)]
    unknown = a.shape.dims is None or b.shape.dims is None
    if not unknown and len(a.shape.dims) == len(b.shape.dims):
        shape = TensorShape([d if d == e else None for d, e in zip(a.shape.dims, b.shape.dims)])
    else:
        shape = merge(probes, True)
    return shape, a.dtype, probes


def cond(pred, true_fn=None, false_fn=None, name=None):
    """`true_fn()` if `pred` else `false_fn()`: both are built, one runs (natively)."""
    if true_fn is None or false_fn is None:
        raise TypeError("cond(): true_fn and false_fn are both required")
    pred = as_tensor(pred)
    if pred.dtype != np.bool_:
        raise TypeError(f"cond: pred must be a bool tensor, {pred!r} has dtype {pred.dtype.name}")
    if pred.shape.dims not in (None, ()):
        raise ValueError(f"cond: pred must be a scalar, {pred!r} has shape {pred.shape}")
    graph = graph_of([pred], "cond")
    t_ctx, t_outs, t_tree = _traced_body(graph, "cond", true_fn, ())
    f_ctx, f_outs, f_tree = _traced_body(graph, "cond", false_fn, ())
    if t_tree != f_tree:
        raise ValueError(f"cond: true_fn and false_fn must return the same structure, "
                         f"got {t_tree} and {f_tree}")
    check_readable(graph, [pred], "cond")
    specs = [_joined(a, b, "cond") for a, b in zip(t_outs, f_outs)]
    t_ops, f_ops = body_ops(t_outs, t_ctx), body_ops(f_outs, f_ctx)

    def compute(env, state):
        return list(tracegrad.cond(env[pred], _replayer(t_ops, t_outs, env, state),
                                   _replayer(f_ops, f_outs, env, state)))

    op = new_op(graph, "cond", name or "cond", [pred], compute, specs)
    op.extra_deps = [t.op for t in t_outs + f_outs]
    return tree_unflatten(t_tree, op.outputs)


def _loop_inputs(graph, init):
    """Symbolic stand-ins for the carries inside the body (their values come from the loop)."""
    return [new_op(graph, "Enter", "while/Identity", [], None,
                   [(t.shape, t.dtype, t._probes)]).outputs[0] for t in init]


def _check_carry(init, outs):
    for t, o in zip(init, outs):
        if o.dtype != t.dtype:
            raise TypeError(f"while_loop: loop variable {t!r} enters the loop with dtype "
                            f"{t.dtype.name}, but has dtype {o.dtype.name} after one iteration")
        if not compatible(t.shape, o.shape):
            raise ValueError(f"while_loop: input tensor {t!r} enters the loop with shape "
                             f"{t.shape}, but has shape {o.shape} after one iteration")


def _flat_while(graph, cond_fn, body_fn, init, name):
    """The while op over flat carries; `cond_fn`/`body_fn` take and return flat lists."""
    with graph.body("while") as ctx:
        carries = _loop_inputs(graph, init)
        test = as_tensor(cond_fn(carries))
        outs = [as_tensor(x) for x in body_fn(carries)]
    if test.dtype != np.bool_ or test.shape.dims not in (None, ()):
        raise TypeError(f"while_loop: cond must return a boolean scalar, got {test!r}")
    if len(outs) != len(init):
        raise ValueError(f"while_loop: body returned {len(outs)} values for {len(init)} "
                         "loop variables")
    _check_carry(init, outs)
    test_ops, step_ops = body_ops([test], ctx), body_ops(outs, ctx)

    def compute(env, state):
        def test_fn(carry):
            return _replayer(test_ops, [test], env, state, carries)(*carry)[0]

        def step_fn(carry):
            return _replayer(step_ops, outs, env, state, carries)(*carry)
        return list(tracegrad.while_loop(test_fn, step_fn, tuple(env[t] for t in init)))

    specs = [(t.shape, t.dtype, t._probes) for t in init]
    op = new_op(graph, "while", name or "while", init, compute, specs)
    op.extra_deps = [test.op] + [t.op for t in outs]
    return op.outputs


def while_loop(cond, body, loop_vars, shape_invariants=None, parallel_iterations=10,
               back_prop=True, swap_memory=False, name=None, maximum_iterations=None,
               return_same_structure=False):
    """TF1's `while_loop`: repeat `loop_vars = body(*loop_vars)` while `cond(*loop_vars)`.

    One native loop at run time; `maximum_iterations` adds a counter to the
    carries.  `shape_invariants`, `parallel_iterations` and `swap_memory` are
    accepted for compatibility and have no effect (shapes may not change).
    """
    leaves, tree = tree_flatten(loop_vars)
    init = [as_tensor(x) for x in leaves]
    graph = graph_of(init, "while_loop")
    check_readable(graph, init, "while_loop")
    call_args = isinstance(loop_vars, (list, tuple))

    def user(fn, flat):
        structured = tree_unflatten(tree, flat)
        return fn(*structured) if call_args else fn(structured)

    def body_flat(flat):
        result = user(body, flat)
        if call_args and len(flat) == 1 and not isinstance(result, (list, tuple)):
            result = [result]
        if call_args and isinstance(result, (list, tuple)):
            result = type(loop_vars)(result) if not hasattr(loop_vars, "_fields") else result
        return tree_flatten(result)[0]

    test_flat = lambda flat: user(cond, flat)  # noqa: E731
    if maximum_iterations is not None:
        limit = _limit(maximum_iterations)
        init = [constant(0, limit.dtype, name="while/iteration")] + init
        test_flat = _counted_test(test_flat, limit)
        body_flat = _counted_body(body_flat)
    outs = _flat_while(graph, test_flat, body_flat, init, name)
    outs = outs[1:] if maximum_iterations is not None else outs
    if not back_prop:  # no gradient through the loop, nor to what its body reads
        outs = [_stop(t) for t in outs]
    result = tree_unflatten(tree, outs)
    if call_args and len(outs) == 1 and not return_same_structure:
        return outs[0]
    return result


def _limit(maximum_iterations):
    """`maximum_iterations` as an integer scalar tensor (the counter takes its dtype, as TF1)."""
    limit = as_tensor(maximum_iterations)
    if limit.dtype.kind not in "iu":
        raise TypeError(f"while_loop: maximum_iterations must be an integer, got {limit!r}")
    if limit.shape.dims not in (None, ()):
        raise ValueError(f"while_loop: maximum_iterations must be a scalar, got {limit!r}")
    return limit


def _counted_test(test_flat, limit):
    from .math_ops import logical_and
    return lambda flat: logical_and(flat[0] < limit, test_flat(flat[1:]))


def _counted_body(body_flat):
    return lambda flat: [flat[0] + 1] + list(body_flat(flat[1:]))


def _stop(t):
    from .math_ops import stop_gradient
    return stop_gradient(t) if np.issubdtype(t.dtype, np.floating) else t
