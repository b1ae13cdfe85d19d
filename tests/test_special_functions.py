"""erf and erfc: one primitive each, in every mode (eager tensors, traced, compiled) and
every spelling (tracegrad.numpy, tracegrad.scipy.special, scipy.special's own ufuncs,
Tensor methods, the static graph), with their derivative 2/sqrt(pi) exp(-x^2)."""
import math

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad.scipy import special

ERF = np.frompyfunc(math.erf, 1, 1)
ERFC = np.frompyfunc(math.erfc, 1, 1)
X = np.array([-30.0, -5.5, -2.0, -0.7, -1e-300, -0.0, 0.0, 1e-8, 0.3, 0.4999, 0.5, 1.3, 2.0,
              3.7, 6.5, 12.0, 26.9, 27.5, np.inf, -np.inf])


def _libm(f, x):
    return np.asarray(f(np.asarray(x, np.float64)), np.float64)


def _ulps(got, want):
    scale = np.spacing(np.maximum(np.abs(want), np.finfo(np.float64).tiny))
    return np.abs(got - want) / scale


@pytest.mark.parametrize("name, ref", [("erf", ERF), ("erfc", ERFC)])
def test_compiled_values_are_within_the_bound_of_libms(name, ref):
    f = tg.jit(getattr(tnp, name))
    got, want = f(X), _libm(ref, X)
    finite = np.isfinite(want) & (want != 0)
    assert _ulps(got[finite], want[finite]).max() <= 5.0  # mathlib's bound + libm's own
    np.testing.assert_array_equal(got[~finite], want[~finite])
    assert np.isnan(f(np.array([np.nan]))[0])
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))  # erf(-0.0) = -0.0


@pytest.mark.parametrize("name, ref", [("erf", ERF), ("erfc", ERFC)])
def test_eager_values_and_float32_rounds_once(name, ref):
    """Small eager arrays are libm's values; from 16 elements eager arrays run the compiled
    kernel (tracegrad/eager.py), within its bound; float32 is the float64 value rounded."""
    f = getattr(tnp, name)
    x = np.linspace(-4, 4, 41)
    np.testing.assert_array_equal(f(x[:9]), _libm(ref, x[:9]))
    np.testing.assert_array_equal(f(x), tg.jit(f)(x))
    assert _ulps(f(x), _libm(ref, x)).max() <= 5.0
    x32 = x.astype(np.float32)
    for out in (f(x32), f(x32[:9]), tg.jit(f)(x32)):
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, _libm(ref, x32[:out.size]).astype(np.float32))


def test_derivatives_are_the_gaussian_in_every_mode():
    x = np.linspace(-3, 3, 13)
    d = 2 / np.sqrt(np.pi) * np.exp(-x * x)
    np.testing.assert_allclose(tg.grad(lambda v: np.sum(tnp.erf(v)))(x), d, rtol=1e-15)
    value, (g,) = tg.compile_grad(lambda v: np.sum(special.erfc(v) * v))(x)
    np.testing.assert_allclose(g, _libm(ERFC, x) - x * d, rtol=1e-13, atol=1e-16)
    t = tg.tensor(x, requires_grad=True)
    (t.erf() - t.erfc()).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 * d, rtol=1e-15)
    second = tg.grad(tg.grad(lambda v: tnp.erf(v)))
    np.testing.assert_allclose(second(np.array(0.7)), -2 * 0.7 * 2 / np.sqrt(np.pi) *
                               np.exp(-0.49), rtol=1e-14)


def test_scipy_special_ufuncs_work_on_tensors_and_traced_values():
    ss = pytest.importorskip("scipy.special")
    x = np.array([-1.5, 0.2, 2.5])
    f = tg.compile_grad(lambda v: np.sum(ss.erf(v) + ss.erfc(v) * ss.expit(v)))
    value, (g,) = f(x)
    np.testing.assert_allclose(value, np.sum(ss.erf(x) + ss.erfc(x) * ss.expit(x)), rtol=1e-14)
    fd = [(f(x + h)[0] - f(x - h)[0]) / 2e-6 for h in np.eye(3) * 1e-6]
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)
    t = tg.tensor(x, requires_grad=True)
    ss.erf(t).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 / np.sqrt(np.pi) * np.exp(-x * x), rtol=1e-15)
    with pytest.raises(TypeError, match="zeta"):  # a scipy ufunc without an implementation
        tg.jit(lambda v: ss.zeta(v, 2.0))(x)


def test_exact_gelu_matches_torchs():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(64)

    def gelu(v):
        return np.sum(0.5 * v * (1 + special.erf(v / np.sqrt(2.0))) * v)

    value, (g,) = tg.compile_grad(gelu)(x)
    tx = torch.tensor(x, requires_grad=True)
    (torch.nn.functional.gelu(tx) * tx).sum().backward()
    np.testing.assert_allclose(value, float((torch.nn.functional.gelu(tx) * tx).sum().detach()), rtol=1e-14)
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-13)


