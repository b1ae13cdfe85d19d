"""`x.at[idx].multiply/divide/power/min/max` where an element may get several updates.

JAX combines every update of a repeated index (its scatter_mul, scatter_min, ...).
Here the updates are sorted by their target position (stable: in update order), each
run of one target is reduced by a doubling scan (Hillis-Steele: log2(m) steps of
shifted combines, each confined to its run, so the run's last entry holds the whole
run's reduction), and a scatter writes that last entry (scatter: the last write wins).
The element then combines with its run's reduction once: max/min with the run's
extreme, multiply with the run's product, divide by it, power by it (x ** (y1 * y2)
for x ** y1 ** y2, as repeated powers compose).  Elements no update reaches are kept.
Updates out of bounds (at_modes.positions: -1) go to a trash slot past the end.

The result is the exact combination up to the order of the run's products (a tree
instead of a chain); gradients flow through the scan like any other computation.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import ops

from . import numpy as tnp
from .at_modes import positions

# method -> (how a run's updates reduce, how the element takes the reduction)
_RULES = {
    "max": (tnp.maximum, tnp.maximum),
    "min": (tnp.minimum, tnp.minimum),
    "multiply": (tnp.multiply, tnp.multiply),
    "divide": (tnp.multiply, tnp.true_divide),
    "power": (tnp.multiply, tnp.power),
}


def element_op(method):
    """How an element takes an update by `method` (np.maximum for "max", ...)."""
    return _RULES[method][1]


def _identity(method, dtype):
    """The run reduction's identity in `dtype` (what a shifted-in slot holds)."""
    dtype = np.dtype(dtype)
    if method in ("multiply", "divide", "power"):
        return np.ones((), dtype)
    if dtype.kind == "b":
        return np.asarray(method == "min")
    if dtype.kind == "f":
        return np.asarray(-np.inf if method == "max" else np.inf, dtype)
    info = np.iinfo(dtype)
    return np.asarray(info.min if method == "max" else info.max, dtype)


def _run_reductions(target, v, method, size):
    """(per slot of `size`, the reduction of the updates aimed at it; whether any is)."""
    m = int(ops.shape(v)[0])
    order = tnp.argsort(target, kind="stable")
    keys, acc = tnp.take(target, order), tnp.take(v, order)
    reduce, ident, k = _RULES[method][0], _identity(method, ops.dtype(v)), 1
    while k < m:
        prev = tnp.concatenate([tnp.full((k,), ident), acc[:m - k]])
        same = tnp.concatenate([np.zeros(k, np.bool_), tnp.equal(keys[k:], keys[:m - k])])
        acc = tnp.where(same, reduce(prev, acc), acc)
        k *= 2
    reduced = ops.scatter(tnp.zeros((size,), ops.dtype(v)), acc, keys)
    hits = ops.scatter_add(np.zeros(size, np.int64), np.ones(m, np.int64), keys)
    return reduced, tnp.greater(hits, 0)


def combine(x, idx, values, method: str, mode):
    """x with x[idx] combined with `values` by `method`, every update of a repeated
    index included (module docstring); `mode` as at_modes' ("clip", "drop")."""
    pos = positions(x, idx, mode)
    shape = tuple(ops.shape(x))
    n = int(np.prod(shape, dtype=np.int64))
    m = int(np.prod(ops.shape(pos), dtype=np.int64))
    if m == 0:
        return tnp.copy(x)
    target = ops.reshape(tnp.where(tnp.greater_equal(pos, 0), pos, n), (m,))
    v = tnp.broadcast_to(tnp.astype(tnp.asarray(values), ops.dtype(x)), tuple(ops.shape(pos)))
    reduced, hit = _run_reductions(target, ops.reshape(v, (m,)), method, n + 1)
    flat = tnp.concatenate([ops.reshape(x, (n,)), tnp.zeros((1,), ops.dtype(x))])
    combined = tnp.astype(element_op(method)(flat, reduced), ops.dtype(x))
    out = tnp.where(hit, combined, flat)
    return ops.reshape(out[:n], shape)
