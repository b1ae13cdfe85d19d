"""Fusion planning: composite patterns, fresh outputs, zero sizes, the recompute/store
policy, liveness, and the kernel counts the reference workloads depend on.
"""
import numpy as np
import pytest

from tracegrad.ir import GraphBuilder, ShapedArray, ops, verify
from tracegrad.passes.autodiff import grad_graph
from tracegrad.passes.dce import dce
from tracegrad.passes.fusion import liveness
from fusion_cases import (F32, F64, rng, build, sample, loop_kernels, dot_kernels, assert_matches,
                          check, w7_recurrence)


# ---- composite patterns -------------------------------------------------------------------

def _keep(x, r, axis):
    shape = list(x.shape)
    shape[axis] = 1
    return ops.broadcast(ops.reshape(r, tuple(shape)), x.shape)


def softmax(x, axis=1):
    e = ops.exp(ops.sub(x, _keep(x, ops.reduce_max(x, (axis,)), axis)))
    return ops.div(e, _keep(x, ops.reduce_sum(e, (axis,)), axis))


def logsumexp(x, axis=1):
    m = ops.reduce_max(x, (axis,))
    s = ops.reduce_sum(ops.exp(ops.sub(x, _keep(x, m, axis))), (axis,))
    return ops.add(m, ops.log(s))


def layer_norm(x, axis=1):
    n = float(x.shape[axis])
    mean = ops.div(ops.reduce_sum(x, (axis,)), n)
    c = ops.sub(x, _keep(x, mean, axis))
    var = ops.div(ops.reduce_sum(ops.mul(c, c), (axis,)), n)
    return ops.div(c, _keep(x, ops.sqrt(ops.add(var, 1e-5)), axis))


@pytest.mark.parametrize("fn", [softmax, logsumexp, layer_norm])
@pytest.mark.parametrize("axis", [0, 1])
def test_reduce_then_broadcast_patterns(fn, axis):
    check(lambda x: fn(x, axis), ((5, 7), F32))
    def loss(x):
        y = ops.sin(fn(x, axis))
        return ops.reduce_sum(y, tuple(range(len(y.shape))))

    g = dce(grad_graph(build(loss, ((5, 7), F64))))
    assert_matches(g, sample((5, 7), F64))


# ---- outputs, zero sizes, policy ---------------------------------------------------------

def test_outputs_always_fresh():
    c = np.arange(3.0)

    def f(x):
        y = ops.exp(x)
        r = ops.reduce_sum(x, (0,))
        return x, y, y, ops.add(c, 0.0), r, r

    b = GraphBuilder()
    x = b.new_input(ShapedArray((3,), F64))
    outs = list(f(x)) + [2.0]  # a literal output
    g = verify(b.build(outs))
    assert_matches(g, sample((3,), F64))


def test_zero_size_arrays():
    def f(x, e):
        return (ops.exp(e), ops.reduce_sum(e, (0,)), ops.reduce_sum(ops.sin(e), (1,)),
                ops.add(x, ops.reduce_sum(e, (0, 1))))

    kp = check(f, ((), F64), ((0, 3), F64))
    assert str(kp)


def test_recompute_cheap_values_store_expensive_ones():
    def cheap(x):
        y = ops.mul(ops.add(x, 1.0), x)
        return ops.add(ops.slice(y, (1,), (1,), (9,)), ops.slice(y, (0,), (1,), (9,)))

    def expensive(x):
        y = ops.exp(ops.sin(ops.tanh(x)))
        return ops.add(ops.slice(y, (1,), (1,), (9,)), ops.slice(y, (0,), (1,), (9,)))

    assert not check(cheap, ((10,), F64)).temps
    kp = check(expensive, ((10,), F64))
    assert len(kp.temps) == 1 and len(kp.kernels) == 2


def _prims_by_domain(kp):
    return {k.domain: [i.prim for i in k.body if hasattr(i, "prim")] for k in loop_kernels(kp)}


def test_a_costly_value_broadcast_along_outer_dims_is_stored_over_its_own_shape():
    """exp(p) of a per-column p, in a kernel over rows: once per column, not per element."""
    def f(x, p):
        return ops.reduce_sum(ops.mul(x, ops.broadcast(ops.exp(p), x.shape)), (0, 1))

    kp = check(f, ((512, 32), F64), ((32,), F64))
    prims = _prims_by_domain(kp)
    assert "exp" in prims[(32,)] and "exp" not in prims[(512, 32)]
    small = check(f, ((8, 32), F64), ((32,), F64))  # saves too little for a kernel more
    assert len(loop_kernels(small)) == 1


