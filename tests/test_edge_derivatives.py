"""Derivatives at edge points follow JAX's conventions, norms at zero torch's (docs/derivatives.md),
the same in eager backward, `grad` (traced) and compiled code."""
import numpy as np
import pytest

import tracegrad as tg

NAN = float("nan")
INF = float("inf")

# (name, function, point, the derivative there: JAX's, but norms and std at zero are torch's)
CASES = [
    ("power x**0.0 at 0", lambda x: np.power(x, 0.0), 0.0, 0.0),
    ("power x**1.0 at 0", lambda x: np.power(x, 1.0), 0.0, 1.0),
    ("power x**2.0 at 0", lambda x: np.power(x, 2.0), 0.0, 0.0),
    ("power 0**y in y", lambda y: np.power(0.0, y + 2.0), 1.0, 0.0),
    ("integer power x**0 at 0", lambda x: x ** 0, 0.0, 0.0),
    ("integer power x**1 at 0", lambda x: x ** 1, 0.0, 1.0),
    ("sqrt at 0", np.sqrt, 0.0, INF),
    ("abs at 0", np.abs, 0.0, 1.0),
    ("abs at -0.0", np.abs, -0.0, 1.0),
    ("maximum at a tie", lambda x: np.maximum(x, 0.0), 0.0, 0.5),
    ("minimum at a tie", lambda x: np.minimum(x, 0.0), 0.0, 0.5),
    ("max over ties", lambda x: np.max(x * np.ones(4)), 2.0, 1.0),
    ("std of a constant", lambda x: np.std(x * np.ones(3)), 1.0, 0.0),
    ("norm of zeros", lambda x: np.linalg.norm(x * np.ones(3)), 0.0, 0.0),
    ("3-norm of zeros", lambda x: np.linalg.norm(x * np.ones(3), 3), 0.0, 0.0),
    ("frobenius norm of zeros", lambda x: np.linalg.norm(x * np.ones((2, 2)), "fro"), 0.0, 0.0),
    ("var of a constant", lambda x: np.var(x * np.ones(3)), 1.0, 0.0),
    ("where with an unselected inf", lambda x: np.where(x > 0, x, np.inf), 2.0, 1.0),
    ("where with an unselected nan branch", lambda x: np.where(x > 0, np.sqrt(x), 0.0), -1.0,
     NAN),
    ("atan2 at the origin in y", lambda y: np.arctan2(y, 0.0), 0.0, 0.0),
    ("atan2 at the origin in x", lambda x: np.arctan2(0.0 * x, x), 0.0, 0.0),
    ("atan2 off the origin", lambda y: np.arctan2(y, 2.0), 0.0, 0.5),
    ("sign is flat", lambda x: np.sign(x) * 3.0 + x, 0.5, 1.0),
]


def _same(got, want):
    got = float(got)
    return np.isnan(want) and np.isnan(got) or got == want


@pytest.mark.parametrize("name,f,x,want", CASES, ids=[c[0] for c in CASES])
def test_traced_grad(name, f, x, want):
    assert _same(tg.grad(f)(x), want)


@pytest.mark.parametrize("name,f,x,want", CASES, ids=[c[0] for c in CASES])
def test_eager_backward(name, f, x, want):
    t = tg.tensor(x, requires_grad=True)
    f(t).backward()
    assert _same(t.grad.item(), want)


@pytest.mark.parametrize("name,f,x,want", CASES, ids=[c[0] for c in CASES])
def test_compiled(name, f, x, want):
    _, (g,) = tg.compile_grad(f)(np.asarray(x))
    assert _same(g, want)


def test_sign_is_not_differentiable_in_the_table():
    from tracegrad.ir import PRIMITIVES
    assert not PRIMITIVES["sign"].differentiable
    assert all(not PRIMITIVES[n].differentiable for n in ("lt", "eq", "and", "not", "stop_gradient"))


