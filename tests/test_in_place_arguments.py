"""A jitted function that writes into its array arguments in place (`u[1:-1] += ...`,
`x *= s`) without returning them changes the caller's arrays as plain NumPy would: the
trace outputs the written values and each call copies them back (compile.py's
Specialization.write_back)."""
import warnings

import numpy as np
import pytest

import tracegrad


@pytest.fixture(autouse=True)
def _no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", tracegrad.InPlaceArgumentWarning)
        yield


def heat_step(u):
    u[1:-1] += 0.25 * (u[2:] - 2 * u[1:-1] + u[:-2])


def test_every_call_writes_back_as_numpy_would():
    u, want = np.array([0.0, 0.0, 1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0, 0.0, 0.0])
    f = tracegrad.jit(heat_step)
    for _ in range(3):  # the first call compiles, the others take the fast path
        assert f(u) is None
        heat_step(want)
        np.testing.assert_allclose(u, want, rtol=1e-15)


def test_pytrees_keywords_views_and_dtypes():
    def update(state, scale, *, extra):
        state["w"] *= scale
        state["b"][0] = -1.0
        extra += 1
        return state["w"].sum()

    state = {"w": np.ones(3, np.float32), "b": np.zeros(2)}
    extra = np.arange(6.0)[::2]  # a strided view: the write reaches its base
    base = extra.base
    out = tracegrad.jit(update)(state, 2.0, extra=extra)
    assert out == 6.0 and state["w"].dtype == np.float32 and state["w"].tolist() == [2.0] * 3
    assert state["b"].tolist() == [-1.0, 0.0] and base.tolist() == [1.0, 1.0, 3.0, 3.0, 5.0, 5.0]


def test_an_eager_tensor_argument_is_updated_too():
    t = tracegrad.tensor(np.array([0.0, 0.0, 1.0, 0.0, 0.0]))
    tracegrad.jit(heat_step)(t)
    np.testing.assert_allclose(np.asarray(t), [0.0, 0.25, 0.5, 0.25, 0.0])


def test_a_read_only_argument_raises_as_numpy_does():
    u = np.ones(4)
    u.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        tracegrad.jit(heat_step)(u)
    with pytest.raises(ValueError, match="read-only"):
        heat_step(u)


def test_a_returned_argument_is_written_back_as_well():
    def returned(u):
        u[0] = 9.0
        return u, u * 2

    u = np.zeros(2)
    out, twice = tracegrad.jit(returned)(u)
    np.testing.assert_array_equal(out, [9.0, 0.0])
    np.testing.assert_array_equal(twice, [18.0, 0.0])
    assert u.tolist() == [9.0, 0.0]  # as NumPy's (the result is a new array, not u itself)
