"""Explicit vector loops: the innermost loop of a kernel emitted in `<W x T>` form.

Kernels are normally emitted one element at a time and LLVM's loop vectorizer widens the
innermost loop.  That vectorizer's time grows faster than linearly with the length of the
loop body's dependence chains (most of W7's O3 time went to VPlan type inference over its
1300-instruction chain: docs/codegen.md, "Compile time").  For the kernels where that
matters (`wants_vector_body`: those calling math out of line, or with long bodies) the
emitter writes the vector loop itself, and so it does for float32 kernels that sum over the
innermost dim in float64 (`widened_sum`): the vectorizer sizes a loop by its widest type,
which there is the accumulator, so the f32 work would run at half width.  Sum kernels
with a long innermost dim (`long_sum`) take it too: the light pipeline on the explicit loop
costs a fraction of O2's vectorizer, interleaving and remainder loop for the same speed:

* the innermost (simplified) dim steps by W lanes, W = one host vector register of the
  kernel's widest float (`llvm_util.vector_bits()`: 8 doubles or 16 floats on AVX-512);
* a load with stride 1 in that dim is a vector load, with stride 0 a scalar load and a
  splat; a store with stride 1 a vector store (`align` = element size: inputs may be
  offset views);
* when the trip count is not a static multiple of W (or comes from the `lo, hi` row range
  that threads hand out), every memory access is masked (`llvm.masked.load/store` with the
  lane mask `i + lane < hi`): one loop, no scalar remainder loop, so the body exists once;
* a reduction over the innermost dim accumulates lane-wise in a vector register (masked-off
  lanes add the identity; a float32 sum's `<W x double>` accumulator is a pair of
  registers) and is folded across lanes once after the loop (a halving tree of the same
  combine, so max/min keep numpy's NaN propagation; sums are reassociated as the
  vectorizer would, docs/codegen.md "Reassociation policy");
* transcendental ops call the module's vector math functions directly (outline.py), or
  inline mathlib's vector code when the kernel does not call math out of line.

Only kernels whose every value is float or bool and whose innermost-dim accesses have
stride 0 or 1 (1 for plain stores) and no step > 1 bounds there take this path
(`vector_lanes` says how many lanes, or None); the rest keep the scalar body.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from tracegrad.passes.kernels import Const, Load, Op

from . import llvm_util, outline, threads
from .irutil import I64, PTR, i64

LONG_BODY = 400  # body instructions from which the vectorizer's time shows (W7: 1305)
SPLIT_MIN_LANES = 64  # shorter loops are all masked; longer ones unmasked + a masked last step
COSTLY_MIN_ELEMENTS = 64  # a costly body over fewer elements keeps the scalar body
# A sum kernel whose innermost dim has this many elements or more takes the vector form
# (`long_sum`).  O2 on W6's sum of 1M terms took 20-30 ms of a 60 ms first call (its
# vectorized, interleaved loop, scalar remainder and run-time checks in the three-level
# nest of kernel.py); in vector form W6's first call fell from 47 to 38 ms and W3's (its
# bias gradients' column sums) from 84-92 to 81, steady times unchanged.  Shorter rows
# keep O2 (W4's rows of 100: the vector form's longer code gained nothing).
LONG_SUM_MIN = 256
_VALUE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.bool_))
I32 = ir.IntType(32)


def wants_vector_body(kernel) -> bool:
    """Kernels the emitter writes in vector form (module docstring) when their accesses
    allow: math out of line, long bodies, and bodies of COSTLY_BODY ops or more (two
    transcendentals) over COSTLY_MIN_ELEMENTS elements or more, whose O2 pipeline took
    about twice the light one's time for the same speed (W4's exp/log kernel) or less (a
    column sum of tanh(x)*exp(-x*x) 1.4x faster).  A costly body over a few elements (an
    RNN step's hidden state) keeps the scalar body, as before: there the vector form is one
    masked step, and the loop RNN's compile was not measured faster with it (within this
    machine's noise)."""
    return (outline.wants_outline(kernel) or len(kernel.body) > LONG_BODY
            or (threads.op_cost(kernel) >= threads.COSTLY_BODY
                and int(np.prod(kernel.domain, dtype=np.int64)) >= COSTLY_MIN_ELEMENTS))


def row_vectors() -> int:
    """Vector accumulators a kernel may keep for one row (KernelEmitter._unrolls): half the
    host's vector registers (32 with AVX-512, 16 before), the rest for the body."""
    return 16 if llvm_util.vector_bits() >= 512 else 8


def _value_dtypes(kernel):
    for ins in kernel.body:
        if isinstance(ins, (Load, Op, Const)):
            yield np.dtype(ins.dtype)
        if isinstance(ins, Load):
            yield np.dtype(ins.buffer.dtype)
        if isinstance(ins, Op):
            yield from (np.dtype(a.dtype) for a in ins.args if isinstance(a, Const))
    for store in kernel.stores:
        yield np.dtype(store.buffer.dtype)


def _access_ok(acc, store=None) -> bool:
    if acc.never:
        return True
    bnd = acc.bounds[-1]
    if bnd is not None and bnd[2] != 1:
        return False  # a run-time test per lane: keep the scalar body
    allowed = (1,) if store is not None and not store.reduce else (0, 1)
    return acc.strides[-1] in allowed


def widened_sum(em) -> bool:
    """A float32 sum over the innermost dim, accumulated in float64 (kernel._Reduction).
    LLVM's loop vectorizer sizes such a loop by its widest type, the f64 accumulator: the
    f32 work would run at half width.  The explicit loop runs the f32 lanes full width and
    the `<lanes x double>` accumulator becomes a pair of registers."""
    inner = len(em.domain)
    return any(red.level < inner and red.acc_dtype != np.dtype(red.store.buffer.dtype)
               for red in em.reductions)


def long_sum(em) -> bool:
    """A sum (over any dims) whose innermost dim has LONG_SUM_MIN elements or more."""
    return em.domain[-1] >= LONG_SUM_MIN and any(red.store.reduce == "sum" for red in em.reductions)


def vector_lanes(em, vector_bits: int | None = None) -> int | None:
    """Lanes of the explicit vector loop for KernelEmitter `em`, or None for the scalar body."""
    if not em.domain or 0 in em.domain:
        return None
    dtypes = set(_value_dtypes(em.kernel))
    if not dtypes <= set(_VALUE_DTYPES):
        return None
    wide = np.dtype(np.float64) in dtypes
    if not (wants_vector_body(em.kernel) or (widened_sum(em) and not wide)
            or _extremum(em.kernel) or long_sum(em)):
        return None
    if not em.splits(len(em.domain) - 1):
        return None  # the innermost dim's bounds stay run-time checks: one lane at a time
    if not all(_access_ok(acc) for acc in em.load_access.values()):
        return None
    if not all(_access_ok(acc, s) for s, acc in zip(em.kernel.stores, em.store_access)):
        return None
    bits = vector_bits or llvm_util.vector_bits()
    return bits // (64 if wide else 32)


def _extremum(kernel) -> bool:
    """A max or min reduction: LLVM's vectorizer does not take numpy's NaN-propagating
    max (a compare, an unordered test and selects) for a reduction, so the scalar body
    stayed one element at a time (max(axis=1) of a float32 1024x1024: 5x numpy's time)."""
    return any(s.reduce in ("max", "min") for s in kernel.stores)


# ---- IR helpers ------------------------------------------------------------------------

def vector_of(ty, lanes: int) -> ir.VectorType:
    return ir.VectorType(ty, lanes)


def splat(b, x, lanes: int):
    """<lanes x T> with every lane x (insertelement + shufflevector, LLVM's splat idiom)."""
    vty = vector_of(x.type, lanes)
    one = b.insert_element(ir.Constant(vty, ir.Undefined), x, I32(0))
    return b.shuffle_vector(one, ir.Constant(vty, ir.Undefined),
                            ir.Constant(vector_of(I32, lanes), [I32(0)] * lanes))


def lane_mask(b, start, end, lanes: int):
    """<lanes x i1>: start + k < end for lane k."""
    iota = ir.Constant(vector_of(I64, lanes), [i64(k) for k in range(lanes)])
    index = b.add(splat(b, start, lanes), iota)
    return b.icmp_signed("<", index, splat(b, end, lanes))


def _suffix(vty) -> str:
    elem = vty.element
    name = {ir.FloatType: "f32", ir.DoubleType: "f64"}.get(type(elem)) or f"i{elem.width}"
    return f"v{vty.count}{name}"


def _intrinsic(module, name, ret, args):
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, args), name)
    return fn


