"""Compiled programs: the native call path from Python.

A compiled program is one MCJIT engine linking the program's entry object (lower.py:
`tg_entry`, `tg_setup`, `tg_run`) with the object code of every kernel unit it calls
(units.py).  The fast call path is not in the program: one METH_FASTCALL function per
process (fastcall.py, `FAST_ENTRY`) reads the program's descriptor (its signature and
the address of `tg_run`), checks the arguments natively, allocates the outputs and calls
tg_run.  Programs with enough work release the GIL around tg_run.

`CompiledProgram.__call__(*arrays)` runs the program on arrays exactly of the compiled
signature (ndarray, dtype, shape, C-contiguous, aligned) and returns a tuple of fresh
output arrays, or raises `SignatureMismatch` without touching any memory.
"""
from __future__ import annotations

import ctypes
import functools
import os
import weakref
from dataclasses import dataclass

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from tracegrad.ir.core import ShapedArray, short_dtype
from tracegrad.passes.kernels import DotKernel, LoopKernel

from . import blas, cache, extern, fastcall, fingerprint, llvm_util, loops, pool, threads
from .irutil import libc_symbols
from .lower import ARENA_ALIGN


class SignatureMismatch(TypeError):
    """The arrays do not match the signature the program was compiled for."""


# ---- process symbols -------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _libc_symbols() -> dict:
    return libc_symbols(("pthread_mutex_init", "pthread_mutex_lock", "pthread_mutex_unlock"))


@llvm_util.locked
def register_symbols(store=None) -> None:
    """Tell the JIT linker where every external symbol of generated code is, in this process
    (the worker pool's code from the disk cache `store` when it has it)."""
    table = dict(_libc_symbols())
    table.update(blas.symbols())
    table.update(threads.symbols(lambda: process_object(store, "tg_pool", pool.build_object,
                                                        pool.settings())))
    table.update(loops.symbols())
    table.update(extern.symbols())
    abi = fastcall.python_abi()
    if abi is not None:
        table.update(abi.symbols)
    for name, address in table.items():
        llvm.add_symbol(name, address)


# ---- what the native call needs to know ----------------------------------------------

@dataclass
class ProgramImage:
    """A program as the native call sees it: from a kernel program's layout, or from a
    cache entry (then there is no kernel program at all)."""

    inputs: list  # ShapedArray per argument
    outputs: list  # ShapedArray per distinct output buffer (slot)
    out_slots: list  # per result: its slot
    big_consts: list  # arrays passed by pointer (tg_setup's table), in table order
    arena_bytes: int
    release_gil: bool

    @classmethod
    def of(cls, kp, layout) -> "ProgramImage":
        consts = [np.ascontiguousarray(np.asarray(c.value, dtype=c.dtype)) for c in layout.big_consts]
        return cls([ShapedArray(tuple(b.shape), np.dtype(b.dtype)) for b in kp.inputs],
                   [ShapedArray(tuple(b.shape), np.dtype(b.dtype)) for b in layout.out_buffers],
                   list(layout.out_slots), consts, layout.arena_bytes,
                   program_work(kp) >= fastcall.GIL_RELEASE_WORK)

    def to_meta(self) -> dict:
        """JSON-able description; the constants' bytes are stored as blobs beside it."""
        avals = lambda xs: [[list(x.shape), np.dtype(x.dtype).str] for x in xs]  # noqa: E731
        return {"inputs": avals(self.inputs), "outputs": avals(self.outputs),
                "out_slots": self.out_slots, "big_consts": avals(self.big_consts),
                "arena_bytes": self.arena_bytes, "release_gil": self.release_gil}

    @classmethod
    def from_meta(cls, meta: dict, const_blobs) -> "ProgramImage":
        """The image a cache entry describes (raises KeyError/ValueError/TypeError if off)."""
        avals = lambda xs: [ShapedArray(tuple(s), np.dtype(d)) for s, d in xs]  # noqa: E731
        consts = [np.frombuffer(blob, np.dtype(d)).reshape(s).copy()
                  for (s, d), blob in zip(meta["big_consts"], const_blobs, strict=True)]
        arena = meta["arena_bytes"]
        if not isinstance(arena, int) or arena < 0:
            raise ValueError(f"arena_bytes {arena!r}")
        return cls(avals(meta["inputs"]), avals(meta["outputs"]), list(meta["out_slots"]),
                   consts, arena, bool(meta["release_gil"]))


def program_work(kp) -> int:
    """A rough count of element operations, to decide about the GIL."""
    work = 0
    for k in kp.kernels:
        if isinstance(k, LoopKernel):
            work += int(np.prod(k.domain, dtype=np.int64))
        elif isinstance(k, DotKernel):
            work += k.batch * k.m * k.n * k.k // 16
        else:  # a loop or cond step
            work += loops.step_work(k, program_work)
    return work


