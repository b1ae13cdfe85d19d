"""PyTorch's tensor method names on tracegrad's arrays (eager tensors and traced values).

tracegrad's arrays speak NumPy (`x.sum(axis=0)`, `x.reshape(...)`); these are thin
aliases so that code written against torch.Tensor's methods runs too: `x.pow(2)`,
`x.sum(dim=1, keepdim=True)` (ArrayMixin's reductions take dim/keepdim), `x.view(-1)`,
`x.unsqueeze(0)`, `x.t()`, `x.mm(y)`, `x.size(0)`, `x.clamp(min=0)`, `x.softmax(dim=-1)`,
`x.gather(1, idx)`, `x.masked_fill(mask, 0)`, `x.to("cpu", np.float32)`.  Every alias is
a composition of tracegrad.numpy functions, so gradients flow through all of them.
Where torch's semantics differ from NumPy's under the same name they follow torch only
when called torch's way (docs/eager.md has the table):

- `max(dim=...)`/`min(dim=...)` and `max(d, True)` return (values, indices), as torch's;
  `max(other_array)` is the elementwise maximum; `max(d)` stays NumPy's value.
- `var`/`std` called with a torch keyword (`dim`, `keepdim`, `unbiased`, `correction`) or a
  bool second positional default to the unbiased estimate (torch's correction 1); bare
  `x.var()`, `x.std(0)` stay NumPy's ddof 0.  Eager tensors (`moment`) also take
  `dim=None`, `keepdim=False` and a bool first positional (`x.var(True)`) torch's way.
- `clip` is torch's clamp (x's gradient at a bound); np.clip, the function, shares it.
- a bool second positional is torch's keepdim: `x.sum(1, True)`, `x.any(0, True)`.
- `transpose(d0, d1)` with exactly two ints swaps them, as torch's (also for 2-D:
  NumPy's `transpose(0, 1)` there is the identity); one int per axis of a 3+-D array,
  a tuple, or no argument is NumPy's permutation.
- `repeat(2, 3)` (several positional ints) tiles, as torch's; `repeat(n)`,
  `repeat(counts)` and `repeat(n, axis=...)` are NumPy's element repeat.
- `flatten(start_dim, end_dim)`; a string positional is NumPy's order.
- `squeeze(d)` leaves a dim whose size is not one (torch), where NumPy raises.
- `sort(dim=...)`, `sort(d, True)` or `sort(descending=...)` return torch's (values,
  indices); `sort()` sorts in place, as NumPy's.  Descending orders (and `topk`) put NaN
  first: torch takes NaN as the largest value.
On eager tensors `view`, `reshape`, `flatten`, `squeeze`, `unsqueeze`, `t`, `transpose`,
`permute`, `movedim`, `expand`, `narrow`, `select`, `unbind` and `split` return views that
share storage (tracer/views.py); traced values have no storage to share.
`view(dtype)` reinterprets the bits of an eager tensor (equal item sizes).

>>> import numpy as np, tracegrad as tg
>>> x = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
>>> y = x.pow(2).sum(dim=1, keepdim=True)
>>> y.shape, x.size(1), x.unsqueeze(0).dim()
((2, 1), 3, 3)
>>> x.max(dim=1).indices.tolist()
[2, 2]
>>> x.transpose(0, 1).shape, x.repeat(2, 1).shape, x.sum(1, True).shape
((3, 2), (4, 3), (2, 1))
"""
from __future__ import annotations

import functools
from collections import namedtuple

import numpy as np

from tracegrad.ir import ops

from . import numpy as tnp
from .indexing import first_outside, setitem
from .numpy.constructors import constant_like

MinMax = namedtuple("MinMax", "values indices")  # torch.return_types.max / min
AminMax = namedtuple("AminMax", "min max")  # torch.return_types.aminmax


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


def is_flag(x) -> bool:
    return isinstance(x, (bool, np.bool_))


def keepdim_of(second, keepdim):
    """(NumPy's second positional, keepdim): torch's `x.sum(1, True)` passes keepdim where
    NumPy has a dtype or `out`, which a bool never is."""
    if is_flag(second):
        return None, keepdim or bool(second)
    return second, keepdim


def is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not is_flag(x)


def concrete(x):
    """An eager tensor's numpy buffer (for arguments that must be static: indices,
    counts); anything else as it is."""
    data = getattr(x, "_tg_concrete", None)
    return x if data is None else data()


def _check_range(name, index: np.ndarray, dim: int, size: int) -> None:
    """PyTorch's error for an index outside [-size, size) (a scatter would clamp it)."""
    k = first_outside(index, size)
    if k is not None:
        raise IndexError(f"{name}: index {k} is out of bounds for dim {dim} of size {size}")


def _torch_dtype(dtype):
    """A torch dtype object (torch.float32, from ported code) as numpy's, by its name;
    anything else as it is."""
    if type(dtype).__module__ == "torch" and str(dtype).startswith("torch."):
        return np.dtype(str(dtype)[len("torch."):])
    return dtype


def sizes_arg(sizes) -> tuple:
    """torch's size arguments: `f(2, 3)` or `f((2, 3))`."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        return tuple(sizes[0])
    return tuple(sizes)


def norm_dim(d, ndim: int) -> int:
    """torch's dim check: a 0-d array takes -1 and 0 (as 1-d)."""
    n = max(ndim, 1)
    if not -n <= d < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}],"
                         f" but got {d})")
    return d % n


def scalar_dim(x, dim):
    """torch's `dim` of a reduction: on a 0-d tensor, 0 or -1 (alone or in a tuple) name
    its one implicit dim, so the reduction takes every element (None); else `dim`."""
    if dim is None or len(tnp.shape(x)):
        return dim
    for d in dim if isinstance(dim, (tuple, list)) else (dim,):
        norm_dim(d, 0)
    return None


