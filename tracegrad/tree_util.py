"""`tracegrad.tree_util`: pytrees (nested tuples, lists, dicts, namedtuples, None, and
registered node types) as JAX's `jax.tree_util` has them.

>>> import numpy as np
>>> from tracegrad import tree_util
>>> params = {"w": np.ones(2), "b": np.zeros(1)}
>>> grads = {"w": np.full(2, 0.5), "b": np.ones(1)}
>>> new = tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)
>>> new["w"].tolist(), new["b"].tolist()
([0.95, 0.95], [-0.1])

Key paths (`tree_flatten_with_path`, `tree_map_with_path`, `keystr`) name each leaf
with JAX's entries: `DictKey` for dict entries, `SequenceKey` for list and tuple
positions, `GetAttrKey` for namedtuple and dataclass fields, `FlattenedIndexKey` for the
children of other registered nodes.  Leaves come in tracegrad's order (dicts in
insertion order; JAX sorts their keys).

>>> from tracegrad.tree_util import keystr, tree_leaves_with_path
>>> [keystr(p) for p, _ in tree_leaves_with_path({"a": [1, 2], "b": 3})]
["['a'][0]", "['a'][1]", "['b']"]
"""
from __future__ import annotations

import dataclasses
import functools

from tracegrad.tracer.tree import (PyTreeDef, _children, flatten_up_to, is_dict_kind,
                                   register_pytree_node, register_pytree_node_class,
                                   tree_flatten, tree_leaves, tree_map, tree_unflatten)

__all__ = ["PyTreeDef", "register_pytree_node", "register_pytree_node_class", "tree_flatten",
           "tree_leaves", "tree_map", "tree_reduce", "tree_structure", "tree_unflatten",
           "tree_all", "tree_transpose", "Partial", "DictKey", "SequenceKey", "GetAttrKey",
           "FlattenedIndexKey", "keystr", "tree_flatten_with_path", "tree_leaves_with_path",
           "tree_map_with_path", "register_dataclass", "register_static",
           "register_pytree_with_keys", "register_pytree_with_keys_class"]


def tree_structure(tree, is_leaf=None) -> PyTreeDef:
    """The treedef of `tree` (`is_leaf(x)` may stop descent)."""
    return tree_flatten(tree, is_leaf)[1]


_NO_INITIALIZER = object()


def tree_reduce(function, tree, initializer=_NO_INITIALIZER, is_leaf=None):
    """`functools.reduce(function, leaves[, initializer])` over `tree`'s leaves."""
    leaves = tree_leaves(tree, is_leaf)
    if initializer is _NO_INITIALIZER:
        return functools.reduce(function, leaves)
    return functools.reduce(function, leaves, initializer)


def tree_all(tree, *, is_leaf=None) -> bool:
    """Whether every leaf of `tree` is truthy (True for a tree with no leaves).

    >>> from tracegrad.tree_util import tree_all
    >>> tree_all({"a": True, "b": [1, 2]}), tree_all([True, 0])
    (True, False)
    """
    return all(tree_leaves(tree, is_leaf))


def tree_transpose(outer_treedef, inner_treedef, pytree_to_transpose):
    """A tree of structure outer(inner) turned into one of structure inner(outer), as
    JAX's (`inner_treedef` None: read from the first outer leaf).

    >>> from tracegrad.tree_util import tree_structure, tree_transpose
    >>> tree_transpose(tree_structure([0, 0]), tree_structure((0, 0)), [(1, 2), (3, 4)])
    ([1, 3], [2, 4])
    """
    parts = flatten_up_to(outer_treedef, pytree_to_transpose)
    if inner_treedef is None:
        inner_treedef = tree_structure(parts[0])
    rows = [flatten_up_to(inner_treedef, p) for p in parts]
    columns = [tree_unflatten(outer_treedef, col) for col in zip(*rows)] if rows else []
    if not rows:
        columns = [tree_unflatten(outer_treedef, []) for _ in range(inner_treedef.num_leaves)]
    return tree_unflatten(inner_treedef, columns)


# ---- key paths -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DictKey:
    """The path entry of a dict's value: `['key']`."""

    key: object

    def __str__(self):
        return f"[{self.key!r}]"


@dataclasses.dataclass(frozen=True)
class SequenceKey:
    """The path entry of a list's or tuple's element: `[idx]`."""

    idx: int

    def __str__(self):
        return f"[{self.idx!r}]"


@dataclasses.dataclass(frozen=True)
class GetAttrKey:
    """The path entry of a namedtuple's or dataclass's field: `.name`."""

    name: str

    def __str__(self):
        return f".{self.name}"


