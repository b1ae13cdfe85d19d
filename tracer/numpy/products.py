"""Products: matmul, dot, vdot, inner, outer (floats go to the `dot` primitive)."""
from __future__ import annotations

import numpy as np

from tracegrad.ir import ops
from tracegrad.ir.core import is_float

from .. import dtypes
from ._core import (
    _dtype, _fail, _lift,
    _operand, _reject, _shape,
)
from .elementwise import multiply
from .shapes import ravel, reshape


def _batched_dot(a, b):
    """(..., m, k) @ (..., k, n) with equal batch dims; integers via mul + reduce_sum."""
    if is_float(_dtype(a)):
        return ops.dot(a, b)
    shp_a, shp_b = _shape(a), _shape(b)
    out = shp_a[:-1] + shp_b[-1:]
    prod = ops.mul(ops.broadcast(ops.reshape(a, shp_a + (1,)), out[:-1] + shp_a[-1:] + out[-1:]),
                   ops.broadcast(ops.reshape(b, shp_b[:-2] + (1,) + shp_b[-2:]),
                                 out[:-1] + shp_b[-2:]))
    return ops.reduce_sum(prod, (len(out) - 1,))


def matmul(x1, x2, /, out=None, **unsupported):
    """NumPy matmul: 1-D operands are promoted to matrices and back, batch dims broadcast.

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.matmul(np.ones((2, 3)), np.ones(3)).tolist()
    [3.0, 3.0]
    """
    _reject("matmul", out=out, **unsupported)
    dt = dtypes.result_type(x1, x2)
    a, b = _lift(x1, dt), _lift(x2, dt)
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        _fail("matmul", "operands must be at least 1-D (use multiply for scalars)", [a, b])
    a2 = ops.reshape(a, (1,) + sa) if len(sa) == 1 else a
    b2 = ops.reshape(b, sb + (1,)) if len(sb) == 1 else b
    (m, k), (k2, n) = _shape(a2)[-2:], _shape(b2)[-2:]
    if k != k2:
        _fail("matmul", f"contracted dimensions differ ({k} != {k2})", [a, b])
    try:
        batch = np.broadcast_shapes(_shape(a2)[:-2], _shape(b2)[:-2])
    except ValueError:
        _fail("matmul", "batch dimensions could not be broadcast together", [a, b])
    r = _batched_dot(ops.broadcast(a2, batch + (m, k)), ops.broadcast(b2, batch + (k, n)))
    final = batch + ((m,) if len(sa) > 1 else ()) + ((n,) if len(sb) > 1 else ())
    return ops.reshape(r, final)


def dot(a, b, out=None):
    """NumPy dot: sum over the last axis of `a` and the second-to-last of `b`."""
    _reject("dot", out=out)
    dt = dtypes.result_type(a, b)
    a, b = _lift(a, dt), _lift(b, dt)
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        return multiply(a, b)
    if len(sb) <= 2:
        return matmul(a, b)
    if sa[-1] != sb[-2]:
        _fail("dot", f"shapes {sa} and {sb} not aligned: {sa[-1]} != {sb[-2]}", [a, b])
    nb = len(sb)
    bt = ops.transpose(b, (nb - 2,) + tuple(range(nb - 2)) + (nb - 1,))
    rows = int(np.prod(sa[:-1], dtype=np.int64))
    cols = int(np.prod(sb[:-2] + sb[-1:], dtype=np.int64))
    r = matmul(ops.reshape(a, (rows, sa[-1])), ops.reshape(bt, (sb[-2], cols)))
    return ops.reshape(r, sa[:-1] + sb[:-2] + sb[-1:])


def vdot(a, b):
    """Dot product of the flattened operands, of their promoted dtype as NumPy's (int32
    stays int32, bools give a bool: any(a & b))."""
    return matmul(ravel(a), ravel(b))


def inner(a, b):
    """Sum over the last axes of `a` and `b`: shape a.shape[:-1] + b.shape[:-1]."""
    a, b = _operand(a), _operand(b)
    if not _shape(a) or not _shape(b):
        return multiply(a, b)
    if _shape(a)[-1] != _shape(b)[-1]:
        _fail("inner", "the last dimensions differ", [a, b], ValueError)
    from .contractions import tensordot  # contractions builds on this module
    return tensordot(a, b, ([-1], [-1]))


def outer(a, b):
    return multiply(reshape(ravel(a), (-1, 1)), ravel(b))


__all__ = ["matmul", "dot", "vdot", "inner", "outer"]

NUMPY = {np.matmul: matmul, np.dot: dot, np.vdot: vdot, np.inner: inner, np.outer: outer}
