"""Shared LLVM plumbing: host target machine, optimization pipeline, object code, MCJIT.

Every code generator in tracegrad goes through these calls, so that all code is built
for the same host CPU with the same optimization options:

>>> from tracegrad.codegen import llvm_util
>>> ir_text = '''
... define double @twice(double %x) {
...   %y = fmul double %x, 2.0
...   ret double %y
... }'''
>>> engine, mod = llvm_util.compile_ir(ir_text)
>>> import ctypes
>>> addr = engine.get_function_address("twice")
>>> ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(addr)(21.0)
42.0

**One lock.**  llvmlite serializes each call into LLVM, but not sequences of calls
(parse, optimize, emit) on LLVM's global context and symbol table.  `LOCK` (reentrant)
is held by every function here and by every compile (codegen.compiler), so all of
tracegrad's LLVM use in a process runs one sequence at a time.

Facts this module relies on: `llvm.initialize()` raises since llvmlite 0.45; without an
explicit cpu/features the target machine emits SSE2-only code; the vectorizer switches
must be set on the tuning options *before* the pass builder is created, because the
builder copies them; an MCJIT engine owns the target machine it is given and destroys
it with itself, so every engine gets a new one (`host_target_machine`), never the
shared `target_machine()`.
"""
import functools
import logging  # noqa: F401  (before the fork hook below: see there)
import os
import threading
import weakref

import llvmlite.binding as llvm
from llvmlite import ir

__all__ = ["LOCK", "init_native", "isa_cap", "host_features", "host_target_machine",
           "target_machine", "vector_bits", "optimize", "parse", "emit_object", "load_objects",
           "load_object", "jit", "compile_ir", "assembly", "assembly_of", "loop_kernel"]

LOCK = threading.RLock()

# Objects whose lock attribute a forked child must find free: the thread of the parent that
# held it (compiling, calling) does not exist in the child, which would wait forever.
_FORK_LOCKS: dict[str, weakref.WeakSet] = {}


def free_after_fork(owner, attr: str):
    """In a child forked while another thread held `owner.<attr>` (a threading lock), the
    lock is free again."""
    _FORK_LOCKS.setdefault(attr, weakref.WeakSet()).add(owner)
    return owner


def _reinit(lock):
    reinit = getattr(lock, "_at_fork_reinit", None)  # CPython's own at-fork reset of a lock
    if reinit is not None:
        reinit()


def _after_fork_in_child():
    _reinit(LOCK)
    # llvmlite's own lock around each call into LLVM (llvm_jobs.py calls around it too)
    _reinit(getattr(getattr(getattr(llvm.ffi, "lib", None), "_lock", None), "_lock", None))
    for attr, owners in _FORK_LOCKS.items():
        for owner in list(owners):
            _reinit(getattr(owner, attr, None))


if hasattr(os, "register_at_fork"):
    # A fork waits for a compile in flight to leave LLVM (LOCK is held around every batch
    # of LLVM calls): LLVM's own locks and state are then consistent in the child.  Hooks
    # run in reverse order of registration, so this one, registered after logging's
    # (imported above), takes LOCK before logging's hook takes its lock: the order in which
    # a compile that logs takes them.  Nothing done holding LOCK may wait for a lock that
    # an earlier-running hook holds (llvm_jobs.run_jobs).
    os.register_at_fork(before=LOCK.acquire, after_in_parent=LOCK.release,
                        after_in_child=_after_fork_in_child)


def locked(fn):
    """Run `fn` holding LOCK."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with LOCK:
            return fn(*args, **kwargs)
    return run


@functools.cache
@locked
def init_native():
    """Initialize the native target and asm printer once per process."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


ISA_ENV = "TRACEGRAD_ISA"
# TRACEGRAD_ISA caps: the feature names (prefixes, as LLVM spells them) each turns off
ISA_CAPS = {"native": (), "avx2": ("avx512", "avx10", "evex512", "amx")}


def isa_cap() -> str:
    """TRACEGRAD_ISA: `native` (the default: every feature of the host CPU) or `avx2` (no
    AVX-512: 256-bit vectors, as on an AVX2 machine, for comparing code generation for
    both instruction sets on one host)."""
    cap = os.environ.get(ISA_ENV, "").strip().lower() or "native"
    if cap not in ISA_CAPS:
        raise ValueError(f"{ISA_ENV}={cap!r}: expected one of {', '.join(ISA_CAPS)}")
    return cap


