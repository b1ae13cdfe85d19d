"""tracegrad.numpy's polynomials, interpolation and special functions
(tracer/numpy/polynomial.py) against numpy in every mode (numpy operands, eager,
traced, compiled) in float64 and float32, with numpy's dtypes; gradients against
central differences in float64 (eager, `grad` and `compile_grad`); i0's derivatives
against scipy's Bessel functions and interp's gradients against jax where installed."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad
import tracegrad.numpy as tnp
from numpy_modes import check_grad, check_modes, run
from tracegrad.tracer import tensor

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's i0 at inf, NaN

RNG = np.random.default_rng(7)
P = RNG.standard_normal(5)
X = RNG.standard_normal((2, 3))
XP = np.sort(RNG.uniform(-2.0, 2.0, 6))
FP = RNG.standard_normal(6)
# between the sample points, outside them, on them, and at the ends
XI = np.concatenate([RNG.uniform(-3.0, 3.0, 12), XP, [XP[0] - 1.0, XP[-1] + 1.0]]).reshape(4, 5)
PHASE = np.cumsum(RNG.uniform(-4.0, 4.0, (3, 9)), axis=1)
BESSEL = np.concatenate([np.linspace(-30.0, 30.0, 41), [0.0, 0.25, 0.5, -0.5, 8.0, -8.0, 7.9,
                                                        8.1, 100.0, 1e-9]])
INTS = RNG.integers(-3, 6, (3, 4))

# (id, tracegrad function, numpy reference, float arguments); ints are not converted
CASES = [
    ("polyval", tnp.polyval, np.polyval, [P, X]),
    ("polyval_2d_p", tnp.polyval, np.polyval, [X.T, X[:, 0]]),
    ("polyval_int_p", tnp.polyval, np.polyval, [np.array([2, -1, 3]), X]),
    ("polyval_empty_p", tnp.polyval, np.polyval, [np.zeros(0), X]),
    ("polyadd", tnp.polyadd, np.polyadd, [P, P[:2]]),
    ("polyadd_longer_second", tnp.polyadd, np.polyadd, [P[:3], P]),
    ("polysub", tnp.polysub, np.polysub, [P[:2], P]),
    ("polysub_same", tnp.polysub, np.polysub, [P, P[::-1]]),
    ("polymul", tnp.polymul, np.polymul, [P, P[:3]]),
    ("polymul_int", tnp.polymul, np.polymul, [np.array([1, 2]), np.array([3, -1, 4])]),
    ("polyder", tnp.polyder, np.polyder, [P]),
    ("polyder_3", lambda p: tnp.polyder(p, 3), lambda p: np.polyder(p, 3), [P]),
    ("polyder_0", lambda p: tnp.polyder(p, 0), lambda p: np.polyder(p, 0), [P]),
    ("polyder_past_degree", lambda p: tnp.polyder(p, 7), lambda p: np.polyder(p, 7), [P]),
    ("polyder_int", tnp.polyder, np.polyder, [np.array([4, 3, 2, 1])]),
    ("polyint", tnp.polyint, np.polyint, [P]),
    ("polyint_2_scalar_k", lambda p: tnp.polyint(p, 2, 1.5), lambda p: np.polyint(p, 2, 1.5),
     [P]),
    ("polyint_3_k", lambda p, k: tnp.polyint(p, 3, k), lambda p, k: np.polyint(p, 3, k),
     [P, FP[:4]]),
    ("polyint_0", lambda p: tnp.polyint(p, 0), lambda p: np.polyint(p, 0), [P]),
    ("polyint_int", tnp.polyint, np.polyint, [np.array([3, 2, 1])]),
    ("poly", tnp.poly, np.poly, [P]),
    ("poly_one_zero", tnp.poly, np.poly, [P[:1]]),
    ("poly_int", tnp.poly, np.poly, [np.array([1, -2, 3])]),
    ("interp", tnp.interp, np.interp, [XI, XP, FP]),
    ("interp_left_right", lambda x, xp, fp: tnp.interp(x, xp, fp, -5.0, 7.0),
     lambda x, xp, fp: np.interp(x, xp, fp, -5.0, 7.0), [XI, XP, FP]),
    ("interp_period", lambda x, xp, fp: tnp.interp(x, xp, fp, period=1.7),
     lambda x, xp, fp: np.interp(x, xp, fp, period=1.7), [XI, XP[::-1].copy(), FP]),
    ("interp_one_point", tnp.interp, np.interp, [XI, XP[:1], FP[:1]]),
    ("interp_repeated_points", tnp.interp, np.interp,
     [np.array([-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0]), np.array([0.0, 1.0, 1.0, 2.0]),
      np.array([0.0, 1.0, 3.0, 4.0])]),
    ("interp_infinite_fp", tnp.interp, np.interp,
     [np.array([0.0, 0.5, 1.0, 1.5, 2.0]), np.array([0.0, 1.0, 2.0]),
      np.array([np.inf, np.inf, 1.0])]),
    ("interp_scalar_x", tnp.interp, np.interp, [np.float64(0.3), XP, FP]),
    ("interp_int_x", tnp.interp, np.interp, [INTS, XP, FP]),
    ("unwrap", tnp.unwrap, np.unwrap, [PHASE]),
    ("unwrap_axis0", lambda p: tnp.unwrap(p, axis=0), lambda p: np.unwrap(p, axis=0), [PHASE]),
    ("unwrap_discont", lambda p: tnp.unwrap(p, discont=4.0),
     lambda p: np.unwrap(p, discont=4.0), [PHASE]),
    ("unwrap_period", lambda p: tnp.unwrap(p, period=3.0), lambda p: np.unwrap(p, period=3.0),
     [PHASE]),
    ("unwrap_half_period_jumps", lambda p: tnp.unwrap(p, period=4.0),
     lambda p: np.unwrap(p, period=4.0), [np.array([0.0, 2.0, 0.0, -2.0, 1.0, 5.0])]),
    ("unwrap_int_period", lambda p: tnp.unwrap(p, period=6), lambda p: np.unwrap(p, period=6),
     [np.array([0, 4, 8, 3, -7, 12, 15])]),
    ("unwrap_int", tnp.unwrap, np.unwrap, [INTS]),
    ("unwrap_one", tnp.unwrap, np.unwrap, [PHASE[:, :1]]),
    ("i0", tnp.i0, np.i0, [BESSEL]),
    ("i0_special", tnp.i0, np.i0, [np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 710.0])]),
    ("i0_int", tnp.i0, np.i0, [INTS]),
    ("isin", tnp.isin, np.isin, [INTS, np.array([1, 3, 9])]),
    ("isin_invert", lambda e, t: tnp.isin(e, t, invert=True),
     lambda e, t: np.isin(e, t, invert=True), [INTS, np.array([[1, 3], [9, -3]])]),
    ("isin_floats_nan", tnp.isin, np.isin,
     [np.array([1.0, np.nan, -0.0, 2.5, 7.0]), np.array([np.nan, 0.0, 7.0, 2.5])]),
    ("isin_mixed", tnp.isin, np.isin, [INTS * 0.5, np.array([1, 2])]),
    ("isin_scalar", tnp.isin, np.isin, [np.float64(2.5), X]),
    ("isin_bool", tnp.isin, np.isin, [INTS > 2, np.array([True])]),
    ("isin_empty", tnp.isin, np.isin, [INTS, np.zeros(0, np.int64)]),
    ("histogram_bin_edges", tnp.histogram_bin_edges, np.histogram_bin_edges, [X]),
    ("histogram_bin_edges_bins", lambda a: tnp.histogram_bin_edges(a, 4),
     lambda a: np.histogram_bin_edges(a, 4), [X]),
    ("histogram_bin_edges_range", lambda a: tnp.histogram_bin_edges(a, 3, (-1.0, 2.0)),
     lambda a: np.histogram_bin_edges(a, 3, (-1.0, 2.0)), [X]),
    ("histogram_bin_edges_equal", lambda a: tnp.histogram_bin_edges(a, 4),
     lambda a: np.histogram_bin_edges(a, 4), [np.full(3, 2.0)]),
    ("histogram_bin_edges_edges", lambda a: tnp.histogram_bin_edges(a, [-1.0, 0.0, 2.0]),
     lambda a: np.histogram_bin_edges(a, [-1.0, 0.0, 2.0]), [X]),
    ("histogram_bin_edges_int", lambda a: tnp.histogram_bin_edges(a, 5),
     lambda a: np.histogram_bin_edges(a, 5), [INTS]),
]


def _cast(args, dtype):
    return [a.astype(dtype) if np.asarray(a).dtype == np.float64 else a for a in args]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, fn, ref, args", CASES, ids=[c[0] for c in CASES])
def test_values_match_numpy_in_every_mode(name, fn, ref, args, dtype):
    """Values, shapes and numpy's dtypes (float32 stays float32 where numpy's does)."""
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    check_modes(fn, ref, _cast(args, dtype), rtol=rtol, atol=1e-300)


# ---- gradients ----------------------------------------------------------------------------------

X_OFF = np.array([[-2.5, -1.0, 0.1], [0.7, 1.3, 2.9]])  # no sample point within 1e-3 of these
XP_G = np.array([-2.0, -0.5, 0.4, 1.0, 2.2])
FP_G = np.array([0.3, -1.2, 0.8, 2.0, -0.4])

# (id, function, arguments, argnums)
GRADS = [
    ("polyval", tnp.polyval, [P, X], (0, 1)),
    ("polyval_2d_p", tnp.polyval, [X.T, X[:, 0]], (0, 1)),
    ("polyadd", tnp.polyadd, [P, P[:2]], (0, 1)),
    ("polysub", tnp.polysub, [P[:3], P], (0, 1)),
    ("polymul", tnp.polymul, [P, P[:3]], (0, 1)),
    ("polyder_2", lambda p: tnp.polyder(p, 2), [P], (0,)),
    ("polyint_2_k", lambda p, k: tnp.polyint(p, 2, k), [P, FP[:2]], (0, 1)),
    ("poly", tnp.poly, [P], (0,)),
    ("interp", tnp.interp, [X_OFF, XP_G, FP_G], (0, 1, 2)),
    ("interp_left_right", lambda x, lo, hi: tnp.interp(x, XP_G, FP_G, lo, hi),
     [X_OFF, np.float64(-3.0), np.float64(4.0)], (0, 1, 2)),
    ("interp_period", lambda x, xp, fp: tnp.interp(x, xp, fp, period=2.3),
     [X_OFF, XP_G[::-1].copy(), FP_G], (0, 1, 2)),
    ("unwrap", lambda p: tnp.unwrap(p, axis=0), [PHASE], (0,)),
    # moderate sizes: a large i0 in the sum would swamp the differences' rounding
    ("i0", tnp.i0, [np.array([-8.5, -3.0, -0.3, 0.05, 0.45, 0.6, 2.0, 7.5, 9.0])], (0,)),
]


@pytest.mark.parametrize("name, fn, args, argnums", GRADS, ids=[g[0] for g in GRADS])
def test_gradients_match_finite_differences(name, fn, args, argnums):
    for argnum in argnums:
        check_grad(fn, args, argnum=argnum, rtol=1e-6, atol=1e-7)


def test_unwrap_gradient_is_the_identity():
    g = tracegrad.grad(lambda p: tnp.sum(tnp.unwrap(p) * PHASE))(PHASE)
    np.testing.assert_allclose(g, PHASE, rtol=1e-15)


def test_interp_gradient_at_the_sample_points_is_the_slope_to_the_right():
    """As jax: x at an interior sample point differentiates along the next segment, at
    the last point along the last one; the values stay NumPy's (exactly fp)."""
    slopes = np.diff(FP_G) / np.diff(XP_G)
    g = tracegrad.grad(lambda x: tnp.sum(tnp.interp(x, XP_G, FP_G)))(XP_G)
    np.testing.assert_allclose(g, np.append(slopes, slopes[-1]), rtol=1e-14)
    np.testing.assert_array_equal(run(lambda x: tnp.interp(x, XP_G, FP_G), [XP_G], "jit"), FP_G)


