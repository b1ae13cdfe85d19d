"""Argument handling for compiled functions: what is an array, what is static,
and the cache key of a call.  Runs before any native code: everything a user
can pass is either converted the way numpy would convert it or rejected with
a message naming the argument.
"""
from __future__ import annotations

import numpy as np

SUPPORTED = {np.dtype(t) for t in (np.float32, np.float64, np.bool_, np.int32, np.int64)}
_ARRAY_TYPES = (np.ndarray, np.generic, list)


class SpecArgs:
    """The arrays of one call (C-contiguous, supported dtypes) and its cache key."""

    __slots__ = ("arrays", "positions", "statics", "key", "n_args")

    def __init__(self, arrays, positions, statics, key, n_args):
        self.arrays, self.positions, self.statics = arrays, positions, statics
        self.key, self.n_args = key, n_args

    def bind(self, fun):
        """`fun` as a function of the array arguments only (statics baked in)."""
        def flat(*arrays):
            args = [None] * self.n_args
            for pos, a in zip(self.positions, arrays):
                args[pos] = a
            for pos, v in self.statics:
                args[pos] = v
            return fun(*args)
        flat.__name__ = getattr(fun, "__name__", "f")
        return flat

    def describe(self):
        parts = [f"arg{p}:{a.dtype}{list(a.shape)}" for p, a in zip(self.positions, self.arrays)]
        parts += [f"arg{p}={v!r}" for p, v in self.statics]
        return "(" + ", ".join(parts) + ")"

    def grad_positions(self, argnums):
        """Indices among the array inputs to differentiate, and whether one was asked."""
        if argnums is None:
            return tuple(range(len(self.arrays))), False
        single = isinstance(argnums, int)
        wanted = (argnums,) if single else tuple(argnums)
        out = []
        for n in wanted:
            n = n + self.n_args if n < 0 else n
            if n not in self.positions:
                raise TypeError(f"argnums={argnums!r}: argument {n} is not an array argument "
                                f"of this call {self.describe()}")
            a = self.arrays[self.positions.index(n)]
            if a.dtype.kind != "f":
                raise TypeError(f"argnums={argnums!r}: argument {n} has dtype {a.dtype}; "
                                "gradients need a float32 or float64 argument")
            out.append(self.positions.index(n))
        return tuple(out), single


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
    arrays, positions, statics, key = [], [], [], []
    for pos, x in enumerate(args):
        if pos not in static_argnums and (_is_array_arg(x) or (pos in grad_argnums and _is_number(x))):
            a = _fast_array(x)
            if a is None:
                a = _as_array(x, pos, fname)
            arrays.append(a)
            positions.append(pos)
            key.append((a.shape, a.dtype.char))
        else:
            try:
                hash(x)
            except TypeError:
                raise TypeError(f"{fname}: static argument {pos} ({type(x).__name__}) must be "
                                "hashable; pass arrays as numpy arrays") from None
            statics.append((pos, x))
            key.append(("static", type(x), x))
    return SpecArgs(arrays, positions, statics, tuple(key), len(args))


def _fast_array(x):
    """The common case without conversions: an aligned C-contiguous ndarray of a supported dtype."""
    if type(x) is np.ndarray and x.dtype in SUPPORTED and x.flags.c_contiguous and x.flags.aligned:
        return x
    return None
