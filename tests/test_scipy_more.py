"""tracegrad.scipy.special's normal-distribution, Gamma, entropy and Bessel functions and
tracegrad.scipy.linalg's solves, decompositions, block_diag and expm: values against scipy
on grids with edge values (0, -0, +-inf, nan, negative arguments), float32 results,
gradients against analytic derivatives (from scipy), jax.scipy and finite differences, in
every mode (numpy arrays, eager tensors with backward, jit, compile_grad) and through
scipy.special's own ufuncs on tracegrad values."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad.scipy import linalg as tl
from tracegrad.scipy import special as ts
from tracegrad.tracer.numpy.special import SCIPY_UFUNCS

ss = pytest.importorskip("scipy.special")
sl = pytest.importorskip("scipy.linalg")
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

RNG = np.random.default_rng(7)
INF, NAN = np.inf, np.nan
EDGE = np.array([0.0, -0.0, INF, -INF, NAN, 1e-300, -1e-300, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0])


def _logs(lo, hi, n=300):
    return 10.0 ** np.linspace(lo, hi, n)


def _grid(lo, hi, n=1500):
    return np.concatenate([np.linspace(lo, hi, n), RNG.uniform(lo, hi, n)])


def assert_close(got, want, rtol, atol=0.0):
    """|got - want| <= rtol |want| + atol elementwise (rtol and atol may be arrays)."""
    got, want = np.broadcast_arrays(np.asarray(got, np.float64), np.asarray(want, np.float64))
    bound = np.broadcast_to(rtol * np.abs(want) + atol, want.shape)
    bad = ~(np.abs(got - want) <= bound)
    assert not bad.any(), (f"{bad.sum()} of {bad.size} differ, e.g. {got[bad][:4]} for "
                           f"{want[bad][:4]}; max relative error "
                           f"{np.max(np.abs(got - want)[bad] / np.abs(want[bad])):.3g}")


def assert_like_scipy(got, want, rtol, atol=0.0):
    """Equal special values (nan, +-inf, the sign of zero) and finite values within
    rtol relative (atol absolute; either may be an array matching `want`)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    special = ~np.isfinite(want) | (want == 0)
    np.testing.assert_array_equal(got[special & ~np.isnan(want)], want[special & ~np.isnan(want)])
    np.testing.assert_array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]))
    ok = ~special
    assert_close(got[ok], want[ok], np.broadcast_to(rtol, want.shape)[ok],
                 np.broadcast_to(atol, want.shape)[ok])


# ---- values against scipy ----------------------------------------------------------------

def _tail(x):
    """ndtr's tolerance: scipy and tracegrad both round x/sqrt 2, an error erfc's relative
    slope 2 z multiplies (z^2 ulps in the tail)."""
    return 1e-15 + 2.5e-16 * np.where(np.isfinite(x), x * x, 0.0)


