"""The native call path of eager elementwise kernels: one METH_FASTCALL builtin per operand
count, compiled once per process, driven by a per-kernel descriptor (as fastcall.py's
`tg_fastcall` is for programs, whose shapes are fixed; here the shape is the operands').

`tg_eager_call<k>(self, args, nargs)` with `self` the kernel's descriptor (an int64
ndarray, words below) checks each of the k operands by reading numpy's array struct
(exact type ndarray, the dtype singleton, C-contiguous and aligned; rank 0 where the
descriptor's scalar mask says so, else the rank and dimensions of the shape operand),
allocates the output with the shape operand's dimensions (`PyArray_NewFromDescr`), runs the
kernel through the threaded driver (eager.py), releasing the GIL from GIL_MIN elements,
and returns the output.  On any mismatch it touches nothing and returns `self`, the
sentinel: the caller falls back to numpy.  The struct offsets and the numpy entry point
are fastcall.py's, checked against a live array once (`fastcall.python_abi`).

Descriptor words::

    0 driver   1 kernel   2 &ndarray   3 &dtype   4 scalar mask (bit i: operand i is 0-d)
    5 shape operand       6 elements from which threads run   7 threads   8 GIL_MIN
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from . import fastcall
from .fastcall import _Api, _at, _field, _Indirect
from .irutil import I64, PTR, Loop, i64

W_DRIVER, W_KERNEL, W_NDARRAY, W_DTYPE, W_SCALARS, W_SHAPE, W_THREAD_MIN, W_THREADS, W_GIL = range(9)
GIL_MIN = 1 << 14  # elements: below this the GIL round trip costs more than it frees
CHUNK = 1024  # a thread gets at least this many elements (eager.CHUNK_ALIGN)
I32 = ir.IntType(32)


def descriptor(driver: int, kernel: int, dtype, pattern: str, thread_min: int,
               n_threads: int) -> np.ndarray:
    mask = sum(1 << i for i, c in enumerate(pattern) if c == "s")
    words = [driver, kernel, id(np.ndarray), id(fastcall._singleton(dtype)), mask,
             pattern.index("a"), thread_min, n_threads, GIL_MIN]
    return np.array(words, dtype=np.int64)


class CallEmitter:
    """Emits `ptr tg_eager_call<k>(ptr self, ptr args, i64 nargs)` for k operands."""

    def __init__(self, module, k: int):
        self.m, self.k, self.api = module, k, _Api(module)

    def emit(self) -> ir.Function:
        fn = self.fn = ir.Function(self.m, ir.FunctionType(PTR, [PTR, PTR, I64]),
                                   f"tg_eager_call{self.k}")
        self_, args, nargs = fn.args
        b = self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.mismatch = fn.append_basic_block("mismatch")
        self.desc = _field(b, self_, "data", PTR)
        self._check(b.icmp_signed("==", nargs, i64(self.k)))
        objs = [b.load(_at(b, args, i64(i), PTR), typ=PTR) for i in range(self.k)]
        for obj in objs:
            self._check_plain(obj)
        shape = self._shape_operand(objs)
        nd = b.sext(_field(b, shape, "nd", I32), I64)
        dims = _field(b, shape, "dims", PTR)
        for i, obj in enumerate(objs):
            self._check_shape(obj, i, nd, dims)
        n = self._count(nd, dims)
        out = self._allocate(nd, dims)
        self._run([_field(b, o, "data", PTR) for o in objs] + [_field(b, out, "data", PTR)], n)
        b.ret(out)
        b.position_at_end(self.mismatch)
        b.call(self.api.fn("Py_IncRef", ir.VoidType(), [PTR]), [self_])
        b.ret(self_)
        return fn

    def word(self, k: int):
        return self.b.load(_at(self.b, self.desc, i64(k)), typ=I64)

    def _check(self, cond):
        ok = self.fn.append_basic_block("ok")
        self.b.cbranch(cond, ok, self.mismatch)
        self.b.position_at_end(ok)

    def _check_plain(self, obj):
        """Exact ndarray of the descriptor's dtype, C-contiguous and aligned (each field is
        read only once the checks before it say it exists)."""
        b = self.b
        ndarray = b.inttoptr(self.word(W_NDARRAY), PTR)
        self._check(b.icmp_unsigned("==", _field(b, obj, "type", PTR), ndarray))
        dtype = b.inttoptr(self.word(W_DTYPE), PTR)
        self._check(b.icmp_unsigned("==", _field(b, obj, "descr", PTR), dtype))
        want = I32(fastcall.NPY_C_CONTIGUOUS | fastcall.NPY_ALIGNED)
        self._check(b.icmp_signed("==", b.and_(_field(b, obj, "flags", I32), want), want))

    def _shape_operand(self, objs):
        """The operand whose shape the output takes (descriptor word W_SHAPE)."""
        b, which = self.b, self.word(W_SHAPE)
        shape = objs[0]
        for i, obj in enumerate(objs[1:], 1):
            shape = b.select(b.icmp_signed("==", which, i64(i)), obj, shape)
        return shape

    def _check_shape(self, obj, i: int, nd, dims):
        """Operand i is 0-d if the scalar mask says so, else of the shape operand's shape."""
        b = self.b
        own_nd = b.sext(_field(b, obj, "nd", I32), I64)
        scalar = b.icmp_signed("!=", b.and_(self.word(W_SCALARS), i64(1 << i)), i64(0))
        self._check(b.select(scalar, b.icmp_signed("==", own_nd, i64(0)),
                             b.icmp_signed("==", own_nd, nd)))
        with b.if_then(b.not_(scalar)):
            own = _field(b, obj, "dims", PTR)
            with Loop(b, i64(0), nd, "dim") as d:
                same = b.icmp_signed("==", b.load(_at(b, own, d), typ=I64), b.load(_at(b, dims, d), typ=I64))
                self._check(same)

    def _count(self, nd, dims):
        b = self.b
        slot = b.alloca(I64, name="n")
        b.store(i64(1), slot)
        with Loop(b, i64(0), nd, "count") as d:
            b.store(b.mul(b.load(slot), b.load(_at(b, dims, d), typ=I64)), slot)
        return b.load(slot)

    def _allocate(self, nd, dims):
        b, api = self.b, self.api
        dtype = b.inttoptr(self.word(W_DTYPE), PTR)
        b.call(api.fn("Py_IncRef", ir.VoidType(), [PTR]), [dtype])  # NewFromDescr steals one
        new = api.fn("NewFromDescr", PTR, [PTR, PTR, I32, PTR, PTR, PTR, I32, PTR])
        null = ir.Constant(PTR, None)
        out = b.call(new, [b.inttoptr(self.word(W_NDARRAY), PTR), dtype, b.trunc(nd, I32), dims,
                           null, null, I32(0), null])
        with b.if_then(b.icmp_unsigned("==", out, null), likely=False):
            b.ret(null)  # numpy set MemoryError
        return out

    def _threads(self, n):
        """The driver's thread count: 1 below the descriptor's threshold, else at most one
        thread per CHUNK elements."""
        b = self.b
        most = b.sdiv(n, i64(CHUNK))
        want = self.word(W_THREADS)
        want = b.select(b.icmp_signed("<", most, want), most, want)
        want = b.select(b.icmp_signed("<", want, i64(1)), i64(1), want)
        return b.select(b.icmp_signed("<", n, self.word(W_THREAD_MIN)), i64(1), want)

    def _run(self, ptrs, n):
        b, api = self.b, self.api
        fnty = ir.FunctionType(ir.VoidType(), [PTR] * (len(ptrs) + 1) + [I64, I64, I64])
        driver = _Indirect(b.inttoptr(self.word(W_DRIVER), PTR), fnty)
        call_args = [b.inttoptr(self.word(W_KERNEL), PTR)] + ptrs + [n, self._threads(n), i64(0)]
        with b.if_else(b.icmp_signed(">=", n, self.word(W_GIL))) as (release, keep):
            with release:
                state = b.call(api.fn("PyEval_SaveThread", PTR, []), [])
                b.call(driver, call_args)
                b.call(api.fn("PyEval_RestoreThread", ir.VoidType(), [PTR]), [state])
            with keep:
                b.call(driver, call_args)


def emit_calls(module, counts=(1, 2)) -> None:
    for k in counts:
        CallEmitter(module, k).emit()
