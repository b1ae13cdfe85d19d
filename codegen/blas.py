"""Matrix products: a direct call from generated code into an optimized BLAS.

Route: numpy's wheels ship OpenBLAS as `numpy.libs/libscipy_openblas64_-*.so`
(cblas with 64-bit integers, symbols `scipy_cblas_{s,d}gemm64_`).  We load
that very file with ctypes (numpy already has it mapped, so nothing new is
loaded), and give the addresses of its gemm functions to the JIT under our
own names (`tg_sgemm`, `tg_dgemm`) with `llvm.add_symbol`; the entry function
calls them directly, inside the single native call.  Fallbacks, in order:
numpy's 32-bit-integer build (`libscipy_openblas-*`), the `scipy_openblas32`
wheel if installed, and otherwise every product is generated inline as a
loop nest (with a warning: correct, but far from BLAS speed on big inputs).
OpenBLAS reads its own environment (e.g. OPENBLAS_CORETYPE, thread count);
we never set or unset it.
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

from tracegrad.passes.kernels import IndexMap, Load, LoopKernel, Op, Store

INLINE_FLOPS = 32768  # batch*m*n*k below this: an inline loop beats the call's fixed cost
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
GEMM_SYMBOLS = {np.dtype(np.float32): "tg_sgemm", np.dtype(np.float64): "tg_dgemm"}


@dataclass(frozen=True)
class BlasLib:
    path: str
    int_bits: int  # width of the integer arguments (M, N, K, lda, ...)
    sgemm: int  # function addresses in this process
    dgemm: int

    def describe(self) -> str:
        """What the generated code depends on (part of the disk-cache key)."""
        return f"cblas-int{self.int_bits}"


def _numpy_libs_dirs():
    base = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    return [os.path.join(base, "numpy.libs"), os.path.join(os.path.dirname(np.__file__), ".dylibs")]


def _scipy_openblas32_dirs():
    try:
        import scipy_openblas32  # optional wheel
    except ImportError:
        return []
    return [scipy_openblas32.get_lib_dir()]


# (directories, file pattern, symbol pattern for s/d, integer width)
def _candidates():
    libs = _numpy_libs_dirs()
    yield libs, "libscipy_openblas64_*", "scipy_cblas_{}gemm64_", 64
    yield libs, "libscipy_openblas-*", "scipy_cblas_{}gemm", 32
    yield _scipy_openblas32_dirs(), "libscipy_openblas*", "scipy_cblas_{}gemm", 32


def _open(path, symbol_pattern, int_bits):
    try:
        lib = ctypes.CDLL(path)
        sgemm = getattr(lib, symbol_pattern.format("s"))
        dgemm = getattr(lib, symbol_pattern.format("d"))
    except (OSError, AttributeError):
        return None
    addr = lambda f: ctypes.cast(f, ctypes.c_void_p).value  # noqa: E731
    return BlasLib(path, int_bits, addr(sgemm), addr(dgemm))


@functools.lru_cache(maxsize=None)
def find_blas() -> BlasLib | None:
    """The first usable BLAS of the candidates above, or None (then products are inline)."""
    for dirs, file_pattern, symbol_pattern, bits in _candidates():
        for d in dirs:
            for path in sorted(glob.glob(os.path.join(d, file_pattern))):
                found = _open(path, symbol_pattern, bits)
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
    return {"tg_sgemm": lib.sgemm, "tg_dgemm": lib.dgemm}


def describe() -> str:
    lib = find_blas()
    return "inline" if lib is None else lib.describe()


def prefers_inline(kernel) -> bool:
    """Small or degenerate products (and every product without a BLAS) become loops."""
    flops = kernel.batch * kernel.m * kernel.n * kernel.k
    return flops < INLINE_FLOPS or 0 in (kernel.m, kernel.n, kernel.k) or find_blas() is None


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

def _gemm_decl(module, dtype, int_bits):
    name = GEMM_SYMBOLS[np.dtype(dtype)]
    if name in module.globals:
        return module.globals[name]
    i32, iN = ir.IntType(32), ir.IntType(int_bits)
    f = ir.FloatType() if np.dtype(dtype) == np.float32 else ir.DoubleType()
    p = ir.PointerType()
    # cblas_?gemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
    fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, iN, iN, iN, f, p, iN, p, iN, f, p, iN])
    return ir.Function(module, fnty, name)


def emit_gemm(b: ir.IRBuilder, kernel, a_ptr, b_ptr, out_ptr):
    """One cblas gemm call per batch entry (a loop over the batch), C = op(A) @ op(B) row-major."""
    lib = find_blas()
    m, n, k = kernel.m, kernel.n, kernel.k
    fn = _gemm_decl(b.module, kernel.out.dtype, lib.int_bits)
    iN, i32, i64 = ir.IntType(lib.int_bits), ir.IntType(32), ir.IntType(64)
    f = fn.function_type.args[6]
    lda = m if kernel.trans_a else k
    ldb = k if kernel.trans_b else n
    flags = [i32(ROW_MAJOR), i32(TRANS if kernel.trans_a else NO_TRANS),
             i32(TRANS if kernel.trans_b else NO_TRANS)]
    pre = b.block
    body = b.function.append_basic_block(f"{kernel.name}.batch")
    done = b.function.append_basic_block(f"{kernel.name}.done")
    b.branch(body)
    b.position_at_end(body)
    bi = b.phi(i64)
    bi.add_incoming(i64(0), pre)

    def at(ptr, size):
        return b.gep(ptr, [b.mul(bi, i64(size))], inbounds=True, source_etype=f)

    b.call(fn, flags + [iN(m), iN(n), iN(k), f(1.0), at(a_ptr, m * k), iN(lda),
                        at(b_ptr, k * n), iN(ldb), f(0.0), at(out_ptr, m * n), iN(n)])
    nxt = b.add(bi, i64(1))
    bi.add_incoming(nxt, b.block)
    b.cbranch(b.icmp_signed("<", nxt, i64(kernel.batch)), body, done)
    b.position_at_end(done)
