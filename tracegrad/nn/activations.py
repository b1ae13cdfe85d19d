"""`jax.nn`'s activation functions, written with `tracegrad.numpy`: they take numpy
arrays, eager tensors and traced values alike, keep float32 inputs float32, and have
JAX's values and derivatives at the kinks (`relu'(0) = 0`, `relu6'(6) = 0`,
`leaky_relu'(0) = 1`, `hard_tanh'(+-1) = 1`).

>>> import numpy as np
>>> from tracegrad import nn
>>> nn.relu(np.array([-1.0, 0.0, 2.0])).tolist()
[0.0, 0.0, 2.0]
>>> [round(v, 4) for v in nn.gelu(np.array([-1.0, 1.0])).tolist()]  # tanh form, as JAX's
[-0.1588, 0.8412]
>>> nn.one_hot(np.array([0, 2]), 3).tolist()
[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
"""
from __future__ import annotations

import numpy as np

import tracegrad.numpy as tnp

__all__ = ["relu", "relu6", "sigmoid", "log_sigmoid", "softplus", "soft_sign", "silu", "swish",
           "leaky_relu", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "elu", "celu",
           "selu", "gelu", "glu", "softmax", "log_softmax", "logsumexp", "standardize",
           "one_hot", "identity", "tanh", "mish", "squareplus", "sparse_plus", "sparse_sigmoid"]


def _inexact(x):
    """`x` as an array of a float dtype (integers and bools become float64, as JAX's
    promote_args_inexact with x64 on)."""
    x = tnp.asarray(x)
    return x if tnp.issubdtype(x.dtype, np.floating) else tnp.astype(x, np.float64)


def identity(x):
    """`x` itself (as an array)."""
    return tnp.asarray(x)


def _nan_kept(x, otherwise):
    """`otherwise` where x is a number, x itself where it is NaN, with no derivative
    there (JAX's relu passes NaN on and gives it the derivative 0)."""
    return tnp.where(x == x, otherwise, tnp.stop_gradient(x))


def relu(x):
    """max(x, 0); the derivative at 0 is 0 (JAX's), and a NaN stays NaN."""
    x = tnp.asarray(x)
    return tnp.where(x > 0, x, _nan_kept(x, 0))


def relu6(x):
    """min(max(x, 0), 6); the derivative is 0 at 0 and at 6, as JAX's."""
    x = tnp.asarray(x)
    return tnp.where((x > 0) & (x < 6), x, tnp.where(x >= 6, 6, _nan_kept(x, 0)))


def sigmoid(x):
    """1 / (1 + exp(-x)) (JAX's `lax.logistic`), stable for large |x|."""
    return tnp.sigmoid(_inexact(x))


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x)."""
    return -tnp.softplus(-_inexact(x))


def softplus(x):
    """log(1 + exp(x)), stable for large |x| (JAX's `logaddexp(x, 0)`)."""
    return tnp.softplus(_inexact(x))


def soft_sign(x):
    """x / (|x| + 1)."""
    x = _inexact(x)
    return x / (tnp.abs(x) + 1)


def silu(x):
    """x * sigmoid(x) (also `swish`)."""
    x = _inexact(x)
    return x * tnp.sigmoid(x)


swish = silu


def leaky_relu(x, negative_slope=1e-2):
    """x where x >= 0, else negative_slope * x (the derivative at 0 is 1, as JAX's)."""
    x = tnp.asarray(x)
    return tnp.where(x >= 0, x, negative_slope * x)


def hard_sigmoid(x):
    """relu6(x + 3) / 6."""
    return relu6(_inexact(x) + 3.0) / 6.0


def hard_silu(x):
    """x * hard_sigmoid(x) (also `hard_swish`)."""
    x = _inexact(x)
    return x * hard_sigmoid(x)


hard_swish = hard_silu


def hard_tanh(x):
    """x clipped to [-1, 1] (the derivative at +-1 is 1, as JAX's)."""
    x = tnp.asarray(x)
    return tnp.where(x > 1, 1, tnp.where(x < -1, -1, x))


def elu(x, alpha=1.0):
    """x where x > 0, else alpha * (exp(x) - 1)."""
    x = _inexact(x)
    return tnp.where(x > 0, x, alpha * tnp.expm1(tnp.where(x > 0, 0.0, x)))


def celu(x, alpha=1.0):
    """max(x, 0) + alpha * (exp(min(x, 0) / alpha) - 1)."""
    x = _inexact(x)
    positive = x > 0
    return tnp.where(positive, x, 0.0) + alpha * tnp.expm1(tnp.where(positive, 0.0, x) / alpha)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x):
    """scale * elu(x, alpha) with the self-normalizing constants."""
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


def gelu(x, approximate=True):
    """x * Phi(x); `approximate=True` (JAX's default) uses the tanh approximation
    0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))), else the exact erfc form."""
    x = _inexact(x)
    if approximate:
        inner = float(np.sqrt(2 / np.pi)) * (x + 0.044715 * (x * x * x))
        return x * (0.5 * (1.0 + tnp.tanh(inner)))
    return 0.5 * x * tnp.erfc(-x * float(np.sqrt(0.5)))


