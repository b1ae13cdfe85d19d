"""Extern kernels in native code: a registered native lowering, else a call back into Python.

An `ExternKernel` (passes/kernels.py) runs a whole-array primitive (kind "extern").
Codegen emits it one of two ways, chosen per kernel at lowering time:

**Native lowerings.**  `register_native(prim, emit, supports)` registers LLVM code for a
primitive.  A kernel whose primitive has one and whose `supports(kernel)` is true becomes
a compile unit of its own (`ExternUnit`, cached and shared like a kernel unit: keyed by
the primitive, params, operand and result avals and the compiler's fingerprint), the
function `void tg_ext_<key>(ptr in0, ..., ptr noalias out0, ...)`, built by::

    emit(b, call)   # b: an ir.IRBuilder in the function's entry block
                    # call.kernel: the ExternKernel (prim, params, in_avals, out_avals)
                    # call.ins / call.outs: the data pointers (row-major, of the avals)

`emit` writes every element of every output and must not return (the unit adds the
`ret`); it may add blocks (irutil.Loop), declare functions and globals in `b.module`.
External functions it calls (LAPACK, libc) need their address in the JIT's symbol table
(`symbols()` merges each lowering's `symbols` dict).  `supports` is how a lowering
declines dtypes or params it does not handle: the kernel then takes the host callback.
The native lowerings live in `extern_*.py` modules, imported at the end of this one.

**The host callback.**  Any other extern kernel calls the one JIT symbol `tg_host_call`,
bound (llvm.add_symbol) to a ctypes CFUNCTYPE this module keeps alive::

    i32 tg_host_call(ptr descriptor, ptr buffers, ptr status)

`descriptor` is a constant C string in the module: the JSON of the primitive name, its
params (tagged so that tuples, dtypes, arrays and non-finite floats survive) and the
operand and result avals.  Nothing process-specific is baked into the code, so object
code loaded from the disk cache in another process stays valid.  `buffers` holds the
operands' then the results' data pointers.  The Python side parses a descriptor once
(cached by its bytes), wraps the operands as read-only numpy views, runs the primitive's
`impl` (kernel_interp.extern_results: checked shapes and dtypes) and copies the results
into the outputs.

Errors: an exception inside `impl` never crosses the native frames.  The callback stores
it for the calling thread and sets `*status` (the program's `tg_host_status`, reset when
the entry starts); later callbacks of the same run return at once and native loops stop
at their next trip (loops.py), and the program's call wrapper (`guard`) re-raises the
exception in Python once the native call has returned.  The results of that call are
discarded.  Because the callback takes the GIL, a program with host calls always
releases it around the native run and always holds its mutex (two threads calling one
program would otherwise deadlock or share the status), and extern kernels never run on
worker threads (threads.py splits only loop kernels; step bodies never start threads).

`TRACEGRAD_EXTERN_NATIVE=0` disables every native lowering (all extern kernels take the
callback): read at lowering time and part of the compiler's fingerprint.
"""
from __future__ import annotations

import base64
import ctypes
import functools
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from llvmlite import ir

from tracegrad.ir.primitives import PRIMITIVES
from tracegrad.ir.core import ShapedArray
from tracegrad.passes.kernel_interp import extern_results
from tracegrad.passes.kernels import CondStep, ExternKernel, LoopStep

from . import blas
from .irutil import PTR, declare, i64

I8, I32 = ir.IntType(8), ir.IntType(32)
HOST_SYMBOL = "tg_host_call"
STATUS = "tg_host_status"


# ---- the registry of native lowerings -------------------------------------------------------

@dataclass(frozen=True)
class NativeLowering:
    emit: Callable  # emit(b, call): IR writing every output (module docstring)
    supports: Callable  # supports(kernel) -> bool
    symbols: dict = field(default_factory=dict)  # external name -> address it calls
    # it calls OpenBLAS (LAPACK), whose threads spin between calls: in a program of several
    # threads it runs in blas.py's serial section, on one thread, as products do
    blas_threads: bool = False


NATIVE: dict[str, NativeLowering] = {}


