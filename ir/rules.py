"""Autodiff rules (VJP and JVP) for every primitive, attached to `PRIMITIVES`.

Rules are written against `ir.ops`, so they run on numpy arrays (eager
backward), eager tensors (create_graph) and traced values (the IR autodiff
pass) alike.

Signatures:
    vjp(g, out, *primals, **params) -> tuple of cotangents, None = zero
    jvp(tangents, out, *primals, **params) -> tangent or None (zero)

Elementwise primitives are described once by their partial derivatives
(`d out / d operand`, each evaluated at the primal point); the VJP is
`g * partial` summed back to the operand's shape, the JVP is
`sum(t * partial)`.  Linear primitives apply themselves (or their transpose).
"""
from __future__ import annotations

import numpy as np

from . import ops
from .primitives import PRIMITIVES


# d out / d x for unary elementwise primitives: f(x, out, **params) -> partial
UNARY_PARTIALS = {
    "neg": lambda x, out: np.asarray(-1.0, ops.dtype(x)),
    "exp": lambda x, out: out,
    "log": lambda x, out: ops.div(1.0, x),
    "log1p": lambda x, out: ops.div(1.0, ops.add(x, 1.0)),
    "expm1": lambda x, out: ops.add(out, 1.0),
    "sqrt": lambda x, out: ops.div(0.5, out),
    "sin": lambda x, out: ops.cos(x),
    "cos": lambda x, out: ops.neg(ops.sin(x)),
    "tanh": lambda x, out: ops.sub(1.0, ops.mul(out, out)),
    "abs": lambda x, out: ops.sign(x),
    "integer_pow": lambda x, out, y: _integer_pow_partial(x, y),
}


def _integer_pow_partial(x, y):
    if y == 0:
        return np.asarray(0.0, ops.dtype(x))
    if y == 1:
        return np.asarray(1.0, ops.dtype(x))
    return ops.mul(float(y), x if y == 2 else ops.integer_pow(x, y - 1))


def _pow_dy(x, y, out):
    # d/dy x**y = out * log(x); defined as 0 where x == 0 (as JAX does) so that
    # 0**y does not poison the gradient with 0 * -inf.
    safe = ops.where(ops.eq(x, 0.0), 1.0, x)
    return ops.mul(out, ops.log(safe))


def _tie_mask(a, b, cmp):
    # maximum/minimum: the winner gets the gradient, ties split it evenly.
    dt = ops.dtype(a)
    one = ops.where(cmp(a, b), np.asarray(1.0, dt), np.asarray(0.0, dt))
    return ops.where(ops.eq(a, b), np.asarray(0.5, dt), one)


# (d out / d x, d out / d y) for binary elementwise primitives; None = identity 1
BINARY_PARTIALS = {
    "add": (lambda x, y, out: None, lambda x, y, out: None),
    "sub": (lambda x, y, out: None, lambda x, y, out: -1.0),
    "mul": (lambda x, y, out: y, lambda x, y, out: x),
    "div": (lambda x, y, out: ops.div(1.0, y), lambda x, y, out: ops.neg(ops.div(out, y))),
    "pow": (lambda x, y, out: ops.mul(y, ops.pow(x, ops.sub(y, 1.0))), _pow_dy),
    "max": (lambda x, y, out: _tie_mask(x, y, ops.gt), lambda x, y, out: _tie_mask(y, x, ops.gt)),
    "min": (lambda x, y, out: _tie_mask(x, y, ops.lt), lambda x, y, out: _tie_mask(y, x, ops.lt)),
}


def _scale(g, partial):
    if partial is None:
        return g
    if isinstance(partial, float) and partial == -1.0:
        return ops.neg(g)
    return ops.mul(g, partial)


def _unary_vjp(name):
    def vjp(g, out, x, **params):
        return (_scale(g, UNARY_PARTIALS[name](x, out, **params)),)
    return vjp


def _unary_jvp(name):
    def jvp(tangents, out, x, **params):
        t, = tangents
        return None if t is None else _scale(t, UNARY_PARTIALS[name](x, out, **params))
    return jvp


def _binary_vjp(name):
    dx, dy = BINARY_PARTIALS[name]

    def vjp(g, out, x, y):
        return (ops.sum_to_shape(_scale(g, dx(x, y, out)), ops.shape(x)),
                ops.sum_to_shape(_scale(g, dy(x, y, out)), ops.shape(y)))
    return vjp


def _binary_jvp(name):
    partials = BINARY_PARTIALS[name]

    def jvp(tangents, out, x, y):
        terms = [_scale(ops.broadcast(t, ops.shape(out)), d(x, y, out))
                 for t, d in zip(tangents, partials) if t is not None]
        return _add_all(terms)
    return jvp


def _add_all(terms):
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = ops.add(total, t)
    return total


def _zero_vjp(g, out, *primals, **params):
    return (None,) * len(primals)


def _zero_jvp(tangents, out, *primals, **params):
    return None


def _where_vjp(g, out, c, x, y):
    zero = np.asarray(0.0, ops.dtype(g))
    return (None, ops.sum_to_shape(ops.where(c, g, zero), ops.shape(x)),
            ops.sum_to_shape(ops.where(c, zero, g), ops.shape(y)))


def _where_jvp(tangents, out, c, x, y):
    _, tx, ty = tangents
    if tx is None and ty is None:
        return None
    zero = np.asarray(0.0, ops.dtype(out))
    return ops.where(c, zero if tx is None else tx, zero if ty is None else ty)


