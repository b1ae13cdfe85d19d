"""JAX's shape-only helpers: `ShapeDtypeStruct`, `eval_shape` and `make_jaxpr`.

`eval_shape(fun, *args)` traces `fun` abstractly (shapes and dtypes, no values, nothing
computed) and gives each output leaf as a `ShapeDtypeStruct`; an argument may itself be a
`ShapeDtypeStruct` (or anything with `shape` and `dtype`).  `make_jaxpr(fun)(*args)` is
`trace` without the example values: the printed program of an abstract trace, so a
Python decision on a traced value raises, as in JAX.

>>> import numpy as np, tracegrad as tg
>>> tg.eval_shape(lambda x, w: np.tanh(x @ w), tg.ShapeDtypeStruct((8, 3), np.float32),
...               np.ones((3, 5), np.float32))
ShapeDtypeStruct(shape=(8, 5), dtype=float32)
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import ShapedArray
from tracegrad.tracer import make_graph, tree_flatten, tree_unflatten

__all__ = ["ShapeDtypeStruct", "eval_shape", "make_jaxpr"]


class ShapeDtypeStruct(ShapedArray):
    """The type of an array: its shape and dtype (JAX's name for tracegrad's ShapedArray)."""

    def __repr__(self):
        return f"ShapeDtypeStruct(shape={self.shape}, dtype={self.dtype.name})"


def _placeholder(x):
    """An argument leaf as a value of its type that allocates nothing."""
    if isinstance(x, ShapeDtypeStruct) or (hasattr(x, "shape") and hasattr(x, "dtype")
                                            and not isinstance(x, np.ndarray)):
        return np.broadcast_to(np.zeros((), np.dtype(x.dtype)), tuple(x.shape))
    return x


def _abstract_args(args):
    leaves, tree = tree_flatten(tuple(args), is_leaf=lambda x: isinstance(x, ShapeDtypeStruct))
    return tree_unflatten(tree, [_placeholder(x) for x in leaves])


def eval_shape(fun, *args, **kwargs):
    """The output of `fun(*args, **kwargs)` as `ShapeDtypeStruct`s, from an abstract trace
    (no value is computed; keyword arguments are passed as they are)."""
    prog = make_graph(lambda *a: fun(*a, **kwargs), _abstract_args(args), concrete=False)
    types = [ShapeDtypeStruct(a.shape, a.dtype) for a in prog.graph.out_avals]
    return tree_unflatten(prog.out_tree, types)


def make_jaxpr(fun, static_argnums=()):
    """`make_jaxpr(fun)(*args)`: the program of an abstract trace of `fun` (print it to
    read it), as `jax.make_jaxpr`; `tracegrad.trace` keeps the example values instead."""
    static = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    def traced(*args):
        return make_graph(fun, _abstract_args(args), static, concrete=False)
    traced.__name__ = f"make_jaxpr({getattr(fun, '__name__', 'fun')})"
    return traced
