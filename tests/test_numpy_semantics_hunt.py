"""Fixes from a NumPy-semantics hunt: histogram's autodetected range must be finite (as
NumPy's) on known data, interp at infinite end points, unique(axis=) of NumPy arrays."""
import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp


@pytest.mark.parametrize("data", [[1.0, 2.0, np.inf], [np.nan, np.nan]])
def test_histogram_of_non_finite_data_raises_as_numpy(data):
    with pytest.raises(ValueError, match="is not finite"):
        np.histogram(np.array(data), bins=3)
    with pytest.raises(ValueError, match="is not finite"):
        np.histogram(tg.tensor(np.array(data)), bins=3)
    with pytest.raises(ValueError, match="is not finite"):
        tnp.histogram_bin_edges(tg.tensor(np.array(data)), 3)
    counts, edges = np.histogram(tg.tensor(np.array([1.0, 1.5, 4.0])), bins=3)
    assert counts.tolist() == [2, 0, 1] and np.allclose(edges, [1.0, 2.0, 3.0, 4.0])


def test_interp_at_infinite_end_points():
    xp, fp = np.array([-np.inf, 0.0, 1.0, np.inf]), np.array([5.0, 0.0, 1.0, 2.0])
    x = np.array([-np.inf, 0.5, np.inf])
    expected = np.interp(x, xp, fp)
    assert expected.tolist() == [5.0, 0.5, 2.0]
    np.testing.assert_array_equal(tnp.interp(x, xp, fp), expected)
    np.testing.assert_array_equal(tg.jit(lambda v: np.interp(v, xp, fp))(x), expected)
    grad = tg.grad(lambda v: np.sum(np.interp(v, np.array([0.0, 1.0, 2.0]),
                                              np.array([0.0, 10.0, 0.0]))))(np.array([0.5, 1.5]))
    assert grad.tolist() == [10.0, -10.0]


def test_unique_along_an_axis_of_a_numpy_array():
    rows = np.array([[1, 2], [1, 2], [0, 1]])
    np.testing.assert_array_equal(tnp.unique(rows, axis=0), np.unique(rows, axis=0))
    with pytest.raises(TypeError, match="axis"):
        tnp.unique(tg.tensor(rows), axis=0, size=2)
