"""`tracegrad.tree`: JAX's `jax.tree` namespace, the short names of `tracegrad.tree_util`.

>>> import tracegrad
>>> tracegrad.tree.map(lambda x: x * 2, {"a": 1, "b": (2, 3)})
{'a': 2, 'b': (4, 6)}
>>> tracegrad.tree.leaves({"a": 1, "b": (2, 3)})
[1, 2, 3]
"""
from __future__ import annotations

from .tree_util import (_NO_INITIALIZER, tree_all, tree_flatten, tree_flatten_with_path,
                        tree_leaves, tree_leaves_with_path, tree_map, tree_map_with_path,
                        tree_reduce, tree_structure, tree_transpose, tree_unflatten)

__all__ = ["all", "flatten", "flatten_with_path", "leaves", "leaves_with_path", "map",
           "map_with_path", "reduce", "structure", "transpose", "unflatten"]


def all(tree, *, is_leaf=None) -> bool:  # noqa: A001 (JAX's name)
    """Whether every leaf is truthy."""
    return tree_all(tree, is_leaf=is_leaf)


def flatten(tree, is_leaf=None):
    """(leaves, treedef)."""
    return tree_flatten(tree, is_leaf)


def flatten_with_path(tree, is_leaf=None, is_leaf_takes_path=False):
    """([(key_path, leaf), ...], treedef)."""
    return tree_flatten_with_path(tree, is_leaf, is_leaf_takes_path)


def leaves(tree, is_leaf=None):
    """The leaves, depth first."""
    return tree_leaves(tree, is_leaf)


def leaves_with_path(tree, is_leaf=None, is_leaf_takes_path=False):
    """[(key_path, leaf), ...]."""
    return tree_leaves_with_path(tree, is_leaf, is_leaf_takes_path)


def map(f, tree, *rest, is_leaf=None):  # noqa: A001 (JAX's name)
    """`f` applied leafwise to `tree` and the matching parts of `rest`."""
    return tree_map(f, tree, *rest, is_leaf=is_leaf)


def map_with_path(f, tree, *rest, is_leaf=None, is_leaf_takes_path=False):
    """`f(key_path, leaf, *others)` applied leafwise."""
    return tree_map_with_path(f, tree, *rest, is_leaf=is_leaf,
                              is_leaf_takes_path=is_leaf_takes_path)


def reduce(function, tree, initializer=_NO_INITIALIZER, is_leaf=None):
    """`functools.reduce` over the leaves."""
    return tree_reduce(function, tree, initializer, is_leaf)


def structure(tree, is_leaf=None):
    """The treedef."""
    return tree_structure(tree, is_leaf)


def transpose(outer_treedef, inner_treedef, pytree_to_transpose):
    """outer(inner) turned into inner(outer)."""
    return tree_transpose(outer_treedef, inner_treedef, pytree_to_transpose)


def unflatten(treedef, leaves):
    """The tree of `treedef` with `leaves`."""
    return tree_unflatten(treedef, leaves)
