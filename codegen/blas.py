"""Matrix products: a direct call from generated code into an optimized BLAS.

Route: numpy's wheels ship OpenBLAS as `numpy.libs/libscipy_openblas64_-*.so`
(cblas with 64-bit integers, symbols `scipy_cblas_{s,d}gemm64_` etc.).  We load
that very file with ctypes (numpy already has it mapped, so nothing new is
loaded), and give the addresses of its gemm, gemv and dot functions to the JIT
under our own names (`tg_sgemm`, `tg_dgemv`, `tg_ddot`, ...) with
`llvm.add_symbol`; the entry function calls them directly, inside the single
native call.  Fallbacks, in order: numpy's 32-bit-integer build
(`libscipy_openblas-*`), the `scipy_openblas32` wheel if installed, and
otherwise every product is generated inline as a loop nest (with a warning:
correct, but far from BLAS speed on big inputs).  OpenBLAS reads its own
environment (e.g. OPENBLAS_CORETYPE, thread count); we never set or unset it.

Which routine (`product_routine`), as numpy chooses: a matrix-vector product
(n == 1 or m == 1) calls ?gemv, a vector dot (m == n == 1) ?dot, anything
else ?gemm.  OpenBLAS's gemm with n == 1 runs its blocked matrix-matrix code,
several times slower than gemv (docs/codegen.md, "BLAS route").

**Products on the program's threads** (`serial_products`).  In a program of several
threads, a product of its own kernel list runs with OpenBLAS on one thread, and a large gemm is cut into one slice
of rows (or of columns) of C per program thread, the slices run on the worker pool
(pool.py) as independent single-threaded calls.  Why: OpenBLAS's threaded gemm syncs
its threads on every block and its idle workers then spin for the next call, so (1) the
program's other kernels had to leave those workers their cores (threads.beside_blas: on
2 cores every elementwise kernel ran on one thread) and (2) when another process takes a
core, a thread spins for a peer that is not running: W3's call went from 2 to about
40-100 ms on a loaded 2-core machine.  Slices share nothing until the pool's join, and
the pool's threads yield while they wait.  One thread per call is set by
`tg_blas_serial_enter`/`_exit` around each product: a process-wide count of products in
flight under a spin lock (`_SERIAL_STATE`); the first one in saves OpenBLAS's thread
count and sets 1, the last one out restores the saved count.  So the user's setting is
back whenever no product runs, and numpy calls made meanwhile by other threads run on
one thread (correct, only slower).  `TRACEGRAD_BLAS_SERIAL=0`, or a BLAS without
OpenBLAS's thread-count functions, keeps every product a plain call on OpenBLAS's
threads.  Products inside loop bodies (loops.py) are plain calls either way.  The native
LAPACK calls (lapack.py, extern.emit_extern) take the same serial section.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
import warnings
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from tracegrad.passes.kernels import DotKernel, IndexMap, Load, LoopKernel, Op, Store

from . import pool
from .irutil import I64, PTR, declare, i64, libc_symbols

I32 = ir.IntType(32)

INLINE_FLOPS = 32768  # batch*m*n*k below this: an inline loop beats the call's fixed cost
# m*n*k of one matrix product at most, for a batch of them to be one loop nest however
# many there are: a BLAS call per product costs more than such a product's arithmetic.
INLINE_MATRIX_MACS = 400  # up to 7x7x7 (at 8x8x8 the calls were as fast)
# m*n*k of one slice of a gemm cut into slices on the pool, at least: some tens of
# microseconds of work, well above waking a pool worker (a few microseconds).
SPLIT_MIN_MACS = 1 << 19
# Rows (or columns) of C of one slice, at least: each slice packs the whole other operand
# again, a cost that narrow slices no longer hide behind their arithmetic.
SPLIT_MIN_WIDTH = 64
# Slice edges fall on multiples of this many rows or columns (whole vectors and cache
# lines of C in the column case; OpenBLAS's kernels block C by 16 or more rows).
SPLIT_ALIGN = 16
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
ROUTINES = ("gemm", "gemv", "dot")
PREFIX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}


@dataclass(frozen=True)
class BlasLib:
    path: str
    int_bits: int  # width of the integer arguments (M, N, K, lda, ...)
    addresses: dict  # "sgemm", "dgemv", "sdot", ... -> function address in this process
    get_num_threads: object = None  # OpenBLAS's openblas_get_num_threads (ctypes), if it has one
    set_num_threads: object = None  # and its openblas_set_num_threads

    def describe(self) -> str:
        """What the generated code depends on (part of the disk-cache key)."""
        return f"cblas-int{self.int_bits}-" + ",".join(ROUTINES)


def _numpy_libs_dirs():
    base = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    return [os.path.join(base, "numpy.libs"), os.path.join(os.path.dirname(np.__file__), ".dylibs")]


def _scipy_openblas32_dirs():
    try:
        import scipy_openblas32  # optional wheel
    except ImportError:
        return []
    return [scipy_openblas32.get_lib_dir()]


# (directories, file pattern, symbol pattern for "sgemm", "ddot", ..., integer width,
#  OpenBLAS's thread-count functions with {} for "get" or "set")
def _candidates():
    libs = _numpy_libs_dirs()
    yield (libs, "libscipy_openblas64_*", "scipy_cblas_{}64_", 64,
           "scipy_openblas_{}_num_threads64_")
    yield libs, "libscipy_openblas-*", "scipy_cblas_{}", 32, "scipy_openblas_{}_num_threads"
    yield (_scipy_openblas32_dirs(), "libscipy_openblas*", "scipy_cblas_{}", 32,
           "scipy_openblas_{}_num_threads")


def _thread_functions(lib, threads_symbol):
    """OpenBLAS's (int get(void), void set(int)) as ctypes functions; None for one missing."""
    get = getattr(lib, threads_symbol.format("get"), None)
    if get is not None:
        get.restype, get.argtypes = ctypes.c_int, []
    put = getattr(lib, threads_symbol.format("set"), None)
    if put is not None:
        put.restype, put.argtypes = None, [ctypes.c_int]
    return get, put


