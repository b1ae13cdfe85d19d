"""The fast call path: one native METH_FASTCALL function for every program.

`tg_fastcall(self, args, nargs)` is an ordinary CPython builtin function (made
with `PyCFunction_NewEx`), compiled once per process (`runtime.FAST_ENTRY`).  `self`
is the program's *descriptor*: a plain ndarray of int64 words that tells
the generic code what to check and what to run (layout below).  It checks
every argument against the compiled signature by reading numpy's public array
struct (exact type `ndarray`, the dtype singleton, rank, dimensions,
C-contiguous and aligned flags), allocates the outputs with numpy's
`PyArray_NewFromDescr`, calls the program's `tg_run` through the pointer in
the descriptor and returns a tuple.  On any mismatch it touches nothing and
returns `self`, the sentinel, so that Python falls back to the checking path
(which accepts subclasses and equal-but-distinct dtype objects, or raises
SignatureMismatch).  Its cost per call, against ctypes, is in docs/codegen.md.

A per-program builtin, specialized to its signature, cost most of a small
program's code generation time to save a few percent of a call; the descriptor
is built in Python in microseconds.

Process-specific addresses are never constants in code: the C functions are
external symbols named `tg_py_*` that `python_abi().symbols` binds before
linking, and the ndarray type, dtype singletons and `tg_run` address are data
in the descriptor, written at load time.  The struct offsets used are checked
against a live array once (`python_abi()`); if any check fails there is no
fast path and every call takes the ctypes path.

Descriptor (int64 words)::

    0 tg_run   1 n_in   2 n_out   3 n_slots   4 release_gil   5 &ndarray
    6 in_at    7 out_at 8 slot_at
    in_at  + 3i: &dtype_i, ndim_i, dims_at_i    (input i;  dims at word dims_at_i)
    out_at + 3j: &dtype_j, ndim_j, dims_at_j    (output buffer j)
    slot_at + 2p: buffer j of result p, 1 if an earlier result is that buffer too
"""
from __future__ import annotations

import ctypes
import functools
import sys
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from .irutil import Loop

I8, I32, I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType()
METH_FASTCALL = 0x80
# numpy's PyArrayObject_fields on a 64-bit CPython (PyObject_HEAD is 16 bytes)
OFFSETS = {"type": 8, "data": 16, "nd": 24, "dims": 32, "descr": 56, "flags": 64}
NPY_C_CONTIGUOUS, NPY_ALIGNED = 0x1, 0x100
NEW_FROM_DESCR_SLOT, ARRAY_TYPE_SLOT = 94, 2  # numpy C-API table indices (stable ABI)
GIL_RELEASE_WORK = 1 << 16  # elements (or flops/16): below this the GIL round trip costs more
DTYPE_NAMES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", np.dtype(np.bool_): "bool",
               np.dtype(np.int32): "i32", np.dtype(np.int64): "i64"}
_PY_FUNCTIONS = ("Py_IncRef", "Py_DecRef", "PyTuple_New", "PyTuple_SetItem",
                 "PyEval_SaveThread", "PyEval_RestoreThread")


@dataclass(frozen=True)
class PyABI:
    symbols: dict  # tg_py_* name -> address in this process


def _address(fn) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value


def _array_api_table() -> int:
    try:
        from numpy._core import _multiarray_umath as mu
    except ImportError:  # numpy 1.x
        from numpy.core import _multiarray_umath as mu
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
    get_ptr.restype, get_ptr.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    capsule = mu._ARRAY_API
    return get_ptr(capsule, get_name(capsule))


def _read(addr, ctype):
    return ctype.from_address(addr).value


