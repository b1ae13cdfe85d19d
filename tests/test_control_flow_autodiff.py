"""Derivatives through cond, switch, while_loop, fori_loop and scan
(passes/autodiff_control.py): reverse and forward mode against central
differences in float64 (`tracegrad.testing.check_grads`), eager `.backward()`
against the IR, higher order, the shape of the gradient IR, and the reverse
mode of while_loop (which JAX refuses)."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.ir import eval_graph, verify
from tracegrad.passes.autodiff import MissingRuleError, grad_graph, jvp_graph, vjp_graph
from tracegrad.passes.dce import dce
from tracegrad.testing import check_grads

F64 = np.float64


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---- the functions under test (each a scalar loss of float64 arrays) ---------------------

def rnn_loss(W, U, b, xs):
    def step(h, x):
        h = np.tanh(W @ h + x @ U + b)
        return h, np.sum(h * h)
    h, ys = tg.scan(step, np.zeros(W.shape[0]), xs)
    return np.sum(h) + np.sum(ys)


def rnn_loss_numpy(W, U, b, xs):
    h, total = np.zeros(W.shape[0]), 0.0
    for x in xs:
        h = np.tanh(W @ h + x @ U + b)
        total += np.sum(h * h)
    return np.sum(h) + total


def rnn_args(seed=0, hidden=3, inputs=2, steps=5):
    rng = _rng(seed)
    return (rng.standard_normal((hidden, hidden)) * 0.5, rng.standard_normal((inputs, hidden)),
            rng.standard_normal(hidden), rng.standard_normal((steps, inputs)))


def reverse_scan_loss(a, xs):
    c, ys = tg.scan(lambda c, x: (np.sin(c) * a + x, c * x), a, xs, reverse=True)
    return c + np.sum(ys)


def newton_sqrt(a):
    def body(c):
        x, k = c
        return 0.5 * (x + a / x), k + 1
    return tg.while_loop(lambda c: np.abs(c[0] * c[0] - a) > 1e-13 * a, body, (a, 0))[0]


def damped_while(x, y):
    def body(c):
        k, v = c
        return k + 1, np.sin(v) * y + x * v
    return tg.while_loop(lambda c: c[0] < 5, body, (0, x))[1]


def fori_static(x, y):
    return tg.fori_loop(0, 4, lambda i, c: np.sin(c) * y + x * i, x)


def fori_traced_bounds(x, y):
    n = (np.abs(x) * 0 + 4).astype(np.int64)  # a traced bound: a while loop
    return tg.fori_loop(0, n, lambda i, c: np.sin(c) * y + x, x)


def cond_loss(p, x, y):
    return tg.cond(p > 0, lambda a, b: np.sum(a * b * b), lambda a, b: np.sum(np.sin(a) - b), x, y)


def switch_loss(x):
    branches = [lambda v: np.sum(v * v), lambda v: np.sum(np.exp(v)), lambda v: np.sum(np.sin(v))]
    return sum(tg.switch(k, branches, x * k) for k in range(3)) + tg.switch(
        (x[0] > 0).astype(np.int64) * 2, branches, x)


# ---- reverse mode against central differences ---------------------------------------------

def test_scan_rnn_gradients_order_1_and_2():
    check_grads(rnn_loss, rnn_args(), order=1)
    check_grads(rnn_loss, rnn_args(seed=1, steps=3), order=2)


def test_scan_value_matches_the_numpy_loop():
    args = rnn_args()
    np.testing.assert_allclose(rnn_loss(*args), rnn_loss_numpy(*args), rtol=1e-14)


def test_grad_and_value_and_grad_through_loops():
    args = rnn_args()
    value, grads = tg.value_and_grad(rnn_loss, argnums=(0, 1, 2))(*args)
    _, pullback = tg.vjp(rnn_loss, *args)
    np.testing.assert_allclose(value, rnn_loss_numpy(*args), rtol=1e-14)
    for g, expected in zip(grads, pullback(F64(1.0))):
        np.testing.assert_allclose(g, expected, rtol=1e-13)
    d2 = tg.grad(tg.grad(lambda x: tg.fori_loop(0, 3, lambda i, c: np.sin(c) * x, x)))(F64(0.5))
    check = lambda x: tg.vjp(lambda x: tg.fori_loop(0, 3, lambda i, c: np.sin(c) * x, x),  # noqa: E731
                             x)[1](F64(1.0))[0]
    eps = 1e-6
    np.testing.assert_allclose(d2, (check(0.5 + eps) - check(0.5 - eps)) / (2 * eps), rtol=1e-7)


def test_reverse_scan_gradients():
    check_grads(reverse_scan_loss, (F64(0.3), np.linspace(-1, 1, 4)), order=2)


def test_while_loop_reverse_mode():
    check_grads(damped_while, (F64(0.3), F64(0.7)))
    check_grads(newton_sqrt, (F64(2.0),))
    _, pullback = tg.vjp(newton_sqrt, F64(2.0))
    np.testing.assert_allclose(pullback(F64(1.0))[0], 0.5 / np.sqrt(2.0), rtol=1e-10)


def test_fori_loop_gradients():
    check_grads(fori_static, (F64(0.3), F64(0.7)), order=2)
    check_grads(fori_traced_bounds, (F64(0.3), F64(0.7)))


def test_cond_and_switch_gradients_on_each_branch():
    x, y = _rng().standard_normal(3), _rng(1).standard_normal(3)
    for p in (F64(1.0), F64(-1.0)):
        check_grads(lambda x, y, p=p: cond_loss(p, x, y), (x, y), order=2)
    check_grads(switch_loss, (x,), order=2)
    check_grads(switch_loss, (-x,), order=2)


def test_zero_trip_loops_pass_the_cotangent_through():
    f = lambda x: tg.scan(lambda c, v: (c * v, c), x, np.zeros(0))[0] * 3.0  # noqa: E731
    assert float(tg.vjp(f, F64(2.0))[1](F64(1.0))[0]) == 3.0
    w = lambda x: tg.while_loop(lambda c: c > 10.0, lambda c: c * c, x) * 3.0  # noqa: E731
    assert float(tg.vjp(w, F64(2.0))[1](F64(1.0))[0]) == 3.0


# ---- forward mode ---------------------------------------------------------------------

@pytest.mark.parametrize("fn,args", [
    (rnn_loss, rnn_args()),
    (reverse_scan_loss, (F64(0.3), np.linspace(-1, 1, 4))),
    (damped_while, (F64(0.3), F64(0.7))),
    (fori_static, (F64(0.3), F64(0.7))),
    (lambda x, y: cond_loss(F64(1.0), x, y), (np.ones(3) * 0.3, np.ones(3) * 0.2)),
    (lambda x, y: cond_loss(F64(-1.0), x, y), (np.ones(3) * 0.3, np.ones(3) * 0.2)),
], ids=["scan", "reverse_scan", "while", "fori", "cond_true", "cond_false"])
def test_jvp_matches_directional_differences(fn, args):
    rng = _rng(3)
    tangents = [rng.standard_normal(np.shape(a)) for a in args]
    out, tangent = tg.jvp(fn, args, tangents)
    eps = 1e-6
    plus = fn(*[a + eps * t for a, t in zip(args, tangents)])
    minus = fn(*[a - eps * t for a, t in zip(args, tangents)])
    np.testing.assert_allclose(out, fn(*args), rtol=1e-14)
    np.testing.assert_allclose(tangent, (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_forward_over_reverse_through_while_and_no_reverse_over_reverse():
    x, y = F64(0.3), F64(0.7)
    graph = tg.trace(damped_while)(x, y).graph
    grads = grad_graph(graph, argnums=(0, 1), has_value=False)
    hvp = verify(jvp_graph(grads))
    _, _, hx, hy = eval_graph(hvp, x, y, 1.0, 0.0)
    eps = 1e-5
    fd = [(a - b) / (2 * eps) for a, b in zip(eval_graph(grads, x + eps, y),
                                               eval_graph(grads, x - eps, y))]
    np.testing.assert_allclose([hx, hy], fd, rtol=1e-6)
    with pytest.raises(MissingRuleError, match="reverse-over-reverse .* while_loop"):
        vjp_graph(grads)


# ---- eager .backward() against the IR --------------------------------------------------

@pytest.mark.parametrize("fn,args", [
    (rnn_loss, rnn_args()),
    (reverse_scan_loss, (F64(0.3), np.linspace(-1, 1, 4))),
    (damped_while, (F64(0.3), F64(0.7))),
    (fori_static, (F64(0.3), F64(0.7))),
    (lambda x, y: cond_loss(F64(-1.0), x, y), (np.ones(3) * 0.3, np.ones(3) * 0.2)),
], ids=["scan", "reverse_scan", "while", "fori", "cond"])
def test_eager_backward_equals_traced_gradients(fn, args):
    tensors = [tg.tensor(a, requires_grad=True) for a in args]
    loss = fn(*tensors)
    loss.backward()
    _, pullback = tg.vjp(fn, *args)
    for t, g in zip(tensors, pullback(F64(1.0))):
        np.testing.assert_allclose(t.grad.detach().data, g, rtol=1e-12, atol=1e-14)


# ---- the gradient IR ---------------------------------------------------------------------

def test_scan_gradient_is_a_forward_scan_and_one_reverse_scan():
    graph = dce(grad_graph(tg.trace(rnn_loss)(*rnn_args()).graph, argnums=(0, 1, 2, 3)))
    scans = [e for e in graph.eqns if e.prim.name == "scan"]
    assert [e.params["reverse"] for e in scans] == [False, True]  # the loop runs once forward
    forward, backward = scans
    # the forward scan stacks residuals (beyond the carry and its y); xs are read, not copied
    assert len(forward.outs) > 2 and forward.inputs[-1] is graph.invars[3]
    # the reverse scan carries the carry's cotangent and one sum per differentiated const
    assert backward.params["num_carry"] == 1 + 3
    # W.T is a loop invariant: computed once, not stacked per step; reshapes of x are
    # recomputed in the reverse step, not stacked
    stacked = [v.aval.shape for v in forward.outs[2:]]
    assert (5, 3, 3) not in stacked and all(s[1:] in ((3,), (1, 3), (3, 1)) for s in stacked)
    assert any(e.prim.name == "transpose" and e.inputs[0] is graph.invars[0] for e in graph.eqns)
    text = str(graph)
    assert text.count("scan[") == 2


def test_only_active_carries_get_cotangents():
    def f(x, xs):
        def step(c, v):
            k, h, const = c
            return (k + 1, h * v + x, const * 2.0), h
        (k, h, const), ys = tg.scan(step, (0, x, F64(1.0)), xs)
        return h + np.sum(ys) + const
    graph = dce(grad_graph(tg.trace(f)(F64(0.5), np.linspace(0, 1, 3)).graph, argnums=0))
    backward = [e for e in graph.eqns if e.prim.name == "scan"][-1]
    assert backward.params["num_carry"] == 2  # h's cotangent and x's sum: not k, not const
    check_grads(f, (F64(0.5), np.linspace(0, 1, 3)))


def test_grad_of_a_closed_over_value_accumulates_over_steps():
    def f(w, xs):
        return tg.scan(lambda c, x: (c * w + x, c), F64(1.0), xs)[0]
    xs = np.array([0.5, -1.0, 2.0])
    (g,) = tg.vjp(f, F64(0.8), xs)[1](F64(1.0))[:1]
    eps = 1e-6
    np.testing.assert_allclose(g, (f(0.8 + eps, xs) - f(0.8 - eps, xs)) / (2 * eps), rtol=1e-8)


def test_vjp_graph_through_cond_verifies_and_matches_eager():
    x = _rng().standard_normal(3)
    graph = tg.trace(lambda p, x, y: cond_loss(p, x, y))(F64(1.0), x, x).graph
    vg = verify(vjp_graph(graph))
    for p in (F64(1.0), F64(-1.0)):
        out, gp, gx, gy = eval_graph(vg, p, x, x * 0.5, 1.0)
        assert float(gp) == 0.0
        tx, ty = tg.tensor(x, requires_grad=True), tg.tensor(x * 0.5, requires_grad=True)
        cond_loss(p, tx, ty).backward()
        np.testing.assert_allclose(gx, tx.grad.detach().data, rtol=1e-13)
        np.testing.assert_allclose(gy, ty.grad.detach().data, rtol=1e-13)


# ---- nesting ---------------------------------------------------------------------------------

def test_nested_scans_second_order():
    def f(w, xss):
        def outer(total, xs):
            c, ys = tg.scan(lambda h, x: (np.tanh(h * w + x), h * x), total, xs)
            return c, np.sum(ys)
        c, sums = tg.scan(outer, F64(0.1), xss)
        return c + np.sum(sums)
    check_grads(f, (F64(0.6), _rng().standard_normal((3, 4)) * 0.5), order=2)


def test_cond_inside_while_loop_gradients():
    def f(x):
        def body(c):
            k, v = c
            return k + 1, tg.cond(v > 1.0, lambda v: v * 0.5, lambda v: v * 3.0 + x, v)
        return tg.while_loop(lambda c: c[0] < 6, body, (0, x))[1]
    check_grads(f, (F64(0.4),))


def test_grad_inside_a_scan_body():
    def f(a, xs):
        def step(c, x):
            return c + tg.grad(lambda z: np.sin(z) * x * a)(c), c
        return tg.scan(step, F64(0.2), xs)[0]
    xs = np.linspace(0.1, 0.5, 3)
    c = 0.2
    for x in xs:
        c = c + np.cos(c) * x * 0.7
    assert float(f(F64(0.7), xs)) == pytest.approx(c, rel=1e-14)
    check_grads(f, (F64(0.7), xs))


def test_vjp_of_a_loop_inside_a_trace():
    def f(x, xs):
        out, pullback = tg.vjp(lambda x: rnn_loss(*rnn_args()[:3], xs * x), x)
        return pullback(F64(1.0))[0]
    x, xs = F64(0.9), rnn_args()[3]
    prog = tg.trace(f)(x, xs)
    assert str(prog).count("scan[") == 2
    eps = 1e-6
    fd = (rnn_loss(*rnn_args()[:3], xs * (x + eps)) - rnn_loss(*rnn_args()[:3], xs * (x - eps)))
    np.testing.assert_allclose(prog(x, xs), fd / (2 * eps), rtol=1e-7)


def test_loops_inside_grad_inside_jit():
    args = rnn_args()
    value, grads = tg.compile_grad(rnn_loss)(*args)
    np.testing.assert_allclose(value, rnn_loss_numpy(*args), rtol=1e-12)