def _open(path, symbol_pattern, int_bits, threads_symbol):
    names = [p + r for r in ROUTINES for p in PREFIX.values()]
    try:
        lib = ctypes.CDLL(path)
        found = {name: getattr(lib, symbol_pattern.format(name)) for name in names}
    except (OSError, AttributeError):
        return None
    return BlasLib(path, int_bits, {name: ctypes.cast(f, ctypes.c_void_p).value
                                    for name, f in found.items()},
                   *_thread_functions(lib, threads_symbol))


@functools.lru_cache(maxsize=None)
def find_blas() -> BlasLib | None:
    """The first usable BLAS of the candidates above, or None (then products are inline)."""
    for dirs, file_pattern, symbol_pattern, bits, threads_symbol in _candidates():
        for d in dirs:
            for path in sorted(glob.glob(os.path.join(d, file_pattern))):
                found = _open(path, symbol_pattern, bits, threads_symbol)
                if found is not None:
                    return found
    warnings.warn("tracegrad: no BLAS found next to numpy; matrix products run as generated "
                  "loops (correct but slower for large matrices)", RuntimeWarning, stacklevel=2)
    return None


# The serial section's process-wide state (module docstring): [0] the spin lock (the
# holder's pid, 0 when free), [1] how many products are in flight, [2] OpenBLAS's thread
# count saved by the first of them, [3] the pid of the process [1] counts for.
_SERIAL_STATE = (ctypes.c_int64 * 8)()
SERIAL_STATE = "tg_blas_serial_state"


def _address(f) -> int:
    return ctypes.cast(f, ctypes.c_void_p).value


def symbols() -> dict:
    """Name -> address for the JIT's symbol table (llvm.add_symbol)."""
    lib = find_blas()
    if lib is None:
        return {}
    table = {f"tg_{name}": address for name, address in lib.addresses.items()}
    if lib.get_num_threads is not None and lib.set_num_threads is not None:
        table.update(libc_symbols(("sched_yield", "getpid")))
        table.update({"tg_blas_get_threads": _address(lib.get_num_threads),
                      "tg_blas_set_threads": _address(lib.set_num_threads),
                      SERIAL_STATE: ctypes.addressof(_SERIAL_STATE)})
    return table


def serial_products() -> bool:
    """Whether the program's products run on its own threads with OpenBLAS on one thread
    (module docstring); off with TRACEGRAD_BLAS_SERIAL=0|false|no."""
    lib = find_blas()
    if lib is None or lib.get_num_threads is None or lib.set_num_threads is None:
        return False
    return os.environ.get("TRACEGRAD_BLAS_SERIAL", "").strip().lower() not in ("0", "false", "no")


