"""The kernel program: what fusion planning produces and code generation consumes.

A kernel program is an ordered list of kernels over named, C-contiguous
buffers.  Semantics (shared by the reference interpreter in
`passes/kernel_interp.py` and by `codegen/`):

* Buffers are row-major, C-contiguous arrays of `shape` and `dtype`.  Kinds:
  `input` (the program's i-th argument), `const` (value baked in),
  `temp` (scratch, dead after its last reader), `output` (returned).
* A `LoopKernel` iterates over every index `i` of `domain` (a shape).  Its
  `body` is a list of scalar SSA instructions evaluated per index: a `Load`
  reads `buffer.flat[index.offset + sum(i[d] * index.strides[d])]` (strides in
  elements, one per domain dim, possibly 0 or negative); if `index.bounds` is
  set, dim d only exists where `lo <= i[d] < hi and (i[d] - lo) % step == 0`
  and the load yields 0 elsewhere (how `pad` fuses; the address is never
  formed out of bounds).  An `Op` applies a primitive's scalar semantics to
  earlier body values (by position) or `Const` literals.
* A `Store` writes a body value at `buffer.flat[index(i)]`.  With
  `reduce="sum"|"max"|"min"` the target is first filled with the reduction's
  identity (0, -inf, +inf) when the kernel starts, then combined with every
  value mapped onto it (reduced dims have stride 0 in the index map).
  Floating-point sums may be reassociated (vectorized): results match a
  sequential sum within the documented reassociation tolerance.
* A `DotKernel` computes `out[b] = op(a[b]) @ op(b[b])` for every batch index,
  where op transposes when `trans_a`/`trans_b` is set (operands are read as
  stored; a transposed operand has shape (k, m) resp. (n, k) in memory).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tracegrad.ir.core import short_dtype


@dataclass(eq=False)
class Buffer:
    name: str
    shape: tuple
    dtype: np.dtype
    kind: str  # input | const | temp | output
    value: np.ndarray | None = None  # const only
    index: int | None = None  # position among the program's inputs / outputs

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __str__(self):
        return f"{self.name}:{short_dtype(self.dtype)}[{','.join(map(str, self.shape))}]"


@dataclass(frozen=True)
class IndexMap:
    offset: int
    strides: tuple  # one per domain dim, in elements
    bounds: tuple | None = None  # per domain dim (lo, hi, step) or None for "always"

    def __str__(self):
        s = f"{self.offset}+{list(self.strides)}"
        if self.bounds is not None:
            s += f" if {list(self.bounds)}"
        return s


@dataclass(frozen=True, eq=False)
class Const:
    """A scalar literal.  Consts are equal when their dtype and bytes are: -0.0
    and 0.0 differ (1/-0.0 is -inf), and a NaN equals itself."""

    value: float | int | bool
    dtype: np.dtype

    def __post_init__(self):
        array = np.asarray(self.value, self.dtype)
        object.__setattr__(self, "array", array)  # the value as a 0-d array of its dtype
        object.__setattr__(self, "_key", (array.dtype, array.tobytes()))

    def __eq__(self, other):
        return isinstance(other, Const) and self._key == other._key

    def __hash__(self):
        return hash(self._key)


@dataclass
class Load:
    buffer: Buffer
    index: IndexMap
    dtype: np.dtype


@dataclass
class Op:
    prim: str  # an elementwise primitive name (unary, binary, compare, logical, where, convert, integer_pow)
    args: tuple  # ints (positions of earlier body values) or Const
    params: dict
    dtype: np.dtype


@dataclass
class Store:
    buffer: Buffer
    value: int  # position in body
    index: IndexMap
    reduce: str | None = None  # None | sum | max | min


@dataclass
class LoopKernel:
    name: str
    domain: tuple
    body: list
    stores: list

    def reads(self):
        return [ins.buffer for ins in self.body if isinstance(ins, Load)]

    def writes(self):
        return [s.buffer for s in self.stores]


@dataclass
class DotKernel:
    name: str
    a: Buffer
    b: Buffer
    out: Buffer
    batch: int
    m: int
    k: int
    n: int
    trans_a: bool = False
    trans_b: bool = False

    def reads(self):
        return [self.a, self.b]

    def writes(self):
        return [self.out]


@dataclass
class KernelProgram:
    inputs: list  # Buffers of kind input, in argument order
    outputs: list  # Buffers returned, in output order (one may appear twice)
    consts: list
    temps: list
    kernels: list = field(default_factory=list)

    def __str__(self):
        from .kernel_format import format_program
        return format_program(self)
