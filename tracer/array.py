"""`ArrayMixin`: the operators, methods and NumPy protocols shared by eager
tensors and traced values.  Every method calls the NumPy-like namespace, so the
two kinds of arrays cannot drift apart.

A class using the mixin provides `shape`, `dtype` and `aval`, and is a boxed
value (`_tg_trace`) that `ir.ops.bind` dispatches on.

>>> import numpy as np
>>> from tracegrad.tracer import tensor
>>> x = tensor([[1.0, 2.0], [3.0, 4.0]])
>>> (x.T @ x).sum(axis=0).tolist()
[24.0, 34.0]
>>> np.mean(np.tanh(x)).shape  # plain NumPy code dispatches to tracegrad.numpy
()
"""
from __future__ import annotations

import numpy as np

from . import numpy as tnp
from .dtypes import is_weak
from .indexing import getitem
from .torch_more import TorchMoreMethods
from .torch_methods import (
    Size, TorchMethods, axis_of, concrete, extreme, flatten_dims, is_flag, is_int, keepdim_of,
    UNSET, moment, scalar_dim, sorted_pair, squeeze_dims, torch_argsort,
    torch_repeat, torch_scan,
)


def _operand_like(x) -> bool:
    """Operands the arithmetic operators accept (anything else: NotImplemented)."""
    return (is_weak(x) or tnp.is_boxed(x) or isinstance(x, (np.ndarray, np.generic, list, tuple))
            or getattr(x, "_tg_symbolic", None) is not None)


def _binary(fn, reflected=False):
    def op(self, other):
        if not _operand_like(other):
            return NotImplemented
        return fn(other, self) if reflected else fn(self, other)
    op.__name__ = fn.__name__
    return op


def _versus_none(fn, none_result: bool):
    compare = _binary(fn)

    def op(self, other):
        if other is None:
            return self._compared_with_none(none_result)
        return compare(self, other)
    op.__name__ = fn.__name__
    return op


def _axes_arg(axes):
    # x.transpose((1, 0)) and x.transpose() work as in NumPy (two ints: see transpose).
    if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
        return axes[0]
    return axes or None