def _convert_vjp(g, out, x, *, dtype):
    return (ops.convert(g, ops.dtype(x)),)


def _keep_dims_shape(in_shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(in_shape))


def _reduce_sum_vjp(g, out, x, *, axes):
    shp = ops.shape(x)
    return (ops.broadcast(ops.reshape(g, _keep_dims_shape(shp, axes)), shp),)


def _extremum_weights(out, x, axes):
    # The maximum (minimum) entries share the gradient evenly, as in JAX.
    shp = ops.shape(x)
    ob = ops.broadcast(ops.reshape(out, _keep_dims_shape(shp, axes)), shp)
    mask = ops.convert(ops.eq(x, ob), ops.dtype(x))
    count = ops.broadcast(ops.reshape(ops.reduce_sum(mask, axes), _keep_dims_shape(shp, axes)), shp)
    return ops.div(mask, count)


def _reduce_ext_vjp(g, out, x, *, axes):
    shp = ops.shape(x)
    gb = ops.broadcast(ops.reshape(g, _keep_dims_shape(shp, axes)), shp)
    return (ops.mul(gb, _extremum_weights(out, x, axes)),)


def _reduce_ext_jvp(tangents, out, x, *, axes):
    t, = tangents
    return None if t is None else ops.reduce_sum(ops.mul(t, _extremum_weights(out, x, axes)), axes)


def _swap_last(x):
    n = len(ops.shape(x))
    return ops.transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


def _dot_vjp(g, out, x, y):
    return ops.dot(g, _swap_last(y)), ops.dot(_swap_last(x), g)


def _dot_jvp(tangents, out, x, y):
    tx, ty = tangents
    terms = []
    if tx is not None:
        terms.append(ops.dot(tx, y))
    if ty is not None:
        terms.append(ops.dot(x, ty))
    return _add_all(terms)


def _concat_vjp(g, out, *xs, axis):
    parts, start = [], 0
    gshape = ops.shape(g)
    for x in xs:
        size = ops.shape(x)[axis]
        starts = tuple(start if i == axis else 0 for i in range(len(gshape)))
        sizes = tuple(size if i == axis else d for i, d in enumerate(gshape))
        parts.append(ops.slice(g, starts, (1,) * len(gshape), sizes))
        start += size
    return tuple(parts)


def _concat_jvp(tangents, out, *xs, axis):
    if all(t is None for t in tangents):
        return None
    filled = [ops.full_like(x, 0.0) if t is None else t for t, x in zip(tangents, xs)]
    return ops.concatenate(filled, axis)


# Linear structural primitives: VJP is the transpose map, JVP applies the primitive.
STRUCTURAL_VJP = {
    "broadcast": lambda g, out, x, shape: (ops.sum_to_shape(g, ops.shape(x)),),
    "reshape": lambda g, out, x, shape: (ops.reshape(g, ops.shape(x)),),
    "transpose": lambda g, out, x, perm: (ops.transpose(g, tuple(np.argsort(perm))),),
    "slice": lambda g, out, x, starts, steps, sizes: (ops.pad(g, starts, steps, ops.shape(x)),),
    "pad": lambda g, out, x, starts, steps, shape: (ops.slice(g, starts, steps, ops.shape(x)),),
    "reduce_sum": lambda g, out, x, axes: _reduce_sum_vjp(g, out, x, axes=axes),
    "convert": lambda g, out, x, dtype: _convert_vjp(g, out, x, dtype=dtype),
}


def _linear_jvp(name):
    def jvp(tangents, out, *primals, **params):
        t, = tangents
        if t is None:
            return None
        if name == "convert" and not np.issubdtype(params["dtype"], np.floating):
            return None
        return ops.bind(name, t, **params)
    return jvp


def _vjp_kw(fn):
    def vjp(g, out, *primals, **params):
        return fn(g, out, *primals, **params)
    return vjp


def install():
    for name in UNARY_PARTIALS:
        PRIMITIVES[name].vjp, PRIMITIVES[name].jvp = _unary_vjp(name), _unary_jvp(name)
    for name in BINARY_PARTIALS:
        PRIMITIVES[name].vjp, PRIMITIVES[name].jvp = _binary_vjp(name), _binary_jvp(name)
    for name, fn in STRUCTURAL_VJP.items():
        PRIMITIVES[name].vjp, PRIMITIVES[name].jvp = _vjp_kw(fn), _linear_jvp(name)
    for name in ("reduce_max", "reduce_min"):
        PRIMITIVES[name].vjp, PRIMITIVES[name].jvp = _reduce_ext_vjp, _reduce_ext_jvp
    PRIMITIVES["where"].vjp, PRIMITIVES["where"].jvp = _where_vjp, _where_jvp
    PRIMITIVES["dot"].vjp, PRIMITIVES["dot"].jvp = _dot_vjp, _dot_jvp
    PRIMITIVES["concatenate"].vjp, PRIMITIVES["concatenate"].jvp = _concat_vjp, _concat_jvp
    for prim in PRIMITIVES.values():
        if not prim.differentiable:
            prim.vjp, prim.jvp = _zero_vjp, _zero_jvp
    PRIMITIVES["sign"].vjp, PRIMITIVES["sign"].jvp = _zero_vjp, _zero_jvp


install()
