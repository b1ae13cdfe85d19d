"""numpy's own inner loop of a ufunc as an eager kernel, so that it runs on the worker pool.

Where numpy's loop beats mathlib's on one core (float32 tanh: numpy's SIMD loop, docs/eager.md)
the eager kernel for large arrays can still split it over the cores: a *trampoline* with
the eager kernel's signature, `void k(ptr x, ptr out, i64 lo, i64 hi)`, calls the loop on
elements lo..hi-1 (`loop(args, dimensions, steps, data)`, numpy's PyUFuncGenericFunction)
and the driver hands its slices to the pool as for any kernel.  The loop computes each
element by itself, so the result is numpy's bit for bit whatever the slices; it needs no
GIL (numeric dtypes), and the floating-point flags it raises stay in the thread that ran it
(the impl runs with numpy's warnings off anyway).

The loop's address comes from the ufunc object (numpy's public `PyUFuncObject` struct:
`functions`, `data`, `ntypes`, `types`), checked against the ufunc's Python attributes
(`nin`, `nout`, `ntypes`, `__name__`); the trampoline reads it from two globals set after
loading, so its code is the same in every process (disk-cached like the kernels).
"""
from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir

from .fastcall import _Indirect as Indirect
from .irutil import I64, PTR, i64

I32, I8 = ir.IntType(32), ir.IntType(8)
# PyUFuncObject (numpy/ufuncobject.h) after PyObject_HEAD: nin, nout, nargs, identity (int),
# functions, data (pointers), ntypes (int), reserved1, name, types
OFFSETS = {"nin": 16, "nout": 20, "nargs": 24, "functions": 32, "data": 40, "ntypes": 48,
           "name": 56, "types": 64}
LOOP_TYPE = ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR, PTR])


def _read(obj, field, ctype):
    return ctype.from_address(id(obj) + OFFSETS[field]).value


def loop_of(ufunc, dtype) -> tuple | None:
    """(loop, data) addresses of a unary ufunc's first loop for `dtype` -> `dtype`, or None
    where the struct does not read as this ufunc (another numpy layout)."""
    dtype = np.dtype(dtype)
    if type(ufunc) is not np.ufunc or ufunc.nin != 1 or ufunc.nout != 1:
        return None
    if (_read(ufunc, "nin", ctypes.c_int), _read(ufunc, "nout", ctypes.c_int),
            _read(ufunc, "nargs", ctypes.c_int), _read(ufunc, "ntypes", ctypes.c_int)) != (1, 1, 2, ufunc.ntypes):
        return None
    if ctypes.string_at(_read(ufunc, "name", ctypes.c_void_p)) != ufunc.__name__.encode():
        return None
    types = ctypes.string_at(_read(ufunc, "types", ctypes.c_void_p), 2 * ufunc.ntypes)
    for i in range(ufunc.ntypes):
        if types[2 * i] == types[2 * i + 1] == dtype.num:
            functions, data = _read(ufunc, "functions", ctypes.c_void_p), _read(ufunc, "data", ctypes.c_void_p)
            loop = ctypes.c_void_p.from_address(functions + 8 * i).value
            extra = ctypes.c_void_p.from_address(data + 8 * i).value if data else None
            return (loop, extra) if loop else None
    return None


def symbol(name: str, dtype) -> str:
    return f"tg_eager_uloop_{name}_{np.dtype(dtype).name}"


def emit_trampoline(module, name: str, dtype) -> ir.Function:
    """`void <symbol>(ptr x, ptr out, i64 lo, i64 hi)`: numpy's loop on elements lo..hi-1,
    its address and data from the globals <symbol>_loop and <symbol>_data."""
    size = np.dtype(dtype).itemsize
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I64]), symbol(name, dtype))
    x, out, lo, hi = fn.args
    words = {}
    for k in ("loop", "data"):
        g = ir.GlobalVariable(module, PTR, f"{fn.name}_{k}")
        g.initializer = ir.Constant(PTR, None)
        words[k] = g
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with b.if_then(b.icmp_signed("<=", hi, lo), likely=False):
        b.ret_void()
    args, dims, steps = b.alloca(PTR, size=i64(2)), b.alloca(I64), b.alloca(I64, size=i64(2))
    start = b.mul(lo, i64(size))
    for j, base in enumerate((x, out)):
        b.store(b.gep(base, [start], source_etype=I8), b.gep(args, [i64(j)], source_etype=PTR))
        b.store(i64(size), b.gep(steps, [i64(j)], source_etype=I64))
    b.store(b.sub(hi, lo), dims)
    loop, data = (b.load(words[k], typ=PTR) for k in ("loop", "data"))
    b.call(Indirect(loop, LOOP_TYPE), [args, dims, steps, data])
    b.ret_void()
    return fn


def load(compile_module, name: str, ufunc, dtype) -> int:
    """The address of the trampoline of `ufunc`'s loop for dtype (`compile_module(module)`
    gives an engine, eager.Kernels._compile); raises where numpy's loop cannot be found."""
    found = loop_of(ufunc, dtype)
    if found is None:
        raise RuntimeError(f"numpy's {ufunc.__name__} loop for {np.dtype(dtype)} not found")
    module = ir.Module(name=symbol(name, dtype))
    emit_trampoline(module, name, dtype)
    engine = compile_module(module)
    sym = symbol(name, dtype)
    for k, value in zip(("loop", "data"), found):
        ctypes.c_void_p.from_address(engine.get_global_value_address(f"{sym}_{k}")).value = value
    return engine.get_function_address(sym)
