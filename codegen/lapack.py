"""Native LAPACK for the decompositions of ir/decompositions.py: compiled code calls the
LAPACKE (and cblas trsm) routines of the OpenBLAS that numpy ships, as blas.py calls gemm.

Route: numpy's wheels ship `numpy.libs/libscipy_openblas64_-*.so`, which exports LAPACKE
with 64-bit integers (`scipy_LAPACKE_dgetrf64_`, ...) next to cblas
(`scipy_cblas_dtrsm64_`); the 32-bit-integer build (`libscipy_openblas-*`, symbols
without the suffix) is the fallback.  We load that file with ctypes (numpy has it mapped
already) and give the routines' addresses to the JIT as `tg_lapack_<routine>`
(extern.register_native's `symbols`).  Without either library no native lowering is
registered and every decomposition takes extern's host callback (numpy.linalg).

Why LAPACKE: its row-major interface (matrix_layout 101) takes our C-order buffers as
they are, does the workspace queries and allocations itself, and checks its inputs for
NaN (a NaN matrix gives info < 0 instead of an iteration that might not converge).
Integer arguments have the library's width (`LapackLib.int_bits`); the layout and the
cblas enums are C ints, `uplo`/`jobz` are chars.

Each lowering loops over the batch (the leading axes), copies its operand into the
output or a scratch block first (LAPACK works in place; operands are read-only), calls
the routine and checks `info`: a batch entry whose routine reports failure (singular
`inv`/`solve`, not positive definite `cholesky`, no convergence, NaN input, failed
allocation) is all NaN, exactly as the numpy references of ir/decompositions.py are.
`slogdet` of a singular matrix is (+0.0, -inf) and its sign counts negative pivots as
numpy's does (an inf entry's NaN pivot keeps it; a NaN entry: NaN), `triangular_solve` divides by a
zero pivot (inf/NaN) as trsm does.  Scratch memory comes from malloc (freed before
returning); if malloc fails every output is NaN.  Zero-size operands take the host
callback (`supports`).
"""
from __future__ import annotations

import ctypes
import functools
import glob
import math
import os
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from .blas import _numpy_libs_dirs
from .irutil import I64, PTR, Loop, declare, i64, libc_symbols

ROW_MAJOR = 101
LEFT, UPPER, LOWER, NO_TRANS, TRANS, NON_UNIT, UNIT = 141, 121, 122, 111, 112, 131, 132
LAPACKE = ("getrf", "gesv", "potrf", "syevd", "gesdd", "geqrf", "orgqr")
CBLAS = ("trsm",)
PREFIX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}
I8, I32 = ir.IntType(8), ir.IntType(32)


@dataclass(frozen=True)
class LapackLib:
    path: str
    int_bits: int  # width of LAPACKE's lapack_int and cblas's blasint
    addresses: dict  # "dgetrf", "strsm", ... -> address in this process

    def symbols(self) -> dict:
        return {f"tg_lapack_{name}": address for name, address in self.addresses.items()}


def _candidates():
    libs = _numpy_libs_dirs()
    yield libs, "libscipy_openblas64_*", "scipy_LAPACKE_{}64_", "scipy_cblas_{}64_", 64
    yield libs, "libscipy_openblas-*", "scipy_LAPACKE_{}", "scipy_cblas_{}", 32


def _open(path, lapacke, cblas, bits):
    names = {p + r: lapacke.format(p + r) for p in PREFIX.values() for r in LAPACKE}
    names.update({p + r: cblas.format(p + r) for p in PREFIX.values() for r in CBLAS})
    try:
        lib = ctypes.CDLL(path)
        found = {name: ctypes.cast(getattr(lib, sym), ctypes.c_void_p).value
                 for name, sym in names.items()}
    except (OSError, AttributeError):
        return None
    return LapackLib(path, bits, found)


@functools.lru_cache(maxsize=None)
def find_lapack() -> LapackLib | None:
    """numpy's OpenBLAS with LAPACKE (64-bit integers first), or None."""
    for dirs, pattern, lapacke, cblas, bits in _candidates():
        for d in dirs:
            for path in sorted(glob.glob(os.path.join(d, pattern))):
                found = _open(path, lapacke, cblas, bits)
                if found is not None:
                    return found
    return None


