"""custom_vjp, custom_jvp and autograd.Function: one mechanism (a custom_call equation),
used by eager backward, grad, traced programs and compiled code."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg


@tg.custom_vjp
def scaled_sin(x, y):
    return np.sin(x) * y


def _fwd(x, y):
    return scaled_sin(x, y), (np.cos(x), np.sin(x), y)


def _bwd(res, g):
    cos_x, sin_x, y = res
    return (cos_x * y * g, sin_x * g)


scaled_sin.defvjp(_fwd, _bwd)

X, Y = np.array([0.1, 0.5, -0.7]), np.array([2.0, 3.0, -1.0])


def _loss(x, y):
    return np.sum(scaled_sin(x, y) ** 2)


def _want_grads(x, y):
    s, c = np.sin(x), np.cos(x)
    return 2 * s * y * c * y, 2 * s * y * s


@tg.custom_vjp
def clipped(x):
    return x


clipped.defvjp(lambda x: (x, None), lambda _, g: (np.clip(g, -1.0, 1.0),))


def test_custom_vjp_rule_is_used_everywhere():
    want = _want_grads(X, Y)
    for got in (tg.grad(_loss, argnums=(0, 1))(X, Y), tg.compile_grad(_loss)(X, Y)[1]):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12)
    x, y = tg.tensor(X, requires_grad=True), tg.tensor(Y, requires_grad=True)
    _loss(x, y).backward()
    np.testing.assert_allclose(x.grad.numpy(), want[0], rtol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), want[1], rtol=1e-12)
    assert scaled_sin(x, y).grad_fn.name() == "scaled_sinBackward"


def test_the_rule_really_replaces_the_derivative():
    g = lambda x: np.sum(clipped(x) * 5.0)  # noqa: E731  the true derivative is 5
    assert tg.grad(g)(np.ones(2)).tolist() == [1.0, 1.0]
    assert tg.compile_grad(g)(np.ones(2))[1][0].tolist() == [1.0, 1.0]
    x = tg.tensor(np.ones(2), requires_grad=True)
    g(x).backward()
    assert x.grad.tolist() == [1.0, 1.0]


def test_traced_program_prints_the_call_with_its_rules_and_compiles_inlined():
    text = str(tg.trace(_loss)(X, Y))
    assert "custom_call[fn_name=scaled_sin" in text and "bwd={" in text and "fwd={" in text
    f = tg.compile_grad(_loss)
    f(X, Y)
    assert "custom_call" in f.ir("traced") and "custom_call" not in f.ir("optimized")


def test_closures_over_constants_work_and_over_differentiated_values_raise():
    k = np.array([1.0, 2.0, 3.0])

    @tg.custom_vjp
    def f(x):
        return x * k
    f.defvjp(lambda x: (x * k, None), lambda _, g: (g * k,))
    np.testing.assert_allclose(tg.grad(lambda x: np.sum(f(x)))(X), k)

    def outer(w):
        @tg.custom_vjp
        def h(x):
            return x * w
        h.defvjp(lambda x: (x * w, None), lambda _, g: (g * w,))
        return np.sum(h(X))
    with pytest.raises(TypeError, match="closes over a value that is being differentiated"):
        tg.grad(outer)(np.ones(3))


def test_custom_vjp_has_no_forward_mode_as_in_jax():
    with pytest.raises(TypeError, match="forward-mode .* custom_vjp"):
        tg.jvp(lambda x: scaled_sin(x, Y), (X,), (np.ones(3),))


@tg.custom_jvp
def softplus(x):
    return np.log1p(np.exp(x))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), t / (1 + np.exp(-x))


def test_custom_jvp_forward_reverse_and_second_order():
    sig = 1 / (1 + np.exp(-X))
    out, tangent = tg.jvp(softplus, (X,), (np.ones(3),))
    np.testing.assert_allclose(tangent, sig, rtol=1e-12)
    np.testing.assert_allclose(tg.grad(lambda x: np.sum(softplus(x)))(X), sig, rtol=1e-12)
    np.testing.assert_allclose(tg.compile_grad(lambda x: np.sum(softplus(x)))(X)[1][0], sig,
                               rtol=1e-12)
    second = tg.grad(lambda x: np.sum(tg.grad(lambda z: np.sum(softplus(z)))(x)))(X)
    np.testing.assert_allclose(second, sig * (1 - sig), rtol=1e-10)
    x = tg.tensor(X, requires_grad=True)
    softplus(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), sig, rtol=1e-12)


class MulAdd(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, k):
        ctx.k = k
        ctx.save_for_backward(x, y)
        return x * y + k, x - y

    @staticmethod
    def backward(ctx, g_prod, g_diff):
        x, y = ctx.saved_tensors
        return g_prod * y + g_diff, g_prod * x - g_diff, None


def _function_loss(x, y):
    p, d = MulAdd.apply(x, y, 2.0)
    return np.sum(p * 3.0 + d * d)


def test_autograd_function_eager_traced_and_compiled():
    want_x = 3.0 * Y + 2 * (X - Y)
    want_y = 3.0 * X - 2 * (X - Y)
    x, y = tg.tensor(X, requires_grad=True), tg.tensor(Y, requires_grad=True)
    _function_loss(x, y).backward()
    np.testing.assert_allclose(x.grad.numpy(), want_x, rtol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), want_y, rtol=1e-12)
    assert MulAdd.apply(x, y, 2.0)[0].grad_fn.name() == "MulAddBackward"
    for gx, gy in (tg.grad(_function_loss, argnums=(0, 1))(X, Y),
                   tg.compile_grad(_function_loss)(X, Y)[1]):
        np.testing.assert_allclose(gx, want_x, rtol=1e-12)
        np.testing.assert_allclose(gy, want_y, rtol=1e-12)


def test_a_saved_program_with_a_custom_call_round_trips(tmp_path):
    prog = tg.trace(_loss)(X, Y)
    prog.save(tmp_path / "p.tgir")
    loaded = tg.load(tmp_path / "p.tgir")
    assert str(loaded) == str(prog)
    np.testing.assert_allclose(tg.grad(lambda x, y: loaded(x, y), argnums=0)(X, Y),
                               _want_grads(X, Y)[0], rtol=1e-12)


def test_rule_errors_are_clear():
    bad = tg.custom_vjp(lambda x: x * 2.0)
    with pytest.raises(TypeError, match="call defvjp"):
        bad(X)
    bad.defvjp(lambda x: (x * 2.0, None), lambda _, g: g * 2.0)
    with pytest.raises(TypeError, match="tuple of 1 cotangents"):
        tg.grad(lambda x: np.sum(bad(x)))(X)
