"""Compile units: each distinct kernel is emitted, optimized and cached once.

A kernel's code depends on its structure, not on which buffers it is called with.  The
*canonical form* of a LoopKernel replaces every buffer it gets a pointer to by a
placeholder argument (`a0, a1, ...` in order of first use) and makes each access's
offset relative to a base of that argument: the lowest offset the kernel uses in it,
clamped into the buffer so the shifted pointer stays inside it.  The caller passes
`buffer + base` (lower.py), so the 50 steps of an unrolled loop, which read `xs[t]` at
offset `3t` and write temps at different arena offsets, are one canonical kernel.

The canonical text (`canonical_text`) names everything the emitted code depends on:
domain, argument dtypes, body (loads with their index maps and dtypes, constants by
dtype and bytes, ops with their params), stores, the constants baked into the code
(kernel.baked_const, by bytes), and whether the function takes a row range (a kernel
split over threads).  Buffer names, shapes and kinds are not in it: the emitter reads
none of them.  `KernelUnit.key` is the sha256 of that text and of the compiler's
fingerprint (fingerprint.py); the unit's function is `tg_kern_<key>`, external, so one
object file per unit links into any program that calls it, and the disk cache holds one
entry per unit: programs of different lengths share their kernels on disk.

Size.  LLVM's loop passes (loop idiom recognition, the vectorizers, LICM) take time
that grows with the square of a loop body's memory operations.  Fusion merges
independent kernels horizontally (the 200 `xs[t]` slices of an unrolled loop become one
kernel with 200 stores), so a kernel whose stores depend on disjoint parts of the body
(`independent_parts`) is split into one kernel per part first: the 200 slice copies
become 200 calls of one unit.  The optimization level is chosen from what is left
(`opt_level`): SCALAR_LEVEL (O2, with the loop and SLP vectorizers), except for a
scalar body longer than LONG_SCALAR_BODY over fewer than SMALL_DOMAIN elements (the sum
of an unrolled loop's gradient terms), where vectorizing pays little and its time is
high: O1.  Two O2 variants leave out what only costs compile time: a body costing
threads.COSTLY_BODY simple ops or more that keeps the scalar body (its accesses rule
out the vector form) gets llvm_util.FLAT (no loop unrolling or interleaving), an
innermost dim of ROLLED_MIN_INNER elements or more llvm_util.ROLLED (no unrolling).
Explicit vector loops (simd.py) run llvm_util.LIGHT: LLVM's vectorizers leave them alone,
and the O2/O3 pipelines' repeated InstCombine costs most of their compile time for the
same machine code; unless part of the body is invariant along the vector dim
(`invariant_work`), which only the full pipeline's LICM hoists (a written-out innermost
dim, unrolled.py, hoists it itself).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from tracegrad.passes.kernels import Buffer, Const, IndexMap, Load, LoopKernel, Op, Store, distinct

from . import llvm_util, outline, threads, unrolled
from .irutil import I64, PTR
from .kernel import KernelEmitter, baked_const

LONG_SCALAR_BODY = 256  # body instructions: a longer scalar body over ...
SMALL_DOMAIN = 4096  # ... fewer elements than this is optimized at O1 (module docstring)
SPLIT_MIN_BODY = 64  # bodies from this long are split into their independent parts
# Scalar bodies run O2 (with the loop and SLP vectorizers): it gives the same machine code
# as O3 for the kernels measured, except that O3 fully unrolls small inner dims (a
# 256x10 softmax-gradient kernel: 590 instructions instead of 81, twice the compile time).
SCALAR_LEVEL = 2
# A scalar body that costs threads.COSTLY_BODY simple vector ops (two transcendentals, or
# one and a few more ops) is optimized at llvm_util.FLAT: it fills the core without
# interleaving.  Shorter bodies keep it: a short reduction's loop-carried add needs the
# extra accumulators.  (Such bodies take the vector form where their accesses allow.)
# Kernels whose innermost dim has this many elements are optimized without loop unrolling
# (llvm_util.ROLLED); shorter inner loops keep it (W4's rows of 100: 7% faster unrolled).
ROLLED_MIN_INNER = 256
# A scalar body over at most this many elements runs the light pipeline: vectorizing a
# hundred adds saves tens of nanoseconds a call, and O2's vector body, remainder loop and
# runtime checks cost it milliseconds of compile time (W4's (100,) combine kernel: O2 8 ms,
# light 2.8 ms).  Cheap bodies only (simple ops, no transcendental): a costlier one keeps
# O2's vector code, which pays when the kernel runs in every step of a loop.
TINY_DOMAIN = 128
TINY_COST = 4  # threads.op_cost: simple vector ops per element


# ---- the canonical form ---------------------------------------------------------------

def _indices(kernel):
    """(buffer, IndexMap) of every access of the kernel."""
    return ([(ins.buffer, ins.index) for ins in kernel.body if isinstance(ins, Load)]
            + [(s.buffer, s.index) for s in kernel.stores])


def _bases(kernel, args) -> dict:
    """id(buffer) -> the element offset its pointer argument is advanced by."""
    lowest = {}
    for buf, index in _indices(kernel):
        lowest[id(buf)] = min(lowest.get(id(buf), index.offset), index.offset)
    return {id(buf): min(max(lowest[id(buf)], 0), max(math.prod(buf.shape) - 1, 0)) for buf in args}


def _shifted(index: IndexMap, base: int) -> IndexMap:
    return index if not base else IndexMap(index.offset - base, index.strides, index.bounds)


def canonical_form(kernel: LoopKernel):
    """(canonical kernel, [(buffer, base) per pointer argument]): see the module docstring."""
    args = [b for b in distinct(kernel.reads() + kernel.writes()) if not baked_const(b)]
    bases = _bases(kernel, args)
    holders = {id(b): Buffer(f"a{j}", tuple(b.shape), np.dtype(b.dtype), "arg", index=j)
               for j, b in enumerate(args)}

    def place(buf, index):
        holder = holders.get(id(buf))  # None: a baked constant, itself
        return (buf, index) if holder is None else (holder, _shifted(index, bases[id(buf)]))

    body = []
    for ins in kernel.body:
        if isinstance(ins, Load):
            ins = Load(*place(ins.buffer, ins.index), ins.dtype)
        body.append(ins)
    stores = []
    for s in kernel.stores:
        buf, index = place(s.buffer, s.index)
        stores.append(Store(buf, s.value, index, s.reduce))
    canon = LoopKernel(kernel.name, tuple(kernel.domain), body, stores)
    return canon, [(b, bases[id(b)]) for b in args]


def _index_text(index: IndexMap) -> str:
    return f"{index.offset}{list(index.strides)}{list(index.bounds) if index.bounds else ''}"


def _dtype(dtype) -> str:
    return np.dtype(dtype).str


def _const_text(c: Const) -> str:
    return f"{np.asarray(c.value, c.dtype).tobytes().hex()}:{_dtype(c.dtype)}"


def _buffer_text(buf, baked: dict) -> str:
    if buf.kind == "arg":
        return buf.name
    if id(buf) not in baked:
        value = np.ascontiguousarray(np.asarray(buf.value, dtype=buf.dtype))
        baked[id(buf)] = (f"k{len(baked)}", f"{_dtype(buf.dtype)}{value.shape}:"
                                            f"{hashlib.sha256(value.tobytes()).hexdigest()}")
    return baked[id(buf)][0]


def _instruction_text(ins, baked: dict) -> str:
    if isinstance(ins, Load):
        return f"load {_buffer_text(ins.buffer, baked)}[{_index_text(ins.index)}]:{_dtype(ins.dtype)}"
    if isinstance(ins, Const):
        return f"const {_const_text(ins)}"
    if isinstance(ins, Op):
        args = ",".join(_const_text(a) if isinstance(a, Const) else str(a) for a in ins.args)
        params = ",".join(f"{k}={v!r}" for k, v in sorted(ins.params.items()))
        return f"{ins.prim}({args})[{params}]:{_dtype(ins.dtype)}"
    raise TypeError(f"codegen: unexpected kernel body instruction {ins!r}")


def canonical_text(canon: LoopKernel, ranged: bool, row_align: int = 1) -> str:
    """Everything the code of a canonical kernel depends on (module docstring)."""
    holders = {buf.index: buf for buf, _ in _indices(canon) if buf.kind == "arg"}
    args = [holders[j] for j in sorted(holders)]
    baked = {}
    lines = [f"domain {tuple(canon.domain)} ranged={ranged}" + (f"/{row_align}" if ranged else ""),
             "args " + " ".join(f"{b.name}:{_dtype(b.dtype)}" for b in args)]
    lines += [_instruction_text(ins, baked) for ins in canon.body]
    lines += [f"store {_buffer_text(s.buffer, baked)}[{_index_text(s.index)}] = {s.value}"
              f" {s.reduce or ''}" for s in canon.stores]
    lines += [f"{name} = {text}" for name, text in baked.values()]
    return "\n".join(lines)


# ---- units ------------------------------------------------------------------------------

@dataclass(eq=False)
class KernelUnit:
    """One distinct kernel: its canonical form, key and function name."""

    kernel: LoopKernel  # canonical
    n_pointers: int  # pointer arguments
    ranged: bool  # the function also takes `lo, hi` (split over threads)
    text: str
    key: str
    row_align: int = 1  # ranged: `lo, hi` are multiples of it or the dim's end

    @classmethod
    def of(cls, canon: LoopKernel, n_pointers: int, ranged: bool, environment: str,
           row_align: int = 1) -> "KernelUnit":
        """The unit of a canonical kernel; `environment` (fingerprint.kernel_environment) is
        hashed into the key, so a unit's object code is reused only by the same compiler."""
        text = canonical_text(canon, ranged, row_align)
        key = hashlib.sha256((text + "\n" + environment).encode()).hexdigest()
        return cls(canon, n_pointers, ranged, text, key, row_align)

    @property
    def symbol(self) -> str:
        return f"tg_kern_{self.key[:32]}"

    def arg_types(self) -> list:
        return [PTR] * self.n_pointers + ([I64, I64] if self.ranged else [])

    def build_module(self) -> ir.Module:
        """A module defining only this unit's function (and the math it calls out of line)."""
        return self.build()[0]

    def build(self):
        """(module, optimization level): the module of `build_module` and `opt_level`."""
        module = ir.Module(name=self.symbol)
        math = outline.MathFunctions(module)
        em = KernelEmitter(module, self.kernel, self.symbol, math, ranged=self.ranged,
                           row_align=self.row_align)
        em.emit()
        math.finish()
        return module, _opt_level(self.kernel, em.lanes, em.unroll)

    def opt_level(self) -> int:
        return self.build()[1]