@functools.cache
@locked
def host_features():
    """The host CPU's features as LLVM names them (a FeatureMap: name -> bool), less those
    TRACEGRAD_ISA turns off; read once per process."""
    init_native()
    features = llvm.get_host_cpu_features()
    for name in features:
        if name.startswith(ISA_CAPS[isa_cap()]):
            features[name] = False
    return features


@functools.cache
@locked
def _host_cpu() -> tuple:
    """(cpu name, feature string) of the host: asking LLVM costs a third of a new target
    machine, and every engine needs a new one.  The name keeps the host's tuning when
    TRACEGRAD_ISA caps the features."""
    return llvm.get_host_cpu_name(), host_features().flatten()


# The code generator's level for kernels: 2 (LLVM's default) rather than 3, whose extra
# machine passes cost W4's first call about 10% (in turns, separate processes) for the
# same steady time.
CODEGEN_OPT = 2


@locked
def host_target_machine(opt: int = CODEGEN_OPT):
    """A new target machine for the host (host cpu name and features, JIT-capable); `opt` is
    the code generator's level (0: fast instruction selection and register allocation)."""
    cpu, features = _host_cpu()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=cpu, features=features, opt=opt, jit=True)


@functools.cache
@locked
def vector_bits() -> int:
    """Width of the host's widest float vector register: 512 (AVX-512F), 256 (AVX), else 128
    (as TRACEGRAD_ISA leaves the features)."""
    features = host_features()
    if features.get("avx512f"):
        return 512
    if features.get("avx") or features.get("avx2"):
        return 256
    return 128


@functools.cache
@locked
def target_machine():
    """The shared host target machine, for optimizing and emitting code (not for engines).

    Cached; `target_machine.cache_clear()` resets it (tests only).
    """
    return host_target_machine()


def _set_host(module_ref):
    tm = target_machine()
    module_ref.triple = tm.triple
    module_ref.data_layout = str(tm.target_data)
    return module_ref


# The optimization "level" of code that is emitted in vector form already (simd.py): SROA,
# one InstCombine and SimplifyCFG.  The O1-O3 pipelines run InstCombine about eight times,
# which on wide-vector polynomial code costs several times what the whole light pipeline
# does, and their vectorizers find nothing left to do there.
LIGHT = "light"
LIGHT_PASSES = ("sroa", "instruction_combine", "simplify_cfg")
# Two variants of O2 for loop kernels (units.py says which kernel gets which).  ROLLED
# leaves out loop unrolling: fully or partially unrolling a loop of a thousand or more
# elements saves nothing measurable on its counter and multiplies its code and the
# compile time of everything after (a (8,1024) add kernel: 1265 lines instead of 110).
# FLAT also leaves out the vectorizer's interleaving, for bodies that keep the core busy
# on their own (a transcendental's polynomial): the out-of-order core overlaps their
# iterations anyway, and interleaving doubles their code and compile time.
ROLLED = "rolled"
FLAT = "flat"
_O2_VARIANTS = {ROLLED: {"loop_unrolling": False},
                FLAT: {"loop_unrolling": False, "loop_interleaving": False}}


@locked
def optimize(module_ref, level: int | str = 3):
    """Run the new-pass-manager pipeline of `level` (0-3), in place; from O2 on with the
    loop and SLP vectorizers.  `level=LIGHT` runs LIGHT_PASSES only; ROLLED and FLAT are
    O2 variants.

    Also sets the host triple and data layout: the vectorizer's cost model needs them.
    """
    _set_host(module_ref)
    manager, builder = pass_manager(target_machine(), level)
    manager.run(module_ref, builder)
    return module_ref


def pass_manager(machine, level: int | str):
    """(module pass manager, the pass builder to run it with) of `level` (see `optimize`)
    for target machine `machine`."""
    speed = 2 if level == LIGHT or level in _O2_VARIANTS else level
    pto = llvm.create_pipeline_tuning_options(speed_level=speed)
    if level == LIGHT:
        manager = llvm.create_new_module_pass_manager()
        for name in LIGHT_PASSES:
            getattr(manager, f"add_{name}_pass")()
        return manager, llvm.create_pass_builder(machine, pto)
    # Must precede create_pass_builder: the builder copies the options.
    pto.loop_vectorization = pto.slp_vectorization = speed >= 2
    for option, value in _O2_VARIANTS.get(level, {}).items():
        setattr(pto, option, value)
    builder = llvm.create_pass_builder(machine, pto)
    return builder.getModulePassManager(), builder