def describe() -> str:
    """What native linear-algebra code depends on (part of the disk-cache key): without
    LAPACK the kernels take the host callback, with it they call these symbols."""
    lib = find_lapack()
    if lib is None:
        return "none"
    return f"lapacke-int{lib.int_bits}-" + ",".join(LAPACKE + CBLAS)


# ---- emission helpers ---------------------------------------------------------------------------

class _Emit:
    """One kernel's emission: the builder, its float type and the library's int type."""

    def __init__(self, b, call, lib):
        self.b, self.call, self.kernel = b, call, call.kernel
        self.dtype = np.dtype(self.kernel.in_avals[0].dtype)
        self.ft = ir.FloatType() if self.dtype == np.float32 else ir.DoubleType()
        self.size = self.dtype.itemsize
        self.iN = ir.IntType(lib.int_bits)
        self.prefix = PREFIX[self.dtype]

    def n(self, v):
        return ir.Constant(self.iN, int(v))

    def lapacke(self, routine, *args):
        """Call LAPACKE_<prefix><routine>(ROW_MAJOR, args...): its info, as i64."""
        types = [I32] + [a.type for a in args]
        fn = declare(self.b.module, f"tg_lapack_{self.prefix}{routine}", self.iN, types)
        info = self.b.call(fn, [ir.Constant(I32, ROW_MAJOR)] + list(args))
        return self.b.sext(info, I64) if self.iN.width < 64 else info

    def at(self, ptr, offset):
        return self.b.gep(ptr, [offset if isinstance(offset, ir.Value) else i64(offset)],
                          inbounds=True, source_etype=self.ft)

    def copy(self, dst, src, count):
        fn = self.b.module.declare_intrinsic("llvm.memcpy", [PTR, PTR, I64])
        self.b.call(fn, [dst, src, i64(count * self.size), ir.Constant(ir.IntType(1), 0)])

    def zero(self, dst, count):
        fn = self.b.module.declare_intrinsic("llvm.memset", [PTR, I64])
        self.b.call(fn, [dst, ir.Constant(I8, 0), i64(count * self.size),
                         ir.Constant(ir.IntType(1), 0)])

    def fill_nan(self, dst, count):
        with Loop(self.b, i64(0), i64(count), "nan") as i:
            self.b.store(ir.Constant(self.ft, float("nan")), self.at(dst, i))

    def nan_if(self, failed, dst, count):
        """dst[:count] = NaN where the i1 `failed` holds."""
        with self.b.if_then(failed, likely=False):
            self.fill_nan(dst, count)

    def failed(self, *infos):
        b = self.b
        bad = [b.icmp_signed("!=", info, i64(0)) for info in infos]
        return functools.reduce(b.or_, bad)

    def char(self, c):
        return ir.Constant(I8, ord(c))


def _batch(kernel):
    return math.prod(kernel.in_avals[0].shape[:-2])


def _scratch(e, counts, body, out_counts):
    """Run `body(e, bases, k)` for each batch entry k with malloc'd scratch blocks of
    `counts` bytes; all outputs (`out_counts` elements each) are NaN if malloc fails."""
    b = e.b
    total = sum(counts)
    malloc = declare(b.module, "tg_sys_malloc", PTR, [I64])
    free = declare(b.module, "tg_sys_free", ir.VoidType(), [PTR])
    block = b.call(malloc, [i64(max(total, 1))])
    ok = b.icmp_unsigned("!=", block, ir.Constant(PTR, None))
    with b.if_else(ok, likely=True) as (then, otherwise):
        with then:
            bases, offset = [], 0
            for c in counts:
                bases.append(b.gep(block, [i64(offset)], inbounds=True, source_etype=I8))
                offset += c
            with Loop(b, i64(0), i64(_batch(e.kernel)), "batch") as k:
                body(e, bases, k)
            b.call(free, [block])
        with otherwise:
            for out, count in zip(e.call.outs, out_counts):
                e.fill_nan(out, count * _batch(e.kernel))


def _entry(e, ptr, k, count):
    """The k-th matrix (of `count` elements) of a batched buffer."""
    return e.at(ptr, e.b.mul(k, i64(count)))


def _int_bytes(e, count):
    return count * e.iN.width // 8


# ---- the lowerings ---------------------------------------------------------------------------------

