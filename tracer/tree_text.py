"""A pytree structure as text and back (the `%% outputs` line of a saved program).

`*` is a leaf; tuples, lists, dicts (any literal keys) and None are written as Python
literals; a namedtuple as `Name(field=*, ...)`, loaded back as a namedtuple of that name
and those fields (a new class, not the original one, whose module may not be loaded).
Other registered node types cannot be loaded: their auxiliary data is not text.

>>> text = tree_text(tree_flatten(((1.0,), {"a*b": None, "c": [2.0]}))[1])
>>> text
"((*,), {'a*b': None, 'c': [*]})"
>>> parse_tree_text(text) == tree_flatten(((1.0,), {"a*b": None, "c": [2.0]}))[1]
True
"""
from __future__ import annotations

import ast
import collections
import io
import tokenize

from .tree import PyTreeDef, tree_flatten

_LEAF = ...  # stands for a leaf while a structure is parsed


def tree_text(tree: PyTreeDef) -> str:
    """The text of `tree` (module docstring)."""
    return tree._str(fields=True)


def parse_tree_text(text: str) -> PyTreeDef:
    """The structure written by `tree_text`; ValueError for anything else."""
    try:
        node = ast.parse(_leaves_as_ellipsis(text), mode="eval").body
    except (SyntaxError, tokenize.TokenError) as e:
        raise ValueError(f"not a structure: {e}") from None
    return tree_flatten(_skeleton(node), is_leaf=lambda x: x is _LEAF)[1]


def _leaves_as_ellipsis(text: str) -> str:
    """`text` with each `*` token (not inside a string literal) replaced by `...`."""
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return tokenize.untokenize((t.type, "..." if (t.type, t.string) == (tokenize.OP, "*")
                                else t.string) for t in tokens)


def _key(node):
    """A dict key written as a Python literal (hashable)."""
    try:
        key = ast.literal_eval(node)
        hash(key)
    except (ValueError, TypeError, SyntaxError):
        raise ValueError(f"the dict key {ast.unparse(node)} is not a hashable Python literal") from None
    return key


def _skeleton(node):
    """A value of the structure: leaves `_LEAF`, containers rebuilt."""
    if isinstance(node, ast.Constant) and node.value in (_LEAF, None):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_skeleton(e) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict):
        return {_key(k): _skeleton(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args:
        fields = [k.arg for k in node.keywords]
        kind = collections.namedtuple(node.func.id, fields)
        return kind(*[_skeleton(k.value) for k in node.keywords])
    raise ValueError(f"cannot rebuild {ast.unparse(node)!r} (only *, None, tuples, lists, "
                     "dicts and namedtuples written with their fields)")
