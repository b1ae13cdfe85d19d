"""tracegrad.numpy sorting, searching, cumulative and order statistics against
numpy, in every mode (numpy operands, eager, traced, compiled): values with ties,
NaNs, 0-d and size 0; gradients of sort/median/quantile against finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad
import tracegrad.numpy as tnp
from numpy_modes import check_grad, check_modes, run
from tracegrad.ir import ShapeError, ops
from tracegrad.tracer import tensor

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's all-NaN warnings

RNG = np.random.default_rng(1)
X = RNG.standard_normal((3, 5))
TIES = np.array([[2.0, 1.0, 2.0, 1.0, 0.5], [3.0, 3.0, 3.0, -1.0, 3.0]])
X_NAN = X.copy()
X_NAN[0, 1] = X_NAN[2, 3] = X_NAN[2, 0] = np.nan
X_NAN[1, :] = np.nan
INTS = RNG.integers(-4, 5, (4, 6))
Q = np.array([0.0, 0.1, 0.25, 0.5, 0.62, 0.9, 1.0])


def _both(name, **kw):
    """(ours, numpy's) with the same keywords; numpy's argsort made stable, as ours is."""
    np_kw = dict(kw, kind="stable") if name == "argsort" else kw
    return (lambda *a: getattr(tnp, name)(*a, **kw), lambda *a: getattr(np, name)(*a, **np_kw))


VALUE_CASES = [
    ("sort", {}, [X]), ("sort", {"axis": 0}, [TIES]), ("sort", {"axis": None}, [X_NAN]),
    ("sort", {}, [INTS]), ("sort", {"axis": 0}, [np.zeros((0, 3))]),
    ("sort", {"axis": None}, [np.float64(3.0)]), ("sort", {}, [MASK := INTS > 0]),
    ("argsort", {}, [TIES]), ("argsort", {}, [np.float64(2.0)]), ("argsort", {"axis": 0}, [X_NAN]), ("argsort", {"axis": None}, [INTS]),
    ("argmax", {}, [X]), ("argmax", {"axis": 1}, [TIES]), ("argmax", {"axis": 1}, [X_NAN]),
    ("argmin", {"axis": 0, "keepdims": True}, [INTS]), ("argmin", {"keepdims": True}, [TIES]),
    ("argmax", {}, [np.float64(1.0)]), ("argmin", {"axis": 1}, [X_NAN]),
    ("nanargmax", {"axis": 1}, [X_NAN[[0, 2]]]), ("nanargmin", {}, [X_NAN]),
    ("cumsum", {}, [X]), ("cumsum", {"axis": 0}, [INTS]), ("cumprod", {"axis": 1}, [X]),
    ("cumsum", {"axis": 1}, [MASK]), ("cumsum", {}, [np.float64(2.0)]),
    ("cumprod", {"axis": 0}, [np.zeros((0, 2))]), ("nancumsum", {"axis": 1}, [X_NAN]),
    ("nancumprod", {}, [X_NAN]), ("cumulative_sum", {"axis": 1, "include_initial": True}, [X]),
    ("cumulative_prod", {}, [X[0]]),
    ("median", {}, [X]), ("median", {"axis": 1}, [X_NAN]), ("median", {"axis": 0}, [INTS]),
    ("median", {"axis": (0, 1), "keepdims": True}, [X]), ("median", {"axis": 0}, [TIES]),
    ("nanmedian", {"axis": 1}, [X_NAN]), ("nanmedian", {}, [X_NAN]),
    ("quantile", {"q": Q, "axis": 1}, [X]), ("quantile", {"q": 0.3}, [INTS]),
    ("quantile", {"q": Q, "axis": 0, "keepdims": True}, [X_NAN]),
    ("nanquantile", {"q": Q, "axis": 1}, [X_NAN]), ("percentile", {"q": [10, 50, 75]}, [X]),
    ("nanpercentile", {"q": 40.0, "axis": 0}, [X_NAN]),
    ("median", {}, [np.float64(2.0)]),
    *[("quantile", {"q": Q, "axis": 1, "method": m}, [X]) for m in
      ("lower", "higher", "nearest", "midpoint")],
    *[("nanquantile", {"q": Q, "axis": 1, "method": m}, [X_NAN]) for m in
      ("lower", "higher", "nearest", "midpoint")],
]


def _case_id(case):
    name, kw, args = case
    return f"{name}-{'-'.join(f'{k}' for k in sorted(kw))}-{np.shape(args[0])}-{args[0].dtype}"


def _split_q(kw):
    """`q` is positional in NumPy's quantile functions."""
    kw = dict(kw)
    q = kw.pop("q", None)
    return q, kw


@pytest.mark.parametrize("case", VALUE_CASES, ids=[_case_id(c) for c in VALUE_CASES])
def test_values_match_numpy_in_every_mode(case):
    name, kw, args = case
    q, kw = _split_q(kw)
    if q is not None:
        fn, ref = (lambda a: getattr(tnp, name)(a, q, **kw)), (lambda a: getattr(np, name)(a, q, **kw))
    else:
        fn, ref = _both(name, **kw)
    if name in ("quantile", "nanquantile", "percentile", "nanpercentile") and kw.get("method") \
            in ("lower", "higher", "nearest") and args[0].dtype.kind != "f":
        pytest.skip("int inputs give float64 (numpy keeps int64 for these methods)")
    check_modes(fn, ref, args, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["sort", "argsort", "argmax", "median", "cumsum", "nanmedian"])
def test_float_dtypes_kept(name, dtype):
    x = (X_NAN if name.startswith("nan") else X).astype(dtype)
    fn, ref = _both(name, axis=1)
    check_modes(fn, ref, [x], rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-7)


def test_quantile_dtype_follows_q_as_numpy():
    x32 = X.astype(np.float32)
    assert run(lambda a: tnp.quantile(a, 0.3), [x32], "jit").dtype == np.float32
    assert run(lambda a: tnp.quantile(a, [0.3]), [x32], "eager").dtype == np.float64
    assert run(lambda a: tnp.median(a), [INTS], "traced").dtype == np.float64


def test_searchsorted_and_digitize():
    a = np.sort(X.ravel())
    v = np.concatenate([X[0], a[[0, 3, 14]], [np.nan, -np.inf]])
    for side in ("left", "right"):
        check_modes(lambda s, t, side=side: tnp.searchsorted(s, t, side=side),
                    lambda s, t, side=side: np.searchsorted(s, t, side=side), [a, v])
    sorter = np.argsort(X[1])
    check_modes(lambda s, t: tnp.searchsorted(s, t, sorter=sorter),
                lambda s, t: np.searchsorted(s, t, sorter=sorter), [X[1], v])
    bins = np.array([-1.0, 0.0, 0.5, 2.0])
    for b in (bins, bins[::-1].copy()):
        for right in (False, True):
            check_modes(lambda t, b=b, right=right: tnp.digitize(t, b, right=right),
                        lambda t, b=b, right=right: np.digitize(t, b, right=right),
                        [np.append(v, [0.0, 0.5])])
    check_modes(lambda s: tnp.searchsorted(s, 0.25), lambda s: np.searchsorted(s, 0.25), [a])


def test_partition_and_argpartition_are_partitions():
    for kth in (0, 2, -1, (1, 3)):
        p = run(lambda a, kth=kth: tnp.partition(a, kth, axis=1), [X], "jit")
        ip = run(lambda a, kth=kth: tnp.argpartition(a, kth, axis=1), [X], "eager")
        want = np.partition(X, kth, axis=1)
        for k in np.atleast_1d(kth):
            np.testing.assert_array_equal(p[:, k], want[:, k])
            np.testing.assert_array_equal(np.take_along_axis(X, ip, 1)[:, k], want[:, k])
            assert np.all(p[:, :k % 5] <= p[:, [k]]) and np.all(p[:, k % 5:] >= p[:, [k]])
    with pytest.raises(ValueError, match="kth"):
        tnp.partition(X, 5)


def test_lexsort():
    keys = [RNG.integers(0, 3, 8), RNG.integers(0, 2, 8), RNG.standard_normal(8).round(0)]
    want = np.lexsort(keys)
    for mode in ("numpy", "eager", "traced", "jit"):
        np.testing.assert_array_equal(run(lambda a, b, c: tnp.lexsort([a, b, c]), keys, mode),
                                      want, err_msg=mode)
    np.testing.assert_array_equal(tnp.lexsort(np.stack(keys[:2])), np.lexsort(np.stack(keys[:2])))


def test_histogram_and_bincount():
    data = np.concatenate([X.ravel(), [X.max(), X.min()]])
    for kw in ({"bins": 4}, {"bins": 3, "range": (-1.0, 1.0)}, {"bins": [-2.0, -0.5, 0.0, 2.0]},
               {"bins": 5, "density": True}, {"bins": 4, "weights": np.abs(data)}):
        check_modes(lambda a, kw=kw: tnp.histogram(a, **kw), lambda a, kw=kw: np.histogram(a, **kw),
                    [data], rtol=1e-12, atol=1e-14)
    check_modes(lambda a: tnp.histogram(a, 3), lambda a: np.histogram(a, 3), [np.ones(4)])
    n = np.array([0, 3, 1, 1, 7, 3])
    check_modes(lambda a: tnp.bincount(a, length=9), lambda a: np.bincount(a, minlength=9), [n])
    check_modes(lambda a, w: tnp.bincount(a, w, length=8), lambda a, w: np.bincount(a, w),
                [n, X.ravel()[:6]])
    np.testing.assert_array_equal(tnp.bincount(n, minlength=10), np.bincount(n, minlength=10))


def test_histogram_weights_and_bincount_weights_differentiate():
    data = X.ravel()
    check_grad(lambda w: tnp.histogram(data, 4, weights=w)[0], [np.abs(data)])
    n = np.array([0, 3, 1, 1, 2])
    check_grad(lambda w: tnp.bincount(n, w, length=5), [X[0]])


def test_unique_with_static_size():
    u = np.array([3.0, 1.0, 1.0, 2.0, np.nan, np.nan, 3.0])
    want = np.unique(u, return_index=True, return_inverse=True, return_counts=True)
    for mode in ("eager", "traced", "jit"):
        got = run(lambda a: tnp.unique(a, return_index=True, return_inverse=True,
                                       return_counts=True, size=4), [u], mode)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w, err_msg=mode)
    padded = run(lambda a: tnp.unique(a, size=6, fill_value=-1.0), [u[:4]], "jit")
    np.testing.assert_array_equal(padded, [1.0, 2.0, 3.0, -1.0, -1.0, -1.0])
    np.testing.assert_array_equal(run(lambda a: tnp.unique(a, size=2), [u], "eager"), [1.0, 2.0])
    np.testing.assert_array_equal(tnp.unique(INTS), np.unique(INTS))  # concrete: numpy's
    with pytest.raises(ValueError, match="size"):
        tnp.unique(tensor(u))