@dataclasses.dataclass(frozen=True)
class FlattenedIndexKey:
    """The path entry of a registered node's child (its position): `[<flat index i>]`."""

    key: int

    def __str__(self):
        return f"[<flat index {self.key}>]"


def _simple(entry) -> str:
    """An entry's bare key (`a`, `0`, `name`), or its text for other objects."""
    for attr in ("key", "idx", "name"):
        if type(entry) in _ENTRIES and hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


_ENTRIES = (DictKey, SequenceKey, GetAttrKey, FlattenedIndexKey)


def keystr(keys, *, simple=False, separator="") -> str:
    """A key path as text: `['a'][0].b`, or with `simple=True` the bare keys joined by
    `separator` (`a/0/b` with `separator="/"`)."""
    return separator.join(map(_simple if simple else str, keys))


# Key functions of registered types: type -> node -> list of path entries of its children.
_KEYS: dict = {}


def _child_keys(x, kind, meta, kids) -> list:
    if is_dict_kind(kind):
        return [DictKey(k) for k in meta]
    if kind in (list, tuple):
        return [SequenceKey(i) for i in range(len(kids))]
    if isinstance(x, tuple) and hasattr(kind, "_fields"):
        return [GetAttrKey(name) for name in kind._fields]
    if kind in _KEYS:
        return list(_KEYS[kind](x))
    return [FlattenedIndexKey(i) for i in range(len(kids))]


def tree_flatten_with_path(tree, is_leaf=None, is_leaf_takes_path=False):
    """(`[(key_path, leaf), ...]`, treedef): the leaves of `tree_flatten` with the path
    of entries (`DictKey`, `SequenceKey`, `GetAttrKey`, `FlattenedIndexKey`) to each.

    >>> from tracegrad.tree_util import tree_flatten_with_path
    >>> pairs, _ = tree_flatten_with_path({"w": (1, 2)})
    >>> pairs
    [((DictKey(key='w'), SequenceKey(idx=0)), 1), ((DictKey(key='w'), SequenceKey(idx=1)), 2)]
    """
    out = []

    def stop(path, x):
        if is_leaf is None:
            return False
        return is_leaf(path, x) if is_leaf_takes_path else is_leaf(x)

    def walk(path, x):
        if stop(path, x):
            out.append((path, x))
            return
        kind, meta, kids = _children(x)
        if kind == "leaf":
            out.append((path, x))
            return
        for key, kid in zip(_child_keys(x, kind, meta, kids), kids):
            walk(path + (key,), kid)

    walk((), tree)
    return out, tree_flatten(tree, _stopped_nodes(out) if is_leaf_takes_path else is_leaf)[1]


def _stopped_nodes(pairs):
    """An is_leaf of the node alone that stops where the walk with paths stopped."""
    stopped = {id(x) for _, x in pairs}
    return lambda x: id(x) in stopped and _children(x)[0] != "leaf"


def tree_leaves_with_path(tree, is_leaf=None, is_leaf_takes_path=False):
    """`[(key_path, leaf), ...]` of `tree` (see `tree_flatten_with_path`)."""
    return tree_flatten_with_path(tree, is_leaf, is_leaf_takes_path)[0]


def tree_map_with_path(f, tree, *rest, is_leaf=None, is_leaf_takes_path=False):
    """`f(key_path, leaf, *others)` applied leafwise, as `tree_map` with each leaf's path.

    >>> from tracegrad.tree_util import keystr, tree_map_with_path
    >>> tree_map_with_path(lambda p, x: keystr(p) if x else x, {"a": 1, "b": [0, 2]})
    {'a': "['a']", 'b': [0, "['b'][1]"]}
    """
    pairs, treedef = tree_flatten_with_path(tree, is_leaf, is_leaf_takes_path)
    others = [flatten_up_to(treedef, r) for r in rest]
    return tree_unflatten(treedef, [f(p, x, *ys) for (p, x), *ys in zip(pairs, *others)])


# ---- registering node types ------------------------------------------------------------

def register_pytree_with_keys(nodetype, flatten_with_keys, unflatten_func, flatten_func=None):
    """Register `nodetype` with `flatten_with_keys(x) -> ([(key, child), ...], aux)`
    giving the path entries of its children (JAX's signature)."""
    def flatten(x):
        pairs, aux = flatten_with_keys(x)
        return [c for _, c in pairs], aux
    register_pytree_node(nodetype, flatten_func or flatten, unflatten_func)
    _KEYS[nodetype] = lambda x: [k for k, _ in flatten_with_keys(x)[0]]
    return nodetype