def test_interp_nan_gives_nan():
    for mode in ("eager", "traced", "jit"):
        got = run(lambda x: tnp.interp(x, XP, FP), [np.array([np.nan, 0.0])], mode)
        assert np.isnan(got[0]) and got[1] == np.interp(0.0, XP, FP), mode


def test_interp_gradients_match_jax():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    f = lambda x, xp, fp: jnp.sum(jnp.interp(x, xp, fp) * X_OFF)  # noqa: E731
    with jax.enable_x64(True):
        want = jax.grad(f, argnums=(0, 1, 2))(X_OFF, XP_G, FP_G)
    ours = lambda x, xp, fp: tnp.sum(tnp.interp(x, xp, fp) * X_OFF)  # noqa: E731
    got = tracegrad.compile_grad(ours, argnums=(0, 1, 2))(X_OFF, XP_G, FP_G)[1]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-12, atol=1e-14)


def test_i0_derivatives_are_the_bessel_functions():
    """i0' = i1 and i0'' = (i0 + i2) / 2, to about 1e-14 relative (scipy's Cephes)."""
    special = pytest.importorskip("scipy.special")
    x = np.concatenate([-np.geomspace(1e-8, 700.0, 60), np.geomspace(1e-8, 700.0, 60)])
    d1 = lambda a: tnp.sum(tnp.i0(a))  # noqa: E731
    for g in (tracegrad.grad(d1)(x), tracegrad.compile_grad(d1, argnums=0)(x)[1]):
        np.testing.assert_allclose(g, special.i1(x), rtol=1e-14)
    d2 = tracegrad.grad(lambda a: tnp.sum(tracegrad.grad(d1)(a)))(x)
    np.testing.assert_allclose(d2, (special.i0(x) + special.iv(2, x)) / 2, rtol=1e-13)
    np.testing.assert_array_equal(tracegrad.grad(d1)(np.array([0.0, -0.0])), [0.0, 0.0])