def _opt_level(kernel, lanes, unrolled: int = 0) -> int | str:
    if lanes is not None:  # emitted in vector form (simd.py): nothing left to vectorize
        # ... but the light pipeline has no loop-invariant code motion: work that does not
        # vary along the vector loop's dim (a row's 1/sqrt(var)) would run every step,
        # unless that dim is written out (unrolled.py), whose first step computes it once
        return SCALAR_LEVEL if invariant_work(kernel) and not unrolled else llvm_util.LIGHT
    elements = int(np.prod(kernel.domain, dtype=np.int64))
    if elements <= TINY_DOMAIN and threads.op_cost(kernel) <= TINY_COST:
        return llvm_util.LIGHT
    if len(kernel.body) > LONG_SCALAR_BODY and elements < SMALL_DOMAIN:
        return 1
    if threads.op_cost(kernel) >= threads.COSTLY_BODY:
        return llvm_util.FLAT
    return llvm_util.ROLLED if kernel.domain and kernel.domain[-1] >= ROLLED_MIN_INNER else SCALAR_LEVEL


def invariant_work(kernel) -> bool:
    """Whether an op of the body reads nothing that varies along the innermost dim (only
    constants and loads of stride 0 there, without bounds): code that LICM hoists out of
    the innermost loop."""
    inner = len(kernel.domain) - 1

    def fixed(load):
        bounds = load.index.bounds
        return load.index.strides[inner] == 0 and (bounds is None or bounds[inner] is None)

    flags = unrolled.invariant_flags(kernel.body, fixed)
    return any(flag and isinstance(ins, Op) for ins, flag in zip(kernel.body, flags))


