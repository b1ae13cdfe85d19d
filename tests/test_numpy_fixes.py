"""Regression tests of NumPy-compatibility fixes in `tracegrad.numpy`: each compares
with NumPy in every mode that applies (numpy operands, eager tensors, traced, jit)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tracegrad
import tracegrad.numpy as tnp
from numpy_modes import check_grad, check_modes, run
from tracegrad.tracer import tensor

X = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
CONCRETE = ("numpy", "eager")


# ---- digitize: decreasing bins that are tensors or traced values ----------------------------

@pytest.mark.parametrize("bins", [[1.0, 0.0, -1.0], [0.0, 1.0], [2.0, 2.0, 2.0], [3.0, 1.0],
                                  [1.0]])
@pytest.mark.parametrize("right", [False, True])
def test_digitize_takes_the_direction_of_tensor_and_traced_bins(bins, right):
    check_modes(lambda x, b: tnp.digitize(x, b, right=right),
                lambda x, b: np.digitize(x, b, right=right), [X, np.array(bins)])


def test_digitize_of_non_monotonic_tensor_bins_raises_as_numpy():
    with pytest.raises(ValueError, match="monotonically"):
        np.digitize(tensor(X), tensor(np.array([0.0, 2.0, 1.0])))


def test_digitize_of_non_monotonic_traced_bins_follows_the_end_bins():
    # no error (traced code cannot raise on data): the searchsorted indices of the direction
    # of the end bins (what a binary search gives on unsorted bins is unspecified)
    for bins, up in (([0.0, 2.0, 1.0], True), ([2.0, 0.0, 1.0], False)):
        bins = np.array(bins)
        got = tracegrad.jit(np.digitize)(X, bins)
        if up:
            want = tracegrad.jit(lambda x, b: tnp.searchsorted(b, x, "right"))(X, bins)
        else:
            want = tracegrad.jit(lambda x, b: 3 - tnp.searchsorted(b[::-1], x, "right"))(X, bins)
        np.testing.assert_array_equal(got, want)


# ---- gradient: the axes in the user's order ---------------------------------------------------

@pytest.mark.parametrize("axis, spacing", [((1, 0), (1.0, 2.0)), ((1, 0), ()), ((-1, 0), (3.0,)),
                                           ((2, 0, 1), (np.arange(4.0) ** 2, 0.5, 2.0))])
def test_gradient_keeps_the_order_of_axis(axis, spacing):
    f = np.arange(24.0).reshape(2, 3, 4) ** 2
    check_modes(lambda f: tnp.gradient(f, *spacing, axis=axis),
                lambda f: np.gradient(f, *spacing, axis=axis), [f])


# ---- rollaxis: a negative start counts from n (not n + 1) -------------------------------------

@pytest.mark.parametrize("axis", range(-3, 3))
@pytest.mark.parametrize("start", [-3, -2, -1, 0, 2, 3])
def test_rollaxis_takes_numpys_negative_start(axis, start):
    a = np.arange(24.0).reshape(2, 3, 4)
    check_modes(lambda a: tnp.rollaxis(a, axis, start), lambda a: np.rollaxis(a, axis, start),
                [a])


# ---- linalg.matrix_power of int and bool matrices --------------------------------------------

@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
def test_matrix_power_of_int_and_bool_matrices_keeps_the_dtype(dtype, n):
    a = np.array([[[1, 2], [3, 0]], [[0, 1], [1, 1]]]).astype(dtype)
    check_modes(lambda a: tnp.linalg.matrix_power(a, n),
                lambda a: np.linalg.matrix_power(a, n), [a])


# ---- nanvar / nanstd: ddof at least the count gives NaN ---------------------------------------

@pytest.mark.parametrize("fn", ["nanvar", "nanstd"])
@pytest.mark.parametrize("kw", [dict(axis=0, ddof=2), dict(axis=0, ddof=3), dict(ddof=5),
                                dict(axis=1, ddof=2, keepdims=True), dict(axis=0, correction=2)])
def test_nanvar_with_ddof_past_the_count_is_nan(fn, kw):
    a = np.array([[np.nan, 1.0], [3.0, 2.0], [1.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for dtype in (np.float64, np.float32):
            check_modes(lambda a: getattr(tnp, fn)(a, **kw),
                        lambda a: getattr(np, fn)(a, **kw), [a.astype(dtype)], rtol=1e-6)


# ---- compress(size=, fill_value=), the messages of compress and extract ----------------------

def _compress_ref(cond, a, axis, size, fill):
    kept = np.compress(cond, a, axis=axis)
    ax = 0 if axis is None else axis
    kept = np.take(kept, np.arange(min(size, kept.shape[ax])), axis=ax)
    pad = [(0, 0)] * kept.ndim
    pad[ax] = (0, size - kept.shape[ax])
    return np.pad(kept, pad, constant_values=fill)


@pytest.mark.parametrize("axis, size, fill", [(None, 2, 0), (None, 5, -1), (0, 3, -1),
                                              (1, 3, 7), (1, 1, 0)])
def test_compress_with_a_static_size(axis, size, fill):
    c = np.array([0, 3, 1, 4])
    a = np.arange(16).reshape(4, 4)
    check_modes(lambda c, a: tnp.compress(c > 1, a, axis=axis, size=size, fill_value=fill),
                lambda c, a: _compress_ref(c > 1, a, axis, size, fill), [c, a])


def test_compress_with_a_size_differentiates():
    a = np.random.default_rng(0).standard_normal((3, 4))
    check_grad(lambda a: tnp.compress(np.array([True, False, True]), a, axis=0, size=3,
                                      fill_value=0.0), [a])


def test_compress_and_extract_messages_name_the_function_and_its_size():
    c = np.array([0, 3, 1, 3, 0, 5])
    with pytest.raises(TypeError, match=r"compress: .*tracegrad\.numpy\.compress\(\.\.\., size=N\)"):
        tracegrad.jit(lambda c: np.compress(c > 1, c))(c)
    with pytest.raises(TypeError, match=r"^extract: .*tracegrad\.numpy\.extract\(\.\.\., size=N\)"):
        tracegrad.jit(lambda c: np.extract(c > 1, c))(c)
    got = tracegrad.jit(lambda c: tnp.extract(c > 1, c, size=4, fill_value=-1))(c)
    np.testing.assert_array_equal(got, [3, 3, 5, -1])


# ---- histogram of bools and with a bin estimator ---------------------------------------------

@pytest.mark.filterwarnings("ignore:Converting input from bool")
@pytest.mark.parametrize("bins", [2, 3, np.array([0.0, 0.3, 1.0])])
def test_histogram_of_bools(bins):
    check_modes(lambda b: tnp.histogram(b, bins=bins), lambda b: np.histogram(b, bins=bins),
                [np.array([True, False, True, True])])


@pytest.mark.parametrize("bins", ["auto", "fd", "sturges", "sqrt"])
def test_histogram_with_a_bin_estimator_on_concrete_data(bins):
    d = np.array([0.0, 0.5, 1.0, 2.0, 2.5, 7.0])
    check_modes(lambda d: tnp.histogram(d, bins=bins), lambda d: np.histogram(d, bins=bins),
                [d], modes=CONCRETE)
    check_modes(lambda d: tnp.histogram_bin_edges(d, bins=bins),
                lambda d: np.histogram_bin_edges(d, bins=bins), [d], modes=CONCRETE)
    with pytest.raises(NotImplementedError, match="histogram: bins=.*concrete"):
        tracegrad.jit(lambda d: tnp.histogram(d, bins=bins))(d)


# ---- small ones: vdot, convolve, sign, *_like(shape=), average ------------------------------

@pytest.mark.parametrize("a", [np.array([1, 2, 3], np.int32), np.array([True, False, True]),
                               np.array([False, False]), np.arange(4.0, dtype=np.float32)])
def test_vdot_keeps_numpys_dtype(a):
    check_modes(tnp.vdot, np.vdot, [a, a[::-1].copy()], rtol=1e-6)


def test_convolve_takes_a_0d_operand_as_length_one():
    d = np.array([0.0, 0.5, 1.0, 2.0])
    check_modes(tnp.convolve, np.convolve, [d, np.float64(2.0)])
    check_modes(tnp.convolve, np.convolve, [np.float64(3.0), d])
    with pytest.raises(ValueError):  # NumPy's correlate does not
        tnp.correlate(tensor(d), 2.0)


@pytest.mark.parametrize("mode", ["numpy", "eager", "traced", "jit"])
def test_sign_of_bools_raises_as_numpy(mode):
    with pytest.raises(TypeError, match="sign"):
        run(tnp.sign, [np.array([True, False])], mode)


@pytest.mark.parametrize("name, extra", [("zeros_like", ()), ("ones_like", ()),
                                         ("full_like", (3.0,)), ("empty_like", ())])
@pytest.mark.parametrize("shape", [(2,), 3, (2, 1, 2), ()])
def test_like_constructors_take_shape(name, extra, shape):
    def ref(a):
        r = getattr(np, name)(a, *extra, shape=shape)
        return np.zeros_like(r) if name == "empty_like" else r
    check_modes(lambda a: getattr(tnp, name)(a, *extra, shape=shape), ref, [np.arange(3.0)])
    got = getattr(np, name)(tensor(np.arange(3)), *extra, shape=shape, dtype=np.float32)
    assert got.shape == np.shape(np.zeros(shape)) and got.dtype == np.float32


def test_average_of_weights_summing_to_zero_raises_on_concrete_data():
    d = np.array([[0.0, 0.5], [1.0, 2.0]])
    w = np.array([[1.0, 1.0], [-1.0, -1.0]])
    for mode in CONCRETE:
        with pytest.raises(ZeroDivisionError, match="Weights sum to zero"):
            run(lambda a, w: tnp.average(a, weights=w), [d, w], mode)
        with pytest.raises(ZeroDivisionError, match="Weights sum to zero"):
            run(lambda a, w: tnp.average(a, axis=0, weights=w), [d, w], mode)
    check_modes(lambda a, w: tnp.average(a, axis=1, weights=w),
                lambda a, w: np.average(a, axis=1, weights=w), [d, w])


# ---- polymul: NumPy trims leading zeros (concrete factors only) ------------------------------

POLYS = [([0.0, 1.0, 2.0], [1.0, -1.0]), ([0.0, 0.0], [1.0, 2.0]), ([0, 0, 3], [0, 2]),
         ([1.0, 2.0], [0.0, 0.0, 1.0])]


@pytest.mark.parametrize("a1, a2", POLYS)
def test_polymul_trims_leading_zeros_of_concrete_factors(a1, a2):
    a1, a2 = np.array(a1), np.array(a2)
    check_modes(tnp.polymul, np.polymul, [a1, a2], modes=CONCRETE)
    untrimmed = np.convolve(a1, a2)  # traced factors keep their leading zeros
    check_modes(tnp.polymul, lambda a1, a2: untrimmed, [a1, a2], modes=("traced", "jit"))
    check_modes(lambda a1, a2: tnp.polymul(a1, a2, trim_leading_zeros=False),
                lambda a1, a2: untrimmed, [a1, a2])


def test_polymul_trim_leading_zeros_true_needs_concrete_factors():
    a1, a2 = np.array([0.0, 1.0]), np.array([1.0, 1.0])
    got = tnp.polymul(tensor(a1), tensor(a2), trim_leading_zeros=True)
    np.testing.assert_array_equal(got.numpy(), np.polymul(a1, a2))
    with pytest.raises(TypeError, match="trim_leading_zeros=True needs concrete"):
        tracegrad.jit(lambda a, b: tnp.polymul(a, b, trim_leading_zeros=True))(a1, a2)


@pytest.mark.parametrize("name", ["sum", "prod", "max", "min", "mean", "var", "std", "nanmean",
                                  "nanvar", "nanstd", "nansum", "argmax", "cumsum", "any",
                                  "ptp", "median", "average", "count_nonzero"])
@pytest.mark.parametrize("axis", [0, -1, 1, (0,), (-1,), (), None])
def test_reductions_of_a_0d_array_take_numpys_axes(name, axis):
    """NumPy lets most reductions take the int axis 0 or -1 of a 0-d array (not in a
    tuple); mean, var and std take none."""
    fn, x = getattr(np, name), np.array(2.0)
    try:
        want = fn(x, axis=axis)
    except Exception as e:  # noqa: BLE001  (whatever NumPy raises, tracegrad raises the same)
        with pytest.raises(type(e)):
            tracegrad.jit(lambda x: fn(x, axis=axis))(x)
        return
    np.testing.assert_allclose(tracegrad.jit(lambda x: fn(x, axis=axis))(x), want)


@pytest.mark.parametrize("kw", [dict(fweights=[1, 2, 0, 3, 1, 1]), dict(aweights="a"),
                                dict(fweights=[1, 2, 0, 3, 1, 1], aweights="a"),
                                dict(fweights=[1, 2, 0, 3, 1, 1], aweights="a", ddof=0),
                                dict(aweights="a", bias=True), dict(fweights=[2] * 6, ddof=3)])
def test_cov_takes_frequency_and_observation_weights(kw):
    rng = np.random.default_rng(4)
    x, a = rng.normal(size=(3, 6)), rng.uniform(0.1, 2.0, 6)
    kw = {k: (a if isinstance(v, str) else np.asarray(v) if isinstance(v, list) else v)
          for k, v in kw.items()}
    want = np.cov(x, **kw)
    np.testing.assert_allclose(tracegrad.jit(lambda x: np.cov(x, **kw))(x), want, rtol=1e-12)
    # the gradient in the data and in the observation weights, against central differences
    if "aweights" in kw:
        def f(x, w):
            return np.sum(np.cov(x, **{**kw, "aweights": w}) ** 2)
        gx, gw = tracegrad.grad(f, argnums=(0, 1))(x, a)
        eps, e = 1e-6, np.zeros(6)
        e[2] = eps
        np.testing.assert_allclose(gw[2], (f(x, a + e) - f(x, a - e)) / (2 * eps), rtol=1e-6)
        e = np.zeros_like(x)
        e[1, 4] = eps
        np.testing.assert_allclose(gx[1, 4], (f(x + e, a) - f(x - e, a)) / (2 * eps), rtol=1e-6)


def test_cov_weights_are_checked_as_numpy_checks_them():
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="fweights must be integer"):
        tracegrad.jit(lambda x: np.cov(x, fweights=np.array([1.5, 2.0, 1.0])))(x)
    y = np.ones((2, 3)) + np.arange(3)
    np.testing.assert_allclose(tracegrad.jit(lambda y: np.cov(y, fweights=np.array([1.0, 2.0, 1.0])))(y),
                               np.cov(y, fweights=np.array([1.0, 2.0, 1.0])), rtol=1e-12)
    with pytest.raises(ValueError, match="cannot be negative"):
        tracegrad.jit(lambda x: np.cov(x, aweights=np.array([1.0, -2.0, 1.0])))(x)
