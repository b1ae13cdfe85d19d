"""Composites written once in terms of primitives: sigmoid, softplus, relu,
logsumexp, softmax, log_softmax."""
from __future__ import annotations

import numpy as np

from tracegrad.ir import ops

from .. import dtypes
from ._core import (
    _convert, _dtype, _ndim, _norm_axes, _operand, _reduced_shape, _shape,
)
from .elementwise import (absolute, add, divide, greater, greater_equal, less, less_equal,
                          multiply, not_equal,
                          negative, stop_gradient, subtract, uf, where)
from .reductions import max, sum
from .structure import broadcast_arrays


def sigmoid(x):
    """1 / (1 + exp(-x)), from e = exp(-|x|): 1 / (1 + e) for x >= 0 and e / (1 + e) below,
    so that it never overflows and keeps its relative accuracy as it goes to 0
    (sigmoid(-40) = 4.2e-18; a tanh form rounds it to 0).  Bool and int input computes in
    float64, as scipy's expit."""
    x = _operand(x)
    x = _convert(x, dtypes.float_result(_dtype(x)))
    positive = greater_equal(x, 0)
    e = uf.exp(where(positive, negative(x), x))
    return divide(where(positive, 1.0, e), add(e, 1.0))


def softplus(x):
    """log(1 + exp(x)) computed as log1p(exp(-|x|)) + max(x, 0): stable for large |x|.
    Both pieces are `where`s taking their x <= 0 side at 0, so the gradient there is
    sigmoid(0) = 1/2 (an abs and a max would each split it and cancel)."""
    x = _operand(x)
    positive = greater(x, 0)
    return add(uf.log1p(uf.exp(negative(where(positive, x, negative(x))))),
               where(positive, x, 0))


def relu(x):
    """max(x, 0) as where(x <= 0, 0, x): the gradient at 0 is 0, as in PyTorch, and a NaN
    stays NaN (as torch's, jax's and np.maximum(x, 0))."""
    x = _operand(x)
    return where(less_equal(x, 0), 0, x)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """log(sum(b * exp(a))) with the maximum subtracted (under stop_gradient) for stability,
    as scipy's and jax's: `b` scales the terms (broadcast against a); `return_sign` gives
    (log|sum|, sign of the sum), else a negative sum is NaN.  (`keepdims` may also come
    third, as in this function's NumPy-style form.)"""
    if isinstance(b, bool):  # logsumexp(a, axis, keepdims): the older positional form
        b, keepdims = None, b
    a = _operand(a)
    a = _convert(a, dtypes.float_result(_dtype(a)))
    if b is not None:
        a, b = broadcast_arrays(a, _convert(_operand(b), _dtype(a)))
        a = where(not_equal(b, 0), a, -np.inf)  # (as scipy's and jax's: terms b == 0 drop
        # out of the shift too, else a large a there makes every other exp underflow)
    axes = _norm_axes(axis, _ndim(a))
    m = _shift(a, axes)
    e = uf.exp(subtract(a, m))
    s = sum(e if b is None else multiply(b, e), axis=axes, keepdims=True)
    out = add(uf.log(absolute(s) if return_sign else s), m)
    shape = _reduced_shape(_shape(a), axes)
    out = out if keepdims else ops.reshape(out, shape)
    if not return_sign:
        return out
    sign = ops.sign(s)
    return out, (sign if keepdims else ops.reshape(sign, shape))


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`, with the maximum subtracted first."""
    x = _operand(x)
    if 0 in [_shape(x)[d] for d in _norm_axes(axis, _ndim(x))]:
        return uf.exp(x)  # no elements along the axis: an empty result of x's shape
    e = uf.exp(subtract(x, stop_gradient(max(x, axis=axis, keepdims=True))))
    return divide(e, sum(e, axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    """(x - max) - log(sum(exp(x - max))) along `axis`: the shifted logits are rounded at
    their own magnitude, not the logits' (x - logsumexp(x) loses the small ones in float32)."""
    x = _operand(x)
    x = _convert(x, dtypes.float_result(_dtype(x)))
    shifted = subtract(x, _shift(x, axis))
    return subtract(shifted, uf.log(sum(uf.exp(shifted), axis=axis, keepdims=True)))


def _shift(a, axis):
    """The maximum along `axis` (dims kept) under stop_gradient, 0 where it is infinite:
    inf - inf would give nan, and shifting by 0 keeps the exact answer."""
    if 0 in [_shape(a)[d] for d in _norm_axes(axis, _ndim(a))]:
        return np.zeros((), _dtype(a))  # nothing to shift: the sum is 0, its log -inf
    m = max(a, axis=axis, keepdims=True)
    return stop_gradient(where(less(absolute(m), np.inf), m, 0.0))


__all__ = ["sigmoid", "softplus", "relu", "logsumexp", "softmax", "log_softmax"]

NUMPY = {}