# ---- the compiled program ------------------------------------------------------------

@dataclass(eq=False)
class _Keepalive:
    """What the native code points into: the builtin holds it (as its module object), so a
    builtin that outlives its CompiledProgram stays valid."""

    engine: object
    arena: np.ndarray
    consts: list
    method_def: object = None


_RUN_PROTO = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_SETUP_PROTO = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


_LIVE = weakref.WeakSet()  # the CompiledPrograms of this process


def _after_fork_in_child():
    """A program's mutex (lower.py, tg_run) may have been held by a parent thread running it
    at the fork: that thread does not exist in the child.  `tg_setup` initializes it again
    (and writes the arena and constants' addresses, the same in the child)."""
    for program in list(_LIVE):
        program._setup(program._setup_address, program._keep.arena, program._keep.consts)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class CompiledProgram:
    """A kernel program compiled to one native entry point.

    >>> cp = compile_program(kp)                       # doctest: +SKIP
    >>> outs = cp(x, y)                                # a tuple of fresh arrays  # doctest: +SKIP

    Attributes: `signature` (input ShapedArrays), `out_avals`, `compile_seconds`,
    `from_cache`, `cache_key`, `stage_seconds` (where the compile's time went),
    `kernel_stats` (kernel calls, distinct units, units compiled and loaded), `unit_keys`;
    `llvm_ir()` and `asm()` give the optimized code.  `fast` is the native builtin:
    `fast(*arrays)` returns the output tuple or `MISMATCH` (this program's sentinel)
    without raising.
    """

    def __init__(self, image: ProgramImage, engine, ir_text, compile_seconds: float,
                 from_cache: bool, key: str | None = None):
        self.image = image
        self.signature = tuple(image.inputs)
        self.out_avals = tuple(image.outputs[s] for s in image.out_slots)
        self.compile_seconds, self.from_cache, self.cache_key = compile_seconds, from_cache, key
        self.stage_seconds, self.kernel_stats = {}, {}
        self.planner = None  # () -> the KernelProgram (set by the compiler)
        self.unit_keys = []  # the kernel units it links (set by the compiler)
        self._ir_text = ir_text
        with llvm_util.LOCK:
            run = engine.get_function_address("tg_run")
            setup = engine.get_function_address("tg_setup")
        keep = _Keepalive(engine, np.zeros(image.arena_bytes + ARENA_ALIGN, np.uint8), image.big_consts)
        self._descriptor = np.array(fastcall.descriptor_words(
            run, image.inputs, image.outputs, image.out_slots, image.release_gil), dtype=np.int64)
        self._keep, self._setup_address = keep, setup
        self._setup(setup, keep.arena, keep.consts)
        _LIVE.add(self)
        self._run = _RUN_PROTO(run)
        self._in_specs = [(tuple(a.shape), np.dtype(a.dtype)) for a in image.inputs]
        self.fast = self._make_fast()
        self.MISMATCH = self._descriptor

    @staticmethod
    def _setup(address, arena, consts):
        base = arena.ctypes.data
        aligned = -(-base // ARENA_ALIGN) * ARENA_ALIGN
        table = (ctypes.c_void_p * max(len(consts), 1))(*[c.ctypes.data for c in consts])
        _SETUP_PROTO(address)(aligned, ctypes.addressof(table))

    def _make_fast(self):
        entry = FAST_ENTRY.get()
        if entry is None:
            return None
        builtin, self._keep.method_def = fastcall.make_builtin(entry[1], self._descriptor, self._keep)
        return builtin

    @property
    def releases_gil(self) -> bool:
        """Whether the fast path releases the GIL around the native run (large programs)."""
        return bool(self._descriptor[fastcall.W_RELEASE_GIL])

    def __call__(self, *arrays):
        fast = self.fast
        if fast is not None:
            result = fast(*arrays)
            if result is not self._descriptor:
                return result
        return self.call_checked(arrays)

    def call_checked(self, arrays):
        """Python checks; then the native builtin on plain-ndarray views (subclasses and
        equal-but-distinct dtype objects end up here), or ctypes if there is no builtin."""
        self.check(arrays)
        if self.fast is not None:
            views = [a.view(dtype=dt, type=np.ndarray) for a, (_, dt) in zip(arrays, self._in_specs)]
            result = self.fast(*views)
            if result is not self._descriptor:
                return result
        return self.call_ctypes(arrays)

    def call_ctypes(self, arrays):
        """One native call through ctypes on data pointers (arrays already checked)."""
        outs = [np.empty(o.shape, o.dtype) for o in self.image.outputs]
        ins = (ctypes.c_void_p * max(len(arrays), 1))(*[_data(a) for a in arrays])
        outp = (ctypes.c_void_p * max(len(outs), 1))(*[_data(o) for o in outs])
        self._run(ctypes.addressof(ins), ctypes.addressof(outp))
        return tuple(outs[s] for s in self.image.out_slots)

    def check(self, arrays):
        """Raise SignatureMismatch unless `arrays` exactly fit the compiled signature."""
        if len(arrays) != len(self._in_specs):
            raise SignatureMismatch(f"expected {len(self._in_specs)} arrays, got {len(arrays)}")
        for i, (a, (shape, dtype)) in enumerate(zip(arrays, self._in_specs)):
            problem = _mismatch(a, shape, dtype)
            if problem:
                want = f"{short_dtype(dtype)}[{','.join(map(str, shape))}]"
                raise SignatureMismatch(f"argument {i}: expected a C-contiguous aligned ndarray "
                                        f"{want}, got {problem}")

    def kernel_program(self):
        """The kernel program this code runs (planned again after a graph-cache hit)."""
        if self.planner is None:
            raise RuntimeError("this program was not made by codegen's compiler")
        return self.planner()

    def llvm_ir(self) -> str:
        """The optimized LLVM IR: the entry module, then each kernel unit's module (printed
        on first use where the compiler did not keep it: compiler.py)."""
        if callable(self._ir_text):
            self._ir_text = self._ir_text()
        return self._ir_text

    def asm(self) -> str:
        """The native assembly (generated on demand from the optimized IR, under the LLVM lock)."""
        return "\n".join(llvm_util.assembly_of(text) for text in _modules(self.llvm_ir()))

    def __repr__(self):
        sig = ", ".join(map(str, self.signature))
        return f"<CompiledProgram ({sig}) -> {len(self.out_avals)} outputs>"


MODULE_SEPARATOR = "\n; ---- tracegrad module ----\n"


def join_modules(texts) -> str:
    """One text holding several modules' IR; `_modules` splits it again."""
    return MODULE_SEPARATOR.join(texts)


def _modules(text: str) -> list:
    return text.split(MODULE_SEPARATOR)


def _data(a) -> int:
    return a.__array_interface__["data"][0]  # about half the cost of a.ctypes.data


def _mismatch(a, shape, dtype) -> str | None:
    if not isinstance(a, np.ndarray):
        return f"{type(a).__name__}"
    if a.dtype != dtype or not a.dtype.isnative:
        return f"dtype {a.dtype}"
    if a.shape != shape:
        return f"shape {a.shape}"
    if not a.flags.c_contiguous:
        return "a non-contiguous array"
    if not a.flags.aligned:
        return "an unaligned array"
    return None


# ---- the process's fast-call function ---------------------------------------------------

class FastEntry:
    """This process's `tg_fastcall` (engine, address), made on first use; None without the
    fast-call ABI.  Loaded from the disk cache of the compile that first needs it when it
    has one, else compiled.  `reset()` forgets it (tests)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self._made, self._entry = False, None

    @llvm_util.locked
    def get(self, store=None):
        """Call after register_symbols (compile_program does)."""
        if not self._made:
            self._entry = self._make(store) if fastcall.python_abi() is not None else None
            self._made = True
        return self._entry

    @staticmethod
    def _make(store):
        obj = process_object(store, "tg_fastcall", _build_fastcall)
        try:
            engine = llvm_util.load_objects([obj])
        except RuntimeError:  # a cached object this LLVM cannot load: build it again
            engine = llvm_util.load_objects([_build_fastcall()[0]])
        return engine, engine.get_function_address("tg_fastcall")


def _build_fastcall() -> tuple:
    module = ir.Module(name="tg_fastcall")
    fastcall.emit_fastcall(module)
    ref = llvm_util.optimize(llvm_util.parse(module))
    return llvm_util.emit_object(ref), str(ref)


def process_object(store, name: str, build, settings=None) -> bytes:
    """The object code of `name`, code compiled once per process: from the disk cache `store`
    when it holds it (key: the fingerprint and `settings`), else `build()` -> (object, IR
    text), stored."""
    environment = {"kernels": fingerprint.kernel_environment()}
    if settings:
        environment["settings"] = settings
    key = cache.text_key(name, environment)
    entry = store.load(key) if store is not None else None
    if entry is not None and len(entry.blobs) == 1:
        return entry.blobs[0]
    obj, text = build()
    if store is not None:
        store.store(key, cache.CacheEntry({"name": name}, [obj], text))
    return obj


FAST_ENTRY = FastEntry()