def register_native(prim: str, emit: Callable, supports: Callable | None = None,
                    symbols: dict | None = None, blas_threads: bool = False) -> NativeLowering:
    """Register the native lowering of extern primitive `prim` (module docstring)."""
    if prim in NATIVE:
        raise ValueError(f"extern primitive {prim!r} has a native lowering already")
    low = NativeLowering(emit, supports or (lambda kernel: True), dict(symbols or {}),
                         blas_threads)
    NATIVE[prim] = low
    return low


def native_enabled() -> bool:
    """False when TRACEGRAD_EXTERN_NATIVE=0|false|no: every extern kernel calls back."""
    return os.environ.get("TRACEGRAD_EXTERN_NATIVE", "").strip().lower() not in ("0", "false",
                                                                                   "no")


def native_for(kernel: ExternKernel) -> NativeLowering | None:
    low = NATIVE.get(kernel.prim) if native_enabled() else None
    return low if low is not None and low.supports(kernel) else None


@dataclass
class NativeCall:
    """What a native lowering's `emit` gets besides the builder."""

    kernel: ExternKernel
    ins: list  # data pointers of the operands
    outs: list  # data pointers of the results


# ---- params and avals as text ---------------------------------------------------------------

def _encode(v):
    """A JSON value for a param, tagged so `_decode` rebuilds it exactly."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return {"f": repr(float(v))}  # nan, inf and -0.0 survive
    if isinstance(v, str) or v is None:
        return v
    if isinstance(v, tuple):
        return {"t": [_encode(x) for x in v]}
    if isinstance(v, list):
        return {"l": [_encode(x) for x in v]}
    if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
        return {"d": np.dtype(v).str}
    if isinstance(v, np.ndarray):
        data = base64.b64encode(np.ascontiguousarray(v).tobytes()).decode()
        return {"a": [v.dtype.str, list(v.shape), data]}
    raise TypeError(f"extern kernel param {v!r} ({type(v).__name__}) cannot be serialized")


def _decode(v):
    if not isinstance(v, dict):
        return v
    (tag, x), = v.items()
    if tag == "f":
        return float(x)
    if tag == "t":
        return tuple(_decode(y) for y in x)
    if tag == "l":
        return [_decode(y) for y in x]
    if tag == "d":
        return np.dtype(x)
    dtype, shape, data = x
    return np.frombuffer(base64.b64decode(data), np.dtype(dtype)).reshape(shape).copy()


def _avals(avals) -> list:
    return [[list(a.shape), np.dtype(a.dtype).str] for a in avals]


def describe(kernel: ExternKernel) -> str:
    """The kernel's primitive, params and avals as canonical JSON (no buffer names)."""
    params = {k: _encode(v) for k, v in sorted(kernel.params.items())}
    return json.dumps({"prim": kernel.prim, "params": params, "ins": _avals(kernel.in_avals),
                       "outs": _avals(kernel.out_avals)}, sort_keys=True)


# ---- native lowerings as compile units ------------------------------------------------------

class ExternUnit:
    """A natively lowered extern kernel as a compile unit (like units.KernelUnit)."""

    def __init__(self, kernel: ExternKernel, low: NativeLowering, environment: str):
        self.kernel, self.low = kernel, low
        self.text = "extern " + describe(kernel)
        self.key = hashlib.sha256((self.text + "\n" + environment).encode()).hexdigest()

    @property
    def symbol(self) -> str:
        return f"tg_ext_{self.key[:32]}"

    def arg_types(self) -> list:
        return [PTR] * (len(self.kernel.in_avals) + len(self.kernel.out_avals))

    def build_module(self) -> ir.Module:
        return self.build()[0]

    def build(self):
        module = ir.Module(name=self.symbol)
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), self.arg_types()), self.symbol)
        n_in = len(self.kernel.in_avals)
        for arg in fn.args[n_in:]:
            arg.add_attribute("noalias")  # outputs are fresh memory
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.low.emit(b, NativeCall(self.kernel, list(fn.args[:n_in]), list(fn.args[n_in:])))
        b.ret_void()
        return module, 3


