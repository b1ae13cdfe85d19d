"""The indexing family of tracegrad.numpy (tracer/numpy/indexing.py): values against
numpy eagerly (tensors through np.* dispatch) and traced, gradients against finite
differences in float64, static sizes for nonzero & co., and the errors."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad.tracer import Tensor, tensor

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4))
B = RNG.standard_normal((2, 3, 4))
IDX = np.array([[0, 2, 1], [2, 2, 0]])
ALONG = np.argsort(B, axis=1)[:, ::-1].copy()

# name -> (function of float arrays, float arguments); every function is compared with
# numpy's own on plain arrays, run eagerly on tensors (np.* dispatch) and traced.
CASES = {
    "take_flat": (lambda a: np.take(a, [0, 5, -1, 5]), [A]),
    "take_axis": (lambda a: np.take(a, IDX, axis=1), [A]),
    "take_wrap": (lambda a: np.take(a, [7, -9, 2], axis=0, mode="wrap"), [A]),
    "take_clip": (lambda a: np.take(a, [[7, -9]], axis=-1, mode="clip"), [A]),
    "take_scalar": (lambda a: np.take(a, 2, axis=1), [A]),
    "take_along_axis": (lambda b: np.take_along_axis(b, ALONG, axis=1), [B]),
    "take_along_broadcast": (lambda b: np.take_along_axis(b, np.array([[[3], [0], [1]]]), 2),
                             [B]),
    "take_along_none": (lambda a: np.take_along_axis(a, np.array([11, 0, 0]), None), [A]),
    "choose": (lambda a, b: np.choose(np.array([[0, 1, 2, 1]] * 3), [a, b[0], 2.0]), [A, B]),
    "choose_wrap": (lambda a: np.choose(np.array([0, 3, -1, 1]), [a, -a], mode="wrap"), [A]),
    "select": (lambda a: np.select([a > 0.5, a < -0.5], [a * 2, a ** 2], -1.0), [A]),
    "compress": (lambda b: np.compress([True, False, True], b, axis=1), [B]),
    "compress_flat": (lambda a: np.compress([False, True, True], a), [A]),
    "extract": (lambda a: np.extract(A > 0, a), [A]),
    "fancy_mixed": (lambda b: b[[1, 0], :, [3, 2]], [B]),
    "put_along_axis": (lambda a, v: _put_along(a, v), [A, RNG.standard_normal((3, 1))]),
}


def _put_along(a, v):
    a = a * 1.0
    np.put_along_axis(a, np.array([[2], [0], [3]]), v, axis=1)
    return a


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_eager_and_traced_match_numpy(name):
    fn, args = CASES[name]
    want = fn(*args)
    got = fn(*[tensor(a) for a in args])
    assert isinstance(got, Tensor)
    np.testing.assert_array_equal(got.data, want)
    np.testing.assert_array_equal(tg.trace(fn)(*args)(*args), want)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_match_finite_differences(name):
    fn, args = CASES[name]
    weights = RNG.standard_normal(np.shape(fn(*args)))

    def loss(*xs):
        return (fn(*xs) * weights).sum()

    grads = tg.grad(loss, argnums=tuple(range(len(args))))(*args)
    for k, g in enumerate(grads):
        def along(z, k=k):
            return float(np.sum(fn(*args[:k], z, *args[k + 1:]) * weights))
        np.testing.assert_allclose(g, _fd(along, args[k]), rtol=1e-6, atol=1e-8)
    eager = [tensor(a, requires_grad=True) for a in args]
    loss(*eager).backward()
    for t, g in zip(eager, grads):
        np.testing.assert_allclose(t.grad.data, g, rtol=1e-12)


def _fd(f, x, h=1e-6):
    g = np.zeros_like(x)
    for k in range(x.size):
        e = np.zeros_like(x)
        e.flat[k] = h
        g.flat[k] = (f(x + e) - f(x - e)) / (2 * h)
    return g


# ---- nonzero & co. --------------------------------------------------------------------------

M = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]])


@pytest.mark.parametrize("fn", [np.nonzero, np.argwhere, np.flatnonzero, np.where],
                         ids=lambda f: f.__name__)
def test_concrete_inputs_need_no_size(fn):
    want, got = fn(M), fn(tensor(M))
    for w, g in zip(want if isinstance(want, tuple) else [want],
                    got if isinstance(got, tuple) else [got]):
        np.testing.assert_array_equal(g.data, w)


@pytest.mark.parametrize("size, fill", [(2, None), (3, None), (5, -1), (5, (7, 8)), (0, None)])
def test_nonzero_with_a_static_size_traced(size, fill):
    def f(m):
        return tnp.nonzero(m, size=size, fill_value=fill)

    rows, cols = tg.trace(f)(M)(M)
    found = np.nonzero(M)
    n = min(size, found[0].size)
    fills = (0, 0) if fill is None else (fill, fill) if np.ndim(fill) == 0 else fill
    np.testing.assert_array_equal(rows[:n], found[0][:n])
    np.testing.assert_array_equal(cols[:n], found[1][:n])
    assert (rows[n:] == fills[0]).all() and (cols[n:] == fills[1]).all()
    assert rows.shape == (size,) and rows.dtype == np.int64


def test_argwhere_flatnonzero_where_extract_with_size():
    def f(m):
        return (tnp.argwhere(m, size=4, fill_value=-1), tnp.flatnonzero(m, size=2),
                tnp.where(m > 0, size=2)[1], tnp.extract(m != 0, m, size=4, fill_value=9.0))

    arg, flat, where, ext = tg.trace(f)(M)(M)
    np.testing.assert_array_equal(arg, [[0, 1], [1, 0], [1, 2], [-1, -1]])
    np.testing.assert_array_equal(flat, [1, 3])
    np.testing.assert_array_equal(where, [1, 0])
    np.testing.assert_array_equal(ext, [1.5, 2.0, -1.0, 9.0])


def test_extract_with_size_differentiates():
    g = tg.grad(lambda m: (tnp.extract(M != 0, m, size=4) * np.arange(1.0, 5.0)).sum())(M)
    np.testing.assert_array_equal(g, [[0, 1, 0], [2, 0, 3]])


def test_nonzero_of_traced_values_without_size_is_a_clear_error():
    with pytest.raises(TypeError, match="size="):
        tg.trace(lambda m: np.nonzero(m))(M)
    with pytest.raises(TypeError, match="size="):
        tg.trace(lambda m: np.compress(m[0] > 0, m, axis=1))(M)


def test_nonzero_of_a_scalar_is_rejected_as_numpy():
    with pytest.raises(ValueError, match="0d"):
        tnp.nonzero(tensor(1.0))


# ---- index constructors, unravel / ravel --------------------------------------------------------

def test_index_constructors_match_numpy():
    sq = tensor(np.ones((3, 3)))
    for got, want in [(tnp.tril_indices(4, -1), np.tril_indices(4, -1)),
                      (tnp.triu_indices(3, 1, 5), np.triu_indices(3, 1, 5)),
                      (np.tril_indices_from(sq), np.tril_indices(3)),
                      (np.triu_indices_from(sq, 1), np.triu_indices(3, 1)),
                      (np.diag_indices_from(sq), np.diag_indices(3)),
                      (tnp.diag_indices(2, 3), np.diag_indices(2, 3)),
                      (tnp.indices((2, 3)), np.indices((2, 3))),
                      (tnp.ix_([0, 2], [True, False, True]), np.ix_([0, 2], [True, False, True]))]:
        for g, w in zip(got, want):
            np.testing.assert_array_equal(np.asarray(getattr(g, "data", g)), w)


def test_ix_with_traced_indices_selects_a_block():
    def f(a, r):
        return a[tnp.ix_(r, [1, 3])]

    np.testing.assert_array_equal(tg.trace(f)(A, np.array([2, 0]))(A, np.array([2, 0])),
                                  A[np.ix_([2, 0], [1, 3])])


@pytest.mark.parametrize("order", ["C", "F"])
def test_unravel_and_ravel_multi_index_traced(order):
    shape = (3, 4, 2)
    flat = np.array([0, 5, 23, 17, 8])

    def f(i):
        coords = tnp.unravel_index(i, shape, order=order)
        return coords, tnp.ravel_multi_index(coords, shape, order=order)

    coords, back = tg.trace(f)(flat)(flat)
    for c, w in zip(coords, np.unravel_index(flat, shape, order=order)):
        np.testing.assert_array_equal(c, w)
    np.testing.assert_array_equal(back, flat)


def test_traced_unravel_clamps_and_ravel_modes():
    def f(i, j):
        return (tnp.unravel_index(i, (3, 4)),
                tnp.ravel_multi_index((i, j), (3, 4), mode="wrap"),
                tnp.ravel_multi_index((i, j), (3, 4), mode="clip"),
                tnp.ravel_multi_index((i, j), (3, 4)))

    i, j = np.array([-1, 40, 7, -5]), np.array([1, -1, 9, 2])
    (r, c), wrap, clip, clamp = tg.trace(f)(i, j)(i, j)
    np.testing.assert_array_equal(r, [2, 2, 1, 1])  # -1 -> 11, 40 -> 11, 7, -5 -> 7
    np.testing.assert_array_equal(c, [3, 3, 3, 3])
    np.testing.assert_array_equal(wrap, np.ravel_multi_index((i, j), (3, 4), mode="wrap"))
    np.testing.assert_array_equal(clip, np.ravel_multi_index((i, j), (3, 4), mode="clip"))
    np.testing.assert_array_equal(clamp, [4 * 2 + 1, 4 * 2 + 3, 4 * 2 + 3, 0 + 2])  # -5 -> -2 -> 0


def test_take_of_traced_indices_with_modes():
    def f(a, i):
        return (tnp.take(a, i), tnp.take(a, i, mode="wrap"), tnp.take(a, i, mode="clip"))

    a, i = np.arange(5.0), np.array([-7, -1, 3, 12])
    dflt, wrap, clip = tg.trace(f)(a, i)(a, i)
    np.testing.assert_array_equal(dflt, [0.0, 4.0, 3.0, 4.0])  # traced: wrapped, clamped
    np.testing.assert_array_equal(wrap, np.take(a, i, mode="wrap"))
    np.testing.assert_array_equal(clip, np.take(a, i, mode="clip"))


# ---- errors -----------------------------------------------------------------------------------------

def test_errors_name_the_problem():
    t = tensor(A)
    with pytest.raises(IndexError, match="out of bounds"):
        np.take(t, [12])
    with pytest.raises(ValueError, match="clipmode"):
        np.take(t, [0], mode="nearest")
    with pytest.raises(ValueError, match="same number of dimensions"):
        np.take_along_axis(t, np.array([0]), axis=1)
    with pytest.raises(TypeError, match="boolean"):
        np.select([t], [t])
    with pytest.raises(ValueError, match="same length"):
        np.select([t > 0], [t, t])
    with pytest.raises(TypeError, match="out="):
        np.take(t, [0], out=np.zeros(1))
    with pytest.raises(ValueError, match="both or neither"):
        tnp.where(t > 0, t)