@locked
def parse(llvm_ir_text):
    """Parse and verify IR text (or an `llvmlite.ir.Module`) for the host target."""
    module_ref = llvm.parse_assembly(str(llvm_ir_text))
    module_ref.verify()
    return _set_host(module_ref)


@functools.cache
@locked
def fast_target_machine():
    """A shared host target machine whose code generator runs at O0 (`emit_object(fast=True)`)."""
    return host_target_machine(opt=0)


@locked
def emit_object(module_ref, fast: bool = False) -> bytes:
    """Host object code of an (optimized) module; `fast` selects instructions and allocates
    registers the quick way (for glue code, whose speed matters less than its size)."""
    return (fast_target_machine() if fast else target_machine()).emit_object(module_ref)


class _LockedEngine(llvm.ExecutionEngine):
    """An engine disposed of under LOCK: disposal enters LLVM (its JIT-event listeners take
    a static mutex), and a child forked while another thread disposed of an engine outside
    LOCK waited forever for that mutex at its first compile.  Disposal comes from __del__
    on any thread, so LOCK is only tried: a thread whose compile holds it may be waiting
    for this one (a garbage collection in an LLVM job's thread, llvm_jobs.run_jobs).  An
    engine that finds LOCK busy waits in _PENDING for the next holder (`dispose_pending`)."""

    def close(self):
        if self._closed or self._owned:
            return super().close()
        if not LOCK.acquire(blocking=False):
            _PENDING.append(self)  # (resurrected from __del__: finalized only once)
            return
        try:
            super().close()
            dispose_pending()
        finally:
            LOCK.release()


_PENDING: list = []


def dispose_pending():
    """Dispose of the engines that were dropped while LOCK was busy (hold LOCK)."""
    while _PENDING:
        llvm.ExecutionEngine.close(_PENDING.pop())


def _locked_disposal(engine):
    engine.__class__ = _LockedEngine
    return engine


@locked
def load_objects(objects):
    """One engine linking object files (bytes from `emit_object`) to each other and to the
    symbols registered with `llvm.add_symbol`; it owns the machine code."""
    engine = llvm.create_mcjit_compiler(_set_host(llvm.parse_assembly("")), host_target_machine())
    for obj in objects:
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return _locked_disposal(engine)


def load_object(obj: bytes):
    """An engine holding the functions of one object file (`load_objects([obj])`)."""
    return load_objects([obj])


@locked
def jit(module_ref):
    """MCJIT-compile an (optimized) module; the engine takes ownership of it."""
    engine = llvm.create_mcjit_compiler(module_ref, host_target_machine())
    engine.finalize_object()
    return _locked_disposal(engine)


@locked
def compile_ir(llvm_ir_text):
    """Parse, verify, optimize and JIT IR text; returns `(engine, module_ref)`.

    The engine owns the machine code: keep it alive as long as any function
    address obtained from it (`engine.get_function_address(name)`) is in use.
    """
    module_ref = optimize(parse(llvm_ir_text))
    return jit(module_ref), module_ref


@locked
def assembly(module_ref):
    """Host assembly text of an (optimized) module, e.g. to assert zmm/ymm use."""
    return target_machine().emit_assembly(module_ref)


@locked
def assembly_of(ir_text: str) -> str:
    """Host assembly text of optimized IR text."""
    return assembly(parse(ir_text))


def loop_kernel(module, fname, ty, n_in, body):
    """Add `void fname(T* noalias in..., T* noalias out, i64 n)`: out[i] = body(b, in[i]...).

    A standalone elementwise loop for checking and timing emitted code (mathlib
    tests and benchmarks); programs are lowered by `lower.py`.
    """
    i64, ptr = ir.IntType(64), ir.PointerType()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr] * (n_in + 1) + [i64]), fname)
    for a in fn.args[:-1]:
        a.add_attribute("noalias")
    *ins, out, n = fn.args
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    args = [b.load(b.gep(p, [i], source_etype=ty), typ=ty) for p in ins]
    b.store(body(b, *args), b.gep(out, [i], source_etype=ty))
    nxt = b.add(i, ir.Constant(i64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
