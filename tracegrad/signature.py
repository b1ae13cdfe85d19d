"""Argument handling for compiled functions: what is an array, what is static,
and the cache key of a call.  Runs before any native code: everything a user
can pass is either converted the way numpy would convert it or rejected with
a message naming the argument.

What each positional argument is (JAX's rules, except that ints stay static):

* arrays (numpy arrays and scalars, lists of numbers, eager Tensors) and
  pytrees of them (dicts; lists and tuples holding arrays): dynamic, one
  specialization per shape and dtype;
* Python floats: dynamic *weak-typed* float64 scalars.  One specialization
  serves every value; the function sees a Python float that carries the
  traced value (`tracer.scalars.WeakFloat`), so `x_f32 * s` stays float32 as
  in numpy, arithmetic on it stays symbolic and `s > 0` guards only the
  comparison's outcome;
* ints, bools, None, callables, classes, modules and other values that hash by
  value: static, part of the signature (one specialization per value);
* strings, unhashable values and objects that hash by identity (instances of
  plain classes, whose attributes may change between calls while the key stays
  the same): a TypeError naming the argument, unless `static_argnums` or
  `static_argnames` names it (then a hashable value is static as it is, and must
  not change between calls), as in JAX.

Keyword arguments reach a compiled function as two trailing positional ones
(compile.py's keyword variant: the static items, then a dict of the others);
messages name them as keywords and suggest `static_argnames`.
"""
from __future__ import annotations

import inspect
import itertools
import types

import numpy as np

from tracegrad.ir import ShapedArray, TracedValue
from tracegrad.ir.core import computed_dtype
from tracegrad.tracer import Tensor, tree_flatten, tree_unflatten
from tracegrad.tracer.tree import is_registered_node
from tracegrad.tracer.dtypes import MASKED_HINT, is_masked
from tracegrad.tracer.scalars import WeakFloat

