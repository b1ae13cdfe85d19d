"""Cumulative primitives: cumsum, cumprod, cummax, cummin along one axis.

Each is an "extern" primitive (a whole-array routine fusion never fuses
into): `out[..., i, ...] = x[..., 0, ...] op ... op x[..., i, ...]` along
`axis` (already normalized to [0, ndim)), or from the end when `reverse`.
The output has the operand's shape and dtype (the front end picks NumPy's
accumulation dtype and converts first); bool operands are refused.

Derivatives are written with `ir.ops` only, so one rule serves eager
autograd, the IR autodiff pass and higher orders.  Besides cumsum (whose VJP
is a cumsum the other way) they reduce to one linear recurrence along the
axis, `y[i] = a[i] * y[i-1] + b[i]`, solved by `affine_scan` in log2(n)
doubling steps of slices, multiplies and adds (no division, so cumprod's
derivative is exact where inputs are zero, as JAX's is):

* cumprod: `dy[i] = x[i] * dy[i-1] + t[i] * out[i-1]`;
* cummax/cummin: the tangent of the position attaining the running extremum
  (the latest such position on ties, as PyTorch's indices), a forward fill
  `dy[i] = (1 - m[i]) * dy[i-1] + m[i] * t[i]` where `m` marks the positions
  where `x == out`.

The VJPs are the transposed recurrences (`transpose_affine_scan`).
"""
from __future__ import annotations

import numpy as np

from . import ops
from .primitives import Primitive, bind, fail, register

__all__ = ["cumsum", "cumprod", "cummax", "cummin", "affine_scan", "transpose_affine_scan"]


def _cum_rule(name):
    def rule(x, *, axis, reverse):
        if not 0 <= axis < x.ndim:
            fail(name, f"axis {axis} is not within rank {x.ndim} (normalize it; rank 0 has none)",
                 x)
        if x.dtype.kind not in "iuf":
            fail(name, "needs a numeric (int or float) operand", x)
        if not isinstance(reverse, (bool, np.bool_)):
            fail(name, f"reverse must be a bool, not {reverse!r}", x)
        return x
    return rule


def _np_cum(ufunc):
    def impl(x, *, axis, reverse):
        x = np.asarray(x)
        if reverse:
            x = np.flip(x, axis)
        out = ufunc.accumulate(x, axis=axis, dtype=x.dtype)
        return np.ascontiguousarray(np.flip(out, axis) if reverse else out)
    return impl


# ---- the linear recurrence along an axis -----------------------------------------------

def _part(x, axis, start, size):
    shp = ops.shape(x)
    starts = tuple(start if d == axis else 0 for d in range(len(shp)))
    sizes = tuple(size if d == axis else n for d, n in enumerate(shp))
    return ops.slice(x, starts, (1,) * len(shp), sizes)


def _combine(a, b, axis, s, reverse):
    """One doubling step: element i absorbs element i - s (i + s when `reverse`)."""
    n = ops.shape(a)[axis]
    if reverse:
        near, far = (lambda v: _part(v, axis, 0, n - s)), (lambda v: _part(v, axis, s, n - s))
        rest = lambda v: _part(v, axis, n - s, s)  # noqa: E731
        join = lambda new, v: ops.concatenate([new, rest(v)], axis)  # noqa: E731
    else:
        near, far = (lambda v: _part(v, axis, s, n - s)), (lambda v: _part(v, axis, 0, n - s))
        rest = lambda v: _part(v, axis, 0, s)  # noqa: E731
        join = lambda new, v: ops.concatenate([rest(v), new], axis)  # noqa: E731
    new_b = ops.add(near(b), ops.mul(near(a), far(b)))
    new_a = ops.mul(near(a), far(a))
    return join(new_a, a), join(new_b, b)


def affine_scan(a, b, axis, reverse=False):
    """`y[i] = a[i] * y[i-1] + b[i]` along `axis` (y[-1] = 0), from the end when `reverse`.

    Hillis-Steele doubling: after the step of size s, (a[i], b[i]) is the map
    y[i-2s] -> y[i]; log2(n) steps in all, linear in `b`."""
    n, s = ops.shape(b)[axis], 1
    while s < n:
        a, b = _combine(a, b, axis, s, reverse)
        s *= 2
    return b


