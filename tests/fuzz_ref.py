"""The numpy reference the fuzzer compares tracegrad against.

A generated program is Python source over three names: `np` (the NumPy-like
namespace), `onp` (real numpy: its functions dispatch to tracegrad through
`__array_ufunc__`/`__array_function__`) and `P` (direct primitive calls, for
primitives the front end only reaches indirectly, such as `pad`).  tracegrad
runs the source with `np = tracegrad.numpy` and `P = tracegrad.ir.ops`; the
reference runs the same source with the objects below, written with numpy
only (never with tracegrad's own numpy implementations of the primitives), so
the two share no code.

`stop_gradient` is the identity on values, but its derivative is zero: a
finite-difference reference must hold it constant.  `RefNumpy` therefore
records the values it returns on a base evaluation and replays them on the
perturbed evaluations (`freeze`).
"""
from __future__ import annotations

import contextlib

import numpy as np


def sigmoid_ref(x):
    return 1 / (1 + np.exp(-x))


def logsumexp_ref(a, axis=None, keepdims=False):
    m = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def softmax_ref(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax_ref(x, axis=-1):
    return x - logsumexp_ref(x, axis=axis, keepdims=True)


def _scipy_special(name, x):
    """scipy.special's `name` (a test extra), in x's float dtype."""
    import scipy.special
    x = np.asarray(x)
    out = getattr(scipy.special, name)(x)
    return out.astype(x.dtype) if x.dtype.kind == "f" else out


class RefNumpy:
    """numpy plus the composites tracegrad.numpy adds (sigmoid, softplus, ...)."""

    sigmoid = staticmethod(sigmoid_ref)
    softplus = staticmethod(lambda x: np.logaddexp(0.0, x))
    relu = staticmethod(lambda x: np.maximum(x, 0))
    logsumexp = staticmethod(logsumexp_ref)
    softmax = staticmethod(softmax_ref)
    log_softmax = staticmethod(log_softmax_ref)

    erf = staticmethod(lambda x: _scipy_special("erf", x))
    erfc = staticmethod(lambda x: _scipy_special("erfc", x))
    lgamma = staticmethod(lambda x: _scipy_special("gammaln", x))
    digamma = staticmethod(lambda x: _scipy_special("psi", x))

    def __init__(self):
        self._frozen = None   # values recorded by stop_gradient, replayed when not None
        self._record = None

    def __getattr__(self, name):
        return getattr(np, name)

    def stop_gradient(self, x):
        if self._frozen is not None:
            return self._frozen.pop(0)
        if self._record is not None:
            self._record.append(np.array(x))
        return x

    @contextlib.contextmanager
    def recording(self):
        """Record what stop_gradient returns (the base point of a finite difference)."""
        self._record = []
        try:
            yield self._record
        finally:
            self._record = None

    @contextlib.contextmanager
    def freeze(self, recorded):
        """stop_gradient returns `recorded` (copied) in order: its operand is a constant."""
        self._frozen = [np.array(r) for r in recorded]
        try:
            yield
        finally:
            self._frozen = None


def _axis_slices(starts, steps, sizes):
    """Basic slices selecting start + i*step, i < size, on each axis."""
    out = []
    for st, sp, sz in zip(starts, steps, sizes):
        stop = st + sz * sp
        out.append(slice(st, None if stop < 0 else stop, sp))
    return tuple(out)


class RefPrims:
    """The `P` of the reference: each primitive applied directly, written with numpy."""

    @staticmethod
    def slice(x, starts, steps, sizes):
        return np.array(np.asarray(x)[_axis_slices(starts, steps, sizes)])

    @staticmethod
    def pad(x, starts, steps, shape):
        x = np.asarray(x)
        out = np.zeros(shape, x.dtype)
        out[_axis_slices(starts, steps, x.shape)] = x
        return out

    @staticmethod
    def integer_pow(x, y):
        x = np.asarray(x)
        return (x ** y if y >= 0 else 1 / x ** -y).astype(x.dtype)

    @staticmethod
    def dot(x, y):
        return np.matmul(x, y)

    @staticmethod
    def broadcast(x, shape):
        return np.broadcast_to(x, shape).copy()

    @staticmethod
    def transpose(x, perm):
        return np.transpose(x, perm).copy()

    @staticmethod
    def reshape(x, shape):
        return np.reshape(x, shape).copy()

    @staticmethod
    def concatenate(xs, axis):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def convert(x, dtype):
        return np.asarray(x).astype(dtype)

    @staticmethod
    def reduce_prod(x, axes):
        return np.asarray(np.prod(x, axis=tuple(axes)))

    @staticmethod
    def reduce_max(x, axes):
        return np.asarray(np.max(x, axis=tuple(axes)))

    @staticmethod
    def reduce_min(x, axes):
        return np.asarray(np.min(x, axis=tuple(axes)))

    @staticmethod
    def reduce_sum(x, axes):
        x = np.asarray(x)
        return np.asarray(np.sum(x, axis=tuple(axes)), dtype=x.dtype)

    @staticmethod
    def where(c, x, y):
        return np.where(c, x, y)

    # indexing: indices are wrapped (negatives) and clamped into range; written with
    # plain loops so that they share no code with ir/indexing.py
    @staticmethod
    def _clamped(idx, shape):
        return [np.clip(np.where(np.asarray(i) < 0, np.asarray(i) + d, i), 0, d - 1)
                for i, d in zip(idx, shape)]

    @staticmethod
    def gather(x, *idx):
        return np.asarray(x)[tuple(RefPrims._clamped(idx, np.shape(x)))]

    @staticmethod
    def scatter_add(x, u, *idx):
        out = np.array(x)
        pos = np.broadcast_arrays(*RefPrims._clamped(idx, out.shape))
        u = np.asarray(u).reshape((-1,) + out.shape[len(idx):])
        for k, p in enumerate(zip(*[q.ravel() for q in pos])):
            out[p] += u[k]
        return out

    @staticmethod
    def scatter(x, u, *idx):
        out = np.array(x)
        pos = np.broadcast_arrays(*RefPrims._clamped(idx, out.shape))
        u = np.asarray(u).reshape((-1,) + out.shape[len(idx):])
        for k, p in enumerate(zip(*[q.ravel() for q in pos])):  # in order: the last wins
            out[p] = u[k]
        return out

    @staticmethod
    def _window(starts, sizes, shape):
        return tuple(slice(min(max(int(s), 0), d - n), min(max(int(s), 0), d - n) + n)
                     for s, n, d in zip(starts, sizes, shape))

    @staticmethod
    def dynamic_slice(x, *starts, sizes):
        x = np.asarray(x)
        return np.array(x[RefPrims._window(starts, sizes, x.shape)])

    @staticmethod
    def dynamic_update_slice(x, u, *starts):
        out = np.array(x)
        out[RefPrims._window(starts, np.shape(u), out.shape)] = u
        return out

    @staticmethod
    def nonzero_static(x, size, fill_value=0):
        found = np.argwhere(np.asarray(x)).T[:, :size]
        out = np.full((np.ndim(x), size), fill_value, np.int64)
        out[:, :found.shape[1]] = found
        return out

    # cumulative: numpy's accumulate, flipped for reverse
    @staticmethod
    def _accumulate(ufunc, x, axis, reverse):
        x = np.asarray(x)
        y = ufunc.accumulate(np.flip(x, axis) if reverse else x, axis=axis, dtype=x.dtype)
        return np.flip(y, axis).copy() if reverse else y

    cumsum = staticmethod(lambda x, axis, reverse=False: RefPrims._accumulate(np.add, x, axis, reverse))
    cumprod = staticmethod(lambda x, axis, reverse=False: RefPrims._accumulate(np.multiply, x, axis,
                                                                               reverse))
    cummax = staticmethod(lambda x, axis, reverse=False: RefPrims._accumulate(np.maximum, x, axis,
                                                                              reverse))
    cummin = staticmethod(lambda x, axis, reverse=False: RefPrims._accumulate(np.minimum, x, axis,
                                                                              reverse))

    @staticmethod
    def correlate(a, v):
        """np.correlate's valid mode along the last axis, written as its sum over the taps."""
        a, v = np.asarray(a), np.asarray(v)
        n, m = a.shape[-1], v.shape[-1]
        return sum(a[..., j:j + n - m + 1] * v[..., j:j + 1] for j in range(m))

    @staticmethod
    def sort(x, axis):
        return np.sort(x, axis=axis, kind="stable")

    @staticmethod
    def argsort(x, axis):
        return np.argsort(x, axis=axis, kind="stable")


for _name, _fn in {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
                   "max": np.maximum, "min": np.minimum, "pow": np.power}.items():
    setattr(RefPrims, _name, staticmethod(_fn))


class _RefCustom:
    """A custom-derivative function of the reference: the function itself."""

    def __init__(self, fun):
        self.fun = fun

    def defjvp(self, rule):
        return rule

    def __call__(self, *args):
        return self.fun(*args)


class RefControl:
    """The `L` of the reference: tracegrad's loops and branches as plain Python loops."""

    custom_jvp = _RefCustom

    @staticmethod
    def checkpoint(fun):
        return fun

    @staticmethod
    def cond(pred, true_fun, false_fun, *operands):
        return true_fun(*operands) if pred else false_fun(*operands)

    @staticmethod
    def switch(index, branches, *operands):
        return branches[int(np.clip(index, 0, len(branches) - 1))](*operands)

    @staticmethod
    def while_loop(cond_fun, body_fun, val):
        while cond_fun(val):
            val = body_fun(val)
        return val

    @staticmethod
    def fori_loop(lower, upper, body_fun, val):
        dtype = np.result_type(lower, upper)
        for i in range(int(lower), int(upper)):
            val = body_fun(np.asarray(i, dtype), val)
        return val

    @staticmethod
    def scan(f, init, xs, length=None, reverse=False):
        n = len(xs) if xs is not None else length
        order = range(n - 1, -1, -1) if reverse else range(n)
        carry, ys = init, [None] * n
        for i in order:
            carry, ys[i] = f(carry, None if xs is None else xs[i])
        if n:
            return carry, np.stack([np.asarray(y) for y in ys])
        # no step ran: the shape of y comes from one (discarded) step on zeros
        _, y = f(init, None if xs is None else np.zeros(xs.shape[1:], xs.dtype))
        return carry, np.zeros((0,) + np.shape(y), np.asarray(y).dtype)
