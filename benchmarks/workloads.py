"""The reference workloads of shared/bench/WORKLOADS.md, each defined once as data.

Every workload carries:

- ``loss``: the loss in plain NumPy, exactly as a tracegrad user writes it. It refers to
  NumPy only through the module-global name ``np`` and calls no helper of this module, so
  :func:`with_namespace` can rebind ``np`` to ``jax.numpy``, ``autograd.numpy``, the torch
  adapter or ``tracegrad.numpy`` and get the same computation in another framework.
- ``numpy_vg``: a hand-written NumPy value-and-gradient. Run on float64 copies of the inputs
  it is the reference every implementation is checked against; run on the inputs as given it
  is the "numpy (hand-written grad)" peer.
- ``numba_vg``: hand-written loops for ``numba.njit`` (plain Python here; the numba adapter
  compiles a fresh dispatcher per run), or None where the table has no numba entry.

>>> w = WORKLOADS_BY_ID["W6"]
>>> x, = w.inputs(smoke=True)
>>> value, (grad,) = w.numpy_vg(x)
>>> grad.shape == x.shape
True
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

W7_STEPS = 100


@dataclass(frozen=True)
class Workload:
    id: str
    title: str
    description: str
    loss: Callable[..., Any]
    argnums: int | tuple[int, ...]
    build_inputs: Callable[..., tuple[np.ndarray, ...]]
    sizes: Mapping[str, Mapping[str, int]]
    numpy_vg: Callable[..., tuple[Any, tuple[np.ndarray, ...]]]
    numba_vg: Callable[..., tuple] | None = None
    seed: int = 0
    # peer name -> why it does not run this workload (shown in the table as n/a)
    not_for: Mapping[str, str] = field(default_factory=dict)

    def inputs(self, smoke: bool = False) -> tuple[np.ndarray, ...]:
        """Fresh inputs from the workload's fixed seed; smoke sizes are tiny."""
        rng = np.random.default_rng(self.seed)
        return self.build_inputs(rng, **self.sizes["smoke" if smoke else "full"])

    @property
    def wrt(self) -> tuple[int, ...]:
        """argnums as a tuple, whatever form the public API receives."""
        return (self.argnums,) if isinstance(self.argnums, int) else tuple(self.argnums)

    def loss_with(self, xp: Any) -> Callable[..., Any]:
        """A fresh function object computing ``loss`` with ``np`` bound to ``xp``."""
        return with_namespace(self.loss, xp)


def with_namespace(fn: Callable[..., Any], xp: Any) -> Callable[..., Any]:
    """Copy ``fn`` with its global ``np`` rebound to ``xp``; the copy is a new object.

    Same code, arity and argument names as ``fn``, so anything that inspects the signature
    sees a plain user function. A new object also defeats caches keyed on the function
    (jax.jit), which the first-call measurement relies on.
    """
    scope = dict(fn.__globals__)
    scope["np"] = xp
    clone = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    clone.__qualname__ = fn.__qualname__
    clone.__doc__ = fn.__doc__
    return clone


def _as_float64(arrays):
    return tuple(a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays)


def reference(workload: Workload, inputs: tuple[np.ndarray, ...]):
    """The oracle: the hand-written gradient evaluated in float64."""
    value, grads = workload.numpy_vg(*_as_float64(inputs))
    return float(value), tuple(grads)


# --- W1: seed graph -------------------------------------------------------------------

def w1_loss(a, b, c, d):
    return np.sum((a + b) + c * d)


def w1_inputs(rng, n):
    return tuple(rng.standard_normal(n) for _ in range(4))


def w1_numpy(a, b, c, d):
    value = np.sum((a + b) + c * d)
    return value, (np.ones_like(a), np.ones_like(b), d.copy(), c.copy())


def w1_numba(a, b, c, d):
    return np.sum((a + b) + c * d), np.ones_like(a), np.ones_like(b), d.copy(), c.copy()


# --- W2: elementwise transcendental chain, f32 ----------------------------------------