def transpose_affine_scan(a, g, axis, reverse=False):
    """The transpose of `b -> affine_scan(a, b, axis, reverse)` applied to `g`:
    `z[j] = g[j] + a[j+1] * z[j+1]`, the recurrence run the other way."""
    n = ops.shape(g)[axis]
    if n <= 1:
        return g
    zero = ops.full_like(_part(a, axis, 0, 1), 0)
    if reverse:  # a'[j] = a[j-1], a'[0] unused
        shifted = ops.concatenate([zero, _part(a, axis, 0, n - 1)], axis)
    else:  # a'[j] = a[j+1], a'[n-1] unused
        shifted = ops.concatenate([_part(a, axis, 1, n - 1), zero], axis)
    return affine_scan(shifted, g, axis, not reverse)


# ---- the rules ---------------------------------------------------------------------------------

def _cumsum_vjp(g, out, x, *, axis, reverse):
    return (cumsum(g, axis, not reverse),)


def _cumsum_jvp(tangents, out, x, *, axis, reverse):
    t, = tangents
    return None if t is None else cumsum(t, axis, reverse)


def _exclusive(out, axis, reverse):
    """out[i-1] along the scan (1 before the first element): the product before i."""
    n = ops.shape(out)[axis]
    one = ops.full_like(_part(out, axis, 0, 1), 1)
    if reverse:
        return ops.concatenate([_part(out, axis, 1, n - 1), one], axis)
    return ops.concatenate([one, _part(out, axis, 0, n - 1)], axis)


def _cumprod_vjp(g, out, x, *, axis, reverse):
    if ops.shape(x)[axis] == 0:
        return (g,)
    z = transpose_affine_scan(x, g, axis, reverse)
    return (ops.mul(z, _exclusive(out, axis, reverse)),)


def _cumprod_jvp(tangents, out, x, *, axis, reverse):
    t, = tangents
    if t is None or ops.shape(x)[axis] == 0:
        return t
    return affine_scan(x, ops.mul(t, _exclusive(out, axis, reverse)), axis, reverse)


def _records(out, x):
    """(m, 1 - m): m marks where x attains the running extremum, as x's dtype."""
    m = ops.convert(ops.eq(x, out), ops.dtype(x))
    return m, ops.sub(ops.full_like(m, 1), m)


def _ext_vjp(g, out, x, *, axis, reverse):
    m, keep = _records(out, x)
    return (ops.mul(m, transpose_affine_scan(keep, g, axis, reverse)),)


def _ext_jvp(tangents, out, x, *, axis, reverse):
    t, = tangents
    if t is None:
        return None
    m, keep = _records(out, x)
    return affine_scan(keep, ops.mul(m, t), axis, reverse)


def _declare(name, ufunc, vjp, jvp, torch_name, doc):
    register(Primitive(name, "extern", _cum_rule(name), _np_cum(ufunc), vjp, jvp,
                       torch_name=torch_name, doc=doc))

    def f(x, axis, reverse=False):
        ndim = len(ops.shape(x))
        ax = int(axis)
        if not -ndim <= ax < ndim:
            raise ValueError(f"{name}: axis {axis} is out of range for rank {ndim}")
        return bind(name, x, axis=ax % ndim, reverse=bool(reverse))
    f.__name__ = f.__qualname__ = name
    f.__doc__ = doc
    return f


cumsum = _declare("cumsum", np.add, _cumsum_vjp, _cumsum_jvp, "CumsumBackward0",
                  "Running sums along `axis` (from the end when `reverse`).")
cumprod = _declare("cumprod", np.multiply, _cumprod_vjp, _cumprod_jvp, "CumprodBackward0",
                   "Running products along `axis` (from the end when `reverse`).")
cummax = _declare("cummax", np.maximum, _ext_vjp, _ext_jvp, "CummaxBackward0",
                  "Running maxima along `axis` (NaN propagates, as np.maximum).")
cummin = _declare("cummin", np.minimum, _ext_vjp, _ext_jvp, "CumminBackward0",
                  "Running minima along `axis` (NaN propagates, as np.minimum).")
