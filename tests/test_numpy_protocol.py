"""Plain NumPy code runs unchanged on tensors and traced values (NEP 13 / NEP 18)."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad
from tracegrad import ir
from tracegrad.tracer import Tensor, Traced, tensor, trace
from tracegrad.tracer import numpy as tnp


def loss(w, x):
    return np.mean(np.tanh(x @ w))


def loss_grad_ref(w, x):
    t = np.tanh(x @ w)
    return x.T @ (1 - t * t) / len(x)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal(3), rng.standard_normal((5, 3))


def test_user_loss_runs_eagerly_with_gradients(data):
    w_np, x = data
    w = tensor(w_np, requires_grad=True)
    out = loss(w, x)  # ndarray @ Tensor: ndarray.__matmul__ defers through __array_ufunc__
    assert isinstance(out, Tensor) and out.grad_fn.name() == "DivBackward0"
    np.testing.assert_allclose(out.item(), loss(w_np, x), rtol=1e-14)
    out.backward()
    np.testing.assert_allclose(w.grad.data, loss_grad_ref(w_np, x), rtol=1e-12)


def test_user_loss_traces_without_edits(data):
    w_np, x = data
    prog = trace(loss)(w_np, x)
    prims = [e.prim.name for e in prog.graph.eqns]
    assert prims == ["reshape", "dot", "reshape", "tanh", "reduce_sum", "div"]
    np.testing.assert_allclose(prog(w_np, x), loss(w_np, x), rtol=1e-14)


def test_closure_array_becomes_a_constant(data):
    w_np, x = data
    prog = trace(lambda w: loss(w, x))(w_np)
    assert len(prog.graph.constvars) == 1 and prog.graph.constvals[0].shape == (5, 3)
    np.testing.assert_allclose(prog(w_np), loss(w_np, x), rtol=1e-14)
    t = tensor(x)  # a captured eager tensor becomes a constant as well
    prog = trace(lambda w: loss(w, t))(w_np)
    np.testing.assert_array_equal(prog.graph.constvals[0], x)


UFUNCS = [np.exp, np.log, np.sqrt, np.tanh, np.sin, np.cos, np.abs, np.negative, np.square,
          np.log1p, np.expm1, np.sign]
BINARY_UFUNCS = [np.add, np.subtract, np.multiply, np.divide, np.power, np.maximum,
                 np.minimum, np.less, np.greater_equal, np.equal]


@pytest.mark.parametrize("ufunc", UFUNCS, ids=lambda f: f.__name__)
def test_unary_ufuncs_dispatch(ufunc):
    x = np.array([0.5, 1.5, 2.0])
    out = ufunc(tensor(x))
    assert isinstance(out, Tensor)
    np.testing.assert_allclose(out.data, ufunc(x), rtol=1e-15)
    prog = trace(ufunc)(x)
    np.testing.assert_allclose(prog(x), ufunc(x), rtol=1e-15)


@pytest.mark.parametrize("ufunc", BINARY_UFUNCS, ids=lambda f: f.__name__)
def test_binary_ufuncs_dispatch_with_plain_operands(ufunc):
    x, y = np.array([[0.5, 1.5, 2.0]]), np.array([[1.0], [2.0]])
    for a, b in ((tensor(x), y), (x, tensor(y)), (tensor(x), tensor(y))):
        out = ufunc(a, b)
        assert isinstance(out, Tensor)
        np.testing.assert_array_equal(out.data, ufunc(x, y))
    np.testing.assert_array_equal(trace(lambda a: ufunc(a, y))(x)(x), ufunc(x, y))


FUNCTIONS = [
    (np.sum, dict(axis=1)), (np.mean, dict(axis=0, keepdims=True)), (np.max, dict()),
    (np.min, dict(axis=-1)), (np.amax, dict(axis=0)), (np.var, dict(ddof=1)), (np.std, dict()),
    (np.reshape, dict(shape=(3, 2))), (np.transpose, dict()), (np.clip, dict(a_min=0.2, a_max=0.8)),
    (np.squeeze, dict()), (np.expand_dims, dict(axis=1)), (np.swapaxes, dict(axis1=0, axis2=1)),
    (np.ravel, dict()), (np.zeros_like, dict()), (np.ones_like, dict()),
    (np.full_like, dict(fill_value=3.0)), (np.broadcast_to, dict(shape=(4, 2, 3))),
]


@pytest.mark.parametrize("fn,kwargs", FUNCTIONS, ids=lambda v: getattr(v, "__name__", ""))
def test_array_functions_dispatch(fn, kwargs):
    x = np.random.default_rng(1).uniform(0, 1, (2, 3))
    out = fn(tensor(x), **kwargs)
    assert isinstance(out, Tensor)
    np.testing.assert_allclose(out.data, fn(x, **kwargs), rtol=1e-14)
    traced = trace(lambda a: fn(a, **kwargs))(x)
    np.testing.assert_allclose(traced(x), fn(x, **kwargs), rtol=1e-14)


def test_multi_operand_functions_dispatch():
    a, b = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    ta = tensor(a, requires_grad=True)
    cases = [
        (lambda p, q: np.where(p > 2, p, q)), (lambda p, q: np.concatenate([p, q], axis=0)),
        (lambda p, q: np.stack([p, q], axis=1)), (lambda p, q: np.dot(p, q.T)),
        (lambda p, q: np.matmul(p.T, q)), (lambda p, q: np.outer(p[0], q[1])),
        (lambda p, q: np.inner(p, q)), (lambda p, q: np.vdot(p, q)),
    ]
    for f in cases:
        want = f(a, b)
        np.testing.assert_allclose(f(ta, b).data, want)
        np.testing.assert_allclose(trace(f)(a, b)(a, b), want)


def test_ufunc_reduce_methods():
    x = np.arange(6.0).reshape(2, 3)
    t = tensor(x)
    np.testing.assert_array_equal(np.add.reduce(t).data, np.add.reduce(x))
    np.testing.assert_array_equal(np.maximum.reduce(t, axis=1).data, np.maximum.reduce(x, axis=1))
    np.testing.assert_array_equal(np.minimum.reduce(t, axis=None).data, np.minimum.reduce(x, None))
    np.testing.assert_array_equal(trace(lambda v: np.add.reduce(v, 1))(x)(x), x.sum(1))


def test_out_argument_into_numpy_arrays_is_rejected():
    t = tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="out="):
        np.add(t, 1.0, out=np.zeros(2))
    with pytest.raises(TypeError, match="out="):
        np.sum(t, out=np.zeros(()))


def test_ufunc_out_into_a_tracegrad_array_writes_it():
    """out= a tensor or traced array is an in-place update, returned, as NumPy's."""
    t, o = tensor([1.0, 2.0]), tensor(np.zeros(2))
    assert np.add(t, 1.0, out=o) is o and o.numpy().tolist() == [2.0, 3.0]
    a = np.ones(2)
    r = tracegrad.jit(lambda v: np.exp(v, out=v))(a)
    np.testing.assert_allclose(r, np.e)
    np.testing.assert_allclose(a, np.e)  # written back into the argument, as NumPy writes it


