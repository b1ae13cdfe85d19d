"""Time mathlib's compiled loops against numpy's ufuncs (single thread, 4M elements).

    python benchmarks/bench_mathlib.py [--n 4194304] [--repeat 25] [--dtype f32|f64|all]

Each function is compiled into `void k(T* noalias x, T* noalias y, i64 n)` (y[i] = f(x[i]))
through codegen/llvm_util, at the vector width kernels get (`simd.pin_width`), and called
through ctypes; numpy runs `f(x, out=y)` into a preallocated array, so neither side
allocates. A plain copy loop gives the memory-bound floor. Reports the best of `--repeat`
calls in ms and in ns per element (timeit's estimator: on a shared machine the median
catches other processes' time slices); docs/mathlib.md records the figures. With `--n`
small enough for the caches (1M float32) the time is the functions' own compute cost.
"""
import argparse
import ctypes
import time

import numpy as np
from llvmlite import ir

from tracegrad.codegen import irutil, llvm_util, mathlib, simd

FUNCS = {"exp": (np.exp, (-80, 80)), "log": (np.log, (1e-3, 1e3)), "tanh": (np.tanh, (-5, 5)),
         "expm1": (np.expm1, (-5, 5)), "log1p": (np.log1p, (-0.5, 10)),
         "sin": (np.sin, (-100, 100)), "cos": (np.cos, (-100, 100))}
DTYPES = {"f32": (np.float32, ir.FloatType()), "f64": (np.float64, ir.DoubleType())}


def _pin(module, fname):
    """The loop's function at the width every kernel gets (simd.pin_width prints it as a
    string attribute, which only irutil.Function does)."""
    fn = module.get_global(fname)
    fn.__class__ = irutil.Function
    fn.string_attributes = {}
    simd.pin_width(fn)


def compile_all(tags):
    module = ir.Module(name="bench_mathlib")
    for tag in tags:
        ty = DTYPES[tag][1]
        llvm_util.loop_kernel(module, f"copy_{tag}", ty, 1, lambda b, v: v)
        _pin(module, f"copy_{tag}")
        for name in FUNCS:
            llvm_util.loop_kernel(module, f"{name}_{tag}", ty, 1,
                                  lambda b, v, name=name: mathlib.emit_unary(b, name, v))
            _pin(module, f"{name}_{tag}")
    engine, _ = llvm_util.compile_ir(str(module))
    sig = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
    kernels = {fname: sig(engine.get_function_address(fname))
               for fname in (f"{n}_{t}" for t in tags for n in ("copy", *FUNCS))}
    return engine, kernels


def best_ms(call, repeat):
    call()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4 * 1024 * 1024)
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--dtype", choices=["f32", "f64", "all"], default="f32")
    args = ap.parse_args()
    tags = list(DTYPES) if args.dtype == "all" else [args.dtype]
    engine, kernels = compile_all(tags)        # engine must outlive the kernels
    rng = np.random.default_rng(0)
    print(f"n = {args.n}, best of {args.repeat}, ms per call and ns per element "
          f"(lower is better), {llvm_util.vector_bits()}-bit vectors\n")
    print("| function | dtype | mathlib ms | ns/elem | numpy ms | ns/elem | numpy / mathlib |")
    print("|---|---|---|---|---|---|---|")
    for tag in tags:
        dt = DTYPES[tag][0]
        for name in ("copy", *FUNCS):
            np_fn, (lo, hi) = FUNCS.get(name, (np.copyto, (-1, 1)))
            x = rng.uniform(lo, hi, args.n).astype(dt)
            y = np.empty_like(x)
            k = kernels[f"{name}_{tag}"]
            ours = best_ms(lambda k=k, x=x, y=y: k(x.ctypes.data, y.ctypes.data, x.size), args.repeat)
            ref_call = ((lambda x=x, y=y: np.copyto(y, x)) if name == "copy"
                        else (lambda f=np_fn, x=x, y=y: f(x, out=y)))
            ref = best_ms(ref_call, args.repeat)
            per = 1e6 / args.n  # ms per call -> ns per element
            print(f"| {name} | {tag} | {ours:.2f} | {ours * per:.3f} | {ref:.2f} | {ref * per:.3f} "
                  f"| {ref / ours:.2f} |")
    del engine


if __name__ == "__main__":
    main()
