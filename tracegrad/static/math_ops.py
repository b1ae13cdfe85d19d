"""TF1's math names, each one recorded call of the `tracegrad.numpy` function that
computes it (so a TF1 name and the NumPy spelling give the same IR)."""
from __future__ import annotations

import numpy as np

from tracegrad.tracer import numpy as tnp

from .building import call
from .dtypes import as_dtype
from .sources import as_tensor, constant

__all__ = [
    "add", "subtract", "multiply", "divide", "truediv", "floordiv", "mod", "pow", "maximum",
    "minimum", "squared_difference", "negative", "abs", "exp", "log", "log1p", "expm1", "sqrt",
    "rsqrt", "square", "tanh", "sigmoid", "sin", "cos", "sign", "reciprocal", "matmul",
    "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_logsumexp",
    "reduce_any", "reduce_all", "equal", "not_equal", "less", "less_equal", "greater",
    "greater_equal", "logical_and", "logical_or", "logical_not", "where", "cast", "identity",
    "stop_gradient", "reshape", "transpose", "expand_dims", "squeeze", "concat", "stack",
    "zeros", "ones", "zeros_like", "ones_like", "fill", "add_n", "clip_by_value",
]


def _fn(name):
    """The tracegrad.numpy function `name`, looked up when the op runs."""
    def apply(*args, **kwargs):
        return getattr(tnp, name)(*args, **kwargs)
    apply.__name__ = name
    return apply


def _unary(np_name, tf_name):
    def op(x, name=None):
        return call(_fn(np_name), (x,), {}, name or tf_name)
    op.__name__ = op.__qualname__ = np_name
    op.__doc__ = f"TF1's `{tf_name}`: `tracegrad.numpy.{np_name}` of `x`."
    return op


def _binary(np_name, tf_name):
    def op(x, y, name=None):
        return call(_fn(np_name), (x, y), {}, name or tf_name)
    op.__name__ = op.__qualname__ = np_name
    op.__doc__ = f"TF1's `{tf_name}`: `tracegrad.numpy.{np_name}` of `x` and `y`."
    return op


add, subtract, multiply = _binary("add", "Add"), _binary("subtract", "Sub"), _binary("multiply", "Mul")
divide = truediv = _binary("divide", "truediv")
maximum, minimum = _binary("maximum", "Maximum"), _binary("minimum", "Minimum")
pow = _binary("power", "Pow")  # noqa: A001  (TF1's name)
equal, not_equal = _binary("equal", "Equal"), _binary("not_equal", "NotEqual")
less, less_equal = _binary("less", "Less"), _binary("less_equal", "LessEqual")
greater, greater_equal = _binary("greater", "Greater"), _binary("greater_equal", "GreaterEqual")
logical_and, logical_or = _binary("logical_and", "LogicalAnd"), _binary("logical_or", "LogicalOr")
negative, abs = _unary("negative", "Neg"), _unary("abs", "Abs")  # noqa: A001
exp, log, log1p, expm1 = (_unary(n, n.capitalize()) for n in ("exp", "log", "log1p", "expm1"))
sqrt, square, tanh = _unary("sqrt", "Sqrt"), _unary("square", "Square"), _unary("tanh", "Tanh")
sigmoid, sin, cos = _unary("sigmoid", "Sigmoid"), _unary("sin", "Sin"), _unary("cos", "Cos")
sign, reciprocal = _unary("sign", "Sign"), _unary("reciprocal", "Reciprocal")
logical_not, stop_gradient = _unary("logical_not", "LogicalNot"), _unary("stop_gradient", "StopGradient")


