"""TF1's math names, each one recorded call of the `tracegrad.numpy` function that
computes it (so a TF1 name and the NumPy spelling give the same IR); `maximum`,
`minimum`, `abs` and `clip_by_value` compute the same values with TF1's gradients at
ties and kinks (tf1_rules.py)."""
from __future__ import annotations

import numpy as np

from tracegrad.tracer import numpy as tnp

from . import tf1_rules
from .building import call, tensor_likes
from .dtypes import as_dtype
from .sources import _tf1_default, as_tensor, constant
from .tensor import Tensor

__all__ = [
    "add", "subtract", "multiply", "divide", "truediv", "floordiv", "mod", "pow", "maximum",
    "minimum", "squared_difference", "negative", "abs", "exp", "log", "log1p", "expm1", "sqrt",
    "rsqrt", "square", "tanh", "sigmoid", "sin", "cos", "sign", "reciprocal", "erf", "erfc",
    "lgamma", "digamma", "matmul",
    "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_logsumexp",
    "reduce_any", "reduce_all", "equal", "not_equal", "less", "less_equal", "greater",
    "greater_equal", "logical_and", "logical_or", "logical_not", "where", "cast", "identity",
    "stop_gradient", "reshape", "transpose", "expand_dims", "squeeze", "concat", "stack",
    "zeros", "ones", "zeros_like", "ones_like", "fill", "add_n", "clip_by_value",
    "argmax", "argmin", "one_hot", "gather", "tile", "split",
]


def _fn(name):
    """The tracegrad.numpy function `name`, looked up when the op runs."""
    def apply(*args, **kwargs):
        return getattr(tnp, name)(*args, **kwargs)
    apply.__name__ = name
    return apply


def _unary(np_name, tf_name):
    def op(x, name=None):
        return call(_fn(np_name), (x,), {}, name or tf_name, operands=1, op_type=tf_name)
    op.__name__ = op.__qualname__ = np_name
    op.__doc__ = f"TF1's `{tf_name}`: `tracegrad.numpy.{np_name}` of `x`."
    return op


def _binary(np_name, tf_name):
    def op(x, y, name=None):
        return call(_fn(np_name), (x, y), {}, name or tf_name, operands=2, op_type=tf_name)
    op.__name__ = op.__qualname__ = np_name
    op.__doc__ = f"TF1's `{tf_name}`: `tracegrad.numpy.{np_name}` of `x` and `y`."
    return op


add, subtract, multiply = _binary("add", "Add"), _binary("subtract", "Sub"), _binary("multiply", "Mul")
divide = truediv = _binary("divide", "truediv")
pow = _binary("power", "Pow")  # noqa: A001  (TF1's name)
equal, not_equal = _binary("equal", "Equal"), _binary("not_equal", "NotEqual")
less, less_equal = _binary("less", "Less"), _binary("less_equal", "LessEqual")
greater, greater_equal = _binary("greater", "Greater"), _binary("greater_equal", "GreaterEqual")
logical_and, logical_or = _binary("logical_and", "LogicalAnd"), _binary("logical_or", "LogicalOr")
negative = _unary("negative", "Neg")
exp, log, log1p, expm1 = (_unary(n, n.capitalize()) for n in ("exp", "log", "log1p", "expm1"))
sqrt, square, tanh = _unary("sqrt", "Sqrt"), _unary("square", "Square"), _unary("tanh", "Tanh")
sigmoid, sin, cos = _unary("sigmoid", "Sigmoid"), _unary("sin", "Sin"), _unary("cos", "Cos")
sign, reciprocal = _unary("sign", "Sign"), _unary("reciprocal", "Reciprocal")
logical_not = _unary("logical_not", "LogicalNot")
erf, erfc = _unary("erf", "Erf"), _unary("erfc", "Erfc")
lgamma, digamma = _unary("lgamma", "Lgamma"), _unary("digamma", "Digamma")


def stop_gradient(input, name=None):  # noqa: A002  (TF1's name)
    """TF1's `stop_gradient`: `input`'s value, through which `tf.gradients` finds no path
    (an x reached only through it gets None, as in TF1)."""
    out = call(_fn("stop_gradient"), (input,), {}, name or "StopGradient", op_type="StopGradient")
    out.op.stops_gradient = True
    return out


