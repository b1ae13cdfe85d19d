"""TF1's dtype names as numpy dtypes, and the conversion rule for fed values.

`tf.float32` is `np.dtype('float32')`, so `t.dtype == tf.float32` and
`t.dtype == np.float32` both hold.  A fed value is converted to its
placeholder's dtype when the conversion keeps its kind (an int or a float fed to a
float placeholder, a Python number of the right kind); anything else (a float fed
to an int placeholder, a string) is an error naming the placeholder.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir.core import native

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool = np.dtype(np.bool_)  # noqa: A001  (TF1's name)
DTYPES = (float32, float64, int32, int64, bool)


def as_dtype(dtype) -> np.dtype:
    """A TF1/numpy dtype spelling as one of the five dtypes tracegrad knows."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"cannot convert {dtype!r} to a dtype") from None
    dt = native(dt)  # '>f8' on x86: the values are converted to the host's order
    if dt not in DTYPES:
        raise TypeError(f"dtype {dt} is not supported: use float32, float64, int32, int64 "
                        "or bool")
    return dt


def feedable(value, dtype: np.dtype) -> np.ndarray | None:
    """`value` as an array of `dtype`, or None when the conversion would change its kind."""
    if isinstance(value, (np.ndarray, np.generic)):
        src = value.dtype
    else:
        try:
            plain = np.asarray(value)
        except (TypeError, ValueError):
            return None
        if plain.size == 0 and plain.dtype == np.float64:  # [] holds no value of any kind
            return np.asarray(value, dtype=dtype)
        src = plain.dtype
    if src == object or not np.can_cast(src, dtype, casting="same_kind"):
        return None
    return np.asarray(value, dtype=dtype)