def _cholesky(e):
    n = e.kernel.in_avals[0].shape[-1]

    def body(e, bases, k):
        a, out = _entry(e, e.call.ins[0], k, n * n), _entry(e, e.call.outs[0], k, n * n)
        e.copy(out, a, n * n)
        info = e.lapacke("potrf", e.char("L"), e.n(n), out, e.n(n))
        with Loop(e.b, i64(0), i64(n), "row") as i:  # potrf leaves the upper triangle as it was
            with Loop(e.b, e.b.add(i, i64(1)), i64(n), "col") as j:
                e.b.store(ir.Constant(e.ft, 0.0), e.at(out, e.b.add(e.b.mul(i, i64(n)), j)))
        e.nan_if(e.failed(info), out, n * n)
    _scratch(e, [], body, [n * n])


def _inv(e):
    """As numpy: solve a x = I (gesv), which keeps numpy's rounding and signed zeros."""
    n = e.kernel.in_avals[0].shape[-1]

    def body(e, bases, k):
        ipiv, lu = bases
        out = _entry(e, e.call.outs[0], k, n * n)
        e.copy(lu, _entry(e, e.call.ins[0], k, n * n), n * n)
        e.zero(out, n * n)
        with Loop(e.b, i64(0), i64(n), "diag") as i:
            e.b.store(ir.Constant(e.ft, 1.0), e.at(out, e.b.mul(i, i64(n + 1))))
        info = e.lapacke("gesv", e.n(n), e.n(n), lu, e.n(n), ipiv, out, e.n(n))
        e.nan_if(e.failed(info), out, n * n)
    _scratch(e, [_int_bytes(e, n), n * n * e.size], body, [n * n])


def _solve(e):
    n, nrhs = e.kernel.in_avals[1].shape[-2:]

    def body(e, bases, k):
        ipiv, lu = bases
        a, rhs = _entry(e, e.call.ins[0], k, n * n), _entry(e, e.call.ins[1], k, n * nrhs)
        out = _entry(e, e.call.outs[0], k, n * nrhs)
        e.copy(lu, a, n * n)
        e.copy(out, rhs, n * nrhs)
        info = e.lapacke("gesv", e.n(n), e.n(nrhs), lu, e.n(n), ipiv, out, e.n(nrhs))
        e.nan_if(e.failed(info), out, n * nrhs)
    _scratch(e, [_int_bytes(e, n), n * n * e.size], body, [n * nrhs])


def _slogdet(e):
    n = e.kernel.in_avals[0].shape[-1]
    b = e.b
    f64 = ir.DoubleType()
    log = declare(b.module, "tg_sys_log", f64, [f64])
    fabs = b.module.declare_intrinsic("llvm.fabs", [f64])
    with b.goto_block(b.function.entry_basic_block):
        sign_slot, log_slot = b.alloca(f64, name="sign"), b.alloca(f64, name="logdet")

    def body(e, bases, k):
        ipiv, lu = bases
        e.copy(lu, _entry(e, e.call.ins[0], k, n * n), n * n)
        info = e.lapacke("getrf", e.n(n), e.n(n), lu, e.n(n), ipiv)
        b.store(ir.Constant(f64, 1.0), sign_slot)
        b.store(ir.Constant(f64, 0.0), log_slot)
        with Loop(b, i64(0), i64(n), "pivot") as i:  # U's diagonal and the row swaps
            u = b.load(e.at(lu, b.mul(i, i64(n + 1))), typ=e.ft)
            u = b.fpext(u, f64) if e.ft != f64 else u
            swap = b.load(b.gep(ipiv, [i], inbounds=True, source_etype=e.iN), typ=e.iN)
            swapped = b.icmp_signed("!=", b.sext(swap, I64) if e.iN.width < 64 else swap,
                                    b.add(i, i64(1)))
            # numpy's: a negative pivot flips the sign (a NaN one does not), as a swap does
            sgn = b.select(b.fcmp_ordered("<", u, ir.Constant(f64, 0.0)),
                           ir.Constant(f64, -1.0), ir.Constant(f64, 1.0))
            sgn = b.select(swapped, b.fneg(sgn), sgn)
            b.store(b.fmul(b.load(sign_slot, typ=f64), sgn), sign_slot)
            b.store(b.fadd(b.load(log_slot, typ=f64), b.call(log, [b.call(fabs, [u])])),
                    log_slot)
        with b.if_then(b.icmp_signed(">", info, i64(0))):  # an exact zero pivot: numpy's (0, -inf)
            b.store(ir.Constant(f64, 0.0), sign_slot)
            b.store(ir.Constant(f64, -np.inf), log_slot)
        out = _entry(e, e.call.outs[0], k, 2)
        for j, slot in enumerate((sign_slot, log_slot)):
            v = b.load(slot, typ=f64)
            b.store(b.fptrunc(v, e.ft) if e.ft != f64 else v, e.at(out, j))
        # info > 0 is an exact zero pivot: (0, -inf) as numpy; info < 0 (NaN input): NaN
        e.nan_if(b.icmp_signed("<", info, i64(0)), out, 2)
    _scratch(e, [_int_bytes(e, n), n * n * e.size], body, [2])


