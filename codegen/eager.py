"""Native kernels for eager operations on numpy buffers (docs/eager.md).

Eager tensors compute with numpy (`Primitive.impl`).  For the primitives where it pays
(tracegrad/eager.py decides, by dtype and size), `Primitive.native` calls one of these
kernels instead.  A kernel is made once per *spec*: primitive, float dtype, parameters and
operand pattern, and its code is codegen's own: the spec becomes a one-op `LoopKernel`,
which units.py turns into a compile unit (kernel.py emits it, scalar_ops/mathlib lower the
op) and compiler.unit_codes compiles or loads from the disk cache (cache.py: the same
switches, TRACEGRAD_CACHE_DIR and TRACEGRAD_DISABLE_CACHE, as compiled programs).

Shapes are not in the code.  Every eager kernel's domain is one flat dim of N_MAX
elements and its function takes the row range (`ranged`, as a kernel split over threads):
`void k(ptr a0, ..., ptr out, i64 lo, i64 hi)` runs elements lo..hi-1 of contiguous
operands; a scalar operand (a 0-d array, or a broadcast view whose strides are all 0) is
a stride-0 load, so one kernel serves every size.  A full sum is a reducing store of
stride 0 into a float64 accumulator (float32 sums accumulate in float64, as compiled code
does); each block of SUM_BLOCK elements gets its own partial sum, added in order, so
that the result is the same on any number of threads.

Kernels run through one small *driver* per pointer count, compiled once per process:
`void tg_eager_run<k>(ptr fn, ptr p0..p{k-1}, i64 n, i64 threads, i64 out_step)` runs
`fn` on [0, n) split into `threads` slices run by the process's persistent worker pool
(pool.py's `tg_pool_run`, the one compiled programs use), the last pointer (the output)
advanced by `out_step` bytes per sum block (0 for elementwise kernels, whose slices write
disjoint rows; 8 for a sum's partials).  Elementwise kernels are called through eager_call.py's native fast call
(`caller`), which checks the operands and allocates the output without Python; sums, and
every call in a process without the fast call's ABI, through ctypes.  The driver and the
fast-call module are disk-cached like the kernels.
"""
from __future__ import annotations

import ctypes
import os
import warnings
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from tracegrad.ir.primitives import PRIMITIVES
from tracegrad.passes.kernels import Buffer, Const, IndexMap, Load, LoopKernel, Op, Store

from . import (cache, compiler, eager_call, eager_uloop, fastcall, fingerprint, llvm_util, mathlib, pool,
               simd, threads)
from .fastcall import _Indirect
from .irutil import I64, PTR, Loop, declare, i64
from .runtime import register_symbols
from .units import KernelUnit, canonical_form

N_MAX = 1 << 40  # the extent of every eager kernel's flat domain; a call runs [lo, hi)
CHUNK_ALIGN = 1024  # threads' slices start at multiples of this many elements
SUM_BLOCK = 16 * CHUNK_ALIGN  # a full sum's partials: one per block of this many elements
I32 = ir.IntType(32)
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class Spec:
    """What one eager kernel computes.  `pattern` has one letter per operand: "a" an
    array of the full size, "s" a scalar (stride 0); `reduce` is "sum" for a full sum."""

    prim: str
    dtype: np.dtype
    pattern: str  # per operand: "a" an array, "s" a scalar, "b" a bool array (where's condition)
    params: tuple = ()  # sorted (name, value) items
    reduce: str | None = None

    @property
    def n_pointers(self) -> int:
        return len(self.pattern) + 1


# ---- the kernel of a spec ---------------------------------------------------------------

def _operand(j: int, letter: str, dtype) -> Load:
    dtype = np.dtype(np.bool_) if letter == "b" else dtype
    array = letter in "ab"
    buf = Buffer(f"x{j}", (N_MAX,) if array else (1,), dtype, "input", index=j)
    return Load(buf, IndexMap(0, (1 if array else 0,)), dtype)


def _tanh_vjp(dtype) -> list:
    """g * (1 - out * out) on operands (g, out): tanh's VJP (ir/elementwise.py), op for op."""
    return [Op("mul", (1, 1), {}, dtype), Op("sub", (Const(1.0, dtype), 2), {}, dtype),
            Op("mul", (0, 3), {}, dtype)]