def describe() -> str:
    lib = find_blas()
    if lib is None:
        return "inline"
    return lib.describe() + ("-serial" if serial_products() else "")


def thread_count() -> int:
    """OpenBLAS's thread count now (the caller's setting; read, never changed), or
    os.cpu_count() if the library does not say: 1 without a BLAS."""
    lib = find_blas()
    if lib is None:
        return 1
    if lib.get_num_threads is None:
        return os.cpu_count() or 1
    return max(1, int(lib.get_num_threads()))


def calls_blas(kp) -> bool:
    """Whether a product of the program calls BLAS on OpenBLAS's own threads (so that its
    spinning workers need their cores, threads.beside_blas): none when the products run
    on the program's threads (`serial_products`)."""
    if serial_products():
        return False
    return any(isinstance(k, DotKernel) and not prefers_inline(k) for k in kp.kernels)


def prefers_inline(kernel) -> bool:
    """Small or degenerate products, batches of small ones (and every product without a
    BLAS) become loops."""
    macs = kernel.m * kernel.n * kernel.k
    small_batch = kernel.batch > 1 and macs <= INLINE_MATRIX_MACS
    return (kernel.batch * macs < INLINE_FLOPS or small_batch or macs == 0
            or find_blas() is None)


def product_routine(kernel) -> str:
    """The BLAS routine for one batch entry: numpy's choice for these shapes."""
    if kernel.m == 1 and kernel.n == 1:
        return "dot"
    if kernel.m == 1 or kernel.n == 1:
        return "gemv"
    return "gemm"


# ---- inline: a LoopKernel with a reducing store ------------------------------------

def _operand_index(batch_stride, strides_by_axis, order):
    return IndexMap(0, tuple([batch_stride] + [strides_by_axis.get(ax, 0) for ax in order]))


def dot_as_loop(kernel) -> LoopKernel:
    """out[b,i,j] = sum_p A[b,i,p] * B[b,p,j] as a loop nest over (b, i, p, j) or (b, i, j, p).

    The innermost loop is chosen so it walks B (and the output) contiguously:
    over j when B is stored (k, n), over p when B is stored transposed (n, k).
    """
    m, k, n = kernel.m, kernel.k, kernel.n
    order = ("i", "j", "p") if kernel.trans_b else ("i", "p", "j")
    sizes = {"i": m, "j": n, "p": k}
    a_str = {"i": 1, "p": m} if kernel.trans_a else {"i": k, "p": 1}
    b_str = {"j": k, "p": 1} if kernel.trans_b else {"j": 1, "p": n}
    a_idx = _operand_index(m * k, a_str, order)
    b_idx = _operand_index(k * n, b_str, order)
    o_idx = _operand_index(m * n, {"i": n, "j": 1}, order)
    dt = np.dtype(kernel.out.dtype)
    body = [Load(kernel.a, a_idx, dt), Load(kernel.b, b_idx, dt), Op("mul", (0, 1), {}, dt)]
    store = Store(kernel.out, 2, o_idx, reduce="sum")
    domain = (kernel.batch,) + tuple(sizes[ax] for ax in order)
    return LoopKernel(kernel.name, domain, body, [store])


# ---- BLAS call ----------------------------------------------------------------------

def _float_type(dtype):
    return ir.FloatType() if np.dtype(dtype) == np.float32 else ir.DoubleType()


def _routine(module, routine, dtype, int_bits):
    """The declaration of tg_<s|d><routine> (cblas signatures, row-major enums as i32)."""
    name = f"tg_{PREFIX[np.dtype(dtype)]}{routine}"
    i32, iN, f, p = ir.IntType(32), ir.IntType(int_bits), _float_type(dtype), ir.PointerType()
    void = ir.VoidType()
    if routine == "gemm":  # (order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
        return declare(module, name, void, [i32, i32, i32, iN, iN, iN, f, p, iN, p, iN, f, p, iN])
    if routine == "gemv":  # (order, trans, M, N, alpha, A, lda, x, incx, beta, y, incy)
        return declare(module, name, void, [i32, i32, iN, iN, f, p, iN, p, iN, f, p, iN])
    return declare(module, name, f, [iN, p, iN, p, iN])  # dot: (N, x, incx, y, incy) -> x . y