def _eigh(e):
    n = e.kernel.in_avals[0].shape[-1]

    def body(e, bases, k):
        out = _entry(e, e.call.outs[0], k, (n + 1) * n)
        vectors = e.at(out, n)  # packed: row 0 the eigenvalues, rows 1.. the vectors
        e.copy(vectors, _entry(e, e.call.ins[0], k, n * n), n * n)
        info = e.lapacke("syevd", e.char("V"), e.char("L"), e.n(n), vectors, e.n(n), out)
        e.nan_if(e.failed(info), out, (n + 1) * n)
    _scratch(e, [], body, [(n + 1) * n])


def _eigvalsh(e):
    n = e.kernel.in_avals[0].shape[-1]

    def body(e, bases, k):
        tmp, = bases
        out = _entry(e, e.call.outs[0], k, n)
        e.copy(tmp, _entry(e, e.call.ins[0], k, n * n), n * n)
        info = e.lapacke("syevd", e.char("N"), e.char("L"), e.n(n), tmp, e.n(n), out)
        e.nan_if(e.failed(info), out, n)
    _scratch(e, [n * n * e.size], body, [n])


def _transpose_into(e, dst, ld_dst, src, ld_src, rows, cols):
    """dst[i, j] = src[j, i] for i < rows, j < cols (row strides ld_dst, ld_src)."""
    b = e.b
    with Loop(b, i64(0), i64(rows), "ti") as i:
        with Loop(b, i64(0), i64(cols), "tj") as j:
            v = b.load(e.at(src, b.add(b.mul(j, i64(ld_src)), i)), typ=e.ft)
            b.store(v, e.at(dst, b.add(b.mul(i, i64(ld_dst)), j)))


def _svd(e):
    m, n = e.kernel.in_avals[0].shape[-2:]
    full = e.kernel.params["full_matrices"]
    w, kv = (max(m, n), n) if full else (min(m, n), min(m, n))
    size = (1 + m + n) * w

    def body(e, bases, k):
        tmp, vt = bases
        out = _entry(e, e.call.outs[0], k, size)
        e.zero(out, size)
        e.copy(tmp, _entry(e, e.call.ins[0], k, m * n), m * n)
        # packed: row 0 the singular values, rows 1..m U (row stride w), rows 1+m.. V = Vt^T
        info = e.lapacke("gesdd", e.char("A" if full else "S"), e.n(m), e.n(n), tmp, e.n(n),
                         out, e.at(out, w), e.n(w), vt, e.n(n))
        _transpose_into(e, e.at(out, (1 + m) * w), w, vt, n, n, kv)
        e.nan_if(e.failed(info), out, size)
    _scratch(e, [m * n * e.size, kv * n * e.size], body, [size])


def _svdvals(e):
    m, n = e.kernel.in_avals[0].shape[-2:]
    kk = min(m, n)

    def body(e, bases, k):
        tmp, = bases
        out = _entry(e, e.call.outs[0], k, kk)
        e.copy(tmp, _entry(e, e.call.ins[0], k, m * n), m * n)
        info = e.lapacke("gesdd", e.char("N"), e.n(m), e.n(n), tmp, e.n(n), out, tmp, e.n(1),
                         tmp, e.n(1))
        e.nan_if(e.failed(info), out, kk)
    _scratch(e, [m * n * e.size], body, [kk])


