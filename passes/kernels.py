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
  `reduce="sum"|"prod"|"max"|"min"` (`REDUCTIONS`) the target is first filled with the
  reduction's identity (0, 1, -inf, +inf) when the kernel starts, then combined with every
  value mapped onto it (reduced dims have stride 0 in the index map).
  Floating-point sums may be reassociated (vectorized): results match a
  sequential sum within the documented reassociation tolerance.
* A `DotKernel` computes `out[b] = op(a[b]) @ op(b[b])` for every batch index,
  where op transposes when `trans_a`/`trans_b` is set (operands are read as
  stored; a transposed operand has shape (k, m) resp. (n, k) in memory).

* An `ExternKernel` runs a whole-array primitive (kind "extern": sort, gather,
  LAPACK, cumsum, ...): `outputs = prim(*inputs, **params)`.  Each input buffer
  holds its operand row-major (`in_avals[i]` is the shape the primitive sees;
  the buffer may hold a reshape of it, same size), and every output is fresh
  memory of `out_avals[j]`'s size that no input shares, written in full.

Control flow (`ir/control_flow.py`) runs as steps whose bodies are kernel
programs of their own (planned once, whatever the trip count).  A body's
`inputs` are bound, in order, to the step's operand buffers of each role and
its `outputs` to the destinations; a body output is always fresh memory (a
passthrough is a copy kernel), so a body never writes what it reads.

* A `LoopStep` (scan, while; fori_loop is one of them) keeps each carry in two
  buffers, `carries[j]` and `scratch[j]`, and swaps them after every trip:
  the body reads the current carries and writes the next ones into the other
  buffers (no copy).  Trip t binds `body.inputs` to `consts + carries + xs[t]`
  and `body.outputs` to `next carries + ys[t]`, where `xs[t]`/`ys[t]` is the
  slice t of the leading axis (base + t * slice size).  A scan runs `length`
  trips, t = 0..length-1 (length-1..0 when `reverse`); a while loop runs
  `cond` (inputs `cond_consts + carries`, output the bool[] buffer `pred`)
  before each trip and stops when it is false.  The final carries land in
  `carries` (trip count 0: a copy of `init`).