POSITIVE = _grid(0, 37)
NDTR_X = np.concatenate([_grid(-37.5, 9), EDGE, _logs(-300, 0), -_logs(-300, 1.5)])
UNARY = {  # name: [(grid, rtol)]: outputs scipy gives as normal numbers or exactly 0 / inf
    "ndtr": [(NDTR_X, _tail(NDTR_X))],
    "log_ndtr": [(np.concatenate([_grid(-1e3, 0), _grid(-40, -15), EDGE, -_logs(-300, 3)]), 1e-15),
                 (POSITIVE, _tail(POSITIVE))],  # log1p(-ndtr(-x)): ndtr's tail
    "ndtri": [(np.concatenate([_grid(0, 1), _logs(-323, -0.31), 1 - _logs(-16, -0.31), EDGE,
                               0.5 + _logs(-300, -1), 0.5 - _logs(-300, -1)]), 1e-15)],
    "erfinv": [(np.concatenate([_grid(-1, 1), _logs(-300, 0), -_logs(-300, 0), EDGE,
                                1 - _logs(-16, -0.3), -1 + _logs(-16, -0.3)]), 1e-15)],
    "gamma": [(np.concatenate([_grid(-171.5, 171.6), _grid(-10, 10), _logs(-300, 2.2),
                               -_logs(-300, 2.2), EDGE, np.arange(-10, 172.0),
                               np.arange(-10, 10) + 1e-9, np.arange(-10, 10) - 1e-9]), 3e-15)],
    "entr": [(np.concatenate([_grid(-1, 10), _logs(-300, 300), EDGE]), 1e-15)],
    "log_expit": [(np.concatenate([_grid(-800, 800), EDGE, -_logs(-300, 3), _logs(-300, 3)]),
                   1e-15)],
    "i0e": [(np.concatenate([_grid(-50, 50), _logs(-300, 300), -_logs(-300, 300), EDGE]), 1e-15)],
    "i1e": [(np.concatenate([_grid(-50, 50), _logs(-300, 300), -_logs(-300, 300), EDGE]), 1e-15)],
    "i1": [(np.concatenate([_grid(-700, 700), _logs(-300, 2.8), -_logs(-300, 2.8), EDGE]), 1e-15)],
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_values_as_scipy_eager_and_compiled(name):
    f, ref = getattr(ts, name), getattr(ss, name)
    compiled = tg.jit(f)
    for x, rtol in UNARY[name]:
        want = ref(x)
        assert_like_scipy(f(x), want, rtol)
        assert_like_scipy(compiled(x), want, rtol + 2e-15)


def test_ndtr_family_landmarks():
    assert float(ts.log_ndtr(-40.0)) == pytest.approx(-804.6084420137538, rel=1e-15)
    assert float(ts.log_ndtr(-1e3)) == pytest.approx(float(ss.log_ndtr(-1e3)), rel=1e-15)
    assert float(ts.ndtri(5e-324)) == pytest.approx(-38.467405617144344, rel=1e-14)
    assert float(ts.erfinv(1e-300)) == pytest.approx(8.862269254527579e-301, rel=1e-15)
    p = _logs(-300, -0.4)
    assert_close(ts.ndtr(ts.ndtri(p)), p, 2 * _tail(ss.ndtri(p)))
    y = np.linspace(-0.99, 0.99, 199)
    np.testing.assert_allclose(ts.erfinv(y), ts.ndtri((y + 1) / 2) / np.sqrt(2), rtol=1e-13)


def test_gamma_landmarks():
    factorials = [float(np.prod(np.arange(1, k, dtype=object))) for k in range(1, 24)]
    np.testing.assert_array_equal(ts.gamma(np.arange(1.0, 24.0)), factorials)
    assert float(ts.gamma(0.5)) == pytest.approx(np.sqrt(np.pi), rel=2e-16)
    assert float(ts.gamma(-170.998)) == pytest.approx(float(ss.gamma(-170.998)), rel=1e-14)
    assert np.signbit(ts.gamma(-200.5)) and not np.signbit(ts.gamma(-171.5))


def test_polygamma_and_multigammaln_as_scipy():
    x = np.concatenate([_grid(-30, 30), _logs(-300, 300), -_logs(-5, 1.5), EDGE])
    assert_like_scipy(ts.polygamma(1, x), ss.polygamma(1, x), 3e-15)
    pos = x[~(x < 0)]  # scipy's psi is off by up to 3e-12 next to the negative poles
    assert_like_scipy(ts.polygamma(0, pos), ss.polygamma(0, pos), 1e-15)
    n = np.array([[0], [1]])
    assert_like_scipy(ts.polygamma(n, pos[:50]), ss.polygamma(n, pos[:50]), 3e-15)
    assert np.isnan(ts.polygamma(2.5, 1.0)) and np.isnan(ts.polygamma(-1, 1.0))
    with pytest.raises(NotImplementedError, match="polygamma"):
        ts.polygamma(2, x)
    for d in (1, 2, 5):
        a = np.linspace(d / 2, 100, 300)
        np.testing.assert_allclose(ts.multigammaln(a, d), ss.multigammaln(a, d), rtol=3e-15)
    assert ts.multigammaln(3.0, 2) == pytest.approx(ss.multigammaln(3.0, 2), rel=1e-15)
    with pytest.raises(ValueError, match="not met"):
        ts.multigammaln(np.array([1.0, 3.0]), 3)
    with pytest.raises(ValueError, match="dimension"):
        ts.multigammaln(3.0, 1.5)


BIG = np.concatenate([_logs(-300, 300, 60), [0.0, 0.5, 1, 2, 7.5, 9.99, 10, 10.5, 1e10, INF,
                                              NAN, -0.5, -1, -2.5, -3, -INF]])


def _scipy_betaln_error(a, b):
    """The absolute error of scipy's betaln where it subtracts lgammas (beyond 171.6)."""
    terms = sum(np.abs(ss.gammaln(v)) for v in (a, b, a + b))
    return np.where(np.isfinite(terms) & (np.maximum(np.abs(a), np.abs(b)) > 171.6),
                    4e-16 * terms, 1e-15)


def test_betaln_as_scipy():
    a, b = np.meshgrid(BIG, BIG)
    want, got = ss.betaln(a, b), ts.betaln(a, b)
    # scipy's lgamma differences and asymptotic terms overflow for huge arguments (nan, -inf
    # where betaln is finite, nan where it is -inf); ours match mpmath
    fine = ~np.isfinite(want) & ~np.isnan(got) & (np.minimum(a, b) > 1e20) & (a + b < np.inf)
    fine |= np.isnan(want) & (got == -np.inf) & (np.minimum(a, b) > 1e70)
    assert_like_scipy(got[~fine], want[~fine], 3e-15, _scipy_betaln_error(a, b)[~fine])
    assert np.isnan(ts.betaln(np.nan, 2.0)) and ts.betaln(-1.0, np.nan) == np.inf
    for x, y, mpmath in [(1e10, 1.0, -23.025850929940457),
                         (-0.5, 121547.42500762784, 7.119538935703167),
                         (1e10, 1795714494371604.2, -130983312401.75682),
                         (2.1967070907932534e87, 5.582586268862769e79, -1.0321078828691297e81),
                         (57.223676593502205, 0.2848035868435805, -0.0003254769226900158)]:
        assert float(ts.betaln(x, y)) == pytest.approx(mpmath, rel=5e-15)
    m = np.concatenate([_grid(0.01, 30, 120), _logs(-10, 2, 50), _grid(-30, 30, 120)])
    a, b = np.meshgrid(m, m)
    # scipy's Gamma ratio loses up to 5e-14 from 10 on, where ours stays within 1e-15 of mpmath
    atol = np.where(np.maximum(np.abs(a), np.abs(b)) > 10, 5e-14, 2e-15)
    assert_like_scipy(ts.betaln(a, b), ss.betaln(a, b), 2e-14, atol)
    assert_like_scipy(tg.jit(ts.betaln)(a, b), ss.betaln(a, b), 2e-14, atol + 1e-15)


@pytest.mark.parametrize("name", ["rel_entr", "kl_div"])
def test_relative_entropies_as_scipy(name):
    f, ref = getattr(ts, name), getattr(ss, name)
    a, b = np.meshgrid(BIG, BIG)
    want = ref(a, b)
    # kl_div = x log(x/y) - x + y cancels where x ~ y (scipy's formula): errors scale with its terms
    scale = np.abs(a * np.log(a / b)) + np.abs(a) + np.abs(b) if name == "kl_div" else 0.0
    assert_like_scipy(f(a, b), want, 1e-15, np.where(np.isfinite(scale), 2e-16 * scale, 0.0))
    m = _grid(0.01, 1e3, 120)
    a, b = np.meshgrid(m, m)
    want = ref(a, b)
    scale = np.abs(a * np.log(a / b)) + a + b if name == "kl_div" else 0.0
    assert_close(f(a, b), want, 1e-15, 2e-16 * scale)


def test_existing_functions_reach_scipy_values_on_ints_and_bools():
    b = np.array([True, False])
    for f in (ts.expit, ss.expit):
        np.testing.assert_array_equal(f(b), ss.expit(b.astype(np.float64)))
    assert ts.expit(np.array([1, 2])).dtype == np.float64
    np.testing.assert_array_equal(tg.jit(lambda v: ss.expit(v))(b), ss.expit(b.astype(float)))
    np.testing.assert_array_equal(ss.expit(tg.tensor(b)).numpy(), ss.expit(b.astype(float)))
    assert ts.logit(np.array([0, 1])).tolist() == [-np.inf, np.inf]


# ---- dtypes, modes, dispatch ---------------------------------------------------------------

FLOAT64_COMPUTED = ["ndtr", "log_ndtr", "ndtri", "erfinv", "gamma", "entr", "log_expit", "i0e",
                    "i1", "i1e", "betaln", "rel_entr", "kl_div"]
TWO = {"betaln", "rel_entr", "kl_div", "xlogy", "xlog1py"}
X = np.array([0.1, 0.3, 0.45, 0.7, 0.9])
Y = np.array([0.2, 1.5, 0.05, 3.0, 0.6])


def _args(name, dtype=np.float64):
    return tuple(a.astype(dtype) for a in ((X, Y) if name in TWO else (X,)))


DISPATCHED = sorted(n for n, v in SCIPY_UFUNCS.items() if isinstance(v, str))


def _all(fns, names, x, y):
    return tuple(fns(n)(*((x, y) if n in TWO else (x,))) for n in names)


def test_float32_is_the_float64_value_rounded_once():
    x32, y32 = X.astype(np.float32), Y.astype(np.float32)
    want = [w.astype(np.float32) for w in _all(lambda n: getattr(ts, n), FLOAT64_COMPUTED,
                                               x32.astype(np.float64), y32.astype(np.float64))]
    compiled = tg.jit(lambda x, y: _all(lambda n: getattr(ts, n), FLOAT64_COMPUTED, x, y))
    for got in (_all(lambda n: getattr(ts, n), FLOAT64_COMPUTED, x32, y32), compiled(x32, y32),
                [t.numpy() for t in _all(lambda n: getattr(ss, n), FLOAT64_COMPUTED,
                                         tg.tensor(x32), tg.tensor(y32))]):
        for name, g, w in zip(FLOAT64_COMPUTED, got, want):
            assert g.dtype == np.float32, name
            np.testing.assert_array_equal(g, w, err_msg=name)
    for name in FLOAT64_COMPUTED:
        f = getattr(ts, name)
        assert f(*(np.array([1, 2]),) * len(_args(name))).dtype == np.float64
        assert f(*(np.float32(0.5),) * len(_args(name))).dtype == np.float32


@pytest.mark.parametrize("name", DISPATCHED)
def test_scipy_ufuncs_dispatch_on_tensors(name):
    """scipy.special.X on eager tensors: tracegrad's values, backward = tracegrad's grad,
    which finite differences confirm."""
    f, sf = getattr(ts, name), getattr(ss, name)
    args = _args(name)
    tensors = [tg.tensor(a, requires_grad=True) for a in args]
    out = sf(*tensors)
    np.testing.assert_allclose(out.detach().numpy(), sf(*args), rtol=2e-15)
    out.sum().backward()
    g = tg.grad(lambda *a: tnp.sum(f(*a)), argnums=tuple(range(len(args))))(*args)
    for t, want in zip(tensors, g):
        np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-15)
    h = 1e-6 * np.maximum(np.abs(args[0]), 1e-3)
    fd = (sf(args[0] + h, *args[1:]) - sf(args[0] - h, *args[1:])) / (2 * h)
    np.testing.assert_allclose(g[0], fd, rtol=2e-7)