def _sqrt_vjp(dtype) -> list:
    """g * (0.5 / out) on operands (g, out)."""
    return [Op("div", (Const(0.5, dtype), 1), {}, dtype), Op("mul", (0, 2), {}, dtype)]


def _log_vjp(dtype) -> list:
    """g / x on operands (g, x)."""
    return [Op("div", (0, 1), {}, dtype)]


def _log1p_vjp(dtype) -> list:
    """g / (x + 1) on operands (g, x)."""
    return [Op("add", (1, Const(1.0, dtype)), {}, dtype), Op("div", (0, 2), {}, dtype)]


def _abs_vjp(dtype) -> list:
    """g * where(x >= 0, 1, -1) on operands (g, x)."""
    bool_ = np.dtype(np.bool_)
    return [Op("ge", (1, Const(0.0, dtype)), {}, bool_),
            Op("where", (2, Const(1.0, dtype), Const(-1.0, dtype)), {}, dtype), Op("mul", (0, 3), {}, dtype)]


def _tie_vjp(cmp: str):
    """g * where(a == b, 0.5, where(a cmp b, 1, 0)) on operands (g, a, b): max's (cmp "gt")
    or min's ("lt") cotangent of a (ir/elementwise.py's _tie_mask, op for op)."""
    def ops(dtype) -> list:
        bool_ = np.dtype(np.bool_)
        return [Op(cmp, (1, 2), {}, bool_), Op("where", (3, Const(1.0, dtype), Const(0.0, dtype)), {}, dtype),
                Op("eq", (1, 2), {}, bool_), Op("where", (5, Const(0.5, dtype), 4), {}, dtype),
                Op("mul", (0, 6), {}, dtype)]
    return ops


# Fused backward rules: name -> (the ops after the operands' loads, cost per element).  Each
# computes its primitive's VJP with the same operations in the same order (each rounded to
# the dtype, none contracted), so its results are those of the unfused rule bit for bit, in
# one pass over memory instead of one per operation.
FUSED = {"tanh_vjp": (_tanh_vjp, 3), "sqrt_vjp": (_sqrt_vjp, 5), "log_vjp": (_log_vjp, 5),
         "log1p_vjp": (_log1p_vjp, 6), "abs_vjp": (_abs_vjp, 3), "max_vjp": (_tie_vjp("gt"), 5),
         "min_vjp": (_tie_vjp("lt"), 5)}

# numpy's own loop run on the pool (codegen/eager_uloop.py): kernel name -> (primitive, the
# ufunc its impl applies)
NUMPY_LOOPS = {f"numpy_{p}": (p, getattr(np, p)) for p in ("tanh", "exp", "log", "log1p", "expm1", "sin",
                                                            "cos")}


def kernel_of(spec: Spec) -> LoopKernel:
    """The one-op LoopKernel of an elementwise spec (or the ops of a FUSED one), or the
    reduction of a sum spec."""
    body = [_operand(j, c, spec.dtype) for j, c in enumerate(spec.pattern)]
    if spec.prim in FUSED:
        body += FUSED[spec.prim][0](spec.dtype)
    if spec.reduce is None:
        if spec.prim not in FUSED:
            body.append(Op(spec.prim, tuple(range(len(spec.pattern))), dict(spec.params), spec.dtype))
        out = Buffer("out", (N_MAX,), spec.dtype, "output", index=0)
        store = Store(out, len(body) - 1, IndexMap(0, (1,)))
    else:  # partial sums in float64 (one per block)
        f64 = np.dtype(np.float64)
        if spec.dtype != f64:
            body.append(Op("convert", (0,), {"dtype": f64}, f64))
        out = Buffer("out", (1,), f64, "output", index=0)
        store = Store(out, len(body) - 1, IndexMap(0, (0,)), spec.reduce)
    return LoopKernel(f"eager_{spec.prim}", (N_MAX,), body, [store])


class EagerUnit(KernelUnit):
    """A compile unit whose function keeps whole host-wide vectors: x86 tunings that prefer
    256-bit vectors halve the lanes of a one-op loop that is all arithmetic (mathlib's
    polynomials), which ran 1.3-5x slower at 256 bits than at 512 (docs/eager.md)."""

    def build(self):
        module, level = super().build()
        simd.pin_width(module.globals[self.symbol])
        return module, level


