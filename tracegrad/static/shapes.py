"""Static shapes with unknown dimensions, and how they are inferred.

A symbolic tensor's shape may have `None` dimensions (a placeholder's batch
axis) or an unknown rank (`placeholder(dtype)` with no shape).  The IR has only
concrete shapes, so static inference runs each op's own tracegrad code on
*probe* shapes: every `None` dimension is given one size per world (WORLD_SIZES),
the op is traced abstractly once per world, and a result dimension is known
when every world that could trace it agrees on it.  One op therefore has one
implementation, the one `Session.run` executes; inference is its abstract
evaluation.  An unknown-rank input is probed as a scalar and makes its results'
shapes unknown.  The sizes are distinct composites, so that a reshape of a
`None` axis into fixed factors still traces (1680 = 2^4 * 3 * 5 * 7: factors up to 8,
and 10, 12, 14, 16, ...; a probe allocates nothing, but an op may build a constant of a
probe size, as `eye(n)`); size 1 lets a `None` axis broadcast against a known one, as
TF1 infers.  Where a single composite world traces, nothing tells its sizes that come from
the `None` axis apart from the fixed ones: the rank is kept, every dim unknown.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import ShapedArray

WORLD_SIZES = (12, 60, 1, 1680)


class TensorShape:
    """TF1's static shape: `dims` is a tuple of ints and Nones, or None (unknown rank)."""

    def __init__(self, dims):
        self.dims = None if dims is None else tuple(None if d is None else int(d) for d in dims)

    @property
    def ndims(self):
        return None if self.dims is None else len(self.dims)

    rank = ndims

    def as_list(self):
        if self.dims is None:
            raise ValueError("as_list() is not defined on an unknown TensorShape")
        return list(self.dims)

    def is_fully_defined(self) -> bool:
        return self.dims is not None and None not in self.dims

    def is_compatible_with(self, shape) -> bool:
        """Whether a concrete `shape` fits: same rank, equal known dimensions."""
        if self.dims is None:
            return True
        shape = tuple(shape)
        return len(shape) == len(self.dims) and all(
            d is None or d == s for d, s in zip(self.dims, shape))

    def __iter__(self):
        if self.dims is None:
            raise ValueError("cannot iterate over a shape of unknown rank")
        return iter(self.dims)

    def __len__(self):
        if self.dims is None:
            raise ValueError("cannot take the length of a shape of unknown rank")
        return len(self.dims)

    def __getitem__(self, i):
        """A dimension (a `Dimension`, an int with TF1's `.value`; None where unknown), or a
        `TensorShape` for a slice."""
        dims = self.as_list()
        if isinstance(i, slice):
            return TensorShape(dims[i])
        return None if dims[i] is None else Dimension(dims[i])

    def num_elements(self):
        """The number of elements, or None where a dimension is unknown."""
        return int(np.prod(self.dims, dtype=np.int64)) if self.is_fully_defined() else None

    def merge_with(self, other) -> "TensorShape":
        """The shape with the known dimensions of both (a ValueError where they differ)."""
        other = other if isinstance(other, TensorShape) else TensorShape(other)
        if self.dims is None:
            return other
        if other.dims is None:
            return self
        if not compatible(self, other):
            raise ValueError(f"Shapes {self} and {other} are not compatible")
        return TensorShape([d if d is not None else e for d, e in zip(self.dims, other.dims)])

    def concatenate(self, other) -> "TensorShape":
        other = other if isinstance(other, TensorShape) else TensorShape(other)
        if self.dims is None or other.dims is None:
            return TensorShape(None)
        return TensorShape(self.dims + other.dims)

    def __eq__(self, other):
        other_dims = other.dims if isinstance(other, TensorShape) else (
            None if other is None else tuple(other))
        return self.dims == other_dims

    def __hash__(self):
        return hash(self.dims)

    def __str__(self):
        if self.dims is None:
            return "<unknown>"
        inner = ", ".join("?" if d is None else str(d) for d in self.dims)
        return f"({inner},)" if len(self.dims) == 1 else f"({inner})"

    def __repr__(self):
        return "TensorShape(None)" if self.dims is None else f"TensorShape({list(self.dims)})"


class Dimension(int):
    """A known dimension of a `TensorShape`: an int that also has TF1's `.value`."""

    @property
    def value(self) -> int:
        return int(self)

    def __repr__(self):
        return f"Dimension({int(self)})"


def compatible(a: TensorShape, b: TensorShape) -> bool:
    """Whether two static shapes can describe the same value: same rank (or one unknown)
    and equal dimensions where both are known."""
    if a.dims is None or b.dims is None:
        return True
    return len(a.dims) == len(b.dims) and all(
        d is None or e is None or d == e for d, e in zip(a.dims, b.dims))


def probe_avals(shape: TensorShape, dtype) -> list:
    """One concrete aval per world for a value of static `shape`."""
    if shape.dims is None:
        return [ShapedArray((), dtype)] * len(WORLD_SIZES)
    return [ShapedArray(tuple(n if d is None else d for d in shape.dims), dtype)
            for n in WORLD_SIZES]


def merge(probes, unknown: bool) -> TensorShape:
    """The static shape of a value whose per-world avals are `probes` (None: failed)."""
    if unknown:
        return TensorShape(None)
    valid = [(n, p.shape) for n, p in zip(WORLD_SIZES, probes) if p is not None]
    ranks = {len(s) for _, s in valid}
    if len(ranks) != 1:
        return TensorShape(None)
    if len(valid) == 1:  # one world: a dimension equal to its size may be the None axis
        n, s = valid[0]
        if n != 1:  # a composite: any dimension may derive from it (a reshape's -1)
            return TensorShape([None] * len(s))
        return TensorShape([None if d == n else d for d in s])
    return TensorShape([dims[0] if len(set(dims)) == 1 else None
                        for dims in zip(*(s for _, s in valid))])


def placeholder_array(aval: ShapedArray) -> np.ndarray:
    """An array of `aval` that allocates nothing (abstract tracing reads shape and dtype)."""
    return np.broadcast_to(np.zeros((), aval.dtype), aval.shape)
