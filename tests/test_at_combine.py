"""x.at[idx].max/min/multiply/divide/power combine every update of a repeated index, as
JAX's scatter_max & co (tracer/at_combine.py), concrete or traced, with gradients."""
import numpy as np
import pytest

import tracegrad as tg

METHODS = {"max": np.maximum, "min": np.minimum, "multiply": np.multiply,
           "divide": np.divide}


def reference(x, idx, v, method):
    out = np.array(x, copy=True)
    METHODS[method].at(out, idx, v)
    return out


@pytest.mark.parametrize("method", list(METHODS))
def test_repeated_indices_combine_every_update(method):
    rng = np.random.default_rng(0)
    x, v = rng.uniform(0.5, 2.0, 7), rng.uniform(0.5, 2.0, 40)
    idx = rng.integers(0, 7, 40)
    idx[:5] = 3  # a long run
    want = reference(x, idx, v, method)
    traced = tg.jit(lambda x, i, v: getattr(x.at[i], method)(v))(x, idx, v)
    np.testing.assert_allclose(traced, want, rtol=1e-13)
    concrete = tg.jit(lambda x, v: getattr(x.at[idx], method)(v))(x, v)
    np.testing.assert_allclose(concrete, want, rtol=1e-13)


def test_segment_max_gradient_goes_to_the_winner():
    seg, vals = np.array([0, 0, 1, 1, 1]), np.array([1.0, 5.0, 2.0, 7.0, 3.0])
    weights = np.array([1.0, 10.0])
    g = tg.grad(lambda v, s: np.sum(tg.numpy.zeros_like(v)[:2].at[s].max(v) * weights))(vals, seg)
    assert g.tolist() == [0.0, 1.0, 0.0, 10.0, 0.0]


def test_segment_product_gradient_matches_finite_differences():
    seg, vals = np.array([1, 0, 1, 1]), np.array([1.5, -2.0, 0.5, 3.0])

    def f(v):
        return np.sum(tg.numpy.ones_like(v)[:2].at[seg].multiply(v) ** 2)
    eps, fd, value = 1e-6, [], tg.jit(f)
    for k in range(4):
        e = np.eye(4)[k] * eps
        fd.append((value(vals + e) - value(vals - e)) / (2 * eps))
    np.testing.assert_allclose(tg.grad(f)(vals), fd, rtol=1e-7)


def test_unique_concrete_indices_keep_the_direct_path():
    x = np.array([1.0, 2.0, 3.0])
    out = tg.jit(lambda x: x.at[np.array([2, 0])].max(np.array([0.5, 4.0])))(x)
    assert out.tolist() == [4.0, 2.0, 3.0]
