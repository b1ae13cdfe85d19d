"""Pytrees: nested tuples, lists, dicts (and namedtuples) with arrays at the leaves.

`None` is an empty node (no leaves), as in JAX.  Dict keys keep their order; where two
trees meet (`tree_map`, `flatten_like`) dict entries are matched by key.

>>> leaves, treedef = tree_flatten({"w": 1, "b": (2, [3, None])})
>>> leaves
[1, 2, 3]
>>> treedef
PyTreeDef({'w': *, 'b': (*, [*, None])})
>>> tree_unflatten(treedef, [10, 20, 30])
{'w': 10, 'b': (20, [30, None])}
"""
from __future__ import annotations

import collections

import numpy as np


class PyTreeDef:
    """The structure of a pytree: a node kind, its metadata (dict keys) and children."""

    __slots__ = ("kind", "meta", "children", "num_leaves")

    def __init__(self, kind, meta=None, children=()):
        self.kind, self.meta, self.children = kind, meta, tuple(children)
        self.num_leaves = 1 if kind == "leaf" else sum(c.num_leaves for c in self.children)

    def _key(self):
        return (self.kind, self.meta, tuple(c._key() for c in self.children))

    def __eq__(self, other):
        return isinstance(other, PyTreeDef) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def _str(self, fields: bool = False) -> str:
        """The structure as text; `fields`: namedtuples as `Name(field=*, ...)` (the form
        a saved program's outputs are written in, tree_text.py)."""
        if self.kind == "leaf":
            return "*"
        if self.kind is None:
            return "None"
        inner = [c._str(fields) for c in self.children]
        if is_dict_kind(self.kind):
            return "{" + ", ".join(f"{_key_text(k)}: {v}" for k, v in zip(self.meta, inner)) + "}"
        if self.kind is list:
            return "[" + ", ".join(inner) + "]"
        if self.kind is tuple:
            return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"
        if fields and hasattr(self.kind, "_fields"):
            inner = [f"{name}={v}" for name, v in zip(self.kind._fields, inner)]
        return f"{self.kind.__name__}(" + ", ".join(inner) + ")"

    def __repr__(self):
        return f"PyTreeDef({self._str()})"


def _key_text(key) -> str:
    """A dict key as a Python literal: a numpy scalar (np.unique's, np.arange's) as its
    Python value, which compares and hashes equal to it."""
    return repr(key.item() if isinstance(key, np.generic) else key)


LEAF = PyTreeDef("leaf")


class DefaultDictKind:
    """The node kind of a `collections.defaultdict`: its default factory is part of the
    structure, so that the rebuilt node is a defaultdict with the same factory (JAX's)."""

    __slots__ = ("factory",)
    __name__ = "defaultdict"

    def __init__(self, factory):
        self.factory = factory

    def __eq__(self, other):
        return isinstance(other, DefaultDictKind) and self.factory == other.factory

    def __hash__(self):
        return hash(("defaultdict", self.factory))

    def __call__(self, pairs):
        return collections.defaultdict(self.factory, pairs)


def is_dict_kind(kind) -> bool:
    """A dict node's kind: dict, collections.OrderedDict, or a DefaultDictKind (each
    rebuilt as its own type; keys are matched as dict keys)."""
    return kind is dict or kind is collections.OrderedDict or isinstance(kind, DefaultDictKind)


def _dict_kind(x):
    if type(x) is collections.OrderedDict:
        return collections.OrderedDict
    if isinstance(x, collections.defaultdict):
        return DefaultDictKind(x.default_factory)
    return dict


# Node types registered by users: type -> (flatten(x) -> (children, aux), unflatten(aux, children))
_REGISTRY: dict = {}


def register_pytree_node(nodetype, flatten_func, unflatten_func):
    """Make instances of `nodetype` pytree nodes (JAX's signature): `flatten_func(x)` gives
    `(children, aux_data)` (aux_data hashable: it is part of the structure) and
    `unflatten_func(aux_data, children)` rebuilds the node.

    >>> from tracegrad.tree_util import register_pytree_node, tree_flatten, tree_unflatten
    >>> class Pair:
    ...     def __init__(self, a, b): self.a, self.b = a, b
    >>> register_pytree_node(Pair, lambda p: ((p.a, p.b), None), lambda _, c: Pair(*c))
    >>> leaves, tree = tree_flatten(Pair(1, (2, 3)))
    >>> leaves, tree
    ([1, 2, 3], PyTreeDef(Pair(*, (*, *))))
    >>> tree_unflatten(tree, [4, 5, 6]).b
    (5, 6)
    """
    if nodetype in (tuple, list, dict, type(None)) or nodetype in _REGISTRY:
        raise ValueError(f"{nodetype.__name__} is already a pytree node type")
    _REGISTRY[nodetype] = (flatten_func, unflatten_func)


def is_registered_node(x) -> bool:
    return type(x) in _REGISTRY


def register_pytree_node_class(cls):
    """Class decorator: `cls.tree_flatten(self) -> (children, aux)` and the classmethod
    `cls.tree_unflatten(aux, children)` make it a pytree node (as in JAX)."""
    register_pytree_node(cls, lambda x: x.tree_flatten(), cls.tree_unflatten)
    return cls


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _children(x):
    """(kind, meta, children) of a container node, or None for a leaf."""
    if x is None:
        return None, None, ()
    if isinstance(x, dict):
        return _dict_kind(x), tuple(x), tuple(x.values())
    if _is_namedtuple(x):
        return type(x), None, tuple(x)
    if type(x) in (tuple, list):
        return type(x), None, tuple(x)
    registered = _REGISTRY.get(type(x))
    if registered is not None:
        children, aux = registered[0](x)
        return type(x), aux, tuple(children)
    return "leaf", None, None


