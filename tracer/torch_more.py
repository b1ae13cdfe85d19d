"""More of torch.Tensor's method names: the ones a port from PyTorch meets next (trig and
comparison spellings, linear algebra, statistics, scatters, in-place forms, random fills).

Like torch_methods.py, each is a composition of tracegrad.numpy functions, so gradients
flow through them, and each works on eager tensors and traced values alike, except where
a result's size depends on the data (`unique_consecutive`, `masked_scatter`'s count) or
the result is random (`uniform_`, `normal_`, `bernoulli`, `multinomial`...): those need
an eager tensor.  Random fills draw from NumPy's global generator (`np.random.seed` makes
them repeatable), as torch's draw from torch's.

>>> import numpy as np, tracegrad as tg
>>> x = tg.tensor([[4.0, 1.0], [2.0, 3.0]], requires_grad=True)
>>> round(float(x.det()), 12), x.greater(2.0).tolist(), x.unfold(1, 2, 1).shape
(10.0, [[True, False], [False, True]], (2, 1, 2))
>>> v, i = x.nanmedian(dim=1)
>>> v.tolist(), i.tolist()
([1.0, 2.0], [1, 0])
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from tracegrad.ir import ops

from . import numpy as tnp
from .indexing import setitem
from .numpy.constructors import constant_like
from .torch_methods import (_in_place as in_place, along_grid, concrete as _concrete, norm,
                            norm_dim, scalar_lanes, scaled_sum as _scaled_sum,
                            shared_among_ties, sizes_arg, sort_order, sorted_pair)

Values = namedtuple("Values", "values indices")  # torch.return_types.mode / nanmedian
SVD = namedtuple("SVD", "U S V")  # torch.return_types.svd: V, not V^H
QR = namedtuple("QR", "Q R")

_TYPE_NAMES = {"float64": "Double", "float32": "Float", "float16": "Half", "int64": "Long",
               "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte",
               "bool": "Bool"}


def _eager_data(x, name: str) -> np.ndarray:
    """The data of an eager tensor, for a method whose result depends on it."""
    data = getattr(x, "_tg_concrete", None)
    if data is None:
        raise TypeError(f"{name}: the result's size or values depend on the data (or are "
                        f"random), so it needs an eager tensor, not a traced value")
    return data()


def _constant(x, value):
    value = np.asarray(value)
    return constant_like(x, value, value.shape)


def _in_place(name, fn, cast=False):
    """torch_methods._in_place; `cast`: fn's result (a comparison's bools) in self's dtype."""
    return in_place(name, (lambda x, *a, **k: tnp.astype(fn(x, *a, **k), x.dtype)) if cast
                    else fn)


def _unary(fn):
    return lambda self: fn(self)


def _binary(fn):
    return lambda self, other: fn(self, other)


# torch name -> NumPy function of (self) or (self, other): aliases with the same meaning
_UNARY = {"tan": tnp.tan, "asin": tnp.arcsin, "acos": tnp.arccos, "atan": tnp.arctan,
          "asinh": tnp.arcsinh, "acosh": tnp.arccosh, "atanh": tnp.arctanh,
          "arcsin": tnp.arcsin, "arccos": tnp.arccos, "arctan": tnp.arctan,
          "arcsinh": tnp.arcsinh, "arccosh": tnp.arccosh, "arctanh": tnp.arctanh,
          "absolute": tnp.absolute, "negative": tnp.negative, "positive": tnp.positive,
          "deg2rad": tnp.deg2rad, "rad2deg": tnp.rad2deg, "sgn": tnp.sign,
          "signbit": tnp.signbit, "fix": tnp.trunc, "i0": tnp.i0, "sinc": tnp.sinc,
          "isposinf": tnp.isposinf, "isneginf": tnp.isneginf, "bitwise_not": tnp.invert,
          "exp2": tnp.exp2}
_BINARY = {"multiply": tnp.multiply, "greater": tnp.greater,
           "greater_equal": tnp.greater_equal, "less": tnp.less, "less_equal": tnp.less_equal,
           "not_equal": tnp.not_equal, "logical_and": tnp.logical_and,
           "logical_or": tnp.logical_or, "logical_xor": tnp.logical_xor,
           "bitwise_and": tnp.bitwise_and, "bitwise_or": tnp.bitwise_or,
           "bitwise_xor": tnp.bitwise_xor, "bitwise_left_shift": tnp.left_shift,
           "bitwise_right_shift": tnp.right_shift, "copysign": tnp.copysign,
           "heaviside": tnp.heaviside, "nextafter": tnp.nextafter, "gcd": tnp.gcd,
           "lcm": tnp.lcm, "logaddexp2": tnp.logaddexp2, "inner": tnp.inner,
           "kron": tnp.kron, "ger": tnp.outer, "arctan2": tnp.arctan2}