def load(b, ptr, vty, elem_bytes: int, mask=None):
    """A vector load of vty at ptr (element-aligned); masked-off lanes read as 0."""
    if mask is None:
        return b.load(ptr, typ=vty, align=elem_bytes)
    # the pre-LLVM-21 form with an i32 alignment operand: LLVM 22 auto-upgrades it
    fn = _intrinsic(b.module, f"llvm.masked.load.{_suffix(vty)}.p0", vty,
                    [PTR, I32, mask.type, vty])
    return b.call(fn, [ptr, I32(elem_bytes), mask, ir.Constant(vty, None)])


def store(b, value, ptr, elem_bytes: int, mask=None):
    """A vector store of value at ptr (element-aligned); only mask lanes are written."""
    if mask is None:
        b.store(value, ptr, align=elem_bytes)
        return
    fn = _intrinsic(b.module, f"llvm.masked.store.{_suffix(value.type)}.p0", ir.VoidType(),
                    [value.type, PTR, I32, mask.type])
    b.call(fn, [value, ptr, I32(elem_bytes), mask])


def fold_lanes(b, vec, combine_fn):
    """combine_fn over all lanes of vec by halving (log2(lanes) steps); the scalar result."""
    lanes = vec.type.count
    while lanes > 1:
        half = lanes // 2
        lo = b.shuffle_vector(vec, ir.Constant(vec.type, ir.Undefined), _lanes(range(half)))
        hi = b.shuffle_vector(vec, ir.Constant(vec.type, ir.Undefined), _lanes(range(half, lanes)))
        vec, lanes = combine_fn(lo, hi), half
    return b.extract_element(vec, I32(0))


def _lanes(indices) -> ir.Constant:
    """A shuffle mask selecting `indices`."""
    indices = list(indices)
    return ir.Constant(vector_of(I32, len(indices)), [I32(k) for k in indices])


def pin_width(fn) -> None:
    """Give kernel fn the host's full vector width (`llvm_util.vector_bits`, from the CPU's
    features).  LLVM tunes many AVX-512 CPUs to prefer 256-bit vectors: its loop vectorizer
    then picks half the lanes, and the code generator splits every 512-bit value of an
    explicit vector loop in two.  Measured on an AVX-512 host (docs/mathlib.md, "Vector
    width"), 512 bits pay for every kernel shape here; AVX2 hosts get 256."""
    bits = llvm_util.vector_bits()
    fn.string_attributes.update({"prefer-vector-width": bits, "min-legal-vector-width": bits})