def test_scipy_ufuncs_dispatch_when_traced():
    """scipy.special.X on traced values (one program for those whose compiled values and
    gradients no other test here checks): jit, grad and compile_grad."""
    names = ["betaln", "expit", "kl_div", "logit", "ndtri", "rel_entr", "xlog1py", "xlogy"]

    def every(x, y):
        return _all(lambda n: getattr(ss, n), names, x, y)

    def loss(x, y):
        return sum(tnp.sum(v) for v in every(x, y))
    for name, got, want in zip(names, tg.jit(every)(X, Y), every(X, Y)):
        np.testing.assert_allclose(got, want, rtol=3e-15, err_msg=name)
    g = tg.grad(loss, argnums=(0, 1))(X, Y)
    _, cg = tg.compile_grad(loss, argnums=(0, 1))(X, Y)
    for got, want in zip(cg, g):
        np.testing.assert_allclose(got, want, rtol=3e-15)


def test_unsupported_scipy_ufuncs_still_refused():
    with pytest.raises(TypeError, match="zeta"):
        tg.jit(lambda v: ss.zeta(v, 2.0))(X)


# ---- gradients ------------------------------------------------------------------------------

def _grad(f, x):
    return np.asarray(tg.grad(lambda v: tnp.sum(f(v)))(x))