_BINARY_IN_PLACE = ("multiply", "copysign", "heaviside", "nextafter", "gcd", "lcm",
                    "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift",
                    "bitwise_right_shift", "arctan2", "logaddexp2")
# in-place forms whose result is a comparison's or logical op's bools, stored as self's dtype
_CAST = {"eq": tnp.equal, "ne": tnp.not_equal, "lt": tnp.less, "le": tnp.less_equal,
         "gt": tnp.greater, "ge": tnp.greater_equal, "greater": tnp.greater,
         "greater_equal": tnp.greater_equal, "less": tnp.less, "less_equal": tnp.less_equal,
         "not_equal": tnp.not_equal, "logical_and": tnp.logical_and,
         "logical_or": tnp.logical_or, "logical_xor": tnp.logical_xor,
         "logical_not": tnp.logical_not, "signbit": tnp.signbit}


def _diag_embed(x, offset):
    """out[..., i, i + offset] = x[..., i] (torch's diag_embed with its default dims)."""
    n = tnp.shape(x)[-1]
    m = n + abs(offset)
    pad = [(0, 0)] * (len(tnp.shape(x)) - 1) + [(0, m - n)]
    padded = tnp.pad(x, pad)
    eye = np.eye(m, k=offset, dtype=bool)
    lanes = padded[..., :, None] if offset >= 0 else padded[..., None, :]
    return tnp.where(eye, lanes, tnp.zeros((), x.dtype))


def _windows(x, d, size, step):
    """x's windows of `size` every `step` along dim d, as a new last dim (torch's unfold)."""
    n = tnp.shape(x)[d] if tnp.shape(x) else 1
    if size > n or step <= 0 or size < 0:
        raise RuntimeError(f"unfold: size {size} and step {step} do not fit a dimension of "
                           f"size {n} (need 0 <= size <= {n}, step > 0)")
    count = (n - size) // step + 1
    index = np.arange(count)[:, None] * step + np.arange(size)[None, :]
    moved = tnp.moveaxis(x, d, -1) if tnp.shape(x) else tnp.reshape(x, (1,))
    return tnp.moveaxis(moved[..., index], -2, d) if tnp.shape(x) else moved[index][0]


