"""tracegrad.numpy reductions against numpy: prod, initial=/where=, any/all,
count_nonzero, ptp, average, the nan* reductions, cov, corrcoef; in every mode
(numpy operands, eager, traced, compiled), with gradients against finite differences."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tracegrad
import tracegrad.numpy as tnp
from numpy_modes import check_grad, check_modes, run
from tracegrad.tracer import tensor

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's all-NaN warnings

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4))
X_ZEROS = X.copy()
X_ZEROS[0, 1] = X_ZEROS[2, 1] = X_ZEROS[2, 3] = 0.0
X_NAN = X.copy()
X_NAN[0, 1] = X_NAN[2, 0] = np.nan
X_NAN[1, :] = np.nan  # a lane of NaNs only
MASK = RNG.random((3, 4)) > 0.4
INTS = RNG.integers(-3, 4, (3, 4))


def _both(name, *args, **kw):
    """(our function, numpy's) applied with the same keyword arguments."""
    return (lambda *a: getattr(tnp, name)(*a, **kw), lambda *a: getattr(np, name)(*a, **kw))


VALUE_CASES = [
    ("prod", {}, [X]), ("prod", {"axis": 1}, [X_ZEROS]), ("prod", {"axis": (0, 1)}, [X[:, :3]]),
    ("prod", {"axis": 0, "keepdims": True}, [X]), ("prod", {}, [INTS]),
    ("prod", {"axis": 0}, [np.ones((0, 3))]), ("prod", {}, [np.float64(2.5)]),
    ("prod", {"axis": 1, "where": MASK, "initial": 2.0}, [X]),
    ("sum", {"axis": 1, "where": MASK}, [X]), ("sum", {"initial": 3.0}, [X]),
    ("sum", {"axis": 0, "where": MASK, "initial": -1}, [INTS]),
    ("max", {"axis": 1, "where": MASK, "initial": -0.5}, [X]),
    ("min", {"axis": 0, "initial": 0.0}, [X]), ("max", {"axis": 0, "initial": 1.0}, [np.ones((0, 2))]),
    ("mean", {"axis": 1, "where": MASK}, [X]), ("var", {"axis": 0, "where": MASK, "ddof": 1}, [X]),
    ("std", {"where": MASK}, [X]),
    ("any", {}, [X_ZEROS]), ("any", {"axis": 0}, [INTS]), ("all", {"axis": 1}, [X_ZEROS]),
    ("all", {"axis": 1, "keepdims": True}, [INTS]), ("any", {"axis": 0}, [np.zeros((0, 2))]),
    ("all", {}, [np.zeros((0,))]), ("any", {"axis": 1, "where": MASK}, [X_ZEROS]),
    ("count_nonzero", {"axis": 0}, [X_ZEROS]), ("count_nonzero", {}, [INTS]),
    ("ptp", {"axis": 1}, [X]), ("ptp", {}, [INTS]),
    ("average", {"axis": 1, "weights": np.arange(1.0, 5.0)}, [X]),
    ("average", {"axis": 0, "weights": np.abs(X) + 0.1, "returned": True}, [X]),
    ("average", {"returned": True}, [X]),
    ("nansum", {"axis": 1}, [X_NAN]), ("nanprod", {"axis": 0}, [X_NAN]),
    ("nanmean", {"axis": 0}, [X_NAN]), ("nanvar", {"axis": 0, "ddof": 1}, [X_NAN]),
    ("nanstd", {}, [X_NAN]), ("nanmax", {"axis": 1}, [X_NAN]), ("nanmin", {"axis": 1}, [X_NAN]),
    ("nanmax", {"axis": 0, "keepdims": True}, [X_NAN]), ("nansum", {}, [INTS]),
    ("cov", {}, [X]), ("cov", {"rowvar": False, "ddof": 0}, [X]), ("cov", {}, [X[0]]),
    ("cov", {"bias": True}, [X[0], X[1]]), ("corrcoef", {}, [X]),
    ("corrcoef", {"rowvar": False}, [X]),
]


def _case_id(case):
    return f"{case[0]}-{'-'.join(sorted(case[1]))}-{np.shape(case[2][0])}"


@pytest.mark.parametrize("case", VALUE_CASES, ids=[_case_id(c) for c in VALUE_CASES])
def test_values_match_numpy_in_every_mode(case):
    name, kw, args = case
    fn, ref = _both(name, **kw)
    check_modes(fn, ref, args, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["prod", "nansum", "nanprod", "nanmean", "nanvar", "nanmax",
                                  "nanmin", "ptp", "cov"])
def test_float_dtypes_kept(name, dtype):
    x = (X_NAN if name.startswith("nan") else X).astype(dtype)
    fn, ref = _both(name, axis=0) if name != "cov" else _both(name)
    check_modes(fn, ref, [x], rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


GRAD_CASES = [
    ("prod", {"axis": 1}, X), ("prod", {}, X[:2, :3]), ("prod", {"axis": 0}, X_ZEROS),
    ("prod", {"axis": 1, "where": MASK}, X_ZEROS),
    ("sum", {"axis": 0, "where": MASK, "initial": 1.0}, X),
    ("max", {"axis": 1, "where": MASK, "initial": -5.0}, X),
    ("mean", {"axis": 1, "where": MASK}, X), ("var", {"axis": 0, "where": MASK}, X),
    ("ptp", {"axis": 0}, X), ("average", {"axis": 1, "weights": np.arange(1.0, 5.0)}, X),
    ("nansum", {"axis": 1}, X_NAN[[0, 2]]), ("nanprod", {"axis": 0}, X_NAN[[0, 2]]),
    ("nanmean", {"axis": 1}, X_NAN[[0, 2]]), ("nanstd", {"axis": 1}, X_NAN[[0, 2]]),
    ("nanmax", {"axis": 1}, X_NAN[[0, 2]]), ("cov", {}, X), ("corrcoef", {}, X),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[_case_id((c[0], c[1], [c[2]])) for c in GRAD_CASES])
def test_gradients_match_finite_differences(case):
    name, kw, x = case
    fn, _ = _both(name, **kw)
    check_grad(fn, [x], rtol=1e-6, atol=1e-7)


def test_nan_entries_get_no_gradient():
    x = tensor(X_NAN[[0, 2]], requires_grad=True)
    tnp.nansum(x * 2.0).backward()
    g = x.grad.data
    assert np.all(g[np.isnan(X_NAN[[0, 2]])] == 0)
    assert np.all(g[~np.isnan(X_NAN[[0, 2]])] == 2)


def test_prod_gradient_exact_at_zeros():
    x = np.array([2.0, 0.0, 3.0, 0.5])
    g = tracegrad.grad(lambda v: tnp.prod(v))(x)
    np.testing.assert_array_equal(g, [0.0, 3.0, 0.0, 0.0])  # only the zero's partial survives
    g2 = tracegrad.grad(lambda v: tnp.prod(v))(np.array([0.0, 0.0, 3.0]))
    np.testing.assert_array_equal(g2, [0.0, 0.0, 0.0])


def test_prod_is_one_reduce_prod_and_its_gradient_divides_nothing():
    """One reduce_prod equation; its derivative is the product of the others, from running
    products before and after each entry (exact at zeros: no division or log)."""
    prog = tracegrad.trace(lambda v: tnp.prod(v, axis=1))(np.ones((2, 5)))
    assert [e.prim.name for e in prog.graph.eqns] == ["reduce_prod"]
    grad = tracegrad.trace(tracegrad.grad(lambda v: tnp.sum(tnp.prod(v, axis=1))))(np.ones((2, 5)))
    names = {e.prim.name for e in grad.graph.eqns}
    assert "cumprod" in names and not names & {"div", "log"}


def _largest_body(f):
    return max(len(k.body) for k in f._last.native.kernel_program().kernels if hasattr(k, "body"))


@pytest.mark.parametrize("n", [1024, 4096, 4095])
def test_products_of_many_values_compile_to_small_kernels(n):
    """A halving tree of slices was fused into bodies growing with n (compile_grad of 1024
    factors planned for over a minute); values and gradients against numpy."""
    x = np.random.default_rng(3).random(n)
    f = tracegrad.compile_grad(lambda v: np.prod(1 + v * 1e-3), disk_cache=False)
    value, (grad,) = f(x)
    want = np.prod(1 + x * 1e-3)
    np.testing.assert_allclose(value, want, rtol=1e-13)
    np.testing.assert_allclose(grad, want / (1 + x * 1e-3) * 1e-3, rtol=1e-12)
    assert _largest_body(f) < 64


def test_ufunc_reduce_methods():
    t = tensor(X)
    np.testing.assert_allclose(np.multiply.reduce(t, axis=1).data, np.prod(X, axis=1))
    np.testing.assert_array_equal(np.logical_or.reduce(tensor(MASK), axis=0).data, MASK.any(0))


def test_numpy_dispatch_on_tensors():
    t = tensor(X_NAN)
    for name in ("nansum", "nanmean", "nanmax", "prod", "ptp", "count_nonzero"):
        got = getattr(np, name)(t, axis=0)
        np.testing.assert_allclose(np.asarray(got.data), getattr(np, name)(X_NAN, axis=0))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: tnp.max(X, where=MASK), ValueError, "initial"),
    (lambda: tnp.min(np.ones((0, 2)), axis=0), ValueError, "zero-size"),
    (lambda: tnp.average(X, axis=None, weights=np.ones(4)), TypeError, "axis"),
    (lambda: tnp.average(X, axis=1, weights=np.ones(3)), ValueError, "length"),
    (lambda: tnp.sum(X, where=np.ones(5, bool)), ValueError, "mask"),
    (lambda: tnp.cov(X, fweights=np.ones(7)), RuntimeError, "samples and fweights"),
    (lambda: tnp.cov(X, fweights=np.full(4, 1.5)), TypeError, "fweights must be integer"),
    (lambda: tnp.prod(X, out=X), TypeError, "out"),
])
def test_bad_input_raises(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_float32_and_ints_promote_as_numpy():
    x32 = X.astype(np.float32)
    assert run(lambda a: tnp.prod(a), [x32], "jit").dtype == np.float32
    assert run(lambda a: tnp.prod(a), [INTS.astype(np.int32)], "eager").dtype == np.int64
    assert run(lambda a: tnp.cov(a), [x32], "eager").dtype == np.float64  # as np.cov
    assert run(lambda a: tnp.count_nonzero(a), [x32], "traced").dtype == np.int64


def test_reductions_of_a_0d_array_take_axis_0_as_numpy():
    x = np.array(3.0)
    for name in ("max", "min", "sum", "prod"):
        f = getattr(np, name)
        assert float(tracegrad.jit(lambda v, f=f: f(v, axis=0))(x)) == 3.0
        assert float(tracegrad.jit(lambda v, f=f: f(v, axis=-1))(x)) == 3.0


def test_0d_arrays_along_axis_0_as_numpy():
    # NumPy treats a 0-d operand as one element along axis 0 or -1 here (not in sort).
    x = np.array(3.0)
    cases = [lambda v: np.argmax(v, axis=0), lambda v: np.nanargmin(v, axis=-1),
             lambda v: np.cumsum(v, axis=0), lambda v: np.cumprod(v, axis=-1),
             lambda v: np.take(v, 0, axis=0)]
    for f in cases:
        want = f(x)
        for got in (tracegrad.jit(f)(x), f(tracegrad.tensor(x)).numpy()):
            assert np.shape(got) == np.shape(want) and got == want
    with pytest.raises(np.exceptions.AxisError):
        tracegrad.jit(lambda v: np.sort(v, axis=0))(x)


def test_empty_reductions_of_tensors_keep_a_history():
    t = tensor(np.ones((0, 3)), requires_grad=True)
    for f, want in ((lambda v: tnp.prod(v, axis=0), 1.0), (lambda v: np.max(v, axis=0, initial=-0.0), -0.0),
                    (lambda v: tnp.min(v, axis=0, initial=np.inf), np.inf)):
        r = f(t)
        assert r.grad_fn is not None and r.shape == (3,)
        np.testing.assert_array_equal(r.data, np.full(3, want))
        assert np.all(np.signbit(r.data) == np.signbit(want))
    tnp.sum(tnp.prod(t, axis=0)).backward()
    assert t.grad.shape == (0, 3)


def test_softplus_gradient_at_zero_is_one_half():
    for x in (0.0, np.float32(0.0)):
        assert tracegrad.grad(tnp.softplus)(x) == 0.5
        assert tracegrad.compile_grad(tnp.softplus)(np.asarray(x))[1][0] == 0.5
    np.testing.assert_allclose(tnp.softplus(np.array([-800.0, 0.0, 800.0])), [0.0, np.log(2), 800.0])


def test_log_softmax_keeps_small_terms_of_large_float32_logits():
    # x - logsumexp(x) rounds at the logits' magnitude; (x - max) - log(sum) does not
    logits = np.array([[-88.0, -100.0, -103.0], [1e4, 1e4, 1e4], [0.0, -np.inf, 1.0]], np.float32)
    exact = logits.astype(np.float64) - np.max(logits, axis=1, keepdims=True)
    exact = exact - np.log(np.sum(np.exp(exact), axis=1, keepdims=True))
    for got in (tnp.log_softmax(tensor(logits)).numpy(), tracegrad.jit(tnp.log_softmax)(logits)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, exact, rtol=1e-6, atol=2.5e-7)  # the sum rounds near 1


def _runtime_warnings(f, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = f(*args)
    return value, [str(w.message) for w in caught if w.category is RuntimeWarning]


@pytest.mark.parametrize("name, kwargs, message", [
    ("nanmean", {"axis": 1}, "Mean of empty slice"), ("nanmean", {}, None),
    ("nanvar", {"axis": 1}, "Degrees of freedom <= 0 for slice."),
    ("nanstd", {"axis": 0, "ddof": 2}, "Degrees of freedom <= 0 for slice."),
    ("nanmean", {"axis": 1, "where": MASK}, "Mean of empty slice"),
])
def test_nan_reductions_of_an_empty_lane_warn_as_numpy(name, kwargs, message):
    """NumPy's RuntimeWarning (and its NaN) where the values are known: numpy operands and
    eager tensors; a traced value is not read, so jit neither warns nor adds a guard."""
    f, ref = _both(name, **kwargs)
    want, want_warnings = _runtime_warnings(ref, X_NAN)
    assert want_warnings == ([message] if message else [])
    for operand in (X_NAN, tensor(X_NAN)):
        got, got_warnings = _runtime_warnings(f, operand)
        np.testing.assert_array_equal(np.asarray(getattr(got, "data", got)), want)
        assert got_warnings == want_warnings
    got, got_warnings = _runtime_warnings(tracegrad.jit(f), X_NAN)
    np.testing.assert_array_equal(got, want)
    assert got_warnings == []
