"""`tracegrad.flatten_util`: `ravel_pytree`, as JAX's `jax.flatten_util`.

>>> import numpy as np
>>> from tracegrad.flatten_util import ravel_pytree
>>> flat, unravel = ravel_pytree({"w": np.ones((2, 2)), "b": np.arange(2)})
>>> flat.tolist(), flat.dtype.name
([1.0, 1.0, 1.0, 1.0, 0.0, 1.0], 'float64')
>>> back = unravel(flat * 2)
>>> back["w"].shape, back["b"].tolist(), back["b"].dtype.name
((2, 2), [0, 2], 'int64')
"""
from __future__ import annotations

import functools

import numpy as np

import tracegrad.numpy as tnp
from tracegrad.tracer.tree import tree_flatten, tree_unflatten

__all__ = ["ravel_pytree"]


def ravel_pytree(pytree):
    """(flat, unravel): the leaves of `pytree` raveled and concatenated into one 1-d
    array of their common dtype (NumPy's promotion; float64 for a tree with no leaves),
    and `unravel(flat)`, which rebuilds the tree with each leaf's shape and dtype.  Both
    work on eager tensors and under `jit`, `grad` and `vmap`."""
    leaves, treedef = tree_flatten(pytree)
    leaves = [tnp.asarray(x) for x in leaves]
    if not leaves:
        return tnp.zeros((0,), np.float64), functools.partial(_unravel, treedef, (), (), ())
    dtypes = tuple(np.dtype(x.dtype) for x in leaves)
    to_dtype = tnp.result_type(*dtypes)
    flat = tnp.concatenate([tnp.ravel(tnp.astype(x, to_dtype) if x.dtype != to_dtype else x)
                            for x in leaves])
    shapes = tuple(tuple(x.shape) for x in leaves)
    return flat, functools.partial(_unravel, treedef, shapes, dtypes, to_dtype)


def _unravel(treedef, shapes, dtypes, to_dtype, flat):
    """The tree of `treedef` from the 1-d `flat`: consecutive chunks reshaped to `shapes`
    and converted back to `dtypes`."""
    flat = tnp.asarray(flat)
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    if tuple(flat.shape) != (sum(sizes),):
        raise ValueError(f"unravel: expected a 1-d array of {sum(sizes)} elements, got "
                         f"shape {tuple(flat.shape)}")
    if shapes and np.dtype(flat.dtype) != np.dtype(to_dtype):
        raise TypeError(f"unravel: expected an array of dtype {np.dtype(to_dtype)} (the "
                        f"raveled dtype), got {np.dtype(flat.dtype)}")
    bounds = np.cumsum([0, *sizes])
    leaves = [tnp.reshape(flat[a:b], s) for a, b, s in zip(bounds[:-1], bounds[1:], shapes)]
    leaves = [x if np.dtype(x.dtype) == d else tnp.astype(x, d) for x, d in zip(leaves, dtypes)]
    return tree_unflatten(treedef, leaves)
