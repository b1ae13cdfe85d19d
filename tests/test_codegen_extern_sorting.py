"""Native lowerings of sort, argsort, argmax, argmin and searchsorted
(codegen/extern_sorting.py) against numpy, and the same programs through the host
callback (TRACEGRAD_EXTERN_NATIVE=0): stability, first occurrences, NaNs, signed zeros,
ties, every supported dtype, empty lanes; long lanes sort through the callback."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad
from tracegrad.codegen import extern_sorting
from tracegrad.ir import ops

from extern_cases import compiled

DTYPES = [np.float32, np.float64, np.int32, np.int64]


@pytest.fixture
def native(monkeypatch):
    monkeypatch.delenv("TRACEGRAD_EXTERN_NATIVE", raising=False)


def data(shape, dtype, rng, nans=False):
    if np.dtype(dtype).kind != "f":
        return rng.integers(-3, 4, shape).astype(dtype)  # many ties
    x = rng.integers(-3, 4, shape).astype(dtype) + rng.choice([0.0, 0.5], shape).astype(dtype)
    if nans and x.size:
        x.ravel()[rng.choice(x.size, max(1, x.size // 4), replace=False)] = np.nan
    return x


SHAPES_AXES = [((7,), 0), ((3, 5), 0), ((2, 3, 4), 1), ((2, 3, 4), 2), ((1, 9), 1),
               ((4, 0, 2), 2), ((0, 3), 1)]


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype,nans", [(d, False) for d in DTYPES]
                         + [(np.float32, True), (np.float64, True)])
@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_arg_extrema_compiled_equal_numpy(native, name, dtype, shape, axis, nans):
    x = data(shape, dtype, np.random.default_rng(hash((shape, axis)) % 2**32), nans)
    out, host = compiled(lambda v: getattr(ops, name)(v, axis), x)
    want = getattr(np, name)(x, axis=axis)
    assert out.dtype == np.int64 and out.shape == want.shape
    np.testing.assert_array_equal(out, want)
    assert not host


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 2, 5, 13])
@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_compiled_equals_numpy(native, dtype, m, side):
    rng = np.random.default_rng(m)
    a = np.sort(data((m,), dtype, rng, nans=True))
    v = np.concatenate([a, data((3, 4), dtype, rng, nans=True).ravel()]).reshape(-1, 1)
    out, host = compiled(lambda s, t: ops.searchsorted(s, t, side), a, v)
    np.testing.assert_array_equal(out, np.searchsorted(a, v, side=side))
    assert not host


def test_searchsorted_into_nothing_calls_back():
    v = np.arange(3.0)
    out, host = compiled(lambda s, t: ops.searchsorted(s, t, "left"), np.zeros(0), v)
    np.testing.assert_array_equal(out, [0, 0, 0])
    assert host


SORT_SHAPES = SHAPES_AXES + [((1,), 0), ((100,), 0), ((3, 2, 17), 2)]


@pytest.mark.parametrize("name", ["sort", "argsort"])
@pytest.mark.parametrize("dtype,nans", [(d, False) for d in DTYPES]
                         + [(np.float32, True), (np.float64, True)])
@pytest.mark.parametrize("shape,axis", SORT_SHAPES)
def test_sorts_compiled_equal_numpy(native, name, dtype, shape, axis, nans):
    x = data(shape, dtype, np.random.default_rng(len(shape) * 10 + axis), nans)
    if nans and x.size > 2:
        x.ravel()[:2] = [-0.0, 0.0]  # equal keys: their order is kept
    out, host = compiled(lambda v: getattr(ops, name)(v, axis), x)
    want = getattr(np, name)(x, axis=axis, kind="stable")
    assert out.dtype == want.dtype and out.shape == want.shape
    np.testing.assert_array_equal(out, want)
    if name == "sort":
        np.testing.assert_array_equal(np.signbit(out), np.signbit(want))
    assert not host


def extremes(dtype, n, rng):
    """Lanes of ties and every awkward value: the type's limits, infinities, NaNs of
    both signs, both zeros, subnormals; lengths across the insertion runs' edges."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        info = np.iinfo(dtype)
        pool = np.array([info.min, info.min + 1, -1, 0, 1, info.max - 1, info.max], dtype)
    else:
        info = np.finfo(dtype)
        neg_nan = np.array(np.nan, dtype).view(f"u{dtype.itemsize}") | (1 << (8 * dtype.itemsize - 1))
        pool = np.array([-np.inf, -info.max, -1.0, -info.smallest_subnormal, -0.0, 0.0,
                         info.smallest_subnormal, 1.0, info.max, np.inf, np.nan], dtype)
        pool = np.append(pool, neg_nan.view(dtype))
    return rng.choice(pool, (3, n))


