"""`correlate`: the sliding dot product of a long sequence with a short one.

`correlate(a, v)[..., k] = sum_j a[..., k + j] * v[..., j]` for k < n - m + 1 (NumPy's
`correlate(a, v, "valid")`), over the last axis of `a` (length n) and `v` (length m,
1 <= m <= n), batched over equal leading axes.  It is the long filter's form of
np.convolve/np.correlate (tracer/numpy/contractions.py): as a sum of shifted slices each
tap is a term of the fused kernel, and as a product with the windows of `a` those
windows are an (m, n - m + 1) array.  Here it is one extern kernel (the numpy impl,
direct O(n m), through the host callback) whose derivatives are correlations again:

    d/da: correlate(pad(g, m - 1 both sides), reversed v)   (the full convolution g * v)
    d/dv: correlate(a, g)

so every order of derivative, eager or traced, stays O(n m) in time and O(n) in memory.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .core import ShapedArray
from .primitives import Primitive, bind, fail, register

__all__ = ["correlate"]


def _shape_rule(a, v):
    if a.ndim < 1 or a.shape[:-1] != v.shape[:-1] or v.ndim != a.ndim:
        fail("correlate", "needs operands of one rank >= 1 with equal leading dims", a, v)
    n, m = a.shape[-1], v.shape[-1]
    if not 1 <= m <= n:
        fail("correlate", "needs 1 <= len(v) <= len(a) along the last axis", a, v)
    if a.dtype != v.dtype or a.dtype.kind not in "biuf":
        fail("correlate", "needs operands of one dtype (bool or numeric)", a, v)
    return ShapedArray(a.shape[:-1] + (n - m + 1,), a.dtype)


def _impl(a, v):
    a, v = np.asarray(a), np.asarray(v)
    out = np.empty(a.shape[:-1] + (a.shape[-1] - v.shape[-1] + 1,), a.dtype)
    for idx in np.ndindex(a.shape[:-1]):
        out[idx] = np.correlate(a[idx], v[idx], "valid")
    return out


def _reverse_last(x):
    shp = ops.shape(x)
    n = len(shp)
    return ops.slice(x, (0,) * (n - 1) + (shp[-1] - 1,), (1,) * (n - 1) + (-1,), shp)


def _pad_last(x, before, after):
    shp = ops.shape(x)
    n = len(shp)
    return ops.pad(x, (0,) * (n - 1) + (before,), (1,) * n,
                   shp[:-1] + (shp[-1] + before + after,))


def _vjp(g, out, a, v, needed=(True, True)):
    m = ops.shape(v)[-1]
    da = correlate(_pad_last(g, m - 1, m - 1), _reverse_last(v)) if needed[0] else None
    dv = correlate(a, g) if needed[1] else None
    return da, dv


def _jvp(tangents, out, a, v):
    ta, tv = tangents
    parts = [correlate(ta, v) if ta is not None else None,
             correlate(a, tv) if tv is not None else None]
    parts = [p for p in parts if p is not None]
    return None if not parts else parts[0] if len(parts) == 1 else ops.add(*parts)


register(Primitive("correlate", "extern", _shape_rule, _impl, _vjp, _jvp, cost=2,
                   torch_name="ConvolutionBackward0", selective_vjp=True,
                   doc="np.correlate(a, v, 'valid') along the last axis, batched over leading "
                       "axes"))


def correlate(a, v):
    """`np.correlate(a, v, "valid")` along the last axis (len(v) <= len(a)), batched over
    equal leading axes."""
    return bind("correlate", a, v)