def _check_grad(f, x, want, rtol, atol=0.0):
    for got in (_grad(f, x), tg.compile_grad(lambda v: tnp.sum(f(v)))(x)[1][0]):
        assert_close(got, want, rtol, atol)


def test_normal_distribution_derivatives():
    x = np.linspace(-35, 8, 87)
    pdf = np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
    _check_grad(ts.ndtr, x, pdf, _tail(x))
    x = np.concatenate([np.linspace(-300, 30, 67), [-20.001, -19.999, 0.0, 1e-3]])
    t = np.maximum(-x, 10.0)
    mills = t  # pdf(-t) / ndtr(-t) = 1 / R(t), R Mills' ratio: its continued fraction
    for k in range(60, 0, -1):
        mills = t + k / mills
    want = np.where(x < -10, mills, np.exp(-x * x / 2) / np.sqrt(2 * np.pi) / ss.ndtr(x))
    _check_grad(ts.log_ndtr, x, want, np.where(x < -20, 1e-15, _tail(x)))
    p = np.concatenate([np.linspace(0.001, 0.999, 51), [1e-200, 1e-20, 0.07, 0.93, 1 - 1e-10]])
    q = ss.ndtri(p)
    _check_grad(ts.ndtri, p, np.sqrt(2 * np.pi) * np.exp(q * q / 2), 2e-14 * (1 + q * q).max())
    y = np.concatenate([np.linspace(-0.999, 0.999, 51), [1e-10, -1e-200, 1 - 1e-12]])
    z = ss.erfinv(y)
    _check_grad(ts.erfinv, y, np.sqrt(np.pi) / 2 * np.exp(z * z), 1e-14)


