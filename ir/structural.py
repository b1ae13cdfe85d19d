"""Structural primitives (index-only, linear): broadcast, reshape, transpose,
slice, pad, concatenate, and the one helper summing broadcast gradients back.

Each is linear, so its JVP applies the primitive to the tangent and its VJP
is the transposed map: broadcast <-> sum, slice <-> pad, reshape and
transpose <-> their inverses, concatenate <-> slices.
"""
from __future__ import annotations

import builtins

import numpy as np

from . import ops
from .core import ShapedArray
from .primitives import SYMBOLIC_SCALARS, Primitive, bind, fail, register

__all__ = ["size_problem", "broadcast", "reshape", "transpose", "slice", "pad", "concatenate", "sum_to_shape",
           "full_like"]


def _linear_jvp(name):
    def jvp(tangents, out, *primals, **params):
        t, = tangents
        return None if t is None else bind(name, t, **params)
    return jvp


def _declare(name, rule, impl, vjp, jvp=None, **facts):
    prim = register(Primitive(name, "structural", rule, impl, **facts))
    prim.vjp, prim.jvp = vjp, jvp or _linear_jvp(name)


# Larger arrays cannot be indexed with the int64 arithmetic of kernels and numpy.
MAX_ELEMENTS = 2**62


def _size(shape) -> int:
    """The exact element count (Python ints: no silent int64 wraparound)."""
    n = 1
    for d in shape:
        n *= int(d)
    return n


def size_problem(shape) -> str | None:
    """Why an array of `shape` cannot exist (too many elements), or None."""
    n = _size(shape)
    if n > MAX_ELEMENTS:
        return f"shape {tuple(shape)} has {n} elements, more than a 64-bit index can address"
    return None


def check_size(name, shape, *avals):
    problem = size_problem(shape)
    if problem:
        fail(name, problem, *avals)


# ---- broadcast ----------------------------------------------------------------------