def unit_of(spec: Spec) -> EagerUnit:
    """The compile unit of a spec: a ranged kernel (it takes `lo, hi`); the pinned width is
    in the key's environment, so no program kernel shares its cache entry."""
    canon, args = canonical_form(kernel_of(spec))
    environment = fingerprint.kernel_environment() + f"\neager width={llvm_util.vector_bits()}"
    return EagerUnit.of(canon, len(args), True, environment)


# ---- the driver: threads over the row range ----------------------------------------------

def _context_type(n_ptrs: int):
    """One slice's call: the kernel's address, its pointers, lo, hi and out_step, then the
    cycle counter when the slice started and when it ended (the task writes them)."""
    return ir.LiteralStructType([PTR] * (n_ptrs + 1) + [I64] * 5)


def _field(n_ptrs: int, name: str) -> int:
    """The index of a context field after the kernel and its pointers."""
    return n_ptrs + 1 + ("lo", "hi", "out_step", "start", "end").index(name)


def _kernel_type(n_ptrs: int):
    return ir.FunctionType(ir.VoidType(), [PTR] * n_ptrs + [I64, I64])


def _clock(b):
    return b.call(declare(b.module, "llvm.readcyclecounter", I64, []), [])


def _emit_task(module, n_ptrs: int):
    """`void task(ptr ctx)`: the pool's task (pool.TASK_TYPE), calling ctx's kernel on its
    rows between two reads of the cycle counter; a sum (out_step > 0) block by block."""
    task = ir.Function(module, pool.TASK_TYPE, f"tg_eager_task{n_ptrs}")
    task.linkage = "internal"
    b = ir.IRBuilder(task.append_basic_block("entry"))
    cty, ctx = _context_type(n_ptrs), task.args[0]
    fields = [b.gep(ctx, [i64(0), I32(j)], source_etype=cty) for j in range(n_ptrs + 6)]
    ptrs = [b.load(f, typ=PTR) for f in fields[:n_ptrs + 1]]
    lo, hi, out_step = (b.load(fields[_field(n_ptrs, k)], typ=I64) for k in ("lo", "hi", "out_step"))
    b.store(_clock(b), fields[_field(n_ptrs, "start")])
    kernel = _Indirect(ptrs[0], _kernel_type(n_ptrs))
    with b.if_else(b.icmp_signed("==", out_step, i64(0))) as (rows, blocks):
        with rows:
            b.call(kernel, ptrs[1:] + [lo, hi])
        with blocks:
            _call_blocks(b, kernel, ptrs[1:], lo, hi, out_step)
    b.store(_clock(b), fields[_field(n_ptrs, "end")])
    b.ret_void()
    return task


def _call_blocks(b, kernel, ptrs, lo, hi, out_step):
    """The kernel on each SUM_BLOCK of [lo, hi) (lo is a multiple of it), the output
    advanced by out_step bytes per block: a sum's partials are per block, whatever the
    slices, so that its result does not depend on the number of threads."""
    first = b.sdiv(lo, i64(SUM_BLOCK))
    end = b.sdiv(b.add(hi, i64(SUM_BLOCK - 1)), i64(SUM_BLOCK))
    with Loop(b, first, end, "block") as k:
        start = b.mul(k, i64(SUM_BLOCK))
        stop = b.add(start, i64(SUM_BLOCK))
        stop = b.select(b.icmp_signed("<", stop, hi), stop, hi)
        out = b.gep(ptrs[-1], [b.mul(k, out_step)], source_etype=ir.IntType(8))
        b.call(kernel, ptrs[:-1] + [out, start, stop])


def _fill_context(b, ctx, t, args, n_ptrs, edges):
    """Slice t's context: the kernel, the pointers, its rows [edges(t), edges(t + 1)) and
    the output's step per sum block."""
    fn, ptrs, out_step = args[0], args[1:n_ptrs + 1], args[n_ptrs + 3]
    slot = lambda j: b.gep(ctx, [t, I32(j)])  # noqa: E731
    b.store(fn, slot(0))
    for j, p in enumerate(ptrs):
        b.store(p, slot(j + 1))
    b.store(edges(t), slot(_field(n_ptrs, "lo")))
    b.store(edges(b.add(t, i64(1))), slot(_field(n_ptrs, "hi")))
    b.store(out_step, slot(_field(n_ptrs, "out_step")))


