"""Native lowerings of the cumulative primitives (ir/cumulative.py): cumsum, cumprod,
cummax, cummin along one axis, for float32/64 and int32/64 (extern.register_native).

The operand is viewed as (outer, n, inner) row-major, n the axis.  Row 0 of the scan
(row n-1 when `reverse`) is copied; every later row combines the previous output row
with its input row, one element of `inner` at a time, so the innermost loop is
contiguous and vectorizes across `inner`.  Each output element is the same sequence of
operations numpy's `ufunc.accumulate` performs (sums and products in scan order, no
reassociation; integers wrap), so results are bit-identical.  Maximum and minimum
propagate NaN and pick between equal zeros exactly as np.maximum/np.minimum do:
`acc > x or isnan(acc) ? acc : x` (the new element on ties: max(-0.0, 0.0) is 0.0).
"""
from __future__ import annotations

import math

import numpy as np

from . import extern
from .irutil import Loop, i64
from .scalar_ops import storage_type

# the dtypes codegen stores (scalar_ops.storage_type); others take the host callback
SUPPORTED = frozenset(np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64))


def _combine(name, b, acc, x, dtype):
    """`acc op x` for the running value `acc` and the next element `x`."""
    flt = dtype.kind == "f"
    if name == "cumsum":
        return b.fadd(acc, x) if flt else b.add(acc, x)
    if name == "cumprod":
        return b.fmul(acc, x) if flt else b.mul(acc, x)
    if flt:
        keep = b.fcmp_ordered(">" if name == "cummax" else "<", acc, x)
        keep = b.or_(keep, b.fcmp_unordered("uno", acc, acc))
    else:
        signed = "icmp_signed" if dtype.kind == "i" else "icmp_unsigned"
        keep = getattr(b, signed)(">" if name == "cummax" else "<", acc, x)
    return b.select(keep, acc, x)


def _emit(b, call):
    k = call.kernel
    shape, axis, reverse = k.in_avals[0].shape, k.params["axis"], k.params["reverse"]
    dtype = np.dtype(k.in_avals[0].dtype)
    outer, n, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    if outer * n * inner == 0:
        return
    ty = storage_type(dtype)
    (x,), (out,) = call.ins, call.outs

    def at(ptr, o, i, j):
        flat = b.add(b.mul(b.add(b.mul(o, i64(n)), i), i64(inner)), j)
        return b.gep(ptr, [flat], inbounds=True, source_etype=ty)

    first = i64(n - 1 if reverse else 0)
    with Loop(b, i64(0), i64(outer), "outer") as o:
        with Loop(b, i64(0), i64(inner), "first") as j:
            b.store(b.load(at(x, o, first, j), typ=ty), at(out, o, first, j))
        with Loop(b, i64(1), i64(n), "scan") as t:
            i = b.sub(i64(n - 1), t) if reverse else t
            prev = b.add(i, i64(1)) if reverse else b.sub(t, i64(1))
            with Loop(b, i64(0), i64(inner), "inner") as j:
                acc = b.load(at(out, o, prev, j), typ=ty)
                value = _combine(k.prim, b, acc, b.load(at(x, o, i, j), typ=ty), dtype)
                b.store(value, at(out, o, i, j))


def _supports(kernel) -> bool:
    return np.dtype(kernel.in_avals[0].dtype) in SUPPORTED


for _name in ("cumsum", "cumprod", "cummax", "cummin"):
    extern.register_native(_name, _emit, _supports)
