"""Autodiff as graph transforms (passes/autodiff.py) and the public transforms.

Gradients are checked in float64 against central differences and with the
dot-product test `<t, vjp(c)> == <jvp(t), c>`; JVPs against directional
finite differences; second order (grad of grad, Hessian-vector products in
both compositions) against analytic values and finite differences of the
gradient.  Every produced graph goes through the verifier.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from tracegrad.ir import (PRIMITIVES, GraphBuilder, Literal, Primitive, ShapedArray, eval_graph,
                          ops, verify)
import tracegrad.transforms as t
from tracegrad.tracer import numpy as tnp
from tracegrad.passes.autodiff import (MissingRuleError, grad_graph, jvp_graph, vjp_graph,
                                       vjp_split)

F64 = np.float64


# ---- helpers -----------------------------------------------------------------------

def build(fn, args, concrete=False):
    """Trace `fn` (written with ir.ops) on fresh inputs shaped like `args`."""
    b = GraphBuilder()
    xs = [b.new_input(ShapedArray(np.shape(a), np.asarray(a).dtype), a if concrete else None)
          for a in args]
    out = fn(*xs)
    return verify(b.build(list(out) if isinstance(out, (tuple, list)) else [out]))


def run(graph, *args):
    return eval_graph(graph, *args)


def checked(graph):
    """Every produced graph must be well formed."""
    return verify(graph)


def fd_jacobian(graph, args, out_index=0, h=1e-6):
    """Central-difference Jacobian of one output w.r.t. each input: (out size, in size) arrays."""
    jacs = []
    for i, a in enumerate(args):
        a = np.asarray(a)
        out_size = np.asarray(run(graph, *args)[out_index]).size
        if not np.issubdtype(a.dtype, np.floating):
            jacs.append(np.zeros((out_size, a.size)))
            continue
        jac = np.zeros((out_size, a.size))
        for k in range(a.size):
            step = np.zeros(a.size)
            step[k] = h
            plus = list(args)
            minus = list(args)
            plus[i] = (a.ravel() + step).reshape(a.shape).astype(a.dtype)
            minus[i] = (a.ravel() - step).reshape(a.shape).astype(a.dtype)
            diff = (np.asarray(run(graph, *plus)[out_index], F64)
                    - np.asarray(run(graph, *minus)[out_index], F64))
            jac[:, k] = diff.ravel() / (2 * h)
        jacs.append(jac)
    return jacs


def fd_directional(graph, args, tangents, h=1e-6):
    """Central difference of every output along `tangents`."""
    plus = [np.asarray(a) + h * t if np.issubdtype(np.asarray(a).dtype, np.floating) else a
            for a, t in zip(args, tangents)]
    minus = [np.asarray(a) - h * t if np.issubdtype(np.asarray(a).dtype, np.floating) else a
             for a, t in zip(args, tangents)]
    return [(np.asarray(p, F64) - np.asarray(m, F64)) / (2 * h)
            for p, m in zip(run(graph, *plus), run(graph, *minus))]


def random_like(rng, x):
    x = np.asarray(x)
    return rng.standard_normal(x.shape).astype(x.dtype) if np.issubdtype(x.dtype, np.floating) \
        else np.zeros_like(x)


def vdot(a, b):
    return float(np.sum(np.asarray(a, F64) * np.asarray(b, F64)))


# ---- input domains -----------------------------------------------------------------

def real(*shape):
    return lambda rng: rng.standard_normal(shape)


def positive(*shape):
    return lambda rng: rng.uniform(0.5, 2.0, shape)


def nonzero(*shape):
    return lambda rng: rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)


def distinct(*shape):
    """Entries at least 0.3 apart: away from the ties of max/min/reduce_max."""
    n = int(np.prod(shape, dtype=int))
    return lambda rng: (rng.permutation(n) * 0.3 + rng.uniform(0, 0.1, n)).reshape(shape)


def apart_from(dom):
    """A pair (x, y) with |x - y| >= 0.3 everywhere: away from max/min kinks."""
    def gen(rng):
        x = dom(rng)
        return x, x + rng.choice([-1.0, 1.0], np.shape(x)) * rng.uniform(0.3, 1.0, np.shape(x))
    return gen


@dataclass
class Case:
    name: str
    fn: Callable
    domains: list  # one generator per input, or a single generator giving a tuple
    tol: float = 1e-6  # against finite differences
    fd_step: float = 1e-6
    dot_tol: float = 1e-10  # forward vs reverse rules: rounding only

    def args(self, rng):
        if callable(self.domains):
            return list(self.domains(rng))
        return [d(rng) for d in self.domains]


def _where_fn(c, x, y):
    return ops.where(ops.gt(c, 0.0), x, y)


def _max_min_mix(x, y):
    return ops.add(ops.max(x, y), ops.mul(ops.min(x, y), 2.0))


# The op table: every differentiable primitive, with its input domain.
OP_CASES = [
    Case("neg", ops.neg, [real(3)]),
    Case("exp", ops.exp, [real(3)]),
    Case("log", ops.log, [positive(3)]),
    Case("log1p", ops.log1p, [positive(3)]),
    Case("expm1", ops.expm1, [real(3)]),
    Case("sqrt", ops.sqrt, [positive(3)]),
    Case("sin", ops.sin, [real(2, 3)]),
    Case("cos", ops.cos, [real(2, 3)]),
    Case("tanh", ops.tanh, [real(4)]),
    Case("abs", ops.abs, [nonzero(4)]),
    Case("sign", lambda x: ops.mul(ops.sign(x), x), [nonzero(4)]),
    Case("integer_pow_0", lambda x: ops.integer_pow(x, 0), [real(3)]),
    Case("integer_pow_1", lambda x: ops.integer_pow(x, 1), [real(3)]),
    Case("integer_pow_2", lambda x: ops.integer_pow(x, 2), [real(3)]),
    Case("integer_pow_3", lambda x: ops.integer_pow(x, 3), [real(3)]),
    Case("integer_pow_-2", lambda x: ops.integer_pow(x, -2), [nonzero(3)]),
    Case("add", ops.add, [real(3), real(3)]),
    Case("sub", ops.sub, [real(3), real(3)]),
    Case("mul", ops.mul, [real(2, 2), real(2, 2)]),
    Case("div", ops.div, [real(3), nonzero(3)]),
    Case("pow", ops.pow, [positive(3), real(3)]),
    Case("max", ops.max, apart_from(real(4))),
    Case("min", ops.min, apart_from(real(4))),
    Case("max_min_scalar", _max_min_mix, lambda rng: (np.float64(0.1), distinct(5)(rng) - 0.65)),
    Case("mul_scalar_lhs", ops.mul, [real(), real(3)]),
    Case("sub_scalar_rhs", ops.sub, [real(2, 3), real()]),
    Case("div_scalar_rhs", ops.div, [real(3), nonzero()]),
    Case("pow_scalar_exponent", ops.pow, [positive(3), real()]),
    Case("where", _where_fn, [nonzero(4), real(4), real(4)]),
    Case("where_scalar_branch", _where_fn, [nonzero(4), real(), real(4)]),
    Case("convert", lambda x: ops.convert(ops.mul(ops.convert(x, np.float32), 3.0), F64),
         [real(3)], tol=1e-3, fd_step=1e-2, dot_tol=1e-6),
    Case("reduce_sum", lambda x: ops.reduce_sum(x, (1,)), [real(2, 3)]),
    Case("reduce_sum_all", lambda x: ops.reduce_sum(x, (0, 1, 2)), [real(2, 3, 2)]),
    Case("reduce_max", lambda x: ops.reduce_max(x, (0,)), [distinct(3, 2)]),
    Case("reduce_min", lambda x: ops.reduce_min(x, (0, 2)), [distinct(2, 2, 3)]),
    Case("broadcast_lead", lambda x: ops.broadcast(x, (2, 3)), [real(3)]),
    Case("broadcast_scalar", lambda x: ops.broadcast(x, (2, 2)), [real()]),
    Case("broadcast_ones", lambda x: ops.broadcast(x, (2, 3, 4)), [real(3, 1)]),
    Case("reshape", lambda x: ops.reshape(x, (3, 2)), [real(2, 3)]),
    Case("transpose", lambda x: ops.transpose(x, (2, 0, 1)), [real(2, 3, 2)]),
    Case("slice", lambda x: ops.slice(x, (1, 4), (1, -2), (2, 2)), [real(3, 5)]),
    Case("pad", lambda x: ops.pad(x, (0, 1), (2, 1), (4, 4)), [real(2, 2)]),
    Case("concatenate", lambda a, b, c: ops.concatenate([a, b, c], 1),
         [real(2, 1), real(2, 3), real(2, 2)]),
    Case("dot", ops.dot, [real(2, 3), real(3, 4)]),
    Case("dot_batched", ops.dot, [real(2, 2, 3), real(2, 3, 2)]),
]


def _softplus(x):
    return ops.log1p(ops.exp(x))


def _logsumexp(x):
    m = ops.reduce_max(x, (1,))
    shifted = ops.sub(x, ops.broadcast(ops.reshape(m, (2, 1)), (2, 4)))
    return ops.add(ops.log(ops.reduce_sum(ops.exp(shifted), (1,))), m)


def _mlp_loss(w, x, b):
    h = ops.tanh(ops.add(ops.dot(x, w), ops.broadcast(b, (4, 2))))
    return ops.div(ops.reduce_sum(ops.mul(h, h), (0, 1)), 8.0)


def _fan_out(x):
    # x is read by four equations; its cotangents must be summed
    y = ops.mul(x, x)
    return ops.add(ops.mul(ops.sin(x), y), ops.div(x, ops.add(y, 1.0)))


CONST = np.array([0.5, -1.0, 2.0])

COMPOSITE_CASES = [
    Case("softplus", _softplus, [real(5)]),
    Case("logsumexp", _logsumexp, [distinct(2, 4)]),
    Case("mlp_loss", _mlp_loss, [real(3, 2), real(4, 3), real(2)]),
    Case("fan_out", _fan_out, [real(4)]),
    Case("captured_constant", lambda x: ops.mul(ops.exp(x), CONST), [real(3)]),
    Case("sigmoid", lambda x: ops.div(1.0, ops.add(1.0, ops.exp(ops.neg(x)))), [real(3)]),
    Case("two_outputs", lambda x, y: (ops.mul(x, y), ops.reduce_sum(ops.sin(x), (0,))),
         [real(3), real(3)]),
]

def _attention(q, k, v):
    scores = tnp.divide(tnp.matmul(q, tnp.swapaxes(k, -1, -2)), 2.0)
    return tnp.matmul(tnp.softmax(scores, axis=-1), v)


def _layer_norm(x, gain):
    centered = tnp.subtract(x, tnp.mean(x, axis=-1, keepdims=True))
    scale = tnp.sqrt(tnp.add(tnp.var(x, axis=-1, keepdims=True), 1e-5))
    return tnp.multiply(tnp.divide(centered, scale), gain)


def _relu_mlp(w, x):
    return tnp.sum(tnp.square(tnp.relu(tnp.matmul(x, w))), axis=0)


def _broadcast_arith(x, y):
    num = tnp.maximum(tnp.subtract(tnp.multiply(x, y), 0.5), y)
    return tnp.divide(num, tnp.add(1.0, tnp.square(x)))


def _stack_transpose(x):
    rows = [tnp.squeeze(r, axis=0) for r in (ops.slice(x, (0, 0), (1, 1), (1, 4)),
                                              ops.slice(x, (2, 0), (1, 1), (1, 4)))]
    return tnp.transpose(tnp.stack([tnp.multiply(rows[0], rows[1]), rows[1]], axis=1))


# The same kind of functions written with the NumPy-like namespace (composites of
# primitives: broadcasting, keepdims reductions, stop_gradient inside logsumexp ...);
# without operators, so that they trace with plain ir values too.
TNP_CASES = [
    Case("tnp_logsumexp", lambda x: tnp.logsumexp(x, axis=1), [real(2, 5)]),
    Case("tnp_log_softmax", lambda x: tnp.log_softmax(x, axis=0), [real(4, 2)]),
    Case("tnp_softplus_sigmoid", lambda x: tnp.multiply(tnp.softplus(x), tnp.sigmoid(x)),
         [nonzero(5)]),
    Case("tnp_relu_mlp", _relu_mlp, [real(3, 2), real(4, 3)]),
    Case("tnp_attention", _attention, [real(2, 3, 4), real(2, 3, 4), real(2, 3, 2)]),
    Case("tnp_layer_norm", _layer_norm, [real(3, 4), real(4)]),
    Case("tnp_broadcast_arith", _broadcast_arith,
         lambda rng: (rng.standard_normal((3, 1)), 2.0 + 0.1 * rng.standard_normal(4))),
    Case("tnp_stack_transpose", _stack_transpose, [real(3, 4)]),
]

ALL_CASES = OP_CASES + COMPOSITE_CASES + TNP_CASES


def _ids(cases):
    return [c.name for c in cases]


def test_op_table_covers_every_differentiable_primitive():
    rng = np.random.default_rng(0)
    used = {e.prim.name for c in OP_CASES for e in build(c.fn, c.args(rng)).eqns}
    wanted = {name for name, p in PRIMITIVES.items() if p.differentiable}
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


def test_vjp_split_keeps_guards_in_the_forward_graph():
    forward, backward = map(checked, vjp_split(_guarded_graph()))
    assert len(forward.guards) == 1 and not backward.guards
    _, values = eval_graph(forward, np.array([-1.0, -2.0, 3.0]), np.ones(3), with_guards=True)
    assert not forward.guards[0].holds(values[0])


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
    for i, (grad, jac) in enumerate(zip(grads, fd_jacobian(graph, args, 0, case.fd_step))):
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


# ---- special cases -----------------------------------------------------------------

def test_stop_gradient_blocks_the_cotangent():
    graph = build(lambda x: ops.reduce_sum(ops.mul(ops.stop_gradient(x), x), (0,)),
                  [np.zeros(3)])
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(run(checked(grad_graph(graph)), x)[1], x)  # not 2x
    np.testing.assert_allclose(run(checked(jvp_graph(graph)), x, np.ones(3))[1], np.sum(x))


def test_unused_and_integer_inputs_get_typed_zeros():
    def fn(x, unused, n, m32):
        return ops.mul(ops.reduce_sum(x, (0,)), ops.convert(ops.reduce_sum(n, (0,)), F64))
    args = [np.ones(3), np.ones((2, 2), np.float32), np.array([1, 2], np.int64),
            np.array(7, np.int32)]
    graph = build(fn, args)
    vg = checked(vjp_graph(graph))
    _, gx, gu, gn, gm = run(vg, *args, np.float64(1.0))
    np.testing.assert_allclose(gx, [3.0, 3.0, 3.0])
    for got, a in [(gu, args[1]), (gn, args[2]), (gm, args[3])]:
        assert got.shape == a.shape and got.dtype == a.dtype and not got.any()
    jg = checked(jvp_graph(graph))
    tangent = run(jg, *args, np.ones(3), np.ones((2, 2), np.float32), np.ones(2, np.int64),
                  np.array(1, np.int32))[1]
    assert tangent == pytest.approx(9.0)


def test_outputs_that_are_inputs_repeated_or_literals():
    graph = build(lambda x, y: (x, ops.mul(x, y), x, np.float64(4.0)), [np.zeros(2), np.zeros(2)])
    assert isinstance(graph.outvars[3], Literal)
    x, y = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    cts = [np.array([1.0, 10.0]), np.array([100.0, 1000.0]), np.array([2.0, 20.0]),
           np.float64(7.0)]
    outs = run(checked(vjp_graph(graph)), x, y, *cts)
    np.testing.assert_allclose(outs[4], cts[0] + cts[2] + cts[1] * y)
    np.testing.assert_allclose(outs[5], cts[1] * x)
    tangents = run(checked(jvp_graph(graph)), x, y, np.ones(2), np.zeros(2))[4:]
    np.testing.assert_allclose(tangents[1], y)
    assert float(tangents[3]) == 0.0


def test_wrt_subset_and_bad_index():
    graph = build(lambda x, y: ops.mul(x, y), [np.zeros(2), np.zeros(2)])
    vg = checked(vjp_graph(graph, wrt=[1]))
    assert len(vg.invars) == 3 and len(vg.outvars) == 2
    out, gy = run(vg, np.array([2.0, 3.0]), np.ones(2), np.ones(2))
    np.testing.assert_allclose(gy, [2.0, 3.0])
    with pytest.raises(ValueError, match="wrt"):
        vjp_graph(graph, wrt=[2])


def test_comparisons_and_where_condition_get_no_cotangent():
    graph = build(lambda c, x: ops.where(ops.lt(c, x), ops.mul(x, c), x),
                  [np.zeros(3), np.zeros(3)])
    c, x = np.array([0.5, 2.0, -1.0]), np.array([1.0, 1.0, 1.0])
    _, gc, gx = run(checked(vjp_graph(graph)), c, x, np.ones(3))
    # c reaches the output through mul (differentiable) and lt (not)
    np.testing.assert_allclose(gc, np.where(c < x, x, 0.0))
    np.testing.assert_allclose(gx, np.where(c < x, c, 1.0))


@pytest.fixture
def fake_primitive(monkeypatch):
    """A registered primitive that nobody wrote autodiff rules for (so it verifies)."""
    fake = Primitive("fake_square", "unary", lambda x: x, lambda x: np.asarray(x) ** 2)
    monkeypatch.setitem(PRIMITIVES, fake.name, fake)
    return fake


def test_missing_rule_names_the_primitive(fake_primitive):
    fake = fake_primitive
    b = GraphBuilder()
    x = b.new_input(ShapedArray((3,), F64))
    y = b.process(fake, (ops.sin(x),), {})
    graph = b.build([ops.reduce_sum(y, (0,))])
    with pytest.raises(MissingRuleError, match="fake_square"):
        vjp_graph(graph)
    with pytest.raises(MissingRuleError, match="fake_square"):
        grad_graph(graph)
    with pytest.raises(MissingRuleError, match="fake_square"):
        jvp_graph(graph)


def test_missing_rule_off_the_differentiated_path_is_fine(fake_primitive):
    fake = fake_primitive
    b = GraphBuilder()
    x = b.new_input(ShapedArray((3,), F64))
    w = b.new_input(ShapedArray((3,), F64))
    scale = b.process(fake, (w,), {})
    graph = b.build([ops.reduce_sum(ops.mul(ops.sin(x), scale), (0,))])
    gg = checked(grad_graph(graph, argnums=(0,)))
    x0, w0 = np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(run(gg, x0, w0)[1], np.cos(x0) * w0 ** 2)


def test_rules_with_a_wrong_shape_are_reported(monkeypatch):
    bad = Primitive("bad_rule", "unary", lambda x: x, lambda x: np.asarray(x))
    monkeypatch.setitem(PRIMITIVES, bad.name, bad)
    bad.vjp = lambda g, out, x: (ops.reduce_sum(g, (0,)),)
    b = GraphBuilder()
    x = b.new_input(ShapedArray((3,), F64))
    graph = b.build([ops.reduce_sum(b.process(bad, (x,), {}), (0,))])
    with pytest.raises(TypeError, match="bad_rule.*f64\\[\\].*f64\\[3\\]"):
        grad_graph(graph)


# ---- guards and sources ------------------------------------------------------------

def _guarded_graph():
    """sum(x * y) with a Python branch on sum(x) > 0 recorded as a guard."""
    b = GraphBuilder()
    x = b.new_input(ShapedArray((3,), F64), np.array([1.0, 2.0, 3.0]))
    y = b.new_input(ShapedArray((3,), F64), np.array([1.0, 1.0, 1.0]))
    positive_ = b.concrete(ops.gt(ops.reduce_sum(x, (0,)), 0.0), "bool")
    out = ops.mul(x, y) if positive_ else ops.sub(x, y)
    return b.build([ops.reduce_sum(out, (0,))])


@pytest.mark.parametrize("transform", [vjp_graph, grad_graph, jvp_graph,
                                       lambda g: grad_graph(g, argnums=(0, 1), has_value=False)],
                         ids=["vjp", "grad", "jvp", "grad_no_value"])
def test_guards_survive_the_transforms(transform):
    graph = _guarded_graph()
    assert len(graph.guards) == 1
    new = checked(transform(graph))
    assert len(new.guards) == 1
    guard = new.guards[0]
    assert guard.kind == "bool" and guard.expected == graph.guards[0].expected
    extra = [np.ones(v.aval.shape) for v in new.invars[2:]]
    _, values = eval_graph(new, np.array([1.0, 2.0, 3.0]), np.ones(3), *extra, with_guards=True)
    assert guard.holds(values[0])
    _, values = eval_graph(new, np.array([-1.0, -2.0, 3.0]), np.ones(3), *extra, with_guards=True)
    assert not guard.holds(values[0])  # the guard reads the replayed input, not a copy


def test_guards_survive_second_order():
    graph = _guarded_graph()
    hvp = checked(vjp_graph(checked(jvp_graph(graph)), wrt=[0]))
    assert len(hvp.guards) == 1
    _, values = eval_graph(hvp, np.array([-1.0, -2.0, 3.0]), np.ones(3), np.ones(3), np.ones(3),
                           0.0, 1.0, with_guards=True)
    assert not hvp.guards[0].holds(values[0])


def test_replayed_and_derivative_equations_keep_the_source_line():
    graph = build(lambda x: ops.reduce_sum(ops.sin(x), (0,)), [np.zeros(3)])
    sin_src = graph.eqns[0].src
    assert sin_src is not None and sin_src.startswith(__file__)
    gg = checked(grad_graph(graph))
    assert {e.src for e in gg.eqns if e.prim.name in ("sin", "cos")} == {sin_src}


def test_transforms_verify_only_when_asked(monkeypatch):
    """The verifier costs as much as a transform on large graphs: it runs on request
    (`verify=True`) or, by default, in debug mode ($TRACEGRAD_DEBUG=1)."""
    import tracegrad.passes.autodiff as autodiff
    seen = []
    monkeypatch.setattr(autodiff, "verify_graph", lambda g: seen.append(g) or g)
    graph = build(lambda x: ops.reduce_sum(ops.sin(x), (0,)), [np.zeros(3)])
    transforms = [vjp_graph, grad_graph, jvp_graph]
    monkeypatch.delenv("TRACEGRAD_DEBUG", raising=False)
    for transform in transforms:
        transform(graph)
    vjp_split(graph)
    assert seen == []
    for transform in transforms:
        result = transform(graph, verify=True)
        assert seen[-1] is result
    forward, backward = vjp_split(graph, verify=True)
    assert seen[-2] is forward and seen[-1] is backward
    seen.clear()
    monkeypatch.setenv("TRACEGRAD_DEBUG", "1")
    for transform in transforms:
        result = transform(graph)
        assert seen[-1] is result
        transform(graph, verify=False)
    assert len(seen) == len(transforms)


# ---- second order ------------------------------------------------------------------

def _smooth(x):
    """f(x) = sin(x) * x**3, f'' = -sin x * x**3 + 6 cos x * x**2 + 6 x sin x."""
    return ops.mul(ops.sin(x), ops.integer_pow(x, 3))


def _smooth_d2(x):
    return -np.sin(x) * x ** 3 + 6 * np.cos(x) * x ** 2 + 6 * x * np.sin(x)


def test_grad_of_grad_of_a_scalar_function():
    graph = build(_smooth, [np.float64(0.0)])
    d1 = checked(grad_graph(graph, has_value=False))
    d2 = checked(grad_graph(d1, has_value=False))
    for x in (-1.3, 0.4, 2.0):
        assert float(run(d2, x)[0]) == pytest.approx(_smooth_d2(x), rel=1e-12)
    d3 = checked(grad_graph(d2, has_value=False))
    x, h = 0.7, 1e-5
    fd = (_smooth_d2(x + h) - _smooth_d2(x - h)) / (2 * h)
    assert float(run(d3, x)[0]) == pytest.approx(fd, rel=1e-7)


def _hvp_loss(w, x):
    h = ops.tanh(ops.dot(x, w))
    return ops.add(ops.reduce_sum(ops.mul(h, h), (0, 1)),
                   ops.reduce_sum(ops.exp(ops.mul(w, 0.5)), (0, 1)))


def _hvp_setup():
    rng = np.random.default_rng(4)
    w, x, v = rng.standard_normal((3, 2)), rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    graph = build(_hvp_loss, [w, x])
    grad_w = checked(grad_graph(graph, argnums=(0,), has_value=False))
    h = 1e-5
    fd = (run(grad_w, w + h * v, x)[0] - run(grad_w, w - h * v, x)[0]) / (2 * h)
    return graph, grad_w, (w, x, v), fd


def test_hvp_reverse_over_forward():
    graph, _, (w, x, v), fd = _hvp_setup()
    forward = checked(jvp_graph(graph))  # (w, x, tw, tx) -> (f, df.t)
    hvp = checked(vjp_graph(forward, wrt=[0]))  # cotangent (0, 1) selects d(df.t)/dw
    outs = run(hvp, w, x, v, np.zeros_like(x), 0.0, 1.0)
    np.testing.assert_allclose(outs[2], fd, rtol=1e-7, atol=1e-8)


def test_hvp_forward_over_reverse():
    graph, grad_w, (w, x, v), fd = _hvp_setup()
    hvp = checked(jvp_graph(grad_w))  # (w, x, tw, tx) -> (grad, H.t)
    outs = run(hvp, w, x, v, np.zeros_like(x))
    np.testing.assert_allclose(outs[1], fd, rtol=1e-7, atol=1e-8)


def test_hvp_reverse_over_reverse():
    graph, grad_w, (w, x, v), fd = _hvp_setup()
    hvp = checked(vjp_graph(grad_w, wrt=[0]))  # H is symmetric: v^T H == H v
    np.testing.assert_allclose(run(hvp, w, x, v)[1], fd, rtol=1e-7, atol=1e-8)


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


# ---- the public transforms (tracegrad.transforms) ----------------------------------

def _fd_grad(f, x, h=1e-6):
    x = np.asarray(x, F64)
    out = np.zeros_like(x)
    for k in range(x.size):
        step = np.zeros(x.size)
        step[k] = h
        step = step.reshape(x.shape)
        out.flat[k] = (float(f(x + step)) - float(f(x - step))) / (2 * h)
    return out


def _loss(x):
    return np.sum(np.sin(x) * x ** 3) + np.log(np.sum(np.exp(x)))


X = np.array([0.3, -1.2, 0.8])
V = np.array([1.0, 0.5, -2.0])


def test_grad_and_value_and_grad():
    g = t.grad(_loss)(X)
    assert isinstance(g, np.ndarray) and g.shape == X.shape and g.dtype == F64
    np.testing.assert_allclose(g, _fd_grad(_loss, X), rtol=1e-7, atol=1e-9)
    value, g2 = t.value_and_grad(_loss)(X)
    assert float(value) == pytest.approx(float(_loss(X)))
    np.testing.assert_array_equal(g, g2)


def test_argnums_statics_and_python_numbers():

    def f(x, scale, mode, y):
        assert mode == "sum" and scale == 2.0  # static: reaches f as given
        return np.sum(x * y) * scale
    x, y = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    np.testing.assert_allclose(t.grad(f)(x, 2.0, "sum", y), 2 * y)
    gx, gy = t.grad(f, argnums=(0, -1))(x, 2.0, "sum", y)
    np.testing.assert_allclose(gx, 2 * y)
    np.testing.assert_allclose(gy, 2 * x)
    gs = t.grad(f, argnums=1)(x, 2.0, "sum", y)  # a Python float being differentiated
    assert gs.dtype == F64 and float(gs) == pytest.approx(np.sum(x * y))


def test_gradient_of_a_pytree_argument():

    def loss(params, x):
        h = np.tanh(x @ params["w"] + params["b"])
        return np.mean((h - params["target"][0]) ** 2)
    rng = np.random.default_rng(7)
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2),
              "target": [rng.standard_normal((4, 2))]}
    x = rng.standard_normal((4, 3))
    g = t.grad(loss)(params, x)
    assert sorted(g) == ["b", "target", "w"] and isinstance(g["target"], list)
    for name in ("w", "b"):
        def along(p, name=name):
            return loss({**params, name: p}, x)
        np.testing.assert_allclose(g[name], _fd_grad(along, params[name]), rtol=1e-6, atol=1e-9)


def test_grad_errors_name_the_problem():
    with pytest.raises(TypeError, match=r"\(2,\)"):
        t.grad(lambda x: x * 2.0)(np.ones(2))
    with pytest.raises(TypeError, match="int64"):
        t.grad(lambda n: n * 2)(np.array(3))
    with pytest.raises(TypeError, match="argument 2"):
        t.grad(lambda x: np.sum(x), argnums=2)(np.ones(2))
    with pytest.raises(TypeError, match="str"):
        t.grad(lambda x, s: np.sum(x), argnums=1)(np.ones(2), "static")


def test_jvp_and_vjp_against_differences():
    f = lambda x, y: (np.sin(x) * y, np.sum(x * x))  # noqa: E731
    y = np.array([2.0, -1.0, 0.5])
    (out, total), (t_out, t_total) = t.jvp(f, (X, y), (V, np.zeros(3)))
    h = 1e-6
    plus, minus = f(X + h * V, y), f(X - h * V, y)
    np.testing.assert_allclose(t_out, (plus[0] - minus[0]) / (2 * h), rtol=1e-7)
    assert float(t_total) == pytest.approx((plus[1] - minus[1]) / (2 * h), rel=1e-7)
    (o1, o2), pullback = t.vjp(f, X, y)
    np.testing.assert_array_equal(o1, out)
    c = (np.array([1.0, 2.0, 3.0]), 0.5)
    gx, gy = pullback(c)
    # dot-product test: <V, vjp_x(c)> == <d f . V, c>
    lhs = vdot(V, gx)
    rhs = vdot(c[0], (plus[0] - minus[0]) / (2 * h)) + c[1] * (plus[1] - minus[1]) / (2 * h)
    assert lhs == pytest.approx(rhs, rel=1e-7)
    np.testing.assert_allclose(gy, c[0] * np.sin(X))
    again = pullback((np.zeros(3), 1.0))  # the pullback can be applied again
    np.testing.assert_allclose(again[0], 2 * X)


def test_jvp_vjp_argument_checks():
    f = lambda x: (x, np.sum(x))  # noqa: E731
    with pytest.raises(ValueError, match="shape"):
        t.jvp(f, (np.ones(3),), (np.ones(2),))
    with pytest.raises(ValueError, match="1 primals but 2"):
        t.jvp(f, (np.ones(3),), (np.ones(3), np.ones(3)))
    _, pullback = t.vjp(f, np.ones(3))
    with pytest.raises(ValueError, match="structure"):
        pullback(np.ones(3))
    g32, = t.vjp(lambda x: x * 2.0, np.ones(2, np.float32))[1](np.ones(2))  # cast to f32
    assert g32.dtype == np.float32


def test_second_order_transforms():
    d2 = t.grad(t.grad(lambda x: np.sin(x) * x ** 3))
    for x in (-1.3, 0.4, 2.0):
        assert float(d2(x)) == pytest.approx(_smooth_d2(x), rel=1e-12)
    assert float(t.grad(t.grad(t.grad(lambda x: x ** 4)))(2.0)) == pytest.approx(48.0)


def test_hessian_vector_products_compose():
    h = 1e-5
    fd = (t.grad(_loss)(X + h * V) - t.grad(_loss)(X - h * V)) / (2 * h)
    forward_over_reverse = t.jvp(t.grad(_loss), (X,), (V,))[1]
    reverse_over_forward = t.grad(lambda x: t.jvp(_loss, (x,), (V,))[1])(X)
    reverse_over_reverse = t.vjp(t.grad(_loss), X)[1](V)[0]
    for hvp in (forward_over_reverse, reverse_over_forward, reverse_over_reverse):
        np.testing.assert_allclose(hvp, fd, rtol=1e-7, atol=1e-8)


def test_trace_of_grad_records_the_gradient_ir():
    from tracegrad.tracer import trace

    prog = trace(t.grad(lambda x, y: np.sum(np.sin(x) * y)))(np.zeros(3, np.float32),
                                                              np.ones(3, np.float32))
    verify(prog.graph)
    assert str(prog) == GOLDEN_GRAD_IR
    x, y = np.array([0.1, 0.2, 0.3], np.float32), np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_allclose(prog(x, y), np.cos(x) * y, rtol=1e-6)


# Gradient of sum(sin(x) * y) w.r.t. x, inlined into the outer trace after the
# cleanup pipeline: no forward value, no seed broadcast, only the gradient's work.
GOLDEN_GRAD_IR = """\
{ lambda a:f32[3] b:f32[3] . let
    c:f32[3] = cos a
    d:f32[3] = mul b c
  in (d) }"""


def _branchy(x):
    if np.sum(x) > 0:  # a Python decision: a guard in the traced program
        return np.sum(x * x)
    return np.sum(np.sin(x))


def test_inner_guards_bind_the_outer_trace():
    from tracegrad.tracer import trace

    prog = trace(t.grad(_branchy))(X + 1.0)
    assert len(prog.guards) == 1
    assert prog.check_guards(X + 2.0) and not prog.check_guards(X - 5.0)
    np.testing.assert_allclose(t.grad(_branchy)(X - 5.0), np.cos(X - 5.0))
    nested = trace(t.grad(lambda x: np.sum(t.grad(_branchy)(x) ** 2)))(X + 1.0)
    assert len(nested.guards) == 1 and not nested.check_guards(X - 5.0)


def test_vjp_inside_a_trace():
    from tracegrad.tracer import trace

    f = lambda x: (np.sin(x), np.sum(x * x))  # noqa: E731
    prog = trace(lambda x: t.vjp(f, x)[1]((np.ones(3), 2.0))[0])(X)
    verify(prog.graph)
    np.testing.assert_allclose(prog(X + 1.0), np.cos(X + 1.0) + 4 * (X + 1.0))


def test_abstract_outer_trace():
    from tracegrad.ir import ConcretizationError
    from tracegrad.tracer import make_graph

    prog = make_graph(t.grad(_loss), [X], concrete=False)
    verify(prog.graph)
    np.testing.assert_allclose(eval_graph(prog.graph, X)[0], t.grad(_loss)(X), rtol=1e-14)
    with pytest.raises(ConcretizationError):
        make_graph(t.grad(_branchy), [X], concrete=False)


def test_tensor_arguments_give_numpy_and_match_eager_backward():
    from tracegrad.tracer import tensor

    x = tensor(X, requires_grad=True)
    loss = _loss(x)
    loss.backward()
    g = t.grad(_loss)(x)
    assert type(g) is np.ndarray
    np.testing.assert_allclose(g, x.grad.detach().data, rtol=1e-12)


def test_nested_transforms_close_over_outer_traced_values():
    # The inner function reads the outer argument x: x is captured as an extra input
    # of the inner graph, so the outer derivative flows through the inner gradient.
    d = t.grad(lambda x: t.grad(lambda y: x * y * y)(np.float64(1.0)))
    assert float(d(np.float64(2.0))) == 2.0  # d/dx (2 x y) at y = 1
    x = np.array([0.3, 0.7])
    g = t.grad(lambda x: np.sum(t.jvp(lambda y: np.sin(x * y), (np.ones(2),), (np.ones(2),))[1]))
    np.testing.assert_allclose(g(x), np.cos(x) - x * np.sin(x), rtol=1e-12)
    h = t.grad(lambda x: np.sum(t.vjp(lambda y: x * y * y, np.ones(2))[1](np.ones(2))[0]))
    np.testing.assert_allclose(h(x), 2 * np.ones(2))