def _edges(b, n, n_threads, out_step):
    """Slice boundaries: t * n / threads rounded down to CHUNK_ALIGN (SUM_BLOCK for a sum),
    the last one n."""
    align = b.select(b.icmp_signed("==", out_step, i64(0)), i64(-CHUNK_ALIGN), i64(-SUM_BLOCK))

    def edge(t):
        at = b.and_(b.sdiv(b.mul(n, t), n_threads), align)
        return b.select(b.icmp_signed("==", t, n_threads), n, at)
    return edge


# After a threaded run that lost to one thread, the next BACKOFF_MIN calls run on one
# thread, twice as many after each further loss (up to BACKOFF_MAX), none after a win.
BACKOFF_MIN, BACKOFF_MAX = 16, 4096


class _Backoff:
    """The driver module's two words: `left` (calls still to run on one thread) and
    `length` (the next backoff).  Racing Python threads only blur the counts."""

    def __init__(self, module, n_ptrs: int):
        self.left = self._word(module, f"tg_eager_backoff_left{n_ptrs}")
        self.length = self._word(module, f"tg_eager_backoff_length{n_ptrs}")

    @staticmethod
    def _word(module, name):
        g = ir.GlobalVariable(module, I64, name)  # external: Kernels.backoffs reads it
        g.initializer, g.align = i64(0), 8
        return g

    @staticmethod
    def load(b, g):
        return b.load_atomic(g, "monotonic", 8, typ=I64)

    @staticmethod
    def store(b, value, g):
        b.atomic_rmw("xchg", g, value, "monotonic")

    def skip(self, b):
        """Whether this call runs on one thread (counting it down)."""
        left = self.load(b, self.left)
        waiting = b.icmp_signed(">", left, i64(0))
        with b.if_then(waiting):
            self.store(b, b.sub(left, i64(1)), self.left)
        return waiting

    def judge(self, b, ctx, cty, n_ptrs, n_threads):
        """A threaded run lost when the last slice ended later after the caller's own slice
        (slice 0) than that slice took: one thread would have been done by then."""
        at = lambda t, j: b.load(b.gep(ctx, [t, I32(j)], source_etype=cty), typ=I64)  # noqa: E731
        start, end = at(i64(0), _field(n_ptrs, "start")), at(i64(0), _field(n_ptrs, "end"))
        last = b.alloca(I64)
        b.store(end, last)
        with Loop(b, i64(1), n_threads, "latest") as t:
            e = at(t, _field(n_ptrs, "end"))
            b.store(b.select(b.icmp_signed(">", e, b.load(last)), e, b.load(last)), last)
        lost = b.icmp_signed(">", b.sub(b.load(last), end), b.sub(end, start))
        length = self.load(b, self.length)
        with b.if_else(lost) as (then, otherwise):
            with then:
                now = b.select(b.icmp_signed("<", length, i64(BACKOFF_MIN)), i64(BACKOFF_MIN), length)
                self.store(b, now, self.left)
                twice = b.mul(now, i64(2))
                self.store(b, b.select(b.icmp_signed(">", twice, i64(BACKOFF_MAX)), i64(BACKOFF_MAX),
                                       twice), self.length)
            with otherwise:
                self.store(b, i64(0), self.length)