SUPPORTED = {np.dtype(t) for t in (np.float32, np.float64, np.bool_, np.int32, np.int64)}
_ARRAY_TYPES = (np.ndarray, np.generic, list, Tensor)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class SpecArgs:
    """The arrays of one call (C-contiguous, supported dtypes) and its cache key.

    `slots[i]` says what positional argument i is: ("array", k) for the k-th
    array, ("tree", k, n, treedef) for a pytree (dict, list, tuple) whose n
    leaves are arrays k..k+n-1, or ("static", value).  `weak` holds the
    indices of the arrays that were Python floats.
    """

    __slots__ = ("arrays", "slots", "weak", "key", "call")

    def __init__(self, arrays, slots, weak, call=()):
        self.arrays, self.slots, self.weak = arrays, slots, frozenset(weak)
        self.call = call  # the positional arguments as given
        key = tuple(("tree", _typed_tree(s[3])) if s[0] == "tree" else ("static", _typed(s[1]))
                    if s[0] == "static" else "a" for s in slots)
        self.key = key + tuple((a.shape, "w" if i in self.weak else a.dtype.char)
                               for i, a in enumerate(arrays))

    @property
    def n_args(self) -> int:
        return len(self.slots)

    @property
    def direct(self) -> bool:
        """Every argument is one array or Python float: the call can go straight to native code."""
        return all(s[0] == "array" for s in self.slots)

    @property
    def float_positions(self) -> tuple:
        """Positions of the top-level Python float arguments (made 0-d arrays per call)."""
        return tuple(p for p, s in enumerate(self.slots) if s[0] == "array" and s[1] in self.weak)

    def bind(self, fun, on_replaced=None):
        """`fun` as a function of the flat array arguments only (statics baked in);
        the traced values of Python floats reach it as `WeakFloat`s.  `on_replaced(pos)`:
        called for each pytree argument whose containers fun changed (`p["w"] = ...`,
        `l.append(...)`), which the caller's containers will not see."""
        def flat(*arrays):
            values = [WeakFloat(a) if i in self.weak else a for i, a in enumerate(arrays)]
            rebuilt = [_rebuild(slot, values) for slot in self.slots]
            out = fun(*rebuilt)
            if on_replaced is not None:
                for pos in self._replaced(rebuilt, values):
                    on_replaced(pos)
            return out
        flat.__name__ = getattr(fun, "__name__", "f")
        flat.__wrapped__ = fun  # warnings name the user's function (inspect.unwrap)
        return flat

    def _replaced(self, rebuilt, values) -> list:
        """Positions of the pytree arguments whose leaves or structure differ from the
        ones fun was given."""
        changed = []
        for pos, slot in enumerate(self.slots):
            if slot[0] == "tree":
                leaves, tree = tree_flatten(rebuilt[pos])
                given = values[slot[1]:slot[1] + slot[2]]
                if tree != slot[3] or any(a is not b for a, b in zip(leaves, given)):
                    changed.append(pos)
        return changed

    def leaf_objects(self) -> list:
        """The objects the call passed for the array leaves (the user's own arrays, where
        `arrays` may hold converted copies), in the leaves' order."""
        out = [None] * len(self.arrays)
        for pos, slot in enumerate(self.slots):
            if slot[0] == "array":
                out[slot[1]] = self.call[pos]
            elif slot[0] == "tree":
                leaves = tree_flatten(self.call[pos])[0]
                out[slot[1]:slot[1] + len(leaves)] = leaves
        return out

    def position_of_leaf(self, i: int) -> int:
        """The positional argument that array leaf `i` belongs to."""
        for pos, slot in enumerate(self.slots):
            if (slot[0] == "array" and slot[1] == i) or (
                    slot[0] == "tree" and slot[1] <= i < slot[1] + slot[2]):
                return pos
        raise IndexError(i)

    def arg_texts(self) -> list:
        """Each positional argument as the IR writes types: `f64[2,64]`, `float` (a weak
        Python float), `{'w': f32[3]}` (a pytree), or the repr of a static value."""
        shown = ["float" if i in self.weak else str(ShapedArray(a.shape, a.dtype))
                 for i, a in enumerate(self.arrays)]
        texts = []
        for slot in self.slots:
            if slot[0] == "static":
                texts.append(repr(slot[1]))
            elif slot[0] == "array":
                texts.append(shown[slot[1]])
            else:
                leaves = iter(shown[slot[1]:slot[1] + slot[2]])
                texts.append("".join(next(leaves) if c == "*" else c for c in slot[3]._str()))
        return texts

    def describe(self):
        return "(" + ", ".join(self.arg_texts()) + ")"

    def grad_positions(self, argnums, trailing: int = 0):
        """Flat array indices to differentiate, and the structure of the gradients.  The
        last `trailing` arguments (keyword arguments, as one dict) are never among them."""
        n_args = self.n_args - trailing
        if argnums is None:  # every dynamic argument but integer and bool arrays
            wanted = [i for i, s in enumerate(self.slots[:n_args]) if s[0] != "static"
                      and not (s[0] == "array" and self.arrays[s[1]].dtype.kind != "f")]
            single = False
        else:
            single = isinstance(argnums, int)
            wanted = [n + n_args if n < 0 else n for n in ((argnums,) if single else argnums)]
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


class ArgNames:
    """How messages name a compiled function, its arguments and its signature
    (worked out only when a message needs them)."""

    def __init__(self, fun):
        # compile.py's keyword variant takes the keywords as its last two arguments: the
        # messages name the user's function and its keywords (`keywords` True)
        user = _keyword_variant_of(fun)
        self.keywords = user is not None
        self.fun = user if self.keywords else fun
        self.fname = getattr(fun, "__qualname__", None) or repr(fun)

    def _signature(self):
        try:
            return inspect.signature(self.fun)
        except (TypeError, ValueError):  # builtins without a signature
            return None

    def positional(self) -> list | None:
        """The names of the parameters an argument may fill by position (None: unknown)."""
        sig = self._signature()
        return None if sig is None else [p.name for p in sig.parameters.values()
                                         if p.kind in _POSITIONAL]

    def arg(self, pos) -> str:
        names = self.positional() or []
        return f"argument {pos}" + (f" ({names[pos]!r})" if pos < len(names) else "")

    def signature(self) -> str:
        sig = self._signature()
        return f"{self.fname}{sig if sig is not None else '(...)'}"

    def not_an_array(self, pos, what, hint, label=None) -> TypeError:
        return TypeError(f"{self.fname}: {label or self.arg(pos)}{what}; a compiled function "
                         "takes arrays, pytrees (dicts, lists, tuples) of arrays and Python "
                         f"numbers. {hint} (signature: {self.signature()})")

    def static_hint(self, pos, key=None) -> str:
        return f"Mark it static: {self.static_option(pos, key)}."

    def static_option(self, pos, key=None) -> str:
        """The option that makes argument `pos` (or keyword argument `key`) static."""
        if key is not None:
            return f'static_argnames="{key}"'
        names = self.positional() or []
        named = f' (or static_argnames="{names[pos]}")' if pos < len(names) else ""
        return f"static_argnums=({pos},){named}"


