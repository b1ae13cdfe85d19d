"""Argument handling for compiled functions: what is an array, what is static,
and the cache key of a call.  Runs before any native code: everything a user
can pass is either converted the way numpy would convert it or rejected with
a message naming the argument.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import TracedValue
from tracegrad.tracer import tree_flatten, tree_unflatten

SUPPORTED = {np.dtype(t) for t in (np.float32, np.float64, np.bool_, np.int32, np.int64)}
_ARRAY_TYPES = (np.ndarray, np.generic, list)


class SpecArgs:
    """The arrays of one call (C-contiguous, supported dtypes) and its cache key.

    `slots[i]` says what positional argument i is: ("array", k) for the k-th
    array, ("tree", k, n, treedef) for a pytree (dict, list, tuple) whose n
    leaves are arrays k..k+n-1, or ("static", value).
    """

    __slots__ = ("arrays", "slots", "key")

    def __init__(self, arrays, slots, key):
        self.arrays, self.slots, self.key = arrays, slots, key

    @property
    def n_args(self) -> int:
        return len(self.slots)

    @property
    def direct(self) -> bool:
        """Every argument is one array: the call can go straight to native code."""
        return all(s[0] == "array" for s in self.slots)

    def bind(self, fun):
        """`fun` as a function of the flat array arguments only (statics baked in)."""
        def flat(*arrays):
            return fun(*[_rebuild(slot, arrays) for slot in self.slots])
        flat.__name__ = getattr(fun, "__name__", "f")
        return flat

    def describe(self):
        parts = []
        for i, slot in enumerate(self.slots):
            if slot[0] == "static":
                parts.append(f"arg{i}={slot[1]!r}")
            else:
                leaves = _rebuild(slot, [f"{a.dtype}{list(a.shape)}" for a in self.arrays])
                parts.append(f"arg{i}:{leaves}")
        return "(" + ", ".join(parts) + ")"

    def grad_positions(self, argnums):
        """Flat array indices to differentiate, and the structure of the gradients."""
        if argnums is None:
            wanted = [i for i, s in enumerate(self.slots) if s[0] != "static"]
            single = False
        else:
            single = isinstance(argnums, int)
            wanted = [n + self.n_args if n < 0 else n for n in ((argnums,) if single else argnums)]
        indices, templates = [], []
        for n in wanted:
            span = self._span(n, argnums)
            indices += span
            templates.append(_rebuild(self.slots[n], {i: 0 for i in span}))
        return tuple(indices), (templates[0] if single else tuple(templates))

    def _span(self, n, argnums):
        slot = self.slots[n] if 0 <= n < self.n_args else ("static", None)
        if slot[0] == "static":
            raise TypeError(f"argnums={argnums!r}: argument {n} is not an array argument "
                            f"of this call {self.describe()}")
        span = [slot[1]] if slot[0] == "array" else list(range(slot[1], slot[1] + slot[2]))
        for i in span:
            if self.arrays[i].dtype.kind != "f":
                raise TypeError(f"argnums={argnums!r}: argument {n} has dtype "
                                f"{self.arrays[i].dtype}; gradients need float32 or float64")
        return span


def _rebuild(slot, flat):
    if slot[0] == "array":
        return flat[slot[1]]
    if slot[0] == "tree":
        _, start, n, treedef = slot
        return tree_unflatten(treedef, [flat[i] for i in range(start, start + n)])
    return slot[1]


def _as_array(x, pos, fname):
    concrete = getattr(x, "_tg_concrete", None)
    if concrete is not None:
        x = concrete()
    if type(x) is not np.ndarray:
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{fname}: argument {pos} cannot be converted to an array: {e}") from None
    dt = x.dtype
    if dt not in SUPPORTED:
        x = _convert_dtype(x, pos, fname)
    if not (x.flags.c_contiguous and x.flags.aligned):
        x = np.ascontiguousarray(x)
    return x


def _convert_dtype(x, pos, fname):
    kind = x.dtype.kind
    if kind == "f" and x.dtype.itemsize < 4:
        return x.astype(np.float32)
    if kind in "iu" and np.can_cast(x.dtype, np.int64):
        return x.astype(np.int64)
    raise TypeError(f"{fname}: argument {pos} has dtype {x.dtype}; supported dtypes are "
                    "float32, float64, bool, int32, int64")


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_array_arg(x):
    return isinstance(x, _ARRAY_TYPES) or hasattr(x, "_tg_concrete")


def normalize_args(args, static_argnums, fname, grad_argnums=()) -> SpecArgs:
    """Split a call's arguments; a Python number in a `grad_argnums` position is an array."""
    arrays, slots, key = [], [], []
    for pos, x in enumerate(args):
        if _static_position(pos, len(args), static_argnums):
            slots.append(_static(x, pos, fname))
        elif _is_tree_arg(x):
            leaves, treedef = tree_flatten(x)
            slots.append(("tree", len(arrays), len(leaves), treedef))
            arrays += [_leaf_array(l, f"{pos} (a leaf of {treedef})", fname) for l in leaves]
        elif _is_array_arg(x) or (_is_number(x) and (pos in grad_argnums
                                                      or pos - len(args) in grad_argnums)):
            slots.append(("array", len(arrays)))
            arrays.append(_leaf_array(x, pos, fname))
        else:
            slots.append(_static(x, pos, fname))
    key = tuple((s[0], s[3]) if s[0] == "tree" else s if s[0] == "static" else "a" for s in slots)
    key += tuple((a.shape, a.dtype.char) for a in arrays)
    return SpecArgs(arrays, slots, key)


def dynamic_positions(args, static_argnums) -> tuple:
    """The positions `compile_grad` differentiates by default: every non-static argument."""
    return tuple(i for i, x in enumerate(args)
                 if not _static_position(i, len(args), static_argnums)
                 and (_is_tree_arg(x) or _is_array_arg(x) or isinstance(x, (float, TracedValue))))


def _static_position(pos, n_args, static_argnums) -> bool:
    return pos in static_argnums or pos - n_args in static_argnums


def _static(x, pos, fname):
    try:
        hash(x)
    except TypeError:
        raise TypeError(f"{fname}: static argument {pos} ({type(x).__name__}) must be "
                        "hashable; pass arrays as numpy arrays") from None
    return ("static", x)


def _leaf_array(x, where, fname):
    a = _fast_array(x)
    return a if a is not None else _as_array(x, where, fname)


def _is_tree_arg(x):
    """dicts, and lists/tuples holding arrays, tensors or dicts, are pytrees of arrays;
    (nested) lists of numbers are arrays, as numpy converts them; tuples of numbers static."""
    if isinstance(x, dict):
        return True
    if isinstance(x, (list, tuple)):
        return any(isinstance(v, (np.ndarray, dict)) or hasattr(v, "_tg_concrete") or _is_tree_arg(v)
                   for v in x)
    return False


def _fast_array(x):
    """The common case without conversions: an aligned C-contiguous ndarray of a supported dtype."""
    if type(x) is np.ndarray and x.dtype in SUPPORTED and x.flags.c_contiguous and x.flags.aligned:
        return x
    return None