def emit_driver(module, n_ptrs: int) -> ir.Function:
    """`void tg_eager_run<k>(ptr fn, ptr p..., i64 n, i64 threads, i64 out_step)`: the
    module docstring.  One thread calls the kernel directly; more hand their slices to the
    process's worker pool (`tg_pool_run`, pool.py), which runs slice 0 on the caller and
    any slice without a worker on the caller too.  Where the pool's workers come late (the
    machine's cores are busy) the next calls run on one thread for a while (_Backoff)."""
    fnty = ir.FunctionType(ir.VoidType(), [PTR] * (n_ptrs + 1) + [I64, I64, I64])
    fn = ir.Function(module, fnty, f"tg_eager_run{n_ptrs}")
    args = list(fn.args)
    n, n_threads = args[n_ptrs + 1], args[n_ptrs + 2]
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    backoff, task = _Backoff(module, n_ptrs), _emit_task(module, n_ptrs)
    cty = _context_type(n_ptrs)
    one = b.alloca(cty, name="whole")
    _fill_context(b, one, i64(0), args, n_ptrs, _edges(b, n, i64(1), args[n_ptrs + 3]))
    with b.if_then(b.icmp_signed("<=", n_threads, i64(1))):
        b.call(task, [one])
        b.ret_void()
    with b.if_then(backoff.skip(b), likely=False):
        b.call(task, [one])
        b.ret_void()
    ctx = b.alloca(cty, size=n_threads, name="ctx")
    edges = _edges(b, n, n_threads, args[n_ptrs + 3])
    with Loop(b, i64(0), n_threads, "fill") as t:
        _fill_context(b, ctx, t, args, n_ptrs, edges)
    stride = b.sub(b.ptrtoint(b.gep(ctx, [i64(1)], source_etype=cty), I64), b.ptrtoint(ctx, I64))
    run = declare(module, "tg_pool_run", ir.VoidType(), [PTR, PTR, I64, I64])
    b.call(run, [task, ctx, stride, n_threads])  # returns when all ran
    backoff.judge(b, ctx, cty, n_ptrs, n_threads)
    b.ret_void()
    return fn


# ---- compiled kernels ---------------------------------------------------------------------

_PTR_ARGS = lambda k: [ctypes.c_void_p] * k  # noqa: E731


@dataclass(eq=False)
class Made:
    """One spec's kernel: its address, the driver that runs it (a ctypes function), and for
    an elementwise spec the native fast call (eager_call.py) with its descriptor, the
    sentinel it returns on a mismatch (None where this process has no fast-call ABI)."""

    address: int
    driver: object
    builtin: object = None
    sentinel: object = None
    method_def: object = None  # what the builtin points to


def thread_count() -> int:
    """Threads for large eager kernels: TRACEGRAD_EAGER_THREADS, else compiled programs'
    count (threads.thread_count: TRACEGRAD_NUM_THREADS, else every core)."""
    env = os.environ.get("TRACEGRAD_EAGER_THREADS", "").strip()
    return threads.thread_count(int(env) if env.isdigit() else None)


