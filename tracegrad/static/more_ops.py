"""More of TF1's array functions: `to_float` and its kin, `pad`, `reverse`, `slice`,
`cumsum`, `gather_nd`, `sequence_mask`; each a recorded call of `tracegrad.numpy`, as
math_ops.py's are."""
from __future__ import annotations

import numpy as np

from tracegrad.tracer import numpy as tnp

from .building import call
from .math_ops import cast

__all__ = ["to_float", "to_double", "to_int32", "to_int64", "pad", "reverse", "slice",
           "cumsum", "gather_nd", "sequence_mask"]


def to_float(x, name="ToFloat"):
    """`cast(x, float32)`."""
    return cast(x, np.float32, name=name)


def to_double(x, name="ToDouble"):
    return cast(x, np.float64, name=name)


def to_int32(x, name="ToInt32"):
    return cast(x, np.int32, name=name)


def to_int64(x, name="ToInt64"):
    return cast(x, np.int64, name=name)


_PAD_MODES = {"CONSTANT": "constant", "REFLECT": "reflect", "SYMMETRIC": "symmetric"}


def _padded(x, paddings, mode, value):
    widths = [tuple(int(w) for w in row) for row in np.asarray(paddings)]
    if mode == "constant":
        return tnp.pad(x, widths, mode="constant", constant_values=value)
    return tnp.pad(x, widths, mode=mode)


def pad(tensor, paddings, mode="CONSTANT", name=None, constant_values=0):
    """`tensor` padded by `paddings` ([[before, after]] per dim, Python numbers or a
    constant), TF1's modes CONSTANT (with `constant_values`), REFLECT and SYMMETRIC."""
    key = str(mode).upper()
    if key not in _PAD_MODES:
        raise ValueError(f"Unknown padding mode: {mode}")
    return call(_padded, (tensor, paddings), {"mode": _PAD_MODES[key], "value": constant_values},
                name or "Pad", operands=1, op_type="Pad")


def reverse(tensor, axis, name=None):
    """`tensor` with the order of its elements along `axis` (a list of dims) reversed."""
    axes = tuple(int(a) for a in np.atleast_1d(axis))
    return call(lambda x: tnp.flip(x, axis=axes), (tensor,), {}, name or "ReverseV2",
                operands=1, op_type="ReverseV2")


def _sliced(x, begin, size):
    begin = [int(b) for b in np.asarray(begin).reshape(-1)]
    size = [int(s) for s in np.asarray(size).reshape(-1)]
    index = tuple(np.s_[b:(None if s == -1 else b + s)] for b, s in zip(begin, size))
    return x[index]


def slice(input_, begin, size, name=None):  # noqa: A001  (TF1's name)
    """The block of `input_` starting at `begin` of extent `size` per dim (-1: to the end);
    `begin` and `size` are numbers or tensors whose values the fed shapes fix."""
    return call(_sliced, (input_, begin, size), {}, name or "Slice", operands=1,
                op_type="Slice")


def _cumulative(x, axis, exclusive, reverse_):
    x = tnp.flip(x, axis=axis) if reverse_ else x
    out = tnp.cumsum(x, axis=axis)
    if exclusive:
        out = out - x
    return tnp.flip(out, axis=axis) if reverse_ else out


def cumsum(x, axis=0, exclusive=False, reverse=False, name=None):
    """The running sum along `axis`; `exclusive` leaves out each element itself, `reverse`
    sums from the end (TF1's)."""
    return call(_cumulative, (x,), {"axis": int(axis), "exclusive": bool(exclusive),
                                    "reverse_": bool(reverse)}, name or "Cumsum", operands=1,
                op_type="Cumsum")


def _gathered_nd(params, indices):
    depth = tnp.shape(indices)[-1]
    index = tuple(indices[..., k] for k in range(depth))
    return params[index]


def gather_nd(params, indices, name=None):
    """The slices of `params` at the index tuples in the last dim of `indices` (TF1's
    gather_nd: result shape indices.shape[:-1] + params.shape[depth:]); fed indices out of
    range are clamped, as `gather`'s (docs/static.md)."""
    return call(_gathered_nd, (params, indices), {}, name or "GatherNd", operands=1,
                op_type="GatherNd")


def _mask(lengths, maxlen, dtype):
    lengths = tnp.asarray(lengths)
    steps = np.arange(maxlen)
    return tnp.astype(steps < tnp.expand_dims(lengths, -1), dtype)


def sequence_mask(lengths, maxlen=None, dtype=np.bool_, name=None):
    """`mask[..., j] = j < lengths[...]` over `maxlen` steps (a Python int: the mask's
    length is its shape, which these graphs keep static)."""
    if maxlen is None:
        raise ValueError("sequence_mask: give maxlen (a Python int): the default, the largest "
                         "length, would make the shape depend on data")
    return call(_mask, (lengths,), {"maxlen": int(maxlen), "dtype": np.dtype(dtype)},
                name or "SequenceMask", operands=1, op_type="SequenceMask")