def test_unsupported_numpy_functions_name_themselves():
    t = tensor([1.0, 2.0])
    with pytest.raises(TypeError, match=r"np\.packbits is not supported"):
        np.packbits(t)
    with pytest.raises(TypeError, match=r"np\.isnat is not supported"):
        np.isnat(t)
    with pytest.raises(TypeError, match=r"np\.add\.reduceat is not supported"):
        np.add.reduceat(t, [0])
    with pytest.raises(TypeError, match=r"np\.sort_complex is not supported"):
        trace(np.sort_complex)(np.ones(3))


def test_traced_value_cannot_silently_become_an_array():
    with pytest.raises(TypeError, match="cannot convert a traced value"):
        trace(lambda v: np.asarray(v))(np.ones(2))


def test_promotion_follows_numpy_2():
    f32 = tensor(np.ones(2, np.float32))
    i32 = tensor(np.ones(2, np.int32))
    i64 = tensor(np.ones(2, np.int64))
    b = tensor(np.ones(2, bool))
    cases = [
        (f32 * 2.0, np.float32), (f32 * 2, np.float32), (i64 * 2.5, np.float64),
        (i32 * 3, np.int32), (i32 / i32, np.float64), (i64 / 2, np.float64),
        (f32 + i32, np.float64), (f32 + np.float64(1.0), np.float64), (b + b, np.bool_),
        (b * 2, np.int64), (f32 + np.ones(2), np.float64), (np.float32(2) * f32, np.float32),
        (tnp.sum(b), np.int64), (tnp.sum(i32), np.int64), (tnp.mean(i32), np.float64),
        (tnp.exp(i32), np.float64), (tnp.where(b, f32, 0), np.float32),
    ]
    for got, want in cases:
        assert got.dtype == want, (got, want)


def test_binary_primitives_receive_one_dtype():
    prog = trace(lambda x, i: x * i + 1)(np.ones(3, np.float32), np.ones(3, np.int64))
    assert str(prog) == (
        "{ lambda a:f32[3] b:i64[3] . let\n"
        "    c:f64[3] = convert[dtype=f64] a\n"
        "    d:f64[3] = convert[dtype=f64] b\n"
        "    e:f64[3] = mul c d\n"
        "    f:f64[3] = add e 1.0:f64[]\n"
        "  in (f) }")


def test_broadcasting_is_explicit_in_the_graph():
    prog = trace(lambda x, y: x + y)(np.ones((2, 1), np.float32), np.ones(3, np.float32))
    assert str(prog) == (
        "{ lambda a:f32[2,1] b:f32[3] . let\n"
        "    c:f32[2,3] = broadcast[shape=(2,3)] a\n"
        "    d:f32[2,3] = broadcast[shape=(2,3)] b\n"
        "    e:f32[2,3] = add c d\n"
        "  in (e) }")
    ir.verify(prog.graph)


def test_traced_values_are_traced_class():
    seen = []
    trace(lambda v: seen.append(type(v)) or v)(np.ones(1))
    assert seen == [Traced]
