"""tracegrad.numpy.linalg: values against numpy.linalg (float32/float64, batched, sizes
0 and 1), np.linalg dispatch on tensors, traced programs, gradients against finite
differences in float64 (eager backward and the IR autodiff pass), singular inputs."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy.linalg as tla
from tracegrad.testing import check_grads

F32, F64 = np.float32, np.float64


def _rng(seed=0):
    return np.random.default_rng(seed)


def general(*shape, seed=0):
    return _rng(seed).standard_normal(shape)


def well_conditioned(*shape, seed=0):
    return general(*shape, seed=seed) + shape[-1] * np.eye(shape[-1])


def spd(*shape, seed=0):
    x = general(*shape, seed=seed)
    return x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1])


def symmetric(*shape, seed=0):
    x = general(*shape, seed=seed)
    return x + np.swapaxes(x, -1, -2)


def _data(x):
    return np.asarray(getattr(x, "data", x))


def _close(ours, ref, dtype):
    tol = 2e-4 if dtype == F32 else 1e-10
    ours, ref = (_data(v) for v in (ours, ref))
    assert ours.shape == np.shape(ref)
    np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol)


def _compare(ours, ref, dtype):
    if isinstance(ref, tuple):
        assert len(ours) == len(ref)
        for o, r in zip(ours, ref):
            _compare(o, r, dtype)
    else:
        _close(ours, ref, dtype)


# (name, args maker (shape prefix -> arrays), kwargs); each value case runs with
# float32 and float64, unbatched and with batch dims (2, 3) where numpy batches.
VALUE_CASES = [
    ("inv", lambda b: [well_conditioned(*b, 3, 3)], {}),
    ("solve", lambda b: [well_conditioned(*b, 3, 3), general(*b, 3, 2)], {}),
    ("det", lambda b: [well_conditioned(*b, 4, 4)], {}),
    ("slogdet", lambda b: [general(*b, 4, 4)], {}),
    ("cholesky", lambda b: [spd(*b, 4, 4)], {}),
    ("cholesky", lambda b: [spd(*b, 3, 3)], {"upper": True}),
    ("eigh", lambda b: [symmetric(*b, 4, 4)], {}),
    ("eigvalsh", lambda b: [symmetric(*b, 4, 4)], {}),
    ("svd", lambda b: [general(*b, 4, 3)], {"full_matrices": False}),
    ("svd", lambda b: [general(*b, 3, 5)], {}),
    ("svd", lambda b: [general(*b, 3, 3)], {}),
    ("svd", lambda b: [general(*b, 4, 2)], {"compute_uv": False}),
    ("svdvals", lambda b: [general(*b, 2, 5)], {}),
    ("qr", lambda b: [general(*b, 5, 3)], {}),
    ("qr", lambda b: [general(*b, 3, 5)], {}),
    ("qr", lambda b: [general(*b, 5, 3)], {"mode": "complete"}),
    ("qr", lambda b: [general(*b, 4, 3)], {"mode": "r"}),
    ("pinv", lambda b: [general(*b, 4, 3)], {}),
    ("pinv", lambda b: [general(*b, 3, 5)], {"rcond": 1e-3}),
    ("pinv", lambda b: [general(*b, 3, 5)], {"rtol": None}),
    ("pinv", lambda b: [general(*b, 3, 5)], {"rtol": 0.5}),
    ("eigvalsh", lambda b: [general(*b, 4, 4)], {"UPLO": "U"}),
    ("cholesky", lambda b: [np.triu(spd(*b, 3, 3)) + np.tril(general(*b, 3, 3), -1)], {}),
    ("matrix_power", lambda b: [well_conditioned(*b, 3, 3), 5], {}),
    ("matrix_power", lambda b: [well_conditioned(*b, 3, 3), -3], {}),
    ("matrix_power", lambda b: [general(*b, 3, 3), 0], {}),
    ("matrix_rank", lambda b: [general(*b, 4, 3)], {}),
    ("matrix_rank", lambda b: [general(*b, 4, 1) @ general(*b, 1, 3, seed=1)], {}),
    ("cond", lambda b: [well_conditioned(*b, 3, 3)], {}),
    ("cond", lambda b: [well_conditioned(*b, 3, 3), 1], {}),
    ("cond", lambda b: [well_conditioned(*b, 3, 3), -np.inf], {}),
    ("cond", lambda b: [well_conditioned(*b, 3, 3), "fro"], {}),
    ("cond", lambda b: [well_conditioned(*b, 3, 3), -2], {}),
    ("matrix_norm", lambda b: [general(*b, 3, 4)], {}),
    ("matrix_norm", lambda b: [general(*b, 3, 4)], {"ord": "nuc", "keepdims": True}),
    ("vector_norm", lambda b: [general(*b, 3, 4)], {}),
    ("vector_norm", lambda b: [general(*b, 3, 4)], {"axis": -1, "ord": 3, "keepdims": True}),
    ("vector_norm", lambda b: [general(*b, 3, 4)], {"axis": (-2, -1), "ord": np.inf}),
    ("trace", lambda b: [general(*b, 3, 4)], {}),
    ("trace", lambda b: [general(*b, 3, 4)], {"offset": 1}),
    ("trace", lambda b: [general(*b, 4, 3)], {"offset": -2}),
    ("diagonal", lambda b: [general(*b, 3, 4)], {"offset": 2}),
    ("diagonal", lambda b: [general(*b, 4, 3)], {"offset": -1}),
    ("matrix_transpose", lambda b: [general(*b, 3, 4)], {}),
    ("vecdot", lambda b: [general(*b, 3, 4), general(4, seed=1)], {}),
    ("vecdot", lambda b: [general(*b, 3, 4), general(*b, 3, 4, seed=1)], {"axis": -2}),
    ("cross", lambda b: [general(*b, 3), general(*b, 3, seed=1)], {}),
    ("cross", lambda b: [general(*b, 3, 2), general(3, 1, seed=1)], {"axis": -2}),
    ("matmul", lambda b: [general(*b, 3, 4), general(4, 2, seed=1)], {}),
]

UNBATCHED_CASES = [
    ("lstsq", lambda: [general(5, 3), general(5)], {}),
    ("lstsq", lambda: [general(5, 3), general(5, 2)], {"rcond": None}),
    ("lstsq", lambda: [general(3, 5), general(3, 2)], {}),
    ("multi_dot", lambda: [[general(3, 4), general(4, 6, seed=1), general(6, 2, seed=2)]], {}),
    ("multi_dot", lambda: [[general(4), general(4, 6, seed=1), general(6, 5, seed=2),
                            general(5, seed=3)]], {}),
    ("multi_dot", lambda: [[general(4, 2), general(2, seed=1)]], {}),
    ("tensorsolve", lambda: [well_conditioned(6, 6).reshape(6, 2, 3), general(6)], {}),
    ("tensorsolve", lambda: [well_conditioned(6, 6).reshape(2, 3, 2, 3), general(3, 2)],
     {"axes": (0,)}),
    ("tensorinv", lambda: [well_conditioned(6, 6).reshape(2, 3, 6)], {"ind": 2}),
    ("tensorinv", lambda: [well_conditioned(6, 6).reshape(6, 3, 2)], {"ind": 1}),
    ("outer", lambda: [general(3), general(4, seed=1)], {}),
    ("tensordot", lambda: [general(2, 3, 4), general(3, 4, 5, seed=1)], {}),
    ("tensordot", lambda: [general(2, 3, 4), general(4, 2, seed=1)], {"axes": ([0, 2], [1, 0])}),
    ("tensordot", lambda: [general(2, 3), general(4, seed=1)], {"axes": 0}),
]

NORM_ORDS_MATRIX = [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]
NORM_ORDS_VECTOR = [None, 0, 1, -1, 2, -2, 3, 0.5, np.inf, -np.inf]


def _numpy_args(args, dtype):
    return [a.astype(dtype) if isinstance(a, np.ndarray) else
            [x.astype(dtype) for x in a] if isinstance(a, list) else a for a in args]


def _tensor_args(args):
    return [tg.tensor(a) if isinstance(a, np.ndarray) else
            [tg.tensor(x) for x in a] if isinstance(a, list) else a for a in args]


def _ids(cases):
    return [f"{c[0]}-{i}" for i, c in enumerate(cases)]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("batch", [(), (2, 3)])
@pytest.mark.parametrize("case", VALUE_CASES, ids=_ids(VALUE_CASES))
def test_values_match_numpy(case, batch, dtype):
    name, make, kwargs = case
    args = _numpy_args(make(batch), dtype)
    ref = getattr(np.linalg, name)(*args, **kwargs)
    ours = getattr(tla, name)(*_tensor_args(args), **kwargs)
    _compare(ours, ref, dtype)
    assert _data(ours if not isinstance(ours, tuple) else ours[0]).dtype == \
        np.asarray(ref if not isinstance(ref, tuple) else ref[0]).dtype


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("case", UNBATCHED_CASES, ids=_ids(UNBATCHED_CASES))
def test_unbatched_values_match_numpy(case, dtype):
    name, make, kwargs = case
    args = _numpy_args(make(), dtype)
    ref = getattr(np.linalg, name)(*args, **kwargs)
    ours = getattr(tla, name)(*_tensor_args(args), **kwargs)
    if name == "lstsq":
        x, resid, rank, s = ours
        _compare((x, resid, s), (ref[0], ref[1], ref[3]), dtype)
        assert int(_data(rank)) == ref[2]
    else:
        _compare(ours, ref, dtype)


@pytest.mark.parametrize("ord", NORM_ORDS_MATRIX)
@pytest.mark.parametrize("axis", [None, (0, 1), (1, 0), (-1, 0)])
def test_matrix_norms(ord, axis):
    x = general(3, 4) if axis is None else general(3, 4, 2)
    for keepdims in (False, True):
        ref = np.linalg.norm(x, ord, axis, keepdims)
        _close(tla.norm(tg.tensor(x), ord, axis, keepdims), ref, F64)


@pytest.mark.parametrize("ord", NORM_ORDS_VECTOR)
@pytest.mark.parametrize("axis", [None, 0, -1])
def test_vector_norms(ord, axis):
    x = general(5) if axis is None else general(3, 5)
    for keepdims in (False, True):
        ref = np.linalg.norm(x, ord, axis, keepdims)
        _close(tla.norm(tg.tensor(x), ord, axis, keepdims), ref, F64)


def test_eigh_upper_triangle():
    # LAPACK's 'U' path may choose other eigenvector signs than the transposed 'L' one
    a = general(2, 4, 4)
    w, v = tla.eigh(tg.tensor(a), UPLO="u")
    w_ref, v_ref = np.linalg.eigh(a, "U")
    _close(w, w_ref, F64)
    _close(np.abs(_data(v)), np.abs(v_ref), F64)


def test_norm_default_flattens_any_rank_and_rejects_bad_orders():
    x = general(2, 3, 4)
    _close(tla.norm(x), np.linalg.norm(x), F64)
    _close(tla.norm(x, keepdims=True), np.linalg.norm(x, keepdims=True), F64)
    with pytest.raises(ValueError, match="Improper number of dimensions"):
        tla.norm(x, 2)
    with pytest.raises(ValueError, match="Invalid norm order 'fro' for vectors"):
        tla.norm(general(3), "fro", axis=0)
    with pytest.raises(ValueError, match="Invalid norm order for matrices"):
        tla.norm(general(3, 3), 3)
    with pytest.raises(ValueError, match="Duplicate axes"):
        tla.norm(general(3, 3), axis=(0, 0))


def test_integer_inputs_compute_in_float64():
    a = np.array([[2, 1], [1, 3]])
    assert _data(tla.inv(tg.tensor(a))).dtype == np.float64
    _close(tla.det(tg.tensor(a)), np.linalg.det(a), F64)
    assert _data(tla.trace(tg.tensor(a))).dtype == np.linalg.trace(a).dtype


# ---- edge sizes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1])
def test_square_edge_sizes(n):
    a = well_conditioned(2, n, n) if n else np.zeros((2, 0, 0))
    for name in ("inv", "det", "slogdet", "cholesky", "eigvalsh", "eigh", "matrix_rank"):
        ref = getattr(np.linalg, name)(a + (np.eye(n) if name == "cholesky" else 0))
        ours = getattr(tla, name)(tg.tensor(a + (np.eye(n) if name == "cholesky" else 0)))
        _compare(ours if isinstance(ref, tuple) else ours, ref, F64)
    _close(tla.solve(a, np.ones((2, n, 3))), np.linalg.solve(a, np.ones((2, n, 3))), F64)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (1, 4), (4, 1), (1, 1)])
def test_rectangular_edge_sizes(shape):
    a = general(*shape) if 0 not in shape else np.zeros(shape)
    _compare(tla.svd(a, full_matrices=False), np.linalg.svd(a, full_matrices=False), F64)
    _close(tla.svdvals(a), np.linalg.svd(a, compute_uv=False), F64)
    _compare(tla.qr(a), np.linalg.qr(a), F64)
    _close(tla.pinv(a), np.linalg.pinv(a), F64)
    _close(tla.norm(a), np.linalg.norm(a), F64)


# ---- dispatch, tracing ---------------------------------------------------------------------------------

def test_numpy_linalg_functions_dispatch_on_tensors():
    a = tg.tensor(well_conditioned(3, 3), requires_grad=True)
    for f in (np.linalg.inv, np.linalg.det, np.linalg.cholesky, np.linalg.eigvalsh,
              np.linalg.norm, np.linalg.pinv, np.linalg.matrix_rank, np.linalg.cond):
        out = f(a)
        assert isinstance(out if not isinstance(out, tuple) else out[0], tg.Tensor), f
    w, v = np.linalg.eigh(a)
    assert isinstance(v, tg.Tensor) and w.shape == (3,)
    family = importlib.import_module("tracegrad.tracer.numpy.linalg")
    assert set(family.NUMPY.values()) <= {getattr(tla, n) for n in tla.__all__}
    assert len(family.NUMPY) >= 20 and len(tla.__all__) >= 20


def test_import_forms():
    import tracegrad.numpy as tnp
    assert tnp.linalg is tla
    assert "linalg" in tnp.__all__


def _loss(a, b):
    x = np.linalg.solve(a, b)
    sign, logdet = np.linalg.slogdet(a)
    w, v = np.linalg.eigh(a @ a.T)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    q, r = np.linalg.qr(a)
    return (np.sum(x * x) + logdet + np.sum(w) + np.sum(v[:, -1] ** 2) + np.sum(s)
            + np.sum(np.linalg.inv(a)) + np.sum(q * r) + np.linalg.norm(a, "nuc"))


def test_traced_program_matches_eager():
    a, b = well_conditioned(3, 3), general(3, 2, seed=1)
    prog = tg.trace(_loss)(a, b)
    names = {e.prim.name for e in prog.graph.eqns}
    assert {"solve", "slogdet", "eigh", "svd", "qr", "inv", "svdvals"} <= names
    a2 = well_conditioned(3, 3, seed=5)
    np.testing.assert_allclose(prog(a2, b), _loss(a2, b), rtol=1e-12)


def test_gradients_of_a_composite_loss():
    a, b = well_conditioned(3, 3), general(3, 2, seed=1)
    check_grads(_loss, (a, b))
    ta, tb = tg.tensor(a, requires_grad=True), tg.tensor(b, requires_grad=True)
    _loss(ta, tb).backward()
    ga, gb = tg.grad(_loss, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(_data(ta.grad), ga, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(_data(tb.grad), gb, rtol=1e-9, atol=1e-12)


# ---- gradients against finite differences (float64) -------------------------------------------------

def _vectors(f):
    return lambda a: f(a)[1]


def _sym(a):
    return (a + np.swapaxes(a, -1, -2)) / 2


GRAD_CASES = [
    ("inv", lambda a: np.sum(np.sin(np.linalg.inv(a))), [well_conditioned(2, 3, 3)]),
    ("solve", lambda a, b: np.linalg.solve(a, b), [well_conditioned(3, 3), general(3, seed=1)]),
    ("solve_batched", lambda a, b: np.linalg.solve(a, b),
     [well_conditioned(2, 3, 3), general(3, 3, 2, seed=1)[:1].repeat(2, 0)]),
    ("det", np.linalg.det, [well_conditioned(2, 3, 3)]),
    ("slogdet", lambda a: np.linalg.slogdet(a)[1], [general(3, 3)]),
    # derivatives of a symmetric operand (JAX's and PyTorch's): read through _sym, so
    # that the finite differences move along symmetric directions only
    ("cholesky", lambda a: np.linalg.cholesky(_sym(a)), [spd(2, 3, 3)]),
    ("cholesky_upper", lambda a: tla.cholesky(_sym(a), upper=True), [spd(3, 3)]),
    ("eigh", lambda a: np.linalg.eigh(_sym(a)), [symmetric(3, 3)]),
    ("eigvalsh", lambda a: np.linalg.eigvalsh(_sym(a)), [general(2, 4, 4)]),
    ("svd_square", lambda a: np.linalg.svd(a), [general(3, 3)]),
    ("svd_tall", lambda a: np.linalg.svd(a, full_matrices=False), [general(5, 3)]),
    ("svd_wide", lambda a: np.linalg.svd(a, full_matrices=False), [general(2, 3, 5)]),
    ("svdvals", lambda a: np.linalg.svd(a, compute_uv=False), [general(4, 3)]),
    ("qr_tall", lambda a: np.linalg.qr(a), [general(2, 5, 3)]),
    ("qr_square_complete", lambda a: np.linalg.qr(a, "complete"), [general(3, 3)]),
    ("qr_wide", lambda a: np.linalg.qr(a), [general(3, 5)]),
    ("pinv", np.linalg.pinv, [general(4, 3)]),
    ("lstsq", lambda a, b: np.linalg.lstsq(a, b)[0], [general(5, 3), general(5, seed=1)]),
    ("matrix_power", lambda a: np.linalg.matrix_power(a, 3), [general(3, 3)]),
    ("matrix_power_neg", lambda a: np.linalg.matrix_power(a, -2), [well_conditioned(3, 3)]),
    ("cond", np.linalg.cond, [well_conditioned(3, 3)]),
    ("cond_1", lambda a: np.linalg.cond(a, 1), [well_conditioned(3, 3)]),
    ("norm_2", lambda a: np.linalg.norm(a, 2), [general(3, 4)]),
    ("norm_nuc", lambda a: np.linalg.norm(a, "nuc"), [general(4, 3)]),
    ("norm_vec", lambda a: np.linalg.norm(a, 3, axis=1), [general(2, 4)]),
    ("multi_dot", lambda a, b, c: np.linalg.multi_dot([a, b, c]),
     [general(2, 3), general(3, 4, seed=1), general(4, seed=2)]),
    ("tensorsolve", lambda a, b: np.linalg.tensorsolve(a, b),
     [well_conditioned(6, 6).reshape(6, 2, 3), general(6, seed=1)]),
    ("tensorinv", lambda a: np.linalg.tensorinv(a, 1),
     [well_conditioned(6, 6).reshape(6, 2, 3)]),
    ("trace_cross", lambda a, b: tla.trace(a) * tla.cross(a[0], b),
     [general(3, 3), general(3, seed=1)]),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradients_match_finite_differences(case):
    _, f, args = case
    check_grads(f, args)


@pytest.mark.parametrize("case", [c for c in GRAD_CASES if c[0] in
                                  ("inv", "det", "cholesky", "eigvalsh", "svdvals", "pinv",
                                   "eigh", "qr_tall", "solve")],
                         ids=lambda c: c[0])
def test_second_order_gradients(case):
    _, f, args = case
    check_grads(f, args, order=2, eps=1e-5, rtol=1e-4, atol=1e-6)


def test_eager_backward_matches_graph_gradient():
    a = symmetric(4, 4)
    t = tg.tensor(a, requires_grad=True)
    w, v = np.linalg.eigh(t)
    (np.sum(w ** 3) + np.sum(v[0] ** 2)).backward()
    g = tg.grad(lambda x: np.sum(np.linalg.eigh(x)[0] ** 3) + np.sum(np.linalg.eigh(x)[1][0] ** 2))(a)
    np.testing.assert_allclose(_data(t.grad), g, rtol=1e-9, atol=1e-12)
    # the gradient of a symmetric operand is symmetric (as JAX's and PyTorch's)
    np.testing.assert_allclose(_data(t.grad), _data(t.grad).T, rtol=1e-12, atol=1e-14)


def test_degenerate_spectrum_values_gradient_stays_finite():
    # eigenvalues of the identity coincide: the vectors' 1/(wi - wj) terms are infinite,
    # but a zero cotangent of the vectors contributes exactly zero
    g = tg.grad(lambda a: np.sum(np.linalg.eigh(a)[0] ** 2))(np.eye(3))
    np.testing.assert_allclose(g, 2 * np.eye(3))
    g = tg.grad(lambda a: np.sum(np.linalg.svd(a)[1]))(np.eye(3))
    np.testing.assert_allclose(g, np.eye(3))
    g = tg.grad(lambda a: np.linalg.norm(a, 2))(np.diag([3.0, 1.0, 1.0]))
    np.testing.assert_allclose(g, np.diag([1.0, 0.0, 0.0]), atol=1e-15)


def test_full_matrices_gradient_is_refused():
    with pytest.raises(NotImplementedError, match="full_matrices"):
        tg.grad(lambda a: np.sum(np.linalg.svd(a)[0]))(general(4, 3))
    with pytest.raises(NotImplementedError, match="complete"):
        tg.grad(lambda a: np.sum(np.linalg.qr(a, "complete")[0]))(general(4, 3))


# ---- singular and invalid inputs -------------------------------------------------------------------------

def test_singular_matrices_give_nan_not_errors():
    s = np.array([[[1.0, 2.0], [2.0, 4.0]], [[2.0, 0.0], [0.0, 1.0]]])
    inv = _data(tla.inv(tg.tensor(s)))
    assert np.isnan(inv[0]).all() and np.allclose(inv[1], np.linalg.inv(s[1]))
    x = _data(tla.solve(s, np.ones((2, 2, 1))))
    assert np.isnan(x[0]).all() and np.allclose(x[1], [[0.5], [1.0]])
    sign, logdet = tla.slogdet(s)
    assert _data(sign)[0] == 0 and _data(logdet)[0] == -np.inf
    assert _data(tla.det(s))[0] == 0
    not_pd = _data(tla.cholesky(np.array([[1.0, 2.0], [2.0, 1.0]])))
    assert np.isnan(not_pd).all()
    assert int(_data(tla.matrix_rank(s[0]))) == 1


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(np.linalg.LinAlgError, match="square"):
        tla.inv(general(2, 3))
    with pytest.raises(np.linalg.LinAlgError, match="two-dimensional"):
        tla.det(general(3))
    with pytest.raises(ValueError, match="rows"):
        tla.solve(general(3, 3), general(4))
    with pytest.raises(ValueError, match="mode"):
        tla.qr(general(3, 3), mode="raw")
    with pytest.raises(TypeError, match="integer"):
        tla.matrix_power(general(3, 3), 1.5)
    with pytest.raises(ValueError, match="one-dimensional"):
        tla.outer(general(2, 2), general(2))
    with pytest.raises(ValueError, match="3-dimensional"):
        tla.cross(general(2), general(2))
    with pytest.raises(ValueError, match="UPLO"):
        tla.eigh(general(2, 2), UPLO="X")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_eager_triangular_solve_uses_trsm_with_the_references_values(dtype):
    from tracegrad.ir.primitives import PRIMITIVES
    prim = PRIMITIVES["triangular_solve"]
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((3, 1, 40, 40)) * 0.3 + 40 * np.eye(40)).astype(dtype)
    b = rng.standard_normal((4, 40, 2)).astype(dtype)
    for lower in (True, False):
        for transpose_a in (False, True):
            for unit in (False, True):
                kw = dict(lower=lower, transpose_a=transpose_a, unit_diagonal=unit)
                got, ref = prim.run(a, b, **kw), prim.impl(a, b, **kw)
                assert got.dtype == ref.dtype and got.shape == ref.shape == (3, 4, 40, 2)
                tol = 1e-5 if dtype == np.float32 else 1e-12   # of values about 0.05
                np.testing.assert_allclose(got, ref, rtol=tol * 10, atol=tol)
    singular = np.tril(rng.standard_normal((20, 20))).astype(dtype)
    singular[3, 3] = 0
    out = prim.run(singular, b[0, :20], lower=True, transpose_a=False, unit_diagonal=False)
    assert not np.isfinite(out).all()


@pytest.mark.parametrize("fn", [
    lambda a: np.linalg.pinv(a, hermitian=True),
    lambda a: np.linalg.svd(a, hermitian=True, compute_uv=False),
    lambda a: np.linalg.matrix_rank(a, hermitian=True),
])
def test_hermitian_true_reads_the_lower_triangle_as_numpy(fn):
    """NumPy's hermitian=True path reads the lower triangle only (it was ignored)."""
    a = np.array([[2.0, 1.0, 0.0], [-3.0, 1.0, 4.0], [0.5, 2.0, 1.0]])
    for m in (a, np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])):
        np.testing.assert_allclose(tg.jit(fn)(m), fn(m), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(fn(tg.tensor(m))), fn(m), rtol=1e-10, atol=1e-12)