def _qr(e):
    m, n = e.kernel.in_avals[0].shape[-2:]
    kk = min(m, n)
    kq = m if e.kernel.params["complete"] else kk
    size = (m + n) * kq
    b = e.b

    def body(e, bases, k):
        tmp, tau = bases
        out = _entry(e, e.call.outs[0], k, size)
        e.zero(out, size)
        e.copy(tmp, _entry(e, e.call.ins[0], k, m * n), m * n)
        info = e.lapacke("geqrf", e.n(m), e.n(n), tmp, e.n(n), tau)
        # packed: rows ..m Q (m x kq), rows m.. R^T (n x kq); R is geqrf's upper triangle
        with Loop(b, i64(0), i64(m), "qi") as i:
            with Loop(b, i64(0), i64(kk), "qj") as j:
                v = b.load(e.at(tmp, b.add(b.mul(i, i64(n)), j)), typ=e.ft)
                b.store(v, e.at(out, b.add(b.mul(i, i64(kq)), j)))
        rt = e.at(out, m * kq)
        with Loop(b, i64(0), i64(n), "rj") as j:
            with Loop(b, i64(0), b.add(b.select(b.icmp_signed("<", j, i64(kk)), j, i64(kk - 1)),
                                       i64(1)), "ri") as i:
                v = b.load(e.at(tmp, b.add(b.mul(i, i64(n)), j)), typ=e.ft)
                b.store(v, e.at(rt, b.add(b.mul(j, i64(kq)), i)))
        info2 = e.lapacke("orgqr", e.n(m), e.n(kq), e.n(kk), out, e.n(kq), tau)
        e.nan_if(e.failed(info, info2), out, size)
    _scratch(e, [m * n * e.size, kk * e.size], body, [size])


def _triangular_solve(e):
    n, nrhs = e.kernel.in_avals[1].shape[-2:]
    p = e.kernel.params
    b = e.b
    i32 = lambda v: ir.Constant(I32, v)  # noqa: E731
    fn = declare(b.module, f"tg_lapack_{e.prefix}trsm", ir.VoidType(),
                 [I32] * 5 + [e.iN, e.iN, e.ft, PTR, e.iN, PTR, e.iN])

    def body(e, bases, k):
        a, out = _entry(e, e.call.ins[0], k, n * n), _entry(e, e.call.outs[0], k, n * nrhs)
        e.copy(out, _entry(e, e.call.ins[1], k, n * nrhs), n * nrhs)
        b.call(fn, [i32(ROW_MAJOR), i32(LEFT), i32(LOWER if p["lower"] else UPPER),
                    i32(TRANS if p["transpose_a"] else NO_TRANS),
                    i32(UNIT if p["unit_diagonal"] else NON_UNIT), e.n(n), e.n(nrhs),
                    ir.Constant(e.ft, 1.0), a, e.n(n), out, e.n(nrhs)])
    _scratch(e, [], body, [n * nrhs])


def _pinv(e):
    """numpy's formula: V diag(1/s where s > rcond * max(s), else 0) U^T, from gesdd."""
    m, n = e.kernel.in_avals[0].shape[-2:]
    kk = min(m, n)
    rcond = float(e.kernel.params["rcond"])
    b = e.b
    with b.goto_block(b.function.entry_basic_block):
        acc = b.alloca(e.ft, name="acc")

    def body(e, bases, k):
        tmp, s, u, vt = bases
        out = _entry(e, e.call.outs[0], k, n * m)
        e.copy(tmp, _entry(e, e.call.ins[0], k, m * n), m * n)
        info = e.lapacke("gesdd", e.char("S"), e.n(m), e.n(n), tmp, e.n(n), s, u, e.n(kk),
                         vt, e.n(n))
        cutoff = b.fmul(ir.Constant(e.ft, rcond), b.load(s, typ=e.ft))  # s[0] is the largest
        with Loop(b, i64(0), i64(kk), "inv_s") as el:  # s[l] <- 1/s[l] or 0 (dropped)
            sl = b.load(e.at(s, el), typ=e.ft)
            kept = b.fcmp_ordered(">", sl, cutoff)
            b.store(b.select(kept, b.fdiv(ir.Constant(e.ft, 1.0), sl), ir.Constant(e.ft, 0.0)),
                    e.at(s, el))
        with Loop(b, i64(0), i64(n), "pi") as i:
            with Loop(b, i64(0), i64(m), "pj") as j:
                b.store(ir.Constant(e.ft, 0.0), acc)
                with Loop(b, i64(0), i64(kk), "pl") as el:
                    v = b.load(e.at(vt, b.add(b.mul(el, i64(n)), i)), typ=e.ft)
                    w = b.load(e.at(u, b.add(b.mul(j, i64(kk)), el)), typ=e.ft)
                    term = b.fmul(b.fmul(v, b.load(e.at(s, el), typ=e.ft)), w)
                    b.store(b.fadd(b.load(acc, typ=e.ft), term), acc)
                b.store(b.load(acc, typ=e.ft), e.at(out, b.add(b.mul(i, i64(m)), j)))
        e.nan_if(e.failed(info), out, n * m)
    sz = e.size
    _scratch(e, [m * n * sz, kk * sz, m * kk * sz, kk * n * sz], body, [n * m])


