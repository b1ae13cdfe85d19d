"""Dtype handling of the front end: the supported set and NumPy 2 (NEP 50) promotion.

Python scalars are *weak*: they take the dtype of the array they meet, unless
their kind is higher (an int array times 2.5 is float64), exactly as NumPy 2:

>>> import numpy as np
>>> result_type(np.ones(2, np.float32), 2.0)
dtype('float32')
>>> result_type(np.ones(2, np.int32), 2.5)
dtype('float64')
>>> result_type(np.ones(2, np.int32), np.ones(2, np.float32))
dtype('float64')
"""
from __future__ import annotations

import sys

import numpy as np

from tracegrad.ir import DTYPES, ops
from tracegrad.ir.core import computed_dtype, is_float, native

SUPPORTED = tuple(DTYPES)
FLOAT64 = np.dtype(np.float64)
INT64 = np.dtype(np.int64)
BOOL = np.dtype(np.bool_)


def check(dtype, what: str = "array") -> np.dtype:
    """`dtype` as a np.dtype if tracegrad supports it; a clear TypeError otherwise."""
    dt = native(dtype)  # '>f8' on x86: computed in the host's byte order
    if dt not in DTYPES:
        names = ", ".join(str(d) for d in SUPPORTED)
        hint = "; convert it first, e.g. x.astype(np.float32)" if dt == np.float16 else ""
        raise TypeError(f"tracegrad {what}s support the dtypes {names}; got {dt}{hint}")
    return dt


class WeakScalar:
    """Base of traced values that promote like a Python float (`tracer.scalars.WeakFloat`)."""

    __slots__ = ()


_WEAK = (bool, int, float, WeakScalar)


def is_weak(x) -> bool:
    """A Python scalar (also the scalars `.item()` returns while tracing, and `WeakScalar`s)."""
    return isinstance(x, _WEAK) and not isinstance(x, np.generic)


def _weak_representative(x):
    # Under NEP 50 only the Python type of a weak scalar matters, not its value;
    # a representative also avoids touching the value of a traced scalar.
    if isinstance(x, bool):
        return False
    return 0 if isinstance(x, int) else 0.0


def weak_default(x) -> np.dtype:
    """The dtype a Python scalar gets on its own (bool, int64 or float64)."""
    return np.result_type(_weak_representative(x))


def dtype_of(x) -> np.dtype:
    return weak_default(x) if is_weak(x) else np.dtype(ops.dtype(x))


_KIND_ORDER = {"b": 0, "i": 1, "f": 2}


def _fast_result(strong, weak):
    # The common case (one array dtype, scalars of no higher kind) without numpy's
    # general machinery; anything else returns None.
    if len(strong) != 1:
        return None
    dt = strong.pop()
    rank = _KIND_ORDER.get(dt.kind)
    if rank is None or any(_KIND_ORDER[np.dtype(type(w)).kind] > rank for w in weak):
        return None
    return dt


MASKED_HINT = ("its mask would be ignored (JAX refuses them too). Pass x.filled(value), or "
               "the data and the mask as two arrays (np.where(mask, fill, x)).")


def is_masked(x) -> bool:
    """Whether `x` is a numpy masked array (numpy.ma is only there once something made one)."""
    ma = sys.modules.get("numpy.ma")
    return ma is not None and isinstance(x, ma.MaskedArray)


def computed(x: np.ndarray) -> np.ndarray:
    """A NumPy operand in the dtype it computes in (`ir.core.computed_dtype`: a uint8 table
    held as a constant as int64, as arguments are), or `check`'s TypeError."""
    dt = check(computed_dtype(x.dtype))
    return x if x.dtype == dt else x.astype(dt)


def _strong_dtype(x) -> np.dtype:
    d = getattr(x, "dtype", None)  # boxed values and numpy arrays/scalars
    return native(d) if d is not None else np.dtype(ops.dtype(x))


def result_type(*xs) -> np.dtype:
    """NumPy 2 `result_type` of operands (arrays, boxed values, Python scalars), in the
    dtype it computes in.  Promotion sees a NumPy operand's own dtype, so a float32 array
    times an int8 constant stays float32 as in NumPy; a narrow integer result is int64
    (`ir.core.computed_dtype`)."""
    weak = [_weak_representative(x) for x in xs if is_weak(x)]
    strong = {_strong_dtype(x) for x in xs if not is_weak(x)}
    fast = _fast_result(set(strong), weak)
    if fast is None:
        fast = np.result_type(*strong, *weak)
    return check(computed_dtype(fast), "result")


def float_result(dtype) -> np.dtype:
    """Dtype of a float-valued function of `dtype` (int and bool compute in float64)."""
    return np.dtype(dtype) if is_float(dtype) else FLOAT64


def sum_result(dtype) -> np.dtype:
    """NumPy sums bool and small ints in the platform integer (int64 here)."""
    dt = np.dtype(dtype)
    return dt if is_float(dt) else INT64