def _keyword_variant_of(fun):
    """The user's function when `fun` is compile.py's `with_keywords` wrapper, else None."""
    return getattr(fun, "_tg_keywords_of", None)


def _typed(value):
    """A cache key for a static value that tells apart what `==` does not: 1, True and 1.0,
    0.0 and -0.0 (floats by their bits), and the same inside tuples, lists and frozensets
    (a function traced with one may compute differently with the other)."""
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(_typed(v) for v in value))
    if isinstance(value, frozenset):
        return (frozenset, frozenset(_typed(v) for v in value))
    if isinstance(value, float):
        return (type(value), value.hex())
    return (type(value), value)


def _typed_tree(treedef):
    """A pytree structure as a cache key whose static parts (dict keys, a registered node's
    aux data) are `_typed`: {1: x} and {1.0: x}, aux 2 and 2.0, differ."""
    if treedef.kind == "leaf":
        return "*"
    return (treedef.kind, _typed(treedef.meta), tuple(_typed_tree(c) for c in treedef.children))


def normalize_args(args, static_argnums, names: ArgNames, grad_argnums=()) -> SpecArgs:
    """Split a call's arguments (see the module docstring); a Python number in a
    `grad_argnums` position is an array."""
    arrays, slots, weak = [], [], []
    keywords_at = len(args) - 1 if names.keywords else None  # the dict of dynamic keywords
    for pos, x in enumerate(args):
        if keywords_at is not None and pos == keywords_at - 1:  # (name, value) items
            slots.append(_static_keywords(x, pos, names))
        elif _static_position(pos, len(args), static_argnums):
            slots.append(_static(x, pos, names, declared=True))
        elif pos == keywords_at:
            leaves, treedef = tree_flatten(x)
            slots.append(("tree", len(arrays), len(leaves), treedef))
            for key, value in x.items():
                for leaf in tree_flatten(value)[0]:
                    _add_leaf(arrays, weak, leaf, pos, names, "", key)
        elif _is_tree_arg(x):
            leaves, treedef = tree_flatten(x)
            slots.append(("tree", len(arrays), len(leaves), treedef))
            for leaf in leaves:
                _add_leaf(arrays, weak, leaf, pos, names, _LeafOf(treedef))
        elif _is_array_arg(x) or isinstance(x, float) or (
                _is_number(x) and _static_position(pos, len(args), grad_argnums)):
            slots.append(("array", len(arrays)))
            _add_leaf(arrays, weak, x, pos, names, "")
        else:
            slots.append(_static(x, pos, names))
    return SpecArgs(arrays, slots, weak, args)


class _LeafOf:
    """" (a leaf of {treedef})" for a message, written only when one is: writing the tree
    for each of its leaves on every call made a call's cost grow with the leaves squared."""

    __slots__ = ("treedef",)

    def __init__(self, treedef):
        self.treedef = treedef

    def __str__(self):
        return f" (a leaf of {self.treedef})"

    def __format__(self, spec):
        return format(str(self), spec)


def _add_leaf(arrays, weak, x, pos, names, where, key=None):
    """`key`: the name of the keyword argument `x` is (a leaf of), for messages."""
    if isinstance(x, float) and not isinstance(x, np.generic):
        weak.append(len(arrays))
        arrays.append(np.array(x, dtype=np.float64))
        return
    a = _fast_array(x)
    arrays.append(a if a is not None else _as_array(x, pos, names, where, key))


def dynamic_positions(args, static_argnums) -> tuple:
    """The positions `compile_grad` differentiates by default: every non-static argument
    but integer and bool arrays (indices, masks)."""
    return tuple(i for i, x in enumerate(args)
                 if not _static_position(i, len(args), static_argnums)
                 and (_is_tree_arg(x) or (_is_array_arg(x) and _float_array(x))
                      or isinstance(x, (float, TracedValue))))