def _layout_holds() -> bool:
    """The struct offsets above describe this process's arrays."""
    if sys.maxsize <= 2 ** 32:
        return False
    a = np.empty((3, 5), np.float64)
    base = id(a)
    dims = _read(base + OFFSETS["dims"], ctypes.c_void_p)
    return (_read(base + OFFSETS["type"], ctypes.c_void_p) == id(np.ndarray)
            and _read(base + OFFSETS["data"], ctypes.c_void_p) == a.ctypes.data
            and _read(base + OFFSETS["nd"], ctypes.c_int) == 2
            and (ctypes.c_int64 * 2).from_address(dims)[:] == [3, 5]
            and _read(base + OFFSETS["descr"], ctypes.c_void_p) == id(a.dtype)
            and _read(base + OFFSETS["flags"], ctypes.c_int) == a.flags.num)


def _new_from_descr_works(new_from_descr: int) -> bool:
    proto = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                             ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                             ctypes.c_void_p)
    descr = np.dtype(np.float32)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(descr))  # the call steals one reference
    dims = (ctypes.c_int64 * 2)(2, 3)
    out = proto(new_from_descr)(id(np.ndarray), id(descr), 2, ctypes.addressof(dims), None, None, 0, None)
    return type(out) is np.ndarray and out.shape == (2, 3) and out.dtype == np.float32


def _singletons_hold() -> bool:
    return all(np.empty(1, dt).dtype is dt for dt in DTYPE_NAMES)


@functools.lru_cache(maxsize=None)
def python_abi() -> PyABI | None:
    """Addresses for the tg_py_* symbols, or None if this process's ABI is not the one we emit for."""
    try:
        table = ctypes.cast(_array_api_table(), ctypes.POINTER(ctypes.c_void_p))
        if table[ARRAY_TYPE_SLOT] != id(np.ndarray) or not _layout_holds() or not _singletons_hold():
            return None
        if not _new_from_descr_works(table[NEW_FROM_DESCR_SLOT]):
            return None
    except (AttributeError, ImportError, OSError, ValueError, TypeError):
        return None
    symbols = {f"tg_py_{name}": _address(getattr(ctypes.pythonapi, name)) for name in _PY_FUNCTIONS}
    symbols["tg_py_NewFromDescr"] = table[NEW_FROM_DESCR_SLOT]
    return PyABI(symbols)


def make_builtin(address: int, sentinel, owner, name: bytes = b"tracegrad_program"):
    """(builtin, method_def): a Python builtin calling the native `tg_fastcall` at `address`
    with the descriptor `sentinel` as its self and `owner` as its module object (the
    builtin holds both: `owner` keeps the code alive).  `owner` must keep `method_def`."""

    class MethodDef(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("meth", ctypes.c_void_p),
                    ("flags", ctypes.c_int), ("doc", ctypes.c_char_p)]

    method_def = MethodDef(name, address, METH_FASTCALL, None)
    new = ctypes.pythonapi.PyCFunction_NewEx
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]
    return new(ctypes.addressof(method_def), sentinel, owner), method_def


# ---- the descriptor ------------------------------------------------------------

# header word positions (module docstring)
W_RUN, W_N_IN, W_N_OUT, W_N_SLOTS, W_RELEASE_GIL, W_NDARRAY, W_IN_AT, W_OUT_AT, W_SLOT_AT = range(9)
HEADER_WORDS = 9


def descriptor_words(run_address: int, inputs, out_buffers, out_slots, release_gil: bool):
    """The int64 words of a program's descriptor (layout in the module docstring)."""
    n_in, n_out = len(inputs), len(out_buffers)
    in_at, out_at = HEADER_WORDS, HEADER_WORDS + 3 * n_in
    slot_at = out_at + 3 * n_out
    words = [run_address, n_in, n_out, len(out_slots), int(release_gil), id(np.ndarray),
             in_at, out_at, slot_at]  # in W_* order
    dims_at = slot_at + 2 * len(out_slots)
    specs, dims = [], []
    for buf in list(inputs) + list(out_buffers):
        specs += [id(_singleton(buf.dtype)), len(buf.shape), dims_at + len(dims)]
        dims += [int(n) for n in buf.shape]
    slots = []
    for pos, slot in enumerate(out_slots):
        slots += [slot, int(slot in out_slots[:pos])]
    return words + specs + slots + dims


