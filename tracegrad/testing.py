"""Helpers for users' own tests: gradient checks and eager-vs-compiled checks.

>>> import numpy as np
>>> from tracegrad.testing import check_grads
>>> check_grads(lambda x: np.sum(np.sin(x) * x), (np.linspace(0.1, 1.0, 4),), order=2)
"""
from __future__ import annotations

import numpy as np

from tracegrad.tracer import tensor, tree_flatten


def _f64(args):
    return [np.asarray(a, dtype=np.float64) for a in args]


def _flat_out(f, args):
    leaves, _ = tree_flatten(f(*args))
    return [np.asarray(getattr(l, "data", l), dtype=np.float64) for l in leaves]


def _directional_fd(f, args, tangents, eps):
    plus = _flat_out(f, [a + eps * t for a, t in zip(args, tangents)])
    minus = _flat_out(f, [a - eps * t for a, t in zip(args, tangents)])
    return [(p - m) / (2 * eps) for p, m in zip(plus, minus)]


def _vdot_all(xs, ys):
    return sum(float(np.vdot(x, y)) for x, y in zip(xs, ys))


def check_vjp(f, args, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0):
    """Dot-product test in float64: <t, vjp(c)> == <(f(x+eps t) - f(x-eps t)) / 2eps, c>."""
    from .transforms import vjp

    rng = np.random.default_rng(seed)
    args = _f64(args)
    out, pullback = vjp(f, *args)
    outs = [np.asarray(o) for o in tree_flatten(out)[0]]
    cots = [rng.standard_normal(o.shape) for o in outs]
    _, out_tree = tree_flatten(out)
    from tracegrad.tracer import tree_unflatten
    grads = pullback(tree_unflatten(out_tree, cots))
    grads = [np.asarray(g) for g in tree_flatten(grads)[0]]
    tangents = [rng.standard_normal(a.shape) for a in args]
    lhs = _vdot_all(tangents, grads)
    rhs = _vdot_all(_directional_fd(f, args, tangents, eps), cots)
    if not np.isclose(lhs, rhs, rtol=rtol, atol=atol):
        raise AssertionError(f"dot-product test failed: <t, vjp(c)> = {lhs!r} but the finite "
                             f"difference gives {rhs!r}")


def check_grads(f, args, order=1, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0):
    """Check reverse-mode derivatives of `f` up to `order` against finite differences.

    Order n checks the VJP of the order n-1 directional derivative, so order 2
    checks Hessian-vector products.  Raises AssertionError naming the failure.
    """
    check_vjp(f, args, eps=eps, rtol=rtol, atol=atol, seed=seed)
    if order >= 2:
        rng = np.random.default_rng(seed + 1)
        args = _f64(args)
        cot_shapes = [np.shape(o) for o in _flat_out(f, args)]
        cots = [rng.standard_normal(s) for s in cot_shapes]
        check_grads(_first_derivative(f, cots), args, order - 1,
                    eps=eps * 10, rtol=rtol * 10, atol=atol * 10, seed=seed + 2)


def _first_derivative(f, cots):
    """x -> sum over inputs of <vjp(c)(x), u>: a scalar whose gradient is a Hessian product."""
    from .transforms import vjp
    from tracegrad.tracer import tree_unflatten

    def g(*args):
        out, pullback = vjp(f, *args)
        grads = tree_flatten(pullback(tree_unflatten(tree_flatten(out)[1], cots)))[0]
        total = 0.0
        for gr in grads:
            total = total + (gr * gr).sum() * 0.5
        return total
    return g


def assert_compiled_matches_eager(f, *args, argnums=None, rtol=1e-6, atol=1e-8):
    """Run `f` eagerly with autograd and through `compile_grad`; compare value and grads."""
    from .compile import compile_grad

    positions = range(len(args)) if argnums is None else (
        (argnums,) if isinstance(argnums, int) else tuple(argnums))
    tensors = [tensor(a, requires_grad=(i in positions)) for i, a in enumerate(args)]
    value = f(*tensors)
    value.backward()
    eager_grads = [tensors[i].grad.data if tensors[i].grad is not None else np.zeros_like(args[i])
                   for i in positions]
    cvalue, cgrads = compile_grad(f, argnums=argnums)(*args)
    cgrads = (cgrads,) if isinstance(argnums, int) else cgrads
    np.testing.assert_allclose(cvalue, value.data, rtol=rtol, atol=atol, err_msg="value")
    for i, (e, c) in zip(positions, zip(eager_grads, cgrads)):
        np.testing.assert_allclose(c, e, rtol=rtol, atol=atol, err_msg=f"gradient of argument {i}")