* A scan with `groups` G (row blocks, passes/rowblock.py; forward, no grad)
  splits its trips into G contiguous ranges, range g being trips
  [length*g//G, length*(g+1)//G), each starting its carries from `init`.  The
  ranges' final carries are then folded in range order, ((r0 . r1) . r2) ...,
  by the `merge` program (inputs `carries so far + range g's carries`, outputs
  the combined carries) into `carries`.  Ranges share nothing but their reads,
  so they may run on different threads; the fold order, and with it the
  result, does not depend on how many.
* A `LoopStep` with a `grad` (`while_vjp`) records the carries entering each
  trip on a tape that grows at run time, then runs `grad.body` over the tape
  from the last trip to the first: inputs `grad.consts + tape[t] + acc + ct`,
  outputs the next `acc + ct` (double-buffered like carries).  `acc` starts at
  zero, `ct` at `grad.cts`; the final values land in `grad.outs`.
* A `CondStep` evaluates `branches[clip(index, 0, n-1)]` on `operands`
  writing `outs` (the branch is picked at run time).
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


@dataclass(frozen=True)
class Reduction:
    """A reducing store's kind: what each stage needs to know of it, in one place (code
    generation's LLVM combine is `codegen/scalar_ops.COMBINERS`, keyed the same)."""

    name: str
    primitive: str  # the reduction primitive whose store it is
    operator: str  # the store's operator in kernel text: `store b[i] += %v`
    combine: str  # the binary primitive that folds two partial results
    ufunc: np.ufunc  # numpy's: `.reduce` folds values, `.at` scatters into a buffer

    def identity(self, dtype):
        """The value a target starts from; for integers and bools the dtype's extremes."""
        dtype = np.dtype(dtype)
        if self.name in ("sum", "prod"):
            return int(self.name == "prod")
        if dtype.kind == "f":
            return -np.inf if self.name == "max" else np.inf
        if dtype.kind == "b":
            return self.name == "min"
        info = np.iinfo(dtype)
        return info.min if self.name == "max" else info.max


REDUCTIONS = {r.name: r for r in (Reduction("sum", "reduce_sum", "+=", "add", np.add),
                                  Reduction("prod", "reduce_prod", "*=", "mul", np.multiply),
                                  Reduction("max", "reduce_max", "max=", "max", np.maximum),
                                  Reduction("min", "reduce_min", "min=", "min", np.minimum))}
REDUCTION_OF_PRIMITIVE = {r.primitive: r.name for r in REDUCTIONS.values()}


@dataclass
class Store:
    buffer: Buffer
    value: int  # position in body
    index: IndexMap
    reduce: str | None = None  # None, or a key of REDUCTIONS


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
class ExternKernel:
    """`outputs = prim(*inputs, **params)` for an extern primitive (module docstring)."""

    name: str
    prim: str
    params: dict
    inputs: list  # Buffers, one per operand (one buffer may be several operands)
    outputs: list  # fresh Buffers, one per result
    in_avals: list  # ShapedArray per operand: the shape and dtype the primitive sees
    out_avals: list  # ShapedArray per result

    def reads(self):
        return list(self.inputs)

    def writes(self):
        return list(self.outputs)


@dataclass
class TapeGrad:
    """The reverse half of a `while_vjp` LoopStep (see the module docstring)."""

    body: KernelProgram  # consts + one trip's carries + acc + ct -> acc + ct
    consts: list
    cts: list  # the initial cotangents of the active carries
    outs: list  # the final acc, then the final ct
    scratch: list  # the other buffer of each (acc + ct) double buffer
    n_acc: int  # acc (the consts' cotangents, starting at zero) leads the carries

    def reads(self):
        return list(self.consts) + list(self.cts)

    def writes(self):
        return list(self.outs) + list(self.scratch)


@dataclass
class LoopStep:
    """A native loop: scan (static `length`) or while (`cond`); see the module docstring."""

    name: str
    body: KernelProgram  # consts + carries + x slices -> carries + y slices
    consts: list
    init: list
    xs: list
    carries: list  # the final carries
    scratch: list  # per carry, the other buffer of its double buffer
    ys: list
    length: int | None = None  # scan; None: `cond` decides
    reverse: bool = False
    cond: KernelProgram | None = None  # cond_consts + carries -> bool[]
    cond_consts: list = field(default_factory=list)
    pred: Buffer | None = None  # where `cond` writes its bool
    grad: TapeGrad | None = None
    groups: int | None = None  # a scan over independent ranges of trips (module docstring)
    merge: KernelProgram | None = None  # with groups: carries + a range's carries -> carries

    def reads(self):
        extra = self.grad.reads() if self.grad is not None else []
        return list(self.cond_consts) + list(self.consts) + list(self.init) + list(self.xs) \
            + extra

    def writes(self):
        extra = self.grad.writes() if self.grad is not None else []
        pred = [self.pred] if self.pred is not None else []
        return list(self.carries) + list(self.scratch) + list(self.ys) + pred + extra

    def programs(self):
        """The sub-programs, in the order they run."""
        return [p for p in (self.cond, self.body, self.grad and self.grad.body, self.merge) if p]


@dataclass
class CondStep:
    """`outs = branches[clip(index)](operands)`: the branch is picked at run time."""

    name: str
    index: Buffer  # an integer scalar
    operands: list
    outs: list
    branches: list  # KernelPrograms: operands -> outs

    def reads(self):
        return [self.index] + list(self.operands)

    def writes(self):
        return list(self.outs)

    def programs(self):
        return list(self.branches)


def distinct(buffers) -> list:
    """`buffers` in first-seen order, each once (buffers compare by identity)."""
    return list(dict.fromkeys(buffers))


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
