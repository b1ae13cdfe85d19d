"""Programs with loops and branches, shared by tests/test_compiled_loops*.py.

Each case is (name, function, argument maker, numpy reference or None).  The
functions return scalars or tuples of arrays; every argument is a float64
array (integers only where a bound is traced), so central differences check
the gradients of the scalar `loss` of a case.
"""
from __future__ import annotations

import numpy as np

import tracegrad as tg
from tracegrad import tracer

F64 = np.float64


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---- scan ----------------------------------------------------------------------------------

def rnn_args(hidden=6, inputs=3, steps=10, seed=0):
    rng = _rng(seed)
    return (rng.standard_normal(hidden) * 0.1, rng.standard_normal((steps, inputs)),
            rng.standard_normal((hidden, hidden)) * 0.4, rng.standard_normal((hidden, inputs)),
            rng.standard_normal(hidden) * 0.1)


def rnn(h0, xs, W, U, b):
    """An Elman RNN: h = tanh(W h + U x + b); the loss sums every h."""
    def step(h, x):
        h = np.tanh(W @ h + U @ x + b)
        return h, np.sum(h * h)
    h, ys = tg.scan(step, h0, xs)
    return np.sum(h) + np.sum(ys)


def rnn_numpy(h0, xs, W, U, b):
    h, total = h0, 0.0
    for x in xs:
        h = np.tanh(W @ h + U @ x + b)
        total += np.sum(h * h)
    return np.sum(h) + total


def reverse_scan(a, xs):
    c, ys = tg.scan(lambda c, x: (np.sin(c) * x + a, c * x), np.float64(0.5), xs, reverse=True)
    return c + np.sum(ys * ys)


def reverse_scan_numpy(a, xs):
    c, ys = 0.5, np.zeros_like(xs)
    for t in range(len(xs) - 1, -1, -1):
        c, ys[t] = np.sin(c) * xs[t] + a, c * xs[t]
    return c + np.sum(ys * ys)


def empty_scan(c, xs):
    c, ys = tg.scan(lambda c, x: (c * x, c + x), c, xs)
    return np.sum(c) + np.sum(ys)


def pytree_scan(params, xs):
    """Carries and xs are dicts and tuples."""
    def step(carry, x):
        pos, vel = carry["pos"], carry["vel"]
        vel = vel * params["decay"] + x["force"]
        return {"pos": pos + 0.1 * vel, "vel": vel}, (pos.sum(), vel * x["w"])
    init = {"pos": params["pos0"], "vel": np.zeros(2)}
    final, (ps, vs) = tg.scan(step, init, xs)
    return np.sum(final["pos"]) + np.sum(ps) + np.sum(vs * vs)


def pytree_args():
    rng = _rng(3)
    return ({"decay": np.float64(0.9), "pos0": rng.standard_normal(2)},
            {"force": rng.standard_normal((7, 2)), "w": rng.standard_normal(7)[:, None] * 1.0})


def scan_in_scan(a, xs):
    def outer(c, row):
        inner, zs = tg.scan(lambda d, v: (d * 0.5 + np.sin(v * c), d * v), c * a, row)
        return c + inner * 0.1, np.sum(zs)
    c, ys = tg.scan(outer, np.float64(1.0), xs)
    return c + np.sum(ys)


def scan_in_scan_numpy(a, xs):
    c, total = 1.0, 0.0
    for row in xs:
        d, z = c * a, 0.0
        for v in row:
            d, z = d * 0.5 + np.sin(v * c), z + d * v
        c, total = c + d * 0.1, total + z
    return c + total


def swap_carries(a, b):
    """A body returning its carries swapped (passthrough outputs)."""
    x, y = tg.fori_loop(0, 5, lambda i, c: (c[1], c[0] * 1.5 + 1.0), (a, b))
    return np.sum(x * 2.0 + y)


def swap_carries_numpy(a, b):
    x, y = a, b
    for _ in range(5):
        x, y = y, x * 1.5 + 1.0
    return np.sum(x * 2.0 + y)


# ---- fori_loop, while_loop ---------------------------------------------------------------------

def fori_static(x, y):
    return np.sum(tg.fori_loop(1, 6, lambda i, c: c * np.cos(y) + i * 0.1, x))


def fori_static_numpy(x, y):
    c = x
    for i in range(1, 6):
        c = c * np.cos(y) + i * 0.1
    return np.sum(c)


def fori_traced(n, x):
    return np.sum(tg.fori_loop(0, n, lambda i, c: c * 0.9 + np.sin(c) * i, x))


def fori_traced_numpy(n, x):
    c = x
    for i in range(int(n)):
        c = c * 0.9 + np.sin(c) * i
    return np.sum(c)


def newton(a):
    """sqrt(a) by Newton's iteration until the residual is small."""
    def body(c):
        x, k = c
        return 0.5 * (x + a / x), k + 1
    x, k = tg.while_loop(lambda c: (np.abs(c[0] * c[0] - a) > 1e-12) & (c[1] < 100), body,
                         (a, 0))
    return x


