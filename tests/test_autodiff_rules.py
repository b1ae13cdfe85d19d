"""First-order autodiff rules of every primitive and composite (passes/autodiff.py).

Gradients are checked in float64 against central differences and with the
dot-product test `<t, vjp(c)> == <jvp(t), c>`; JVPs against directional
finite differences; IR gradients against eager autograd.
"""
from __future__ import annotations

import numpy as np
import pytest

from tracegrad.ir import (PRIMITIVES, Literal, ops)
from tracegrad.passes.autodiff import (grad_graph, jvp_graph, vjp_graph,
                                       vjp_split)

from autodiff_cases import (ALL_CASES, COMPOSITE_CASES, OP_CASES, TNP_CASES, _ids, build, checked, fd_directional, fd_jacobian, random_like, run, vdot)


def test_op_table_covers_every_differentiable_primitive():
    rng = np.random.default_rng(0)
    used = {e.prim.name for c in OP_CASES for e in build(c.fn, c.args(rng)).eqns}
    # while_vjp is made only by reverse mode through while loops (which the while
    # case covers); its JVP is tested in test_control_flow_autodiff.py, and it has no VJP
    wanted = {name for name, p in PRIMITIVES.items() if p.differentiable} - {"while_vjp"}
    assert wanted <= used, f"no gradient test for {sorted(wanted - used)}"


# ---- first order: reverse mode -----------------------------------------------------

@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_vjp_matches_central_differences(case):
    rng = np.random.default_rng(0)
    args = case.args(rng)
    graph = build(case.fn, args)
    vg = checked(vjp_graph(graph))
    cts = [rng.standard_normal(v.aval.shape) for v in graph.outvars]
    results = run(vg, *args, *cts)
    n_out = len(graph.outvars)
    for out, expected in zip(results[:n_out], run(graph, *args)):
        np.testing.assert_array_equal(out, expected)
    for i, (grad, a) in enumerate(zip(results[n_out:], args)):
        assert grad.shape == np.shape(a) and grad.dtype == np.asarray(a).dtype
        expected = sum(ct.ravel() @ fd_jacobian(graph, args, k, case.fd_step)[i]
                       for k, ct in enumerate(cts))
        np.testing.assert_allclose(grad.ravel(), expected, rtol=case.tol, atol=case.tol,
                                   err_msg=f"input {i}")


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_dot_product_test(case):
    """<t, vjp(c)> == <jvp(t), c>: reverse and forward rules are each other's transpose."""
    rng = np.random.default_rng(1)
    args = case.args(rng)
    graph = build(case.fn, args)
    tangents = [random_like(rng, a) for a in args]
    cts = [rng.standard_normal(v.aval.shape) for v in graph.outvars]
    n_out = len(graph.outvars)
    grads = run(checked(vjp_graph(graph)), *args, *cts)[n_out:]
    jvps = run(checked(jvp_graph(graph)), *args, *tangents)[n_out:]
    lhs = sum(vdot(t, g) for t, g in zip(tangents, grads))
    rhs = sum(vdot(j, c) for j, c in zip(jvps, cts))
    assert lhs == pytest.approx(rhs, rel=case.dot_tol, abs=case.dot_tol)
    fd = fd_directional(graph, args, tangents, case.fd_step)
    assert lhs == pytest.approx(sum(vdot(d, c) for d, c in zip(fd, cts)),
                                rel=case.tol, abs=case.tol)


@pytest.mark.parametrize("case", COMPOSITE_CASES, ids=_ids(COMPOSITE_CASES))
def test_vjp_split_equals_vjp_graph(case):
    rng = np.random.default_rng(5)
    args = case.args(rng)
    graph = build(case.fn, args)
    cts = [rng.standard_normal(v.aval.shape) for v in graph.outvars]
    forward, backward = map(checked, vjp_split(graph))
    n_out = len(graph.outvars)
    outs = run(forward, *args)
    residuals = outs[n_out:]
    assert len(backward.invars) == len(residuals) + n_out
    expected = run(checked(vjp_graph(graph)), *args, *cts)
    for got, want in zip(outs[:n_out] + run(backward, *residuals, *cts), expected):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    # the backward graph does no work that the forward pass could have done
    known = set(backward.invars[:len(residuals)]) | set(backward.constvars)
    for eqn in backward.eqns:
        assert not all(isinstance(a, Literal) or a in known for a in eqn.inputs), eqn


# ---- first order: forward mode -----------------------------------------------------

@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_jvp_matches_directional_differences(case):
    rng = np.random.default_rng(2)
    args = case.args(rng)
    graph = build(case.fn, args)
    tangents = [random_like(rng, a) for a in args]
    jg = checked(jvp_graph(graph))
    results = run(jg, *args, *tangents)
    n_out = len(graph.outvars)
    for out, expected in zip(results[:n_out], run(graph, *args)):
        np.testing.assert_array_equal(out, expected)
    for got, want, var in zip(results[n_out:], fd_directional(graph, args, tangents, case.fd_step),
                              graph.outvars):
        assert got.shape == var.aval.shape and got.dtype == var.aval.dtype
        np.testing.assert_allclose(got, want, rtol=case.tol, atol=case.tol)


