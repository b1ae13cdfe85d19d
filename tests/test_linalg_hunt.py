"""Fixes from a hunt of np.linalg against jax and numpy: det's SVD only for singular
matrices, slogdet's signs as numpy's, norms of empty matrices."""
import warnings

import numpy as np
import pytest

import tracegrad as tg


def test_det_takes_the_svd_only_in_the_branch_of_singular_matrices():
    a = np.random.default_rng(0).standard_normal((6, 6)) + 6 * np.eye(6)
    text = str(tg.trace(lambda a: np.linalg.det(a))(a))
    top = [line for line in text.splitlines() if line.startswith("    ") and "=" in line
           and not line.startswith("      ")]
    assert "cond" in text and not any(" svd" in line for line in top)
    np.testing.assert_allclose(tg.jit(np.linalg.det)(a), np.linalg.det(a), rtol=1e-12)


@pytest.mark.parametrize("a", [np.array([[1.0, 2.0], [2.0, 4.0]]),
                               np.array([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [2.0, 4.0]]]),
                               np.array([[0.3, -1.2, 0.5], [2.0, 0.1, -0.7], [0.4, 0.9, 1.1]])])
def test_det_gradients_regular_and_singular_are_the_cofactors(a):
    def cofactors(m):
        n = m.shape[-1]
        out = np.empty_like(m)
        for i in range(n):
            for j in range(n):
                minor = np.delete(np.delete(m, i, -2), j, -1)
                out[..., i, j] = (-1) ** (i + j) * np.linalg.det(minor)
        return out
    value, (g,) = tg.compile_grad(lambda a: np.sum(np.linalg.det(a)))(a)
    np.testing.assert_allclose(value, np.sum(np.linalg.det(a)), atol=1e-12)
    np.testing.assert_allclose(g, cofactors(a), atol=1e-12)
    np.testing.assert_allclose(tg.grad(lambda a: np.sum(np.linalg.det(a)))(a), cofactors(a),
                               atol=1e-12)


def test_compiled_slogdet_signs_are_numpys():
    sld = tg.jit(lambda a: np.linalg.slogdet(a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in (np.array([[1.0, 2.0], [2.0, 4.0]]), np.array([[1.0, np.inf], [0.0, 1.0]]),
                  np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[-2.0, 0.0], [0.0, 3.0]])):
            sign, logdet = sld(m)
            want = np.linalg.slogdet(m)
            assert np.copysign(1, sign) == np.copysign(1, want[0]) and sign == want[0]
            np.testing.assert_array_equal(logdet, want[1])


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (2, 0, 3)])
@pytest.mark.parametrize("order", [1, 2, np.inf, "fro", "nuc"])
def test_norms_of_empty_matrices_are_zero_as_numpys(shape, order):
    x = np.zeros(shape)
    got = tg.jit(lambda a: np.linalg.norm(a, order, axis=(-2, -1)))(x)
    np.testing.assert_array_equal(got, np.linalg.norm(x, order, axis=(-2, -1)))
