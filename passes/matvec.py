"""Matrix-vector products as loop kernels: a reduction over the contracted dim.

A product with a narrow side (`m == 1` or `n == 1`: one operand is a vector) streams
its matrix once and does two flops per element read, so it is memory-bound whoever
computes it.  As a BLAS call it is opaque: the program must leave OpenBLAS's spinning
workers their cores (codegen/threads.py, `beside_blas`), so its other kernels run on
one thread, and row blocks (passes/rowblock.py) cannot run it with the elementwise
kernels that read the same rows.  As a `LoopKernel` it is one more kernel over the
matrix's rows: threads split it like any other, and a row block holds it.

Each product becomes a 2-d loop over the matrix as stored (dim 0 its rows, dim 1 its
contiguous columns), so the inner loop walks the matrix contiguously:
* the vector pairs with the matrix's columns (`M @ x`, M stored (r, c)): a sum over
  dim 1 per row, `out[i] = sum_p M[i, p] * x[p]`;
* the vector pairs with the matrix's rows (`M.T @ x`, `x @ M`): every row adds
  `x[i] * M[i, :]` into the whole output, a sum over dim 0.
Real matrix products (both sides wider than one) stay DotKernels (BLAS, blas.py).

Invariant: the rewritten program computes what the original did, up to the
reassociation of sums the kernel semantics allow.
"""
from __future__ import annotations

import numpy as np

from tracegrad.passes.kernels import DotKernel, IndexMap, KernelProgram, Load, LoopKernel, Op, Store

# Products over fewer matrix elements stay as they are (blas.prefers_inline makes the
# smallest loops anyway; between the two, a call is as cheap as a loop).
MIN_ELEMENTS = 1 << 12


def narrow(k) -> bool:
    """Whether `k` is a single matrix-vector (or vector-vector) product worth a loop."""
    return (isinstance(k, DotKernel) and k.batch == 1 and (k.m == 1 or k.n == 1)
            and k.k > 0 and k.m * k.n * k.k >= MIN_ELEMENTS)


def matvec_loops(kp: KernelProgram) -> KernelProgram:
    """`kp` with each narrow product (see `narrow`) as a LoopKernel; the same program
    object when there is none."""
    if not any(narrow(k) for k in kp.kernels):
        return kp
    kernels = [as_loop(k) if narrow(k) else k for k in kp.kernels]
    return KernelProgram(kp.inputs, kp.outputs, kp.consts, kp.temps, kernels)


def _matrix(k: DotKernel):
    """(matrix, vector, rows, cols, whether the vector pairs with the columns)."""
    if k.n == 1:  # out (m) = op(A) @ b
        rows, cols = (k.k, k.m) if k.trans_a else (k.m, k.k)
        return k.a, k.b, rows, cols, not k.trans_a
    rows, cols = (k.n, k.k) if k.trans_b else (k.k, k.n)  # out (n) = a @ op(B)
    return k.b, k.a, rows, cols, k.trans_b


def as_loop(k: DotKernel) -> LoopKernel:
    """One narrow product as a loop over its matrix as stored (module docstring)."""
    dt = np.dtype(k.out.dtype)
    if k.m == 1 and k.n == 1:  # a dot: one sum over k
        flat = IndexMap(0, (1,))
        body = [Load(k.a, flat, dt), Load(k.b, flat, dt), Op("mul", (0, 1), {}, dt)]
        return LoopKernel(k.name, (k.k,), body, [Store(k.out, 2, IndexMap(0, (0,)), "sum")])
    mat, vec, rows, cols, by_cols = _matrix(k)
    vec_index, out_index = ((0, 1), (1, 0)) if by_cols else ((1, 0), (0, 1))
    body = [Load(mat, IndexMap(0, (cols, 1)), dt), Load(vec, IndexMap(0, vec_index), dt),
            Op("mul", (0, 1), {}, dt)]
    return LoopKernel(k.name, (rows, cols), body, [Store(k.out, 2, IndexMap(0, out_index), "sum")])
