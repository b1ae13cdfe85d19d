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
"""
from __future__ import annotations

import ctypes
import functools
import glob
import os
import warnings
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from tracegrad.passes.kernels import DotKernel, IndexMap, Load, LoopKernel, Op, Store

from .irutil import declare

INLINE_FLOPS = 32768  # batch*m*n*k below this: an inline loop beats the call's fixed cost
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
ROUTINES = ("gemm", "gemv", "dot")
PREFIX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}


@dataclass(frozen=True)
class BlasLib:
    path: str
    int_bits: int  # width of the integer arguments (M, N, K, lda, ...)
    addresses: dict  # "sgemm", "dgemv", "sdot", ... -> function address in this process
    get_num_threads: object = None  # OpenBLAS's openblas_get_num_threads (ctypes), if it has one

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
#  OpenBLAS's thread-count query)
def _candidates():
    libs = _numpy_libs_dirs()
    yield (libs, "libscipy_openblas64_*", "scipy_cblas_{}64_", 64,
           "scipy_openblas_get_num_threads64_")
    yield libs, "libscipy_openblas-*", "scipy_cblas_{}", 32, "scipy_openblas_get_num_threads"
    yield (_scipy_openblas32_dirs(), "libscipy_openblas*", "scipy_cblas_{}", 32,
           "scipy_openblas_get_num_threads")


def _open(path, symbol_pattern, int_bits, threads_symbol):
    names = [p + r for r in ROUTINES for p in PREFIX.values()]
    try:
        lib = ctypes.CDLL(path)
        found = {name: getattr(lib, symbol_pattern.format(name)) for name in names}
    except (OSError, AttributeError):
        return None
    get_num_threads = getattr(lib, threads_symbol, None)
    if get_num_threads is not None:
        get_num_threads.restype, get_num_threads.argtypes = ctypes.c_int, []
    return BlasLib(path, int_bits, {name: ctypes.cast(f, ctypes.c_void_p).value
                                    for name, f in found.items()}, get_num_threads)


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


def symbols() -> dict:
    """Name -> address for the JIT's symbol table (llvm.add_symbol)."""
    lib = find_blas()
    if lib is None:
        return {}
    return {f"tg_{name}": address for name, address in lib.addresses.items()}


def describe() -> str:
    lib = find_blas()
    return "inline" if lib is None else lib.describe()


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
    """Whether any product of the program is a BLAS call (not a loop)."""
    return any(isinstance(k, DotKernel) and not prefers_inline(k) for k in kp.kernels)


def prefers_inline(kernel) -> bool:
    """Small or degenerate products (and every product without a BLAS) become loops."""
    flops = kernel.batch * kernel.m * kernel.n * kernel.k
    return flops < INLINE_FLOPS or 0 in (kernel.m, kernel.n, kernel.k) or find_blas() is None


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


def _call_gemm(b, fn, kernel, a, bm, out, iN):
    """C (m, n) = op(A) @ op(B), every operand row-major as stored."""
    m, n, k = kernel.m, kernel.n, kernel.k
    i32, f = ir.IntType(32), fn.function_type.args[6]
    lda = m if kernel.trans_a else k
    ldb = k if kernel.trans_b else n
    b.call(fn, [i32(ROW_MAJOR), i32(_trans(kernel.trans_a)), i32(_trans(kernel.trans_b)),
                iN(m), iN(n), iN(k), f(1.0), a, iN(lda), bm, iN(ldb), f(0.0), out, iN(n)])


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


def emit_product(b: ir.IRBuilder, kernel, a_ptr, b_ptr, out_ptr):
    """One BLAS call per batch entry (a loop over the batch): out = op(A) @ op(B) row-major,
    through ?gemm, ?gemv or ?dot (`product_routine`)."""
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
