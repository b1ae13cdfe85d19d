"""Native lowerings of gather, scatter, scatter_add, dynamic_slice and
dynamic_update_slice (codegen/extern_indexing.py) against the primitives' numpy impls,
every supported dtype, index dtypes, duplicates, indices out of range (clamped, never
out of bounds), empty shapes; and the host-callback route for what they decline."""
from __future__ import annotations

import numpy as np
import pytest

from tracegrad.ir import PRIMITIVES, ops

from extern_cases import compiled

DTYPES = [np.float32, np.float64, np.int32, np.int64]


@pytest.fixture(autouse=True)
def native(monkeypatch):
    monkeypatch.delenv("TRACEGRAD_EXTERN_NATIVE", raising=False)


def reference(name, *args, **params):
    return PRIMITIVES[name].impl(*args, **params)


def _x(shape, dtype, rng):
    return np.asarray(rng.standard_normal(shape) * 10, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("shape,k,b_shape", [((5,), 1, (7,)), ((4, 3), 1, (2, 3)),
                                             ((4, 3, 2), 2, (5,)), ((3, 2), 2, ()),
                                             ((3, 2), 1, (0,))])
def test_gather_and_scatters_native(dtype, idx_dtype, shape, k, b_shape):
    rng = np.random.default_rng(0)
    x = _x(shape, dtype, rng)
    idx = [np.asarray(rng.integers(-2 * d, 2 * d, b_shape), idx_dtype) for d in shape[:k]]
    u = _x(b_shape + shape[k:], dtype, rng)
    got, host = compiled(ops.gather, x, *idx)
    np.testing.assert_array_equal(got, reference("gather", x, *idx))
    assert not host
    for name in ("scatter", "scatter_add"):
        got, host = compiled(getattr(ops, name), x, u, *idx)
        np.testing.assert_array_equal(got, reference(name, x, u, *idx))
        assert not host


def test_scatter_duplicates_last_write_wins_natively():
    x, u = np.zeros(3), np.array([1.0, 2.0, 3.0, 4.0])
    idx = np.array([0, 2, 0, -1])
    got, _ = compiled(ops.scatter, x, u, idx)
    np.testing.assert_array_equal(got, [3.0, 0.0, 4.0])
    got, _ = compiled(ops.scatter_add, x, u, idx)
    np.testing.assert_array_equal(got, [4.0, 0.0, 6.0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,sizes", [((5,), (2,)), ((4, 3), (2, 3)), ((3, 4, 2), (1, 2, 2)),
                                         ((), ()), ((3, 2), (0, 2))])
def test_dynamic_slices_native(dtype, shape, sizes):
    rng = np.random.default_rng(1)
    x = np.asarray(_x(shape, dtype, rng))
    u = np.asarray(_x(sizes, dtype, rng))
    for starts in ([0] * len(shape), [-5] * len(shape), [9] * len(shape),
                   list(rng.integers(-3, 6, len(shape)))):
        st = [np.asarray(s, np.int64) for s in starts]
        got, host = compiled(lambda v, *s: ops.dynamic_slice(v, *s, sizes=sizes), x, *st)
        np.testing.assert_array_equal(got, reference("dynamic_slice", x, *st, sizes=sizes))
        assert not host
        got, host = compiled(ops.dynamic_update_slice, x, u, *[np.asarray(s, np.int32) for s in starts])
        np.testing.assert_array_equal(got, reference("dynamic_update_slice", x, u, *st))
        assert not host


def test_declined_kernels_take_the_callback():
    x = np.zeros((0, 2))
    got, host = compiled(ops.gather, x, np.array([1, 2]))
    np.testing.assert_array_equal(got, np.zeros((2, 2)))
    assert host
    got, host = compiled(ops.scatter_add, np.array([True, False]), np.array([True]),
                         np.array([1]))
    np.testing.assert_array_equal(got, [True, True])
    assert host


def test_callback_route_agrees(monkeypatch):
    monkeypatch.setenv("TRACEGRAD_EXTERN_NATIVE", "0")
    x, idx = np.arange(6.0).reshape(3, 2), np.array([2, -1, 7])
    got, host = compiled(ops.gather, x, idx)
    np.testing.assert_array_equal(got, x[[2, 2, 2]])
    assert host
