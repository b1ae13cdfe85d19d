"""Values that enter a graph: placeholders (fed at run time) and constants."""
from __future__ import annotations

import numpy as np

from .building import new_op, spec_of
from .dtypes import as_dtype
from .graph import get_default_graph, graph_of
from .shapes import WORLD_SIZES, TensorShape, compatible
from .tensor import Tensor

# Integer constants this small carry their value for static shape inference (shape-like).
SHAPE_LIKE = 8


def placeholder(dtype, shape=None, name=None):
    """A tensor fed by `Session.run(..., feed_dict={p: value})`; `None` dims take any size,
    `shape=None` any shape."""
    dtype = as_dtype(dtype)
    shape = TensorShape(None if shape is None else (
        [shape] if isinstance(shape, int) else list(shape)))
    graph = get_default_graph()
    with graph.root():
        op = new_op(graph, "Placeholder", name, [], _unfed, [spec_of(shape, dtype)])
    return op.outputs[0]


def _unfed(env, state):  # Session.run checks every needed placeholder is fed first
    raise AssertionError("a placeholder was replayed without a feed")


def _tf1_default(value, dtype):
    """TF1's dtypes of Python values: float -> float32, int -> int32 (int64 when a value
    does not fit in int32, as TF1 infers)."""
    if dtype is not None:
        return _as_given(value, as_dtype(dtype))
    arr = np.asarray(value)
    if arr.dtype == np.float64 and not isinstance(value, (np.ndarray, np.generic)):
        return arr.astype(np.float32)
    if arr.dtype == np.int64 and not isinstance(value, (np.ndarray, np.generic)):
        info = np.iinfo(np.int32)
        fits = arr.size == 0 or (info.min <= arr.min() and arr.max() <= info.max)
        return arr.astype(np.int32) if fits else arr
    as_dtype(arr.dtype)
    return arr


def _as_given(value, dtype):
    """`value` (not a tensor) in `dtype`: Python floats never truncate into an integer dtype
    (TF1's TypeError); NumPy arrays convert as NumPy's astype does."""
    arr = np.asarray(value)
    if (arr.dtype.kind == "f" and dtype.kind in "iub"
            and not isinstance(value, (np.ndarray, np.generic))):
        raise TypeError(f"Expected {dtype.name}, got {value!r} of type '{type(value).__name__}' "
                        "instead (Python floats do not convert to an integer dtype)")
    return arr.astype(dtype)


def constant(value, dtype=None, shape=None, name="Const"):
    """A constant tensor (Python floats are float32 and ints int32, as in TF1)."""
    arr = _tf1_default(value, dtype)
    if shape is not None:
        arr = _to_shape(arr, tuple(shape))
    arr = np.array(arr)  # owned by the graph: later changes to `value` do not reach it
    graph = get_default_graph()
    op = new_op(graph, "Const", name, [], lambda env, state: [arr],
                [spec_of(TensorShape(arr.shape), arr.dtype)])
    if arr.dtype.kind in "iu" and arr.size <= SHAPE_LIKE:  # may build a shape (building.py)
        op.outputs[0]._values = [arr] * len(WORLD_SIZES)
    return op.outputs[0]


def _to_shape(arr, shape):
    """TF1's constant(value, shape=...): one value fills the shape; fewer values than the
    shape holds are padded with the last one; more raise."""
    n = int(np.prod(shape, dtype=np.int64))
    if arr.size == 1:
        return np.broadcast_to(arr.reshape(()), shape)
    if arr.size > n:
        raise TypeError(f"Too many elements provided. Needed at most {n}, but received {arr.size}")
    flat = arr.reshape(-1)
    if arr.size == 0 and n:
        raise ValueError(f"constant: an empty value cannot fill shape {list(shape)} (give at "
                         "least one value: the last one fills the rest)")
    if arr.size < n:
        flat = np.concatenate([flat, np.full(n - arr.size, flat[-1], arr.dtype)])
    return flat.reshape(shape)


def as_tensor(value, dtype=None, name="Const"):
    """`value` as a tensor: tensors as they are, anything else as a constant."""
    if isinstance(value, Tensor):
        if dtype is not None and value.dtype != as_dtype(dtype):
            raise ValueError(f"Tensor conversion requested dtype {as_dtype(dtype).name} for "
                             f"{value!r}")
        return value
    return constant(value, dtype, name=name)


convert_to_tensor = as_tensor


def placeholder_with_default(input, shape, name=None):  # noqa: A002  (TF1's name)
    """A tensor that is `input` unless fed: TF1's `placeholder_with_default`, whose static
    shape is `shape` (None dims take any size when fed)."""
    value = as_tensor(input)
    shape = TensorShape(None if shape is None else
                        [shape] if isinstance(shape, int) else list(shape))
    if not compatible(shape, value.shape):
        raise ValueError(f"placeholder_with_default: {value!r} does not fit shape {shape}")
    graph = graph_of([value], "placeholder_with_default")
    op = new_op(graph, "PlaceholderWithDefault", name or "PlaceholderWithDefault", [value],
                lambda env, state: [env[value]], [spec_of(shape, value.dtype)])
    return op.outputs[0]
