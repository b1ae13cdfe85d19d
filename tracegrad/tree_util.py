"""`tracegrad.tree_util`: pytrees (nested tuples, lists, dicts, namedtuples, None, and
registered node types) as JAX's `jax.tree_util` has them.

>>> import numpy as np
>>> from tracegrad import tree_util
>>> params = {"w": np.ones(2), "b": np.zeros(1)}
>>> grads = {"w": np.full(2, 0.5), "b": np.ones(1)}
>>> new = tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)
>>> new["w"].tolist(), new["b"].tolist()
([0.95, 0.95], [-0.1])
"""
from tracegrad.tracer.tree import (PyTreeDef, register_pytree_node, register_pytree_node_class,
                                   tree_flatten, tree_leaves, tree_map, tree_reduce,
                                   tree_structure, tree_unflatten)

__all__ = ["PyTreeDef", "register_pytree_node", "register_pytree_node_class", "tree_flatten",
           "tree_leaves", "tree_map", "tree_reduce", "tree_structure", "tree_unflatten"]
