"""Native kernels for eager operations: where they pay, `Primitive.native` runs codegen's
kernels (codegen/eager.py) instead of numpy (docs/eager.md).

`install()` (called by `tracegrad/__init__.py`) sets `Primitive.native` of the primitives in
`THRESHOLDS` to a gate that checks, in Python and cheaply, that the operands are plain
ndarrays of one float dtype and shape (or scalars) whose size falls in the primitive's
window, and only then calls the kernel; the compiler (llvmlite) is imported by the first
call that qualifies.  Anything else returns NotImplemented and `Primitive.run`
uses numpy's `impl`.
tracer/ and ir/ never import codegen: the facade hands the kernels to the primitives.

`FUSED_VJPS` names the primitives whose backward rule runs as one fused kernel on float
ndarrays, and the first kernel loaded also installs the caching allocator for numpy's large
arrays (codegen/eager_memory.py) in its context.

`TRACEGRAD_EAGER_NATIVE=0` (read by `install`) keeps every eager operation on numpy;
`uninstall()` does the same at run time.  A compiler that cannot be loaded or a kernel that
fails to compile warns once and falls back to numpy.
"""
from __future__ import annotations

import functools
import math
import os
import warnings

import numpy as np

from tracegrad.ir.primitives import PRIMITIVES

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

# Where the native kernel beat numpy's impl, per primitive and dtype: the element counts
# [lo, hi) (hi None: no bound), measured on one machine (docs/eager.md has the table and
# how it was measured).  Below a few thousand elements every kernel wins by the impl's
# per-call costs (asarray, errstate, the ufunc's dispatch) against ~0.5 us for the fast
# call; above, numpy's own SIMD loops win for several float32 functions and float64 tanh,
# exp and log, and the float32 polynomials mathlib computes in float64 (atan, log2, log10,
# exp2, pow, atan2) are not vectorized.  Full sums pay from tens of thousands (their call
# goes through ctypes).  max and min are left out: codegen's keep x when x == y, numpy
# gives y (max(-0.0, 0.0) is -0.0 against numpy's 0.0).
ANY = (1, None)
_SMALL = (1, 1024)
_EXACT = {F32: ANY, F64: ANY}  # bit-for-bit numpy's results
THRESHOLDS = {
    "neg": _EXACT, "abs": _EXACT, "sqrt": _EXACT,
    "add": _EXACT, "sub": _EXACT, "mul": _EXACT, "div": _EXACT,
    "exp": {F32: ANY, F64: (1, 16384)},
    "log": {F32: (1, 65536), F64: (1, 16384)},
    "log1p": {F32: (1, 16384), F64: (1, 16384)},
    "expm1": {F32: (1, 16384), F64: ANY},
    "tanh": {F32: (1, 8192), F64: (1, 16384)},
    # float32 sin and cos: mathlib only where per-call costs decide (its range check costs
    # two passes), numpy's own loop on the pool past that (NUMPY_LOOPS)
    "sin": {F32: _SMALL, F64: ANY},
    "cos": {F32: _SMALL, F64: ANY},
    "atan": {F32: _SMALL, F64: (1, 65536)},
    "log2": {F32: _SMALL, F64: (1, 2048)},
    "log10": {F32: _SMALL, F64: (1, 2048)},
    "exp2": {F32: _SMALL, F64: (1, 4096)},
    "pow": {F32: _SMALL, F64: (1, 2048)},
    "atan2": {F32: _SMALL, F64: ANY},
    # numpy has no erf: the impl calls libm per element through Python (about 60 ns each)
    "erf": {F32: (16, None), F64: (16, None)},
    "erfc": {F32: (16, None), F64: (16, None)},
    # their impls are ir/gamma.py's algorithms in numpy: about 80 array operations a call
    "lgamma": {F32: ANY, F64: ANY},
    "digamma": {F32: ANY, F64: ANY},
    "reduce_sum": {F32: (32768, None), F64: (65536, None)},
    "integer_pow": _EXACT,  # codegen's products, as the impl computes them
    # numpy's where branches per element: 7 ns each under a random mask (a ReLU's or abs's
    # backward), against a branch-free select on the pool
    "where": {F32: (2048, None), F64: (2048, None)},
}