LOWERINGS = {"cholesky": _cholesky, "inv": _inv, "solve": _solve, "slogdet": _slogdet,
             "eigh": _eigh, "eigvalsh": _eigvalsh, "svd": _svd, "svdvals": _svdvals, "qr": _qr,
             "pinv": _pinv, "triangular_solve": _triangular_solve}


# numpy.linalg computes float32 matrices in float64 and rounds the results, and so do the
# eager references (ir/decompositions.py): compiled code takes the host callback for them
# too, so that eager and compiled agree (the float32 routines differed by float32
# roundings: an eigenvector gradient at a repeated eigenvalue was NaN compiled, finite
# eager).  Triangular solves are float32 trsm in both.
FLOAT32_NATIVE = frozenset({"triangular_solve"})


def lowerable(kernel) -> bool:
    """Whether this module can lower `kernel`: float32/64, no zero-size operand or result."""
    avals = list(kernel.in_avals) + list(kernel.out_avals)
    return (find_lapack() is not None and np.dtype(kernel.in_avals[0].dtype) in PREFIX
            and all(a.size > 0 for a in avals))


def supports(kernel) -> bool:
    """What programs lower natively: `lowerable` float64 (float32 only FLOAT32_NATIVE);
    the rest takes the host callback."""
    dtype = np.dtype(kernel.in_avals[0].dtype)
    return lowerable(kernel) and (dtype == np.float64 or kernel.prim in FLOAT32_NATIVE)


def emit(b, call) -> None:
    """extern.register_native's emit: the kernel's LAPACK calls over its batch."""
    LOWERINGS[call.kernel.prim](_Emit(b, call, find_lapack()))


def symbols() -> dict:
    lib = find_lapack()
    table = dict(libc_symbols(("malloc", "free", "log")))
    if lib is not None:
        table.update(lib.symbols())
    return table


def register(register_native) -> None:
    """Register every lowering with extern.register_native (when a LAPACK was found)."""
    if find_lapack() is None:
        return
    table = symbols()
    for prim in LOWERINGS:
        register_native(prim, emit, supports, table, blas_threads=True)


# ---- standalone use (tests, measurements): one kernel as a Python callable -----------------------

@dataclass
class _Kernel:
    prim: str
    params: dict
    in_avals: list
    out_avals: list


@dataclass
class _Call:
    kernel: _Kernel
    ins: list
    outs: list


def standalone(prim: str, in_avals, **params):
    """`f(*arrays) -> [results]` running this module's lowering of `prim` directly (no
    program around it): what the tests check against numpy and time."""
    from llvmlite import binding as llvm

    from tracegrad.ir import PRIMITIVES

    from . import llvm_util

    out_aval = PRIMITIVES[prim].shape_rule(*in_avals, **params)
    kernel = _Kernel(prim, params, list(in_avals), [out_aval])
    if not lowerable(kernel):
        raise ValueError(f"lapack: no native lowering of {prim} for {in_avals}")
    module = ir.Module(name=f"lapack_{prim}")
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR] * (len(in_avals) + 1)), "run")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    emit(b, _Call(kernel, list(fn.args[:-1]), [fn.args[-1]]))
    b.ret_void()
    for name, address in symbols().items():
        llvm.add_symbol(name, address)
    engine, _ = llvm_util.compile_ir(str(module))
    cfunc = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * (len(in_avals) + 1))(
        engine.get_function_address("run"))

    def run(*arrays):
        args = [np.ascontiguousarray(a, dtype=aval.dtype) for a, aval in zip(arrays, in_avals)]
        for a, aval in zip(args, in_avals):
            if a.shape != tuple(aval.shape):
                raise ValueError(f"lapack: operand of shape {a.shape}, compiled for {aval}")
        out = np.empty(out_aval.shape, out_aval.dtype)
        cfunc(*[a.ctypes.data for a in args], out.ctypes.data)
        return out
    run.engine = engine  # keeps the machine code alive
    return run


from . import extern  # noqa: E402  (extern imports this module at its end, as its extern_* ones)

register(extern.register_native)