def _broadcast_rule(x, *, shape):
    check_size("broadcast", shape, x)
    try:
        ok = np.broadcast_shapes(x.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        fail("broadcast", f"cannot broadcast to {tuple(shape)}", x)
    return ShapedArray(shape, x.dtype)


_declare("broadcast", _broadcast_rule, lambda x, *, shape: np.broadcast_to(x, shape).copy(),
         lambda g, out, x, *, shape: (sum_to_shape(g, ops.shape(x)),),
         torch_name="ExpandBackward0")


def broadcast(x, shape_):
    shape_ = tuple(int(d) for d in shape_)
    return x if ops.shape(x) == shape_ else bind("broadcast", x, shape=shape_)


# ---- reshape, transpose -----------------------------------------------------------------

def _reshape_rule(x, *, shape):
    if _size(shape) != x.size:
        fail("reshape", f"cannot reshape to {tuple(shape)}", x)
    return ShapedArray(shape, x.dtype)


_declare("reshape", _reshape_rule,
         lambda x, *, shape: np.reshape(np.asarray(x), shape).copy(),
         lambda g, out, x, *, shape: (reshape(g, ops.shape(x)),), torch_name="ViewBackward0")


def reshape(x, shape_):
    shape_ = tuple(int(d) for d in shape_)
    return x if ops.shape(x) == shape_ else bind("reshape", x, shape=shape_)


def _transpose_rule(x, *, perm):
    if sorted(perm) != list(range(x.ndim)):
        fail("transpose", f"perm {perm} is not a permutation of {x.ndim} axes", x)
    return ShapedArray(tuple(x.shape[p] for p in perm), x.dtype)


_declare("transpose", _transpose_rule,
         lambda x, *, perm: np.array(np.transpose(x, perm), order="C"),
         lambda g, out, x, *, perm: (transpose(g, tuple(np.argsort(perm))),),
         torch_name="PermuteBackward0")


def transpose(x, perm):
    perm = tuple(int(p) for p in perm)
    if perm == tuple(range(len(perm))) and type(x) not in SYMBOLIC_SCALARS:
        return x  # (a traced Python float becomes the 0-d array an op gives)
    return bind("transpose", x, perm=perm)


# ---- slice, pad ---------------------------------------------------------------------------

def _slice_rule(x, *, starts, steps, sizes):
    """out[i] = x[start + i*step] per axis; steps may be negative, never 0."""
    if not len(starts) == len(steps) == len(sizes) == x.ndim:
        fail("slice", "params must give one entry per axis", x)
    for d, st, sp, sz in zip(x.shape, starts, steps, sizes):
        last = st + (sz - 1) * sp
        if sp == 0 or sz < 0 or (sz > 0 and not (0 <= st < d and 0 <= last < d)):
            fail("slice", f"start={st} step={sp} size={sz} out of bounds for axis of {d}", x)
    return ShapedArray(sizes, x.dtype)


def _slice_index(starts, steps, sizes):
    """Basic slices picking start + i*step for i < size in each dim (numpy's fast path,
    where the index arrays of np.ix_ made eager pad/roll 20-30x slower than numpy)."""
    return tuple(_basic_slice(st, sp, sz) for st, sp, sz in zip(starts, steps, sizes))


def _basic_slice(start, step, size):
    if not size:
        return builtins.slice(0, 0)
    stop = start + step * (size - 1) + (1 if step > 0 else -1)
    return builtins.slice(start, stop if stop >= 0 else None, step)  # -1 would mean the end


def _slice_impl(x, *, starts, steps, sizes):
    x = np.asarray(x)
    if x.ndim == 0:
        return x.copy()
    return x[_slice_index(starts, steps, sizes)].copy()  # a fresh array, as results are


_declare("slice", _slice_rule, _slice_impl,
         lambda g, out, x, *, starts, steps, sizes: (pad(g, starts, steps, ops.shape(x)),),
         torch_name="SliceBackward0")


def slice(x, starts, steps, sizes):
    return bind("slice", x, starts=tuple(starts), steps=tuple(steps), sizes=tuple(sizes))


def _pad_rule(x, *, starts, steps, shape):
    """The transpose of slice: zeros of `shape` with x at start + i*step."""
    check_size("pad", shape, x)
    _slice_rule(ShapedArray(shape, x.dtype), starts=starts, steps=steps, sizes=x.shape)
    return ShapedArray(shape, x.dtype)


def _pad_impl(x, *, starts, steps, shape):
    x = np.asarray(x)
    out = np.zeros(shape, x.dtype)
    if x.ndim == 0:
        return x.copy()
    out[_slice_index(starts, steps, x.shape)] = x
    return out


# pad costs a select per element (the bounds test), where the others only index
_declare("pad", _pad_rule, _pad_impl,
         lambda g, out, x, *, starts, steps, shape: (slice(g, starts, steps, ops.shape(x)),),
         torch_name="ConstantPadNdBackward0", cost=2)


def pad(x, starts, steps, shape_):
    return bind("pad", x, starts=tuple(starts), steps=tuple(steps), shape=tuple(shape_))


# ---- concatenate ----------------------------------------------------------------------------

def _concat_rule(*xs, axis):
    first = xs[0]
    if not 0 <= axis < first.ndim:
        fail("concatenate", f"axis {axis} out of range", *xs)
    if len({x.dtype for x in xs}) > 1:
        fail("concatenate", "operand dtypes differ", *xs)
    for x in xs:
        if x.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape))
                                       if i != axis):
            fail("concatenate", "shapes differ outside the concatenation axis", *xs)
    shape = list(first.shape)
    shape[axis] = builtins.sum(x.shape[axis] for x in xs)
    return ShapedArray(shape, first.dtype)


def _concat_vjp(g, out, *xs, axis):
    parts, start = [], 0
    gshape = ops.shape(g)
    for x in xs:
        size = ops.shape(x)[axis]
        starts = tuple(start if i == axis else 0 for i in range(len(gshape)))
        sizes = tuple(size if i == axis else d for i, d in enumerate(gshape))
        parts.append(slice(g, starts, (1,) * len(gshape), sizes))
        start += size
    return tuple(parts)


def _concat_jvp(tangents, out, *xs, axis):
    if all(t is None for t in tangents):
        return None
    filled = [full_like(x, 0.0) if t is None else t for t, x in zip(tangents, xs)]
    return concatenate(filled, axis)


_declare("concatenate", _concat_rule,
         lambda *xs, axis: np.concatenate([np.asarray(x) for x in xs], axis=axis),
         _concat_vjp, _concat_jvp, torch_name="CatBackward0")


def concatenate(xs, axis):
    return bind("concatenate", *xs, axis=int(axis))


# ---- helpers ----------------------------------------------------------------------------------

def full_like(x, value):
    a = ops.aval(x)
    return broadcast(np.asarray(value, a.dtype), a.shape)


def sum_to_shape(g, shape_):
    """The one central helper reducing a broadcast gradient back to `shape_`.

    Leading axes that broadcasting added are summed away; axes where the
    original had size 1 are summed and kept as size 1.
    """
    gshape = ops.shape(g)
    shape_ = tuple(shape_)
    if gshape == shape_:
        return g
    lead = len(gshape) - len(shape_)
    axes = list(range(lead)) + [lead + i for i, d in enumerate(shape_) if d == 1 and gshape[lead + i] != 1]
    return reshape(ops.reduce_sum(g, axes), shape_)