def torch_scan(fn, x, axis, dim, dtype, out):
    """cumsum/cumprod: NumPy's (a 0-d input gives one element in 1-D), or with torch's
    dim= of a 0-d tensor, torch's 0-d result."""
    axis = axis_of(axis, dim)
    if dim is None or len(tnp.shape(x)):
        return fn(x, axis, dtype, out)
    return tnp.reshape(fn(x, scalar_dim(x, dim), dtype, out), ())


def scalar_lanes(fn):
    """torch's reductions, scans and sorts along a dim take a 0-d tensor (dim 0 or -1) as
    one lane of one element and give 0-d results: `fn` on x as 1-D, reshaped back."""
    @functools.wraps(fn)
    def run(x, *args, **kwargs):
        if len(x.shape):
            return fn(x, *args, **kwargs)
        out = fn(tnp.reshape(x, (1,)), *args, **kwargs)
        if isinstance(out, tuple):
            parts = [_as_scalar(o) for o in out]
            return type(out)(*parts) if hasattr(out, "_fields") else tuple(parts)
        return _as_scalar(out)
    return run


def _as_scalar(x):
    return tnp.reshape(x, ()) if tnp.size(x) == 1 else x


def _in_place(name, fn):
    """torch's `x.relu_()`, `x.lerp_(end, w)` family: `fn(x, *args)` stored into x.  An
    eager tensor goes through its snapshot-and-rebase update (tensor.py, as its exp_; the
    arguments travel as the update's value, so that one requiring grad is recorded), a
    traced value records a functional update."""
    def method(self, *args, **kwargs):
        update = getattr(self, "_update", None)
        if update is not None:
            return update(name, lambda old, _: fn(old, *args, **kwargs),
                          args + tuple(kwargs.values()))
        self[...] = fn(self, *args, **kwargs)
        return self
    method.__name__ = method.__qualname__ = name
    return method


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

    def div(self, other, *, rounding_mode=None):
        return divide(self, other, rounding_mode)

    def neg(self):
        return -self

    def mm(self, other):
        return self @ other

    matmul = mm

    def bmm(self, other):
        if len(self.shape) != 3 or len(tnp.shape(other)) != 3:
            raise ValueError("bmm: both operands must be 3-D (batches of matrices)")
        return self @ other

    def outer(self, other):
        return tnp.outer(self, other)

    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        """beta * self + alpha * (mat1 @ mat2); beta=0 ignores self (NaN included), as torch."""
        return scaled_sum(self, mat1 @ mat2, beta, alpha)

    def clamp(self, min=None, max=None):
        return clamp(self, min, max)

    clip = clamp  # torch's clip is clamp (np.clip, the function, keeps NumPy's rule)

    def masked_fill(self, mask, value):
        """self where not mask, else value cast to self's dtype (torch's: the dtype stays)."""
        return tnp.where(mask, tnp.astype(value, self.dtype), self)

    def where(self, condition, other):
        return tnp.where(condition, self, other)

    # elementwise math and comparisons under torch's names
    def sign(self):
        return tnp.sign(self)

    def square(self):
        return tnp.square(self)

    def rsqrt(self):
        return tnp.reciprocal(tnp.sqrt(self))

    def reciprocal(self):
        """1 / self; integers and bools promote to float, as torch's (NumPy's stays int)."""
        if np.dtype(self.dtype).kind in "biu":
            return tnp.true_divide(1.0, self)
        return tnp.reciprocal(self)

    def floor(self):
        return tnp.floor(self)

    def ceil(self):
        return tnp.ceil(self)

    def trunc(self):
        return tnp.trunc(self)

    def isnan(self):
        return tnp.isnan(self)

    def isinf(self):
        return tnp.isinf(self)

    def isfinite(self):
        return tnp.isfinite(self)

    def eq(self, other):
        return tnp.equal(self, other)

    def ne(self, other):
        return tnp.not_equal(self, other)

    def gt(self, other):
        return tnp.greater(self, other)

    def lt(self, other):
        return tnp.less(self, other)

    def ge(self, other):
        return tnp.greater_equal(self, other)

    def le(self, other):
        return tnp.less_equal(self, other)

    # more elementwise math under torch's names (each has its in-place spelling below)
    def maximum(self, other):
        return tnp.maximum(self, other)

    def minimum(self, other):
        return tnp.minimum(self, other)

    def fmax(self, other):
        """The larger value, NaN only where both are; a tie gives self the whole gradient
        (torch's; NumPy-style fmax shares it)."""
        return nan_ignoring_pick(self, other, tnp.greater_equal)

    def fmin(self, other):
        return nan_ignoring_pick(self, other, tnp.less_equal)

    def atan2(self, other):
        return tnp.arctan2(self, other)

    arctan2 = atan2

    def hypot(self, other):
        return tnp.hypot(self, other)

    def sinh(self):
        return tnp.sinh(self)

    def cosh(self):
        return tnp.cosh(self)

    def erf(self):
        return tnp.erf(self)

    def erfc(self):
        return tnp.erfc(self)

    def lgamma(self):
        return tnp.lgamma(self)

    def digamma(self):
        return tnp.digamma(self)

    def frac(self):
        """self - trunc(self): the fractional part, with self's sign (gradient 1)."""
        return self - tnp.stop_gradient(tnp.trunc(self))

    def fmod(self, other):
        """C's remainder: the dividend's sign."""
        return tnp.fmod(self, other)

    def remainder(self, other):
        """Python's remainder: the divisor's sign."""
        return tnp.remainder(self, other)

    def lerp(self, end, weight):
        """torch's: from `self` for weight < 0.5, from `end` above (so weight 1 gives end
        exactly, whatever their magnitudes)."""
        w = weight if isinstance(weight, (int, float)) else tnp.asarray(weight)  # (weak)
        return tnp.where(w < 0.5, self + w * (end - self), end - (end - self) * (1 - w))

    def addcmul(self, tensor1, tensor2, *, value=1):
        return self + (tensor1 * tensor2 if value == 1 else value * tensor1 * tensor2)

    def addcdiv(self, tensor1, tensor2, *, value=1):
        return self + (tensor1 / tensor2 if value == 1 else value * (tensor1 / tensor2))

    def index_fill(self, dim, index, value):
        """self with the slices at `index` along dim set to `value` (no gradient there)."""
        d = norm_dim(dim, len(self.shape))
        return setitem(self, (slice(None),) * d + (concrete(index),),
                       tnp.astype(value, self.dtype))

    def index_add(self, dim, index, source, *, alpha=1):
        """self plus source's slices summed into the slices at `index` along dim."""
        d = norm_dim(dim, len(tnp.shape(source)))
        shape = tnp.shape(source)
        index = np.asarray(concrete(index))
        _check_range("index_add", index, d, tnp.shape(self)[d])
        lane = np.reshape(index, (-1,) + (1,) * (len(shape) - d - 1))
        src = source if alpha == 1 else source * alpha
        return ops.scatter_add(self, tnp.astype(src, self.dtype),
                               *along_grid(np.broadcast_to(lane, shape), d))

    def take_along_dim(self, indices, dim=None):
        if dim is None:
            return tnp.take_along_axis(tnp.reshape(self, (-1,)), tnp.reshape(indices, (-1,)), 0)
        return tnp.take_along_axis(self, indices, axis=dim)

    relu_ = _in_place("relu_", tnp.relu)
    abs_ = _in_place("abs_", tnp.absolute)
    neg_ = _in_place("neg_", tnp.negative)
    sin_ = _in_place("sin_", tnp.sin)
    cos_ = _in_place("cos_", tnp.cos)
    sinh_ = _in_place("sinh_", tnp.sinh)
    cosh_ = _in_place("cosh_", tnp.cosh)
    erf_ = _in_place("erf_", tnp.erf)
    erfc_ = _in_place("erfc_", tnp.erfc)
    lgamma_ = _in_place("lgamma_", tnp.lgamma)
    digamma_ = _in_place("digamma_", tnp.digamma)
    expm1_ = _in_place("expm1_", tnp.expm1)
    log1p_ = _in_place("log1p_", tnp.log1p)
    log2_ = _in_place("log2_", tnp.log2)
    log10_ = _in_place("log10_", tnp.log10)
    floor_ = _in_place("floor_", tnp.floor)
    ceil_ = _in_place("ceil_", tnp.ceil)
    trunc_ = _in_place("trunc_", tnp.trunc)
    sign_ = _in_place("sign_", tnp.sign)
    square_ = _in_place("square_", tnp.square)
    reciprocal_ = _in_place("reciprocal_", tnp.reciprocal)
    rsqrt_ = _in_place("rsqrt_", lambda x: tnp.reciprocal(tnp.sqrt(x)))
    frac_ = _in_place("frac_", frac)
    masked_fill_ = _in_place("masked_fill_", masked_fill)
    fmod_ = _in_place("fmod_", tnp.fmod)
    remainder_ = _in_place("remainder_", tnp.remainder)
    atan2_ = _in_place("atan2_", tnp.arctan2)
    tril_ = _in_place("tril_", tnp.tril)
    triu_ = _in_place("triu_", tnp.triu)
    clamp_min_ = _in_place("clamp_min_", lambda x, lo: clamp(x, lo, None))
    clamp_max_ = _in_place("clamp_max_", lambda x, hi: clamp(x, None, hi))
    nan_to_num_ = _in_place("nan_to_num_", tnp.nan_to_num)
    scatter_ = _in_place("scatter_", lambda x, *a, **k: TorchMethods.scatter(x, *a, **k))
    scatter_add_ = _in_place("scatter_add_", lambda x, *a: TorchMethods.scatter_add(x, *a))
    hypot_ = _in_place("hypot_", tnp.hypot)
    lerp_ = _in_place("lerp_", lerp)
    addcmul_ = _in_place("addcmul_", addcmul)
    addcdiv_ = _in_place("addcdiv_", addcdiv)
    index_fill_ = _in_place("index_fill_", index_fill)
    index_add_ = _in_place("index_add_", index_add)
    sigmoid_ = _in_place("sigmoid_", tnp.sigmoid)
    tanh_ = _in_place("tanh_", tnp.tanh)
    sqrt_ = _in_place("sqrt_", tnp.sqrt)
    log_ = _in_place("log_", tnp.log)

    # the rest of torch's in-place spellings on traced values (Tensor has its own, tensor.py):
    # NumPy's in-place operators, or a functional update of the whole value
    def add_(self, other, *, alpha=1):
        return self.__iadd__(other * alpha if alpha != 1 else other)

    def sub_(self, other, *, alpha=1):
        return self.__isub__(other * alpha if alpha != 1 else other)

    def mul_(self, other):
        return self.__imul__(other)

    def div_(self, other, *, rounding_mode=None):
        if rounding_mode is None:
            return self.__itruediv__(other)
        return _in_place("div_", lambda x, o: divide(x, o, rounding_mode))(self, other)

    def pow_(self, exponent):
        return self.__ipow__(exponent)

    exp_ = _in_place("exp_", tnp.exp)

    def clamp_(self, min=None, max=None):
        self[...] = clamp(self, min, max)
        return self

    clip_ = clamp_

    def zero_(self):
        self[...] = 0
        return self

    def fill_(self, value):
        self[...] = value
        return self

    def copy_(self, src):
        self[...] = src
        return self

    # reductions under torch's names (NumPy's are in array.py)
    def amax(self, dim=(), keepdim=False):
        return tnp.max(self, axis=None if dim in ((), []) else scalar_dim(self, dim),
                       keepdims=keepdim)

    def amin(self, dim=(), keepdim=False):
        return tnp.min(self, axis=None if dim in ((), []) else scalar_dim(self, dim),
                       keepdims=keepdim)

    @scalar_lanes
    def logsumexp(self, dim, keepdim=False):
        return tnp.logsumexp(self, axis=dim, keepdims=keepdim)

    @scalar_lanes
    def median(self, dim=None, keepdim=False):
        """torch's lower median: of all elements (a value), or (values, indices) along dim.
        The median of all elements shares its gradient evenly among the elements equal to
        it, as torch's does (along dim it goes to the index returned)."""
        if dim is None:
            return shared_among_ties(self, lower_median(tnp.reshape(self, (-1,)), 0, False).values)
        return lower_median(self, dim, keepdim)

    @scalar_lanes
    def cummax(self, dim):
        return running_extreme(self, dim, ops.cummax)

    @scalar_lanes
    def cummin(self, dim):
        return running_extreme(self, dim, ops.cummin)

    @scalar_lanes
    def logcumsumexp(self, dim):
        """log(cumsum(exp(x))) along dim: a log-depth scan of logaddexp (Hillis-Steele), so
        that each prefix keeps its own scale (shifting every prefix by the lane's maximum
        lost an early 0 beside a later 1000)."""
        x = tnp.moveaxis(self, dim, -1)
        n, shift = tnp.shape(x)[-1], 1
        while shift < n:
            x = tnp.concatenate([x[..., :shift], tnp.logaddexp(x[..., shift:], x[..., :n - shift])],
                                axis=-1)
            shift *= 2
        return tnp.moveaxis(x, -1, dim)

    def diff(self, n=1, dim=-1, prepend=None, append=None):
        return tnp.diff(self, n, dim, np._NoValue if prepend is None else prepend,
                        np._NoValue if append is None else append)

    def nansum(self, dim=None, keepdim=False, *, dtype=None):
        return tnp.nansum(self, axis=dim, keepdims=keepdim, dtype=dtype)

    def count_nonzero(self, dim=None):
        return tnp.astype(tnp.count_nonzero(self, axis=dim), np.int64)

    def norm(self, p="fro", dim=None, keepdim=False):
        return norm(self, p, dim, keepdim)

    def nanmean(self, dim=None, keepdim=False, *, dtype=None):
        return tnp.nanmean(self, axis=dim, keepdims=keepdim, dtype=dtype)

    def aminmax(self, *, dim=None, keepdim=False):
        """torch's (min, max) of all elements or along dim."""
        return AminMax(self.amin(() if dim is None else dim, keepdim),
                       self.amax(() if dim is None else dim, keepdim))

    @scalar_lanes
    def kthvalue(self, k, dim=-1, keepdim=False):
        """torch's (values, indices) of the k-th smallest (1-based) along dim, stably."""
        d = norm_dim(dim, max(len(self.shape), 1))
        order = sort_order(self, d, False)
        pick = tnp.take(order, np.array([k - 1]), axis=d)
        values = tnp.take_along_axis(self, pick, axis=d)
        return MinMax(*(v if keepdim else tnp.squeeze(v, d) for v in (values, pick)))

    # torch's spellings of NumPy functions
    def clamp_min(self, min):
        return self.clamp(min=min)

    def clamp_max(self, max):
        return self.clamp(max=max)

    def true_divide(self, other):
        return tnp.true_divide(self, other)

    def floor_divide(self, other):
        return tnp.floor_divide(self, other)

    def logical_not(self):
        return tnp.logical_not(self)

    def logaddexp(self, other):
        return tnp.logaddexp(self, other)

    def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
        return tnp.nan_to_num(self, nan=nan, posinf=posinf, neginf=neginf)

    def rot90(self, k=1, dims=(0, 1)):
        return tnp.rot90(self, k, tuple(dims))

    def fliplr(self):
        return tnp.fliplr(self)

    def flipud(self):
        return tnp.flipud(self)

    # shapes
    def view(self, *shape):
        """torch's view(shape) or view(dtype); NumPy's view() (no argument): the same shape."""
        if len(shape) == 1 and isinstance(shape[0], (type, np.dtype, str)):
            return bit_view(self, np.dtype(shape[0]))
        return self.reshape(*(shape or (self.shape,)))

    def view_as(self, other):
        return self.reshape(other.shape)

    reshape_as = view_as

    def permute(self, *dims):
        return tnp.transpose(self, sizes_arg(dims))

    def movedim(self, source, destination):
        if not len(self.shape):  # torch's 0-d tensor takes dims 0 and -1
            for d in (source, destination):
                scalar_dim(self, d)
            return tnp.reshape(self, ())
        return tnp.moveaxis(self, source, destination)

    def unsqueeze(self, dim):
        return tnp.expand_dims(self, dim)

    def unflatten(self, dim, sizes):
        d = norm_dim(dim, len(self.shape))
        return self.reshape(self.shape[:d] + tuple(sizes) + self.shape[d + 1:])

    def t(self):
        if len(self.shape) > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dimensions, but self is "
                             f"{len(self.shape)}D")
        return self.T

    def expand(self, *sizes):
        return tnp.broadcast_to(self, expanded_shape(self.shape, sizes_arg(sizes)))

    def expand_as(self, other):
        return self.expand(other.shape)

    def tile(self, *dims):
        return tnp.tile(self, sizes_arg(dims))

    def repeat_interleave(self, repeats, dim=None):
        """torch's: each element `repeats` times along dim (flattened when None)."""
        return tnp.repeat(self, concrete(repeats), axis=dim)

    @scalar_lanes
    def flip(self, *dims, **kwargs):
        """torch's flip(dims) (also `dims=`), NumPy's flip(axis=)."""
        if kwargs:
            (name, value), = kwargs.items()
            if name not in ("dims", "axis"):
                raise TypeError(f"flip() got an unexpected keyword argument '{name}'")
            return tnp.flip(self, value if name == "axis" else sizes_arg((value,)))
        return tnp.flip(self, sizes_arg(dims))

    def roll(self, shifts, dims=None):
        return tnp.roll(self, shifts, axis=dims)

    def tril(self, diagonal=0):
        return tnp.tril(self, diagonal)

    def triu(self, diagonal=0):
        return tnp.triu(self, diagonal)

    def contiguous(self):
        """self where its data is C-contiguous (a traced value always is), else a copy
        (torch's: writes to it leave self alone)."""
        data = getattr(self, "_tg_concrete", None)
        return self if data is None or data().flags.c_contiguous else self.clone()

    def clone(self):
        return tnp.copy(self)

    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def dim(self) -> int:
        return len(self.shape)

    # dtypes and devices
    # each gives self where the dtype is already the one asked for, as torch's (and to())
    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def long(self):
        return self.to(np.int64)

    def int(self):
        return self.to(np.int32)

    def bool(self):
        return self.to(np.bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    def is_floating_point(self) -> bool:
        return np.dtype(self.dtype).kind == "f"

    def to(self, *args, dtype=None, device=None, non_blocking=False, copy=False):
        """torch's forms: to(dtype), to(device, dtype), to(other) (its dtype), dtype= and
        device= keywords.  A device (a name such as "cpu") changes nothing: tracegrad
        computes on the CPU.  The same dtype gives self, as torch's."""
        for arg in args:
            if tnp.is_boxed(arg):
                dtype = arg.dtype
            elif not (arg is None or is_flag(arg) or _is_device(arg)):  # a flag: non_blocking
                dtype = arg
        dtype = _torch_dtype(dtype)
        if dtype is None or np.dtype(dtype) == np.dtype(self.dtype):
            return tnp.copy(self) if copy else self
        return tnp.astype(self, dtype)

    def cpu(self):
        return self

    @property
    def device(self) -> str:
        return "cpu"

    def new_zeros(self, *size, dtype=None):
        return self.new_full(sizes_arg(size), 0, dtype=dtype)

    def new_ones(self, *size, dtype=None):
        return self.new_full(sizes_arg(size), 1, dtype=dtype)

    def new_full(self, size, fill_value, *, dtype=None):
        """A constant of self's kind (a tensor for a tensor) and dtype; no gradient."""
        value = np.asarray(fill_value, self.dtype if dtype is None else dtype)
        return constant_like(self, value, tuple(size))

    # splitting and selecting
    def chunk(self, chunks, dim=0):
        """torch's: pieces of ceil(n / chunks) along dim (fewer pieces when that divides);
        an empty dim gives `chunks` empty pieces."""
        if chunks <= 0:
            raise ValueError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
        n = self.shape[norm_dim(dim, len(self.shape))]
        return self.split(-(-n // chunks) if n else [0] * chunks, dim)

    def split(self, split_size=None, dim=0, *, split_size_or_sections=None):
        """torch's: pieces of `split_size` along dim (the last shorter), or of the listed
        sizes (which must sum to the dim's size); `split_size_or_sections` is torch's
        keyword name for them."""
        split_size = split_size_or_sections if split_size is None else split_size
        dim = norm_dim(dim, len(self.shape))
        edges = np.cumsum(split_sizes(split_size, self.shape[dim]))[:-1]
        return tuple(tnp.split(self, [int(e) for e in edges], axis=dim))

    def unbind(self, dim=0):
        return tuple(self.select(dim, i) for i in range(self.shape[dim]))

    def select(self, dim, index):
        return self[(slice(None),) * norm_dim(dim, len(self.shape)) + (index,)]

    def narrow(self, dim, start, length):
        d = norm_dim(dim, len(self.shape))
        n = self.shape[d]
        start = start + n if start < 0 else start
        if not (0 <= start and 0 <= length and start + length <= n):
            raise IndexError(f"narrow: start ({start}) + length ({length}) exceeds dimension "
                             f"size ({n})")
        return self[(slice(None),) * d + (slice(start, start + length),)]

    @scalar_lanes
    def index_select(self, dim, index):
        """torch's: the dim is kept (a 0-d index selects one entry of it)."""
        return tnp.take(self, tnp.reshape(index, (-1,)), axis=dim)

    def masked_select(self, mask):
        x, m = tnp.broadcast_arrays(self, mask)
        return x[m]

    def gather(self, dim, index):
        """torch's: out[i][j] = self[index[i][j]][j] for dim 0 (the index may be smaller
        than self along the other dims); a 0-d self and index are one lane of one element."""
        if not len(self.shape) and not tnp.shape(index):
            norm_dim(dim, 0)
            return tnp.reshape(self.reshape(1)[along_grid(tnp.reshape(index, (1,)), 0)], ())
        return self[along_grid(index, dim)]

    def scatter(self, dim, index, src=None, *, value=None):
        """Out of place: self with self[index[i][j]][j] = src[i][j] for dim 0 (of
        duplicate positions the last in C order wins)."""
        return setitem(self, along_grid(index, dim), _updates(self, index, src, value))

    def scatter_add(self, dim, index, src):
        """Out of place: self plus src summed into self[index[i][j]][j] for dim 0."""
        values = concrete(index)
        if isinstance(values, np.ndarray):  # (a traced index is clamped: tracegrad's rule)
            d = norm_dim(dim, len(self.shape))
            _check_range("scatter_add", values, d, self.shape[d])
        return ops.scatter_add(self, _updates(self, index, src, None), *along_grid(index, dim))

    @scalar_lanes
    def topk(self, k, dim=-1, largest=True, sorted=True):
        """torch's (values, indices) of the k largest (smallest) along dim, in order."""
        n = self.shape[norm_dim(dim, len(self.shape))] if self.shape else 1
        if not 0 <= k <= n:
            raise RuntimeError(f"topk: selected index k={k} out of range for a dimension of "
                               f"size {n}")
        indices = tnp.take(sort_order(self, dim, largest), np.arange(k), axis=dim)
        return MinMax(tnp.take_along_axis(self, indices, axis=dim), indices)

    def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):
        """torch's (values[, inverse][, counts]); an eager tensor's count of unique values
        sizes the result, a traced value needs tracegrad.numpy.unique's size=."""
        if dim is not None:
            raise NotImplementedError("unique(dim=...): tracegrad's unique flattens")
        data = getattr(self, "_tg_concrete", None)
        if data is not None and data().size == 0:  # nothing to find: empty results, as torch's
            outs = [constant_like(self, np.zeros(0, self.dtype), (0,))]
            outs += [constant_like(self, np.zeros(self.shape, np.int64), self.shape)] * return_inverse
            outs += [constant_like(self, np.zeros(0, np.int64), (0,))] * return_counts
            return outs[0] if len(outs) == 1 else tuple(outs)
        size = None if data is None else max(len(np.unique(data())), 1)
        return tnp.unique(self, return_inverse=return_inverse, return_counts=return_counts,
                          size=size)

    # softmax family
    @scalar_lanes
    def softmax(self, dim, dtype=None):
        return tnp.softmax(self if dtype is None else tnp.astype(self, dtype), axis=dim)

    @scalar_lanes
    def log_softmax(self, dim, dtype=None):
        return tnp.log_softmax(self if dtype is None else tnp.astype(self, dtype), axis=dim)


def _is_device(x) -> bool:
    """A device name ("cpu") or a device object (torch.device), not a dtype."""
    return isinstance(x, str) or type(x).__name__ == "device"


def clamp(x, lo, hi):
    """torch's clamp: clip's value.  The gradient goes (torch's clamp_backward_min_max) to
    x where lo <= x <= hi, the bounds included (np.clip shares it at a bound, as JAX
    does); to lo where x < lo < hi; to hi where x > hi or hi < lo (hi is then the value);
    and nowhere else (x outside lo == hi, NaN)."""
    if lo is None and hi is None:
        raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
    out = tnp.stop_gradient(tnp.clip(x, lo, hi))
    for pick, value in reversed(_clamp_picks(x, lo, hi)):
        out = tnp.where(pick, value, out)
    return out


def _clamp_picks(x, lo, hi):
    """(condition, value) pairs in priority order; a bound that cannot carry a gradient (a
    constant) needs none, clip's value already holds it."""
    tests = [t for t in (lo is not None and tnp.greater_equal(x, lo),
                         hi is not None and tnp.less_equal(x, hi)) if t is not False]
    picks = [(tests[0] if len(tests) == 1 else tnp.logical_and(*tests), x)]
    if _traceable(lo):
        below = tnp.less(x, lo)
        picks.append((below if hi is None else tnp.logical_and(below, tnp.less(lo, hi)), lo))
    if _traceable(hi):
        above = tnp.greater(x, hi)
        picks.append((above if lo is None else tnp.logical_or(above, tnp.less(hi, lo)), hi))
    return picks


def nan_ignoring_pick(x, other, keep):
    """torch's fmax/fmin (`keep`: >= or <=): x where keep(x, other) or other is NaN, else
    other; the gradient goes to the value picked, to x at a tie."""
    pick = tnp.logical_or(keep(x, other), tnp.isnan(other))
    return tnp.where(pick, x, other)


def _traceable(x) -> bool:
    return tnp.is_boxed(x) or getattr(x, "_tg_symbolic", None) is not None


def divide(x, y, rounding_mode):
    """torch's div: true division, or rounded toward zero ('trunc') or down ('floor');
    the rounded quotients keep integer dtypes and have zero gradient, as torch's."""
    if rounding_mode is None:
        return x / y
    if rounding_mode == "floor":
        return tnp.floor_divide(x, y)
    if rounding_mode != "trunc":
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' "
                         f"but found {rounding_mode!r}")
    q = tnp.floor_divide(x, y)
    if np.dtype(tnp.result_type(q)).kind == "f":
        return tnp.trunc(tnp.divide(x, y))
    # an inexact quotient of opposite signs was floored one below its truncation
    off = tnp.logical_and(tnp.not_equal(tnp.remainder(x, y), 0),
                          tnp.not_equal(tnp.less(x, 0), tnp.less(y, 0)))
    return tnp.where(off, q + 1, q)


def expanded_shape(shape, sizes) -> tuple:
    """torch's expand: -1 keeps an existing dim; new dims lead and take no -1."""
    lead = len(sizes) - len(shape)
    if lead < 0:
        raise ValueError(f"expand: the number of sizes provided ({len(sizes)}) must be greater "
                         f"or equal to the number of dimensions in the tensor ({len(shape)})")
    if -1 in sizes[:lead]:
        raise ValueError(f"expand: the expanded size of the tensor (-1) isn't allowed in a "
                         f"leading, non-existing dimension {list(sizes[:lead]).index(-1)}")
    return tuple(shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))


