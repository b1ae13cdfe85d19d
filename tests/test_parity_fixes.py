"""NumPy/PyTorch/JAX parity bugs that were strict xfails or fuzzer KNOWN_BUGS, fixed:
each test states the reference's behaviour and checks it eager, traced and compiled."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad.tracer import Tensor

FLOATS = ("float32", "float64")


def _data(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


# ---- linalg.lstsq's rank is int32 (numpy.linalg.lstsq) ---------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(5, 3), (3, 3), (3, 5)])
def test_lstsq_rank_is_int32_like_numpy(dtype, shape):
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-2, 2, shape).astype(dtype), rng.uniform(-2, 2, shape[0]).astype(dtype)
    want = np.linalg.lstsq(a, b)[2]
    got_eager = tnp.linalg.lstsq(tg.tensor(a), tg.tensor(b))[2]
    got_jit = tg.jit(lambda a, b: tnp.linalg.lstsq(a, b)[2])(a, b)
    for got in (got_eager, got_jit, tnp.linalg.lstsq(a, b)[2]):
        assert _data(got).dtype == want.dtype == np.int32
        assert int(_data(got)) == int(want)


def test_lstsq_rank_deficient_rank_and_matrix_rank_dtype():
    a = np.outer([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 2.0])
    rank = tnp.linalg.lstsq(tg.tensor(a), tg.tensor(np.ones(4)))[2]
    assert _data(rank).dtype == np.int32 and int(_data(rank)) == 1
    # matrix_rank keeps numpy's own (int64) dtype
    assert _data(tnp.linalg.matrix_rank(tg.tensor(a))).dtype == np.linalg.matrix_rank(a).dtype


# ---- matrix_power(a, 0) is of a's kind ----------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (0, 2, 2)])
def test_matrix_power_zero_is_an_identity_of_the_input_kind(dtype, shape):
    a = np.random.default_rng(1).uniform(-1, 1, shape).astype(dtype)
    want = np.linalg.matrix_power(a, 0)
    t = tg.tensor(a)
    out = tnp.linalg.matrix_power(t, 0)
    assert isinstance(out, Tensor)
    np.testing.assert_array_equal(out.data, want)
    assert out.dtype == want.dtype
    got = tg.jit(lambda x: tnp.linalg.matrix_power(x, 0))(a)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype
    plain = tnp.linalg.matrix_power(a, 0)
    assert isinstance(plain, np.ndarray) and plain.dtype == want.dtype


def test_matrix_power_zero_is_traced_and_has_zero_gradient():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    program = tg.trace(lambda x: tnp.linalg.matrix_power(x, 0))(a)
    assert "broadcast" in str(program)
    t = tg.tensor(a, requires_grad=True)
    (tnp.linalg.matrix_power(t, 0) * t).sum().backward()
    np.testing.assert_array_equal(t.grad.data, np.eye(2))
    _, (g,) = tg.compile_grad(lambda x: tnp.sum(tnp.linalg.matrix_power(x, 0) * x))(a)
    np.testing.assert_array_equal(g, np.eye(2))


# ---- bincount sums weights in float64 ----------------------------------------------------

@pytest.mark.parametrize("wdtype", ["float32", "float64", "int32", "int64", "bool"])
def test_bincount_weights_give_float64_like_numpy(wdtype):
    x = np.array([0, 1, 1, 3, 2, 1])
    w = np.array([0.5, 1.25, -2.0, 3.0, 1.0, 0.0]).astype(wdtype)
    want = np.bincount(x, w, minlength=5)
    for got in (tnp.bincount(x, w, minlength=5),
                tnp.bincount(tg.tensor(x), tg.tensor(w), length=5),
                tg.jit(lambda x, w: tnp.bincount(x, w, length=5))(x, w)):
        assert _data(got).dtype == want.dtype == np.float64
        np.testing.assert_array_equal(_data(got), want)


def test_bincount_float32_weights_gradient_is_float32():
    x = np.array([0, 2, 2, 1])
    w = tg.tensor(np.array([1.0, 2.0, 3.0, 4.0], np.float32), requires_grad=True)
    out = tnp.bincount(tg.tensor(x), w, length=3)
    assert out.dtype == np.float64
    (out * np.array([1.0, 10.0, 100.0])).sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad.data, [1.0, 100.0, 100.0, 10.0])


def test_bincount_without_weights_counts_int64():
    x = np.array([1, 1, 0])
    assert _data(tnp.bincount(tg.tensor(x), length=3)).dtype == np.bincount(x).dtype


# ---- copyto(where=) differentiates eagerly ------------------------------------------------

@pytest.mark.parametrize("mask_kind", ["tensor", "array"])
def test_copyto_where_eager_backward(mask_kind):
    mask = np.array([True, False, True])
    a = tg.tensor(np.array([1.0, 5.0, 2.0]), requires_grad=True)
    b = tg.tensor(np.array([3.0, 4.0, -1.0]), requires_grad=True)
    dst = tnp.copy(a)
    tnp.copyto(dst, b, where=tg.tensor(mask) if mask_kind == "tensor" else mask)
    np.testing.assert_array_equal(dst.data, [3.0, 5.0, -1.0])
    (dst * dst).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [0.0, 10.0, 0.0])
    np.testing.assert_array_equal(b.grad.data, [6.0, 0.0, -2.0])


def test_copyto_where_broadcast_source_backward_matches_torch():
    torch = pytest.importorskip("torch")
    mask = np.array([[True, False, True], [False, False, True]])
    a0, b0 = np.arange(6.0).reshape(2, 3), np.array([7.0, 8.0, 9.0])
    a, b = tg.tensor(a0, requires_grad=True), tg.tensor(b0, requires_grad=True)
    dst = a * 1.0
    tnp.copyto(dst, b, where=tg.tensor(mask))
    (dst ** 2).sum().backward()
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a0, b0))
    (torch.where(torch.tensor(mask), tb, ta) ** 2).sum().backward()
    np.testing.assert_allclose(a.grad.data, ta.grad.numpy())
    np.testing.assert_allclose(b.grad.data, tb.grad.numpy())


def test_where_saves_no_branch_values():
    # PyTorch's WhereBackward saves the condition only: changing a branch in place
    # afterwards leaves backward valid (its gradient does not read branch values).
    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 2.0
    out = tnp.where(tg.tensor(np.array([True, False])), y, 0.0)
    y += 1.0
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 0.0])


def test_a_value_read_by_backward_still_raises_after_an_in_place_change():
    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 2.0
    out = y * y
    y += 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


# ---- .var() is the variance on traced values ----------------------------------------------

VAR_KWARGS = [{}, {"axis": 0}, {"axis": 1, "ddof": 1}, {"axis": (0, 1), "keepdims": True}]


@pytest.mark.parametrize("kwargs", VAR_KWARGS)
@pytest.mark.parametrize("method", ["var", "std"])
def test_var_method_on_traced_values_and_tensors(method, kwargs):
    x = np.random.default_rng(2).uniform(-2, 2, (3, 4))
    want = getattr(x, method)(**kwargs)
    f = lambda v: getattr(v, method)(**kwargs)  # noqa: E731
    for got in (f(tg.tensor(x)), tg.trace(f)(x)(x), tg.jit(f)(x)):
        np.testing.assert_allclose(_data(got), want, rtol=1e-12)
        assert _data(got).shape == np.shape(want)


def test_var_method_gradient_under_compile_grad_and_vmap():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    _, (g,) = tg.compile_grad(lambda v: v.var())(x)
    np.testing.assert_allclose(g, 2 * (x - x.mean()) / x.size)
    rows = np.arange(6.0).reshape(2, 3) ** 2
    np.testing.assert_allclose(tg.vmap(lambda r: r.var(ddof=1))(rows), rows.var(axis=1, ddof=1))


def test_graph_builder_values_still_name_their_graph_variable():
    from tracegrad.ir import GraphBuilder, ShapedArray, ops
    b = GraphBuilder(record_source=False)
    x = b.new_input(ShapedArray((2,), np.dtype(np.float64)))
    y = ops.sin(x)
    assert b.build([y]).outvars[0] is y.var