def test_a_value_broadcast_along_inner_dims_or_cheap_stays_computed():
    """A per-row value is hoisted out of the inner loop by LLVM; a cheap one costs less
    than its load would: neither gets a kernel of its own."""
    def per_row(x, r):
        s = ops.sqrt(ops.add(ops.mul(r, r), 1.0))
        return ops.reduce_sum(ops.div(x, ops.broadcast(s, x.shape)), (0, 1))

    def cheap(x, p):
        return ops.reduce_sum(ops.mul(x, ops.broadcast(ops.neg(p), x.shape)), (0, 1))

    assert len(loop_kernels(check(per_row, ((512, 32), F64), ((512, 1), F64)))) == 1
    assert len(loop_kernels(check(cheap, ((512, 32), F64), ((32,), F64)))) == 1


def test_horizontal_fusion_respects_dependencies():
    def f(x):
        a = ops.reduce_sum(ops.sin(x), (0, 1))
        b = ops.reduce_max(ops.cos(x), (0, 1))
        c = ops.mul(x, ops.broadcast(a, x.shape))  # needs a: a second kernel
        return a, b, c

    kp = check(f, ((4, 5), F64))
    assert len(kp.kernels) == 2
    assert len(kp.kernels[0].stores) == 2


def test_temp_recomputed_by_a_joining_reduction():
    """A temp a dot needs, and its column sum: one kernel writes both."""
    def f(a, w):
        t = ops.tanh(a)
        return ops.dot(t, w), ops.reduce_sum(t, (0,))

    kp = check(f, ((4, 6), F64), ((6, 2), F64))
    assert len(loop_kernels(kp)) == 1 and len(kp.temps) == 1


def test_liveness_of_temps():
    def f(x, w):
        h = ops.dot(ops.tanh(x), w)
        return ops.reduce_sum(ops.dot(ops.exp(h), ops.transpose(w, (1, 0))), (0, 1))

    kp = check(f, ((4, 6), F64), ((6, 6), F64))
    spans = liveness(kp)
    assert set(spans) == {b.name for b in kp.temps}
    for first, last in spans.values():
        assert 0 <= first <= last < len(kp.kernels)


# ---- reference workloads: kernel counts -------------------------------------------------

def w2_loss(x):
    t = ops.mul(ops.tanh(x), ops.exp(ops.mul(ops.mul(-0.5, x), x)))
    return ops.reduce_sum(ops.add(t, ops.log(ops.add(1.0, ops.exp(x)))), (0,))


def w6_loss(x):
    n = x.shape[0]
    head = ops.slice(x, (0,), (1,), (n - 1,))
    d = ops.sub(ops.slice(x, (1,), (1,), (n - 1,)), ops.integer_pow(head, 2))
    r = ops.integer_pow(ops.sub(1.0, ops.slice(x, (0,), (1,), (n - 1,))), 2)
    return ops.reduce_sum(ops.add(ops.mul(100.0, ops.integer_pow(d, 2)), r), (0,))


def w2_by_hand(x):
    """value and gradient written out with ir.ops (the autodiff pass is checked too)."""
    value = w2_loss(x)
    t, e, ex = ops.tanh(x), ops.exp(ops.mul(ops.mul(-0.5, x), x)), ops.exp(x)
    d = ops.add(ops.mul(e, ops.sub(ops.sub(1.0, ops.mul(t, t)), ops.mul(x, t))),
                ops.div(ex, ops.add(1.0, ex)))
    return value, ops.mul(d, ops.broadcast(np.float32(1.0), x.shape))


def test_w2_value_and_grad_one_pass():
    x = sample((1000,), F32)
    by_hand = assert_matches(build(w2_by_hand, ((1000,), F32)), x, rtol=1e-4)
    auto = assert_matches(dce(verify(grad_graph(build(w2_loss, ((1000,), F32))))), x, rtol=1e-4)
    for kp in (by_hand, auto):
        assert len(loop_kernels(kp)) <= 2 and not dot_kernels(kp)
    assert len(auto.kernels) == 1 and not auto.temps


def test_w6_rosenbrock_value_and_grad():
    x = rng.uniform(-2, 2, 1000)
    kp = assert_matches(dce(verify(grad_graph(build(w6_loss, ((1000,), F64))))), x)
    assert len(loop_kernels(kp)) <= 2 and not kp.temps


def test_w7_recurrence_is_one_kernel():
    kp = assert_matches(dce(verify(grad_graph(build(w7_recurrence, ((16,), F64))))),
                        rng.uniform(-1, 1, 16))
    assert len(kp.kernels) == 1