def test_sign_keeps_pytorchs_backward_node_eagerly():
    t = tg.tensor([1.0, -2.0], requires_grad=True)
    y = np.sign(t)
    assert type(y.grad_fn).__name__ == "SignBackward0"
    y.sum().backward()
    assert t.grad.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cosh_derivative_is_sinh_near_zero(dtype):
    """cosh below |x| = 1/2 is 1 + 2 sinh(x/2)^2, so its derivative does not cancel
    (e - 1/e): the log-cosh loss's gradient is tanh to working precision."""
    r = np.array([1e-8, 1e-6, 1e-4, 1e-2, 0.3, 0.7], dtype)
    g = tg.compile_grad(lambda v: np.sum(np.log(np.cosh(v))))(r)[1][0]
    np.testing.assert_allclose(g, np.tanh(r), rtol=4 * np.finfo(dtype).eps)
    np.testing.assert_allclose(tg.grad(lambda v: np.sum(np.cosh(v)))(r), np.sinh(r),
                               rtol=4 * np.finfo(dtype).eps)


def test_cbrt_derivative_at_zero_and_infinity_as_jax():
    x = np.array([0.0, np.inf, -np.inf, 8.0])
    g = tg.compile_grad(lambda v: np.sum(np.cbrt(v)))(x)[1][0]
    np.testing.assert_array_equal(g[:3], [np.inf, 0.0, 0.0])
    np.testing.assert_allclose(g[3], 1.0 / 12.0, rtol=1e-15)


def test_arcsin_arccos_derivatives_at_the_domain_edges_are_infinite_as_jax():
    x = np.array([1.0, -1.0, 0.5])
    g = tg.compile_grad(lambda v: np.sum(np.arcsin(v)))(x)[1][0]
    np.testing.assert_array_equal(g[:2], [np.inf, np.inf])
    np.testing.assert_allclose(g[2], 1 / np.sqrt(0.75), rtol=1e-15)
    g = tg.grad(lambda v: np.sum(np.arccos(v)))(x)
    np.testing.assert_array_equal(g[:2], [-np.inf, -np.inf])


def test_arctanh_derivative_at_plus_minus_one_is_infinite_as_jax():
    g = tg.compile_grad(lambda v: np.sum(np.arctanh(v)))(np.array([1.0, -1.0, 0.5]))[1][0]
    np.testing.assert_array_equal(g[:2], [np.inf, np.inf])
    np.testing.assert_allclose(g[2], 4.0 / 3.0, rtol=1e-15)


def test_arccosh_derivative_at_one_is_infinite_as_jax():
    g = tg.compile_grad(lambda v: np.sum(np.arccosh(v)))(np.array([1.0, 2.0]))[1][0]
    assert g[0] == np.inf
    np.testing.assert_allclose(g[1], 1 / np.sqrt(3.0), rtol=1e-15)


def test_sinh_cosh_derivatives_past_exps_overflow_stay_finite():
    """Past |x| = 700, e^|x| / 2 is one exp (of |x| - ln 2), so the chain rule never forms
    e^|x| (which overflows) before halving it: torch's finite values."""
    x = np.array([710.0, -710.0, 705.0])
    np.testing.assert_allclose(tg.grad(lambda v: np.sum(np.cosh(v)))(x), np.sinh(x), rtol=1e-14)
    np.testing.assert_allclose(tg.grad(lambda v: np.sum(np.sinh(v)))(x), np.cosh(x), rtol=1e-14)


def test_arccosh_derivative_below_its_domain_is_nan_as_its_value():
    """arccosh is nan below 1, and so is its derivative (JAX and PyTorch give nan or inf
    there; a zero derivative would hide the nan value's cause), eager and compiled."""
    x = np.array([-1.0, -0.5, 0.0, 0.5, 2.0])
    g = tg.compile_grad(lambda v: np.sum(np.arccosh(v)))(x)[1][0]
    assert np.isnan(g[:4]).all()
    np.testing.assert_allclose(g[4], 1 / np.sqrt(3.0), rtol=1e-15)
    t = tg.tensor(x, requires_grad=True)
    np.arccosh(t).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), g)