def test_gamma_family_derivatives():
    x = np.concatenate([np.linspace(-10.3, 170.5, 157), [0.3, 1e-5, -0.3, -0.7, 11.99, 12.01]])
    _check_grad(ts.gamma, x, ss.gamma(x) * ss.psi(x), 1e-14, 1e-14 * np.abs(ss.gamma(x)))
    x = np.concatenate([np.linspace(-9.7, 30, 71), [1e-3, 0.5]])
    _check_grad(lambda v: ts.polygamma(1, v), x, ss.polygamma(2, x), 1e-14)
    _check_grad(lambda v: ts.polygamma(0, v), x, ss.polygamma(1, x), 1e-14)
    a = np.linspace(1.6, 40, 30)
    _check_grad(lambda v: ts.multigammaln(v, 4), a, sum(ss.psi(a - j / 2) for j in range(4)),
                1e-14)
    u, v = (m.ravel() for m in np.meshgrid([0.1, 0.5, 3.0, 9.9, 10.5, 30.0, 1e3, 1e8],
                                          [0.2, 1.0, 7.0, 12.0, 400.0]))
    ga, gb = tg.grad(lambda s, t: tnp.sum(ts.betaln(s, t)), argnums=(0, 1))(u, v)
    scale = 4e-16 * (np.abs(ss.psi(u)) + np.abs(ss.psi(v)) + np.abs(ss.psi(u + v)))  # cancelling
    assert_close(ga, ss.psi(u) - ss.psi(u + v), 1e-14, scale)
    assert_close(gb, ss.psi(v) - ss.psi(u + v), 1e-14, scale)