def maximum(x, y, name=None):
    """TF1's `Maximum`, elementwise; its gradient is TF1's: x gets it where x >= y (ties go
    to x), y elsewhere.

    >>> import tracegrad.static as tf
    >>> with tf.Graph().as_default():
    ...     x = tf.constant([1.0, 2.0, 3.0])
    ...     m = tf.maximum(x, 2.0)
    ...     (g,) = tf.gradients(tf.reduce_sum(m), x)
    ...     print(tf.Session().run([m, g]))
    [array([2., 2., 3.], dtype=float32), array([0., 1., 1.], dtype=float32)]
    """
    return call(tf1_rules.maximum, (x, y), {}, name or "Maximum", op_type="Maximum", operands=2)


def minimum(x, y, name=None):
    """TF1's `Minimum`, elementwise; x gets the gradient where x <= y (ties go to x)."""
    return call(tf1_rules.minimum, (x, y), {}, name or "Minimum", op_type="Minimum", operands=2)


def abs(x, name=None):  # noqa: A001  (TF1's name)
    """TF1's `Abs`: |x|, whose gradient is sign(x) (0 at 0, as TF1's `_AbsGrad`)."""
    return call(tf1_rules.abs, (x,), {}, name or "Abs", op_type="Abs", operands=1)


def floordiv(x, y, name=None):
    """TF1's `FloorDiv`: x // y, rounding toward minus infinity (`floor(x / y)` for floats)."""
    return call(lambda a, b: a // b, (x, y), {}, name or "FloorDiv", op_type="FloorDiv", operands=2)


def mod(x, y, name=None):
    """TF1's `FloorMod`: x % y with the sign of y, as Python's."""
    return call(lambda a, b: a % b, (x, y), {}, name or "FloorMod", op_type="FloorMod", operands=2)


def squared_difference(x, y, name=None):
    """(x - y) ** 2, elementwise."""
    return call(lambda a, b: tnp.square(a - b), (x, y), {}, name or "SquaredDifference",
                op_type="SquaredDifference",
                operands=2)


def rsqrt(x, name=None):
    """1 / sqrt(x), elementwise."""
    return call(lambda a: tnp.reciprocal(tnp.sqrt(a)), (x,), {}, name or "Rsqrt", op_type="Rsqrt",
                operands=1)


def identity(x, name=None):
    """A new tensor with `x`'s value (an op of its own, e.g. to name or fetch it)."""
    return call(lambda a: a, (x,), {}, name or "Identity", op_type="Identity", operands=1)


def matmul(a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False,
           name=None):
    """The matrix product a @ b (batched over leading axes), with `a` or `b` transposed
    first (its last two axes) where asked: `tf.matmul(x, w, transpose_b=True)` is x @ w.T.
    `adjoint_a`/`adjoint_b` are the transposes too (no complex dtypes here)."""
    transpose_a, transpose_b = transpose_a or adjoint_a, transpose_b or adjoint_b

    def product(x, y):
        x = tnp.swapaxes(x, -1, -2) if transpose_a else x
        y = tnp.swapaxes(y, -1, -2) if transpose_b else y
        return tnp.matmul(x, y)
    return call(product, (a, b), {}, name or "MatMul", op_type="MatMul", operands=2)


def _axis(axis, reduction_indices):
    axis = reduction_indices if axis is None else axis
    return tuple(axis) if isinstance(axis, (list, tuple)) else axis


def _reduction(np_name, tf_name, own_dtype=False, fn=None):
    """TF1's reduce_<np_name>; `own_dtype`: in the input's dtype for integers; `fn`: the
    computation, when not tracegrad.numpy's function of that name."""
    fn = fn or (_in_own_dtype(np_name) if own_dtype else _fn(np_name))

    def op(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None,
           keep_dims=None):
        keep = bool(keepdims if keepdims is not None else keep_dims)
        return call(fn, (input_tensor,), {"axis": _axis(axis, reduction_indices),
                                          "keepdims": keep}, name or tf_name, operands=1,
                    op_type=tf_name)
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


def _extreme(name):
    """TF1's reduce_max/reduce_min: of no elements the dtype's lowest (highest) value,
    -inf (inf) for floats, where numpy's raises."""
    def reduce(x, axis=None, keepdims=False):
        dt = tnp.dtype(x.dtype)
        if int(np.prod(tnp.shape(x))) == 0 and dt.kind in "fiu":
            low, high = (-np.inf, np.inf) if dt.kind == "f" else (np.iinfo(dt).min, np.iinfo(dt).max)
            return getattr(tnp, name)(x, axis=axis, keepdims=keepdims,
                                      initial=low if name == "max" else high)
        return getattr(tnp, name)(x, axis=axis, keepdims=keepdims)
    reduce.__name__ = name
    return reduce


reduce_sum = _reduction("sum", "Sum", own_dtype=True)
reduce_mean = _reduction("mean", "Mean", own_dtype=True)
reduce_max = _reduction("max", "Max", fn=_extreme("max"))
reduce_min = _reduction("min", "Min", fn=_extreme("min"))
reduce_prod = _reduction("prod", "Prod", own_dtype=True)
reduce_any, reduce_all = _reduction("any", "Any"), _reduction("all", "All")
reduce_logsumexp = _reduction("logsumexp", "ReduceLogSumExp")


def where(condition, x=None, y=None, name=None):
    """TF1's v1 `where(condition, x, y)`: x where `condition`, else y; a rank-1 condition
    with higher-rank x and y picks their rows.  The one-argument form is not supported."""
    if x is None or y is None:
        raise ValueError("tf.where(condition) without x and y (indices of true elements) has a "
                         "data-dependent shape and is not supported; pass x and y")
    return call(_select, (condition,) + tensor_likes((x, y)), {}, name or "Select",
                op_type="Select", operands=1)


def _select(condition, x, y):
    """TF1's `where(condition, x, y)`: a rank-1 `condition` with higher-rank x and y picks
    their rows (its length is their first dimension); otherwise it broadcasts."""
    rank = max(tnp.ndim(x), tnp.ndim(y))
    if tnp.ndim(condition) == 1 and rank > 1:
        n, first = tnp.shape(condition)[0], tnp.shape(x if tnp.ndim(x) == rank else y)[0]
        if n != first:
            raise ValueError(f"where: a rank-1 condition of length {n} must match the first "
                             f"dimension of x and y ({first})")
        condition = tnp.reshape(condition, (n,) + (1,) * (rank - 1))
    return tnp.where(condition, x, y)


def cast(x, dtype, name=None):
    """`x` converted to `dtype` (floats to ints truncate toward zero): `tf.cast(mask, tf.float32)`."""
    return call(_fn("astype"), (x, as_dtype(dtype)), {}, name or "Cast", op_type="Cast")


def reshape(tensor, shape, name=None):
    """`tensor` with its elements in `shape` (one dimension may be -1: the rest)."""
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else shape
    return call(_fn("reshape"), (tensor, shape), {}, name or "Reshape", op_type="Reshape",
                operands=1)


def transpose(a, perm=None, name=None):
    """`a` with its axes permuted by `perm` (reversed when None): transpose(x, [1, 0])."""
    return call(_fn("transpose"), (a,), {"axes": None if perm is None else tuple(perm)},
                name or "transpose", op_type="Transpose")


def expand_dims(input, axis, name=None):  # noqa: A002  (TF1's name)
    """`input` with a new axis of size 1 at `axis`: shape (3,) at axis 0 becomes (1, 3)."""
    return call(_fn("expand_dims"), (input, axis), {}, name or "ExpandDims", op_type="ExpandDims",
                operands=1)


def squeeze(input, axis=None, name=None, squeeze_dims=None):  # noqa: A002
    """`input` without its size-1 axes (only those of `axis`, an int or a list, if given;
    TF1's older `squeeze_dims` too)."""
    axis = squeeze_dims if axis is None else axis
    axis = tuple(axis) if isinstance(axis, list) else axis
    return call(_fn("squeeze"), (input,), {"axis": axis}, name or "Squeeze", op_type="Squeeze",
                operands=1)


def concat(values, axis, name="concat"):
    """The tensors of `values` joined along the existing axis `axis`."""
    return call(_fn("concatenate"), (list(tensor_likes(values, scalars=True)),), {"axis": axis},
                name, op_type="ConcatV2")


def stack(values, axis=0, name="stack"):
    """The same-shaped tensors of `values` joined along a new axis `axis`."""
    return call(_fn("stack"), (list(tensor_likes(values, scalars=True)),), {"axis": axis}, name,
                op_type="Pack")


def add_n(inputs, name=None):
    """The elementwise sum of the tensors in the list `inputs`."""
    def total(*xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
    return call(total, tensor_likes(tuple(inputs), scalars=True), {}, name or "AddN",
                op_type="AddN")


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    """`t` clipped to [clip_value_min, clip_value_max]; the gradient is TF1's: `t` gets it
    where min <= t <= max (inclusive), the min where t < min, the max where t > max.

    >>> import tracegrad.static as tf
    >>> with tf.Graph().as_default():
    ...     x = tf.constant([2.0, 0.0, -1.0, 3.0])
    ...     (g,) = tf.gradients(tf.reduce_sum(tf.clip_by_value(x, 0.0, 2.0)), x)
    ...     print(tf.Session().run(g))
    [1. 1. 0. 0.]
    """
    return call(tf1_rules.clip, (t, clip_value_min, clip_value_max), {}, name or "clip_by_value",
                op_type="clip_by_value",
                operands=3)


def _dims_tensor(dims):
    """A shape given as a tensor, or as a list holding tensors (`[tf.shape(x)[0], 3]`), as
    one int tensor; None for a shape of Python numbers."""
    if isinstance(dims, Tensor):
        return dims
    if isinstance(dims, (list, tuple)) and any(isinstance(d, Tensor) for d in dims):
        return call(lambda *ds: tnp.stack([tnp.asarray(d) for d in ds]), tuple(dims), {},
                    "stack", operands=len(dims))
    return None


def _filled(dims, value, dtype):
    return tnp.full(tuple(int(d) for d in np.asarray(dims).reshape(-1)), value, dtype)


def _full(dims, value, dtype, name):
    """A tensor of `value` in `dtype` over shape `dims`: a constant, or where `dims` is a
    tensor (its value fixed by the fed shapes, as `tf.shape`'s), an op."""
    shape = _dims_tensor(dims)
    if shape is None:
        dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
        return constant(np.full(dims, value, dtype), name=name)
    return call(_filled, (shape,), {"value": value, "dtype": np.dtype(dtype)}, name, op_type="Fill")


def zeros(shape, dtype=np.float32, name=None):
    """Zeros of `shape` (a list, an int, or an int tensor such as `tf.shape(x)`) and `dtype`
    (float32)."""
    return _full(shape, 0, as_dtype(dtype), name or "zeros")


def ones(shape, dtype=np.float32, name=None):
    """Ones of `shape` (a list, an int, or an int tensor such as `tf.shape(x)`) and `dtype`
    (float32)."""
    return _full(shape, 1, as_dtype(dtype), name or "ones")


def fill(dims, value, name=None):
    """`value` (TF1's default dtypes: an int is int32) repeated to shape `dims` (a list or
    an int tensor)."""
    if _dims_tensor(dims) is None:
        return constant(value, shape=tuple(dims), name=name or "Fill")
    if isinstance(value, Tensor):
        return call(lambda d, v: tnp.broadcast_to(v, tuple(int(n) for n in np.asarray(d))),
                    (_dims_tensor(dims), value), {}, name or "Fill", op_type="Fill")
    arr = _tf1_default(value, None)
    return _full(dims, arr.item(), arr.dtype, name or "Fill")


def zeros_like(tensor, dtype=None, name=None):
    """Zeros of `tensor`'s shape, in its dtype or `dtype`."""
    return call(_fn("zeros_like"), (as_tensor(tensor),),
                {"dtype": None if dtype is None else as_dtype(dtype)}, name or "zeros_like",
                op_type="ZerosLike")


def ones_like(tensor, dtype=None, name=None):
    """Ones of `tensor`'s shape, in its dtype or `dtype`."""
    return call(_fn("ones_like"), (as_tensor(tensor),),
                {"dtype": None if dtype is None else as_dtype(dtype)}, name or "ones_like",
                op_type="OnesLike")


def _arg_reduction(np_name, tf_name):
    def op(input, axis=None, name=None, dimension=None, output_type=np.int64):  # noqa: A002
        axis = dimension if axis is None else axis
        axis = 0 if axis is None else axis  # TF1: axis None is 0
        dtype = as_dtype(output_type)
        return call(lambda x: tnp.astype(getattr(tnp, np_name)(x, axis=axis), dtype),
                    (input,), {}, name or tf_name, op_type=tf_name)
    op.__name__ = op.__qualname__ = np_name
    op.__doc__ = (f"TF1's `{np_name}`: `tracegrad.numpy.{np_name}` along `axis` (0 if None), "
                  "as `output_type` (int64); no gradient.")
    return op


argmax, argmin = _arg_reduction("argmax", "ArgMax"), _arg_reduction("argmin", "ArgMin")


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None):
    """TF1's `one_hot`: `on_value` (1) where an index equals the position along the new
    axis `axis` (-1: last) of size `depth`, else `off_value` (0); an index outside
    [0, depth) gives all off.  The dtype is `dtype`, else on/off_value's, else float32."""
    if dtype is None:
        given = [v for v in (on_value, off_value) if v is not None]
        dtype = (given[0].dtype if isinstance(given[0], Tensor) else
                 _tf1_default(given[0], None).dtype) if given else np.float32
    dtype = as_dtype(dtype)
    on, off = _of_dtype(on_value, 1, dtype, "on_value"), _of_dtype(off_value, 0, dtype, "off_value")
    axis = -1 if axis is None else axis

    def encode(ind, on, off):
        hot = tnp.expand_dims(ind, -1) == tnp.arange(depth)
        return tnp.moveaxis(tnp.where(hot, on, off), -1, axis)
    return call(encode, (indices, on, off), {}, name or "one_hot", op_type="one_hot")


def _of_dtype(value, default, dtype, what):
    if not isinstance(value, Tensor):
        return constant(default if value is None else value, dtype)
    if value.dtype != dtype:
        raise TypeError(f"one_hot: {what} {value!r} must have dtype {dtype.name}")
    return value


def gather(params, indices, validate_indices=None, name=None, axis=0):
    """TF1's `gather`: the slices of `params` at `indices` along `axis`
    (`tracegrad.numpy.take`); the gradient adds into the gathered slices."""
    return call(_fn("take"), (params, indices), {"axis": axis}, name or "GatherV2",
                op_type="GatherV2", operands=1)


def tile(input, multiples, name=None):  # noqa: A002
    """`input` repeated `multiples[i]` times along axis i: tile([[1, 2]], [2, 1]) is
    [[1, 2], [1, 2]]."""
    multiples = tuple(multiples) if isinstance(multiples, (list, tuple)) else multiples
    return call(_fn("tile"), (input, multiples), {}, name or "Tile", op_type="Tile", operands=1)


def split(value, num_or_size_splits, axis=0, num=None, name="split"):
    """TF1's `split`: a list of `num_or_size_splits` equal pieces along `axis`, or of
    pieces of the given sizes (one may be -1: the rest)."""
    if isinstance(num_or_size_splits, int):
        sections = num_or_size_splits
    else:
        sizes = [int(n) for n in num_or_size_splits]
        sections = _split_points(value, sizes, axis)
    count = sections if isinstance(sections, int) else len(sections) + 1
    pieces = call(_fn("split"), (value, sections), {"axis": axis}, name, num_outputs=count,
                  op_type="Split" if isinstance(num_or_size_splits, int) else "SplitV")
    return pieces if isinstance(pieces, list) else [pieces]


def _split_points(value, sizes, axis):
    """The indices where pieces of `sizes` start (a -1 size takes what the others leave)."""
    if -1 in sizes:
        total = as_tensor(value).shape.dims
        if total is None or total[axis] is None:
            raise ValueError("split: a size of -1 needs the static size of the split axis")
        sizes[sizes.index(-1)] = total[axis] - (sum(sizes) + 1)
    return [int(i) for i in np.cumsum(sizes)[:-1]]