# ---- emission in the entry (or a step function) ---------------------------------------------

def emit_extern(emitter, kernel: ExternKernel) -> None:
    """The code running `kernel` where `emitter` (lower.ProgramEmitter or loops.Scope) is."""
    ptrs = [emitter._pointer(buf) for buf in list(kernel.inputs) + list(kernel.outputs)]
    emitter.n_calls += 1
    low = native_for(kernel)
    if low is not None:
        unit = ExternUnit(kernel, low, emitter.environment)
        unit = emitter.units.setdefault(unit.key, unit)
        fn = declare(emitter.module, unit.symbol, ir.VoidType(), unit.arg_types())
        serial = low.blas_threads and blas.serial_section(getattr(emitter, "n_threads", None))
        with blas.serial_calls(emitter.b, serial):
            emitter.b.call(fn, ptrs)
        return
    _emit_host_call(emitter.b, kernel, ptrs)


def _emit_host_call(b, kernel, ptrs) -> None:
    module = b.module
    desc = _descriptor_global(module, describe(kernel))
    with b.goto_block(b.function.entry_basic_block):  # one slot array per call site
        slots = b.alloca(ir.ArrayType(PTR, max(len(ptrs), 1)), name="extern.ptrs")
    for i, p in enumerate(ptrs):
        b.store(p, b.gep(slots, [i64(0), i64(i)], inbounds=True))
    fn = declare(module, HOST_SYMBOL, I32, [PTR, PTR, PTR])
    b.call(fn, [desc, slots, status_global(module)])


def _descriptor_global(module, text: str):
    data = bytearray(text.encode()) + b"\0"
    name = "tg_desc_" + hashlib.sha256(data).hexdigest()[:16]
    try:
        return module.get_global(name)
    except KeyError:
        pass
    ty = ir.ArrayType(I8, len(data))
    g = ir.GlobalVariable(module, ty, name)
    g.initializer = ir.Constant(ty, data)
    g.global_constant, g.linkage = True, "private"
    return g


def status_global(module):
    """The program's `tg_host_status` (nonzero: a host call failed in this run)."""
    try:
        return module.get_global(STATUS)
    except KeyError:
        g = ir.GlobalVariable(module, I32, STATUS)
        g.initializer = ir.Constant(I32, 0)
        g.linkage = "internal"
        return g


def healthy(b, module):
    """An i1: no host call of this run has failed (loops.py stops its loops otherwise)."""
    return b.icmp_signed("==", b.load(status_global(module), typ=I32), ir.Constant(I32, 0))


def reset_status(b, module) -> None:
    b.store(ir.Constant(I32, 0), status_global(module))


# ---- which programs call back ---------------------------------------------------------------

def _kernels(kp):
    for k in kp.kernels:
        yield k
        if isinstance(k, (LoopStep, CondStep)):
            for sub in k.programs():
                yield from _kernels(sub)


def host_calls(kp) -> int:
    """How many extern kernels of `kp` (bodies included) call back into Python."""
    return sum(1 for k in _kernels(kp) if isinstance(k, ExternKernel) and native_for(k) is None)


def kernel_work(kernel: ExternKernel, threshold: int) -> int:
    """A rough element count; a host call counts as `threshold` (the GIL-release bound),
    so a program that calls back always releases the GIL (module docstring)."""
    size = sum(a.size for a in list(kernel.in_avals) + list(kernel.out_avals))
    return max(size, threshold) if native_for(kernel) is None else size


# ---- the Python side of the host call --------------------------------------------------------

@dataclass
class _Operand:
    """How to view one buffer: its shape, dtype and the ctypes array type of its bytes."""

    shape: tuple
    dtype: np.dtype
    raw: type | None  # None: no bytes (size 0)

    @classmethod
    def of(cls, shape, dtype) -> "_Operand":
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return cls(tuple(shape), dtype, ctypes.c_char * nbytes if nbytes else None)

    def view(self, address, writable):
        if self.raw is None:
            return np.empty(self.shape, self.dtype)
        arr = np.frombuffer(self.raw.from_address(address), self.dtype).reshape(self.shape)
        if not writable:
            arr.flags.writeable = False
        return arr