def w2_loss(x):
    return np.sum(np.tanh(x) * np.exp(-0.5 * x * x) + np.log(1 + np.exp(x)))


def w2_inputs(rng, n):
    return (rng.standard_normal(n).astype(np.float32),)


def w2_numpy(x):
    t = np.tanh(x)
    e = np.exp(-0.5 * x * x)
    ex = np.exp(x)
    value = np.sum(t * e + np.log(1 + ex))
    return value, (e * (1 - t * t - x * t) + ex / (1 + ex),)


def w2_numba(x):
    g = np.empty_like(x)
    total = 0.0  # float64 accumulator: a serial float32 sum of 4M terms drifts past 1e-4
    for i in range(x.shape[0]):
        xi = x[i]
        t = np.tanh(xi)
        e = np.exp(-0.5 * xi * xi)
        ex = np.exp(xi)
        total += t * e + np.log(1.0 + ex)
        g[i] = e * (1.0 - t * t - xi * t) + ex / (1.0 + ex)
    return total, g


# --- W3: MLP with softmax cross-entropy, f32 ------------------------------------------

def w3_loss(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    m = np.max(z, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
    return np.mean(np.sum(Y * (lse - z), axis=1))


def w3_inputs(rng, batch, n_in, hidden, n_out):
    f32 = np.float32
    X = rng.standard_normal((batch, n_in)).astype(f32)
    Y = np.eye(n_out, dtype=f32)[rng.integers(0, n_out, batch)]
    W1 = (rng.standard_normal((n_in, hidden)) / np.sqrt(n_in)).astype(f32)
    b1 = (0.01 * rng.standard_normal(hidden)).astype(f32)
    W2 = (rng.standard_normal((hidden, n_out)) / np.sqrt(hidden)).astype(f32)
    b2 = (0.01 * rng.standard_normal(n_out)).astype(f32)
    return W1, b1, W2, b2, X, Y


def w3_numpy(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    m = np.max(z, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
    value = np.mean(np.sum(Y * (lse - z), axis=1))
    p = np.exp(z - lse)
    dz = (np.sum(Y, axis=1, keepdims=True) * p - Y) / X.shape[0]
    da = (dz @ W2.T) * (1 - h * h)
    return value, (X.T @ da, np.sum(da, axis=0), h.T @ dz, np.sum(dz, axis=0))


# --- W4: logistic regression, f64 -----------------------------------------------------

def w4_loss(w, X, y):
    return np.mean(np.log(1 + np.exp(-y * (X @ w))))


def w4_inputs(rng, n, d):
    X = rng.standard_normal((n, d))
    y = np.where(rng.standard_normal(n) > 0, 1.0, -1.0)
    w = 0.1 * rng.standard_normal(d)
    return w, X, y


def w4_numpy(w, X, y):
    e = np.exp(-y * (X @ w))
    value = np.mean(np.log(1 + e))
    return value, (X.T @ (-y * e / (1 + e)) / X.shape[0],)


# --- W6: Rosenbrock, f64 --------------------------------------------------------------

def w6_loss(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def w6_inputs(rng, n):
    return (rng.uniform(-2.0, 2.0, n),)


def w6_numpy(x):
    head = x[:-1]
    d = x[1:] - head ** 2
    value = np.sum(100 * d ** 2 + (1 - head) ** 2)
    g = np.zeros_like(x)
    g[:-1] = -400 * d * head - 2 * (1 - head)
    g[1:] += 200 * d
    return value, (g,)


def w6_numba(x):
    g = np.zeros_like(x)
    total = 0.0
    for i in range(x.shape[0] - 1):
        d = x[i + 1] - x[i] * x[i]
        r = 1.0 - x[i]
        total += 100.0 * d * d + r * r
        g[i] += -400.0 * d * x[i] - 2.0 * r
        g[i + 1] += 200.0 * d
    return total, g


# --- W7: 100-step scalar recurrence on a tiny vector, f64 -----------------------------

def w7_loss(x):
    for _ in range(W7_STEPS):
        x = np.sin(x) * 0.9 + 0.1 * x * x
    return np.sum(x)


def w7_inputs(rng, n):
    # |x| < 1 keeps the map contracting towards 0; beyond ~10.5 it diverges.
    return (rng.uniform(-1.0, 1.0, n),)


def w7_numpy(x):
    states = [x]
    for _ in range(W7_STEPS):
        x = np.sin(x) * 0.9 + 0.1 * x * x
        states.append(x)
    g = np.ones_like(x)
    for v in reversed(states[:-1]):
        g = g * (0.9 * np.cos(v) + 0.2 * v)
    return np.sum(x), (g,)


def w7_numba(x):
    n = x.shape[0]
    states = np.empty((W7_STEPS + 1, n))
    states[0] = x
    for k in range(W7_STEPS):
        for i in range(n):
            v = states[k, i]
            states[k + 1, i] = np.sin(v) * 0.9 + 0.1 * v * v
    g = np.ones(n)
    for k in range(W7_STEPS - 1, -1, -1):
        for i in range(n):
            v = states[k, i]
            g[i] *= 0.9 * np.cos(v) + 0.2 * v
    return states[W7_STEPS].sum(), g


# --- W8: row normalization + GELU-like layer, f32 -------------------------------------

GELU_K, GELU_A = 0.7978845608028654, 0.044715  # sqrt(2/pi) and the cubic term of GELU's tanh form


def w8_loss(x, g, b):
    m = np.mean(x, axis=1, keepdims=True)
    d = x - m
    v = np.mean(d * d, axis=1, keepdims=True)
    y = d / np.sqrt(v + 1e-5) * g + b
    h = 0.5 * y * (1 + np.tanh(0.7978845608028654 * (y + 0.044715 * y * y * y)))
    return np.sum(h * h) / x.shape[0]


def w8_inputs(rng, rows, cols):
    f32 = np.float32
    x = rng.standard_normal((rows, cols)).astype(f32)
    g = (1 + 0.1 * rng.standard_normal(cols)).astype(f32)
    b = (0.1 * rng.standard_normal(cols)).astype(f32)
    return x, g, b


def w8_numpy(x, g, b):
    rows = x.shape[0]
    d = x - np.mean(x, axis=1, keepdims=True)
    r = 1 / np.sqrt(np.mean(d * d, axis=1, keepdims=True) + 1e-5)
    n = d * r
    y = n * g + b
    t = np.tanh(GELU_K * (y + GELU_A * y * y * y))
    h = 0.5 * y * (1 + t)
    dh = 0.5 * (1 + t) + 0.5 * y * (1 - t * t) * GELU_K * (1 + 3 * GELU_A * y * y)
    gy = 2 * h * dh / rows
    gn = gy * g
    gx = r * (gn - np.mean(gn, axis=1, keepdims=True)
              - n * np.mean(gn * n, axis=1, keepdims=True))
    return np.sum(h * h) / rows, (gx, np.sum(gy * n, axis=0), np.sum(gy, axis=0))


def w8_numba(x, g, b):
    rows, cols = x.shape
    gx = np.empty_like(x)
    gg, gb = np.zeros(cols), np.zeros(cols)
    n, gn = np.empty(cols), np.empty(cols)
    total = 0.0
    for i in range(rows):
        mean = 0.0
        for j in range(cols):
            mean += x[i, j]
        mean /= cols
        var = 0.0
        for j in range(cols):
            var += (x[i, j] - mean) ** 2
        r = 1.0 / np.sqrt(var / cols + 1e-5)
        s1, s2 = 0.0, 0.0
        for j in range(cols):
            n[j] = (x[i, j] - mean) * r
            y = n[j] * g[j] + b[j]
            t = np.tanh(GELU_K * (y + GELU_A * y * y * y))
            h = 0.5 * y * (1.0 + t)
            total += h * h
            gy = 2.0 * h * (0.5 * (1.0 + t) + 0.5 * y * (1.0 - t * t) * GELU_K
                            * (1.0 + 3.0 * GELU_A * y * y)) / rows
            gg[j] += gy * n[j]
            gb[j] += gy
            gn[j] = gy * g[j]
            s1 += gn[j]
            s2 += gn[j] * n[j]
        for j in range(cols):
            gx[i, j] = r * (gn[j] - s1 / cols - n[j] * s2 / cols)
    return total / rows, gx, gg.astype(g.dtype), gb.astype(b.dtype)


# --- W9: row softmax (attention-like), f32 ---------------------------------------------

def w9_loss(x, w):
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    s = e / np.sum(e, axis=1, keepdims=True)
    return np.sum(s * w) / x.shape[0]


def w9_inputs(rng, rows, cols):
    f32 = np.float32
    return (2 * rng.standard_normal((rows, cols))).astype(f32), rng.standard_normal((rows, cols)).astype(f32)


def w9_numpy(x, w):
    rows = x.shape[0]
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    s = e / np.sum(e, axis=1, keepdims=True)
    sw = s * w
    return np.sum(sw) / rows, ((sw - s * np.sum(sw, axis=1, keepdims=True)) / rows,)


def w9_numba(x, w):
    rows, cols = x.shape
    gx = np.empty_like(x)
    total = 0.0
    for i in range(rows):
        m = x[i, 0]
        for j in range(cols):
            m = max(m, x[i, j])
        z = 0.0
        for j in range(cols):
            gx[i, j] = np.exp(x[i, j] - m)
            z += gx[i, j]
        dot = 0.0
        for j in range(cols):
            gx[i, j] = gx[i, j] / z
            dot += gx[i, j] * w[i, j]
        total += dot
        for j in range(cols):
            gx[i, j] = gx[i, j] * (w[i, j] - dot) / rows
    return total / rows, gx


# --- W10: diagonal Gaussian log-likelihood, f64 ------------------------------------------

def w10_loss(x, mu, logs):
    z = (x - mu) * np.exp(-logs)  # exp of a per-column parameter, broadcast over rows
    return (0.5 * np.sum(z * z)) / x.shape[0] + np.sum(logs)


def w10_inputs(rng, n, d):
    return rng.standard_normal((n, d)), 0.1 * rng.standard_normal(d), 0.1 * rng.standard_normal(d)


def w10_numpy(x, mu, logs):
    n = x.shape[0]
    s = np.exp(-logs)
    z = (x - mu) * s
    zs, zz = np.sum(z, axis=0), np.sum(z * z, axis=0)
    return 0.5 * np.sum(zz) / n + np.sum(logs), (-zs * s / n, 1.0 - zz / n)


def w10_numba(x, mu, logs):
    n, d = x.shape
    s = np.exp(-logs)
    zs, zz = np.zeros(d), np.zeros(d)
    for i in range(n):
        for j in range(d):
            z = (x[i, j] - mu[j]) * s[j]
            zs[j] += z
            zz[j] += z * z
    return 0.5 * zz.sum() / n + logs.sum(), -zs * s / n, 1.0 - zz / n


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        id="W1", title="seed graph (a+b)+c*d, f64 (1,)",
        description="sum((a+b) + c*d), four f64 arrays of shape (1,), grads a,b,c,d",
        loss=w1_loss, argnums=(0, 1, 2, 3), build_inputs=w1_inputs,
        sizes={"full": {"n": 1}, "smoke": {"n": 1}},
        numpy_vg=w1_numpy, numba_vg=w1_numba, seed=1,
    ),
    Workload(
        id="W2", title="sum(tanh(x)*exp(-x²/2)+log(1+exp(x))), f32 4M",
        description="sum(tanh(x)*exp(-0.5*x*x) + log(1+exp(x))), x f32 (4194304,), grad x",
        loss=w2_loss, argnums=0, build_inputs=w2_inputs,
        sizes={"full": {"n": 4194304}, "smoke": {"n": 4096}},
        numpy_vg=w2_numpy, numba_vg=w2_numba, seed=2,
    ),
    Workload(
        id="W3", title="MLP 256x784-512 tanh-10, softmax CE, f32",
        description="MLP 256x784 -> 512 tanh -> 10, softmax cross-entropy (stable logsumexp, "
                    "one-hot Y), f32, grads W1,b1,W2,b2",
        loss=w3_loss, argnums=(0, 1, 2, 3), build_inputs=w3_inputs,
        sizes={"full": {"batch": 256, "n_in": 784, "hidden": 512, "n_out": 10},
               "smoke": {"batch": 8, "n_in": 20, "hidden": 16, "n_out": 10}},
        numpy_vg=w3_numpy, seed=3,
    ),
    Workload(
        id="W4", title="logistic regression, f64 X (10000,100)",
        description="mean(log(1+exp(-y*(X@w)))), X f64 (10000,100), grad w",
        loss=w4_loss, argnums=0, build_inputs=w4_inputs,
        sizes={"full": {"n": 10000, "d": 100}, "smoke": {"n": 50, "d": 7}},
        numpy_vg=w4_numpy, seed=4,
    ),
    Workload(
        id="W6", title="Rosenbrock, f64 (1048576,)",
        description="sum(100*(x[1:]-x[:-1]**2)**2 + (1-x[:-1])**2), x f64 (1048576,), grad x",
        loss=w6_loss, argnums=0, build_inputs=w6_inputs,
        sizes={"full": {"n": 1048576}, "smoke": {"n": 1000}},
        numpy_vg=w6_numpy, numba_vg=w6_numba, seed=6,
    ),
    Workload(
        id="W7", title="100x x=sin(x)*0.9+0.1x², sum, f64 (16,)",
        description="100 times x = sin(x)*0.9 + 0.1*x*x, then sum(x), x f64 (16,), grad x",
        loss=w7_loss, argnums=0, build_inputs=w7_inputs,
        sizes={"full": {"n": 16}, "smoke": {"n": 16}},
        numpy_vg=w7_numpy, numba_vg=w7_numba, seed=7,
    ),
    Workload(
        id="W8", title="row normalization + GELU(tanh) layer, f32 (2048,1024)",
        description="y = (x-mean)/sqrt(var+1e-5)*g + b per row, h = GELU tanh form of y, "
                    "sum(h*h)/rows; x f32 (2048,1024), g, b f32 (1024,), grads x,g,b",
        loss=w8_loss, argnums=(0, 1, 2), build_inputs=w8_inputs,
        sizes={"full": {"rows": 2048, "cols": 1024}, "smoke": {"rows": 8, "cols": 16}},
        numpy_vg=w8_numpy, numba_vg=w8_numba, seed=8,
    ),
    Workload(
        id="W9", title="row softmax, weighted sum, f32 (2048,1024)",
        description="s = softmax(x) along rows (max subtracted), sum(s*w)/rows; x, w f32 "
                    "(2048,1024), grad x",
        loss=w9_loss, argnums=0, build_inputs=w9_inputs,
        sizes={"full": {"rows": 2048, "cols": 1024}, "smoke": {"rows": 8, "cols": 16}},
        numpy_vg=w9_numpy, numba_vg=w9_numba, seed=9,
        not_for={"autograd": "autograd's max VJP divides by an int64 count: float32 in, "
                             "float64 gradient out"},
    ),
    Workload(
        id="W10", title="diagonal Gaussian log-likelihood, f64 (100000,40)",
        description="z = (x-mu)*exp(-logs), sum(z*z)/(2n) + sum(logs); x f64 (100000,40), "
                    "mu, logs (40,), grads mu, logs",
        loss=w10_loss, argnums=(1, 2), build_inputs=w10_inputs,
        sizes={"full": {"n": 100000, "d": 40}, "smoke": {"n": 16, "d": 5}},
        numpy_vg=w10_numpy, numba_vg=w10_numba, seed=10,
    ),
)

WORKLOADS_BY_ID: Mapping[str, Workload] = types.MappingProxyType({w.id: w for w in WORKLOADS})