def test_histogram_bin_edges_differentiate_through_the_extremes():
    """As jax: edge k is min + k (max - min) / bins; its gradient goes to the argmin and
    the argmax (and nowhere with a static range)."""
    check_grad(lambda a: tnp.histogram_bin_edges(a, 4), [X])
    w = np.arange(5.0)
    g = tracegrad.grad(lambda a: tnp.sum(tnp.histogram_bin_edges(a, 4) * w))(X)
    want = np.zeros_like(X)
    want.flat[np.argmin(X)], want.flat[np.argmax(X)] = np.sum(w * (1 - w / 4)), np.sum(w * w / 4)
    np.testing.assert_allclose(g, want, rtol=1e-14)
    g = tracegrad.grad(lambda a: tnp.sum(tnp.histogram_bin_edges(a, 4, (0.0, 1.0))))(X)
    np.testing.assert_array_equal(g, np.zeros_like(X))
    np.testing.assert_array_equal(run(lambda a: tnp.histogram_bin_edges(a, "auto"), [X], "numpy"),
                                  np.histogram_bin_edges(X, "auto"))
    np.testing.assert_array_equal(run(lambda a: tnp.histogram_bin_edges(a, 2), [X[:0]], "jit"),
                                  [0.0, 0.5, 1.0])


def test_isin_has_no_gradient():
    t = tensor(X, requires_grad=True)
    r = tnp.isin(t, X[0])
    assert r.dtype == np.bool_ and r.grad_fn is None
    np.testing.assert_array_equal(r.data, np.isin(X, X[0]))


