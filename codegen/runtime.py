"""Compiled programs: the native call path from Python, and compile_program.

A compiled program is one native entry point.  Its module holds the kernels
and `tg_entry` (lower.py) plus three functions made here:

* `void tg_setup(ptr arena, ptr consts)`: called once after loading; points
  the module's globals at the arena (temps) and the large constants, and
  initializes the arena mutex.
* `void tg_run(ptr ins, ptr outs)`: runs the whole program on data pointers,
  holding the arena mutex if the program has temps (two Python threads may
  call one program at once; the ctypes path releases the GIL).
The fast call path is not in the module: one METH_FASTCALL function per
process (fastcall.py) reads the program's descriptor (its signature and the
address of `tg_run`), checks the arguments natively, allocates the outputs
and calls tg_run.  Programs with enough work release the GIL around tg_run.

`CompiledProgram.__call__(*arrays)` runs the program on arrays exactly of
the compiled signature (ndarray, dtype, shape, C-contiguous, aligned) and
returns a tuple of fresh output arrays, or raises `SignatureMismatch`
without touching any memory.
"""
from __future__ import annotations

import ctypes
import functools
import threading
import time

import llvmlite
import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from tracegrad.ir.core import ShapedArray, short_dtype

from . import blas, cache, fastcall, llvm_util, threads
from .lower import ARENA_ALIGN, lower_program, plan_layout

I8, I64, PTR = ir.IntType(8), ir.IntType(64), ir.PointerType()
MUTEX_BYTES = 64  # >= sizeof(pthread_mutex_t) on every libc we know (glibc: 40)
GIL_RELEASE_WORK = 1 << 16  # elements (or flops/16): below this the GIL round trip costs more
TRACEGRAD_VERSION = "0.1.0"


class SignatureMismatch(TypeError):
    """The arrays do not match the signature the program was compiled for."""


# ---- process symbols -------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _libc_symbols() -> dict:
    libc = ctypes.CDLL(None)
    names = ("pthread_mutex_init", "pthread_mutex_lock", "pthread_mutex_unlock")
    return {f"tg_sys_{n}": ctypes.cast(getattr(libc, n), ctypes.c_void_p).value for n in names}


def register_symbols() -> None:
    """Tell the JIT linker where every external symbol of generated code is, in this process."""
    table = dict(_libc_symbols())
    table.update(blas.symbols())
    table.update(threads.symbols())
    abi = fastcall.python_abi()
    if abi is not None:
        table.update(abi.symbols)
    for name, address in table.items():
        llvm.add_symbol(name, address)


# ---- wrappers around tg_entry ------------------------------------------------------

def _decl(module, name, ret, args):
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ret, args), name)


def _emit_setup(module, n_big_consts: int):
    mutex = ir.GlobalVariable(module, ir.ArrayType(I8, MUTEX_BYTES), "tg_mutex")
    mutex.initializer = ir.Constant(ir.ArrayType(I8, MUTEX_BYTES), None)
    mutex.align = 16
    arena = ir.GlobalVariable(module, PTR, "tg_arena")
    arena.initializer = ir.Constant(PTR, None)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR]), "tg_setup")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.store(fn.args[0], arena)
    if n_big_consts:
        table = module.get_global("tg_consts")
        for j in range(n_big_consts):
            src = b.load(b.gep(fn.args[1], [I64(j)], source_etype=PTR), typ=PTR)
            b.store(src, b.gep(table, [I64(0), I64(j)]))  # typed GEP: llvmlite checks the store
    init = _decl(module, "tg_sys_pthread_mutex_init", ir.IntType(32), [PTR, PTR])
    b.call(init, [mutex, ir.Constant(PTR, None)])
    b.ret_void()
    return mutex, arena


def _emit_run(module, mutex, arena, locked: bool):
    entry = module.get_global("tg_entry")
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR]), "tg_run")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    if locked:
        b.call(_decl(module, "tg_sys_pthread_mutex_lock", ir.IntType(32), [PTR]), [mutex])
    b.call(entry, [fn.args[0], fn.args[1], b.load(arena, typ=PTR)])
    if locked:
        b.call(_decl(module, "tg_sys_pthread_mutex_unlock", ir.IntType(32), [PTR]), [mutex])
    b.ret_void()
    return fn


def program_work(kp) -> int:
    """A rough count of element operations, to decide about the GIL and threads."""
    work = 0
    for k in kp.kernels:
        if hasattr(k, "domain"):
            work += int(np.prod(k.domain, dtype=np.int64))
        else:
            work += k.batch * k.m * k.n * k.k // 16
    return work


def build_module(kp, name: str, n_threads: int):
    """The complete LLVM module (unoptimized) and the program's layout."""
    lowered = lower_program(kp, name, n_threads=n_threads)
    module, layout = lowered.module, lowered.layout
    mutex, arena = _emit_setup(module, len(layout.big_consts))
    _emit_run(module, mutex, arena, locked=layout.arena_bytes > 0)
    return module, layout


# ---- the compiled program ------------------------------------------------------------