def test_entropy_logistic_and_bessel_derivatives():
    x = np.linspace(0.01, 10, 37)
    _check_grad(ts.entr, x, -np.log(x) - 1, 1e-15)
    x = np.linspace(-700, 700, 81)
    _check_grad(ts.log_expit, x, ss.expit(-x), 1e-15)
    x = np.linspace(-40, 40, 81) + 0.01
    s = np.sign(x)
    _check_grad(ts.i1, x, ss.i0(x) - ss.i1(x) / x, 1e-14)
    _check_grad(ts.i0e, x, ss.i1e(x) - s * ss.i0e(x), 1e-13)
    _check_grad(ts.i1e, x, ss.i0e(x) - ss.i1e(x) / x - s * ss.i1e(x), 1e-13)
    a, b = (m.ravel() for m in np.meshgrid([0.1, 1.0, 3.0, 1e3], [0.2, 1.0, 5.0]))
    g = tg.grad(lambda s, t: tnp.sum(ts.rel_entr(s, t) + 2 * ts.kl_div(s, t)), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(g[0], 3 * np.log(a / b) + 1, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(g[1], -a / b + 2 * (1 - a / b), rtol=1e-14)


def test_second_derivatives():
    p = np.array([0.01, 0.3, 0.8])
    q = ss.ndtri(p)
    d2 = tg.grad(tg.grad(lambda v: ts.ndtri(v)))
    np.testing.assert_allclose([float(d2(v)) for v in p], 2 * np.pi * q * np.exp(q * q), rtol=1e-9)
    d2 = tg.grad(tg.grad(lambda v: ts.gamma(v)))
    x = 3.7
    np.testing.assert_allclose(float(d2(x)), ss.gamma(x) * (ss.psi(x) ** 2 + ss.polygamma(1, x)),
                               rtol=1e-12)


def test_edges_give_no_nan_gradient_elsewhere():
    """Branches not taken see harmless arguments: a vector with poles, zeros, infinities and
    nan has finite gradients at its ordinary entries."""
    x = np.array([0.3, 0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 0.7, -20.0, 200.0])
    for f in (ts.ndtr, ts.log_ndtr, ts.ndtri, ts.erfinv, ts.gamma, ts.entr, ts.log_expit, ts.i0e,
              ts.i1, ts.i1e, lambda v: ts.polygamma(1, v)):
        assert np.isfinite(_grad(f, x)[[0, 7]]).all()
    assert np.isfinite(_grad(ts.log_ndtr, x[x > -np.inf])).all()


# ---- linalg ---------------------------------------------------------------------------------

A4 = RNG.standard_normal((4, 4))
SPD = A4 @ A4.T + 4 * np.eye(4)


@pytest.mark.parametrize("args", [
    ([[1, 0], [0, 1]], [[3, 4, 5], [6, 7, 8]], [[7]], np.zeros((2, 0), np.int32)),
    (1.0, [2, 3], [[4, 5], [6, 7]]), (), ([],), (np.ones((2, 2, 2)), np.ones((1, 3))),
    (np.ones((2, 2), np.float32), np.ones((1, 1), np.float32))])
def test_block_diag_as_scipy(args):
    got, want = tl.block_diag(*args), sl.block_diag(*args)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_block_diag_gradients_and_tensors():
    c = RNG.standard_normal((2, 3))
    w = np.arange(20.0).reshape(4, 5)
    ga, gc = tg.grad(lambda a, b: tnp.sum(tl.block_diag(a, b) * w), argnums=(0, 1))(A4[:2, :2], c)
    np.testing.assert_array_equal(ga, w[:2, :2])
    np.testing.assert_array_equal(gc, w[2:, 2:])
    t = tg.tensor(c, requires_grad=True)
    tl.block_diag(1.0, t).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.ones((2, 3)))


def test_expm_values():
    for scale in (1e-3, 0.1, 1.0, 5.0):
        a = RNG.standard_normal((3, 5, 5)) * scale
        # scipy's own error reaches 5e-13 here; ours 5e-15 (measured against mpmath)
        want = sl.expm(a)
        np.testing.assert_allclose(tl.expm(a), want, rtol=0, atol=1e-12 * np.abs(want).max())
        np.testing.assert_allclose(tg.jit(tl.expm)(a), tl.expm(a), rtol=0,
                                   atol=1e-14 * np.abs(want).max())
    t = 2.5
    rot = tl.expm(np.array([[0.0, -t], [t, 0.0]]))
    np.testing.assert_allclose(rot, [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]],
                               rtol=2e-15, atol=1e-16)
    d = np.array([-30.0, 0.0, 2.0, 40.0])
    # scaling and squaring: the relative error grows like 2^s ulps (s = 3 here; scipy
    # exponentiates a diagonal directly)
    np.testing.assert_allclose(tl.expm(np.diag(d)), np.diag(np.exp(d)), rtol=1e-13, atol=0)
    nil = np.triu(RNG.standard_normal((4, 4)), 1)
    np.testing.assert_allclose(tl.expm(nil), np.eye(4) + nil + nil @ nil / 2 + nil @ nil @ nil / 6,
                               rtol=1e-15, atol=1e-15)
    assert tl.expm(2.0).shape == (1, 1) and float(tl.expm(2.0)[0, 0]) == np.exp(2.0)
    assert tl.expm(np.ones((2, 1, 1))).shape == (2, 1, 1)
    assert tl.expm(np.zeros((0, 0))).shape == (0, 0)
    assert tl.expm(np.eye(3, dtype=np.float32)).dtype == np.float32
    assert tl.expm(np.eye(2, dtype=int)).dtype == np.float64
    assert np.isnan(tg.jit(tl.expm)(np.eye(2) * 4e6)).all()  # over MAX_SQUARINGS, as jax's
    with pytest.raises(np.linalg.LinAlgError):
        tl.expm(np.ones((2, 3)))