def _nan_lower_median(x, d, keepdim):
    """(values, indices) of the lower median of the non-NaN entries along d; NaN where
    all are NaN.  Ascending sorts put NaN last."""
    order = sort_order(x, d, False)
    count = tnp.sum(~tnp.isnan(x), axis=d, keepdims=True)
    n = tnp.shape(x)[d]  # all NaN: the middle of the lane, as torch's
    at = tnp.astype(tnp.where(count == 0, (n - 1) // 2, (count - 1) // 2), np.int64)
    index = tnp.take_along_axis(order, at, axis=d)
    values = tnp.take_along_axis(x, index, axis=d)
    if not keepdim:
        values, index = tnp.squeeze(values, d), tnp.squeeze(index, d)
    return Values(values, index)


def _mode(x, d, keepdim):
    """(values, indices) of the most frequent value along d, the smallest of equally
    frequent ones, at the last index holding it (torch's CPU rule)."""
    n = tnp.shape(x)[d]
    order = sort_order(x, d, False)
    s = tnp.take_along_axis(x, order, axis=d)
    s = tnp.moveaxis(s, d, -1)
    pos = np.arange(n)
    new_run = tnp.concatenate([tnp.ones(tnp.shape(s)[:-1] + (1,), bool),
                               s[..., 1:] != s[..., :-1]], axis=-1)
    first = ops.cummax(tnp.where(new_run, pos, 0), len(tnp.shape(s)) - 1)
    counts = tnp.take_along_axis(_run_lengths(new_run, pos), first, axis=-1)
    pick = tnp.argmax(counts, axis=-1, keepdims=True)  # the first maximum: smallest value
    value = tnp.take_along_axis(s, pick, axis=-1)
    last = tnp.max(tnp.where(tnp.moveaxis(x, d, -1) == value, pos, -1), axis=-1,
                   keepdims=True)
    values = tnp.moveaxis(tnp.take_along_axis(tnp.moveaxis(x, d, -1), last, axis=-1), -1, d)
    index = tnp.moveaxis(last, -1, d)
    if not keepdim:
        values, index = tnp.squeeze(values, d), tnp.squeeze(index, d)
    return Values(values, tnp.astype(index, np.int64))


def _run_lengths(new_run, pos):
    """At each run's first position, the run's length (elsewhere anything)."""
    n = len(pos)
    ends = tnp.concatenate([new_run[..., 1:], tnp.ones(tnp.shape(new_run)[:-1] + (1,), bool)],
                           axis=-1)  # position i ends a run
    last = tnp.flip(ops.cummin(tnp.flip(tnp.where(ends, pos, n), -1), len(tnp.shape(ends)) - 1), -1)
    return last - pos + 1


_ONE_ARGUMENT = object()  # random_(to) as against random_(start, None)


class TorchMoreMethods:
    __slots__ = ()

    # arithmetic spellings
    def divide(self, other, *, rounding_mode=None):
        return self.div(other, rounding_mode=rounding_mode)

    def subtract(self, other, *, alpha=1):
        return self.sub(other, alpha=alpha)

    def float_power(self, exponent):
        """self ** exponent in float64, as torch's."""
        return tnp.power(tnp.astype(self, np.float64), tnp.astype(exponent, np.float64))

    def ldexp(self, other):
        return self * tnp.exp2(tnp.astype(other, np.result_type(self.dtype, np.float32)))

    def logit(self, eps=None):
        """log(p / (1 - p)), p clamped to [eps, 1 - eps] when eps is given."""
        from tracegrad.scipy.special import logit
        return logit(self if eps is None else tnp.clip(self, eps, 1 - eps))

    def xlogy(self, other):
        from tracegrad.scipy.special import xlogy
        return xlogy(self, other)

    divide_ = _in_place("divide_", lambda x, y, **k: TorchMoreMethods.divide(x, y, **k))
    subtract_ = _in_place("subtract_", lambda x, y, **k: TorchMoreMethods.subtract(x, y, **k))
    logit_ = _in_place("logit_", lambda x, eps=None: TorchMoreMethods.logit(x, eps))
    xlogy_ = _in_place("xlogy_", lambda x, y: TorchMoreMethods.xlogy(x, y))
    ldexp_ = _in_place("ldexp_", lambda x, y: TorchMoreMethods.ldexp(x, y))
    round_ = _in_place("round_", lambda x, decimals=0: tnp.round(x, decimals))
    cumsum_ = _in_place("cumsum_", lambda x, dim: tnp.cumsum(x, axis=dim))
    cumprod_ = _in_place("cumprod_", lambda x, dim: tnp.cumprod(x, axis=dim))

    # comparisons with a Python answer
    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return tnp.isclose(self, other, rtol=rtol, atol=atol, equal_nan=equal_nan)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
        return bool(tnp.allclose(self, other, rtol=rtol, atol=atol, equal_nan=equal_nan))

    def equal(self, other) -> bool:
        """Same shape and the same values (torch.equal)."""
        return tuple(self.shape) == tuple(tnp.shape(other)) and bool(tnp.all(self == other))

    def is_nonzero(self) -> bool:
        if int(np.prod(self.shape)) != 1:
            raise RuntimeError(f"is_nonzero: a tensor with {int(np.prod(self.shape))} "
                               f"elements has no single truth value")
        return bool(tnp.reshape(self, ()) != 0)

    def is_same_size(self, other) -> bool:
        return tuple(self.shape) == tuple(tnp.shape(other))

    # linear algebra
    def det(self):
        return tnp.linalg.det(self)

    def logdet(self):
        """log(det): NaN for a negative determinant, -inf for a singular matrix."""
        return tnp.log(tnp.linalg.det(self))

    def slogdet(self):
        return tnp.linalg.slogdet(self)

    def inverse(self):
        return _factorized(self, tnp.linalg.inv(self), "inverse", "singular")

    def pinverse(self, rcond=1e-15):
        return tnp.linalg.pinv(self, rcond=rcond)

    def matrix_power(self, n):
        return tnp.linalg.matrix_power(self, n)

    def cholesky(self, upper=False):
        low = _factorized(self, tnp.linalg.cholesky(self), "cholesky", "not positive-definite")
        return tnp.swapaxes(low, -1, -2) if upper else low

    def qr(self, some=True):
        return QR(*tnp.linalg.qr(self, mode="reduced" if some else "complete"))

    def svd(self, some=True, compute_uv=True):
        """torch's (U, S, V) with A = U diag(S) V^T (V, not V^T); compute_uv=False gives
        zero U and V, as torch's."""
        u, s, vh = tnp.linalg.svd(self, full_matrices=False)
        if not some or not compute_uv:  # full U and V (S's gradient from the reduced one)
            u, _, vh = tnp.linalg.svd(tnp.stop_gradient(self), full_matrices=True)
        if not compute_uv:
            u, vh = tnp.zeros_like(u), tnp.zeros_like(vh)
        return SVD(u, s, tnp.swapaxes(vh, -1, -2))

    def mv(self, vec):
        if len(self.shape) != 2 or len(tnp.shape(vec)) != 1:
            raise RuntimeError(f"mv: a matrix and a vector, got {len(self.shape)}-D and "
                               f"{len(tnp.shape(vec))}-D")
        return self @ vec

    def vdot(self, other):
        if len(self.shape) != 1 or len(tnp.shape(other)) != 1:
            raise RuntimeError("vdot: 1-D tensors expected")
        return tnp.vdot(self, other)

    def cross(self, other, dim=None):
        """torch.Tensor.cross: along dim, or the first dim of size 3 when None."""
        shape = tnp.broadcast_shapes(tuple(self.shape), tuple(tnp.shape(other)))
        if dim is None:
            dim = next((d for d, n in enumerate(shape) if n == 3), None)
            if dim is None:
                raise RuntimeError(f"cross: no dimension of size 3 in {shape}")
        return tnp.cross(self, other, axis=dim)

    def dist(self, other, p=2):
        """The p-norm of self - other, flattened."""
        return norm(tnp.reshape(self - other, (-1,)), p, None, False)

    def cov(self, *, correction=1, fweights=None, aweights=None):
        """NumPy's cov (rows are variables); a float32 tensor's stays float32, as torch's."""
        return _as_float_of(self, tnp.cov(self, ddof=correction, fweights=fweights,
                                          aweights=aweights))

    def corrcoef(self):
        return _as_float_of(self, tnp.corrcoef(self))

    def addmv(self, mat, vec, *, beta=1, alpha=1):
        return _scaled_sum(self, mat @ vec, beta, alpha)

    def addr(self, vec1, vec2, *, beta=1, alpha=1):
        return _scaled_sum(self, tnp.outer(vec1, vec2), beta, alpha)

    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
        return _scaled_sum(self, batch1 @ batch2, beta, alpha)

    def addbmm(self, batch1, batch2, *, beta=1, alpha=1):
        return _scaled_sum(self, tnp.sum(batch1 @ batch2, axis=0), beta, alpha)

    def diag(self, diagonal=0):
        return tnp.diag(self, diagonal)

    def diagflat(self, offset=0):
        return tnp.diagflat(self, offset)

    def diag_embed(self, offset=0, dim1=-2, dim2=-1):
        out = _diag_embed(self, offset)
        nd = len(self.shape) + 1
        if (dim1 % nd, dim2 % nd) == (nd - 2, nd - 1):
            return out
        return tnp.moveaxis(out, (-2, -1), (dim1, dim2))

    def renorm(self, p, dim, maxnorm):
        """Each slice along dim whose p-norm exceeds maxnorm scaled down to it (torch's
        factor maxnorm / (norm + 1e-7))."""
        d = norm_dim(dim, len(self.shape))
        others = tuple(a for a in range(len(self.shape)) if a != d)
        norms = norm(self, p, others, True) if others else tnp.abs(self)
        return self * tnp.where(norms > maxnorm, maxnorm / (norms + 1e-7), 1.0)

    renorm_ = _in_place("renorm_", lambda x, p, dim, maxnorm: TorchMoreMethods.renorm(
        x, p, dim, maxnorm))

    # shapes and layout
    def nelement(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def ndimension(self) -> int:
        return len(self.shape)

    def element_size(self) -> int:
        return np.dtype(self.dtype).itemsize

    def is_contiguous(self, memory_format=None) -> bool:
        data = getattr(self, "_tg_concrete", None)
        return True if data is None else bool(data().flags.c_contiguous)

    def stride(self, dim=None):
        """Strides in elements: an eager tensor's own (a view's are its base's), a traced
        value's C order."""
        data = getattr(self, "_tg_concrete", None)
        size = np.dtype(self.dtype).itemsize
        if data is not None:
            strides = tuple(s // size for s in data().strides)
        else:
            strides = tuple(int(np.prod(self.shape[i + 1:], dtype=np.int64))
                            for i in range(len(self.shape)))
        return strides if dim is None else strides[norm_dim(dim, len(self.shape))]

    def is_complex(self) -> bool:
        return np.dtype(self.dtype).kind == "c"

    def is_signed(self) -> bool:
        return np.dtype(self.dtype).kind in "if"

    @property
    def is_cuda(self) -> bool:
        return False

    @property
    def is_cpu(self) -> bool:
        return True

    def get_device(self) -> int:
        return -1  # torch's answer for a CPU tensor

    def broadcast_to(self, size):
        """torch's: a -1 keeps that dim's size."""
        from .torch_methods import expanded_shape
        return tnp.broadcast_to(self, expanded_shape(tuple(self.shape), tuple(size)))

    def moveaxis(self, source, destination):
        return tnp.moveaxis(self, source, destination)

    def msort(self):
        return sorted_pair(self, 0, False)[0]

    def tensor_split(self, indices_or_sections, dim=0):
        sections = np.asarray(_concrete(indices_or_sections))
        sections = int(sections) if sections.ndim == 0 else [int(i) for i in sections]
        return tuple(tnp.array_split(self, sections, axis=dim))

    def hsplit(self, sections):
        return tuple(tnp.hsplit(self, sections))

    def vsplit(self, sections):
        return tuple(tnp.vsplit(self, sections))

    def dsplit(self, sections):
        return tuple(tnp.dsplit(self, sections))

    def split_with_sizes(self, split_sizes, dim=0):
        return self.split(list(split_sizes), dim)

    def narrow_copy(self, dim, start, length):
        return tnp.copy(self.narrow(dim, start, length))

    def unfold(self, dimension, size, step):
        """torch's: the windows of `size` every `step` along `dimension`, that dimension now
        counting windows and a new last one of size `size` (a copy, not a view)."""
        return _windows(self, norm_dim(dimension, len(self.shape)), size, step)

    def sum_to_size(self, *size):
        """Summed down to `size`, to which self's shape must broadcast (the reverse of
        expand: the gradient of a broadcast)."""
        size = sizes_arg(size)
        if tnp.broadcast_shapes(size, tuple(self.shape)) != tuple(self.shape):
            raise RuntimeError(f"sum_to_size: size {size} is not expandable to "
                               f"{tuple(self.shape)}")
        lead = len(self.shape) - len(size)
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(size)
                                          if n == 1 and self.shape[lead + i] != 1)
        return tnp.reshape(tnp.sum(self, axis=axes, keepdims=True), size) if axes else self

    def new_tensor(self, data, dtype=None):
        """A constant copy of `data` (no gradient), of self's dtype unless given."""
        return _constant(self, np.array(_concrete(data), self.dtype if dtype is None else dtype))

    def new_empty(self, *size, dtype=None):
        return self.new_zeros(*size, dtype=dtype)

    # dtypes: tracegrad computes in float32/64, int32/64 and bool; the others raise there
    def half(self):
        return self.to(np.float16)

    def bfloat16(self):
        raise TypeError("bfloat16: NumPy, and so tracegrad, has no bfloat16; use float32")

    def short(self):
        return self.to(np.int16)

    def char(self):
        return self.to(np.int8)

    def byte(self):
        return self.to(np.uint8)

    def type(self, dtype=None):
        """Without an argument torch's type name ('torch.DoubleTensor'); with a dtype or
        such a name, self converted."""
        if dtype is None:
            return f"torch.{_TYPE_NAMES.get(np.dtype(self.dtype).name, '')}Tensor"
        if isinstance(dtype, str) and dtype.startswith("torch."):
            name = dtype[len("torch."):-len("Tensor")] if dtype.endswith("Tensor") else ""
            found = [k for k, v in _TYPE_NAMES.items() if v == name]
            if not found:
                raise ValueError(f"type({dtype!r}): tracegrad knows the CPU tensor types "
                                 f"{', '.join(f'torch.{v}Tensor' for v in _TYPE_NAMES.values())}")
            dtype = found[0]
        return self.to(np.dtype(dtype))

    # statistics
    @scalar_lanes
    def nanmedian(self, dim=None, keepdim=False):
        """torch's lower median ignoring NaN: of all elements (a value, its gradient
        shared among the elements equal to it), or (values, indices) along dim; NaN where
        all are NaN (indexed at the lane's middle: torch's index there is unspecified)."""
        if dim is None:
            flat = tnp.reshape(self, (-1,))
            return shared_among_ties(self, _nan_lower_median(flat, 0, False).values)
        return _nan_lower_median(self, norm_dim(dim, len(self.shape)), keepdim)

    @scalar_lanes
    def mode(self, dim=-1, keepdim=False):
        """torch's (values, indices): the most frequent value along dim (the smallest of
        equally frequent ones) and the last index holding it."""
        return _mode(self, norm_dim(dim, len(self.shape)), keepdim)

    @scalar_lanes
    def quantile(self, q, dim=None, keepdim=False, *, interpolation="linear"):
        """NumPy's quantile (q's dim first), in self's float dtype, as torch's."""
        return _as_float_of(self, tnp.quantile(self, _q(q), axis=dim, keepdims=keepdim,
                                               method=interpolation))

    @scalar_lanes
    def nanquantile(self, q, dim=None, keepdim=False, *, interpolation="linear"):
        return _as_float_of(self, tnp.nanquantile(self, _q(q), axis=dim, keepdims=keepdim,
                                                  method=interpolation))

    def histc(self, bins=100, min=0, max=0):
        """Counts (self's dtype) in `bins` equal bins over [min, max] (the data's range when
        both are 0); values outside are left out."""
        if min == max:  # the data's range, as torch's
            data = _eager_data(self, "histc(min=max)")
            min, max = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
            if not (np.isfinite(min) and np.isfinite(max)):
                raise RuntimeError(f"histc: range of [{min}, {max}] is not finite")
        if min == max:
            min, max = min - 1, max + 1
        counts, _ = tnp.histogram(self, bins, range=(min, max))
        return tnp.astype(counts, self.dtype)

    def bincount(self, weights=None, minlength=0):
        """Counts (int64), or sums of float weights in the weights' dtype, as torch's."""
        out = tnp.bincount(self, weights, minlength=minlength)
        return out if weights is None else _as_float_of(weights, out)

    def unique_consecutive(self, return_inverse=False, return_counts=False, dim=None):
        """torch's: each run of equal consecutive values once (of the flattened data)."""
        if dim is not None:
            raise NotImplementedError("unique_consecutive(dim=...): tracegrad's flattens")
        data = _eager_data(self, "unique_consecutive").reshape(-1)
        starts = np.flatnonzero(np.concatenate([[True], data[1:] != data[:-1]])) if data.size \
            else np.zeros(0, np.int64)
        outs = [_constant(self, data[starts])]
        if return_inverse:
            inverse = np.cumsum(np.isin(np.arange(data.size), starts)) - 1
            outs.append(_constant(self, inverse.reshape(self.shape).astype(np.int64)))
        if return_counts:
            outs.append(_constant(self, np.diff(np.append(starts, data.size)).astype(np.int64)))
        return outs[0] if len(outs) == 1 else tuple(outs)

    # writing into copies
    @scalar_lanes
    def index_copy(self, dim, index, source):
        """self with its slices at `index` along dim replaced by source's."""
        d = norm_dim(dim, len(self.shape))
        return setitem(self, (slice(None),) * d + (np.asarray(_concrete(index)),),
                       tnp.astype(source, self.dtype))

    def index_put(self, indices, values, accumulate=False):
        """self with self[indices] = values (+= with accumulate: repeated indices add up)."""
        key = tuple(_concrete(i) for i in indices)
        if accumulate:
            return self.at[key].add(tnp.astype(values, self.dtype))
        return setitem(self, key, tnp.astype(values, self.dtype))

    def masked_scatter(self, mask, source):
        """self with the positions where mask is True (broadcast) taking source's elements
        in order."""
        where = np.broadcast_to(np.asarray(_eager_data(mask, "masked_scatter") if
                                           tnp.is_boxed(mask) else mask), self.shape)
        flat = np.flatnonzero(where)
        n = tnp.size(source)
        if n < len(flat):
            raise RuntimeError(f"masked_scatter: the mask selects {len(flat)} elements, the "
                               f"source has {n}")
        taken = tnp.reshape(source, (-1,))[:len(flat)]
        out = setitem(tnp.reshape(self, (-1,)), flat, tnp.astype(taken, self.dtype))
        return tnp.reshape(out, self.shape)

    def slice_scatter(self, src, dim=0, start=None, end=None, step=1):
        d = norm_dim(dim, len(self.shape))
        return setitem(self, (slice(None),) * d + (slice(start, end, step),),
                       tnp.astype(src, self.dtype))

    def select_scatter(self, src, dim, index):
        d = norm_dim(dim, len(self.shape))
        return setitem(self, (slice(None),) * d + (index,), tnp.astype(src, self.dtype))

    def diagonal_scatter(self, src, offset=0, dim1=0, dim2=1):
        """self with its diagonal (as torch's diagonal(offset, dim1, dim2) reads it, the
        diagonal's axis last in src) replaced by src."""
        moved = tnp.moveaxis(self, (dim1, dim2), (0, 1))
        rows, cols = moved.shape[0], moved.shape[1]
        n = max(0, min(rows, cols - offset) if offset >= 0 else min(rows + offset, cols))
        i = np.arange(n) + max(-offset, 0)
        out = setitem(moved, (i, i + offset), tnp.moveaxis(tnp.astype(src, self.dtype), -1, 0))
        return tnp.moveaxis(out, (0, 1), (dim1, dim2))

    def scatter_reduce(self, dim, index, src, reduce, *, include_self=True):
        """torch's with reduce "sum" or "mean" (a mean counts self's value when
        include_self); positions no index reaches keep self's value."""
        if reduce not in ("sum", "mean"):
            raise NotImplementedError(f"scatter_reduce(reduce={reduce!r}): tracegrad has "
                                      f"'sum' and 'mean'")
        grid = along_grid(index, dim)
        hit = ops.scatter_add(tnp.zeros(self.shape, self.dtype),
                              tnp.ones(tnp.shape(index), self.dtype), *grid)
        base = self if include_self else tnp.where(hit > 0, tnp.zeros((), self.dtype), self)
        total = ops.scatter_add(base, tnp.astype(src, self.dtype)[_lead(index)], *grid)
        if reduce == "sum":
            return total
        count = hit + (1 if include_self else 0)
        return tnp.where(hit > 0, total / tnp.maximum(count, 1), self) if \
            np.dtype(self.dtype).kind == "f" else tnp.where(hit > 0, total // tnp.maximum(
                count, 1), self)

    def fill_diagonal_(self, fill_value, wrap=False):
        """In place: the main diagonal (all dims equal) set to fill_value; `wrap` restarts
        it every cols + 1 rows of a tall matrix, as NumPy's."""
        shape = self.shape
        if len(shape) > 2 and len(set(shape)) != 1:
            raise RuntimeError("fill_diagonal_: all dimensions of a >2-D tensor must be equal")
        n = min(shape)
        rows = np.arange(n)
        if wrap and len(shape) == 2 and shape[0] > shape[1] + 1:
            rows = np.arange(0, shape[0] * shape[1], shape[1] + 1) // shape[1]
        key = (rows,) + tuple(np.arange(len(rows)) % shape[1] if wrap and len(shape) == 2
                              else np.arange(n) for _ in shape[1:])
        self[key] = fill_value
        return self

    index_copy_ = _in_place("index_copy_", lambda x, *a: TorchMoreMethods.index_copy(x, *a))
    index_put_ = _in_place("index_put_", lambda x, *a, **k: TorchMoreMethods.index_put(
        x, *a, **k))
    masked_scatter_ = _in_place("masked_scatter_", lambda x, *a: TorchMoreMethods.masked_scatter(
        x, *a))
    scatter_reduce_ = _in_place("scatter_reduce_", lambda x, *a, **k:
                                TorchMoreMethods.scatter_reduce(x, *a, **k))

    def put_(self, index, source, accumulate=False):
        """In place: self's flattened positions `index` set to (or with accumulate,
        increased by) source's elements."""
        flat = tnp.reshape(self, (-1,))
        key = np.asarray(_concrete(index)).reshape(-1)
        values = tnp.astype(tnp.reshape(source, (-1,)), self.dtype)
        out = flat.at[key].add(values) if accumulate else setitem(flat, key, values)
        self[...] = tnp.reshape(out, self.shape)
        return self

    # random fills and draws (eager tensors; NumPy's global generator)
    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        return _fill(self, "uniform_", floats=True, draw=lambda n: np.random.uniform(a, b, n))

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        return _fill(self, "normal_", floats=True, draw=lambda n: np.random.normal(mean, std, n))

    def bernoulli_(self, p=0.5, *, generator=None):
        p = np.broadcast_to(_concrete(p), self.shape)
        if not np.all((p >= 0) & (p <= 1)):
            raise RuntimeError("bernoulli_ expects p to be in [0, 1]")
        return _fill(self, "bernoulli_", lambda n: np.random.random_sample(n) < p)

    def exponential_(self, lambd=1.0, *, generator=None):
        return _fill(self, "exponential_", floats=True, draw=lambda n: np.random.exponential(1.0 / lambd, n))

    def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
        return _fill(self, "log_normal_", floats=True, draw=lambda n: np.random.lognormal(mean, std, n))

    def cauchy_(self, median=0.0, sigma=1.0, *, generator=None):
        return _fill(self, "cauchy_", floats=True, draw=lambda n: median + sigma * np.random.standard_cauchy(n))

    def geometric_(self, p, *, generator=None):
        return _fill(self, "geometric_", lambda n: np.random.geometric(p, n))

    def random_(self, start=0, to=_ONE_ARGUMENT, *, generator=None):
        """Integers in [start, to); `random_(to)`: [0, to); none, or `to=None`: up to
        2**24 for float32 and 2**53 for float64 (torch's mantissa bound) inclusive."""
        if to is _ONE_ARGUMENT:
            start, to = (0, start) if start != 0 else (0, None)
        if to is None:
            to = _mantissa_bound(self.dtype)
        return _fill(self, "random_", lambda n: np.random.randint(start, to, n, np.int64))

    def bernoulli(self, *, generator=None):
        """1 with probability self (element by element), else 0, in self's dtype."""
        p = _eager_data(self, "bernoulli")
        return _constant(self, (np.random.random_sample(p.shape) < p).astype(p.dtype))

    def multinomial(self, num_samples, replacement=False, *, generator=None):
        """Indices drawn by the (unnormalized) weights in each row."""
        p = _eager_data(self, "multinomial")
        if p.dtype.kind != "f" or p.ndim not in (1, 2):
            raise RuntimeError("multinomial: the weights must be a 1-D or 2-D float tensor")
        rows = np.atleast_2d(p).astype(np.float64)
        if not (np.all(np.isfinite(rows)) and np.all(rows >= 0) and np.all(rows.sum(-1) > 0)):
            raise RuntimeError("multinomial: invalid distribution (the weights must be "
                               "finite, non-negative, with a positive sum in each row)")
        if not replacement and num_samples > rows.shape[-1]:
            raise RuntimeError(f"multinomial: cannot draw {num_samples} samples without "
                               f"replacement from {rows.shape[-1]} categories")
        draws = np.stack([_draw(r, num_samples, replacement) for r in rows])
        return _constant(self, draws if p.ndim == 2 else draws[0])


def _attach(cls):
    """The table-made methods: aliases and their in-place forms."""
    for name, fn in _UNARY.items():
        setattr(cls, name, _unary(fn))
        setattr(cls, name + "_", _in_place(name + "_", fn))
    for name, fn in _BINARY.items():
        setattr(cls, name, _binary(fn))
    for name, fn in _CAST.items():
        setattr(cls, name + "_", _in_place(name + "_", fn, cast=True))
    for name in _BINARY_IN_PLACE:
        setattr(cls, name + "_", _in_place(name + "_", _BINARY[name]))


_attach(TorchMoreMethods)


def _q(q):
    """A quantile's q: a tensor's values, a 0-d one as a number."""
    q = _concrete(q)
    return float(q) if np.ndim(q) == 0 else q


def _as_float_of(x, out):
    """`out` in x's float dtype (torch keeps float32 where NumPy's rule gives float64)."""
    dtype = np.dtype(x.dtype)
    return tnp.astype(out, dtype) if dtype.kind == "f" and out.dtype != dtype else out


def _lead(index):
    """src[:index's shape] (torch uses only that part of a larger src)."""
    return tuple(slice(0, n) for n in tnp.shape(index))


def _mantissa_bound(dtype) -> int:
    """One past torch's largest default random_ value: 2**mantissa bits for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return 2 ** (np.finfo(dtype).nmant + 1) + 1
    return int(np.iinfo(dtype).max) if dtype.kind in "iu" else 2


def _factorized(x, out, name, what):
    """`out`, or torch's error where an eager tensor's factorization failed (NaN from
    finite input: tracegrad.numpy.linalg returns NaN there, as JAX's)."""
    data, result = getattr(x, "_tg_concrete", None), getattr(out, "_tg_concrete", None)
    if data is not None and result is not None and np.all(np.isfinite(data())) and \
            np.isnan(result()).any():
        raise np.linalg.LinAlgError(f"{name}: the input is {what}")
    return out


def _draw(weights, n, replacement):
    """n category indices by the weights; without replacement the zero-weight categories
    follow the others in a random order, as torch's."""
    if replacement:
        return np.random.choice(len(weights), n, p=weights / weights.sum())
    positive = np.flatnonzero(weights > 0)
    k = min(n, len(positive))
    first = np.random.choice(positive, k, replace=False, p=weights[positive] / weights.sum())
    rest = np.random.permutation(np.flatnonzero(weights == 0))[:n - k]
    return np.concatenate([first, rest]).astype(np.int64)


def _fill(x, name, draw, floats=False):
    """x's values replaced, in place, by `draw(shape)` in x's dtype (no gradient);
    `floats`: a distribution over the reals, which torch refuses for other dtypes."""
    _eager_data(x, name)
    if floats and np.dtype(x.dtype).kind != "f":
        raise TypeError(f"{name}: a float distribution, not implemented for {x.dtype} "
                        f"tensors (as torch's)")
    values = np.asarray(draw(tuple(x.shape))).astype(x.dtype)
    return _in_place(name, lambda old: _constant(old, values))(x)
