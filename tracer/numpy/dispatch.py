"""The NumPy protocols: `__array_ufunc__` and `__array_function__` of tensors and
traced values call `dispatch_ufunc` / `dispatch_function`, which read the one
table mapping numpy callables to this namespace (`TABLE`, assembled in
`__init__` from every family's `NUMPY` dict).

A numpy function the table lacks raises `UnsupportedFunctionError` (a
TypeError) naming the function as the user spelled it, the user's line, and
the nearest functions of `tracegrad.numpy` (a small table of well-known
replacements first, then the closest names by `difflib`)."""
from __future__ import annotations

import difflib
import inspect
import sys
import warnings

import numpy as np

from tracegrad.ir import TRACES, user_source_location

from ._core import _dtype, _reject, is_boxed
from .reductions import UFUNC_REDUCE
from .view_functions import VIEW_FUNCTIONS

TABLE: dict = {}  # numpy ufunc or function -> our implementation


class UnsupportedFunctionError(TypeError):
    """A numpy function or ufunc method that tracegrad arrays do not support."""


# Replacements a difflib match on the name would not find.  A value naming one
# function is offered only while `tracegrad.numpy` has it; other values are advice.
HINTS = {
    "fabs": "abs", "around": "round", "round_": "round", "row_stack": "vstack",
    "product": "prod", "cumproduct": "cumprod", "alltrue": "all", "sometrue": "any",
    "empty": "zeros", "empty_like": "zeros_like", "copy": "array", "float_power": "power",
    "amax": "max", "amin": "min", "average": "mean", "ptp": "max(a) - min(a)",
    "isclose": "abs(a - b) <= atol + rtol * abs(b)", "allclose": "all(isclose(a, b))",
    "array_equal": "all(equal(a, b))", "nan_to_num": "where(isnan(a), 0.0, a)",
    "asanyarray": "asarray", "ascontiguousarray": "asarray", "asfortranarray": "asarray",
    "einsum_path": "einsum", "dstack": "concatenate", "put": "x[idx] = v",
    "unique": "(no static shape: unique is not traceable; sort and compare neighbours)",
    "histogram": "(no static shape: use searchsorted and a bincount-free sum)",
    "argwhere": "nonzero(a, size=n)", "flatnonzero": "nonzero(ravel(a), size=n)",
    "polyfit": "linalg.lstsq(vander(x, deg + 1), y)[0] (the same least-squares fit)",
}

# ufunc methods with a function that computes the same thing.
METHOD_HINTS = {
    ("multiply", "reduce"): "prod", ("logical_and", "reduce"): "all",
    ("logical_or", "reduce"): "any",
}


def scipy_special_name(f) -> str | None:
    """`f`'s name if it is one of scipy.special's functions, else None (scipy is never
    imported here: a caller of its functions has imported it)."""
    special = sys.modules.get("scipy.special")
    name = getattr(f, "__name__", None)
    if special is None or name is None or getattr(special, name, None) is not f:
        return None
    return name


def _numpy_name(f) -> str:
    """`np.sum`, `np.linalg.norm`, `scipy.special.ndtr`: how the user spelled the callable."""
    special = scipy_special_name(f)
    if special is not None:
        return f"scipy.special.{special}"
    module = getattr(f, "__module__", None) or "numpy"
    if module.startswith("numpy._core") or module.startswith("numpy.core"):
        module = "numpy"  # np.sum is defined in numpy._core.fromnumeric
    prefix = "np" + module[len("numpy"):] if module.startswith("numpy") else module
    return f"{prefix}.{getattr(f, '__name__', repr(f))}"


def supported_names() -> list:
    """The functions of `tracegrad.numpy`, sub-namespaces spelled `linalg.norm`."""
    import tracegrad.tracer.numpy as namespace  # assembled after this module loads
    names = []
    for name in namespace.__all__:
        sub = getattr(getattr(namespace, name), "__all__", None)
        names += [f"{name}.{n}" for n in sub] if sub is not None else [name]
    return names