X_DISTINCT = (RNG.permutation(15) * 0.3 + RNG.uniform(0, 0.1, 15)).reshape(3, 5)

GRAD_CASES = [
    ("sort", lambda a: tnp.sort(a, axis=1)), ("sort_axis0", lambda a: tnp.sort(a, axis=0)),
    ("sort_flat", lambda a: tnp.sort(a, axis=None)),
    ("median", lambda a: tnp.median(a, axis=1)), ("median_all", lambda a: tnp.median(a)),
    ("median_even", lambda a: tnp.median(a[:, :4], axis=1)),
    ("quantile", lambda a: tnp.quantile(a, Q[1:-1], axis=0)),
    ("percentile_midpoint", lambda a: tnp.percentile(a, [30, 70], axis=1, method="midpoint")),
    ("quantile_nearest", lambda a: tnp.quantile(a, [0.3, 0.8], axis=1, method="nearest")),
    ("partition", lambda a: tnp.partition(a, 2, axis=1)),
    ("cumsum", lambda a: tnp.cumsum(a, axis=1)), ("cumprod", lambda a: tnp.cumprod(a)),
    ("nancumsum", lambda a: tnp.nancumsum(a, axis=0)),
    ("unique", lambda a: tnp.unique(a, size=20)),
]


@pytest.mark.parametrize("fn", [c[1] for c in GRAD_CASES], ids=[c[0] for c in GRAD_CASES])
def test_gradients_match_finite_differences(fn):
    check_grad(fn, [X_DISTINCT])