def test_expm_gradient_against_frechet_and_finite_differences():
    """d/dA sum(expm(A) * W) is the Frechet derivative of exp at A.T in the direction W:
    the upper right block of expm([[A.T, W], [0, A.T]]) (what jax's expm rule computes)."""
    w = RNG.standard_normal((2, 4, 4))
    a = RNG.standard_normal((2, 4, 4)) * np.array([0.05, 4.0])[:, None, None]

    def loss(m):
        return tnp.sum(tl.expm(m) * w)
    at = np.swapaxes(a, -1, -2)
    block = np.block([[at, w], [np.zeros_like(a), at]])
    want = sl.expm(block)[:, :4, 4:]
    t = tg.tensor(a, requires_grad=True)
    loss(t).backward()
    for got in (tg.grad(loss)(a), tg.compile_grad(loss)(a)[1][0], t.grad.numpy()):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())
    h, e = 1e-6, np.zeros_like(a)
    e[1, 2, 0] = 1
    fd = (float(loss(a + h * e)) - float(loss(a - h * e))) / (2 * h)
    assert float(tg.grad(loss)(a)[1, 2, 0]) == pytest.approx(fd, rel=1e-7)


@pytest.mark.parametrize("assume_a", [None, "gen", "sym", "her", "pos", "diagonal", "tridiagonal",
                                      "upper triangular", "lower triangular", "banded"])
def test_solve_reads_what_scipy_reads(assume_a):
    m = SPD if assume_a == "pos" else A4
    for lower in (False, True):
        for transposed in (False, True):
            for rhs in (RNG.standard_normal((4, 2)), RNG.standard_normal(4)):
                if assume_a in ("sym", "her", "pos") and transposed:
                    continue
                kw = dict(lower=lower, assume_a=assume_a, transposed=transposed)
                np.testing.assert_allclose(tl.solve(m, rhs, **kw), sl.solve(m, rhs, **kw),
                                           rtol=1e-13, atol=1e-14)
    if assume_a not in ("banded", "tridiagonal", "diagonal"):
        np.testing.assert_allclose(tl.inv(m, assume_a=assume_a, lower=True),
                                   sl.inv(m, assume_a=assume_a, lower=True), rtol=1e-13, atol=1e-14)