class ArrayMixin(TorchMethods, TorchMoreMethods):
    __slots__ = ()
    __array_priority__ = 1000
    # Elementwise == makes instances unhashable by default; identity hashing (as
    # torch.Tensor) keeps them usable as dict keys.
    __hash__ = object.__hash__

    __add__, __radd__ = _binary(tnp.add), _binary(tnp.add, True)
    __sub__, __rsub__ = _binary(tnp.subtract), _binary(tnp.subtract, True)
    __mul__, __rmul__ = _binary(tnp.multiply), _binary(tnp.multiply, True)
    __truediv__, __rtruediv__ = _binary(tnp.divide), _binary(tnp.divide, True)
    __pow__, __rpow__ = _binary(tnp.power), _binary(tnp.power, True)
    __matmul__, __rmatmul__ = _binary(tnp.matmul), _binary(tnp.matmul, True)
    __lt__, __le__ = _binary(tnp.less), _binary(tnp.less_equal)
    __gt__, __ge__ = _binary(tnp.greater), _binary(tnp.greater_equal)
    __eq__, __ne__ = _versus_none(tnp.equal, False), _versus_none(tnp.not_equal, True)

    def _compared_with_none(self, result: bool):
        """`x == None`: PyTorch's Python bool (traced arrays give NumPy's elementwise one)."""
        return result
    __and__, __rand__ = _binary(tnp.bitwise_and), _binary(tnp.bitwise_and, True)
    __or__, __ror__ = _binary(tnp.bitwise_or), _binary(tnp.bitwise_or, True)
    __xor__, __rxor__ = _binary(tnp.bitwise_xor), _binary(tnp.bitwise_xor, True)
    __floordiv__, __rfloordiv__ = _binary(tnp.floor_divide), _binary(tnp.floor_divide, True)
    __mod__, __rmod__ = _binary(tnp.remainder), _binary(tnp.remainder, True)
    __divmod__, __rdivmod__ = _binary(tnp.divmod), _binary(tnp.divmod, True)
    __lshift__, __rlshift__ = _binary(tnp.left_shift), _binary(tnp.left_shift, True)
    __rshift__, __rrshift__ = _binary(tnp.right_shift), _binary(tnp.right_shift, True)
    # elementwise math methods and attributes of NumPy arrays (tracer/numpy/math.py)
    real, imag = property(tnp.real), property(tnp.imag)

    def round(self, decimals=0, out=None):
        return tnp.round(self, decimals, out)

    def conjugate(self):
        return tnp.conjugate(self)

    conj = conjugate

    def __neg__(self):
        return tnp.negative(self)

    def __pos__(self):
        return tnp.positive(self)  # a new value, as NumPy's copy: `x[i] = v` does not reach it

    def __abs__(self):
        return tnp.absolute(self)

    def __invert__(self):
        return tnp.invert(self)

    @property
    def at(self):
        """JAX's indexed updates, `x.at[idx].set(v)` / `.add(v)` / ...: new arrays (at.py)."""
        from .at import At  # at.py builds on indexing and tracegrad.numpy
        return At(self)

    def __getitem__(self, idx):
        return getitem(self, idx)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    # ---- NumPy protocols ---------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return tnp.dispatch_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return tnp.dispatch_function(func, args, kwargs)

    # ---- properties ------------------------------------------------------------------
    @property
    def size(self) -> Size:
        return Size(self.shape)  # an int, also callable as torch's size() (torch_methods.py)

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def nbytes(self) -> int:
        return int(self.size) * self.itemsize

    def __round__(self, ndigits=None):
        """Python's round(): NumPy's round to `ndigits` decimals (an array, as NumPy's)."""
        return tnp.round(self, 0 if ndigits is None else ndigits)

    @property
    def T(self):
        return tnp.transpose(self)

    # ---- methods (NumPy's, plus a few PyTorch conveniences) ----------------------------
    def abs(self):
        return tnp.absolute(self)

    # reductions take torch's dim/keepdim as well, and a bool second positional is torch's
    # keepdim (`x.sum(1, True)`), never NumPy's dtype or out (torch_methods.py)
    def sum(self, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None,
            *, dim=None, keepdim=False):
        dtype, keepdim = keepdim_of(dtype, keepdim)
        return tnp.sum(self, axis=axis_of(axis, scalar_dim(self, dim)), dtype=dtype, out=out,
                       keepdims=keepdims or keepdim, initial=initial, where=where)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, *, where=None, dim=None,
             keepdim=False):
        dtype, keepdim = keepdim_of(dtype, keepdim)
        return tnp.mean(self, axis=axis_of(axis, scalar_dim(self, dim)), dtype=dtype, out=out,
                        keepdims=keepdims or keepdim, where=where)

    def __contains__(self, value) -> bool:
        """`v in x`: whether any element equals `v` (NumPy's and PyTorch's, at any rank)."""
        return bool(tnp.any(tnp.equal(self, value)))

    def var(self, axis=None, ddof=None, keepdims=False, *, dim=UNSET, keepdim=UNSET,
            unbiased=None, correction=None):
        """NumPy's var (ddof 0), or torch's (correction 1) when called torch's way
        (torch_methods.moment): `x.var(dim=None)`, `x.var(True)`, `x.var(correction=1.5)`."""
        return moment(tnp.var, self, axis, ddof, keepdims, dim, keepdim, unbiased, correction)

    def std(self, axis=None, ddof=None, keepdims=False, *, dim=UNSET, keepdim=UNSET,
            unbiased=None, correction=None):
        return moment(tnp.std, self, axis, ddof, keepdims, dim, keepdim, unbiased, correction)

    def any(self, axis=None, out=None, keepdims=False, *, where=None, dim=None, keepdim=False):
        """Whether any element (along `axis`) is nonzero; False for no elements."""
        out, keepdim = keepdim_of(out, keepdim)
        return tnp.any(self, axis=axis_of(axis, dim), out=out, keepdims=keepdims or keepdim,
                       where=where)

    def all(self, axis=None, out=None, keepdims=False, *, where=None, dim=None, keepdim=False):
        """Whether every element (along `axis`) is nonzero; True for no elements."""
        out, keepdim = keepdim_of(out, keepdim)
        return tnp.all(self, axis=axis_of(axis, dim), out=out, keepdims=keepdims or keepdim,
                       where=where)

    def max(self, axis=None, out=None, keepdims=False, initial=None, where=None, *, dim=None,
            keepdim=UNSET):
        """NumPy's max; torch's (values, indices) with dim= or `max(d, True)`, torch's
        elementwise maximum with an array (`x.max(y)`)."""
        dim, axis, keepdim = _torch_keepdim(axis, dim, keepdim)
        if initial is not None or where is not None:
            return tnp.max(self, axis, out, keepdims or keepdim, initial, where)
        return extreme("max", self, axis, out, keepdims or keepdim, dim)

    def min(self, axis=None, out=None, keepdims=False, initial=None, where=None, *, dim=None,
            keepdim=UNSET):
        """NumPy's min; torch's (values, indices) with dim= or `min(d, True)`, torch's
        elementwise minimum with an array (`x.min(y)`)."""
        dim, axis, keepdim = _torch_keepdim(axis, dim, keepdim)
        if initial is not None or where is not None:
            return tnp.min(self, axis, out, keepdims or keepdim, initial, where)
        return extreme("min", self, axis, out, keepdims or keepdim, dim)

    # sorting and reductions (tracer/numpy/sorting.py, reductions.py)
    def prod(self, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None,
             *, dim=None, keepdim=False):
        dtype, keepdim = keepdim_of(dtype, keepdim)
        return tnp.prod(self, axis_of(axis, scalar_dim(self, dim)), dtype, out, keepdims or keepdim,
                        initial, where)

    def ptp(self, axis=None, out=None, keepdims=False):
        return tnp.ptp(self, axis, out, keepdims)

    def cumsum(self, axis=None, dtype=None, out=None, *, dim=None):
        return torch_scan(tnp.cumsum, self, axis, dim, dtype, out)

    def cumprod(self, axis=None, dtype=None, out=None, *, dim=None):
        return torch_scan(tnp.cumprod, self, axis, dim, dtype, out)

    # A bool where NumPy takes `out` or `kind` is torch's positional keepdim / descending
    # (`x.argmax(1, True)`, `x.argsort(1, True)`): no NumPy out or kind is a bool.
    def argmax(self, axis=None, out=None, *, keepdims=False, dim=None, keepdim=False):
        out, keepdim = (None, out) if isinstance(out, bool) else (out, keepdim)
        return tnp.argmax(self, axis_of(axis, dim), out, keepdims=keepdims or keepdim)

    def argmin(self, axis=None, out=None, *, keepdims=False, dim=None, keepdim=False):
        out, keepdim = (None, out) if isinstance(out, bool) else (out, keepdim)
        return tnp.argmin(self, axis_of(axis, dim), out, keepdims=keepdims or keepdim)

    def argsort(self, axis=-1, kind=None, order=None, *, dim=None, descending=False,
                stable=None):
        """NumPy's argsort; torch's dim= and descending= (stable, NaN first descending)."""
        axis = axis if dim is None else dim
        kind, descending = (None, kind) if isinstance(kind, bool) else (kind, descending)
        if dim is not None or descending:
            return torch_argsort(self, axis, descending, kind, stable)
        return tnp.argsort(self, axis, kind, order, stable=stable)

    def sort(self, axis=-1, kind=None, order=None, *, dim=None, descending=None, stable=None):
        """In place, as NumPy's: recorded as the functional update `x[...] = sorted`.
        A copy is sorted, so that the update leaves what sort's backward keeps intact.
        Called torch's way (dim=, descending=, or `sort(d, True)`: a bool is no NumPy kind)
        it returns torch's (values, indices), stably."""
        if is_flag(kind):
            dim, descending = axis, kind
        if dim is not None or descending is not None:
            return sorted_pair(self, -1 if dim is None else dim, descending)
        self[...] = tnp.sort(tnp.copy(self), axis, kind, order)

    def searchsorted(self, v, side="left", sorter=None):
        return tnp.searchsorted(self, v, side, sorter)

    def partition(self, kth, axis=-1, kind="introselect", order=None):
        """In place, as NumPy's (the sorted order, a valid partition)."""
        self[...] = tnp.partition(tnp.copy(self), kth, axis, kind, order)

    def argpartition(self, kth, axis=-1, kind="introselect", order=None):
        return tnp.argpartition(self, kth, axis, kind, order)

    def take(self, indices, axis=None, out=None, mode=None):
        return tnp.take(self, indices, axis=axis, out=out, mode=mode)

    def nonzero(self):
        """NumPy's: a tuple of index arrays, one per axis (PyTorch's stacks them)."""
        return tnp.nonzero(self)

    def choose(self, choices, out=None, mode="raise"):
        return tnp.choose(self, choices, out=out, mode=mode)

    def compress(self, condition, axis=None, out=None):
        return tnp.compress(condition, self, axis=axis, out=out)

    def reshape(self, *shape, order="C"):
        return tnp.reshape(self, shape[0] if len(shape) == 1 else shape, order=order)

    def transpose(self, *axes):
        """NumPy's permutation (`transpose()`, `transpose(axes)`, one int per axis), but
        exactly two ints are torch's swap of those dims: for a 2-D array NumPy's
        `transpose(0, 1)` would be the identity, which nobody writes."""
        if len(axes) == 2 and is_int(axes[0]) and is_int(axes[1]):
            return tnp.swapaxes(self, *axes)
        return tnp.transpose(self, _axes_arg(axes))

    def swapaxes(self, axis1, axis2):
        return tnp.swapaxes(self, axis1, axis2)

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        """NumPy's astype: `casting` is checked as np.can_cast checks it; `order` and
        `subok` change nothing here (values have no memory order of their own)."""
        if casting != "unsafe" and not np.can_cast(self.dtype, dtype, casting):
            raise TypeError(f"Cannot cast array data from {np.dtype(self.dtype)!r} to "
                            f"{np.dtype(dtype)!r} according to the rule {casting!r}")
        return tnp.astype(self, dtype, copy=copy)

    def flatten(self, start_dim=0, end_dim=-1, *, order="C"):
        """NumPy's flatten(order), or torch's flatten(start_dim, end_dim)."""
        if isinstance(start_dim, str):
            start_dim, order = 0, start_dim
        if order != "C":
            return tnp.copy(tnp.ravel(self, order))
        return tnp.copy(flatten_dims(self, start_dim, end_dim))  # NumPy's flatten copies

    def ravel(self, order="C"):
        return tnp.ravel(self, order)

    def squeeze(self, axis=None, *, dim=None):
        """NumPy's squeeze; a listed dim whose size is not one stays, as torch's."""
        return squeeze_dims(self, axis_of(axis, dim))

    def expand_dims(self, axis):
        return tnp.expand_dims(self, axis)

    def clip(self, min=None, max=None):
        return tnp.clip(self, min, max)

    def dot(self, other):
        return tnp.dot(self, other)

    def sigmoid(self):
        return tnp.sigmoid(self)

    def relu(self):
        return tnp.relu(self)

    # structure (tracer/numpy/structure.py)
    def repeat(self, *sizes, repeats=None, axis=None):
        """NumPy's element repeat (`repeat(n)`, `repeat(counts)`, `repeat(n, axis=1)`), but
        several positional ints are torch's repeat, which tiles: `x.repeat(2, 3)`."""
        if len(sizes) > 1:
            return torch_repeat(self, sizes)
        return tnp.repeat(self, concrete(sizes[0] if sizes else repeats), axis)

    def diagonal(self, offset=0, axis1=0, axis2=1, *, dim1=None, dim2=None):
        return tnp.diagonal(self, offset, axis1 if dim1 is None else dim1,
                            axis2 if dim2 is None else dim2)

    def trace(self, offset=0, axis1=0, axis2=1, dtype=None):
        return tnp.trace(self, offset, axis1, axis2, dtype)

    def copy(self, order="K"):
        """A copy; `order` (NumPy's memory layout) changes no value, so it is only checked."""
        if order not in ("C", "F", "A", "K"):
            raise ValueError(f"copy: order must be one of 'C', 'F', 'A' or 'K', got {order!r}")
        return tnp.copy(self)

    def fill(self, value):
        """Set every element to `value`, in place (a functional update, as x[...] = value)."""
        self[...] = tnp.full_like(self, value)

    def put(self, indices, values, mode="raise"):
        """NumPy's in-place put; an eager index tensor is taken as its (static) values."""
        tnp.put(self, concrete(indices), values, mode)

    @property
    def mT(self):
        return tnp.matrix_transpose(self)


def _method(f):
    def method(self):
        return f(self)
    method.__name__ = method.__qualname__ = f.__name__
    method.__doc__ = f.__doc__
    return method


def _torch_keepdim(axis, dim, keepdim):
    """(dim, axis, keepdim) of max/min: the keyword keepdim is torch's, so a positional
    axis then is torch's dim (`x.max(1, keepdim=True)` gives (values, indices))."""
    if keepdim is UNSET:
        return dim, axis, False
    if dim is None and isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return axis, None, bool(keepdim)
    return dim, axis, bool(keepdim)


# x.exp(), x.tanh(), ...: one method per float function of the primitive table.
for _name, _f in tnp.UFUNCS.items():
    setattr(ArrayMixin, _name, _method(_f))