def test_numpy_functions_dispatch_on_tensors():
    t, p = tensor(X), tensor(P)
    pairs = [(np.polyval(p, t), np.polyval(P, X)), (np.polyadd(p, p[:2]), np.polyadd(P, P[:2])),
             (np.polysub(p, p), np.polysub(P, P)), (np.polymul(p, p), np.polymul(P, P)),
             (np.polyder(p), np.polyder(P)), (np.polyint(p), np.polyint(P)),
             (np.poly(p), np.poly(P)), (np.interp(t, XP, FP), np.interp(X, XP, FP)),
             (np.unwrap(tensor(PHASE)), np.unwrap(PHASE)), (np.i0(t), np.i0(X)),
             (np.isin(t, X[0]), np.isin(X, X[0])),
             (np.histogram_bin_edges(t, 3), np.histogram_bin_edges(X, 3))]
    for got, want in pairs:
        np.testing.assert_allclose(np.asarray(got.data), want, rtol=1e-14)

    def f(x):  # plain numpy code, traced
        return np.polyval(np.polyder(x), np.i0(x[:2]))
    np.testing.assert_allclose(tracegrad.jit(f)(P), f(P), rtol=1e-13)


def test_eager_grad_and_jit_agree_on_a_composite():
    def f(p, x):
        q = tnp.polymul(tnp.polyint(p, k=1.0), tnp.poly(p[:2]))
        return tnp.sum(tnp.interp(tnp.polyval(q, x), XP_G, FP_G) * tnp.i0(x))
    want = f(P, X_OFF * 0.1)
    assert run(f, [P, X_OFF * 0.1], "jit") == pytest.approx(want, rel=1e-13)
    g_eager = tracegrad.grad(f, argnums=(0, 1))(P, X_OFF * 0.1)
    g_comp = tracegrad.compile_grad(f, argnums=(0, 1))(P, X_OFF * 0.1)[1]
    for a, b in zip(g_eager, g_comp):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: tnp.polyder(P, -1), ValueError, "derivative must be positive"),
    (lambda: tnp.polyint(P, -1), ValueError, "integral must be positive"),
    (lambda: tnp.polyint(P, 3, [1.0, 2.0]), ValueError, "k must be"),
    (lambda: tnp.polyval(np.float64(1.0), X), TypeError, "rank >= 1"),
    (lambda: tnp.poly(np.eye(2)), NotImplementedError, "eigenvalues"),
    (lambda: tnp.poly(np.ones((2, 3))), ValueError, "1d or non-empty square"),
    (lambda: tnp.interp(X, XP, FP[:3]), ValueError, "same length"),
    (lambda: tnp.interp(X, X, X), ValueError, "1-D"),
    (lambda: tnp.interp(X, XP[:0], FP[:0]), ValueError, "empty"),
    (lambda: tnp.interp(X, XP, FP, period=0.0), ValueError, "non-zero"),
    (lambda: tnp.isin(X, X, kind="hash"), ValueError, "Invalid kind"),
    (lambda: tnp.unwrap(np.float64(1.0)), ValueError, "one-dimensional"),
    (lambda: tnp.unwrap(PHASE, axis=2), np.exceptions.AxisError, "axis"),
    (lambda: tracegrad.jit(lambda x: tnp.histogram_bin_edges(x, "auto"))(X),
     NotImplementedError, "concrete"),
    (lambda: tnp.histogram_bin_edges(X, 0), ValueError, "positive"),
    (lambda: tnp.histogram_bin_edges(tensor(X), 0), ValueError, "positive"),
])
def test_bad_input_raises(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_poly_of_no_zeros_is_one():
    assert tnp.poly(np.zeros(0)) == np.poly(np.zeros(0)) == 1.0


def test_docstring_examples_run():
    """The family modules' examples are not collected by test_doctests (it tests packages)."""
    import doctest

    from tracegrad.tracer.numpy import polynomial
    result = doctest.testmod(polynomial, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 10