def test_nan_gradients_excluded():
    x = X_DISTINCT.copy()
    x[0, 2] = x[2, 4] = np.nan
    for f in (lambda a: tnp.nanmedian(a, axis=1), lambda a: tnp.nanquantile(a, [0.2, 0.7], axis=0),
              lambda a: tnp.nancumprod(a, axis=1)):
        check_grad(f, [x])
        t = tensor(x, requires_grad=True)
        tnp.sum(f(t)).backward()
        assert np.all(t.grad.data[np.isnan(x)] == 0)


def test_quantile_gradient_in_traced_q():
    x = X_DISTINCT[0]
    check_grad(lambda q: tnp.quantile(x, q), [np.array([0.13, 0.55, 0.9])])
    g = tracegrad.grad(lambda q: tnp.quantile(x, q))(0.4)
    s = np.sort(x)
    assert g == pytest.approx((s[2] - s[1]) * 4)  # the slope of the interpolation


def test_argmax_has_no_gradient():
    t = tensor(X, requires_grad=True)
    r = tnp.argmax(t, axis=1)
    assert r.dtype == np.int64 and r.grad_fn is None
    g = tracegrad.grad(lambda a: tnp.sum(a * tnp.argmax(a)))(X)
    np.testing.assert_array_equal(g, np.full(X.shape, float(np.argmax(X))))


