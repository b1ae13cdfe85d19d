"""Types of loop carries and branch outputs: normalizing leaves, naming them, and
the errors raised when a body's output does not fit (JAX's messages).

A carry's type is fixed by its initial value, as in JAX: the body must return
the same pytree structure with the same shape and dtype at every leaf.  A
Python scalar is *weak*: a weak initial leaf takes the dtype the body returns
for it (the loop is traced again with the promoted value), and a Python
scalar returned by the body takes the dtype of its carry.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import ShapedArray, TracedValue, ops, user_source_location

from . import dtypes
from . import numpy as tnp
from .tree import flatten_up_to, is_dict_kind, tree_flatten, tree_unflatten


def type_name(aval) -> str:
    """`float32[3,4]`: the user-facing name of an abstract value."""
    return f"{np.dtype(aval.dtype).name}[{','.join(map(str, aval.shape))}]"


def value_name(x) -> str:
    """What a user passed or returned, for messages: an array's type (`f64[3]`), else the
    Python type's name."""
    if isinstance(x, (np.ndarray, np.generic)) or hasattr(x, "_tg_trace"):  # traced too
        return f"an array {type_name(ShapedArray(tuple(ops.shape(x)), ops.dtype(x)))}"
    return type(x).__name__


def _keys(treedef) -> list:
    if is_dict_kind(treedef.kind):
        return [f"[{k!r}]" for k in treedef.meta]
    if treedef.kind in (tuple, list):
        return [f"[{i}]" for i in range(len(treedef.children))]
    return [f".{name}" for name in treedef.kind._fields]  # namedtuple


def leaf_paths(treedef, root: str) -> list:
    """The path of every leaf of `treedef`, written as Python indexing from `root`."""
    if treedef.kind == "leaf":
        return [root]
    if treedef.kind is None:
        return []
    return [p for key, child in zip(_keys(treedef), treedef.children)
            for p in leaf_paths(child, root + key)]


def _describe(treedef) -> str:
    if treedef.kind == "leaf":
        return "an array"
    if treedef.kind is None:
        return "None"
    if is_dict_kind(treedef.kind):
        return f"a dict with keys {list(treedef.meta)}"
    if treedef.kind in (tuple, list):
        return f"a {treedef.kind.__name__} of length {len(treedef.children)}"
    return f"a {treedef.kind.__name__}"


def tree_difference(a, b, root: str):
    """(path, description in a, description in b) of the first node where the
    structures differ, or None when they are equal."""
    if a == b:
        return None
    if a.kind != b.kind or a.meta != b.meta or len(a.children) != len(b.children):
        return root, _describe(a), _describe(b)
    for key, ca, cb in zip(_keys(a), a.children, b.children):
        found = tree_difference(ca, cb, root + key)
        if found is not None:
            return found
    return None


# ---- leaves ----------------------------------------------------------------------------

def leaf_value(x):
    """An array leaf as the operations take it: a traced scalar's symbolic value,
    an array, a Tensor, a traced value, or a Python scalar (weak) as it is."""
    symbolic = tnp.symbolic_value(x)
    if symbolic is not None:
        return symbolic
    if dtypes.is_weak(x) or hasattr(x, "_tg_trace"):
        return x
    if isinstance(x, (np.ndarray, np.generic)):
        return x
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"loop carries, xs and operands must be arrays or numbers; got "
                        f"{type(x).__name__}")
    return arr


def leaf_aval(x) -> ShapedArray:
    if dtypes.is_weak(x):
        return ShapedArray((), dtypes.weak_default(x))
    aval = ops.aval(x)
    dtypes.check(aval.dtype, "loop value")
    return ShapedArray(aval.shape, aval.dtype)


_KIND_RANK = {"b": 0, "i": 1, "u": 1, "f": 2}


def weak_fits(x, dtype) -> bool:
    """Whether a Python scalar may take `dtype` (JAX's weak types: a float never becomes an
    int, an int never a bool; else it would be truncated silently)."""
    return _KIND_RANK[dtypes.weak_default(x).kind] <= _KIND_RANK.get(np.dtype(dtype).kind, 2)


def as_weak_output(x, dtype):
    """A Python scalar a body returned, in `dtype` where it fits (else in its own type, so
    that the type check reports the mismatch)."""
    return np.asarray(x, dtype if weak_fits(x, dtype) else dtypes.weak_default(x))


def as_dtype(x, dtype):
    """`x` (a leaf) converted to `dtype`: Python scalars become numpy scalars."""
    if dtypes.is_weak(x):
        return np.asarray(x, dtype)
    return x if np.dtype(ops.dtype(x)) == np.dtype(dtype) else ops.convert(x, dtype)


def is_traced(x) -> bool:
    return isinstance(x, TracedValue)


# ---- carries -----------------------------------------------------------------------------

