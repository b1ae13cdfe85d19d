"""codegen/lapack.py: the native LAPACK lowerings of the decompositions, run directly
(`lapack.standalone`) against the primitives' numpy references: float32/float64,
batched, size 1, every param combination, singular and NaN inputs (NaN entries, never
a crash), and what declines to the host callback."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tracegrad
from tracegrad.codegen import lapack
from tracegrad.ir import PRIMITIVES, ShapedArray

pytestmark = pytest.mark.skipif(lapack.find_lapack() is None,
                                reason="numpy ships no OpenBLAS with LAPACKE here")

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


def _rng(seed=0):
    return np.random.default_rng(seed)


def general(*shape, seed=0):
    return _rng(seed).standard_normal(shape)


def well_conditioned(*shape, seed=0):
    return general(*shape, seed=seed) + 2 * shape[-1] * np.eye(shape[-1])


def spd(*shape, seed=0):
    x = general(*shape, seed=seed)
    return x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1])


def native(prim, *arrays, **params):
    f = lapack.standalone(prim, [ShapedArray(a.shape, a.dtype) for a in arrays], **params)
    return f(*arrays)


def reference(prim, *arrays, **params):
    return PRIMITIVES[prim].impl(*arrays, **params)


def _tol(dtype):
    return dict(rtol=2e-4, atol=2e-4) if dtype == F32 else dict(rtol=1e-10, atol=1e-10)


def _cast(arrays, dtype):
    return [np.asarray(a, dtype) for a in arrays]


# (primitive, operand maker (batch shape -> arrays), params): results equal to the numpy
# references up to rounding; factors with free signs are compared in sign-free forms below
DIRECT = [
    ("cholesky", lambda b: [spd(*b, 4, 4)], {}),
    ("inv", lambda b: [well_conditioned(*b, 4, 4)], {}),
    ("inv", lambda b: [well_conditioned(*b, 1, 1)], {}),
    ("solve", lambda b: [well_conditioned(*b, 4, 4), general(*b, 4, 3, seed=1)], {}),
    ("solve", lambda b: [well_conditioned(*b, 3, 3), general(*b, 3, 1, seed=1)], {}),
    ("slogdet", lambda b: [general(*b, 5, 5)], {}),
    ("slogdet", lambda b: [general(*b, 1, 1)], {}),
    ("eigvalsh", lambda b: [general(*b, 4, 4)], {}),
    ("svdvals", lambda b: [general(*b, 5, 3)], {}),
    ("svdvals", lambda b: [general(*b, 2, 6)], {}),
    ("pinv", lambda b: [general(*b, 5, 3)], {"rcond": 1e-15}),
    ("pinv", lambda b: [general(*b, 2, 4)], {"rcond": 0.6}),
    ("pinv", lambda b: [general(*b, 3, 3)], {"rcond": 1e-15}),
] + [("triangular_solve", lambda b: [well_conditioned(*b, 4, 4), general(*b, 4, 2, seed=1)],
      dict(lower=lo, transpose_a=t, unit_diagonal=u))
     for lo in (True, False) for t in (True, False) for u in (True, False)]


def _ids(cases):
    return [f"{c[0]}-{i}" for i, c in enumerate(cases)]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
@pytest.mark.parametrize("case", DIRECT, ids=_ids(DIRECT))
def test_native_matches_reference(case, batch, dtype):
    prim, make, params = case
    arrays = _cast(make(batch), dtype)
    got = native(prim, *arrays, **params)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, reference(prim, *arrays, **params), **_tol(dtype))


def _unpack_eigh(packed):
    return packed[..., 0, :], packed[..., 1:, :]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 5, 5), (1, 1)])
def test_eigh(shape, dtype):
    a = general(*shape).astype(dtype)
    w, v = _unpack_eigh(native("eigh", a))
    w_ref, v_ref = _unpack_eigh(reference("eigh", a))
    np.testing.assert_allclose(w, w_ref, **_tol(dtype))
    np.testing.assert_allclose(np.abs(v), np.abs(v_ref), **_tol(dtype))  # signs are free
    lower = np.tril(a) + np.swapaxes(np.tril(a, -1), -1, -2)  # what LAPACK reads
    np.testing.assert_allclose(v @ (w[..., None] * np.swapaxes(v, -1, -2)), lower,
                               **_tol(dtype))


def _svd_parts(packed, m, n, full):
    k = min(m, n)
    return (packed[..., 0, :k], packed[..., 1:1 + m, :m if full else k],
            packed[..., 1 + m:, :n if full else k])


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 4, 2), (1, 3), (3, 1)])
def test_svd(shape, full, dtype):
    a = general(*shape).astype(dtype)
    m, n = shape[-2:]
    packed = native("svd", a, full_matrices=full)
    ref = reference("svd", a, full_matrices=full)
    assert packed.shape == ref.shape
    s, u, v = _svd_parts(packed, m, n, full)
    s_ref, u_ref, v_ref = _svd_parts(ref, m, n, full)
    np.testing.assert_allclose(s, s_ref, **_tol(dtype))
    k = min(m, n)
    us = u[..., :k] * s[..., None, :]
    np.testing.assert_allclose(us @ np.swapaxes(v[..., :k], -1, -2), a, **_tol(dtype))
    eye_u, eye_v = np.eye(u.shape[-1]), np.eye(v.shape[-1])
    np.testing.assert_allclose(np.swapaxes(u, -1, -2) @ u, np.broadcast_to(eye_u, u.shape[:-2]
                               + eye_u.shape), **_tol(dtype))
    np.testing.assert_allclose(np.swapaxes(v, -1, -2) @ v, np.broadcast_to(eye_v, v.shape[:-2]
                               + eye_v.shape), **_tol(dtype))
    assert not packed[..., 0, k:].any()  # the padding of a full decomposition's row 0


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("complete", [False, True])
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 6, 2), (1, 1), (1, 3)])
def test_qr(shape, complete, dtype):
    a = general(*shape).astype(dtype)
    m = shape[-2]
    packed = native("qr", a, complete=complete)
    ref = reference("qr", a, complete=complete)
    assert packed.shape == ref.shape
    q, r = packed[..., :m, :], np.swapaxes(packed[..., m:, :], -1, -2)
    np.testing.assert_allclose(q @ r, a, **_tol(dtype))
    np.testing.assert_allclose(r, np.triu(r), **_tol(dtype))
    # Householder QR is unique up to the signs of R's rows; LAPACK's choice is numpy's
    np.testing.assert_allclose(packed, ref, **_tol(dtype))


# ---- failures: NaN entries, never an exception or a crash ---------------------------------------

SINGULAR = np.array([[[1.0, 2.0], [2.0, 4.0]], [[2.0, 0.0], [0.0, 1.0]]])


@pytest.mark.parametrize("dtype", [F32, F64])
def test_singular_matrices(dtype):
    a = SINGULAR.astype(dtype)
    inv = native("inv", a)
    assert np.isnan(inv[0]).all()
    np.testing.assert_allclose(inv[1], np.linalg.inv(a[1]), **_tol(dtype))
    x = native("solve", a, np.ones((2, 2, 1), dtype))
    assert np.isnan(x[0]).all() and np.allclose(x[1], [[0.5], [1.0]])
    sl = native("slogdet", a)
    assert sl[0, 0] == 0 and sl[0, 1] == -np.inf
    np.testing.assert_allclose(sl[1], [1.0, np.log(2.0)], **_tol(dtype))
    np.testing.assert_array_equal(np.isnan(native("cholesky", a)),
                                  np.isnan(reference("cholesky", a)))
    t = native("triangular_solve", np.zeros((2, 2), dtype), np.ones((2, 1), dtype),
               lower=True, transpose_a=False, unit_diagonal=False)
    assert not np.isfinite(t).any()


@pytest.mark.parametrize("prim, params", [("eigh", {}), ("eigvalsh", {}), ("inv", {}),
                                          ("cholesky", {}), ("slogdet", {}),
                                          ("svd", {"full_matrices": False}), ("svdvals", {}),
                                          ("qr", {"complete": False}),
                                          ("pinv", {"rcond": 1e-15})])
def test_nan_input_gives_nan_entries(prim, params):
    a = np.stack([general(3, 3), np.full((3, 3), np.nan), spd(3, 3)])
    got = native(prim, a, **params)
    assert np.isnan(got[1]).all()
    assert not np.isnan(got[2]).any()


def test_what_declines_to_the_host_callback():
    with pytest.raises(ValueError, match="no native lowering"):
        lapack.standalone("inv", [ShapedArray((0, 0), F64)])
    with pytest.raises(ValueError, match="no native lowering"):
        lapack.standalone("svdvals", [ShapedArray((3, 0), F64)])
    kernel = lapack._Kernel("inv", {}, [ShapedArray((2, 2), np.dtype(np.int64))],
                            [ShapedArray((2, 2), np.dtype(np.int64))])
    assert not lapack.supports(kernel)


def test_library_and_symbols():
    lib = lapack.find_lapack()
    assert lib.int_bits in (32, 64)
    table = lapack.symbols()
    for name in ("dgetrf", "dgesv", "sgesdd", "dsyevd", "strsm", "dorgqr"):
        assert table[f"tg_lapack_{name}"] == lib.addresses[name] != 0
    assert {"tg_sys_malloc", "tg_sys_free", "tg_sys_log"} <= set(table)
    assert set(lapack.LOWERINGS) <= set(PRIMITIVES)
    registered = {}
    lapack.register(lambda prim, emit, supports, symbols, blas_threads:
                    registered.setdefault(prim, blas_threads))
    assert set(registered) == set(lapack.LOWERINGS) and all(registered.values())


def test_lapack_calls_run_in_the_serial_section_of_a_threaded_program(monkeypatch):
    """OpenBLAS's LAPACK threads spin between calls, as its gemm's do: in a program of
    several threads each call runs on one OpenBLAS thread (blas.py's serial section)."""
    from tracegrad.codegen import blas

    if not blas.serial_products():
        pytest.skip("this BLAS has no thread-count functions")
    monkeypatch.setenv("TRACEGRAD_NUM_THREADS", "2")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(64, 64)) + 8 * np.eye(64)
    f = tracegrad.jit(lambda a: np.linalg.inv(a) * 2.0, disk_cache=False)
    np.testing.assert_allclose(f(a), np.linalg.inv(a) * 2.0, rtol=1e-10)
    ir_text = f._last.native.llvm_ir()
    calls = re.findall(r"call void @(tg_blas_serial_enter|tg_ext_\w+|tg_blas_serial_exit)", ir_text)
    assert calls[:3] == ["tg_blas_serial_enter", calls[1], "tg_blas_serial_exit"], calls