def split_sizes(split_size, n: int) -> list:
    """torch's split: pieces of split_size (the last shorter; one empty piece for an
    empty dim), or the listed sizes, which must sum to n."""
    if not is_int(split_size):
        sizes = [int(s) for s in split_size]
        if sum(sizes) != n or min(sizes, default=0) < 0:
            raise ValueError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                             f"(input tensor's size at dimension), but got split_sizes={sizes}")
        return sizes
    if split_size < 0 or (split_size == 0 and n):
        raise ValueError(f"split expects split_size to be positive (0 only for an empty "
                         f"dimension), got {split_size} for a dimension of size {n}")
    if n == 0:
        return [0]
    return [split_size] * (n // split_size) + ([n % split_size] if n % split_size else [])


def along_grid(index, dim) -> tuple:
    """Index arrays of index's shape, one per axis: `index` on dim, each element's own
    position on the others, so that x[grid] reads x[i, ..., index[i, ..., k], ..., k]
    (torch's gather/scatter addressing)."""
    shape = tnp.shape(index)
    d = norm_dim(dim, len(shape))
    grid = [np.broadcast_to(np.arange(n).reshape((-1,) + (1,) * (len(shape) - a - 1)), shape)
            for a, n in enumerate(shape)]
    grid[d] = index
    return tuple(grid)


def _updates(x, index, src, value):
    """scatter's updates: src cut to index's shape, or the scalar value, in x's dtype."""
    shape = tnp.shape(index)
    if src is None or not tnp.shape(src):
        return tnp.broadcast_to(tnp.astype(value if src is None else src, x.dtype), shape)
    if tnp.shape(src) != shape:
        src = src[tuple(slice(0, n) for n in shape)]
    return tnp.astype(src, x.dtype)


UNSET = object()  # a keyword not given (torch's `dim=None` is a choice: all dims)


def moment(fn, x, axis, ddof, keepdims, dim, keepdim, unbiased, correction):
    """var/std (`fn`): NumPy's ddof 0, or torch's correction (default 1) when called
    torch's way: a keyword dim or keepdim given (None and False too), unbiased or
    correction, a bool first positional (`x.var(True)`: unbiased) or a bool second one
    (`x.std(1, True)`: unbiased)."""
    torch_call = dim is not UNSET or keepdim is not UNSET
    if is_flag(axis):  # a bool is never an axis: torch's var(unbiased)
        axis, unbiased = None, bool(axis) if unbiased is None else unbiased
        torch_call = True
    dim = None if dim is UNSET else dim
    keepdim = False if keepdim is UNSET else bool(keepdim)
    axis = axis_of(axis, dim)
    if torch_call or is_flag(ddof):  # (`x.std(0, True)`: torch's positional unbiased)
        axis = scalar_dim(x, axis)
    return fn(x, axis=axis, keepdims=keepdims or keepdim,
              ddof=_ddof(ddof, torch_call, unbiased, correction))


def _ddof(ddof, torch_call: bool, unbiased, correction):
    if correction is not None:  # a float correction stays one (torch's N - 1.5)
        return int(correction) if float(correction).is_integer() else float(correction)
    if unbiased is not None:
        return int(bool(unbiased))
    if ddof is not None:
        return int(ddof) if is_flag(ddof) else ddof
    return 1 if torch_call else 0


def lower_median(x, dim, keepdim):
    """torch's median along dim: the lower of the two middle values, and its index (its
    gradient goes to that element); NaN where the lane has one, at its first NaN."""
    d = norm_dim(dim, len(x.shape))
    n = x.shape[d] if x.shape else 1
    idx = tnp.take(sort_order(x, d, False), np.array([(n - 1) // 2]), axis=d)
    if np.dtype(x.dtype).kind == "f":
        nan = tnp.isnan(x)
        first_nan = tnp.argmax(nan, axis=d, keepdims=True)
        idx = tnp.where(tnp.any(nan, axis=d, keepdims=True), first_nan, idx)
    values = tnp.take_along_axis(x, idx, axis=d)
    if not keepdim:
        values, idx = tnp.squeeze(values, axis=d), tnp.squeeze(idx, axis=d)
    return MinMax(values, idx)


def scaled_sum(x, product, beta, alpha):
    """beta * x + alpha * product (torch's addmm family); beta == 0 ignores x, NaN included."""
    product = product if alpha == 1 else product * alpha
    return product if beta == 0 else (x if beta == 1 else x * beta) + product


def shared_among_ties(x, m):
    """The value `m` picked from x's elements, its gradient shared evenly among the
    elements equal to it (torch's median and nanmedian of all elements), in x's dtype."""
    m = tnp.stop_gradient(m)
    if np.dtype(x.dtype).kind != "f":
        return m
    ties = (x == m) | (tnp.isnan(x) & tnp.isnan(m))  # a nan median is a nan's
    count = tnp.astype(tnp.maximum(tnp.sum(ties), 1), x.dtype)
    shared = tnp.sum(tnp.where(ties, x - m, tnp.zeros((), x.dtype))) / count
    return tnp.where(tnp.isinf(m), m, m + shared)  # (inf - inf is no zero)


def running_extreme(x, dim, scan):
    """torch's cummax/cummin: the running extremum along dim and the index of its latest
    occurrence (torch's tie rule); the values are read there, so the gradient goes to it.
    The scan propagates NaN: from a lane's first NaN on, the value is NaN and the index
    that of the latest NaN so far (torch's)."""
    d = norm_dim(dim, len(x.shape))
    values = scan(x, d)
    lane = np.arange(x.shape[d] if x.shape else 1).reshape((-1,) + (1,) * (len(x.shape) - d - 1))
    hit = tnp.equal(x, values)
    if np.dtype(x.dtype).kind == "f":
        hit = tnp.logical_or(hit, tnp.isnan(x))
    at = tnp.where(hit, np.broadcast_to(lane, x.shape), 0)
    idx = ops.cummax(tnp.astype(at, np.int64), d)
    return MinMax(tnp.take_along_axis(x, idx, axis=d), idx)


def norm(x, p, dim, keepdim):
    """torch's norm: 'fro' and numbers are vector norms over dim (all elements when None,
    several dims taken together); 'nuc' is the nuclear matrix norm."""
    if p == "nuc":
        return tnp.linalg.norm(x, "nuc", axis=(-2, -1) if dim is None else dim,
                               keepdims=keepdim)
    return tnp.linalg.vector_norm(x, axis=scalar_dim(x, dim), keepdims=keepdim,
                                  ord=2 if p == "fro" else p)


def bit_view(x, dtype):
    """torch's view(dtype): the same bits read as dtype (equal item sizes); an eager
    tensor only (tracegrad has no bitcast primitive), with no gradient."""
    if dtype == np.dtype(x.dtype):
        return x.reshape(x.shape)
    if dtype.itemsize != np.dtype(x.dtype).itemsize:
        raise ValueError(f"view({dtype}): tracegrad reinterprets only between dtypes of one "
                         f"item size ({x.dtype} has {np.dtype(x.dtype).itemsize} bytes)")
    data = getattr(x, "_tg_concrete", None)
    if data is None:
        raise TypeError(f"view({dtype}) of a traced value: tracegrad has no bitcast "
                        f"primitive; call it on an eager tensor")
    return constant_like(x, np.ascontiguousarray(data()).view(dtype), x.shape)


def torch_repeat(x, sizes):
    """torch's repeat: x tiled sizes[i] times along dim i, new dims leading."""
    if len(sizes) < len(x.shape):
        raise ValueError("repeat: number of dimensions of repeat dims can not be smaller "
                         "than number of dimensions of tensor")
    return tnp.tile(x, tuple(sizes))


def squeeze_dims(x, dims):
    """NumPy's squeeze() of every size-one dim, or torch's squeeze(dims): a listed dim
    whose size is not one stays (NumPy would raise)."""
    if dims is None:
        return tnp.squeeze(x)
    nd = len(x.shape)
    dims = [norm_dim(d, nd) for d in (dims if isinstance(dims, (tuple, list)) else (dims,))]
    return tnp.squeeze(x, tuple(d for d in dims if nd and x.shape[d] == 1))


def flatten_dims(x, start_dim, end_dim):
    """torch's flatten: dims start_dim..end_dim merged into one (a 0-d array gives 1-d)."""
    shape = x.shape
    s, e = norm_dim(start_dim, len(shape)), norm_dim(end_dim, len(shape))
    if s > e:
        raise ValueError("flatten() has invalid args: start_dim cannot come after end_dim")
    if not shape:
        return tnp.reshape(x, (1,))
    merged = int(np.prod(shape[s:e + 1], dtype=np.int64))
    return tnp.reshape(x, shape[:s] + (merged,) + shape[e + 1:])


def sort_order(x, dim, descending):
    """The indices that sort x along dim, stably (torch's sort(stable=True) and topk).
    Descending is the ascending order of the reversed lane, reversed: ties keep their
    order, NaN (last ascending) comes first as torch's largest, and no negation is
    needed (bools, unsigned ints)."""
    if not descending:
        return tnp.argsort(x, axis=dim, kind="stable")
    rev = tnp.flip(tnp.argsort(tnp.flip(x, dim), axis=dim, kind="stable"), dim)
    return (x.shape[dim] - 1) - rev


@scalar_lanes
def torch_argsort(x, dim, descending, kind=None, stable=None):
    """torch's argsort along dim: descending is stable with NaN first (sort_order)."""
    if descending:
        return sort_order(x, dim, True)
    return tnp.argsort(x, dim, kind, stable=stable)


@scalar_lanes
def sorted_pair(x, dim, descending):
    """torch's sort: (values, indices)."""
    order = sort_order(x, dim, descending)
    return MinMax(tnp.take_along_axis(x, order, axis=dim), order)


_EXTREMES = {"max": (tnp.max, tnp.argmax, tnp.maximum),
             "min": (tnp.min, tnp.argmin, tnp.minimum)}


def extreme(name, x, axis, out, keepdims, dim):
    """max/min: NumPy's value; torch's (values, indices) when called with `dim` or a
    positional keepdim (`x.max(1, True)`); torch's elementwise maximum for x.max(other)."""
    reduce, arg, pairwise = _EXTREMES[name]
    if tnp.is_boxed(axis) or isinstance(axis, np.ndarray):
        return pairwise(x, axis)
    if is_flag(out):
        axis, dim, keepdims, out = None, axis_of(axis, dim), keepdims or bool(out), None
    if dim is None:
        return reduce(x, axis=axis, out=out, keepdims=keepdims)
    if not len(tnp.shape(x)):  # torch's 0-d tensor: one lane of one element
        norm_dim(dim, 0)
        values, idx = extreme(name, tnp.reshape(x, (1,)), None, None, False, 0)
        return MinMax(tnp.reshape(values, ()), tnp.reshape(idx, ()))
    # the values are read at the indices, so the gradient goes to that one element even
    # at ties (torch's), not shared as NumPy's max shares it
    idx = arg(x, axis=dim, keepdims=True)
    values = tnp.take_along_axis(x, idx, axis=dim)
    if not keepdims:
        values, idx = tnp.squeeze(values, axis=dim), tnp.squeeze(idx, axis=dim)
    return MinMax(values, idx)
