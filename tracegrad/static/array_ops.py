"""TF1's `unstack`, `range`, `tensordot`, `newaxis`, `shape`, `size`, `rank` and the
gradient-clipping functions (`global_norm`, `clip_by_norm`, `clip_by_global_norm`), each recorded calls of
`tracegrad.numpy` as math_ops.py's are."""
from __future__ import annotations

import numpy as np

from tracegrad.tracer import numpy as tnp

from .building import call
from .sources import as_tensor, constant
from .tensor import Tensor

__all__ = ["unstack", "range", "tensordot", "newaxis", "global_norm", "clip_by_norm",
           "clip_by_global_norm", "shape", "size", "rank"]

newaxis = None


def unstack(value, num=None, axis=0, name="unstack"):
    """The `num` slices of `value` along `axis` (its static size there), as a list.

    >>> import tracegrad.static as tf
    >>> with tf.Graph().as_default():
    ...     a, b = tf.unstack(tf.constant([[1.0, 2.0], [3.0, 4.0]]), axis=1)
    ...     print(tf.Session().run(b))
    [2. 4.]
    """
    value = as_tensor(value)
    dims = value.shape.dims
    count = num if num is not None else (None if dims is None else dims[axis])
    if count is None:
        raise ValueError(f"unstack: cannot infer num from shape {value.shape}: give num=")
    pieces = call(lambda x: [tnp.take(x, i, axis=axis) for i in np.arange(count)], (value,), {},
                  name, num_outputs=count, op_type="Unpack")
    return pieces if isinstance(pieces, list) else [pieces]


def range(start, limit=None, delta=1, dtype=None, name="range"):  # noqa: A001  (TF1's name)
    """TF1's `range`: [start, limit) by delta, int32 for ints and float32 for floats (or
    `dtype`).  Bounds are Python numbers, or tensors whose values the fed shapes fix
    (`tf.range(tf.shape(x)[0])`); a bound computed from fed values would make the shape
    depend on data, which these graphs do not have (docs/static.md)."""
    start, limit = (0, start) if limit is None else (start, limit)
    if any(isinstance(b, Tensor) for b in (start, limit, delta)):
        return call(_ranged, (start, limit, delta), {"dtype": dtype}, name, op_type="Range")
    bounds = [b for b in (start, limit, delta) if b is not None]
    if any(not isinstance(b, (int, float, np.integer, np.floating)) for b in bounds):
        raise TypeError(f"range: bounds must be numbers or tensors, got {bounds}")
    values = np.arange(start, limit, delta)
    kind = np.float32 if values.dtype.kind == "f" else np.int32
    return constant(values.astype(dtype or kind), name=name)


def _ranged(start, limit, delta, dtype):
    """np.arange of bounds whose values the fed shapes fix (`tf.shape(x)[0]`); a bound
    computed from fed values has none while the program is built: that raises."""
    values = [np.asarray(b) if not hasattr(b, "_tg_trace") else None for b in (start, limit, delta)]
    if any(v is None for v in values):
        raise TypeError("a bound computed from fed values would make the result's shape "
                        "depend on data, which tracegrad.static graphs do not have; use bounds "
                        "from shapes (tf.shape(x)[0]) or Python numbers")
    out = np.arange(*[v.item() for v in values])
    kind = np.float32 if out.dtype.kind == "f" else np.int32
    return out.astype(dtype or kind)


def tensordot(a, b, axes, name=None):
    """The tensor contraction of `a` and `b` over `axes` (an int: the last `axes` of `a`
    with the first of `b`; or two lists of axes), as numpy's tensordot."""
    if not isinstance(axes, int):
        axes = tuple(tuple(int(i) for i in np.atleast_1d(part)) for part in axes)
    return call(lambda x, y: tnp.tensordot(x, y, axes=axes), (a, b), {}, name or "Tensordot",
                op_type="Tensordot",
                operands=2)


