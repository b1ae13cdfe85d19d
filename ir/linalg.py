"""`dot`: batched matrix product (..., m, k) @ (..., k, n) with equal batch dims."""
from __future__ import annotations

import numpy as np

from . import ops
from .core import ShapedArray, is_float
from .primitives import Primitive, binder, fail, register

__all__ = ["dot"]


def _dot_rule(x, y):
    if x.ndim < 2 or x.ndim != y.ndim or x.shape[:-2] != y.shape[:-2] or x.shape[-1] != y.shape[-2]:
        fail("dot", "needs (..., m, k) @ (..., k, n) with equal batch dims", x, y)
    if not is_float(x.dtype):
        fail("dot", "needs float operands", x, y)
    if x.dtype != y.dtype:
        fail("dot", "operand dtypes differ", x, y)
    return ShapedArray(x.shape[:-1] + y.shape[-1:], x.dtype)


def _swap_last(x):
    n = len(ops.shape(x))
    return ops.transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


def _dot_vjp(g, out, x, y, needed=(True, True)):
    return (dot(g, _swap_last(y)) if needed[0] else None,
            dot(_swap_last(x), g) if needed[1] else None)


def _dot_jvp(tangents, out, x, y):
    tx, ty = tangents
    terms = []
    if tx is not None:
        terms.append(dot(tx, y))
    if ty is not None:
        terms.append(dot(x, ty))
    return terms[0] if len(terms) == 1 else (ops.add(*terms) if terms else None)


def _torch_name(ndim, params):
    return "BmmBackward0" if ndim > 2 else None


def _dot_impl(x, y):
    """matmul; a contraction of length 1 (an outer product, A @ v's gradient of A) as a
    broadcast product: the same bits (one product per element), where BLAS's k=1 gemm
    took twice numpy's multiply."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim >= 2 and y.ndim >= 2 and x.shape[-1] == 1 and x.dtype == y.dtype:
        out = np.asarray(np.multiply(x, y))
        if out.dtype.kind == "f":  # a sum starts at +0.0: -0.0 * 1.0 gives +0.0, as BLAS
            np.add(out, 0.0, out=out)
        return out
    return np.asarray(np.matmul(x, y))


register(Primitive("dot", "dot", _dot_rule, _dot_impl,
                   _dot_vjp, _dot_jvp, torch_name="MmBackward0", torch_variant=_torch_name,
                   selective_vjp=True))
dot = binder("dot")