def thread_min(prim: str) -> int:
    """Elements from which a kernel runs on several threads: threads.py's policy, a second
    thread pays from PARALLEL_MIN_COST simple ops."""
    prim = NUMPY_LOOPS[prim][0] if prim in NUMPY_LOOPS else prim
    cost = FUSED[prim][1] if prim in FUSED else PRIMITIVES[prim].cost
    return max(CHUNK_ALIGN, threads.PARALLEL_MIN_COST // max(cost, 1))


class Kernels:
    """The process's eager kernels, each compiled (or loaded from the disk cache) on first
    use.  `get(spec)` gives its `Made`, or None where the kernel could not be made: then one
    warning per process, and the callers fall back to numpy for that spec for good."""

    def __init__(self):
        self.compiled = {}  # Spec -> Made or None
        self.fast = {}  # (prim, dtype, pattern) -> Made or None, for the per-call lookup
        self.drivers = {}  # pointer count -> (address, ctypes function)
        self.backoffs = {}  # pointer count -> the driver's backoff words (left, length), ctypes
        self.calls = None  # operand count -> address of tg_eager_call<k>; {} without the ABI
        self.engines = []  # keep the machine code alive
        self.warned = False

    def get(self, spec: Spec):
        found = self.compiled.get(spec, False)
        if found is not False:
            return found
        with llvm_util.LOCK:  # the compile's own lock first: one lock order for all
            if spec not in self.compiled:
                self.compiled[spec] = self._make(spec)
            return self.compiled[spec]

    def get_fast(self, prim: str, dtype, pattern: str, params: tuple = ()):
        """The Made of an elementwise kernel, by a key that is cheap to hash."""
        key = (prim, dtype, pattern, params)
        found = self.fast.get(key, False)
        if found is False:
            found = self.fast[key] = self.get(Spec(prim, dtype, pattern, params))
        return found

    def _make(self, spec: Spec):
        try:
            with llvm_util.LOCK:
                register_symbols()  # the pool's tg_pool_run among them (the driver's)
                made = Made(self._kernel_address(spec), self._driver(spec.n_pointers)[1])
                if spec.reduce is None:
                    self._add_builtin(made, spec)
            return made
        except Exception as exc:  # noqa: BLE001 (any compile failure falls back to numpy)
            self._warn(spec, exc)
            return None

    def _warn(self, spec: Spec, exc: Exception) -> None:
        if not self.warned:
            self.warned = True
            warnings.warn(f"tracegrad: native eager kernel {spec.prim} ({spec.dtype}) failed to "
                          f"compile, using numpy ({type(exc).__name__}: {exc})", RuntimeWarning,
                          stacklevel=4)

    def _kernel_address(self, spec: Spec) -> int:
        if spec.prim in NUMPY_LOOPS:
            return eager_uloop.load(self._compile, spec.prim, NUMPY_LOOPS[spec.prim][1], spec.dtype)
        unit = unit_of(spec)
        store = cache.resolve(None)
        stats = {"compiled": 0, "loaded": 0}
        code, = compiler.unit_codes([unit], store, compiler.Stages(f"eager {spec.prim}"), stats)
        return self._load(code.obj).get_function_address(unit.symbol)

    def _load(self, obj: bytes):
        engine = llvm_util.load_objects([obj])
        self.engines.append(engine)
        return engine

    def _compile(self, module):
        """The engine of a fixed helper module (a driver, the fast calls): its object code
        from the disk cache, keyed by its text and the target, else compiled and stored."""
        text = str(module)
        store = cache.resolve(None)
        key = cache.text_key("eager helper\n" + text, {"target": fingerprint.target()})
        entry = store.load(key) if store is not None else None
        if entry is not None and len(entry.blobs) == 1:
            return self._load(entry.blobs[0])
        ref = llvm_util.optimize(llvm_util.parse(text), 2)
        obj = llvm_util.emit_object(ref)
        if store is not None:
            store.store(key, cache.CacheEntry({"helper": module.name}, [obj], ""))
        return self._load(obj)

    def _driver(self, n_ptrs: int):
        if n_ptrs not in self.drivers:
            module = ir.Module(name=f"tg_eager_run{n_ptrs}")
            emit_driver(module, n_ptrs)
            engine = self._compile(module)
            address = engine.get_function_address(f"tg_eager_run{n_ptrs}")
            proto = ctypes.CFUNCTYPE(None, *_PTR_ARGS(n_ptrs + 1), ctypes.c_int64,
                                     ctypes.c_int64, ctypes.c_int64)
            self.backoffs[n_ptrs] = [ctypes.c_int64.from_address(engine.get_global_value_address(
                f"tg_eager_backoff_{w}{n_ptrs}")) for w in ("left", "length")]
            self.drivers[n_ptrs] = (address, proto(address))
        return self.drivers[n_ptrs]

    def _call_addresses(self) -> dict:
        if self.calls is None:
            self.calls = {}
            if fastcall.python_abi() is not None:
                module = ir.Module(name="tg_eager_call")
                eager_call.emit_calls(module, CALL_OPERANDS)
                engine = self._compile(module)
                self.calls = {k: engine.get_function_address(f"tg_eager_call{k}")
                              for k in CALL_OPERANDS}
        return self.calls

    def _add_builtin(self, made: Made, spec: Spec) -> None:
        call = self._call_addresses().get(len(spec.pattern))
        if call is None:
            return
        driver = self._driver(spec.n_pointers)[0]
        desc = eager_call.descriptor(driver, made.address, spec.dtype, spec.pattern,
                                     thread_min(spec.prim), thread_count())
        made.builtin, made.method_def = fastcall.make_builtin(call, desc, self, b"tracegrad_eager")
        made.sentinel = desc


KERNELS = Kernels()
CALL_OPERANDS = (1, 2)  # operand counts with a native fast call


def _pointer(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _plain(a: np.ndarray, letter: str = "a") -> bool:
    """Memory the kernels can walk: C-contiguous, aligned, native byte order (bool where the
    pattern says "b")."""
    return a.flags.c_contiguous and a.flags.aligned and (
        a.dtype == np.bool_ if letter == "b" else a.dtype in DTYPES)


def elementwise(spec: Spec, operands, shape, n_threads: int = 1):
    """out = spec's op on `operands` (contiguous arrays of `shape`, or 0-d arrays where the
    pattern says "s") through ctypes, as a fresh array; None if the kernel is not
    available.  The caller has checked the operands (`_plain`)."""
    made = KERNELS.get(spec)
    if made is None:
        return None
    out = np.empty(shape, spec.dtype)
    n = out.size
    made.driver(made.address, *[_pointer(a) for a in operands], _pointer(out), n,
                max(1, min(n_threads, n // CHUNK_ALIGN)), 0)
    return out


def full_sum(spec: Spec, x: np.ndarray, n_threads: int = 1):
    """The sum of all elements of contiguous `x` as a 0-d array of its dtype; None if the
    kernel is not available.  Partial sums are float64, added in order."""
    made = KERNELS.get(spec)
    if made is None:
        return None
    n = x.size
    n_threads = max(1, min(n_threads, n // SUM_BLOCK))
    partial = np.zeros(max(1, -(-n // SUM_BLOCK)), np.float64)
    made.driver(made.address, _pointer(x), _pointer(partial), n, n_threads, 8)
    total = partial[0] if partial.size == 1 else np.add.reduce(partial)
    return np.asarray(total, dtype=spec.dtype)


# ---- what tracegrad/eager.py calls ---------------------------------------------------------

def _run(prim: str, pattern: str, operands, params: tuple = ()):
    """The fast call where this process has one (it checks the operands natively), else
    Python's checks and ctypes; None where no kernel applies (layout, compile)."""
    dtype = operands[1].dtype if pattern[0] == "b" else operands[0].dtype  # where: (c, x, y)
    made = KERNELS.get_fast(prim, dtype, pattern, params)
    if made is None:
        return None
    if made.builtin is not None:
        out = made.builtin(*operands)
        return None if out is made.sentinel else out
    if not all(_plain(a, c) for a, c in zip(operands, pattern)):
        return None
    shape = next(a.shape for a, c in zip(operands, pattern) if c in "ab")
    n = int(np.prod(shape))
    threads_ = thread_count() if n >= thread_min(prim) else 1
    return elementwise(Spec(prim, dtype, pattern, params), operands, shape, threads_)


REFUSED = object()  # what a caller without a fast call returns where no kernel applies


def caller(prim: str, dtype, pattern: str, params: tuple = ()):
    """`(call, refused)` for an elementwise kernel (`params`: the primitive's, as sorted
    items): `call(*operands)` gives the fresh result, or `refused` where the kernel does not
    take the operands or does not exist.  The fast call itself where the process has one (it
    checks the operands natively and returns its descriptor on a mismatch), else Python's
    checks and ctypes."""
    made = KERNELS.get_fast(prim, np.dtype(dtype), pattern, params)
    if made is not None and made.builtin is not None:
        return made.builtin, made.sentinel

    def call(*operands):
        out = _run(prim, pattern, list(operands), params)
        return REFUSED if out is None else out
    return call, REFUSED


def accurate_range(prim: str, dtype) -> float:
    """|x| up to which mathlib's sin and cos hold their ULP bound."""
    return mathlib.SIN_COS_ACCURATE_RANGE["f32" if np.dtype(dtype) == DTYPES[0] else "f64"]


def unary(prim: str, x: np.ndarray):
    """prim(x) for a float ndarray, or None where no kernel applies."""
    return _run(prim, "a", [x])


def binary(prim: str, pattern: str, operands):
    """prim(x, y) for operands of one float dtype: arrays of one shape where pattern has
    "a", 0-d arrays where it has "s"; None where no kernel applies."""
    return _run(prim, pattern, operands)


def full_sum_of(x: np.ndarray):
    """The sum of every element of a float ndarray (0-d), or None."""
    if not _plain(x):
        return None
    spec = Spec("reduce_sum", x.dtype, "a", reduce="sum")
    return full_sum(spec, x, thread_count() if x.size >= thread_min("add") else 1)
