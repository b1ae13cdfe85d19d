"""Narrow products (matrix-vector, or a side of at most SMALL_N) as loop kernels.

A product with a narrow side (`min(m, n) <= SMALL_N`; `m == 1` or `n == 1` is a
matrix-vector product) streams its matrix once at a few flops per element read, so it
is memory-bound whoever computes it.  As a BLAS call it is opaque: row blocks
(passes/rowblock.py) cannot run it with the elementwise kernels that read the same rows,
so the matrix is read once per product.  As a `LoopKernel` it is one more kernel over
the matrix's rows: threads split it like any other, and a row block holds it.

Each product becomes a loop over its matrix as stored (dim 0 the matrix's rows), with
the narrow side's axis s (dropped when of size 1) placed so that the inner loop walks
memory contiguously:
* the other operand pairs with the matrix's columns (`M @ x`, M stored (r, c)): domain
  (r, s, c), a sum over the inner dim, `out[i, s] = sum_p M[i, p] * x[p, s]`;
* it pairs with the matrix's rows (`M.T @ g`, `x @ M`): every row adds
  `M[i, :] (x) g[i, :]` into the whole output, a sum over dim 0, the output's contiguous
  axis innermost.
Wider products stay DotKernels (BLAS, blas.py).

Invariant: the rewritten program computes what the original did, up to the
reassociation of sums the kernel semantics allow.
"""
from __future__ import annotations

import numpy as np

from tracegrad.passes.kernels import DotKernel, IndexMap, KernelProgram, Load, LoopKernel, Op, Store

# Products over fewer matrix elements stay as they are (blas.prefers_inline makes the
# smallest loops anyway; between the two, a call is as cheap as a loop).
MIN_ELEMENTS = 1 << 12
# The widest narrow side: up to here a product streams its matrix once at a few flops per
# element (memory-bound), and a loop beat OpenBLAS's gemm on (10000, 100) @ (100, 4).
SMALL_N = 4


def narrow(k) -> bool:
    """Whether `k` is a single product with a side of at most SMALL_N (a matrix-vector or
    vector-vector product among them) worth a loop."""
    return (isinstance(k, DotKernel) and k.batch == 1 and min(k.m, k.n) <= SMALL_N
            and k.k > 0 and k.m * k.n * k.k >= MIN_ELEMENTS)


def matvec_loops(kp: KernelProgram) -> KernelProgram:
    """`kp` with each narrow product (see `narrow`) as a LoopKernel; the same program
    object when there is none."""
    if not any(narrow(k) for k in kp.kernels):
        return kp
    kernels = [as_loop(k) if narrow(k) else k for k in kp.kernels]
    return KernelProgram(kp.inputs, kp.outputs, kp.consts, kp.temps, kernels)


def _operands(k: DotKernel):
    """(the matrix, its (row, column) axes as stored, the other operand, its axes, the
    narrow axis); axes i, j, p of `out[i, j] = sum_p op(A)[i, p] op(B)[p, j]`."""
    a_axes = ("p", "i") if k.trans_a else ("i", "p")
    b_axes = ("j", "p") if k.trans_b else ("p", "j")
    if k.n <= k.m:  # the output's columns are the narrow side
        return k.a, a_axes, k.b, b_axes, "j"
    return k.b, b_axes, k.a, a_axes, "i"


def as_loop(k: DotKernel) -> LoopKernel:
    """One narrow product as a loop over its matrix as stored (module docstring)."""
    dt = np.dtype(k.out.dtype)
    if k.m == 1 and k.n == 1:  # a dot: one sum over k
        flat = IndexMap(0, (1,))
        body = [Load(k.a, flat, dt), Load(k.b, flat, dt), Op("mul", (0, 1), {}, dt)]
        return LoopKernel(k.name, (k.k,), body, [Store(k.out, 2, IndexMap(0, (0,)), "sum")])
    sizes = {"i": k.m, "j": k.n, "p": k.k}
    mat, (r, c), other, other_axes, s = _operands(k)
    # innermost: the sum over the matrix's columns, else (its rows are p) the output's
    # contiguous axis j
    order = [r, s, c] if c == "p" else ["p", "i", "j"]
    if sizes[s] == 1:
        order.remove(s)

    def index(axes):
        """The index map over `order` of an operand stored row-major with dims `axes`."""
        strides = {axes[0]: sizes[axes[1]], axes[1]: 1}
        return IndexMap(0, tuple(strides.get(ax, 0) for ax in order))
    body = [Load(mat, index((r, c)), dt), Load(other, index(other_axes), dt),
            Op("mul", (0, 1), {}, dt)]
    domain = tuple(sizes[ax] for ax in order)
    return LoopKernel(k.name, domain, body, [Store(k.out, 2, index(("i", "j")), "sum")])