# ---- independent parts -------------------------------------------------------------------

def independent_parts(kernel) -> list:
    """A LoopKernel with a long body whose stores depend on disjoint sets of body
    instructions, as one kernel per set (in store order); otherwise `[kernel]`.

    Running the parts one after another computes what the kernel does: every value is
    computed by the same instructions, no store target is read by the kernel, and no two
    stores share a target (else the kernel is kept whole).
    """
    if not isinstance(kernel, LoopKernel) or len(kernel.body) < SPLIT_MIN_BODY:
        return [kernel]
    targets = [id(s.buffer) for s in kernel.stores]
    reads = {id(ins.buffer) for ins in kernel.body if isinstance(ins, Load)}
    if len(targets) < 2 or len(set(targets)) < len(targets) or reads & set(targets):
        return [kernel]
    root = _components(kernel.body)
    groups = {}
    for store in kernel.stores:
        groups.setdefault(root[store.value], []).append(store)
    if len(groups) < 2:
        return [kernel]
    return [_part(kernel, j, stores, root) for j, stores in enumerate(groups.values())]


def _components(body) -> list:
    """Per body position, a representative of its connected component (the instructions
    linked by operands)."""
    parent = list(range(len(body)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k, ins in enumerate(body):
        if isinstance(ins, Op):
            for a in ins.args:
                if not isinstance(a, Const):
                    parent[find(a)] = find(k)
    return [find(k) for k in range(len(body))]


def _part(kernel, j, stores, root):
    """The kernel of one component: its instructions (in order, renumbered) and stores."""
    mine = root[stores[0].value]
    keep = [k for k in range(len(kernel.body)) if root[k] == mine]
    new = {k: i for i, k in enumerate(keep)}
    body = []
    for k in keep:
        ins = kernel.body[k]
        if isinstance(ins, Op):
            args = tuple(a if isinstance(a, Const) else new[a] for a in ins.args)
            ins = Op(ins.prim, args, ins.params, ins.dtype)
        body.append(ins)
    stores = [Store(s.buffer, new[s.value], s.index, s.reduce) for s in stores]
    return LoopKernel(f"{kernel.name}.{j}", kernel.domain, body, stores)