def _trans(flag: bool) -> int:
    return TRANS if flag else NO_TRANS


def _call_gemm(b, fn, kernel, a, bm, out, iN, m=None, n=None):
    """C (m, n) = op(A) @ op(B), every operand row-major as stored; `m` or `n` (i64 values)
    make it the slice of C with that many rows or columns (the leading dimensions stay the
    whole product's)."""
    k = kernel.k
    i32, f = ir.IntType(32), fn.function_type.args[6]
    lda = kernel.m if kernel.trans_a else k
    ldb = k if kernel.trans_b else kernel.n
    rows, cols = _int(b, m, kernel.m, iN), _int(b, n, kernel.n, iN)
    b.call(fn, [i32(ROW_MAJOR), i32(_trans(kernel.trans_a)), i32(_trans(kernel.trans_b)),
                rows, cols, iN(k), f(1.0), a, iN(lda), bm, iN(ldb), f(0.0), out, iN(kernel.n)])


def _int(b, value, default, iN):
    """The BLAS integer of an i64 value, or of the constant `default` when it is None."""
    if value is None:
        return iN(default)
    return value if iN.width == 64 else b.trunc(value, iN)


def _call_gemv(b, fn, kernel, a, bm, out, iN):
    """y = op(M) @ x for the one operand that is a matrix; the other is a contiguous vector.

    n == 1: y (m) = op(A) @ b, A stored (m, k) or, transposed, (k, m).
    m == 1: y (n) = a @ op(B) = op(B).T @ a, B stored (k, n) (transposed for gemv) or (n, k).
    A vector operand is contiguous however it is flagged (one of its dims is 1).
    """
    m, n, k = kernel.m, kernel.n, kernel.k
    if n == 1:
        mat, vec, trans = a, bm, kernel.trans_a
        rows, cols = (k, m) if kernel.trans_a else (m, k)
    else:
        mat, vec, trans = bm, a, not kernel.trans_b
        rows, cols = (n, k) if kernel.trans_b else (k, n)
    i32, f = ir.IntType(32), fn.function_type.args[4]
    b.call(fn, [i32(ROW_MAJOR), i32(_trans(trans)), iN(rows), iN(cols), f(1.0), mat, iN(cols),
                vec, iN(1), f(0.0), out, iN(1)])


def _call_dot(b, fn, kernel, a, bm, out, iN):
    """out[0] = a . b over k contiguous elements each."""
    b.store(b.call(fn, [iN(kernel.k), a, iN(1), bm, iN(1)]), out)


_CALLS = {"gemm": _call_gemm, "gemv": _call_gemv, "dot": _call_dot}


def emit_product(b: ir.IRBuilder, kernel, a_ptr, b_ptr, out_ptr, n_threads=None):
    """out = op(A) @ op(B) row-major through ?gemm, ?gemv or ?dot (`product_routine`).

    `n_threads` None or 1: a plain call per batch entry (OpenBLAS's own threads: a program
    of one thread leaves the other cores to them).  Otherwise, when `serial_products()`, a
    serial section (module docstring): a large gemm in slices on `n_threads` pool threads
    (`split_edges`), anything else one call per batch entry."""
    serial = serial_section(n_threads)
    edges = split_edges(kernel, n_threads) if serial else None
    with serial_calls(b, serial):
        if edges is None:
            _emit_calls(b, kernel, a_ptr, b_ptr, out_ptr)
        else:
            _emit_split(b, kernel, (a_ptr, b_ptr, out_ptr), edges)


def _emit_calls(b, kernel, a_ptr, b_ptr, out_ptr):
    """One BLAS call per batch entry (a loop over the batch)."""
    lib = find_blas()
    m, n, k = kernel.m, kernel.n, kernel.k
    routine = product_routine(kernel)
    fn = _routine(b.module, routine, kernel.out.dtype, lib.int_bits)
    iN, i64 = ir.IntType(lib.int_bits), ir.IntType(64)
    f = _float_type(kernel.out.dtype)
    pre = b.block
    body = b.function.append_basic_block(f"{kernel.name}.batch")
    done = b.function.append_basic_block(f"{kernel.name}.done")
    b.branch(body)
    b.position_at_end(body)
    bi = b.phi(i64)
    bi.add_incoming(i64(0), pre)

    def at(ptr, size):
        return b.gep(ptr, [b.mul(bi, i64(size))], inbounds=True, source_etype=f)

    _CALLS[routine](b, fn, kernel, at(a_ptr, m * k), at(b_ptr, k * n), at(out_ptr, m * n), iN)
    nxt = b.add(bi, i64(1))
    bi.add_incoming(nxt, b.block)
    b.cbranch(b.icmp_signed("<", nxt, i64(kernel.batch)), body, done)
    b.position_at_end(done)


