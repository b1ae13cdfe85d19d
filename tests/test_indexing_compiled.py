"""Indexing compiled: gather, scatter and dynamic slices in native code (codegen/extern.py)
against eager, values and gradients, traced indices in compiled loops, and indices out of
range that native code must clamp instead of reading or writing out of bounds."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad.tracer import tensor

RNG = np.random.default_rng(3)
X = RNG.standard_normal((4, 5, 3))


def _read(x):
    return (x[[0, 3, -1]].sum(axis=0) * 2 + x[1:, [4, 0], 1].sum() + x[X[:, 0, 0] > 0].sum()
            + x[..., [2, 0]][:, ::-2].sum())


def _write(x):
    y = x * 1.0
    y[[0, 0, 2], 1] = x[1, [0, 1, 2]] * 3.0
    y[:, [4, 1]] += 1.0
    y[1:3, 0, :] *= x[0, 0]
    y[..., 0] /= 2.0
    return y


def _dynamic(x, i, j):
    y = x * 1.0
    y[i, j] = x[j, i] + x[i, -1]
    y[i, :, j] -= 1.0
    return (y ** 2).sum() + tnp.take(x, tnp.stack([i, j]), axis=1).sum()


@pytest.mark.parametrize("fn", [_read, _write], ids=lambda f: f.__name__)
def test_compiled_matches_eager_values_and_gradients(fn):
    want = fn(tensor(X)).data
    np.testing.assert_allclose(tg.jit(fn)(X), want, rtol=1e-12)
    w = RNG.standard_normal(np.shape(want))

    def loss(x):
        return (fn(x) * w).sum()

    t = tensor(X, requires_grad=True)
    loss(t).backward()
    value, (grad,) = tg.compile_grad(loss)(X)
    np.testing.assert_allclose(value, loss(X), rtol=1e-12)
    np.testing.assert_allclose(grad, t.grad.data, rtol=1e-12, atol=1e-12)


def _clamp(k, d):
    """A traced index's position: negatives wrapped, then clamped (as in JAX)."""
    return int(np.clip(k + d if k < 0 else k, 0, d - 1))


@pytest.mark.parametrize("i, j", [(0, 0), (3, 2), (-1, -2), (7, -9), (-20, 40)])
def test_compiled_traced_indices_are_clamped(i, j):
    got = tg.jit(_dynamic)(X, np.int64(i), np.int64(j))
    y = X.copy()
    y[_clamp(i, 4), _clamp(j, 5)] = X[_clamp(j, 4), _clamp(i, 5)] + X[_clamp(i, 4), -1]
    y[_clamp(i, 4), :, _clamp(j, 3)] -= 1.0
    want = (y ** 2).sum() + X[:, [_clamp(i, 5), _clamp(j, 5)]].sum()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    if -4 <= i < 4 and -3 <= j < 3:
        np.testing.assert_allclose(_dynamic(X, np.int64(i), np.int64(j)), want, rtol=1e-12)
    else:  # concrete indices out of range raise, as in numpy
        with pytest.raises(IndexError, match="out of bounds"):
            _dynamic(X, np.int64(i), np.int64(j))


def test_compiled_loop_reads_and_writes_rows():
    def rnn(w, xs):
        def body(t, carry):
            h, ys = carry
            h = np.tanh(w * h + xs[t])
            ys[t] = h
            return h, ys
        return tg.fori_loop(0, xs.shape[0], body, (np.zeros(3), np.zeros_like(xs)))[1]

    def loss(w, xs):
        return (rnn(w, xs) ** 2).sum()

    w, xs = RNG.standard_normal(3), RNG.standard_normal((6, 3))
    np.testing.assert_allclose(tg.jit(rnn)(w, xs), rnn(w, xs), rtol=1e-12)
    value, (gw, gxs) = tg.compile_grad(loss, argnums=(0, 1))(w, xs)
    ew, exs = tg.grad(loss, argnums=(0, 1))(w, xs)
    np.testing.assert_allclose(value, loss(w, xs), rtol=1e-12)
    np.testing.assert_allclose(gw, ew, rtol=1e-10)
    np.testing.assert_allclose(gxs, exs, rtol=1e-10)


def test_compiled_scan_gathers_from_a_table():
    def f(s, ks):
        table = s * np.array([1.0, 10.0, 100.0])

        def step(c, k):
            return c + table[k], table[k]
        return tg.scan(step, 0.0, ks)

    ks = np.array([2, 0, 2, 1, -1])
    total, ys = tg.jit(f)(2.0, ks)
    assert total == pytest.approx(2 * 311.0)
    np.testing.assert_allclose(ys, 2 * np.array([100.0, 1, 100, 10, 100]))


def test_compiled_nonzero_with_size():
    def f(x):
        rows, cols = tnp.nonzero(x > 0, size=4, fill_value=-1)
        return rows, cols, tnp.extract(x > 0, x, size=4)

    x = np.array([[0.5, -1.0], [2.0, 3.0]])
    rows, cols, vals = tg.jit(f)(x)
    np.testing.assert_array_equal(rows, [0, 1, 1, -1])
    np.testing.assert_array_equal(cols, [0, 0, 1, -1])
    np.testing.assert_array_equal(vals, [0.5, 2.0, 3.0, 0.0])


def test_compiled_index_arrays_out_of_range_stay_in_bounds():
    f = tg.jit(lambda x, i, u: (x[i], tnp.take(x, i, axis=0, mode="wrap")))
    i = np.array([10**12, -10**12, -1, 3])
    got, wrapped = f(X, i, 0.0)
    np.testing.assert_array_equal(got, X[[3, 0, 3, 3]])
    # numpy's own mode="wrap" subtracts the size in a loop: 10**12 takes hours
    np.testing.assert_array_equal(wrapped, X[np.mod(i, len(X))])