def _float_array(x) -> bool:
    dtype = getattr(x, "dtype", None)
    if not isinstance(dtype, np.dtype):  # (a list, or another library's dtype object)
        try:
            dtype = np.asarray(x).dtype
        except (TypeError, ValueError, RuntimeError):  # (a torch tensor that requires grad)
            return True  # converting it will say what is wrong
    return np.dtype(dtype).kind == "f"


def _static_position(pos, n_args, positions) -> bool:
    return pos in positions or pos - n_args in positions


def _static(x, pos, names, declared=False):
    if isinstance(x, str) and not declared:
        raise names.not_an_array(pos, f" is a str ({x!r:.40})", names.static_hint(pos))
    if not declared and _hashes_by_identity(x):
        raise names.not_an_array(
            pos, f" is a {type(x).__name__} object, which hashes by identity (compiled code "
                 "would keep what it read from it when it was traced, though it changes)",
            f"Pass its arrays and numbers as arguments, or mark it static with "
            f"{names.static_option(pos)}: a static argument must not change between calls.")
    try:
        hash(x)
    except (TypeError, ValueError):  # ValueError: a writable memoryview
        raise names.not_an_array(
            pos, f" is a {type(x).__name__}, which is not hashable",
            "A static argument (static_argnums) must be hashable: pass a tuple or a frozen "
            "value.") from None
    return ("static", x)


def _static_keywords(items, pos, names):
    """The static keyword arguments' (name, value) items, each value hashable."""
    for key, value in items:
        try:
            hash(value)
        except (TypeError, ValueError):
            raise names.not_an_array(
                pos, f" is a {type(value).__name__}, which is not hashable",
                "A static argument (static_argnames) must be hashable: pass a tuple or a "
                "frozen value.", label=f"keyword argument {key!r}") from None
    return ("static", items)


def _hashes_by_identity(x) -> bool:
    """An object whose hash and == are its identity (a plain class instance): as a static
    argument, mutating it would leave a stale specialization.  Callables stay static
    (functions, ufuncs, NumPy's dispatchers, jitted functions, partials), classes,
    modules and the singletons None, ... too, except a callable object, or a method
    bound to an object, that holds arrays in its attributes (a model whose `__call__`
    or `predict` reads its weights): those would be frozen silently."""
    if isinstance(x, types.MethodType):
        return _holds_arrays(x.__self__)
    if x is None or x is Ellipsis or x is NotImplemented or isinstance(x, (type, types.ModuleType)):
        return False
    if type(x).__hash__ is not object.__hash__ or getattr(type(x), "_tg_static_callable", False):
        return False
    return _holds_arrays(x) if callable(x) else True


def _holds_arrays(obj) -> bool:
    """An identity-hashed object with an array or tensor among its attributes, or inside
    containers or other objects there (`self.params = {"W": ...}`, `self.layers = [...]`),
    looked at to a bounded depth and breadth (a model's parameter dicts and layer lists)."""
    if type(obj).__hash__ is not object.__hash__:
        return False
    return _reaches_array(getattr(obj, "__dict__", {}).values(), HOLDS_DEPTH, {id(obj)})


HOLDS_DEPTH = 4  # attribute / container levels searched for arrays
HOLDS_ITEMS = 64  # items looked at per container
HOLDS_BUDGET = 1024  # items looked at in all (the search runs on every call)
_LEAVES = (str, bytes, type, types.ModuleType, int, float, complex, bool, np.generic)


def _reaches_array(values, depth, seen) -> bool:
    """Whether an array lies among `values` or inside them (breadth first, bounded)."""
    queue, budget = [(values, depth)], HOLDS_BUDGET
    while queue:
        values, depth = queue.pop(0)
        for v in itertools.islice(values, HOLDS_ITEMS):
            budget -= 1
            if budget < 0:
                return False
            if _array_leaf(v):
                return True
            if (depth > 1 and id(v) not in seen and not isinstance(v, _LEAVES)
                    and not getattr(type(v), "_tg_static_callable", False)):  # (compiled fns)
                seen.add(id(v))
                queue.append((_inside(v), depth - 1))
    return False