class CarryType:
    """The type of a loop carry (or of branch outputs): structure, leaf avals,
    which initial leaves are weak, and how errors name the leaves."""

    def __init__(self, what: str, tree, leaves, root: str):
        self.what, self.tree, self.root = what, tree, root
        self.values = [leaf_value(x) for x in leaves]
        self.weak = [dtypes.is_weak(x) for x in self.values]
        self.avals = [leaf_aval(x) for x in self.values]
        self.paths = leaf_paths(tree, root)

    @classmethod
    def of(cls, what, tree_value, root):
        leaves, tree = tree_flatten(tree_value)
        return cls(what, tree, leaves, root)

    def arrays(self) -> list:
        """The leaves with weak scalars made numpy scalars of their dtype."""
        return [np.asarray(v, a.dtype) if w else v
                for v, w, a in zip(self.values, self.weak, self.avals)]

    def tree_value(self):
        """The initial value as a pytree (weak scalars kept weak)."""
        return tree_unflatten(self.tree, self.values)

    def conform(self, out):
        """`out` with its dicts' entries in the carry's key order where the key sets agree:
        JAX sorts dict keys, so a body may build its output dict in any order."""
        try:
            return tree_unflatten(self.tree, flatten_up_to(self.tree, out))
        except ValueError:  # another structure: `check_structure` says where
            return out

    def check_structure(self, out_tree):
        diff = tree_difference(self.tree, out_tree, self.root)
        if diff is not None:
            path, a, b = diff
            raise TypeError(located(
                f"{self.what} carry input and carry output must have the same pytree "
                f"structure, but they differ:\n  * the input carry {path} is {a} but the "
                f"corresponding component of the carry output is {b}, so the structures "
                f"do not match.\nRevise the function so that its output has the structure "
                f"of the carry {self.tree}."))

    def promotions(self, out_avals) -> dict:
        """Weak initial leaves whose output has another dtype: index -> that dtype."""
        return {i: b.dtype for i, (w, a, b) in enumerate(zip(self.weak, self.avals, out_avals))
                if w and a.shape == b.shape and a.dtype != b.dtype}

    def promote(self, promotions: dict):
        for i, dtype in promotions.items():
            self.values[i] = np.asarray(self.values[i], dtype)
            self.weak[i] = False
            self.avals[i] = ShapedArray(self.avals[i].shape, dtype)

    def check_types(self, out_avals, in_avals=None):
        in_avals = self.avals if in_avals is None else in_avals
        bad = [_mismatch(p, a, b) for p, a, b in zip(self.paths, in_avals, out_avals) if a != b]
        if bad:
            raise TypeError(located(
                f"{self.what} carry input and carry output must have equal types (shapes and "
                f"dtypes of arrays), but they differ:\n" + "\n".join(bad) +
                "\nRevise the function so that all output types (shapes and dtypes) match "
                "the corresponding input types."))


def located(message: str) -> str:
    """`message` with the user's line (the loop's or branch's call) appended, as traced
    shape errors have it."""
    where = user_source_location()
    return f"{message}\n  at {where}" if where else message


def _mismatch(path, a, b) -> str:
    what = [w for w, differ in (("shapes", a.shape != b.shape), ("dtypes", a.dtype != b.dtype))
            if differ]
    return (f"  * the input carry component {path} has type {type_name(a)} but the "
            f"corresponding output carry component has type {type_name(b)}, so the "
            f"{' and '.join(what)} do not match")


# ---- eager loop and branch values ---------------------------------------------------------

def owned(leaves) -> list:
    """Array leaves copied: an eager loop's initial carry, so that a body updating its
    carry in place (`c[0] += x`, `c.mul_(2)`) never writes the caller's array or tensor, as
    in the traced and compiled loops (values, as JAX's).  A tensor's copy is its `clone()`,
    through which gradients flow."""
    return [_copy(v) for v in leaves]


def unshared(leaves, others) -> list:
    """Array leaves that may share memory with one of `others` copied (a y that is the
    carry, which the next step may update in place); the rest as they are."""
    buffers = [b for b in map(_buffer, others) if b is not None]
    return [_copy(v) if (b := _buffer(v)) is not None
            and any(np.may_share_memory(b, o) for o in buffers) else v for v in leaves]


def _buffer(v):
    """The ndarray holding a leaf's values (an eager tensor's data), or None."""
    if isinstance(v, np.ndarray):
        return v
    return v._data if isinstance(v, _tensor_type()) else None


def _copy(v):
    if isinstance(v, np.ndarray):
        return np.array(v)
    return v.clone() if isinstance(v, _tensor_type()) else v


def _tensor_type():
    from .tensor import Tensor  # (tensor.py imports the loops' modules)
    return Tensor


class LoopArray(np.ndarray):
    """A NumPy array as an eager loop or branch body sees it: with JAX's `.at` updates
    (tracer/at.py), whose results have them too, so a body written for JAX
    (`c.at[i].set(v).at[j].add(w)`) runs eagerly as it does traced."""

    @property
    def at(self):
        from .at import At
        return _LoopAt(At(self.view(np.ndarray)))


class _LoopAt:
    """`x.at` of a LoopArray: the updates of tracer/at.py, their results LoopArrays."""

    __slots__ = ("at",)

    def __init__(self, at):
        self.at = at

    def __getitem__(self, idx):
        return _LoopUpdate(self.at[idx])


class _LoopUpdate:
    __slots__ = ("update",)

    def __init__(self, update):
        self.update = update

    def __getattr__(self, name):
        method = getattr(self.update, name)
        return lambda *args, **kwargs: _as_loop_array(method(*args, **kwargs))


def _as_loop_array(v):
    return v.view(LoopArray) if isinstance(v, np.ndarray) else v


def with_at(leaves) -> list:
    """The body's view of the loop's values: NumPy arrays as LoopArrays (no copy)."""
    return [_as_loop_array(v) for v in leaves]


def plain(leaves) -> list:
    """The loop's results as plain NumPy arrays again."""
    return [v.view(np.ndarray) if isinstance(v, LoopArray) else v for v in leaves]
