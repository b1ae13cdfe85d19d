"""np.linalg in compiled code: jit and compile_grad against eager (values and
gradients), native LAPACK (codegen/lapack.py) against the host callback
(TRACEGRAD_EXTERN_NATIVE=0), singular and NaN inputs in compiled code."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.codegen import lapack

F32, F64 = np.float32, np.float64


def general(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def well_conditioned(*shape, seed=0):
    return general(*shape, seed=seed) + 2 * shape[-1] * np.eye(shape[-1])


def _data(x):
    return np.asarray(getattr(x, "data", x))


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == F32 else dict(rtol=1e-10, atol=1e-10)


# functions of one batch of matrices a (..., 3, 3), sign-free where factors have free signs
FUNCTIONS = {
    "inv": lambda a: np.linalg.inv(a),
    "solve": lambda a: np.linalg.solve(a, a[..., :, :1] * 2.0),
    "det": lambda a: np.linalg.det(a),
    "slogdet": lambda a: np.linalg.slogdet(a)[1],
    "cholesky": lambda a: np.linalg.cholesky(a @ np.swapaxes(a, -1, -2)),
    "eigh": lambda a: np.linalg.eigh(a)[0] + np.sum(np.linalg.eigh(a)[1] ** 2, axis=-1),
    "eigvalsh": lambda a: np.linalg.eigvalsh(a),
    "svd": lambda a: np.linalg.svd(a)[1] + np.sum(np.linalg.svd(a)[0] ** 3, axis=-1),
    "svdvals": lambda a: np.linalg.svd(a[..., :2], compute_uv=False),
    "qr": lambda a: np.linalg.qr(a[..., :2])[1] ** 2,
    "pinv": lambda a: np.linalg.pinv(a[..., :2, :]),
    "norms": lambda a: np.linalg.norm(a, "nuc", axis=(-2, -1)) + np.linalg.norm(a, 2, axis=(-2, -1)),
    "matrix_power": lambda a: np.linalg.matrix_power(a, -3),
    "lstsq": lambda a: np.linalg.lstsq(a[0], a[1, :, 0])[0],
}


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_jit_matches_eager(name, dtype):
    f = FUNCTIONS[name]
    a = well_conditioned(2, 3, 3).astype(dtype)
    want = _data(f(tg.tensor(a)))
    got = tg.jit(f)(a)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, **_tol(dtype))
    a2 = well_conditioned(2, 3, 3, seed=1).astype(dtype)
    np.testing.assert_allclose(tg.jit(f)(a2), _data(f(tg.tensor(a2))), **_tol(dtype))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_compile_grad_matches_interpreter(name):
    f = FUNCTIONS[name]

    def loss(a):
        return np.sum(np.sin(f(a)))
    a = well_conditioned(2, 3, 3)
    value, grad = tg.compile_grad(loss, argnums=0)(a)
    np.testing.assert_allclose(value, loss(a), rtol=1e-10)
    np.testing.assert_allclose(grad, tg.grad(loss)(a), rtol=1e-9, atol=1e-10)


def _llvm(fn, *args):
    compiled = tg.jit(fn)
    compiled(*args)
    return compiled.llvm_ir()


@pytest.mark.skipif(lapack.find_lapack() is None, reason="no LAPACKE next to numpy")
def test_native_lapack_replaces_the_callback(monkeypatch):
    def f(a):
        return np.linalg.inv(a) + np.linalg.eigh(a)[0][..., None] ** 2
    a = well_conditioned(4, 4)
    text = _llvm(f, a)
    assert "tg_lapack_dgesv" in text and "tg_lapack_dsyevd" in text
    assert "tg_host_call" not in text
    monkeypatch.setenv("TRACEGRAD_EXTERN_NATIVE", "0")
    monkeypatch.setenv("TRACEGRAD_DISABLE_CACHE", "1")
    slow = tg.jit(lambda a: f(a))
    assert "tg_host_call" in (slow(a), slow.llvm_ir())[1]
    np.testing.assert_allclose(slow(a), tg.jit(f)(a), rtol=1e-12)


def test_singular_and_nan_inputs_in_compiled_code():
    s = np.array([[[1.0, 2.0], [2.0, 4.0]], [[2.0, 0.0], [0.0, 1.0]]])
    inv = tg.jit(np.linalg.inv)(s)
    assert np.isnan(inv[0]).all() and np.allclose(inv[1], np.linalg.inv(s[1]))
    sign, logdet = tg.jit(lambda a: np.linalg.slogdet(a))(s)
    assert sign[0] == 0 and logdet[0] == -np.inf
    bad = np.full((3, 3), np.nan)
    assert np.isnan(tg.jit(lambda a: np.linalg.eigh(a)[0])(bad)).all()
    assert np.isnan(tg.jit(lambda a: np.linalg.svd(a)[1])(bad)).all()
    assert np.isnan(tg.jit(np.linalg.cholesky)(-np.eye(2))).all()


def test_empty_and_one_by_one_matrices_compile():
    for a in (np.zeros((2, 0, 0)), well_conditioned(2, 1, 1)):
        np.testing.assert_allclose(tg.jit(np.linalg.inv)(a), np.linalg.inv(a))
        np.testing.assert_allclose(tg.jit(np.linalg.det)(a), np.linalg.det(a))