@pytest.mark.parametrize("name", ["sort", "argsort"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [15, 16, 17, 33, 300, 1000])
def test_sorts_of_extreme_values_equal_numpy(native, name, dtype, n):
    x = extremes(dtype, n, np.random.default_rng(n))
    out, host = compiled(lambda v: getattr(ops, name)(v, 1), x)
    assert host == (x.size >= extern_sorting.MIN_CALLBACK_SORT)
    # bit for bit: natively, the order of equal zeros and NaNs is the input's, payloads
    # kept; through the callback, that of numpy's default sort (what np.sort gives)
    kind = None if host and name == "sort" else "stable"
    want = getattr(np, name)(x, axis=1, kind=kind)
    np.testing.assert_array_equal(out.view(f"u{out.dtype.itemsize}"),
                                  want.view(f"u{want.dtype.itemsize}"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ties", [False, True])
def test_large_argsorts_are_stable(dtype, ties):
    # the callback's quicksort serves lanes without ties; lanes with ties sort stably
    rng = np.random.default_rng(3)
    x = (rng.integers(-5, 5, (4, 700)) if ties else rng.permutation(2800).reshape(4, 700))
    x = x.astype(dtype)
    out, host = compiled(lambda v: ops.argsort(v, 1), x)
    assert host
    np.testing.assert_array_equal(out, np.argsort(x, axis=1, kind="stable"))


def test_long_lanes_sort_through_the_callback():
    x = np.random.default_rng(0).standard_normal(extern_sorting.MAX_NATIVE_SORT + 1)
    out, host = compiled(lambda v: ops.sort(v, 0), x)
    np.testing.assert_array_equal(out, np.sort(x))
    assert host


@pytest.mark.parametrize("name", ["sort", "argsort", "argmax", "argmin"])
def test_callback_route_agrees(monkeypatch, name):
    """TRACEGRAD_EXTERN_NATIVE=0: the same programs through numpy's impl."""
    monkeypatch.setenv("TRACEGRAD_EXTERN_NATIVE", "0")
    x = data((3, 5), np.float64, np.random.default_rng(2), nans=True)
    out, host = compiled(lambda v: getattr(ops, name)(v, 1), x)
    kw = {"kind": "stable"} if "sort" in name else {}
    np.testing.assert_array_equal(out, getattr(np, name)(x, axis=1, **kw))
    assert host


@pytest.mark.parametrize("axis", [1, None, 0])
def test_large_argmax_along_the_last_axis_matches_numpy(axis):
    # past MIN_CALLBACK_ARG a last-axis lane takes numpy's own argmax (host callback)
    x = np.random.default_rng(0).normal(size=(300, 200))
    x[3, 7] = np.nan
    x[5, 2] = x[5, 9] = 50.0  # a tie: the first wins
    for fn in (np.argmax, np.argmin):
        got = tracegrad.jit(lambda a, fn=fn: fn(a, axis=axis))(x)
        np.testing.assert_array_equal(got, fn(x, axis=axis))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype,nans", [(np.float32, True), (np.float64, False), (np.int32, False)])
def test_many_short_rows_stay_native(native, name, dtype, nans):
    """Rows of up to NATIVE_ROW elements run natively however many there are (numpy's
    argmin costs about a row's worth of overhead each); ties and NaNs as NumPy."""
    x = data((5000, 16), dtype, np.random.default_rng(3), nans)
    out, host = compiled(lambda v: getattr(ops, name)(v, 1), x)
    np.testing.assert_array_equal(out, getattr(np, name)(x, axis=1))
    assert not host
