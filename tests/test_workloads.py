"""The reference workloads (shared/bench/WORKLOADS.md) compiled and checked
against numpy with hand-written gradients, at reduced sizes where the full
size would be slow to check."""
import numpy as np
import pytest

import tracegrad
import tracegrad.numpy as tnp

rng = np.random.default_rng(42)


def test_w1_seed_graph():
    f = tracegrad.compile_grad(lambda a, b, c, d: np.sum((a + b) + c * d))
    a, b, c, d = (rng.standard_normal(1) for _ in range(4))
    v, (ga, gb, gc, gd) = f(a, b, c, d)
    np.testing.assert_allclose(v, np.sum(a + b + c * d))
    np.testing.assert_allclose([ga, gb, gc, gd], [np.ones(1), np.ones(1), d, c])


def w2(x):
    return np.sum(np.tanh(x) * np.exp(-0.5 * x * x) + np.log(1 + np.exp(x)))


def w2_grad(x):
    t, e = np.tanh(x), np.exp(-0.5 * x * x)
    return (1 - t * t) * e + t * e * (-x) + np.exp(x) / (1 + np.exp(x))


@pytest.mark.parametrize("n", [1, 17, 4096 + 3, 1 << 20])
def test_w2_transcendentals_f32(n):
    x = rng.standard_normal(n).astype(np.float32)
    v, (g,) = tracegrad.compile_grad(w2)(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(v, w2(x64), rtol=2e-5)
    np.testing.assert_allclose(g, w2_grad(x64), rtol=1e-4, atol=1e-5)


def w3(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    logits = h @ W2 + b2
    lse = tnp.logsumexp(logits, axis=1)
    return np.mean(lse - np.sum(logits * Y, axis=1))


def w3_ref(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    logits = h @ W2 + b2
    m = logits.max(axis=1, keepdims=True)
    p = np.exp(logits - m)
    p /= p.sum(axis=1, keepdims=True)
    n = X.shape[0]
    lse = (m[:, 0] + np.log(np.exp(logits - m).sum(axis=1)))
    value = np.mean(lse - np.sum(logits * Y, axis=1))
    dlogits = (p - Y) / n
    dh = dlogits @ W2.T * (1 - h * h)
    return value, (X.T @ dh, dh.sum(0), h.T @ dlogits, dlogits.sum(0))


def test_w3_mlp():
    n, d, hdim, k = 64, 784, 512, 10
    X = rng.standard_normal((n, d)).astype(np.float32)
    Y = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    W1 = (rng.standard_normal((d, hdim)) * 0.05).astype(np.float32)
    b1 = np.zeros(hdim, np.float32)
    W2 = (rng.standard_normal((hdim, k)) * 0.05).astype(np.float32)
    b2 = np.zeros(k, np.float32)
    v, grads = tracegrad.compile_grad(w3, argnums=(0, 1, 2, 3))(W1, b1, W2, b2, X, Y)
    rv, rgrads = w3_ref(*(a.astype(np.float64) for a in (W1, b1, W2, b2, X, Y)))
    np.testing.assert_allclose(v, rv, rtol=1e-4)
    for g, r in zip(grads, rgrads):
        np.testing.assert_allclose(g, r, rtol=2e-3, atol=2e-5)


def test_w4_logistic_regression():
    X = rng.standard_normal((1000, 100))
    y = np.sign(rng.standard_normal(1000))
    w = rng.standard_normal(100) * 0.1

    def w4(w, X, y):
        return np.mean(np.log(1 + np.exp(-y * (X @ w))))

    v, gw = tracegrad.compile_grad(w4, argnums=0)(w, X, y)
    z = -y * (X @ w)
    np.testing.assert_allclose(v, np.mean(np.log1p(np.exp(z))), rtol=1e-12)
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(gw, X.T @ (s * -y) / len(y), rtol=1e-10, atol=1e-14)


def w6(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def w6_grad(x):
    g = np.zeros_like(x)
    r = x[1:] - x[:-1] ** 2
    g[1:] += 200 * r
    g[:-1] += -400 * r * x[:-1] - 2 * (1 - x[:-1])
    return g


@pytest.mark.parametrize("n", [2, 3, 1000, 1 << 20])
def test_w6_rosenbrock(n):
    x = rng.standard_normal(n)
    v, (g,) = tracegrad.compile_grad(w6)(x)
    np.testing.assert_allclose(v, w6(x), rtol=1e-12)
    np.testing.assert_allclose(g, w6_grad(x), rtol=1e-11, atol=1e-9)


def w7(x):
    for _ in range(100):
        x = np.sin(x) * 0.9 + 0.1 * x * x
    return np.sum(x)


def test_w7_chain():
    x = rng.uniform(-0.5, 0.5, 16)
    v, (g,) = tracegrad.compile_grad(w7)(x)
    # reference: forward-mode by hand
    y, dy = x.copy(), np.ones_like(x)
    for _ in range(100):
        y, dy = np.sin(y) * 0.9 + 0.1 * y * y, dy * (np.cos(y) * 0.9 + 0.2 * y)
    np.testing.assert_allclose(v, y.sum(), rtol=1e-12)
    np.testing.assert_allclose(g, dy, rtol=1e-9, atol=1e-14)