def newton_numpy(a):
    x, k = a, 0
    while abs(x * x - a) > 1e-12 and k < 100:
        x, k = 0.5 * (x + a / x), k + 1
    return x


def damped(x, y):
    """A while loop whose trip count depends on the data (reverse mode: while_vjp)."""
    def body(c):
        v, k = c
        return v * np.cos(y) + 0.1 * np.sin(v), k + 1
    v, k = tg.while_loop(lambda c: c[1] < 4, body, (x, 0))
    return np.sum(v * v)


def damped_numpy(x, y):
    v = x
    for _ in range(4):
        v = v * np.cos(y) + 0.1 * np.sin(v)
    return np.sum(v * v)


def zero_trip_while(x):
    v, k = tg.while_loop(lambda c: c[1] > 0, lambda c: (c[0] * 2.0, c[1] - 1), (x, 0))
    return np.sum(v * 3.0)


# ---- cond -------------------------------------------------------------------------------------

def branch(p, x):
    return np.sum(tg.cond(p > 0, lambda a: np.sin(a) * p, lambda a: a * a - p, x))


def branch_numpy(p, x):
    return np.sum(np.sin(x) * p if p > 0 else x * x - p)


def cond_in_while(x):
    def body(c):
        v, k = c
        v = tg.cond(np.sum(v) > 1.0, lambda a: a * 0.5, lambda a: a * 1.7 + 0.1, v)
        return v, k + 1
    v, k = tg.while_loop(lambda c: c[1] < 6, body, (x, 0))
    return np.sum(v * v)


def cond_in_while_numpy(x):
    v = x
    for _ in range(6):
        v = v * 0.5 if np.sum(v) > 1.0 else v * 1.7 + 0.1
    return np.sum(v * v)


def drag(v0, c):
    """The drag projectile: 500 Euler steps of v' = g - c |v| v, x' = v."""
    g, dt = np.array([0.0, -9.81]), 0.01

    def step(i, s):
        x, v = s
        v = v + dt * (g - c * np.sqrt(np.sum(v * v)) * v)
        return x + dt * v, v
    x, v = tg.fori_loop(0, 500, step, (np.zeros(2), v0))
    return x[0] + x[1] * 0.5


def drag_numpy(v0, c):
    g, dt, x, v = np.array([0.0, -9.81]), 0.01, np.zeros(2), v0
    for _ in range(500):
        v = v + dt * (g - c * np.sqrt(np.sum(v * v)) * v)
        x = x + dt * v
    return x[0] + x[1] * 0.5


def _pair(seed=1, shape=(3,)):
    rng = _rng(seed)
    return rng.standard_normal(shape) * 0.5, rng.standard_normal(shape) * 0.5


CASES = [
    ("rnn", rnn, rnn_args, rnn_numpy),
    ("reverse_scan", reverse_scan, lambda: (F64(0.3), _rng(2).standard_normal(5)),
     reverse_scan_numpy),
    ("empty_scan", empty_scan, lambda: (np.ones(2), np.zeros((0, 2))), None),
    ("pytree_scan", pytree_scan, pytree_args, None),
    ("scan_in_scan", scan_in_scan, lambda: (F64(0.7), _rng(4).standard_normal((3, 4))),
     scan_in_scan_numpy),
    ("swap_carries", swap_carries, _pair, swap_carries_numpy),
    ("fori_static", fori_static, _pair, fori_static_numpy),
    ("fori_traced", fori_traced, lambda: (np.int64(4), _pair()[0]), fori_traced_numpy),
    ("newton", newton, lambda: (F64(2.0),), newton_numpy),
    ("damped", damped, _pair, damped_numpy),
    ("zero_trip_while", zero_trip_while, lambda: (_pair()[0],), lambda x: np.sum(x * 3.0)),
    ("branch_true", branch, lambda: (F64(0.8), _pair()[0]), branch_numpy),
    ("branch_false", branch, lambda: (F64(-0.8), _pair()[0]), branch_numpy),
    ("cond_in_while", cond_in_while, lambda: (_pair()[0],), cond_in_while_numpy),
    ("drag", drag, lambda: (np.array([20.0, 15.0]), F64(0.02)), drag_numpy),
]

# Which arguments gradients are taken with respect to (float arrays only).
GRAD_ARGNUMS = {"fori_traced": (1,), "pytree_scan": (0, 1)}


def grad_argnums(name, args):
    return GRAD_ARGNUMS.get(name, tuple(range(len(args))))


def case(name):
    return next(c for c in CASES if c[0] == name)


def flat_argnums(args, argnums):
    """Positions among the flat leaves of `args` of the leaves of `args[argnums]`."""
    out, start = [], 0
    for i, a in enumerate(args):
        n = len(tracer.tree_leaves(a))
        if i in argnums:
            out += list(range(start, start + n))
        start += n
    return tuple(out)