# ---- grad_graph --------------------------------------------------------------------

def _scalar_case(case):
    """Reduce a case's first output to a scalar by a fixed weighted sum."""
    def fn(*xs):
        out = case.fn(*xs)
        out = out[0] if isinstance(out, tuple) else out
        weights = np.linspace(0.5, 1.5, max(1, int(np.prod(ops.shape(out), dtype=int))))
        return ops.reduce_sum(ops.mul(out, weights.reshape(ops.shape(out))),
                              tuple(range(len(ops.shape(out)))))
    return fn


SCALAR_CASES = COMPOSITE_CASES + TNP_CASES + OP_CASES[:12]


@pytest.mark.parametrize("case", SCALAR_CASES, ids=_ids(SCALAR_CASES))
def test_grad_graph_matches_central_differences(case):
    rng = np.random.default_rng(3)
    args = case.args(rng)
    graph = build(_scalar_case(case), args)
    argnums = tuple(range(len(args)))
    gg = checked(grad_graph(graph, argnums=argnums))
    value, *grads = run(gg, *args)
    assert value == run(graph, *args)[0]
    for grad, jac in zip(grads, fd_jacobian(graph, args, 0, case.fd_step)):
        np.testing.assert_allclose(grad.ravel(), jac[0], rtol=case.tol, atol=case.tol)


def test_grad_graph_argnums_and_has_value():
    graph = build(lambda x, y: ops.reduce_sum(ops.mul(ops.sin(x), y), (0,)),
                  [np.zeros(3), np.zeros(3)])
    x, y = np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0])
    only_y = checked(grad_graph(graph, argnums=(1,), has_value=False))
    assert len(only_y.outvars) == 1
    np.testing.assert_allclose(run(only_y, x, y)[0], np.sin(x))
    both = checked(grad_graph(graph, argnums=(1, 0)))
    value, gy, gx = run(both, x, y)
    assert value == pytest.approx(np.sum(np.sin(x) * y))
    np.testing.assert_allclose(gy, np.sin(x))
    np.testing.assert_allclose(gx, np.cos(x) * y)
    np.testing.assert_allclose(run(checked(grad_graph(graph, argnums=-1)), x, y)[1], np.sin(x))


def test_grad_graph_float32_stays_float32():
    graph = build(lambda x: ops.reduce_sum(ops.exp(x), (0,)), [np.zeros(3, np.float32)])
    gg = checked(grad_graph(graph))
    assert [str(a) for a in gg.out_avals] == ["f32[]", "f32[3]"]
    x = np.array([0.0, 1.0, -1.0], np.float32)
    value, grad = run(gg, x)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, np.exp(x), rtol=1e-6)


def test_grad_graph_rejects_non_scalar_outputs():
    vector = build(ops.sin, [np.zeros(3)])
    with pytest.raises(TypeError, match=r"\(3,\)"):
        grad_graph(vector)
    two = build(lambda x: (ops.reduce_sum(x, (0,)), ops.reduce_sum(x, (0,))), [np.zeros(3)])
    with pytest.raises(TypeError, match="2 outputs"):
        grad_graph(two)
    integer = build(lambda n: ops.reduce_sum(n, (0,)), [np.zeros(3, np.int64)])
    with pytest.raises(TypeError, match="i64"):
        grad_graph(integer)
    with pytest.raises(ValueError, match="argnums"):
        grad_graph(build(lambda x: ops.reduce_sum(x, (0,)), [np.zeros(3)]), argnums=(1,))


def test_grad_of_identity_and_constant_output():
    ident = checked(grad_graph(build(lambda x: x, [np.float64(2.0)])))
    assert [float(v) for v in run(ident, 2.0)] == [2.0, 1.0]
    const = checked(grad_graph(build(lambda x: np.float64(3.0), [np.float64(2.0)])))
    assert isinstance(const.outvars[0], Literal)
    assert [float(v) for v in run(const, 2.0)] == [3.0, 0.0]


# ---- IR gradients == eager gradients -----------------------------------------------

def _eager_tensor_cls():
    from tracegrad.tracer import Tensor  # the eager autograd of the same rules

    return Tensor


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_ir_gradient_equals_eager_gradient(case):
    Tensor = _eager_tensor_cls()
    rng = np.random.default_rng(6)
    args = case.args(rng)
    graph = build(case.fn, args)
    cts = [rng.standard_normal(v.aval.shape) for v in graph.outvars]
    ir_grads = run(checked(vjp_graph(graph)), *args, *cts)[len(cts):]
    leaves = [Tensor(a, requires_grad=True) for a in args]
    outs = case.fn(*leaves)
    outs = outs if isinstance(outs, tuple) else (outs,)
    loss = None
    for out, ct in zip(outs, cts):
        term = ops.reduce_sum(ops.mul(out, ct), tuple(range(np.ndim(ct))))
        loss = term if loss is None else ops.add(loss, term)
    loss.backward()
    for leaf, ir_grad in zip(leaves, ir_grads):
        eager = np.zeros_like(ir_grad) if leaf.grad is None else leaf.grad.detach().data
        np.testing.assert_allclose(ir_grad, eager, rtol=1e-12, atol=1e-14)