def alternatives(name: str, hint: str | None = None, close: bool = True) -> list:
    """The nearest supported spellings for the numpy function `name` (`linalg.X` for
    np.linalg's): a known replacement first, then the closest names (`difflib`)."""
    names = supported_names()
    found = []
    hint = HINTS.get(name) if hint is None else hint
    if hint and (not hint.replace(".", "").isidentifier() or hint in names):
        found.append(hint)
    if close:
        found += difflib.get_close_matches(name, names, n=3, cutoff=0.75)
    return list(dict.fromkeys(found))[:3]


def unsupported(what: str, name: str, hint: str | None = None,
                close: bool = True) -> UnsupportedFunctionError:
    """The error for `what` (as the user spelled it) having no tracegrad implementation."""
    near = alternatives(name, hint, close)
    where = user_source_location()
    msg = f"{what} is not supported on tracegrad arrays (tensors and traced values)"
    if where:
        msg += f"\n  at {where}"
    if near:
        msg += "\n  nearest supported: " + ", ".join(_spell(n) for n in near)
    msg += "\n  the supported functions are those of tracegrad.numpy (docs/ops.md)"
    return UnsupportedFunctionError(msg)


def _spell(alternative: str) -> str:
    return f"np.{alternative}" if alternative.replace(".", "").isidentifier() else alternative


def dispatch_ufunc(ufunc, method, inputs, kwargs):
    """Implementation of `__array_ufunc__` for tracegrad arrays."""
    out, where = kwargs.pop("out", None), kwargs.pop("where", True)
    if method == "__call__" and (out is not None or where is not True) and ufunc.nout == 1:
        if where is not True:
            inputs = _safe_inputs(ufunc, inputs, where)
        result = dispatch_ufunc(ufunc, method, inputs, kwargs)
        return _written(_numpy_name(ufunc), result, out[0] if out else None, where)
    _reject(_numpy_name(ufunc), out=out)
    if where is not True:
        kwargs["where"] = where  # (reduce's where=: passed on)
    fn = TABLE.get(ufunc) if method == "__call__" else None
    if fn is None and method == "__call__":
        from .special import scipy_ufunc  # the family modules import this one
        fn = scipy_ufunc(ufunc)
    if fn is not None:
        if kwargs.get("dtype") is not None and not _accepts(fn, {"dtype": None}):
            inputs = _in_dtype(inputs, kwargs.pop("dtype"))
        if kwargs and not _accepts(fn, kwargs):  # (np.vecdot's axis= is accepted)
            where = user_source_location()
            raise TypeError(f"{_numpy_name(ufunc)}: keyword arguments {sorted(kwargs)} are "
                            "not supported on tracegrad arrays"
                            + (f"\n  at {where}" if where else ""))
        return fn(*inputs, **kwargs)
    if method == "accumulate" and ufunc in _accumulators():
        (a, *rest), axis = inputs, kwargs.pop("axis", 0)
        _reject(f"{_numpy_name(ufunc)}.accumulate", **kwargs)
        return _accumulators()[ufunc](a, rest[0] if rest else axis)
    if method == "reduce" and ufunc in UFUNC_REDUCE:
        (a, *rest), axis = inputs, kwargs.pop("axis", 0)
        if rest:
            axis = rest[0]
        return UFUNC_REDUCE[ufunc](a, axis=axis, **kwargs)
    if method == "at" and ufunc.__name__ in _AT_METHODS:
        return _ufunc_at(ufunc, *inputs, **kwargs)
    if method == "outer" and ufunc.nin == 2 and TABLE.get(ufunc) is not None and not kwargs:
        a, b = inputs
        return TABLE[ufunc](_expanded(a, np.ndim(b)), b)
    if method == "__call__":
        raise unsupported(_numpy_name(ufunc), ufunc.__name__)
    raise unsupported(f"{_numpy_name(ufunc)}.{method}", ufunc.__name__,
                      METHOD_HINTS.get((ufunc.__name__, method), ""), close=False)


