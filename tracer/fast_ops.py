"""Fast paths of the commonest eager tensor operations.

`tracegrad.numpy` promotes dtypes, makes broadcasting explicit and normalizes axes
before it binds a primitive.  Where that has nothing to decide (float tensors of one
dtype, a float tensor with a Python scalar, which NumPy 2 casts to the tensor's dtype,
a 2-D matrix product whose inner dimensions agree, a full reduction) the tensor's
operator binds the primitive itself: the same primitive, operands, result and backward
node as the general path, with fewer layers in between.  Everything else, errors
included, takes the general path.

The plain backward (tracer.autograd.PLAIN_VJPS) gets rules of the same primitives on
numpy arrays: the values of each primitive's own VJP, computed by the same primitives'
`run` (native kernel or numpy impl), without bind's and the VJP helpers' layers.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir.primitives import PRIMITIVES

from . import numpy as tnp
from .array import ArrayMixin, _binary, _method
from .autograd import PLAIN_VJPS, Fresh, fp_quiet, fp_restore
from .numpy._core import _broadcast

BINARY = (("add", "add", tnp.add), ("sub", "subtract", tnp.subtract),
          ("mul", "multiply", tnp.multiply), ("truediv", "divide", tnp.divide))
PRIMITIVE_OF = {"add": "add", "subtract": "sub", "multiply": "mul", "divide": "div"}
ADD, SUB, MUL, DIV, NEG = (PRIMITIVES[n] for n in ("add", "sub", "mul", "div", "neg"))
DOT, REDUCE_SUM, BROADCAST = PRIMITIVES["dot"], PRIMITIVES["reduce_sum"], PRIMITIVES["broadcast"]
# the numpy ufunc each exactly rounded float primitive's impl applies to float operands
UFUNC_OF = {ADD: np.add, SUB: np.subtract, MUL: np.multiply, DIV: np.true_divide,
            NEG: np.negative}
# `out=...` makes a ufunc return a rank-0 result as an array (NumPy >= 2.3), not a scalar
_ARRAY_OUT = ... if isinstance(np.negative(np.zeros(()), out=...), np.ndarray) else None


def evaluate(prim, x, y):
    """`prim.run(x, y)` for an exactly rounded float primitive (UFUNC_OF) on operands of
    one float dtype (a Python float takes that dtype, as in the impl).  Rank-0 operands,
    which no native kernel takes and where the impl's fixed costs (promotion, errstate)
    are all there is, go to the ufunc directly with numpy's warnings off: an exactly
    rounded result is the same whoever computes it."""
    if (type(x) is not float and x.ndim) or (type(y) is not float and y.ndim):
        return prim.run(x, y)
    token = fp_quiet()
    try:
        out = UFUNC_OF[prim](x, y, out=_ARRAY_OUT)
    finally:
        fp_restore(token)
    return out if type(out) is np.ndarray else np.asarray(out)


def _run(prim, *operands):
    """`evaluate` of one or two operands where numpy's warnings are already off (the
    plain backward rules)."""
    for x in operands:
        if type(x) is not float and x.ndim:
            return prim.run(*operands)
    out = UFUNC_OF[prim](*operands, out=_ARRAY_OUT)
    return out if type(out) is np.ndarray else np.asarray(out)


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
        shape, oshape = self._data.shape, o.shape if type(o) is np.ndarray else o._data.shape
        # explicit broadcasts, as tracegrad.numpy makes them (rank 0 broadcasts implicitly)
        if oshape != shape and oshape and shape:
            args = _broadcast_tensors(trace, name, args)
        return trace.exact(prim, *args)
    op.__name__ = general.__name__
    return op


def _broadcast_tensors(trace, name, args):
    """Two tensors of one dtype and different shapes broadcast to their common shape, each
    by a broadcast node where its shape differs (tracegrad.numpy's `_broadcast`, whose
    error an incompatible pair gets)."""
    try:
        shape = np.broadcast_shapes(args[0]._data.shape, args[1]._data.shape)
    except ValueError:
        return _broadcast(name, args)
    return [a if a._data.shape == shape else trace.broadcast(a, shape) for a in args]


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

    def sum(self, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None,
            *, dim=None, keepdim=False):
        if (dim is not None or keepdim or out is not None or initial is not None
                or where is not None or not _full_float_reduction(self, axis, dtype, keepdims)):
            return ArrayMixin.sum(self, axis, dtype, out, keepdims, initial, where, dim=dim,
                                  keepdim=keepdim)
        return trace.process(prim, (self,), {"axes": tuple(range(self._data.ndim))})
    sum.__doc__ = ArrayMixin.sum.__doc__
    return sum


def _fast_mean():
    def mean(self, axis=None, dtype=None, out=None, keepdims=False, *, where=None, dim=None,
             keepdim=False):
        if (dim is not None or keepdim or out is not None or where is not None
                or not _full_float_reduction(self, axis, dtype, keepdims)):
            return ArrayMixin.mean(self, axis, dtype, out, keepdims, where=where, dim=dim,
                                   keepdim=keepdim)
        return self.sum() / float(self._data.size)  # tracegrad.numpy's mean: sum / count
    mean.__doc__ = ArrayMixin.mean.__doc__
    return mean


# ---- plain backward rules -------------------------------------------------------------------
# Each is its primitive's VJP (ir/elementwise.py, linalg.py, reductions.py, structural.py)
# transcribed onto numpy arrays, term for term (g * (1/y), not g / y), where the operands
# are arrays of g's dtype and the shapes need no broadcasting; None sends the rest to the
# primitive's own VJP.  They run under tracer.autograd's quiet error state.

def _fits(g, arrays) -> bool:
    """g and every operand: float ndarrays of one dtype and shape."""
    if type(g) is not np.ndarray:
        return False
    shape, dtype = g.shape, g.dtype
    for a in arrays:
        if type(a) is not np.ndarray or a.shape != shape or a.dtype != dtype:
            return False
    return dtype.kind == "f"


def _add_vjp(g, out, operands, needed, params):
    if not _fits(g, operands):
        return None
    return (g if needed[0] else None, g if needed[1] else None)


def _sub_vjp(g, out, operands, needed, params):
    if not _fits(g, operands):
        return None
    return (g if needed[0] else None, _run(NEG, g) if needed[1] else None)


def _mul_vjp(g, out, operands, needed, params):
    if not _fits(g, operands):
        return None
    x, y = operands
    if _all_ones(g):  # 1 * v is v exactly (signed zeros, infinities and NaNs too)
        return (y if needed[0] else None, x if needed[1] else None)
    if x is y and needed[0] and needed[1]:  # x * x: the two cotangents are one value
        ct = _run(MUL, g, x)
        return (ct, ct)
    return (_run(MUL, g, y) if needed[0] else None, _run(MUL, g, x) if needed[1] else None)


def _all_ones(g) -> bool:
    """Whether g is one 1.0 broadcast (every stride 0: a sum's backward of a seed of 1): then
    the cotangents g * v are the operands themselves, shared read-only as the engine's
    invariants allow (no rule writes into a cotangent; the engine sums into arrays it
    made, and a leaf copies a gradient it does not own)."""
    return not any(g.strides) and g.size > 0 and g.flat[0] == 1.0


def _div_vjp(g, out, operands, needed, params):
    if not _fits(g, operands):
        return None
    x, y = operands  # d/dx = 1/y, d/dy = -((x/y)/y): the general rule's, not reading out
    return (_run(MUL, g, _run(DIV, 1.0, y)) if needed[0] else None,
            _run(MUL, g, _run(NEG, _run(DIV, _run(DIV, x, y), y))) if needed[1] else None)


def _neg_vjp(g, out, operands, needed, params):
    if not _fits(g, operands):
        return None
    return (_run(MUL, g, np.asarray(-1.0, g.dtype)),)


def _tanh_vjp(g, out, operands, needed, params):
    if not _fits(g, [*operands, out]):
        return None
    return (_run(MUL, g, _run(SUB, 1.0, _run(MUL, out, out))),)


def _exp_vjp(g, out, operands, needed, params):
    if not _fits(g, [*operands, out]):
        return None
    return (_run(MUL, g, out),)


def _swapped(x):
    # A transposed view: numpy hands it to BLAS as a transpose flag, as PyTorch's mm
    # backward does, where the general rule's transpose primitive makes a C-order copy
    # first (an MLP's X.T and h.T: a fifth of its backward).  The products are the same
    # sums, but BLAS may add them in another order for a transposed operand: the one
    # plain rule whose values can differ from the general rule's in the last bits.
    return x.T


def _dot_vjp(g, out, operands, needed, params):
    x, y = operands
    if not (type(g) is np.ndarray and g.ndim == 2 and type(x) is np.ndarray
            and type(y) is np.ndarray and x.ndim == 2 and y.ndim == 2):
        return None
    return Fresh((DOT.run(g, _swapped(y)) if needed[0] else None,
                  DOT.run(_swapped(x), g) if needed[1] else None))


SUM_VIEW_MIN = 1 << 16  # elements from which the sum's backward is a view (_sum_vjp)


def _sum_vjp(g, out, operands, needed, params):
    """g broadcast back over the summed axes.  For a large array it is a read-only view
    (stride 0 on those axes), as PyTorch's SumBackward0 expands: no pass over memory to
    fill it, and the next rule reads it as cheaply.  Invariants that make this safe: no rule writes into a cotangent,
    the engine sums into arrays it made itself only, and a leaf that keeps a gradient it
    does not own copies it (the sinks in tensor.py)."""
    x, = operands
    if type(g) is not np.ndarray or type(x) is not np.ndarray or g.shape != np.shape(out):
        return None
    kept = g.reshape(tuple(1 if i in params["axes"] else d for i, d in enumerate(x.shape)))
    if x.size < SUM_VIEW_MIN:  # small: a contiguous copy is cheap and cheaper to read
        expanded = np.empty(x.shape, g.dtype)
        expanded[...] = kept
        return (expanded,)
    return (np.broadcast_to(kept, x.shape),)


def _broadcast_vjp(g, out, operands, needed, params):
    """g summed over the axes broadcasting added or stretched (sum_to_shape)."""
    x, = operands
    if type(g) is not np.ndarray or type(x) is not np.ndarray or g.shape != tuple(params["shape"]):
        return None
    shape, lead = x.shape, g.ndim - x.ndim
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and g.shape[lead + i] != 1)
    total = REDUCE_SUM.run(g, axes=axes) if axes else g
    return (total if total.shape == shape else total.reshape(shape),)


PLAIN_VJPS.update({ADD: _add_vjp, SUB: _sub_vjp, MUL: _mul_vjp, DIV: _div_vjp, NEG: _neg_vjp,
                   PRIMITIVES["tanh"]: _tanh_vjp, PRIMITIVES["exp"]: _exp_vjp, DOT: _dot_vjp,
                   REDUCE_SUM: _sum_vjp, BROADCAST: _broadcast_vjp})
