"""Fast paths of the commonest eager tensor operations.

`tracegrad.numpy` promotes dtypes, makes broadcasting explicit and normalizes axes
before it binds a primitive.  Where that has nothing to decide (float tensors of one
dtype, a float tensor with a Python scalar, which NumPy 2 casts to the tensor's dtype,
a 2-D matrix product whose inner dimensions agree, a full reduction) the tensor's
operator binds the primitive itself: the same primitive, operands, result and backward
node as the general path, with fewer layers in between.  Everything else, errors
included, takes the general path.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir.primitives import PRIMITIVES

from . import numpy as tnp
from .array import ArrayMixin, _binary, _method
from .numpy._core import _broadcast

BINARY = (("add", "add", tnp.add), ("sub", "subtract", tnp.subtract),
          ("mul", "multiply", tnp.multiply), ("truediv", "divide", tnp.divide))
PRIMITIVE_OF = {"add": "add", "subtract": "sub", "multiply": "mul", "divide": "div"}


def install_fast_paths(cls, trace):
    """Give eager tensor class `cls` (whose trace object is `trace`) the fast operators."""
    for dunder, name, fn in BINARY:
        setattr(cls, f"__{dunder}__", _fast_binary(cls, trace, name, fn))
        setattr(cls, f"__r{dunder}__", _fast_binary(cls, trace, name, fn, reflected=True))
    cls.__matmul__ = _fast_matmul(cls, trace)
    cls.__neg__ = _fast_unary(trace, PRIMITIVES["neg"], tnp.negative)
    for prim in PRIMITIVES.values():  # x.exp(), x.tanh(), ...: the float unary methods
        if prim.numpy_name in tnp.UFUNCS:
            setattr(cls, prim.numpy_name, _fast_unary(trace, prim, tnp.UFUNCS[prim.numpy_name]))
    cls.sum, cls.mean = _fast_sum(trace), _fast_mean()


def _plain_operand(cls, self, other):
    """`other` as it reaches the primitive beside float tensor `self` after promotion,
    or None when promotion has work to do (then the general path decides)."""
    data = self._data
    if data.dtype.kind != "f":
        return None
    if type(other) is cls:
        return other if other._data.dtype == data.dtype else None
    if type(other) is float or type(other) is int:
        return np.asarray(other, data.dtype)  # a rank-0 literal, as `_lift` makes it
    return None


def _fast_binary(cls, trace, name, fn, reflected=False):
    prim, general = PRIMITIVES[PRIMITIVE_OF[name]], _binary(fn, reflected)

    def op(self, other):
        o = _plain_operand(cls, self, other)
        if o is None:
            return general(self, other)
        args = (o, self) if reflected else (self, o)
        shape = self._data.shape
        # explicit broadcasts, as tracegrad.numpy makes them (rank 0 broadcasts implicitly)
        if o.shape != shape and o.shape and shape:
            args = _broadcast(name, args)
        return trace.process(prim, tuple(args), {})
    op.__name__ = general.__name__
    return op


def _fast_matmul(cls, trace):
    prim, general = PRIMITIVES["dot"], _binary(tnp.matmul)

    def matmul(self, other):
        if type(other) is cls:
            x, y = self._data, other._data
            if (x.ndim == 2 and y.ndim == 2 and x.dtype == y.dtype and x.dtype.kind == "f"
                    and x.shape[1] == y.shape[0]):
                return trace.process(prim, (self, other), {})
        return general(self, other)
    matmul.__name__ = general.__name__
    return matmul


def _fast_unary(trace, prim, fn):
    general = _method(fn)

    def method(self):
        if self._data.dtype.kind != "f":
            return general(self)
        return trace.process(prim, (self,), {})
    method.__name__ = method.__qualname__ = general.__name__
    method.__doc__ = general.__doc__
    return method


def _full_float_reduction(self, axis, dtype, keepdims) -> bool:
    data = self._data
    return axis is None and dtype is None and not keepdims and data.dtype.kind == "f" \
        and data.ndim > 0


def _fast_sum(trace):
    prim = PRIMITIVES["reduce_sum"]

    def sum(self, axis=None, dtype=None, keepdims=False):
        if not _full_float_reduction(self, axis, dtype, keepdims):
            return ArrayMixin.sum(self, axis, dtype, keepdims)
        return trace.process(prim, (self,), {"axes": tuple(range(self._data.ndim))})
    sum.__doc__ = ArrayMixin.sum.__doc__
    return sum


def _fast_mean():
    def mean(self, axis=None, dtype=None, keepdims=False):
        if not _full_float_reduction(self, axis, dtype, keepdims):
            return ArrayMixin.mean(self, axis, dtype, keepdims)
        return self.sum() / float(self._data.size)  # tracegrad.numpy's mean: sum / count
    mean.__doc__ = ArrayMixin.mean.__doc__
    return mean