class _Native(np.ndarray):
    """The program's fast-call descriptor (int64 words, fastcall.py) that also holds
    everything the native code needs alive: its engine, arena, constants, method def.

    It is the builtin's `self` and the mismatch sentinel it returns, so the builtin
    itself keeps the code it points into alive.
    """


def _native(words, engine, arena, consts):
    native = np.array(words, dtype=np.int64).view(_Native)
    native.engine, native.arena, native.consts, native.method_def = engine, arena, consts, None
    return native


_RUN_PROTO = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_SETUP_PROTO = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


class CompiledProgram:
    """A kernel program compiled to one native entry point.

    >>> cp = compile_program(kp)                       # doctest: +SKIP
    >>> outs = cp(x, y)                                # a tuple of fresh arrays  # doctest: +SKIP

    Attributes: `signature` (input ShapedArrays), `out_avals`,
    `compile_seconds`, `from_cache`; `llvm_ir()` and `asm()` give the
    optimized code.  `fast` is the native builtin: `fast(*arrays)` returns the
    output tuple or `MISMATCH` (this program's sentinel) without raising.
    """

    def __init__(self, kp, layout, engine, ir_text: str, compile_seconds: float, from_cache: bool,
                 key: str | None = None):
        self.kp, self.layout = kp, layout
        self.signature = tuple(ShapedArray(b.shape, b.dtype) for b in kp.inputs)
        self.out_avals = tuple(ShapedArray(b.shape, b.dtype) for b in kp.outputs)
        self.compile_seconds, self.from_cache, self.cache_key = compile_seconds, from_cache, key
        self._ir_text = ir_text
        arena = np.zeros(layout.arena_bytes + ARENA_ALIGN, np.uint8)
        consts = [np.ascontiguousarray(np.asarray(c.value, dtype=c.dtype)) for c in layout.big_consts]
        run = engine.get_function_address("tg_run")
        words = fastcall.descriptor_words(run, kp.inputs, layout.out_buffers, layout.out_slots,
                                          release_gil=program_work(kp) >= GIL_RELEASE_WORK)
        self._native = _native(words, engine, arena, consts)
        self._setup(engine, arena, consts)
        self._run = _RUN_PROTO(run)
        self._in_specs = [(tuple(b.shape), np.dtype(b.dtype)) for b in kp.inputs]
        self.fast = self._make_fast()
        self.MISMATCH = self._native

    def _setup(self, engine, arena, consts):
        base = arena.ctypes.data
        aligned = -(-base // ARENA_ALIGN) * ARENA_ALIGN
        table = (ctypes.c_void_p * max(len(consts), 1))(*[c.ctypes.data for c in consts])
        _SETUP_PROTO(engine.get_function_address("tg_setup"))(aligned, ctypes.addressof(table))

    def _make_fast(self):
        entry = FAST_ENTRY.get()
        if entry is None:
            return None
        builtin, self._native.method_def = fastcall.make_builtin(entry[1], self._native)
        return builtin

    @property
    def releases_gil(self) -> bool:
        """Whether the fast path releases the GIL around the native run (large programs)."""
        return bool(self._native[fastcall.W_RELEASE_GIL])

    def __call__(self, *arrays):
        fast = self.fast
        if fast is not None:
            result = fast(*arrays)
            if result is not self._native:
                return result
        return self.call_checked(arrays)

    def call_checked(self, arrays):
        """Python checks; then the native builtin on plain-ndarray views (subclasses and
        equal-but-distinct dtype objects end up here), or ctypes if there is no builtin."""
        self.check(arrays)
        if self.fast is not None:
            views = [a.view(dtype=dt, type=np.ndarray) for a, (_, dt) in zip(arrays, self._in_specs)]
            result = self.fast(*views)
            if result is not self._native:
                return result
        return self.call_ctypes(arrays)

    def call_ctypes(self, arrays):
        """One native call through ctypes on data pointers (arrays already checked)."""
        outs = [np.empty(b.shape, b.dtype) for b in self.layout.out_buffers]
        ins = (ctypes.c_void_p * max(len(arrays), 1))(*[_data(a) for a in arrays])
        outp = (ctypes.c_void_p * max(len(outs), 1))(*[_data(o) for o in outs])
        self._run(ctypes.addressof(ins), ctypes.addressof(outp))
        return tuple(outs[s] for s in self.layout.out_slots)

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

    def llvm_ir(self) -> str:
        """The optimized LLVM IR."""
        return self._ir_text

    def asm(self) -> str:
        """The native assembly (generated on demand from the optimized IR)."""
        return llvm_util.target_machine().emit_assembly(llvm.parse_assembly(self._ir_text))

    def __repr__(self):
        sig = ", ".join(map(str, self.signature))
        return f"<CompiledProgram ({sig}) -> {len(self.out_avals)} outputs>"


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


# ---- compiling ------------------------------------------------------------------------

def _engine_target_machine():
    """A fresh host target machine for one engine.

    An MCJIT engine takes ownership of its target machine and destroys it with
    itself, so engines must never get the shared `llvm_util.target_machine()`
    (it would dangle once the first engine is collected).  `__wrapped__` is
    the uncached factory behind it: same CPU, features and options.
    """
    return llvm_util.target_machine.__wrapped__()


def jit(module_ref, keep_object: bool = False):
    """(engine, object code or None): MCJIT for an optimized module.

    With keep_object the object file MCJIT produces is captured through its
    object-cache hook (no second code generation for the disk cache).
    """
    engine = llvm.create_mcjit_compiler(module_ref, _engine_target_machine())
    captured = []
    if keep_object:
        engine.set_object_cache(lambda mod, data: captured.append(bytes(data)), lambda mod: None)
    engine.finalize_object()
    return engine, (captured[0] if captured else None)


def load_object(obj: bytes):
    """An engine running cached object code (symbols resolve through register_symbols)."""
    empty = llvm_util.parse("")
    engine = llvm.create_mcjit_compiler(empty, _engine_target_machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return engine


class FastEntry:
    """This process's `tg_fastcall` (engine, address), made on first use; None without the
    fast-call ABI.  Loaded from the disk cache of the compile that first needs it when it
    has one (a few ms), else compiled (~25 ms).  `reset()` forgets it (tests)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self._made, self._entry = False, None

    def get(self, store=None):
        """Call after register_symbols, holding the compile lock (compile_program does)."""
        if not self._made:
            self._entry = self._make(store) if fastcall.python_abi() is not None else None
            self._made = True
        return self._entry

    @staticmethod
    def _make(store):
        key = cache.text_key("tg_fastcall", environment(1))
        entry = store.load(key) if store is not None else None
        if entry is not None:
            try:
                engine = load_object(entry.obj)
                return engine, engine.get_function_address("tg_fastcall")
            except RuntimeError:
                pass
        module = ir.Module(name="tg_fastcall")
        fastcall.emit_fastcall(module)
        ref = llvm_util.optimize(llvm_util.parse(module))
        ir_text = str(ref)
        engine, obj = jit(ref, keep_object=store is not None)
        if store is not None:
            store.store(key, cache.CacheEntry({"name": "tg_fastcall"}, obj, ir_text))
        return engine, engine.get_function_address("tg_fastcall")


FAST_ENTRY = FastEntry()


_compile_lock = threading.Lock()  # llvmlite's global symbol table and pass builders are not reentrant


def environment(n_threads: int) -> dict:
    """Everything besides the program that the generated code depends on (cache key)."""
    tm = llvm_util.target_machine()
    return {"triple": tm.triple, "cpu": llvm.get_host_cpu_name(),
            "features": llvm.get_host_cpu_features().flatten(),
            "llvmlite": llvmlite.__version__, "tracegrad": TRACEGRAD_VERSION,
            "blas": blas.describe(), "threads": n_threads,
            "parallel_min_cost": threads.PARALLEL_MIN_COST}


def _from_cache(kp, entry, key, t0):
    """The program from a verified cache entry, or None if LLVM refuses the object."""
    try:
        engine = load_object(entry.obj)
    except RuntimeError:
        return None
    layout = plan_layout(kp)
    # the arena also holds the threads' scratch, known after lowering: recorded in the entry
    arena_bytes = entry.meta.get("arena_bytes")
    if not isinstance(arena_bytes, int) or arena_bytes < layout.arena_bytes:
        return None
    layout.arena_bytes = arena_bytes
    return CompiledProgram(kp, layout, engine, entry.ir_text, time.perf_counter() - t0, True, key)


def compile_program(kp, name: str = "program", disk_cache=None, n_threads: int | None = None):
    """Compile a KernelProgram to a CompiledProgram (using the disk cache if enabled).

    `disk_cache`: None uses the environment (TRACEGRAD_CACHE_DIR,
    TRACEGRAD_DISABLE_CACHE), False disables it, a path or DiskCache selects it.
    `n_threads`: worker threads for large kernels (default TRACEGRAD_NUM_THREADS or
    os.cpu_count()); a program that calls a multi-threaded BLAS uses only the cores its
    spinning workers leave (threads.beside_blas).
    """
    t0 = time.perf_counter()
    n_threads = threads.thread_count(n_threads)
    if blas.calls_blas(kp):
        n_threads = threads.beside_blas(n_threads, blas.thread_count())
    with _compile_lock:
        register_symbols()
        store = cache.resolve(disk_cache)
        FAST_ENTRY.get(store)  # once per process, before any CompiledProgram needs it
        key = cache.cache_key(kp, environment(n_threads)) if store is not None else None
        entry = store.load(key) if store is not None else None
        if entry is not None:
            cached = _from_cache(kp, entry, key, t0)
            if cached is not None:
                return cached
        module, layout = build_module(kp, name, n_threads)
        ref = llvm_util.optimize(llvm_util.parse(module))
        ir_text = str(ref)
        engine, obj = jit(ref, keep_object=store is not None)
        if store is not None:
            meta = {"name": name, "arena_bytes": layout.arena_bytes}
            store.store(key, cache.CacheEntry(meta, obj, ir_text))
    return CompiledProgram(kp, layout, engine, ir_text, time.perf_counter() - t0, False, key)
