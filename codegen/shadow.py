"""float64 shadows of float32 sums that accumulate in memory.

A reducing store whose innermost dims are not all reduced (`sum(axis=0)` of a (rows, 4)
array, a bias gradient) combines into its target element by element, in the target's
dtype: a float32 target would then accumulate in float32, where the reassociation policy
(docs/codegen.md) promises float64 for float32 sums.  Where the image of such a store is
small, the kernel accumulates into a float64 copy of it instead (a stack array: the
shadow), filled with zeros when the kernel starts (kernel._fill) and rounded into the
target once at its end.  A thread's call shadows only its own rows (dim 0 runs over [lo, hi)), as `_fill`
fills only them.

Invariant: the target ends with each element's float64 sum rounded once to float32.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from llvmlite import ir

from tracegrad.passes.kernels import Buffer

from .irutil import PTR, i64, walk_image

# Elements a shadow may hold (8 bytes each, on the stack of the thread running the kernel).
MAX_ELEMENTS = 4096

F64 = np.dtype(np.float64)


@dataclass
class Shadow:
    buffer: Buffer  # a float64 stand-in for the target, indexed by `access`
    access: object  # the store's access, its offset moved to the shadow's start
    low: int  # the lowest target element the store reaches


# Below this many terms per target element a float32 sum stays float32: its error is a
# few ULPs, and the shadow's fill and write-back would cost more than they save (a
# row-block step's 8-row blocks, whose carries take the blocks' sums: W8 was 12% slower).
MIN_TERMS = 64


def terms(access, domain) -> int:
    """How many index points map onto each target element (the reduced dims' extent)."""
    return int(np.prod([n for s, n in zip(access.strides, domain) if s == 0], dtype=np.int64))


def wanted(red, domain) -> bool:
    """Whether `red` (kernel._Reduction) is a float32 sum of many terms into memory."""
    return (red.needs_fill and red.store.reduce == "sum" and red.acc_dtype == F64
            and np.dtype(red.store.buffer.dtype) == np.float32 and not red.access.never
            and 0 not in domain and terms(red.access, domain) >= MIN_TERMS)


def _span(access, domain) -> tuple[int, int]:
    lo = hi = access.offset
    for s, n in zip(access.strides, domain):
        lo, hi = lo + min(0, s * (n - 1)), hi + max(0, s * (n - 1))
    return lo, hi


def make(b: ir.IRBuilder, red, domain, ptrs: dict) -> Shadow | None:
    """A shadow for `red` (its stack array allocated at `b`, and entered in `ptrs`), or None
    when it is not wanted or too large."""
    if not wanted(red, domain):
        return None
    low, high = _span(red.access, domain)
    size = high - low + 1
    if size > MAX_ELEMENTS:
        return None
    buf = Buffer("shadow", (size,), F64, "temp")
    array = b.alloca(ir.DoubleType(), size=i64(size), name="shadow")
    array.type = PTR  # opaque, as the kernel's other pointers: typed at each access
    ptrs[id(buf)] = array
    return Shadow(buf, replace(red.access, offset=red.access.offset - low), low)


def write_back(emitter, red, shadow: Shadow):
    """Each shadowed element, rounded to float32, into the target (this call's rows)."""
    b = emitter.b
    src, dst = emitter.ptrs[id(shadow.buffer)], emitter.ptrs[id(red.store.buffer)]

    def put(index):
        at = b.gep(src, [b.sub(index, i64(shadow.low))], inbounds=True,
                   source_etype=ir.DoubleType())
        value = b.load(at, typ=ir.DoubleType())
        b.store(b.fptrunc(value, ir.FloatType()),
                b.gep(dst, [index], inbounds=True, source_etype=ir.FloatType()))
    walk_image(b, red.access.offset, emitter.image_dims(red.access), put, "shback")