@dataclass
class _Call:
    """A parsed descriptor: everything a host call needs besides the pointers."""

    prim: str
    params: dict
    ins: list  # _Operand per operand
    outs: list  # _Operand per result
    out_avals: list  # ShapedArray per result
    pointers: type  # the ctypes array type of the buffer pointers


@functools.lru_cache(maxsize=1024)
def _parse(text: bytes) -> _Call:
    d = json.loads(text)
    ins = [_Operand.of(s, t) for s, t in d["ins"]]
    outs = [_Operand.of(s, t) for s, t in d["outs"]]
    return _Call(d["prim"], {k: _decode(v) for k, v in d["params"].items()}, ins, outs,
                 [ShapedArray(o.shape, o.dtype) for o in outs],
                 ctypes.c_void_p * (len(ins) + len(outs)))


_PENDING = threading.local()  # .error: the exception of this thread's failed host call
# Operands are viewed read-only (an impl must not write its inputs), except for these
# impls, which never write them: NumPy's argmax/argmin along an axis of a read-only array
# take a path 2.3x slower (1024x1024 float32, axis 1: 234 against 101 us).
_WRITABLE_VIEWS = frozenset({"argmax", "argmin"})


def _host_call(desc, buffers, status) -> int:
    flag = ctypes.c_int32.from_address(status)
    if flag.value:
        return 1  # an earlier call of this run failed: skip the rest
    try:
        call = _parse(ctypes.string_at(desc))
        ptrs = call.pointers.from_address(buffers)
        args = [op.view(p, call.prim in _WRITABLE_VIEWS) for op, p in zip(call.ins, ptrs)]
        into = PRIMITIVES[call.prim].impl_into
        if into is not None:  # written straight into the output buffer
            into(call.outs[0].view(ptrs[len(call.ins)], True), *args, **call.params)
            return 0
        results = extern_results(call.prim, call.params, args, call.out_avals)
        for op, p, r in zip(call.outs, ptrs[len(call.ins):], results):
            np.copyto(op.view(p, True), r)
    except BaseException as e:  # noqa: BLE001  (re-raised by `guard` after the native call)
        if getattr(_PENDING, "error", None) is None:
            _PENDING.error = e
        flag.value = 1
        return 1
    return 0


_HOST_PROTO = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_void_p)
_HOST = _HOST_PROTO(_host_call)  # kept alive for the process: JIT code calls it


def symbols() -> dict:
    """Name -> address of what extern code calls: the host callback, and whatever the
    native lowerings declare (runtime.register_symbols)."""
    table = {HOST_SYMBOL: ctypes.cast(_HOST, ctypes.c_void_p).value}
    for low in NATIVE.values():
        table.update(low.symbols)
    return table


def raise_pending() -> None:
    """Re-raise the exception a host call of this thread stored, if any."""
    error = getattr(_PENDING, "error", None)
    if error is not None:
        _PENDING.error = None
        raise error


def guard(cp) -> None:
    """Make a CompiledProgram with host calls re-raise their exceptions (module docstring):
    its fast builtin and its ctypes run are wrapped."""
    fast, run = cp.fast, cp._run
    if fast is not None:
        def checked_fast(*arrays):
            _PENDING.error = None
            try:
                return fast(*arrays)
            finally:
                raise_pending()
        cp.fast = checked_fast

    def checked_run(*args):
        _PENDING.error = None
        try:
            return run(*args)
        finally:
            raise_pending()
    cp._run = checked_run


from . import extern_cumulative  # noqa: E402,F401  (registers its native lowerings)
from . import extern_indexing  # noqa: E402,F401  (gather, scatter, dynamic slices)
from . import extern_sorting  # noqa: E402,F401  (argmax, argmin, searchsorted)
from . import lapack  # noqa: E402,F401  (the decompositions: LAPACKE from numpy's OpenBLAS)