def tree_flatten(tree, is_leaf=None):
    """(leaves, treedef), leaves in depth-first order; `is_leaf(x)` may stop descent."""
    leaves = []

    def build(x):
        # Recursion depth is the nesting depth of containers, not the number of leaves.
        if is_leaf is not None and is_leaf(x):
            leaves.append(x)
            return LEAF
        kind, meta, kids = _children(x)
        if kind == "leaf":
            leaves.append(x)
            return LEAF
        return PyTreeDef(kind, meta, [build(k) for k in kids])

    try:
        treedef = build(tree)
    except RecursionError:
        raise RecursionError(_TOO_DEEP) from None
    return leaves, treedef


def tree_unflatten(treedef: PyTreeDef, leaves):
    """The pytree of structure `treedef` with `leaves` in depth-first order."""
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"{treedef} takes {treedef.num_leaves} leaves, got {len(leaves)}")
    it = iter(leaves)

    def build(d):
        if d.kind == "leaf":
            return next(it)
        if d.kind is None:
            return None
        kids = [build(c) for c in d.children]
        if is_dict_kind(d.kind):
            return d.kind(zip(d.meta, kids))
        if d.kind in (tuple, list):
            return d.kind(kids)
        if d.kind in _REGISTRY:
            return _REGISTRY[d.kind][1](d.meta, kids)
        return d.kind(*kids)  # namedtuple

    try:
        return build(treedef)
    except RecursionError:
        raise RecursionError(_TOO_DEEP) from None


_TOO_DEEP = ("a pytree nested deeper than Python's recursion limit allows (each level of "
             "nesting is a few Python frames): raise it with sys.setrecursionlimit, or nest "
             "less (a list of arrays rather than lists in lists)")


def tree_map(f, tree, *rest, is_leaf=None):
    """`f` applied leafwise to `tree` and to the matching parts of `rest`, as JAX's:
    each of `rest` has `tree`'s structure, or `tree`'s as a prefix (a leaf of `tree`
    meets a whole subtree); dict entries are matched by key, whatever their order.

    >>> from tracegrad.tree_util import tree_map
    >>> tree_map(lambda x, y: x - y, {"w": 1.0, "b": 10.0}, {"b": 2.0, "w": 3.0})
    {'w': -2.0, 'b': 8.0}
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = [flatten_up_to(treedef, r) for r in rest]
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others)])


def flatten_up_to(treedef: PyTreeDef, tree) -> list:
    """The parts of `tree` at the leaves of `treedef`, in `treedef`'s order (dict entries
    by key): `tree` must have `treedef`'s structure down to its leaves, else ValueError
    naming where they differ."""
    return _flatten_matched(treedef, tree, exact=False)


def flatten_like(tree, treedef: PyTreeDef) -> list:
    """The leaves of `tree`, which must have exactly `treedef`'s structure, in `treedef`'s
    order: where two trees meet, dicts match by key whatever their insertion order (JAX
    sorts keys, so its treedefs do not see the order); else ValueError naming where.

    >>> flatten_like({"b": 2, "a": 1}, tree_structure({"a": 0, "b": 0}))
    [1, 2]
    """
    return _flatten_matched(treedef, tree, exact=True)


def conform(tree, treedef: PyTreeDef):
    """`tree` rebuilt in `treedef`'s dict key order when it matches `treedef` by key; else
    `tree` unchanged, so that the caller's own structure check reports the difference."""
    if tree_structure(tree) == treedef:  # nothing to reorder: the very same objects
        return tree
    try:
        return tree_unflatten(treedef, flatten_like(tree, treedef))
    except ValueError:
        return tree


def _flatten_matched(treedef, tree, exact):
    """flatten_up_to, or flatten_like when `exact` (a leaf of `treedef` meets a leaf)."""
    out = []

    def walk(d, x, path):
        if d.kind == "leaf":
            if exact and _children(x)[0] != "leaf":
                raise _mismatch(path, d, x)
            out.append(x)
            return
        kind, meta, kids = _children(x)
        if kind != d.kind:
            raise _mismatch(path, d, x)
        if is_dict_kind(d.kind):
            if set(meta) != set(d.meta):
                raise ValueError(f"pytree structure mismatch at {path or 'the root'}: dict "
                                 f"keys {sorted(map(repr, meta))} where {sorted(map(repr, d.meta))}"
                                 " were expected")
            kids, meta = tuple(x[k] for k in d.meta), d.meta
        if len(kids) != len(d.children) or meta != d.meta:
            raise _mismatch(path, d, x)
        for i, (c, k) in enumerate(zip(d.children, kids)):
            walk(c, k, f"{path}[{d.meta[i]!r}]" if is_dict_kind(d.kind) else f"{path}[{i}]")

    walk(treedef, tree, "")
    return out


def _mismatch(path, d, x) -> ValueError:
    return ValueError(f"pytree structure mismatch at {path or 'the root'}: expected "
                      f"{d._str()}, got {_describe(x)}")


def _describe(x) -> str:
    leaves, treedef = tree_flatten(x)
    return treedef._str() if treedef.kind != "leaf" else type(x).__name__


def tree_leaves(tree, is_leaf=None):
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree) -> PyTreeDef:
    return tree_flatten(tree)[1]


def tree_reduce(function, tree, initializer=None):
    """`functools.reduce(function, tree_leaves(tree)[, initializer])`."""
    import functools

    leaves = tree_leaves(tree)
    return (functools.reduce(function, leaves) if initializer is None
            else functools.reduce(function, leaves, initializer))