def _singleton(dtype) -> np.dtype:
    """numpy's builtin descr object for dtype (the one arrays of it point to)."""
    return next(d for d in DTYPE_NAMES if d == np.dtype(dtype))


# ---- code: tg_fastcall ------------------------------------------------------------

class _Api:
    """Declarations of the tg_py_* functions in one module."""

    def __init__(self, module):
        self.m = module

    def fn(self, name, ret, args):
        full = f"tg_py_{name}"
        if full in self.m.globals:
            return self.m.globals[full]
        return ir.Function(self.m, ir.FunctionType(ret, args), full)


def _field(b, obj, name, ty):
    return b.load(b.gep(obj, [I64(OFFSETS[name])], source_etype=I8), typ=ty)


def _at(b, base, index, ty=I64):
    """base[index] for a pointer to ty."""
    return b.gep(base, [index], source_etype=ty)


class _Indirect:
    """A callee for `IRBuilder.call` through a pointer value: llvmlite's call needs the
    function type, which an opaque pointer does not carry (`call void %p(...)`)."""

    def __init__(self, pointer, fnty):
        self.pointer, self.function_type, self.type = pointer, fnty, pointer.type

    def get_reference(self):
        return self.pointer.get_reference()


class FastEmitter:
    """Emits `ptr tg_fastcall(ptr self, ptr args, i64 nargs)`, driven by self's descriptor."""

    def __init__(self, module):
        self.m, self.api = module, _Api(module)

    def emit(self):
        fn = ir.Function(self.m, ir.FunctionType(PTR, [PTR, PTR, I64]), "tg_fastcall")
        self.fn = fn
        self_, args, nargs = fn.args
        b = self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.mismatch = fn.append_basic_block("mismatch")
        self.desc = _field(b, self_, "data", PTR)
        n_in, n_out = self.word(W_N_IN), self.word(W_N_OUT)
        self.ins = b.alloca(PTR, size=n_in, name="ins")
        self.outs = b.alloca(PTR, size=n_out, name="outs")
        self.objs = b.alloca(PTR, size=n_out, name="objs")
        self._check(b.icmp_signed("==", nargs, n_in))
        with Loop(b, I64(0), n_in, "arg") as i:
            self._check_array(b.load(_at(b, args, i, PTR), typ=PTR), self.spec(W_IN_AT, i), i)
        self._allocate_outputs(n_out)
        self._run()
        b.ret(self._result_tuple(n_out))
        b.position_at_end(self.mismatch)
        b.call(self.api.fn("Py_IncRef", ir.VoidType(), [PTR]), [self_])
        b.ret(self_)
        return fn

    def word(self, k):
        """Descriptor word k (an int or an i64 value)."""
        index = I64(k) if isinstance(k, int) else k
        return self.b.load(_at(self.b, self.desc, index), typ=I64)

    def spec(self, table_word: int, i):
        """Pointer to entry i (3 words) of the input (W_IN_AT) or output (W_OUT_AT) table."""
        b = self.b
        return _at(b, self.desc, b.add(self.word(table_word), b.mul(i, I64(3))))

    def _address(self, word_value):
        return self.b.inttoptr(word_value, PTR)  # an address stored as data, not arithmetic

    def _check(self, cond):
        ok = self.fn.append_basic_block("ok")
        self.b.cbranch(cond, ok, self.mismatch)
        self.b.position_at_end(ok)

    def _check_array(self, obj, spec, i):
        """Reads a field only once the previous checks guarantee it exists."""
        b = self.b
        ndarray = self._address(self.word(W_NDARRAY))
        self._check(b.icmp_unsigned("==", _field(b, obj, "type", PTR), ndarray))
        descr = self._address(b.load(spec, typ=I64))
        self._check(b.icmp_unsigned("==", _field(b, obj, "descr", PTR), descr))
        nd = b.load(_at(b, spec, I64(1)), typ=I64)
        self._check(b.icmp_signed("==", b.sext(_field(b, obj, "nd", I32), I64), nd))
        want = NPY_C_CONTIGUOUS | NPY_ALIGNED
        self._check(b.icmp_signed("==", b.and_(_field(b, obj, "flags", I32), I32(want)), I32(want)))
        dims, expected = _field(b, obj, "dims", PTR), self._dims(spec)
        with Loop(b, I64(0), nd, "dim") as d:
            got = b.load(_at(b, dims, d), typ=I64)
            self._check(b.icmp_signed("==", got, b.load(_at(b, expected, d), typ=I64)))
        b.store(_field(b, obj, "data", PTR), _at(b, self.ins, i, PTR))

    def _dims(self, spec):
        return _at(self.b, self.desc, self.b.load(_at(self.b, spec, I64(2)), typ=I64))

    def _allocate_outputs(self, n_out):
        b, api = self.b, self.api
        incref = api.fn("Py_IncRef", ir.VoidType(), [PTR])
        new = api.fn("NewFromDescr", PTR, [PTR, PTR, I32, PTR, PTR, PTR, I32, PTR])
        null = ir.Constant(PTR, None)
        with Loop(b, I64(0), n_out, "out") as j:
            spec = self.spec(W_OUT_AT, j)
            descr = self._address(b.load(spec, typ=I64))
            b.call(incref, [descr])  # PyArray_NewFromDescr steals a reference
            nd = b.trunc(b.load(_at(b, spec, I64(1)), typ=I64), I32)
            ndarray = self._address(self.word(W_NDARRAY))
            arr = b.call(new, [ndarray, descr, nd, self._dims(spec), null, null, I32(0), null])
            with b.if_then(b.icmp_unsigned("==", arr, null), likely=False):
                self._release(j)
                b.ret(null)  # numpy set MemoryError
            b.store(arr, _at(b, self.objs, j, PTR))
            b.store(_field(b, arr, "data", PTR), _at(b, self.outs, j, PTR))

    def _release(self, count):
        b = self.b
        decref = self.api.fn("Py_DecRef", ir.VoidType(), [PTR])
        with Loop(b, I64(0), count, "release") as k:
            b.call(decref, [b.load(_at(b, self.objs, k, PTR), typ=PTR)])

    def _run(self):
        b, api = self.b, self.api
        run = self._address(self.word(W_RUN))
        fnty = ir.FunctionType(ir.VoidType(), [PTR, PTR])
        callee = _Indirect(run, fnty)
        with b.if_else(b.icmp_signed("!=", self.word(W_RELEASE_GIL), I64(0))) as (release, keep):
            with release:
                state = b.call(api.fn("PyEval_SaveThread", PTR, []), [])
                b.call(callee, [self.ins, self.outs])
                b.call(api.fn("PyEval_RestoreThread", ir.VoidType(), [PTR]), [state])
            with keep:
                b.call(callee, [self.ins, self.outs])

    def _result_tuple(self, n_out):
        b, api = self.b, self.api
        n_slots = self.word(W_N_SLOTS)
        tup = b.call(api.fn("PyTuple_New", PTR, [I64]), [n_slots])
        null = ir.Constant(PTR, None)
        with b.if_then(b.icmp_unsigned("==", tup, null), likely=False):
            self._release(n_out)
            b.ret(null)
        set_item = api.fn("PyTuple_SetItem", I32, [PTR, I64, PTR])
        incref = api.fn("Py_IncRef", ir.VoidType(), [PTR])
        slot_at = self.word(W_SLOT_AT)
        with Loop(b, I64(0), n_slots, "result") as pos:
            entry = b.add(slot_at, b.mul(pos, I64(2)))
            obj = b.load(_at(b, self.objs, self.word(entry), PTR), typ=PTR)
            dup = self.word(b.add(entry, I64(1)))
            with b.if_then(b.icmp_signed("!=", dup, I64(0))):  # SetItem steals one reference
                b.call(incref, [obj])
            b.call(set_item, [tup, pos, obj])
        return tup


def emit_fastcall(module):
    return FastEmitter(module).emit()