# ufunc.at(a, indices, b): the `.at[indices]` method that combines repeated indices alike.
_AT_METHODS = {"add": "add", "subtract": "add", "multiply": "multiply", "divide": "divide",
               "true_divide": "divide", "maximum": "max", "minimum": "min", "power": "power"}


def _ufunc_at(ufunc, a, indices, b=None):
    """NumPy's unbuffered in-place `ufunc.at`: `a` updated at `indices`, repeated indices
    each applying once more (`np.add.at` accumulates).  `a` must be a tracegrad array (a
    NumPy array cannot hold traced values); NumPy returns None."""
    name = _numpy_name(ufunc) + ".at"
    loc = user_source_location()
    at = f"\n  at {loc}" if loc else ""
    if b is None:
        raise TypeError(f"{name}(a, indices) of a one-operand ufunc is not supported on "
                        f"tracegrad arrays{at}")
    if not is_boxed(a):
        raise TypeError(f"{name}(a, ...) into a NumPy array: it cannot hold traced values; start "
                        f"it from one (a = np.zeros_like(v)) or write a = a.at[indices]."
                        f"{_AT_METHODS[ufunc.__name__]}(v){at}")
    if ufunc.__name__ == "subtract":
        b = -b if is_boxed(b) else -np.asarray(b)
    a[...] = getattr(a.at[indices], _AT_METHODS[ufunc.__name__])(b)


def _expanded(a, extra: int):
    """`a` with `extra` trailing axes of size 1 (a ufunc's outer product)."""
    from .shapes import reshape
    shape = np.shape(a)
    return reshape(a, tuple(shape) + (1,) * extra) if is_boxed(a) else np.reshape(a, shape + (1,) * extra)


# Where `where=` is False a ufunc computes nothing in NumPy; here its inputs there are a
# value whose derivative is finite, so that no 0 * inf (1 / b at b = 0) reaches a gradient
# through the elements `where` discards.
_SAFE_INPUT = {"arcsin": 0.5, "arccos": 0.5, "arctanh": 0.5, "arccosh": 2.0}


def _safe_inputs(ufunc, inputs, where) -> tuple:
    from .elementwise import where as select

    safe = _SAFE_INPUT.get(ufunc.__name__, 1.0)
    return tuple(select(where, x, safe) if is_boxed(x) and np.dtype(_dtype(x)).kind == "f"
                 else x for x in inputs)


def _written(name, result, out, where):
    """A ufunc's `out=` and `where=`: `result` where `where` holds, `out`'s elements
    elsewhere, written into `out` when it is a tracegrad array (an in-place update) and
    returned (NumPy returns `out`).  A NumPy array cannot hold traced values, and NumPy
    leaves the elements outside `where` uninitialized without `out`: both raise."""
    from .elementwise import where as select

    loc = user_source_location()
    at = f"\n  at {loc}" if loc else ""
    if out is None:
        raise TypeError(f"{name}(..., where=...) without out= leaves the other elements "
                        f"undefined: pass out= (np.divide(a, b, out=np.zeros_like(a), "
                        f"where=b != 0)) or write np.where(mask, {name}(...), fill){at}")
    if not is_boxed(out):
        raise TypeError(f"{name}(..., out=...) into a NumPy array: it cannot hold traced values; "
                        f"start it from one (out=np.zeros_like(a)) or write "
                        f"np.where(mask, {name}(...), fill){at}")
    value = result if where is True else select(where, result, out)
    out[...] = value
    return out


def _in_dtype(inputs, dtype) -> tuple:
    """A ufunc's `dtype=`: its loop, so its inputs, in that dtype (NumPy's meaning, under
    its default casting rule, same_kind, which Python numbers always pass)."""
    from .. import dtypes
    from .constructors import astype
    for x in inputs:
        if not dtypes.is_weak(x) and not np.can_cast(_dtype(x), dtype, "same_kind"):
            raise TypeError(f"Cannot cast ufunc input from {np.dtype(_dtype(x))} to "
                            f"{np.dtype(dtype)} with casting rule 'same_kind'")
    return tuple(astype(x, dtype) for x in inputs)


