"""PyTorch's tensor method names on tracegrad's arrays (eager tensors and traced values).

tracegrad's arrays speak NumPy (`x.sum(axis=0)`, `x.reshape(...)`); these are thin
aliases so that code written against torch.Tensor's methods runs too: `x.pow(2)`,
`x.sum(dim=1, keepdim=True)` (ArrayMixin's reductions take dim/keepdim), `x.view(-1)`,
`x.unsqueeze(0)`, `x.t()`, `x.mm(y)`, `x.size(0)`, `x.clamp(min=0)`, `x.softmax(dim=-1)`.
Where torch's semantics differ from NumPy's under the same name they follow torch only
when called torch's way: `max(dim=...)`/`min(dim=...)` return (values, indices), as
torch's; `var`/`std` with `dim` default to the unbiased estimate (torch's correction 1).
`view` copies like `reshape` (tracegrad views come from basic indexing only).

>>> import numpy as np, tracegrad as tg
>>> x = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
>>> y = x.pow(2).sum(dim=1, keepdim=True)
>>> y.shape, x.size(1), x.unsqueeze(0).dim()
((2, 1), 3, 3)
>>> x.max(dim=1).indices.tolist()
[2, 2]
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from . import numpy as tnp

MinMax = namedtuple("MinMax", "values indices")  # torch.return_types.max / min


class Size(int):
    """`x.size`: NumPy's element count (an int), and callable as torch's `x.size()`
    (the shape) or `x.size(d)` (one extent)."""

    def __new__(cls, shape):
        obj = super().__new__(cls, int(np.prod(shape, dtype=np.int64)))
        obj.shape = tuple(shape)
        return obj

    def __call__(self, dim=None):
        return self.shape if dim is None else self.shape[dim]


def axis_of(axis, dim):
    """NumPy's `axis` or torch's `dim` (at most one given)."""
    if dim is not None and axis is not None:
        raise TypeError("pass axis (NumPy) or dim (PyTorch), not both")
    return dim if dim is not None else axis


class TorchMethods:
    __slots__ = ()

    # arithmetic
    def pow(self, exponent):
        return self ** exponent

    def add(self, other, *, alpha=1):
        return self + (other * alpha if alpha != 1 else other)

    def sub(self, other, *, alpha=1):
        return self - (other * alpha if alpha != 1 else other)

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def neg(self):
        return -self

    def mm(self, other):
        return self @ other

    matmul = mm

    def clamp(self, min=None, max=None):
        return clamp(self, min, max)

    def masked_fill(self, mask, value):
        return tnp.where(mask, value, self)

    # shapes
    def view(self, *shape):
        return self.reshape(*shape)

    def permute(self, *dims):
        return self.transpose(*dims)

    def unsqueeze(self, dim):
        return tnp.expand_dims(self, dim)

    def t(self):
        return self.T

    def expand(self, *sizes):
        sizes = sizes[0] if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
        lead = len(sizes) - len(self.shape)
        shape = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
        return tnp.broadcast_to(self, shape)

    def contiguous(self):
        return self

    def clone(self):
        return tnp.copy(self)

    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def dim(self) -> int:
        return len(self.shape)

    # dtypes
    def float(self):
        return tnp.astype(self, np.float32)

    def double(self):
        return tnp.astype(self, np.float64)

    def long(self):
        return tnp.astype(self, np.int64)

    def to(self, dtype=None, *args, **kwargs):
        """A dtype converts; a device (`"cpu"`) is this array."""
        if dtype is None or isinstance(dtype, str):
            return self
        return tnp.astype(self, dtype)

    # splitting and selecting
    def chunk(self, chunks, dim=0):
        """torch's: pieces of ceil(n / chunks) along dim (fewer pieces when that divides)."""
        n = self.shape[dim]
        step = -(-n // chunks)
        return self.split(step, dim) if n else (self,)

    def split(self, split_size, dim=0):
        """torch's: pieces of `split_size` along dim (the last shorter), or of the listed
        sizes."""
        n = self.shape[dim]
        sizes = [split_size] * (-(-n // split_size)) if isinstance(split_size, int) \
            else list(split_size)
        edges = np.cumsum([0] + sizes)
        edges[-1] = min(edges[-1], n)
        return tuple(tnp.split(self, list(edges[1:-1]), axis=dim))

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """torch's (values, indices) of the k largest (smallest) along dim, in order."""
        indices = tnp.take(sort_order(self, dim, largest), np.arange(k), axis=dim)
        return MinMax(tnp.take_along_axis(self, indices, axis=dim), indices)

    # softmax family
    def softmax(self, dim):
        e = tnp.exp(self - tnp.stop_gradient(tnp.max(self, axis=dim, keepdims=True)))
        return e / tnp.sum(e, axis=dim, keepdims=True)

    def log_softmax(self, dim):
        shifted = self - tnp.stop_gradient(tnp.max(self, axis=dim, keepdims=True))
        return shifted - tnp.log(tnp.sum(tnp.exp(shifted), axis=dim, keepdims=True))


def clamp(x, lo, hi):
    """torch's clamp: clip's value, with gradient 1 wherever x is within the bounds, the
    bounds included (np.clip shares it at a bound, as JAX does)."""
    inside = None
    for bound, test in ((lo, tnp.greater_equal), (hi, tnp.less_equal)):
        if bound is not None:
            ok = test(x, bound)
            inside = ok if inside is None else tnp.logical_and(inside, ok)
    clipped = tnp.clip(x, lo, hi)
    return clipped if inside is None else tnp.where(inside, x, tnp.stop_gradient(clipped))


def sort_order(x, dim, descending):
    """The indices that sort x along dim, stably (torch's sort(stable=True) and topk)."""
    return tnp.argsort(-x if descending else x, axis=dim, kind="stable")


def sorted_pair(x, dim, descending):
    """torch's sort: (values, indices)."""
    order = sort_order(x, dim, descending)
    return MinMax(tnp.take_along_axis(x, order, axis=dim), order)


def extreme(fn, argfn, x, axis, keepdims, dim):
    """max/min: NumPy's value, or torch's (values, indices) when called with `dim`."""
    if dim is None:
        return fn(x, axis=axis, keepdims=keepdims)
    # the values are read at the indices, so the gradient goes to that one element even
    # at ties (torch's), not shared as NumPy's max shares it
    idx = argfn(x, axis=dim, keepdims=True)
    values = tnp.take_along_axis(x, idx, axis=dim)
    if not keepdims:
        values, idx = tnp.squeeze(values, axis=dim), tnp.squeeze(idx, axis=dim)
    return MinMax(values, idx)