def test_sort_second_order():
    f = lambda a: tnp.sum(tnp.sort(a) ** 3 * np.arange(5.0))  # noqa: E731
    h = tracegrad.grad(lambda a: tnp.sum(tracegrad.grad(f)(a) * X_DISTINCT[0]))(X_DISTINCT[1])
    ranks = np.argsort(np.argsort(X_DISTINCT[1]))
    np.testing.assert_allclose(h, 6 * X_DISTINCT[1] * ranks * X_DISTINCT[0], rtol=1e-12)


def test_numpy_dispatch_on_tensors():
    t = tensor(X)
    for name in ("sort", "argsort", "argmax", "argmin", "median", "cumsum", "cumprod"):
        np.testing.assert_allclose(np.asarray(getattr(np, name)(t, axis=0).data),
                                   getattr(np, name)(X, axis=0), err_msg=name)
    np.testing.assert_allclose(np.quantile(t, 0.3, axis=1).data, np.quantile(X, 0.3, axis=1))


def test_ir_primitives_directly():
    np.testing.assert_array_equal(ops.take_along(X, np.argsort(X, 1), 1), np.sort(X, 1))
    for axis in (0, 1):  # add_along undoes take_along by a permutation
        p = np.argsort(X, axis)
        np.testing.assert_array_equal(ops.add_along(ops.take_along(X, p, axis), p, axis), X)
    dup = np.zeros((2, 3), np.int64)  # repeated indices accumulate
    np.testing.assert_array_equal(ops.add_along(np.ones((2, 3)), dup, 1), [[3, 0, 0]] * 2)
    np.testing.assert_array_equal(ops.searchsorted(np.arange(5.0), X, "right"),
                                  np.searchsorted(np.arange(5.0), X, "right"))