def test_solve_batches_dtypes_and_errors():
    a = RNG.standard_normal((3, 4, 4)) + 4 * np.eye(4)
    b = RNG.standard_normal(4)
    spd = a @ np.swapaxes(a, -1, -2)
    for assume_a in (None, "sym", "upper triangular", "diagonal", "tridiagonal"):
        for rhs in (b, RNG.standard_normal((4, 2)), RNG.standard_normal((3, 4, 2))):
            np.testing.assert_allclose(tl.solve(a, rhs, assume_a=assume_a),
                                       sl.solve(a, rhs, assume_a=assume_a), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tl.solve(spd, b, assume_a="pos"), sl.solve(spd, b, assume_a="pos"),
                               rtol=1e-12)
    np.testing.assert_allclose(tg.jit(tl.solve)(a, b), sl.solve(a, b), rtol=1e-13)
    assert tl.solve(a.astype(np.float32), b.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(tl.inv(np.diag([2.0, 4.0]), assume_a="diagonal"),
                               np.diag([0.5, 0.25]))
    with pytest.raises(ValueError, match="recognized"):
        tl.solve(A4, b, assume_a="spd")
    np.testing.assert_allclose(tl.det(a), sl.det(a), rtol=1e-14)
    assert float(tl.det(np.array([[1, 2], [3, 4]]))) == pytest.approx(-2.0, rel=1e-15)


def test_solve_gradients():
    """x = S^-1 b, L = sum(x * W): dL/db = S^-T W and dL/dS = -S^-T W x^T; through
    S = M M^T + 4 I (symmetric: 'sym' and 'pos' read one triangle, whose gradient is the
    same along symmetric directions), dL/dM = (G + G^T) M."""
    b, w = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
    for assume_a in ("gen", "sym", "pos"):
        for lower in (False, True):
            def f(m, r, assume_a=assume_a, lower=lower):
                s = m @ m.T + 4 * np.eye(4) if assume_a != "gen" else m
                return tnp.sum(tl.solve(s, r, assume_a=assume_a, lower=lower) * w)
            s = A4 @ A4.T + 4 * np.eye(4) if assume_a != "gen" else A4
            x = np.linalg.solve(s, b)
            gb = np.linalg.solve(s.T, w)
            gs = -gb @ x.T
            gm = (gs + gs.T) @ A4 if assume_a != "gen" else gs
            for got, want in zip(tg.grad(f, argnums=(0, 1))(A4, b), (gm, gb)):
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_eigh_svd_qr_as_scipy():
    junk = A4 + np.triu(np.full((4, 4), 100.0), 1)  # eigh reads the lower triangle only
    for lower, a in ((True, junk), (False, junk.T)):
        w, v = tl.eigh(a, lower=lower)
        want_w, want_v = sl.eigh(a, lower=lower)
        np.testing.assert_allclose(w, want_w, rtol=1e-13)
        np.testing.assert_allclose(np.abs(v), np.abs(want_v), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(tl.eigh(a, SPD, lower=lower, eigvals_only=True),
                                   sl.eigh(a, SPD, lower=lower, eigvals_only=True), rtol=1e-13)
        w, v = tl.eigh(a, SPD, lower=lower, subset_by_index=(1, 2))
        want_w, want_v = sl.eigh(a, SPD, lower=lower, subset_by_index=(1, 2))
        np.testing.assert_allclose(w, want_w, rtol=1e-13)
        np.testing.assert_allclose(np.abs(v), np.abs(want_v), rtol=1e-12, atol=1e-14)
    with pytest.raises(NotImplementedError):
        tl.eigh(A4, subset_by_value=(0, 1))
    for m, n in ((5, 3), (3, 5), (4, 4)):
        a = RNG.standard_normal((m, n))
        for full in (True, False):
            got, want = tl.svd(a, full_matrices=full), sl.svd(a, full_matrices=full)
            assert [g.shape for g in got] == [w.shape for w in want]
            np.testing.assert_allclose(got[1], want[1], rtol=1e-14)
            np.testing.assert_allclose(np.abs(got[0]), np.abs(want[0]), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(tl.svd(a, compute_uv=False), sl.svdvals(a), rtol=1e-14)
        for mode in ("full", "economic", "r"):
            got, want = tl.qr(a, mode=mode), sl.qr(a, mode=mode)
            assert isinstance(got, tuple) and len(got) == len(want)
            for g, w in zip(got, want):
                assert g.shape == w.shape
                np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    with pytest.raises(NotImplementedError):
        tl.qr(A4, pivoting=True)


def test_decomposition_gradients_in_every_mode():
    def loss(m):
        w, v = tl.eigh(m + m.T)
        u, sv, vh = tl.svd(m)
        return tnp.sum(w * np.arange(4.0)) + tnp.sum(v ** 4) + tnp.sum(sv) + tnp.sum(tl.inv(m)) \
            + tl.det(m) + tnp.sum(tl.qr(m)[1] ** 2)
    g = tg.grad(loss)(A4)
    t = tg.tensor(A4, requires_grad=True)
    loss(t).backward()
    np.testing.assert_allclose(t.grad.numpy(), g, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(tg.compile_grad(loss)(A4)[1][0], g, rtol=1e-12, atol=1e-12)
    h, e = 1e-6, np.zeros((4, 4))
    e[1, 3] = 1
    fd = (float(loss(A4 + h * e)) - float(loss(A4 - h * e))) / (2 * h)
    assert g[1, 3] == pytest.approx(fd, rel=1e-6)