def test_in_place_methods_vmap_and_the_static_graph():
    x = np.array([0.1, -0.4, 1.2])
    t = tg.tensor(x)
    t.erfc_()
    np.testing.assert_array_equal(t.numpy(), _libm(ERFC, x))
    np.testing.assert_allclose(tg.vmap(tnp.erf)(x.reshape(3, 1))[:, 0], _libm(ERF, x), rtol=1e-15)
    import tracegrad.static as tf
    tf.reset_default_graph()
    p = tf.placeholder(tf.float64, (3,))
    y = tf.reduce_sum(tf.erf(p) * tf.erfc(p))
    (dp,) = tf.gradients(y, [p])
    with tf.Session() as sess:
        value, grad = sess.run([y, dp], {p: x})
    np.testing.assert_allclose(value, np.sum(_libm(ERF, x) * _libm(ERFC, x)), rtol=1e-14)
    d = 2 / np.sqrt(np.pi) * np.exp(-x * x)
    np.testing.assert_allclose(grad, d * _libm(ERFC, x) - _libm(ERF, x) * d, rtol=1e-13)


# ---- lgamma, digamma -------------------------------------------------------------------------

def test_lgamma_and_digamma_in_every_mode_against_scipy():
    ss = pytest.importorskip("scipy.special")
    x = np.array([1e-8, 0.3, 1.0, 1.4616, 2.0, 3.7, 12.5, 150.0, -0.3, -2.5, -7.25])
    for f, ref in ((tnp.lgamma, ss.gammaln), (tnp.digamma, ss.psi)):
        want = ref(x)
        for got in (f(x), tg.jit(f)(x), f(x[:1]), ref(tg.tensor(x)).numpy()):
            np.testing.assert_allclose(got, want[:got.size], rtol=4e-15, atol=4e-16)
    np.testing.assert_allclose(tg.grad(lambda v: np.sum(special.gammaln(v)))(x), ss.psi(x),
                               rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(tg.grad(lambda v: np.sum(ss.psi(v)))(x), ss.polygamma(1, x),
                               rtol=1e-13)
    third = tg.grad(tg.grad(lambda v: tnp.digamma(v)))(np.array(1.3))
    np.testing.assert_allclose(third, ss.polygamma(2, 1.3), rtol=1e-12)


def test_poles_and_infinities_follow_scipy_and_c99():
    x = np.array([0.0, -0.0, -1.0, -3.0, np.inf, -np.inf, np.nan])
    with np.errstate(all="ignore"):
        for f in (tnp.lgamma, tg.jit(tnp.lgamma)):
            np.testing.assert_array_equal(f(x), [np.inf] * 6 + [np.nan])   # C99 (and torch)
        for f in (tnp.digamma, tg.jit(tnp.digamma)):
            np.testing.assert_array_equal(f(x), [-np.inf, np.inf, np.nan, np.nan, np.inf,
                                                 np.nan, np.nan])


def test_gamma_family_log_likelihood_matches_torch():
    """A Poisson and a Gamma log-likelihood and their gradients, compiled, against torch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    k = rng.poisson(3.0, 50).astype(np.float64)
    y = rng.gamma(2.0, 1.5, 50)

    def loglik(log_rate, log_shape, k, y):
        shape = np.exp(log_shape)
        poisson = k * log_rate - np.exp(log_rate) - special.gammaln(k + 1)
        gamma_ = (shape - 1) * np.log(y) - y - special.gammaln(shape)
        return np.sum(poisson) + np.sum(gamma_)

    value, (g_rate, g_shape) = tg.compile_grad(loglik, argnums=(0, 1))(
        np.array(0.7), np.array(0.4), k, y)
    tr, ts = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.7, 0.4))
    tk, ty = torch.tensor(k), torch.tensor(y)
    shape = ts.exp()
    out = (tk * tr - tr.exp() - torch.lgamma(tk + 1)).sum() + \
        ((shape - 1) * ty.log() - ty - torch.lgamma(shape)).sum()
    out.backward()
    np.testing.assert_allclose(value, out.item(), rtol=1e-14)
    np.testing.assert_allclose([g_rate, g_shape], [tr.grad.item(), ts.grad.item()], rtol=1e-13)
    t = tg.tensor(y, requires_grad=True)
    t.lgamma().sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), torch.digamma(ty).numpy(), rtol=1e-14)


def test_second_derivative_of_digamma_at_the_integers():
    """trigamma's unselected reflection branch sees a harmless argument: its infinity at
    the integers made digamma's second derivative nan there."""
    ss = pytest.importorskip("scipy.special")
    x = np.array([1.0, 4.0, 20.0, 4.5, -2.5, -0.3])
    d1 = tg.grad(lambda z: np.sum(tnp.digamma(z)))
    np.testing.assert_allclose(tg.grad(lambda z: np.sum(d1(z)))(x), ss.polygamma(2, x),
                               rtol=1e-12)
    d2 = tg.grad(lambda z: np.sum(tg.grad(lambda w: np.sum(special.gammaln(w)))(z)))
    np.testing.assert_allclose(d2(x), ss.polygamma(1, x), rtol=1e-13)