def test_log_derivatives_divide_so_subnormal_arguments_do_not_overflow():
    """g / x, as JAX and PyTorch: g * (1 / x) overflowed at x = 1e-310 (xlogy's
    y-derivative x / y there is 1, not inf), eager and traced alike."""
    from tracegrad.scipy.special import xlogy
    x = np.array(1e-310)
    gx, gy = tg.grad(lambda a, b: xlogy(a, b), argnums=(0, 1))(x, x)
    assert gy == 1.0 and np.isfinite(gx)
    w = np.array([1e-310, 3.0] * 12)
    t = tg.tensor(w, requires_grad=True)
    (np.log1p(t) * w).sum().backward()   # eager: the fused g / (x + 1) kernel from 16 elements
    np.testing.assert_array_equal(t.grad.numpy(), w / (w + 1))
    np.testing.assert_array_equal(tg.grad(lambda v: np.sum(np.log(v) * w))(w), w / w)


def test_tensor_median_of_all_elements_shares_its_gradient_among_ties_as_torch():
    x = tg.tensor(np.array([3.0, 1.0, 2.0, 2.0]), requires_grad=True)
    m = x.median()
    m.backward()
    assert float(m) == 2.0
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.5, 0.5])
    y = tg.tensor(np.array([5.0, np.nan, 1.0]), requires_grad=True)
    m = y.median()
    m.backward()  # a nan median is the nan's, and so is its gradient
    assert np.isnan(float(m))
    np.testing.assert_array_equal(y.grad.numpy(), [0.0, 1.0, 0.0])


def test_power_mixed_second_derivative_at_a_zero_exponent_is_one_over_x():
    """d/dy of d/dx x**y = x**(y-1) (1 + y log x): 1/x at y == 0 (the first derivative's
    zero there was a constant, which cut it: 0), in either order, as the Hessian's."""
    xy = tg.grad(tg.grad(lambda x, y: np.power(x, y), 0), 1)(2.0, 0.0)
    yx = tg.grad(tg.grad(lambda x, y: np.power(x, y), 1), 0)(2.0, 0.0)
    assert xy == yx == 0.5
    assert tg.grad(lambda x: x ** 0.0)(0.0) == 0.0  # the documented value at x == y == 0
    # a third derivative through it: f = (x^2 + 0.1)^x at 0 (mpmath: 47.7919284462391...)
    f3 = tg.grad(tg.grad(tg.grad(lambda x: np.power(x * x + 0.1, x))))(0.0)
    np.testing.assert_allclose(f3, 47.79192844623914, rtol=1e-12)


def test_modf_fractional_part_has_slope_one_at_negative_integers_and_keeps_numpys_signs():
    x = np.array([-3.0, -1.0, -2.5, 0.0, -0.0, 2.0, 3.0])
    g = tg.grad(lambda x: np.sum(np.modf(x)[0]))(x)
    np.testing.assert_array_equal(g, np.ones_like(x))
    frac, whole = tg.jit(np.modf)(np.array([-3.0, -0.0, 2.5, -np.inf, np.nan]))
    want_frac, want_whole = np.modf(np.array([-3.0, -0.0, 2.5, -np.inf, np.nan]))
    np.testing.assert_array_equal(np.signbit(frac), np.signbit(want_frac))
    np.testing.assert_array_equal(frac, want_frac)
    np.testing.assert_array_equal(whole, want_whole)


def test_sinc_has_exact_derivatives_at_zero():
    """Every order to the 8th at 0, from its Taylor polynomial there (numpy's formula
    replaces x = 0 by 1e-20 and was flat: sinc''(0) came out 0, not -pi^2/3)."""
    d2 = tg.grad(tg.grad(np.sinc))(0.0)
    d4 = tg.grad(tg.grad(tg.grad(tg.grad(np.sinc))))(0.0)
    np.testing.assert_allclose(d2, -np.pi ** 2 / 3, rtol=1e-14)
    np.testing.assert_allclose(d4, np.pi ** 4 / 5, rtol=1e-13)
    x = np.array([0.0, -0.0, 1e-300, 0.5, -2.5, 3.0, np.inf])
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(tg.jit(np.sinc)(x), np.sinc(x))