def floordiv(x, y, name=None):
    return call(lambda a, b: a // b, (x, y), {}, name or "FloorDiv")


def mod(x, y, name=None):
    return call(lambda a, b: a % b, (x, y), {}, name or "FloorMod")


def squared_difference(x, y, name=None):
    return call(lambda a, b: tnp.square(a - b), (x, y), {}, name or "SquaredDifference")


def rsqrt(x, name=None):
    return call(lambda a: tnp.reciprocal(tnp.sqrt(a)), (x,), {}, name or "Rsqrt")


def identity(x, name=None):
    return call(lambda a: a, (x,), {}, name or "Identity")


def matmul(a, b, transpose_a=False, transpose_b=False, name=None):
    def product(x, y):
        x = tnp.swapaxes(x, -1, -2) if transpose_a else x
        y = tnp.swapaxes(y, -1, -2) if transpose_b else y
        return tnp.matmul(x, y)
    return call(product, (a, b), {}, name or "MatMul")


def _axis(axis, reduction_indices):
    axis = reduction_indices if axis is None else axis
    return tuple(axis) if isinstance(axis, (list, tuple)) else axis


def _reduction(np_name, tf_name, own_dtype=False):
    """TF1's reduce_<np_name>; `own_dtype`: in the input's dtype for integers."""
    fn = _in_own_dtype(np_name) if own_dtype else _fn(np_name)

    def op(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None,
           keep_dims=None):
        keep = bool(keepdims if keepdims is not None else keep_dims)
        return call(fn, (input_tensor,),
                    {"axis": _axis(axis, reduction_indices), "keepdims": keep}, name or tf_name)
    op.__name__ = op.__qualname__ = f"reduce_{np_name}"
    op.__doc__ = (f"TF1's `{tf_name}`: `tracegrad.numpy.{np_name}` over `axis` (all if None)"
                  + (", in the input's dtype for integers (a mean truncates), as TF1." if own_dtype
                     else "."))
    return op


def _in_own_dtype(name):
    """TF1's reductions keep an integer input's dtype (numpy's sum and prod widen int32 to
    int64, and its mean gives floats); an integer mean divides, truncating toward zero."""
    def reduce(x, axis=None, keepdims=False):
        dt = tnp.dtype(x.dtype)
        if dt.kind not in "iu":
            return getattr(tnp, name)(x, axis=axis, keepdims=keepdims)
        total = getattr(tnp, "prod" if name == "prod" else "sum")(x, axis=axis, keepdims=keepdims,
                                                                  dtype=dt)
        if name != "mean":
            return total
        count = np.asarray(int(np.prod(tnp.shape(x))) // max(int(np.prod(tnp.shape(total))), 1), dt)
        return tnp.sign(total) * (tnp.abs(total) // count)
    reduce.__name__ = name
    return reduce


reduce_sum = _reduction("sum", "Sum", own_dtype=True)
reduce_mean = _reduction("mean", "Mean", own_dtype=True)
reduce_max, reduce_min = _reduction("max", "Max"), _reduction("min", "Min")
reduce_prod = _reduction("prod", "Prod", own_dtype=True)
reduce_any, reduce_all = _reduction("any", "Any"), _reduction("all", "All")


def reduce_logsumexp(input_tensor, axis=None, keepdims=False, name=None):
    return call(_fn("logsumexp"), (input_tensor,), {"axis": _axis(axis, None),
                                                   "keepdims": keepdims}, name or "ReduceLogSumExp")


def where(condition, x=None, y=None, name=None):
    if x is None or y is None:
        raise ValueError("tf.where(condition) without x and y (indices of true elements) has a "
                         "data-dependent shape and is not supported; pass x and y")
    return call(_fn("where"), (condition, x, y), {}, name or "Select")


def cast(x, dtype, name=None):
    return call(_fn("astype"), (x, as_dtype(dtype)), {}, name or "Cast")


def reshape(tensor, shape, name=None):
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else shape
    return call(_fn("reshape"), (tensor, shape), {}, name or "Reshape")


def transpose(a, perm=None, name=None):
    return call(_fn("transpose"), (a,), {"axes": None if perm is None else tuple(perm)},
                name or "transpose")


def expand_dims(input, axis, name=None):  # noqa: A002  (TF1's name)
    return call(_fn("expand_dims"), (input, axis), {}, name or "ExpandDims")


def squeeze(input, axis=None, name=None):  # noqa: A002
    axis = tuple(axis) if isinstance(axis, list) else axis
    return call(_fn("squeeze"), (input,), {"axis": axis}, name or "Squeeze")


def concat(values, axis, name="concat"):
    return call(_fn("concatenate"), (list(values),), {"axis": axis}, name)


def stack(values, axis=0, name="stack"):
    return call(_fn("stack"), (list(values),), {"axis": axis}, name)


def add_n(inputs, name=None):
    def total(*xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
    return call(total, tuple(inputs), {}, name or "AddN")


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    return call(_fn("clip"), (t, clip_value_min, clip_value_max), {}, name or "clip_by_value")


def zeros(shape, dtype=np.float32, name=None):
    return constant(np.zeros(tuple(shape) if not isinstance(shape, int) else (shape,),
                             as_dtype(dtype)), name=name or "zeros")


def ones(shape, dtype=np.float32, name=None):
    return constant(np.ones(tuple(shape) if not isinstance(shape, int) else (shape,),
                            as_dtype(dtype)), name=name or "ones")


def fill(dims, value, name=None):
    """`value` (TF1's default dtypes: an int is int32) repeated to shape `dims`."""
    return constant(value, shape=tuple(dims), name=name or "Fill")


def zeros_like(tensor, dtype=None, name=None):
    return call(_fn("zeros_like"), (as_tensor(tensor),),
                {"dtype": None if dtype is None else as_dtype(dtype)}, name or "zeros_like")


def ones_like(tensor, dtype=None, name=None):
    return call(_fn("ones_like"), (as_tensor(tensor),),
                {"dtype": None if dtype is None else as_dtype(dtype)}, name or "ones_like")