def _accepts(fn, kwargs) -> bool:
    """Whether `fn` takes these keyword arguments by name."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return all(k in params and params[k].kind in (params[k].KEYWORD_ONLY,
                                                   params[k].POSITIONAL_OR_KEYWORD)
               for k in kwargs)


def _accumulators() -> dict:
    """ufunc.accumulate as the running reductions (numpy's default axis is 0)."""
    import numpy as np

    from tracegrad.ir import ops

    from ._core import _operand
    from .sorting import cumprod, cumsum
    return {np.add: lambda a, axis: cumsum(a, axis=axis),
            np.multiply: lambda a, axis: cumprod(a, axis=axis),
            np.maximum: lambda a, axis: ops.cummax(_operand(a), axis),
            np.minimum: lambda a, axis: ops.cummin(_operand(a), axis)}


def dispatch_function(func, args, kwargs):
    """Implementation of `__array_function__` for tracegrad arrays."""
    view = VIEW_FUNCTIONS.get(func)
    if view is not None and args and is_boxed(args[0]):
        out = view(*args, **kwargs)
        if out is not None:
            return out
    impl = TABLE.get(func)
    if impl is None:
        name = getattr(func, "__name__", "")
        module = getattr(func, "__module__", "") or ""
        if module.startswith("numpy.") and module.split(".")[1] in ("linalg", "fft"):
            name = f"{module.split('.')[1]}.{name}"
        raise unsupported(_numpy_name(func), name)
    return impl(*args, **kwargs)


# ---- np.random inside a traced function ------------------------------------------------------

class RandomSampleFrozenWarning(UserWarning):
    """np.random drew a sample while a function was traced: the program holds it as a constant."""


_warned: set = set()  # the functions warned about (once each)


def _rng_position():
    """Where numpy's legacy global generator stands (np.random.seed/normal/... move it)."""
    _, key, pos, has_gauss, cached = np.random.get_state()
    return key.tobytes(), pos, has_gauss, cached


def _function_key(fun):
    f = inspect.unwrap(fun)
    code = getattr(f, "__code__", None)
    return (code.co_filename, code.co_firstlineno, f.__qualname__) if code else id(f)


class random_sampling_watch:
    """Around the outermost trace of `fun`: warn once per function when the legacy global
    RNG advanced, i.e. `np.random.*` sampled while tracing and the sample became a constant.

    Sound for the legacy global state only: a `np.random.default_rng()` Generator keeps its
    own state, which no global check can see (docs/ops.md says so).  Another thread drawing
    from the global generator during the trace would also trigger the warning.  (A class,
    not a generator context manager, so that the user's frame is the first one outside
    tracegrad's folders.)"""

    def __init__(self, fun):
        self.fun = fun
        self.before = None

    def __enter__(self):
        if not TRACES.traces:  # nested traces (loop bodies, grad inside jit): outermost checks
            self.before = _rng_position()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None or self.before is None or _rng_position() == self.before:
            return False
        key = _function_key(self.fun)
        if key not in _warned:
            _warned.add(key)
            _warn_frozen(inspect.unwrap(self.fun))
        return False


def _warn_frozen(f):
    name = getattr(f, "__qualname__", repr(f))
    code = getattr(f, "__code__", None)
    defined = f" (defined at {code.co_filename}:{code.co_firstlineno})" if code else ""
    where = user_source_location()
    msg = (f"np.random drew a sample while {name}{defined} was traced: the sample is frozen "
           "into the traced program as a constant, so every call of the compiled or "
           "transformed function reuses it. Pass random arrays as arguments instead (shown "
           "once per function).")
    filename, _, line = (where or "<unknown>:0").rpartition(":")
    warnings.warn_explicit(msg, RandomSampleFrozenWarning, filename, int(line))
