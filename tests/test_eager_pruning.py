"""Eager backward computes only the gradients some leaf needs, as PyTorch's engine does,
and the operators' fast paths record exactly what the general path records."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.ir.primitives import PRIMITIVES


@pytest.fixture
def runs(monkeypatch):
    """Counts of primitive evaluations by name (forward and backward alike)."""
    counts = {}

    def counting(prim):
        run = prim.run

        def counted(*args, **params):
            counts[prim.name] = counts.get(prim.name, 0) + 1
            return run(*args, **params)
        return counted
    for name in ("dot", "mul", "div", "neg", "sub"):
        monkeypatch.setattr(PRIMITIVES[name], "run", counting(PRIMITIVES[name]))
    return counts


def _mlp(x, w, v):
    return ((x @ w).tanh() @ v).sum()


def test_matmul_with_a_constant_input_runs_no_gradient_for_it(runs):
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((4, 3)))
    w, v = (tg.tensor(rng.standard_normal(s), requires_grad=True) for s in ((3, 5), (5, 2)))
    loss = _mlp(x, w, v)
    assert runs["dot"] == 2
    loss.backward()
    assert runs["dot"] == 2 + 3  # dv, dh and dw; never dx, as PyTorch's 5 matmuls
    xg = tg.tensor(x.data, requires_grad=True)
    wg, vg = (tg.tensor(t.data, requires_grad=True) for t in (w, v))
    _mlp(xg, wg, vg).backward()
    np.testing.assert_allclose(w.grad.data, wg.grad.data, rtol=1e-14)
    np.testing.assert_allclose(v.grad.data, vg.grad.data, rtol=1e-14)


@pytest.mark.parametrize("op, counted, computed", [
    (lambda a, c: a * c, "mul", 1),     # d/da only: g * c
    (lambda a, c: c * a, "mul", 1),
    (lambda a, c: a / c, "div", 1),     # g / c, and never the d/dc quotient
    (lambda a, c: a - c, "neg", 0),     # g for a, and never -g for c
    (lambda a, c: c - a, "neg", 1),     # -g for a
])
def test_elementwise_backward_skips_the_constant_side(runs, op, counted, computed):
    a = tg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    c = tg.tensor(np.array([2.0, 4.0, 8.0]))
    y = op(a, c)
    before = runs.get(counted, 0)
    y.backward(tg.tensor(np.ones(3)))
    assert runs.get(counted, 0) - before == computed
    a2, c2 = (tg.tensor(t.data, requires_grad=True) for t in (a, c))
    op(a2, c2).backward(tg.tensor(np.ones(3)))
    assert np.array_equal(a.grad.data, a2.grad.data)
    assert c.grad is None


def _recording_identity(calls):
    f = tg.custom_vjp(lambda x: x)
    f.defvjp(lambda x: (x, None), lambda res, g: (calls.append(1) or g,))
    return f


def test_grad_runs_only_the_nodes_leading_to_its_inputs():
    calls = []
    f = _recording_identity(calls)
    a = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = tg.tensor(np.array([3.0, 4.0]), requires_grad=True)
    z = (a * 3.0).sum() + f(b * b).sum()
    da, = tg.autograd.grad([z], [a], retain_graph=True)
    assert da.data.tolist() == [3.0, 3.0] and calls == []  # b's branch never ran
    da2, db = tg.autograd.grad([z], [a, b])
    assert da2.data.tolist() == [3.0, 3.0] and db.data.tolist() == [6.0, 8.0] and calls == [1]
    assert a.grad is None and b.grad is None


def test_grad_of_an_unrelated_input_is_none_and_runs_nothing():
    calls = []
    f = _recording_identity(calls)
    a = tg.tensor(2.0, requires_grad=True)
    b = tg.tensor(3.0, requires_grad=True)
    assert tg.autograd.grad([f(a) * 2.0], [b], allow_unused=True) == (None,) and calls == []
    with pytest.raises(RuntimeError, match="allow_unused=True"):  # as torch.autograd.grad
        tg.autograd.grad([f(a) * 2.0], [b])


def test_grad_pruning_keeps_second_order():
    a = tg.tensor(3.0, requires_grad=True)
    b = tg.tensor(5.0, requires_grad=True)
    z = a ** 3 + (b * a) * b
    da, = tg.autograd.grad([z], [a], create_graph=True)
    assert float(da) == 27.0 + 25.0
    dda, db = tg.autograd.grad([da], [a, b])
    assert float(dda) == 18.0 and float(db) == 10.0


# ---- the operators' fast paths against the general path (tracegrad.numpy) -------------------

OPERATORS = [
    ("add", lambda x, y: x + y), ("subtract", lambda x, y: x - y),
    ("multiply", lambda x, y: x * y), ("divide", lambda x, y: x / y),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("other", ["tensor", 2, 0.5, "row", "int tensor"])
@pytest.mark.parametrize("name, op", OPERATORS)
def test_operators_record_what_the_namespace_records(name, op, other, dtype):
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((2, 3)).astype(dtype) + 3
    o = {"tensor": tg.tensor(rng.standard_normal((2, 3)).astype(dtype) + 3, requires_grad=True),
         "row": tg.tensor(rng.standard_normal(3).astype(dtype) + 3, requires_grad=True),
         "int tensor": tg.tensor(np.array([1, 2, 3]))}.get(other, other)
    for args in ((0, 1), (1, 0)):  # both operand orders: the reflected operators too
        x = tg.tensor(xs, requires_grad=True)
        fast = op(*[(x, o)[i] for i in args])
        general = getattr(tg.numpy, name)(*[(tg.tensor(xs, requires_grad=True), o)[i] for i in args])
        assert fast.dtype == general.dtype and fast.shape == general.shape
        assert np.array_equal(fast.data, general.data)
        assert fast.grad_fn.name() == general.grad_fn.name()
        fast.sum().backward()
        assert x.grad.dtype == dtype and x.grad.shape == xs.shape


@pytest.mark.parametrize("name", ["exp", "tanh", "sqrt", "negative"])
def test_unary_methods_record_what_the_namespace_records(name):
    x = tg.tensor(np.array([0.5, 1.5], np.float32), requires_grad=True)
    fast = -x if name == "negative" else getattr(x, name)()
    general = getattr(tg.numpy, name)(x)
    assert fast.dtype == np.float32 and np.array_equal(fast.data, general.data)
    assert fast.grad_fn.name() == general.grad_fn.name()


def test_integer_tensors_take_the_general_path():
    i = tg.tensor(np.array([1, 2, 3]))
    assert (i + 1).dtype == np.int64 and (i / 2).dtype == np.float64
    assert (-i).data.tolist() == [-1, -2, -3] and i.exp().dtype == np.float64


def test_gradients_accumulate_into_separate_buffers():
    a = tg.tensor(np.ones(2), requires_grad=True)
    b = tg.tensor(np.ones(2), requires_grad=True)
    z = a + b  # add's backward hands both leaves the same cotangent array
    for _ in range(2):
        z.backward(tg.tensor(np.array([1.0, 2.0])), retain_graph=True)
    assert a.grad.data.tolist() == [2.0, 4.0] and b.grad.data.tolist() == [2.0, 4.0]
    assert not np.shares_memory(a.grad.data, b.grad.data) and a.grad._version.value == 1


def _same_record(fast, general):
    assert fast.dtype == general.dtype and fast.shape == general.shape
    np.testing.assert_array_equal(fast.data, general.data)
    assert (fast.grad_fn is None) == (general.grad_fn is None)
    if fast.grad_fn is not None:
        assert fast.grad_fn.name() == general.grad_fn.name()
        assert [e.name() if e is not None else None for e, _ in fast.grad_fn.next_functions] \
            == [e.name() if e is not None else None for e, _ in general.grad_fn.next_functions]


@pytest.mark.parametrize("xshape, yshape", [((2, 3), (3,)), ((3,), (2, 3)), ((2, 1), (1, 3)),
                                            ((), (2, 3)), ((2, 3), ())])
def test_broadcasting_operators_record_what_the_namespace_records(xshape, yshape):
    rng = np.random.default_rng(4)
    xs, ys = (rng.standard_normal(s).astype(np.float32) + 3 for s in (xshape, yshape))
    for name, op in OPERATORS:
        x, y = (tg.tensor(v, requires_grad=True) for v in (xs, ys))
        fast = op(x, y)
        _same_record(fast, getattr(tg.numpy, name)(tg.tensor(xs, requires_grad=True),
                                                   tg.tensor(ys, requires_grad=True)))
        fast.sum().backward()
        assert x.grad.shape == xshape and y.grad.shape == yshape


def test_operators_refuse_what_the_namespace_refuses():
    x, y = tg.tensor(np.ones((2, 3))), tg.tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match="could not be broadcast"):
        x + y
    with pytest.raises(ValueError, match="contracted dimensions differ"):
        x @ x


@pytest.mark.parametrize("shapes", [((3, 4), (4, 2)), ((4,), (4, 2)), ((2, 3, 4), (4, 5))])
def test_matmul_records_what_the_namespace_records(shapes):
    rng = np.random.default_rng(5)
    a, b = (rng.standard_normal(s) for s in shapes)
    _same_record(tg.tensor(a, requires_grad=True) @ tg.tensor(b, requires_grad=True),
                 tg.numpy.matmul(tg.tensor(a, requires_grad=True), tg.tensor(b, requires_grad=True)))


@pytest.mark.parametrize("method", ["sum", "mean"])
@pytest.mark.parametrize("value", [np.arange(6.0).reshape(2, 3), np.float32(2.5),
                                   np.arange(4, dtype=np.float32), np.arange(5)])
def test_full_reductions_record_what_the_namespace_records(method, value):
    fast = getattr(tg.tensor(value, requires_grad=value.dtype.kind == "f"), method)()
    general = getattr(tg.numpy, method)(tg.tensor(value, requires_grad=value.dtype.kind == "f"))
    _same_record(fast, general)
    t = tg.tensor(np.arange(6.0).reshape(2, 3))
    _same_record(getattr(t, method)(axis=1, keepdims=True),
                 getattr(tg.numpy, method)(t, axis=1, keepdims=True))


def test_summed_cotangents_are_reused_and_never_shared():
    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = tg.tensor(np.array([3.0, 5.0]), requires_grad=True)
    s = x + y  # s's cotangent reaches x and y as one array
    z = (s * 2.0 + s * 3.0 + s).sum() + (x * 4.0).sum()  # sums: 6 for s, then 10 for x
    s.retain_grad()
    z.backward()
    assert s.grad.data.tolist() == [6.0, 6.0]
    assert x.grad.data.tolist() == [10.0, 10.0] and y.grad.data.tolist() == [6.0, 6.0]
    for a, b in ((x, y), (x, s), (y, s)):
        assert not np.shares_memory(a.grad.data, b.grad.data)