def glu(x, axis=-1):
    """The gated linear unit: x split in two halves a, b along `axis`, a * sigmoid(b)."""
    x = tnp.asarray(x)
    if x.shape[axis] % 2:
        raise ValueError(f"glu: axis {axis} has odd size {x.shape[axis]}; it must be even")
    a, b = tnp.split(x, 2, axis)
    return a * sigmoid(b)


def mish(x):
    """x * tanh(softplus(x))."""
    x = _inexact(x)
    return x * tnp.tanh(tnp.softplus(x))


def tanh(x):
    """The hyperbolic tangent (jax.nn.tanh)."""
    return tnp.tanh(_inexact(x))


def squareplus(x, b=4):
    """(x + sqrt(x^2 + b)) / 2."""
    x = _inexact(x)
    return (x + tnp.sqrt(x * x + b)) / 2


def sparse_plus(x):
    """0 for x <= -1, x for x >= 1, (x + 1)^2 / 4 between."""
    x = _inexact(x)
    return tnp.where(x <= -1.0, 0.0, tnp.where(x >= 1.0, x, (x + 1.0) ** 2 / 4))


def sparse_sigmoid(x):
    """clip(x + 1, 0, 2) / 2."""
    return 0.5 * tnp.clip(_inexact(x) + 1.0, 0.0, 2.0)


def _finite_shift(m):
    """The maximum used to shift logits, 0 where it is infinite (no inf - inf), without
    gradient (the results do not depend on the shift)."""
    return tnp.stop_gradient(tnp.where(tnp.isfinite(m), m, 0.0))


def softmax(x, axis=-1, where=None):
    """exp(x) / sum(exp(x)) along `axis`; with `where`, only the True entries take part
    and the others are 0 (a row with none is all 0)."""
    x = _inexact(x)
    if where is None:
        return tnp.softmax(x, axis=axis)
    m = _finite_shift(tnp.max(x, axis=axis, where=where, initial=-np.inf, keepdims=True))
    e = tnp.where(where, tnp.exp(tnp.where(where, x, -np.inf) - m), 0.0)
    s = tnp.sum(e, axis=axis, keepdims=True)
    return e / tnp.where(s == 0, 1.0, s)


def log_softmax(x, axis=-1, where=None):
    """x - logsumexp(x) along `axis`; with `where`, the False entries are -inf."""
    x = _inexact(x)
    if where is None:
        return tnp.log_softmax(x, axis=axis)
    m = _finite_shift(tnp.max(x, axis=axis, where=where, initial=-np.inf, keepdims=True))
    shifted = tnp.where(where, x, -np.inf) - m
    s = tnp.sum(tnp.where(where, tnp.exp(shifted), 0.0), axis=axis, keepdims=True)
    lse = tnp.log(tnp.where(s > 0, s, 1.0))  # (a row with nothing selected: all -inf)
    return tnp.where(where, shifted - lse, -np.inf)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, where=None):
    """log(sum(b * exp(a))) along `axis` (jax.nn.logsumexp, JAX's signature); `where`
    leaves the False terms out."""
    a = _inexact(a)
    if where is not None:
        a = tnp.where(where, a, -np.inf)
    return tnp.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)


def standardize(x, axis=-1, mean=None, variance=None, epsilon=1e-5, where=None, *,
                algorithm="fast"):
    """(x - mean) / sqrt(variance + epsilon) along `axis`; the mean and variance are
    computed when not given (`algorithm="fast"`: E[x^2] - E[x]^2 clipped at 0, JAX's
    default; `"stable"`: E[(x - mean)^2])."""
    x = _inexact(x)
    if mean is None:
        mean = tnp.mean(x, axis=axis, keepdims=True, where=where)
    if variance is None:
        if algorithm == "stable":
            variance = tnp.mean(tnp.square(x - mean), axis=axis, keepdims=True, where=where)
        elif algorithm == "fast":
            variance = tnp.mean(tnp.square(x), axis=axis, keepdims=True, where=where)
            variance = tnp.maximum(variance - tnp.square(mean), 0)
        else:
            raise ValueError(f"Unknown algorithm {algorithm!r}. Expected 'fast' or 'stable'.")
    return (x - mean) / tnp.sqrt(variance + epsilon)


def one_hot(x, num_classes, *, dtype=np.float64, axis=-1):
    """`x`'s integers as one-hot vectors of length `num_classes` along a new `axis`
    (out-of-range entries give all zeros).  The default dtype is float64, tracegrad's
    default float (JAX's default float is float32 unless x64 is enabled)."""
    x = tnp.asarray(x)
    num_classes = int(num_classes)
    ax = axis % (x.ndim + 1)
    shape = [1] * (x.ndim + 1)
    shape[ax] = num_classes
    classes = tnp.reshape(tnp.arange(num_classes, dtype=np.int64), tuple(shape))
    return tnp.astype(tnp.expand_dims(x, ax) == classes, dtype)
