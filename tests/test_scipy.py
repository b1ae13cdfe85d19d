"""tracegrad.scipy against scipy (values) and jax/finite differences (gradients)."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad
from tracegrad.scipy import linalg as tl
from tracegrad.scipy import special as ts
from tracegrad.tracer import tensor

sl = pytest.importorskip("scipy.linalg")
ss = pytest.importorskip("scipy.special")
RNG = np.random.default_rng(0)
A = RNG.standard_normal((4, 4))
SPD = A @ A.T + 4 * np.eye(4)
L = np.linalg.cholesky(SPD)


@pytest.mark.parametrize("trans", [0, 1, 2, "N", "T"])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("rhs", [(4,), (4, 3), (2, 4, 3)])
def test_solve_triangular_as_scipy_in_every_mode(trans, lower, rhs):
    m = L if lower else L.T
    b = RNG.standard_normal(rhs)
    mb = np.broadcast_to(m, rhs[:-2] + (4, 4)) if len(rhs) == 3 else m
    want = (np.stack([sl.solve_triangular(m, bb, trans=trans, lower=lower) for bb in b])
            if len(rhs) == 3 else sl.solve_triangular(m, b, trans=trans, lower=lower))
    f = lambda a, r: tl.solve_triangular(a, r, trans=trans, lower=lower)   # noqa: E731
    np.testing.assert_allclose(f(mb, b), want, rtol=1e-12)
    np.testing.assert_allclose(tracegrad.jit(f)(mb, b), want, rtol=1e-12)
    np.testing.assert_allclose(f(tensor(mb), tensor(b)).numpy(), want, rtol=1e-12)


def test_cholesky_solves_and_their_gradients():
    b = RNG.standard_normal((4, 2))
    np.testing.assert_allclose(tl.cholesky(SPD), sl.cholesky(SPD), rtol=1e-12)
    np.testing.assert_allclose(tl.cholesky(SPD, lower=True), sl.cholesky(SPD, lower=True), rtol=1e-12)
    for lower in (True, False):
        np.testing.assert_allclose(tl.cho_solve(tl.cho_factor(SPD, lower=lower), b),
                                   sl.cho_solve(sl.cho_factor(SPD, lower=lower), b), rtol=1e-12)

    def loss(a, r):
        return tracegrad.numpy.sum(tl.cho_solve(tl.cho_factor(a @ a.T + 4 * np.eye(4)), r) ** 2)
    g = tracegrad.grad(loss, argnums=(0, 1))(A, b)
    h = 1e-6
    for i, j in [(0, 0), (2, 1)]:
        d = np.zeros_like(A)
        d[i, j] = h
        fd = (loss(A + d, b) - loss(A - d, b)) / (2 * h)
        np.testing.assert_allclose(g[0][i, j], fd, rtol=1e-6)
    np.testing.assert_allclose(tracegrad.compile_grad(loss)(A, b)[1][0], g[0], rtol=1e-10)


@pytest.mark.parametrize("axis, keepdims", [(None, False), (1, False), (0, True)])
def test_logsumexp_with_signed_weights_gradients_as_jax(axis, keepdims):
    """b with negative entries, rows whose weighted sum is negative (return_sign's sign
    -1) and a zero weight: value, sign and both gradients as jax.scipy's logsumexp."""
    jax = pytest.importorskip("jax")
    from jax.scipy.special import logsumexp as jax_logsumexp

    jax.config.update("jax_enable_x64", True)
    a = np.array([[0.3, 1.2, -0.5], [2.0, -1.0, 0.7], [0.1, 0.4, -2.0]])
    b = np.array([[1.0, -2.5, 0.5], [-1.0, 3.0, 0.2], [0.0, 1.5, -0.7]])

    def loss(lse):
        def f(x, w):
            out, sign = lse(x, axis=axis, b=w, keepdims=keepdims, return_sign=True)
            weights = np.linspace(0.5, 1.5, np.size(out)).reshape(np.shape(out))
            return (out * weights).sum() + (sign * 0.3).sum()
        return f
    for got, want in zip(tracegrad.grad(loss(ts.logsumexp), argnums=(0, 1))(a, b),
                         jax.grad(loss(jax_logsumexp), argnums=(0, 1))(a, b)):
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12, atol=1e-14)
    x = tensor(a, requires_grad=True)
    loss(ts.logsumexp)(x, b).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.asarray(jax.grad(loss(jax_logsumexp))(a, b)),
                               rtol=1e-12, atol=1e-14)
    for got, want in zip(ts.logsumexp(a, axis, b, keepdims, return_sign=True),
                         ss.logsumexp(a, axis, b, keepdims, return_sign=True)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_special_functions_as_scipy():
    x = np.array([0.0, 0.5, 1e-300, 0.99, 2.0])
    y = np.array([0.0, 2.0, 0.0, 0.3, 0.7])
    np.testing.assert_allclose(ts.xlogy(x, y), ss.xlogy(x, y))
    np.testing.assert_allclose(ts.xlog1py(x, y), ss.xlog1py(x, y))
    np.testing.assert_allclose(ts.logit(x[1:4]), ss.logit(x[1:4]))
    np.testing.assert_allclose(ts.expit(y * 30 - 20), ss.expit(y * 30 - 20), rtol=1e-14)
    m = RNG.standard_normal((3, 4))
    for axis in (None, 0, 1):
        np.testing.assert_allclose(ts.softmax(m, axis=axis), ss.softmax(m, axis=axis), rtol=1e-14)
        np.testing.assert_allclose(ts.log_softmax(m, axis=axis), ss.log_softmax(m, axis=axis),
                                   rtol=1e-14)
    np.testing.assert_allclose(ts.logsumexp(m, axis=1), ss.logsumexp(m, axis=1), rtol=1e-14)
    assert float(tracegrad.grad(lambda v: ts.xlogy(v, 2.0))(0.0)) == np.log(2.0)