def register_pytree_with_keys_class(cls):
    """Class decorator: `tree_flatten_with_keys(self)` and the classmethod
    `tree_unflatten(aux, children)` register `cls` with keys."""
    flatten = getattr(cls, "tree_flatten", None)
    return register_pytree_with_keys(cls, lambda x: x.tree_flatten_with_keys(),
                                     cls.tree_unflatten,
                                     None if flatten is None else (lambda x: x.tree_flatten()))


def _dataclass_fields(nodetype, data_fields, meta_fields, drop_fields):
    if (data_fields is None) != (meta_fields is None):
        raise TypeError("register_dataclass: data_fields and meta_fields must both be "
                        "specified when either is specified")
    if data_fields is None:
        if not dataclasses.is_dataclass(nodetype):
            raise TypeError("register_dataclass: data_fields and meta_fields are required "
                            f"when nodetype is not a dataclass (got {nodetype!r})")
        fields = [f for f in dataclasses.fields(nodetype) if f.name not in drop_fields]
        data_fields = [f.name for f in fields if not f.metadata.get("static", False)]
        meta_fields = [f.name for f in fields if f.metadata.get("static", False)]
    data_fields, meta_fields = tuple(data_fields), tuple(meta_fields)
    if set(data_fields) & set(meta_fields):
        raise ValueError("data_fields and meta_fields must not overlap: "
                         f"{sorted(set(data_fields) & set(meta_fields))}")
    return data_fields, meta_fields


def register_dataclass(nodetype, data_fields=None, meta_fields=None, drop_fields=()):
    """Register a (data)class as a pytree node: `data_fields` are its children (leaves
    or subtrees), `meta_fields` static structure (hashable); rebuilt with
    `nodetype(**fields)`.  With neither given, a dataclass's fields are data unless
    declared `field(metadata={"static": True})`.  Returns `nodetype` (a decorator).

    >>> import dataclasses
    >>> from tracegrad.tree_util import register_dataclass, tree_leaves
    >>> @dataclasses.dataclass
    ... class Layer:
    ...     w: float
    ...     name: str = dataclasses.field(metadata={"static": True})
    >>> _ = register_dataclass(Layer)
    >>> tree_leaves(Layer(1.5, "dense"))
    [1.5]
    """
    data_fields, meta_fields = _dataclass_fields(nodetype, data_fields, meta_fields, drop_fields)

    def flatten(x):
        return (tuple(getattr(x, n) for n in data_fields),
                tuple(getattr(x, n) for n in meta_fields))

    def unflatten(meta, data):
        return nodetype(**dict(zip(meta_fields, meta)), **dict(zip(data_fields, data)))

    register_pytree_node(nodetype, flatten, unflatten)
    _KEYS[nodetype] = lambda x: [GetAttrKey(n) for n in data_fields]
    return nodetype


def register_static(cls):
    """Register `cls` as a pytree node with no leaves: an instance (hashable) is static
    structure, so `jit` specializes on it rather than tracing it."""
    register_pytree_node(cls, lambda x: ((), x), lambda x, _: x)
    return cls


# ---- Partial ---------------------------------------------------------------------------

class _HashableCallableShim:
    """A functools.partial (or Partial) given to Partial as its function: kept whole, its
    arguments static, and compared by the partial's own equality, as JAX does."""

    def __init__(self, fun):
        self.fun = fun

    def __call__(self, *args, **kw):
        return self.fun(*args, **kw)

    def __hash__(self):
        return hash(self.fun)

    def __eq__(self, other):
        return self.fun == (other.fun if isinstance(other, _HashableCallableShim) else other)


class Partial(functools.partial):
    """`functools.partial` that is a pytree: its leaves are the bound positional and
    keyword arguments, the function is static structure (JAX's `tree_util.Partial`), so
    it can be passed to and returned from `jit`, `grad` and the loops.

    >>> import numpy as np
    >>> from tracegrad.tree_util import Partial, tree_leaves
    >>> add = Partial(np.add, np.ones(2))
    >>> tree_leaves(add), add(1.0).tolist()
    ([array([1., 1.])], [2.0, 2.0])
    """

    def __new__(cls, func, *args, **kw):
        if not isinstance(func, functools.partial):
            return super().__new__(cls, func, *args, **kw)
        # A partial given as the function stays whole (functools.partial would merge its
        # arguments into this one's, making them leaves), as in JAX.
        shim = _HashableCallableShim(func)
        out = super().__new__(cls, shim, *args, **kw)
        shim.func, shim.args, shim.keywords = func.func, func.args, func.keywords
        return out


register_pytree_node(Partial, lambda p: ((p.args, p.keywords), p.func),
                     lambda func, xs: Partial(func, *xs[0], **xs[1]))
