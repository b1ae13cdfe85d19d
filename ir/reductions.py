"""Reduction primitives: `reduce_sum`, `reduce_prod`, `reduce_max`, `reduce_min` over sorted
axes."""
from __future__ import annotations

import numpy as np

from . import ops
from .core import ShapedArray
from .primitives import Primitive, bind, fail, register

__all__ = ["reduce_sum", "reduce_prod", "reduce_max", "reduce_min"]


def _reduce_rule(name):
    def rule(x, *, axes):
        if sorted(set(axes)) != list(axes) or any(not 0 <= a < x.ndim for a in axes):
            fail(name, f"axes {axes} must be sorted, unique and within rank {x.ndim}", x)
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        if name in ("reduce_max", "reduce_min") and any(x.shape[a] == 0 for a in axes):
            fail(name, "zero-size reduction has no identity", x)
        return ShapedArray(shape, x.dtype)
    return rule


def _np_reduce(fn):
    def impl(x, *, axes):
        x = np.asarray(x)
        return np.asarray(fn(x, axis=axes), dtype=x.dtype)
    return impl


def keep_dims_shape(in_shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(in_shape))


def _expand(r, x, axes):
    """A reduced value `r` broadcast back to the shape of the reduced operand `x`."""
    shp = ops.shape(x)
    return ops.broadcast(ops.reshape(r, keep_dims_shape(shp, axes)), shp)


def _sum_vjp(g, out, x, *, axes):
    return (_expand(g, x, axes),)


def _sum_jvp(tangents, out, x, *, axes):
    t, = tangents
    return None if t is None else bind("reduce_sum", t, axes=axes)


def _others_product(x, axes):
    """Per entry, the product of the other entries of its reduction: the running products
    (the cumprod primitive) before it and after it, so no division (exact at zeros, as
    JAX's reduce_prod derivative), in O(n)."""
    shp = ops.shape(x)
    rest = [i for i in range(len(shp)) if i not in axes]
    perm = tuple(axes) + tuple(rest)  # reduced axes first: the running products run
    lead = tuple(shp[i] for i in rest)  # along axis 0, vectorized across the others
    n = int(np.prod([shp[a] for a in axes], dtype=np.int64))
    if n == 0 or 0 in lead:  # nothing to differentiate
        return np.zeros(shp, ops.dtype(x))
    flat = ops.reshape(ops.transpose(x, perm), (n,) + lead)
    one, steps = np.ones((1,) + lead, ops.dtype(x)), (1,) * (len(lead) + 1)
    before = ops.slice(ops.cumprod(flat, 0), (0,) * len(steps), steps, (n - 1,) + lead)
    after = ops.slice(ops.cumprod(flat, 0, True), (1,) + (0,) * len(lead), steps,
                      (n - 1,) + lead)
    others = ops.mul(ops.concatenate([one, before], 0), ops.concatenate([after, one], 0))
    others = ops.reshape(others, tuple(shp[i] for i in perm))
    return ops.transpose(others, tuple(int(i) for i in np.argsort(perm)))


def _prod_vjp(g, out, x, *, axes):
    return (ops.mul(_expand(g, x, axes), _others_product(x, axes)),)


def _prod_jvp(tangents, out, x, *, axes):
    t, = tangents
    return None if t is None else reduce_sum(ops.mul(t, _others_product(x, axes)), axes)


def _extremum_weights(out, x, axes):
    # The maximum (minimum) entries share the gradient evenly, as in JAX.
    mask = ops.convert(ops.eq(x, _expand(out, x, axes)), ops.dtype(x))
    return ops.div(mask, _expand(reduce_sum(mask, axes), x, axes))


def _ext_vjp(g, out, x, *, axes):
    return (ops.mul(_expand(g, x, axes), _extremum_weights(out, x, axes)),)


def _ext_jvp(tangents, out, x, *, axes):
    t, = tangents
    return None if t is None else reduce_sum(ops.mul(t, _extremum_weights(out, x, axes)), axes)


def _reducer(name):
    def f(x, axes):
        axes = tuple(sorted(set(int(a) for a in axes)))
        return bind(name, x, axes=axes) if axes else x
    f.__name__ = f.__qualname__ = name
    return f


def _declare(name, np_fn, rules, **facts):
    prim = register(Primitive(name, "reduce", _reduce_rule(name), _np_reduce(np_fn), **facts))
    prim.vjp, prim.jvp = rules
    return _reducer(name)


def _whole(torch_name):
    """PyTorch's node name for a reduction over every axis (`SumBackward0`), else None."""
    return lambda ndim, params: torch_name if len(params["axes"]) == ndim else None


reduce_sum = _declare("reduce_sum", np.sum, (_sum_vjp, _sum_jvp), torch_name="SumBackward1",
                      torch_variant=_whole("SumBackward0"))
reduce_prod = _declare("reduce_prod", np.prod, (_prod_vjp, _prod_jvp), torch_name="ProdBackward1",
                       torch_variant=_whole("ProdBackward0"))
reduce_max = _declare("reduce_max", np.max, (_ext_vjp, _ext_jvp), torch_name="AmaxBackward0")
reduce_min = _declare("reduce_min", np.min, (_ext_vjp, _ext_jvp), torch_name="AminBackward0")