# ---- a gemm in slices on the pool --------------------------------------------------------

def split_edges(kernel, n_threads) -> tuple | None:
    """("m" or "n", edges): the slices of C (rows when m >= n, else columns) a gemm is cut
    into, one per thread while slices keep SPLIT_MIN_WIDTH rows and SPLIT_MIN_MACS of
    work, edges on multiples of SPLIT_ALIGN; None to keep it one call (one thread, a
    batch, another routine, or too little work to share)."""
    if (n_threads is None or n_threads < 2 or kernel.batch != 1 or prefers_inline(kernel)
            or product_routine(kernel) != "gemm"):
        return None
    dim, size = ("m", kernel.m) if kernel.m >= kernel.n else ("n", kernel.n)
    parts = min(n_threads, size // SPLIT_MIN_WIDTH,
                kernel.m * kernel.n * kernel.k // SPLIT_MIN_MACS)
    if parts < 2:
        return None
    inner = [size * t // parts // SPLIT_ALIGN * SPLIT_ALIGN for t in range(1, parts)]
    return dim, tuple([0] + inner + [size])


def _slice_offsets(kernel, dim, lo):
    """Element offsets of (A, B, C) where the slice starting at row (or column) `lo` of C
    reads and writes."""
    if dim == "m":
        return (lo if kernel.trans_a else lo * kernel.k), 0, lo * kernel.n
    return 0, (lo * kernel.k if kernel.trans_b else lo), lo


_SLICE = ir.LiteralStructType([PTR, PTR, PTR, I64])  # A, B, C of a slice, its rows or columns


def _emit_split(b, kernel, ptrs, edges):
    """Every slice's context, then the pool runs them all (returns when all are done)."""
    dim, cuts = edges
    f = _float_type(kernel.out.dtype)
    n = len(cuts) - 1
    ctx = b.alloca(_SLICE, size=i64(n), name=f"{kernel.name}.slices")
    for t in range(n):
        offsets = _slice_offsets(kernel, dim, cuts[t])
        for j, (ptr, off) in enumerate(zip(ptrs, offsets)):
            at = b.gep(ptr, [i64(off)], inbounds=True, source_etype=f) if off else ptr
            b.store(at, b.gep(ctx, [i64(t), I32(j)]))
        b.store(i64(cuts[t + 1] - cuts[t]), b.gep(ctx, [i64(t), I32(3)]))
    stride = b.sub(b.ptrtoint(b.gep(ctx, [i64(1)], source_etype=_SLICE), I64), b.ptrtoint(ctx, I64))
    run = declare(b.module, "tg_pool_run", ir.VoidType(), [PTR, PTR, I64, I64])
    b.call(run, [_slice_task(b.module, kernel, dim), ctx, stride, i64(n)])


def _slice_task(module, kernel, dim):
    """`void task(ptr ctx)`: the gemm of one slice (the pool's task)."""
    name = f"tg_slice_{kernel.name}"
    if name in module.globals:
        return module.globals[name]
    lib = find_blas()
    task = ir.Function(module, pool.TASK_TYPE, name)
    task.linkage = "internal"
    b = ir.IRBuilder(task.append_basic_block("entry"))
    fields = [b.gep(task.args[0], [i64(0), I32(j)], source_etype=_SLICE)
              for j in range(4)]
    a, bm, c = (b.load(x, typ=PTR) for x in fields[:3])
    size = b.load(fields[3], typ=I64)
    fn = _routine(module, "gemm", kernel.out.dtype, lib.int_bits)
    iN = ir.IntType(lib.int_bits)
    _call_gemm(b, fn, kernel, a, bm, c, iN, **{dim: size})
    b.ret_void()
    return task


# ---- the serial section ------------------------------------------------------------------

def serial_section(n_threads) -> bool:
    """Whether a call into OpenBLAS from a program of `n_threads` threads runs in the serial
    section (module docstring)."""
    return n_threads is not None and n_threads > 1 and serial_products()


@contextlib.contextmanager
def serial_calls(b, serial: bool):
    """The calls emitted inside, in the serial section where `serial` (module docstring)."""
    if serial:
        b.call(_serial_function(b.module, "enter"), [])
    yield
    if serial:
        b.call(_serial_function(b.module, "exit"), [])


def _serial_function(module, which):
    """`void tg_blas_serial_<enter|exit>()` of this module (internal; module docstring)."""
    name = f"tg_blas_serial_{which}"
    if name in module.globals:
        return module.globals[name]
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), []), name)
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    state = _state_global(module)
    lock, depth, saved, owner = (b.gep(state, [i64(0), i64(j)]) for j in range(4))  # typed
    pid = b.sext(b.call(declare(module, "tg_sys_getpid", I32, []), []), I64)
    _lock(b, lock, pid)
    _adopt(b, depth, saved, owner, pid)
    (_enter if which == "enter" else _exit)(b, depth, saved)
    b.atomic_rmw("xchg", lock, i64(0), "release")
    b.ret_void()
    return fn