def _inside(v):
    if isinstance(v, dict):
        return v.values()
    if isinstance(v, (list, tuple, set, frozenset)):
        return v
    return getattr(v, "__dict__", {}).values()


def _as_array(x, pos, names, where="", key=None):
    if isinstance(x, Tensor):
        x = x.data
    elif isinstance(x, (str, bytes)) or x is None or not _is_array_like(x):
        label = f"keyword argument {key!r}" if key is not None else None
        raise names.not_an_array(pos, f"{where} is a {type(x).__name__}",
                                 names.static_hint(pos, key), label)
    if type(x) is not np.ndarray:
        x = _from_numpy(x, pos, names, where)
    if x.dtype not in SUPPORTED:
        x = _convert_dtype(x, pos, names, where)
    if not (x.flags.c_contiguous and x.flags.aligned):
        x = np.array(x, order="C", copy=True)  # a fresh buffer is aligned and contiguous
    return x


def _is_array_like(x) -> bool:
    return isinstance(x, (np.ndarray, np.generic, list, tuple, bool, int, float)) or _foreign_array(x)


def _foreign_array(x) -> bool:
    """Another library's array (a torch tensor, a jax array): it converts through
    `__array__`, so it is a dynamic array argument, read on every call (as a static one
    its hash is its identity, and changes to its values would go unseen)."""
    return hasattr(type(x), "__array__") and not isinstance(x, (str, bytes, type, np.ndarray,
                                                                np.generic))


def _from_numpy(x, pos, names, where):
    if is_masked(x):
        raise TypeError(f"{names.fname}: {names.arg(pos)}{where} is a numpy masked array; "
                        f"{MASKED_HINT}")
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise TypeError(f"{names.fname}: {names.arg(pos)}{where} cannot be converted to an "
                        f"array: {e}") from None
    if a.dtype.kind in "OUS":
        raise names.not_an_array(pos, f"{where} is a {type(x).__name__} that numpy converts to "
                                      f"an array of dtype {a.dtype} (it holds None, strings or "
                                      "ragged lists)", "Pass numbers or numeric arrays.")
    return a


def _convert_dtype(x, pos, names, where):
    dtype = computed_dtype(x.dtype)  # '>f8' as f64, narrow integers as int64
    if dtype in SUPPORTED:
        return x.astype(dtype)
    hint = (" Convert it first, e.g. x.astype(np.float32): tracegrad computes float16 neither "
            "compiled nor eagerly." if x.dtype == np.float16 else "")
    raise TypeError(f"{names.fname}: {names.arg(pos)}{where} has dtype {x.dtype}; supported "
                    f"dtypes are float32, float64, bool, int32, int64.{hint}")


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_array_arg(x):
    return isinstance(x, _ARRAY_TYPES) or _foreign_array(x)


def _array_leaf(x) -> bool:
    """An array in a container: numpy's, a tensor, or another library's."""
    return isinstance(x, (np.ndarray, Tensor)) or _foreign_array(x)


def _is_tree_arg(x):
    """dicts, and lists/tuples holding arrays, tensors or dicts, are pytrees of arrays;
    (nested) lists of numbers are arrays, as numpy converts them; tuples of numbers static."""
    stack = [x]  # (a loop, not recursion: lists may nest deeply)
    while stack:
        v = stack.pop()
        if isinstance(v, dict) or is_registered_node(v):
            return True
        if isinstance(v, (list, tuple)):
            for item in v:
                if _array_leaf(item):
                    return True
                stack.append(item)
    return False


def _fast_array(x):
    """The common case without conversions: an aligned C-contiguous ndarray of a supported dtype."""
    if type(x) is np.ndarray and x.dtype in SUPPORTED and x.flags.c_contiguous and x.flags.aligned:
        return x
    return None


def changes(old: list, new: list, names: ArgNames) -> str:
    """What differs between two calls' `arg_texts`: "argument 0 ('x'): f64[3] -> f64[4]"."""
    if len(old) != len(new):
        return f"{len(old)} -> {len(new)} arguments"
    diffs = [f"{names.arg(i)}: {a} -> {b}" for i, (a, b) in enumerate(zip(old, new)) if a != b]
    return "; ".join(diffs) or "the same argument types"