@pytest.mark.parametrize("fn, args, match", [
    (lambda a: ops.sort(a, 2), [X], "sort: axis 2"),
    (lambda a: ops.argmax(a, 1), [np.zeros((2, 0))], "empty"),
    (lambda a: ops.searchsorted(a, a, "left"), [X], "1-D"),
    (lambda a, v: ops.searchsorted(a, v, "middle"), [X[0], X], "side"),
    (lambda a, v: ops.searchsorted(a, v, "left"), [X[0], INTS], "dtypes differ"),
])
def test_shape_rules_reject_bad_operands(fn, args, match):
    with pytest.raises(ShapeError, match=match):  # shape rules run while tracing
        tracegrad.trace(fn)(*args)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: tnp.argmax(np.zeros((2, 0)), axis=1), ValueError, "empty"),
    (lambda: tnp.quantile(X, 1.5), ValueError, "range"),
    (lambda: tnp.percentile(X, -1), ValueError, "range"),
    (lambda: tnp.quantile(X, 0.5, method="inverted_cdf"), ValueError, "not supported"),
    (lambda: tnp.searchsorted(X, X[0]), ValueError, "1-D"),
    (lambda: tnp.searchsorted(X[0], X, side="up"), ValueError, "side"),
    (lambda: tnp.digitize(X[0], X[0]), ValueError, "monotonically"),
    (lambda: tracegrad.jit(tnp.bincount)(np.array([1, 2])), ValueError, "length"),
    (lambda: tnp.bincount(X[0]), ValueError, "non-negative ints"),
    (lambda: tnp.histogram(X, 0), ValueError, "positive"),
    (lambda: tnp.cumulative_sum(X), ValueError, "axis"),
    (lambda: tnp.sort(X, order="f"), TypeError, "order"),
    (lambda: tnp.sort(X, axis=3), np.exceptions.AxisError, "axis"),
])
def test_bad_input_raises(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_in_place_sort_and_partition_methods():
    def f(a):
        b = a * 2.0
        b.sort(axis=0)
        c = a + 1.0
        c.partition(1)
        return b * c.argpartition(1) + c
    for mode in ("eager", "traced", "jit"):
        got = run(f, [X_DISTINCT], mode)
        # c is sorted by then: its argpartition is 0, 1, ...
        np.testing.assert_allclose(got, np.sort(2 * X_DISTINCT, 0) * np.arange(5)
                                   + np.sort(X_DISTINCT + 1, 1), rtol=1e-14, err_msg=mode)
    check_grad(f, [X_DISTINCT])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("x", [[1.0, 2.0, np.inf], [1.0, 2.0, np.inf, 4.0], [1.0, np.inf, np.inf, 4.0],
                               [-np.inf, np.inf], [np.nan, np.inf, 1e300, 2.0]])
def test_medians_and_picks_next_to_infinities_as_numpy(x):
    # NumPy's median takes the middle element or the mean of two, the lower, higher and
    # nearest methods take one element: no blend that turns inf * 0 into NaN
    x = np.asarray(x)
    fs = [np.median, np.nanmedian, lambda v: np.quantile(v, [0.2, 0.5, 0.9], method="lower"),
          lambda v: np.percentile(v, [10, 90], method="higher"),
          lambda v: np.nanquantile(v, [0.3, 0.5], method="nearest")]
    for f in fs:
        want = f(x)
        for got in (f(tensor(x)).numpy(), tracegrad.jit(f)(x)):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("method", ["lower", "higher", "nearest"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_quantile_picks_keep_the_data_dtype(method, dtype):
    x = np.array([3e38, 1.0, 2.0, 7.0]).astype(dtype) if dtype == np.float32 else np.arange(7)[::-1]
    for q in (0.5, [0.3, 0.5]):
        want = np.quantile(x, q, method=method)
        got = tracegrad.jit(lambda a, q=q: np.quantile(a, q, method=method))(x)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_bincount_of_an_eager_tensor_takes_numpys_length():
    n = np.array([0, 1, 1, 3])
    np.testing.assert_array_equal(np.bincount(tensor(n)).numpy(), np.bincount(n))
    np.testing.assert_array_equal(tnp.bincount(tensor(n), minlength=6).numpy(),
                                  np.bincount(n, minlength=6))
    w = tensor(np.array([1.0, 2.0, 3.0, 4.0]), requires_grad=True)
    (tnp.bincount(tensor(n), w) * np.arange(4.0)).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [0.0, 1.0, 1.0, 3.0])
    with pytest.raises(ValueError, match="static length"):
        tracegrad.jit(lambda a: tnp.bincount(a))(n)