def global_norm(t_list, name=None):
    """sqrt(sum of every tensor's squared entries) over `t_list` (None entries skipped)."""
    tensors = tuple(as_tensor(t) for t in t_list if t is not None)
    return call(lambda *xs: tnp.sqrt(sum(tnp.sum(tnp.square(x)) for x in xs)), tensors, {},
                name or "global_norm", op_type="global_norm")


def clip_by_norm(t, clip_norm, axes=None, name=None):
    """`t * clip_norm / max(norm(t), clip_norm)`, the norm over `axes` (all if None), with
    TF1's safe square root at a zero norm."""
    def clip(x, c):
        l2sum = tnp.sum(x * x, axis=None if axes is None else tuple(np.atleast_1d(axes)),
                        keepdims=True)
        positive = l2sum > 0
        norm = tnp.where(positive, tnp.sqrt(tnp.where(positive, l2sum, 1)), l2sum)
        return x * c / tnp.maximum(norm, c)
    return call(clip, (t, clip_norm), {}, name or "clip_by_norm", op_type="clip_by_norm",
                operands=2)


def clip_by_global_norm(t_list, clip_norm, use_norm=None, name=None):
    """(each tensor times clip_norm / max(global_norm, clip_norm), the global norm), as TF1's:
    None entries stay None, and an infinite or NaN norm makes every entry NaN."""
    norm = global_norm(t_list) if use_norm is None else as_tensor(use_norm)

    def scale(n, c):
        return c * tnp.minimum(1.0 / n, 1.0 / c) + (n - n)
    factor = call(scale, (norm, clip_norm), {}, name or "clip_by_global_norm",
                  op_type="clip_by_global_norm", operands=2)
    clipped = [None if t is None else call(lambda x, s: x * tnp.astype(s, tnp.dtype(x.dtype)),
                                            (t, factor), {}, "clip_by_global_norm")
               for t in t_list]
    return clipped, norm


def _shape_of(x, dtype):
    return np.asarray(x.shape, dtype)


def shape(input, name=None, out_type=np.int32):  # noqa: A002  (TF1's names)
    """The shape of `input` as a 1-D `out_type` tensor: its dims as fed in each run (a
    `None` dim's fed size), so `tf.reshape(x, tf.shape(y))` follows the feeds.

    >>> import tracegrad.static as tf
    >>> with tf.Graph().as_default():
    ...     x = tf.placeholder(tf.float32, [None, 3])
    ...     print(tf.Session().run(tf.shape(x), {x: [[1, 2, 3], [4, 5, 6]]}))
    [2 3]
    """
    out = call(_shape_of, (input,), {"dtype": np.dtype(out_type)}, name or "Shape",
               op_type="Shape", operands=1)
    return _with_values(out, lambda p: np.asarray(p.shape, out_type))


def _with_values(out, value_of):
    """`out` (an op on one tensor's shape) with its value in each probe world, where the
    input's rank is known: for static inference of the ops that use it (building.py)."""
    probes = out.op.inputs[0]._probes
    if all(p is not None for p in probes):
        out._values = [value_of(p) for p in probes]
    return out


def _size_of(x, dtype):
    return np.asarray(int(np.prod(x.shape, dtype=np.int64)), dtype)


def size(input, name=None, out_type=np.int32):  # noqa: A002
    """The number of elements of `input` (fed shapes) as an `out_type` scalar."""
    out = call(_size_of, (input,), {"dtype": np.dtype(out_type)}, name or "Size",
               op_type="Size", operands=1)
    return _with_values(out, lambda p: np.asarray(int(np.prod(p.shape, dtype=np.int64)),
                                                  out_type))


def _rank_of(x):
    return np.asarray(len(x.shape), np.int32)


def rank(input, name=None):  # noqa: A002
    """The number of dimensions of `input` as an int32 scalar."""
    out = call(_rank_of, (input,), {}, name or "Rank", op_type="Rank", operands=1)
    return _with_values(out, lambda p: np.asarray(len(p.shape), np.int32))
