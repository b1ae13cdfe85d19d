"""Symbolic tensors: the outputs of graph operations, with a static shape and dtype
but no value.

Math on them records operations: Python operators, NumPy's protocols
(`np.exp(t)` through `__array_ufunc__`, `np.sum(t)` through
`__array_function__`) and `tracegrad.numpy` (`tnp.exp(t)` through
`__tg_function__`).  Each records the function called and its arguments; the
function runs later, on traced values, when a Session compiles the graph.
Asking for a value (`float(t)`, `bool(t)`, `.numpy()`, `np.asarray(t)`) raises a
TypeError that says to evaluate the tensor in a Session.  As in TF1, `==` is
identity (use `tf.equal`), so tensors can be dict keys.
"""
from __future__ import annotations

import functools
import operator

from tracegrad.tracer.indexing import getitem
from tracegrad.tracer.numpy._core import is_boxed


def _no_value(t, what: str):
    raise TypeError(
        f"{what} needs the value of {t!r}, but a tensor of a static graph has no value "
        "until it is evaluated in a Session: sess.run(tensor, feed_dict={...}) or "
        "tensor.eval(feed_dict={...}, session=sess). Use tf.cond / tf.while_loop for "
        "decisions on its value.")


def _ufunc_call(ufunc, method, *args, **kwargs):
    return getattr(ufunc, method)(*args, **kwargs)


def _getitem(x, index):
    """`x[index]`; a constant's value is a numpy array, which numpy would index itself
    (failing on a traced index), so it goes through tracegrad's indexing."""
    return x[index] if is_boxed(x) else getitem(x, index)


class Tensor:
    """Output `index` of operation `op` (TF1's `tf.Tensor`); hashable by identity."""

    __array_priority__ = 1000

    def __init__(self, op, index, shape, dtype, probes):
        self.op, self.value_index = op, index
        self._shape, self.dtype, self._probes = shape, dtype, probes
        # Per probe world, the value where shapes alone decide it (tf.shape's, and math on
        # such values; building.py), so `reshape(y, tf.shape(x))` has a static shape.
        self._values = None

    # -- static facts -------------------------------------------------------------------
    @property
    def graph(self):
        return self.op.graph

    @property
    def name(self) -> str:
        return f"{self.op.name}:{self.value_index}"

    @property
    def shape(self):
        return self._shape

    def get_shape(self):
        return self._shape

    def set_shape(self, shape):
        """Refine the static shape with `shape`'s known dimensions (TF1's: a ValueError if
        they contradict it); the fed values must then have them."""
        from .shapes import probe_avals
        merged = self._shape.merge_with(shape)
        if merged != self._shape:
            self._shape, self._probes = merged, probe_avals(merged, self.dtype)

    @property
    def ndim(self):
        return self._shape.ndims

    def _kind(self) -> str:
        return "tf.Tensor"

    def __repr__(self):
        return f"<{self._kind()} '{self.name}' shape={self._shape} dtype={self.dtype.name}>"

    def __str__(self):
        return f'Tensor("{self.name}", shape={self._shape}, dtype={self.dtype.name})'

    def eval(self, feed_dict=None, session=None):
        """This tensor's value in `session` (default: the session entered with `with`)."""
        from .session import default_session
        return (session or default_session("Tensor.eval")).run(self, feed_dict)

    # -- no value ------------------------------------------------------------------------
    def __bool__(self):
        _no_value(self, "Using it as a Python bool")

    def __float__(self):
        _no_value(self, "float()")

    def __int__(self):
        _no_value(self, "int()")

    def __index__(self):
        _no_value(self, "Using it as an index")

    def __complex__(self):
        _no_value(self, "complex()")

    def __array__(self, dtype=None, copy=None):
        _no_value(self, "Converting it to a numpy array")

    def numpy(self):
        _no_value(self, ".numpy()")

    def item(self):
        _no_value(self, ".item()")

    def tolist(self):
        _no_value(self, ".tolist()")

    def __iter__(self):
        raise TypeError(f"{self!r} is not iterable: a symbolic tensor has no elements until it "
                        "is evaluated in a Session; index it (t[0]) instead")

    def __len__(self):
        _no_value(self, "len()")

    __hash__ = object.__hash__

    # -- NumPy protocols and tracegrad.numpy --------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}_{method}"
        return building.call(functools.partial(_ufunc_call, ufunc, method), inputs, kwargs, name)

    def __array_function__(self, func, types, args, kwargs):
        return building.call(func, args, kwargs, func.__name__)

    def __tg_function__(self, func, args, kwargs):
        return building.call(func, args, kwargs, func.__name__)

    def __getitem__(self, index):
        return building.call(_getitem, (self, index), {}, "strided_slice", op_type="StridedSlice")

    def __abs__(self):
        from .math_ops import abs as tf_abs  # math_ops builds on Tensor
        return tf_abs(self)  # TF1's Abs, with TF1's gradient sign(x)

    @property
    def T(self):
        return building.call(operator.attrgetter("T"), (self,), {}, "transpose",
                             op_type="Transpose")


def _binary(fn, name, op_type=None):
    def forward(self, other):
        return building.call(fn, (self, other), {}, name, operands=2, op_type=op_type)

    def backward(self, other):
        return building.call(fn, (other, self), {}, name, operands=2, op_type=op_type)
    return forward, backward


# (dunder, function, TF1's op name for it, TF1's op type)
for _dunder, _fn, _name, _type in (
        ("add", operator.add, "add", "Add"), ("sub", operator.sub, "sub", "Sub"),
        ("mul", operator.mul, "mul", "Mul"), ("truediv", operator.truediv, "truediv", "RealDiv"),
        ("floordiv", operator.floordiv, "floordiv", "FloorDiv"),
        ("mod", operator.mod, "mod", "FloorMod"), ("pow", operator.pow, "pow", "Pow"),
        ("matmul", operator.matmul, "MatMul", "MatMul")):
    _fwd, _bwd = _binary(_fn, _name, _type)
    setattr(Tensor, f"__{_dunder}__", _fwd)
    setattr(Tensor, f"__r{_dunder}__", _bwd)

for _dunder, _fn, _name in (("lt", operator.lt, "Less"), ("le", operator.le, "LessEqual"),
                            ("gt", operator.gt, "Greater"), ("ge", operator.ge, "GreaterEqual")):
    setattr(Tensor, f"__{_dunder}__", _binary(_fn, _name)[0])

for _dunder, _fn, _name in (("and", operator.and_, "LogicalAnd"), ("or", operator.or_, "LogicalOr")):
    _fwd, _bwd = _binary(_fn, _name)
    setattr(Tensor, f"__{_dunder}__", _fwd)
    setattr(Tensor, f"__r{_dunder}__", _bwd)

for _dunder, _fn, _name in (("neg", operator.neg, "Neg"), ("pos", operator.pos, "Identity"),
                            ("invert", operator.invert, "LogicalNot")):
    setattr(Tensor, f"__{_dunder}__",
            lambda self, _fn=_fn, _name=_name: building.call(_fn, (self,), {}, _name))

from . import building  # noqa: E402  (building makes Tensors)