def _state_global(module):
    if SERIAL_STATE in module.globals:
        return module.globals[SERIAL_STATE]
    return ir.GlobalVariable(module, ir.ArrayType(I64, len(_SERIAL_STATE)), SERIAL_STATE)


def _lock(b, lock, pid):
    """Spin (yielding the core) until this process holds `lock` (the holder's pid); a
    holder of another process (a parent, before fork) is taken over."""
    fn = b.function
    spin, stale, wait, held = (fn.append_basic_block(n) for n in ("spin", "stale", "wait", "held"))
    b.branch(spin)
    b.position_at_end(spin)
    first = b.cmpxchg(lock, i64(0), pid, "acquire", "monotonic")
    old = b.extract_value(first, 0)
    other = b.and_(b.icmp_signed("!=", old, i64(0)), b.icmp_signed("!=", old, pid))
    b.cbranch(b.extract_value(first, 1), held, stale)
    b.position_at_end(stale)
    took = b.extract_value(b.cmpxchg(lock, old, pid, "acquire", "monotonic"), 1)
    b.cbranch(b.and_(other, took), held, wait)
    b.position_at_end(wait)
    b.call(declare(b.module, "tg_sys_sched_yield", I32, []), [])
    b.branch(spin)
    b.position_at_end(held)


def _adopt(b, depth, saved, owner, pid):
    """In a process that forked while products were in flight, none of them is: OpenBLAS
    gets its saved count back and the count of products starts at zero."""
    with b.if_then(b.icmp_signed("!=", b.load(owner, typ=I64), pid)):
        busy = b.icmp_signed(">", b.load(depth, typ=I64), i64(0))
        count = b.load(saved, typ=I64)
        with b.if_then(b.and_(busy, b.icmp_signed(">", count, i64(1)))):
            _set_threads(b, b.trunc(count, I32))
        b.store(i64(0), depth)
        b.store(pid, owner)


def _set_threads(b, count):
    b.call(declare(b.module, "tg_blas_set_threads", ir.VoidType(), [I32]), [count])


def _enter(b, depth, saved):
    """First product in: save OpenBLAS's thread count, then set one thread."""
    before = b.load(depth, typ=I64)
    b.store(b.add(before, i64(1)), depth)
    with b.if_then(b.icmp_signed("==", before, i64(0))):
        count = b.call(declare(b.module, "tg_blas_get_threads", I32, []), [])
        b.store(b.sext(count, I64), saved)
        with b.if_then(b.icmp_signed(">", count, I32(1))):
            _set_threads(b, I32(1))


def _exit(b, depth, saved):
    """Last product out: give OpenBLAS back the thread count saved on the way in."""
    after = b.sub(b.load(depth, typ=I64), i64(1))
    b.store(after, depth)
    with b.if_then(b.icmp_signed("==", after, i64(0))):
        count = b.load(saved, typ=I64)
        with b.if_then(b.icmp_signed(">", count, i64(1))):
            _set_threads(b, b.trunc(count, I32))