# The windows' upper ends are where numpy's SIMD loops win: its SVML loops, built for
# AVX-512 (numpy's AVX512_SKX target).  On a host without them numpy calls libm one
# element at a time (or a narrower loop), and mathlib's kernel wins at every size: on the
# AVX2 EPYC, 1M elements, float32 log1p 19.2 -> 0.64 ms, tanh 4.9 -> 0.50, atan 14.8 ->
# 1.8, sin 3.0 -> 0.73; float64 exp 9.5 -> 1.3, log10 14.6 -> 2.6 (numpy's own loop on the
# pool against mathlib's kernel; `python -m benchmarks.eager` has whole programs).
SVML_BOUNDED = ("exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "atan", "log2", "log10",
                "exp2", "pow", "atan2")  # pow f64 of 1M 13.8 -> 5.3 ms, atan2 f32 23 -> 2.2


def numpy_has_svml() -> bool:
    """Whether this numpy runs its AVX-512 (SVML) transcendental loops on this host."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # another numpy: keep the measured windows
        return True
    return bool(__cpu_features__.get("AVX512_SKX"))


if not numpy_has_svml():
    for _name in SVML_BOUNDED:
        THRESHOLDS[_name] = {F32: ANY, F64: ANY}


class _Backend:
    """The compiler's eager kernels, imported on the first call that wants one (then every
    qualifying call is native: results never depend on how many calls came before)."""

    def __init__(self):
        self.module = None
        self.memory = None  # codegen/eager_memory.py where its handler is installed
        self.failed = False

    def get(self):
        return self.module if self.module is not None else self.load()

    def load(self):
        """Import the kernels now (None if the compiler cannot be loaded)."""
        if self.module is None and not self.failed:
            try:
                from tracegrad.codegen import eager  # noqa: PLC0415 (llvmlite loads on first use)
                self.module = eager
                self.memory = _cache_memory(eager)
            except Exception as exc:  # noqa: BLE001 (no compiler: numpy it is)
                self.failed = True
                warnings.warn(f"tracegrad: native eager kernels unavailable, using numpy "
                              f"({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=4)
        return self.module


BACKEND = _Backend()


def _cache_memory(kernels):
    """Install the caching allocator (codegen/eager_memory.py) for numpy's large arrays in
    the current context; the module, or None where it is switched off or cannot be."""
    from tracegrad.codegen import eager_memory  # noqa: PLC0415 (with the kernels)
    try:
        return eager_memory if eager_memory.install(kernels.KERNELS._compile) else None
    except Exception as exc:  # noqa: BLE001 (numpy's own allocator it is)
        warnings.warn(f"tracegrad: eager memory cache unavailable ({type(exc).__name__}: {exc})",
                      RuntimeWarning, stacklevel=5)
        return None


def _result(out):
    return NotImplemented if out is None else out


# ---- operands ------------------------------------------------------------------------------

def _as_scalar(v, dtype):
    """A 0-d array of `dtype` for a scalar operand, as the numpy impl sees it, or None.

    Python numbers are weak (they take the array's dtype, `_cast_like`); numpy scalars and
    0-d arrays must already have it; a broadcast view (every stride 0) is its first element."""
    if type(v) in (float, int):
        return np.asarray(v).astype(dtype)
    if type(v) is np.ndarray:
        if v.dtype != dtype:
            return None
        if v.ndim == 0:
            return v
        if v.size and not any(v.strides):
            return np.asarray(v[(0,) * v.ndim])
    return None


def _pattern(x, y):
    """(pattern, operands, shape, dtype) of a binary call the kernels take, or None."""
    arrays = [v for v in (x, y) if type(v) is np.ndarray and v.ndim and any(v.strides)]
    if not arrays:
        return None
    dtype, shape = arrays[0].dtype, arrays[0].shape
    found = _letters((x, y), shape, dtype)
    return None if found is None else (*found, shape, dtype)


def _letters(values, shape, dtype):
    """(pattern, operands): "a" for an array of `shape` and `dtype`, "s" for a scalar (as
    `_as_scalar` reads it); None where a value is neither."""
    letters, operands = "", []
    for v in values:
        if type(v) is np.ndarray and v.shape == shape and v.dtype == dtype and any(v.strides):
            letters, operands = letters + "a", operands + [v]
            continue
        s = _as_scalar(v, dtype)
        if s is None:
            return None
        letters, operands = letters + "s", operands + [s]
    return letters, operands


# ---- the gates ----------------------------------------------------------------------------

class _Calls:
    """Per primitive: (dtype, pattern) -> the codegen side's `(call, refused)`, made on first
    use; `call(*operands)` returns the result, or `refused` where the kernel does not take
    them (layout, alignment: the fast call checks natively) or could not be compiled."""

    def __init__(self, name, params: tuple = ()):
        self.name, self.params, self.table = name, params, {}

    def run(self, dtype, pattern, operands):
        entry = self.table.get((dtype, pattern))
        if entry is None:
            kernels = BACKEND.get()
            if kernels is None:
                return NotImplemented
            entry = self.table[(dtype, pattern)] = kernels.caller(self.name, dtype, pattern, self.params)
        call, refused = entry
        out = call(*operands)
        if out is refused:  # an array whose dtype is an equal copy of numpy's (unpickled)
            canonical = [_canonical(x) for x in operands]
            if any(c is not x for c, x in zip(canonical, operands)):
                out = call(*canonical)
        return NotImplemented if out is refused else out


def _canonical(x):
    """`x`, or a view of it under numpy's own dtype object, which the fast call checks by
    identity (an unpickled array holds an equal copy)."""
    if type(x) is not np.ndarray:
        return x
    dtype = np.dtype(x.dtype.char)
    return x if x.dtype is dtype else x.view(dtype)


def _in_window(window, n: int) -> bool:
    return window is not None and n >= window[0] and (window[1] is None or n < window[1])


# Past the window of these primitives, numpy's own loop of their ufunc runs as the kernel
# (codegen/eager_uloop.py): numpy's results bit for bit, split over the worker pool from
# threads.py's size (float32 tanh of 1M: 0.26 ms on two threads against numpy's 0.38), and
# below that on one thread, where the fast call still saves the impl's fixed costs.
NUMPY_LOOPS = ("tanh", "exp", "log", "log1p", "expm1", "sin", "cos")


def _unary_gate(name, limits):
    calls = _Calls(name)
    loops = _Calls(f"numpy_{name}") if name in NUMPY_LOOPS else None

    def native(x, **params):
        if type(x) is not np.ndarray or params or not x.ndim:
            return NotImplemented
        window = limits.get(x.dtype)
        if _in_window(window, x.size):
            return calls.run(x.dtype, "a", (x,))
        if loops is not None and window is not None and window[1] is not None and x.size >= window[1]:
            return loops.run(x.dtype, "a", (x,))
        return NotImplemented
    return native


def _ranged_gate(name, limits):
    """sin and cos hold mathlib's bound only for |x| up to its accurate range
    (mathlib.SIN_COS_ACCURATE_RANGE): larger operands, infinities and NaNs stay numpy's
    (one min and one max over x decide).  Past the window numpy's own loop needs no check."""
    plain = _unary_gate(name, limits)

    def native(x, **params):
        if type(x) is not np.ndarray or params or not x.ndim:
            return NotImplemented
        if not _in_window(limits.get(x.dtype), x.size):
            return plain(x)  # numpy's own loop past the window (numpy's values), or numpy
        kernels = BACKEND.get()
        if kernels is None:
            return NotImplemented
        bound = kernels.accurate_range(name, x.dtype)
        if not (-bound <= x.min() and x.max() <= bound):
            return NotImplemented
        return plain(x, **params)
    return native


def _binary_gate(name, limits):
    calls = _Calls(name)

    def general(x, y):
        found = _pattern(x, y)
        if found is None:
            return NotImplemented
        pattern, operands, shape, dtype = found
        if not _in_window(limits.get(dtype), math.prod(shape)):
            return NotImplemented
        return calls.run(dtype, pattern, operands)

    def native(x, y, **params):
        if params:
            return NotImplemented
        if (type(x) is np.ndarray and type(y) is np.ndarray and x.shape == y.shape
                and x.dtype == y.dtype):  # the common case, checked cheaply
            if not x.ndim or not _in_window(limits.get(x.dtype), x.size):
                return NotImplemented
            out = calls.run(x.dtype, "aa", (x, y))
            if out is not NotImplemented:
                return out
        return general(x, y)  # scalars, broadcast views (a refused "aa" too)
    return native


def _sum_gate(limits):
    def native(x, *, axes):
        if type(x) is not np.ndarray or len(axes) != x.ndim or not x.ndim:
            return NotImplemented
        if not _in_window(limits.get(x.dtype), x.size):
            return NotImplemented
        kernels = BACKEND.get()
        return NotImplemented if kernels is None else _result(kernels.full_sum_of(x))
    return native


def _integer_pow_gate(limits):
    """x ** y for a float array and an int y: one kernel per exponent."""
    calls = {}

    def native(x, *, y):
        if type(x) is not np.ndarray or not x.ndim or not _in_window(limits.get(x.dtype), x.size):
            return NotImplemented
        found = calls.get(y)
        if found is None:
            found = calls[y] = _Calls("integer_pow", (("y", y),))
        return found.run(x.dtype, "a", (x,))
    return native


def _where_operands(c, x, y):
    """(pattern, operands, dtype) of where(c, x, y) as the kernel takes it: c a bool array,
    x and y arrays of c's shape and one float dtype or scalars (cast as the impl casts
    them); None otherwise."""
    dtype = next((v.dtype for v in (x, y) if type(v) is np.ndarray and v.dtype.kind == "f"), None)
    found = None if dtype is None else _letters((x, y), c.shape, dtype)
    return None if found is None else ("b" + found[0], [c, *found[1]], dtype)


def _where_chosen(c, x, y):
    """where(c, x, y) for a rank-0 condition (pow's backward asks `y == 0` of a scalar
    exponent): a copy of the chosen branch where it is a float array of the result's shape
    and the other branch is no larger, else NotImplemented."""
    chosen, other = (x, y) if c else (y, x)
    if (type(chosen) is not np.ndarray or chosen.dtype.kind != "f" or not chosen.ndim
            or np.ndim(other) and np.shape(other) != chosen.shape):
        return NotImplemented
    if type(other) is np.ndarray and other.dtype != chosen.dtype:
        return NotImplemented
    return chosen.copy()


def _where_gate(limits):
    calls = _Calls("where")

    def native(c, x, y):
        if type(c) is np.ndarray and c.dtype == np.bool_ and not c.ndim:
            return _where_chosen(c, x, y)
        if type(c) is not np.ndarray or c.dtype != np.bool_ or not c.ndim or not any(c.strides):
            return NotImplemented
        found = _where_operands(c, x, y)
        if found is None or not _in_window(limits.get(found[2]), c.size):
            return NotImplemented
        pattern, operands, dtype = found
        return calls.run(dtype, pattern, operands)
    return native


def gate(name: str):
    """The `Primitive.native` of a primitive in THRESHOLDS."""
    limits = THRESHOLDS[name]
    if name == "reduce_sum":
        return _sum_gate(limits)
    if name == "where":
        return _where_gate(limits)
    if name == "integer_pow":
        return _integer_pow_gate(limits)
    if name in ("sin", "cos"):
        return _ranged_gate(name, limits)
    if PRIMITIVES[name].kind == "unary":
        return _unary_gate(name, limits)
    return _binary_gate(name, limits)


# ---- fused backward rules ------------------------------------------------------------------
# primitive -> (codegen/eager.py's FUSED kernel computing its VJP in one pass from g and the
# output ("out") or the operand ("x"), with the same operations in the same order as the
# rule: results bit for bit the rule's).
FUSED_VJPS = {"tanh": ("tanh_vjp", "out"), "sqrt": ("sqrt_vjp", "out"), "log": ("log_vjp", "x"),
              "log1p": ("log1p_vjp", "x"), "abs": ("abs_vjp", "x")}
_UNFUSED = {}  # (table, key) -> the rule a fused one wraps (uninstall restores it)


def fused_gate(kernel: str):
    """`native(g, out)`: the fused kernel's result where g and out are float ndarrays of one
    dtype and shape (g may be a broadcast view or 0-d), else NotImplemented."""
    calls = _Calls(kernel)

    def native(g, out):
        if type(out) is not np.ndarray or not out.ndim or out.dtype not in (F32, F64):
            return NotImplemented
        if type(g) is np.ndarray and g.shape == out.shape and g.dtype == out.dtype:
            found = calls.run(out.dtype, "aa", (g, out))
            if found is not NotImplemented:
                return found
        found = _pattern(g, out)
        if found is None or found[0][1] != "a":
            return NotImplemented
        return calls.run(out.dtype, found[0], found[1])
    return native


def _fused(rule, native, reads: str, plain: bool):
    """A VJP rule of one cotangent that tries `native(g, v)` first, v the output (`reads`
    "out") or the operand ("x"): `rule(g, out, x, **params)`, or a plain rule
    `rule(g, out, operands, needed, params)` (tracer.autograd.PLAIN_VJPS)."""
    def fused(g, out, *args, **params):
        if set(params) <= {"needed"}:
            ct = native(g, out if reads == "out" else (args[0][0] if plain else args[0]))
            if ct is not NotImplemented:
                return (ct,)
        return rule(g, out, *args, **params)
    fused.unfused = rule
    return fused


# max and min: each side's cotangent g * tie_mask(a, b) in one pass (three compares and
# selects and a product before), where that side has g's shape (no reduction follows).
FUSED_TIE_VJPS = {"max": "max_vjp", "min": "min_vjp"}


def tie_gate(kernel: str):
    """`native(g, a, b)`: the fused kernel's cotangent of `a`, where a is a float ndarray of
    g's shape and dtype and b one too or a scalar (g may be a broadcast view), else
    NotImplemented."""
    calls = _Calls(kernel)

    def native(g, a, b):
        if type(a) is not np.ndarray or not a.ndim or a.dtype not in (F32, F64) or not any(a.strides):
            return NotImplemented
        found = _pattern(g, a)
        if found is None or found[0][1] != "a" or found[2] != a.shape:
            return NotImplemented
        if type(b) is np.ndarray and b.shape == a.shape and b.dtype == a.dtype and any(b.strides):
            letter, other = "a", b
        else:
            letter, other = "s", _as_scalar(b, a.dtype)
            if other is None:
                return NotImplemented
        return calls.run(a.dtype, found[0] + letter, (*found[1], other))
    return native


def _fused_tie(rule, native):
    """max's or min's VJP rule `rule(g, out, x, y, needed=...)` with each needed side from
    `native(g, this side, the other)` where it takes them, the rest from the rule."""
    def fused(g, out, x, y, needed=(True, True)):
        cts = [native(g, x, y) if needed[0] else None, native(g, y, x) if needed[1] else None]
        rest = tuple(ct is NotImplemented for ct in cts)
        if any(rest):
            more = rule(g, out, x, y, needed=rest)
            cts = [more[i] if rest[i] else cts[i] for i in range(2)]
        return tuple(cts)
    fused.unfused = rule
    return fused


def _plain_rules() -> dict:
    """The tracer's plain backward rules (tracer.autograd.PLAIN_VJPS), where it has them."""
    from tracegrad.tracer import autograd  # noqa: PLC0415 (the facade hands the rules over)
    return getattr(autograd, "PLAIN_VJPS", None)


def _install_fused() -> None:
    plain = _plain_rules()
    for name, (kernel, reads) in FUSED_VJPS.items():
        prim, native = PRIMITIVES[name], fused_gate(kernel)
        _wrap(prim, "vjp", functools.partial(_fused, native=native, reads=reads, plain=False))
        if plain is not None and prim in plain:
            _wrap(plain, prim, functools.partial(_fused, native=native, reads=reads, plain=True))
    for name, kernel in FUSED_TIE_VJPS.items():
        _wrap(PRIMITIVES[name], "vjp", functools.partial(_fused_tie, native=tie_gate(kernel)))


def _wrap(table, key, make) -> None:
    """table's rule under `key` (an attribute name or a dict key) replaced by `make(rule)`."""
    get = (lambda: getattr(table, key)) if isinstance(key, str) else (lambda: table[key])
    rule = get()
    if getattr(rule, "unfused", None) is not None:  # installed already
        return
    _UNFUSED[(id(table), key)] = (table, rule)
    if isinstance(key, str):
        setattr(table, key, make(rule))
    else:
        table[key] = make(rule)


def _uninstall_fused() -> None:
    for (_, key), (table, rule) in list(_UNFUSED.items()):
        if isinstance(key, str):
            setattr(table, key, rule)
        else:
            table[key] = rule
    _UNFUSED.clear()


def enabled_by_env() -> bool:
    return os.environ.get("TRACEGRAD_EAGER_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def install() -> list:
    """Give the primitives in THRESHOLDS their native gate and those in FUSED_VJPS their
    fused backward rule (none if TRACEGRAD_EAGER_NATIVE=0); returns the names of the gates."""
    if not enabled_by_env():
        return []
    for name in THRESHOLDS:
        PRIMITIVES[name].native = gate(name)
    _install_fused()
    from . import eager_linalg
    eager_linalg.install()
    if BACKEND.module is not None:  # loaded before an uninstall: the allocator again
        BACKEND.memory = _cache_memory(BACKEND.module)
    return list(THRESHOLDS)


def uninstall() -> None:
    """Every eager operation back on numpy (and numpy's own allocator in this context)."""
    for name in THRESHOLDS:
        PRIMITIVES[name].native = None
    _uninstall_fused()
    from . import eager_linalg
    eager_linalg.uninstall()
    if BACKEND.memory is not None:
        BACKEND.memory.uninstall()
