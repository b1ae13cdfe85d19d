"""Fixes from a hunt comparing eager autograd with torch: relu keeps NaN, Python floats
stay weak in lerp/xlogy/xlog1py, softmax over an empty axis, d/dy x**y at x == 0."""
import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad.scipy.special import xlog1py, xlogy


def test_relu_keeps_nan_and_its_gradient_at_zero_is_zero():
    x = np.array([np.nan, -1.0, 0.0, 2.0])
    for out in (tnp.relu(x), tg.tensor(x).relu().numpy(), tg.jit(tnp.relu)(x)):
        np.testing.assert_array_equal(out, [np.nan, 0.0, 0.0, 2.0])
    g = tg.grad(lambda v: np.sum(tnp.relu(v)))(np.array([-1.0, 0.0, 2.0]))
    assert g.tolist() == [0.0, 0.0, 1.0]


def test_python_floats_stay_weak():
    a = tg.tensor(np.ones(3, np.float32), requires_grad=True)
    b = tg.tensor(np.full(3, 2.0, np.float32))
    assert a.lerp(b, 0.3).dtype == np.float32
    assert a.xlogy(2.0).dtype == np.float32
    assert xlogy(a, 2.0).dtype == np.float32 and xlog1py(a, 2.0).dtype == np.float32
    y = xlogy(a, 2.0)
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full(3, np.log(2.0), np.float32))
    assert xlogy(np.array([0, 1, 2]), np.array([0, 3, 4])).dtype == np.float64


def test_softmax_over_an_empty_axis():
    x = tg.tensor(np.zeros((3, 0)), requires_grad=True)
    assert x.softmax(dim=1).shape == (3, 0) and x.log_softmax(dim=1).shape == (3, 0)
    assert tnp.softmax(np.zeros((0, 4)), axis=0).shape == (0, 4)


def test_pow_derivative_in_the_exponent_is_zero_at_a_zero_base():
    base = np.array([0.0, 0.0, 2.0])
    expected = [0.0, 0.0, 4.0 * np.log(2.0)]
    g = tg.grad(lambda y: np.sum(base ** y))(np.array([-1.0, 2.0, 2.0]))
    np.testing.assert_allclose(g, expected, rtol=1e-15)
    t = tg.tensor(np.array([-1.0, -0.5, 2.0]), requires_grad=True)
    (tg.tensor(np.zeros(3)) ** t).sum().backward()
    assert t.grad.numpy().tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("fn", [tnp.relu, tnp.softmax])
def test_compiled_matches_eager(fn):
    x = np.array([[np.nan, -1.0, 3.0], [0.5, 0.0, -2.0]])
    np.testing.assert_array_equal(tg.jit(fn)(x), fn(x))


@pytest.mark.parametrize("run", [
    lambda: tg.scan(lambda c, x: (1.5, None), np.int64(1), None, length=2),
    lambda: tg.fori_loop(0, 2, lambda i, c: 2.7, np.int64(0)),
    lambda: tg.fori_loop(0, 2, lambda i, c: 2, np.bool_(False)),
    lambda: tg.jit(lambda b: tg.fori_loop(0, 2, lambda i, c: 2, b))(np.bool_(False)),
    lambda: tg.jit(lambda p, n: tg.cond(p[0] > 0, lambda: 2.5, lambda: n[0]))(
        np.ones(1), np.array([3])),
    lambda: tg.jit(lambda i, n: tg.switch(i, [lambda: 7.9, lambda: n[0]]))(
        np.int64(0), np.array([3])),
], ids=["scan", "fori-int", "fori-bool", "fori-bool-jit", "cond", "switch"])
def test_a_python_number_never_truncates_into_a_narrower_kind(run):
    with pytest.raises(TypeError, match="types"):
        run()


def test_python_numbers_still_take_the_carry_dtype_where_they_fit():
    assert tg.jit(lambda n: tg.fori_loop(0, 2, lambda i, c: 2.5, n))(np.float32(1)).dtype == np.float32
    assert tg.fori_loop(0, 2, lambda i, c: 2, np.float64(1)) == 2.0
    out = tg.jit(lambda n: tg.fori_loop(0, 2, lambda i, c: 2, n))(np.int32(1))
    assert out.dtype == np.int32 and out == 2


def test_cond_on_a_fixed_predicate_keeps_the_derivative_of_a_python_float():
    f = lambda x: tg.cond(x > 0, lambda x: x ** 2, lambda x: -x, x)  # noqa: E731
    assert float(tg.grad(f)(3.0)) == 6.0 and float(tg.grad(f)(-2.0)) == -1.0
    assert float(tg.jit(tg.grad(f))(3.0)) == 6.0
    g = lambda x: tg.switch(1, [lambda x: -x, lambda x: x ** 3], x)  # noqa: E731
    assert float(tg.hessian(g)(2.0)) == 12.0


def test_float32_decompositions_agree_eager_and_compiled():
    """float32 decompositions compute in float64 compiled too (as numpy.linalg and the eager
    path): the gradient of slogdet at cond 1e6 agrees, to float32 rounding, with the
    float64 inverse transpose (single-precision LAPACK was 4e-3 off)."""
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((4, 4)))
    a = ((q * np.logspace(0, -6, 4)) @ q.T).astype(np.float32)
    exact = np.linalg.inv(a.astype(np.float64)).T
    h = lambda m: np.linalg.slogdet(m)[1]  # noqa: E731
    for grad in (tg.grad(h)(a), tg.compile_grad(h)(a)[1][0]):
        assert grad.dtype == np.float32
        assert np.abs(grad - exact).max() / np.abs(exact).max() < 1e-6
