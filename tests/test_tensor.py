"""Eager tensors and define-by-run autograd (the PyTorch model)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tracegrad.tracer import (GRAD_MODE, AccumulateGrad, Tensor, autograd_grad, enable_grad,
                              is_grad_enabled, no_grad, set_grad_enabled, tensor, zero_grad)
from tracegrad.tracer import numpy as tnp


@pytest.fixture(autouse=True)
def _grad_mode():
    GRAD_MODE.reset()
    yield
    GRAD_MODE.reset()


def leaves(*values):
    return [tensor(v, requires_grad=True) for v in values]


def grads(*ts):
    return [t.grad.item() for t in ts]


# ---- the reference story ---------------------------------------------------------------------

def test_reference_story():
    a, b, c, d = leaves(1.0, 2.0, 3.0, 4.0)
    x = a + b
    y = c * d
    z = x + y
    assert (x.item(), y.item(), z.item()) == (3.0, 12.0, 15.0)
    assert type(x.grad_fn).__name__ == "AddBackward0" and x.grad_fn.name() == "AddBackward0"
    assert y.grad_fn.name() == "MulBackward0" and z.grad_fn.name() == "AddBackward0"
    assert repr(z) == "tensor(15., grad_fn=<AddBackward0>)"
    assert z.grad_fn.next_functions == ((x.grad_fn, 0), (y.grad_fn, 0))
    z.backward()
    assert grads(a, b, c, d) == [1.0, 1.0, 4.0, 3.0]


def test_gradients_accumulate_until_zeroed():
    a, b, c, d = leaves(1.0, 2.0, 3.0, 4.0)
    ((a + b) + c * d).backward()
    ((a + b) + c * d).backward()  # a fresh graph, no zeroing: accumulates
    assert grads(a, b, c, d) == [2.0, 2.0, 8.0, 6.0]
    zero_grad([a, b, c, d])
    assert all(t.grad is None for t in (a, b, c, d))
    ((a + b) + c * d).backward()
    assert grads(a, b, c, d) == [1.0, 1.0, 4.0, 3.0]
    zero_grad([a, b], set_to_none=False)
    assert grads(a, b) == [0.0, 0.0]


def test_grad_zero_in_place():
    a, = leaves([1.0, 2.0])
    (a * a).sum().backward()
    g = a.grad
    g.zero_()
    assert a.grad is g and a.grad.tolist() == [0.0, 0.0]
    (a * a).sum().backward()
    assert a.grad.tolist() == [2.0, 4.0]


@pytest.mark.parametrize("a_value,expected", [(1.0, (2.0, 2.0)), (-1.0, (2.0, -2.0))])
def test_data_dependent_control_flow(a_value, expected):
    a, b = leaves(a_value, 2.0)
    if a.item() > 0:
        x = a + b
    else:
        x = a - b
    y = x * 2
    y.backward()
    assert (a.grad.item(), b.grad.item()) == expected


# ---- nodes -----------------------------------------------------------------------------------

def test_node_names_follow_pytorch():
    x, = leaves([[1.0, 2.0], [3.0, 4.0]])
    w = tensor([[0.5], [0.25]], requires_grad=True)
    cases = {
        "SubBackward0": x - 1.0, "DivBackward0": x / 2.0, "NegBackward0": -x,
        "PowBackward0": x ** 2, "PowBackward1": x ** x, "ExpBackward0": tnp.exp(x),
        "TanhBackward0": tnp.tanh(x), "SumBackward0": x.sum(), "SumBackward1": x.sum(axis=0),
        "MmBackward0": x @ w, "ExpandBackward0": tnp.broadcast_to(w, (3, 2, 1)),
        "ViewBackward0": x.reshape(4), "PermuteBackward0": x.T, "SliceBackward0": x[:, ::-1],
        "MaximumBackward0": tnp.maximum(x, 2.0), "WhereBackward0": tnp.where(x > 2, x, 0.0),
        "AmaxBackward0": x.max(axis=1), "CatBackward0": tnp.concatenate([x, x]),
        "ToCopyBackward0": x.astype(np.float32), "LogBackward0": tnp.log(x),
        "SqrtBackward0": tnp.sqrt(x), "AbsBackward0": abs(x),
    }
    for name, t in cases.items():
        assert t.grad_fn.name() == name and type(t.grad_fn).__name__ == name
        assert re.fullmatch(rf"<{name} object at 0x[0-9a-f]+>", repr(t.grad_fn))


def test_next_functions_and_accumulate_grad():
    a, = leaves(2.0)
    y = a * 3.0
    (acc, i0), (none, i1) = y.grad_fn.next_functions
    assert isinstance(acc, AccumulateGrad) and acc.variable is a and (i0, i1) == (0, 0)
    assert none is None
    assert (a + 1.0).grad_fn.next_functions[0][0] is acc  # one accumulator per leaf
    z = y * y
    assert z.grad_fn.next_functions == ((y.grad_fn, 0), (y.grad_fn, 0))


def test_leaf_and_requires_grad_attributes():
    a = tensor([1.0, 2.0])
    assert a.is_leaf and not a.requires_grad and a.grad_fn is None
    a.requires_grad = True
    assert a.requires_grad and repr(a) == "tensor([1., 2.], requires_grad=True)"
    b = a * 2
    assert not b.is_leaf and b.requires_grad
    with pytest.raises(RuntimeError, match="leaf variables"):
        b.requires_grad = False
    assert tensor(1.0).requires_grad_() .requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        tensor([1, 2], requires_grad=True)
    assert not (tensor([1.0]) * 2).requires_grad
    assert not (a > 1).requires_grad  # comparisons are not differentiable


def test_tensor_attributes_and_conversions():
    t = tensor([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    assert t.shape == (2, 3) and t.dtype == np.float32 and t.ndim == 2 and t.size == 6
    assert len(t) == 2 and t.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert isinstance(t.numpy(), np.ndarray) and t.numpy().dtype == np.float32
    assert tensor(2.5).item() == 2.5 and float(tensor([2.5])) == 2.5 and int(tensor(7)) == 7
    assert [1, 2, 3][tensor(1)] == 2
    with pytest.raises(ValueError, match="cannot be converted"):
        t.item()
    with pytest.raises(RuntimeError, match="detach"):
        tensor([1.0], requires_grad=True).numpy()
    assert tensor([1.0], requires_grad=True).detach().numpy().tolist() == [1.0]
    assert tensor(5).dtype == np.int64 and tensor(1.0).dtype == np.float64
    assert tensor([True]).dtype == np.bool_
    with pytest.raises(TypeError, match="dtypes"):
        tensor([1 + 2j])
    with pytest.raises(TypeError, match="dtypes"):
        tensor([1], dtype=np.int8)


def test_repr():
    assert repr(tensor([1.0, 2.0], requires_grad=True)) == "tensor([1., 2.], requires_grad=True)"
    assert repr(tensor([1, 2])) == "tensor([1, 2])"
    assert repr(tensor([1.0], dtype=np.float32)) == "tensor([1.], dtype=float32)"
    assert repr(tensor([[1.5, 2], [3, 4]])) == "tensor([[1.5, 2. ],\n        [3. , 4. ]])"


def test_tensor_copies_its_input():
    data = np.array([1.0, 2.0])
    t = tensor(data)
    data[0] = 99
    assert t.tolist() == [1.0, 2.0]


def test_detach_shares_data_and_cuts_the_graph():
    a, = leaves([1.0, 2.0])
    d = (a * 2).detach()
    assert d.is_leaf and not d.requires_grad and d.tolist() == [2.0, 4.0]
    assert (tnp.stop_gradient(a) * a).grad_fn.next_functions[0][0] is None


def test_retain_grad_of_a_non_leaf():
    a, = leaves(3.0)
    h = a * a
    h.retain_grad()
    (h * 2.0).backward()
    assert h.retains_grad and h.grad.item() == 2.0 and a.grad.item() == 12.0


def test_shared_subexpression_cotangents_are_summed():
    a, = leaves(1.5)
    s = tnp.sin(a)
    y = s * s + s  # s used three times
    y.backward()
    assert np.isclose(a.grad.item(), (2 * np.sin(1.5) + 1) * np.cos(1.5))


def test_broadcast_gradient_sums_back_to_input_shape():
    row, = leaves([1.0, 2.0, 3.0])
    col = tensor([[1.0], [2.0]], requires_grad=True)
    ((row * col) ** 2).sum().backward()
    assert row.grad.shape == (3,) and col.grad.shape == (2, 1)
    np.testing.assert_allclose(row.grad.data, 2 * row.data * 5.0)
    np.testing.assert_allclose(col.grad.data, 2 * col.data * 14.0)


def test_float32_gradients_stay_float32():
    x = tensor(np.linspace(-1, 1, 5, dtype=np.float32), requires_grad=True)
    (tnp.tanh(x * 2.0) + x.astype(np.float64)).sum().backward()
    assert x.grad.dtype == np.float32


# ---- backward errors -------------------------------------------------------------------------

def test_non_scalar_backward_needs_a_gradient():
    a, = leaves([1.0, 2.0])
    y = a * 3
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar"):
        y.backward()
    y.backward(gradient=np.array([1.0, 10.0]))
    assert a.grad.tolist() == [3.0, 30.0]
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (a * 3).backward(gradient=np.ones(3))


def test_backward_twice_through_a_freed_graph():
    a, = leaves(2.0)
    y = a * a
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    a, = leaves(2.0)
    y = a * a
    y.backward(retain_graph=True)
    y.backward()
    assert a.grad.item() == 8.0


def test_backward_of_something_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tensor(1.0).backward()


# ---- in-place operations and version counters ------------------------------------------------

def test_sgd_update_under_no_grad():
    w = tensor([1.0, -2.0], requires_grad=True)
    x = tensor([0.5, 0.25])
    for _ in range(3):
        loss = ((w * x).sum() - 1.0) ** 2
        zero_grad([w])
        loss.backward()
        buf = w.data
        with no_grad():
            w -= 0.1 * w.grad
        assert w.data is buf and w.is_leaf and w.requires_grad  # updated in place
    assert ((w * x).sum() - 1.0).item() ** 2 < 1.0


def test_in_place_on_a_leaf_requiring_grad_is_rejected():
    w = tensor([1.0], requires_grad=True)
    for op in (lambda: w.__iadd__(1.0), lambda: w.__isub__(1.0), lambda: w.__imul__(2.0),
               lambda: w.__itruediv__(2.0), lambda: w.__setitem__(0, 5.0), w.zero_,
               lambda: w.copy_(np.ones(1))):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            op()
    assert w.tolist() == [1.0]


def test_in_place_on_a_non_leaf_under_no_grad_is_invisible_to_autograd():
    x = tensor([3.0], requires_grad=True)
    h = x * 2
    h += 1  # with grad it is recorded, as in PyTorch (tests/test_setitem.py)
    with no_grad():
        h[0] = 1.0  # allowed, as in PyTorch: the value changes, the graph does not
    assert float(h.detach()) == 1.0 and h.grad_fn is not None
    h.backward()
    assert float(x.grad) == 2.0


def test_in_place_on_plain_tensors():
    t = tensor([[1.0, 2.0], [3.0, 4.0]])
    t += 1
    t *= tensor([1.0, 10.0])
    t[0, 1] = -1.0
    t[1] = tensor([7.0, 8.0])
    t /= 2
    assert t.tolist() == [[1.0, -0.5], [3.5, 4.0]]
    t.copy_(np.zeros(2))
    assert t.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    i = tensor([1, 2])
    with pytest.raises(TypeError):
        i += 1.5  # numpy casting rules: float into an int buffer is refused
    with pytest.raises(ValueError, match="does not fit"):
        t += np.ones((3, 2, 2))


def test_modified_saved_tensor_is_detected_at_backward():
    w = tensor([1.0, 2.0], requires_grad=True)
    x = tensor([3.0, 4.0])
    loss = (w * x).sum()
    x[0] = 0.0  # x is saved (MulBackward0's factor for w)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    loss = (w * w).sum()
    with no_grad():
        w -= 1.0  # w is its own factor
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_values_backward_does_not_read_may_change_as_in_pytorch():
    """Only what the backward formula reads is saved (tracer/saved.py): PyTorch's values."""
    w = tensor([1.0, 2.0], requires_grad=True)
    x = tensor([3.0, 4.0])
    loss = (w * x).sum()  # d/dw reads x, not w
    with no_grad():
        w -= 1.0
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 4.0])
    a = tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a + 1
    c, m = b.sum(), (b * 2).mean()  # sums and constant factors read no values
    b[0] = 100.0
    c.backward()
    m.backward()
    np.testing.assert_allclose(a.grad.numpy(), [1 + 2 / 3] * 3)


def test_a_result_changed_in_place_never_spoils_its_own_gradient():
    """A result its backward reads (exp, tanh) raises; division's reads x and y only, so
    its gradient stays right after `b *= 2` (PyTorch's DivBackward0 behaves alike)."""
    for fn in (np.exp, np.tanh, np.sqrt):
        a = tensor([1.0, 2.0, 3.0], requires_grad=True)
        b = fn(a)
        b *= 2
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            b.sum().backward()
    a = tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a / (a + 1)
    b *= 2
    b.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 2 / (a.detach().numpy() + 1) ** 2)


def test_modifying_a_detached_alias_bumps_the_shared_version():
    w = tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    alias = w.detach()
    alias += 1.0
    assert w.tolist() == [2.0, 3.0]
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# ---- grad mode -------------------------------------------------------------------------------

def test_no_grad_and_enable_grad():
    a, = leaves(1.0)
    with no_grad():
        assert not is_grad_enabled()
        b = a * 2
        with enable_grad():
            assert is_grad_enabled()
            c = a * 2
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert b.grad_fn is None and not b.requires_grad and c.grad_fn is not None


def test_no_grad_as_decorator_and_restored_after_errors():
    @no_grad()
    def f(x):
        return x * 2

    assert f(tensor(1.0, requires_grad=True)).grad_fn is None

    @no_grad
    def g(x):
        return x * 2

    assert g(tensor(1.0, requires_grad=True)).grad_fn is None and g.__name__ == "g"
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            _ = 1 / 0
    assert is_grad_enabled()


# ---- depth and higher order ------------------------------------------------------------------

def test_deep_graph_backward_without_recursion():
    a, = leaves(1.0)
    y = a
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert np.isclose(a.grad.item(), 1.0001 ** 10_000)


def test_create_graph_second_derivative():
    x, = leaves(2.0)
    y = x ** 3
    y.backward(create_graph=True)
    g = x.grad
    assert g.item() == 12.0 and g.requires_grad and g.grad_fn is not None
    x.grad = None
    g.backward()
    assert x.grad.item() == 12.0  # d2/dx2 x^3 = 6x


def test_autograd_grad_higher_order_against_finite_differences():
    def f(v):
        return tnp.tanh(v) * tnp.exp(-v * v)

    x, = leaves(0.3)
    d1, = autograd_grad([f(x)], [x], create_graph=True)
    d2, = autograd_grad([d1], [x], create_graph=True)
    d3, = autograd_grad([d2], [x])
    assert x.grad is None  # grad() does not accumulate into .grad

    def fd(fun, v, eps=1e-4):
        return (fun(v + eps) - fun(v - eps)) / (2 * eps)

    def ref(v):
        return np.tanh(v) * np.exp(-v * v)

    np.testing.assert_allclose(d1.item(), fd(ref, 0.3), rtol=1e-7)
    np.testing.assert_allclose(d2.item(), fd(lambda v: fd(ref, v), 0.3), rtol=1e-5)
    np.testing.assert_allclose(d3.item(), fd(lambda v: fd(lambda u: fd(ref, u), v), 0.3),
                               rtol=1e-2)


def test_second_derivative_through_matmul_and_reductions():
    w = tensor(np.array([0.3, -0.2]), requires_grad=True)
    X = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.1]])
    g, = autograd_grad([np.mean(np.tanh(X @ w) ** 2)], [w], create_graph=True)
    hvp, = autograd_grad([(g * np.array([1.0, 0.0])).sum()], [w])

    def grad_ref(v):
        t = np.tanh(X @ v)
        return X.T @ (2 * t * (1 - t * t)) / len(X)

    eps = 1e-6
    fd = (grad_ref(w.data + eps * np.array([1.0, 0])) - grad_ref(w.data - eps * np.array([1.0, 0])))
    np.testing.assert_allclose(g.data, grad_ref(w.data), rtol=1e-12)
    np.testing.assert_allclose(hvp.data, fd / (2 * eps), rtol=1e-6)


def test_indexing_gradients_scatter_back():
    x = tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    (x[1, ::-2].sum() + x[-1:, None, 0].sum() * 10).backward()
    want = np.zeros((3, 4))
    want[1, [3, 1]] = 1
    want[2, 0] += 10
    np.testing.assert_array_equal(x.grad.data, want)


def test_tensor_is_hashable_by_identity():
    a, b = tensor(1.0), tensor(1.0)
    assert len({a, b}) == 2 and (a == b).item() is True
    assert (a == None) is False  # noqa: E711  (falls back to identity, as PyTorch)


def test_advanced_indexing_matches_numpy():  # more in tests/test_setitem.py
    x = tensor([1.0, 2.0, 3.0])
    for idx in (np.array([0, 1]), [0, 1], x > 1, True):
        want = x.data[idx.data if isinstance(idx, Tensor) else idx]
        np.testing.assert_array_equal(x[idx].data, want)
    with pytest.raises(IndexError, match="out of bounds"):
        x[3]


def test_matmul_shape_error_names_op_shapes_and_location():
    with pytest.raises(ValueError) as info:
        tensor(np.ones((2, 3))) @ tensor(np.ones((4, 2)))
    msg = str(info.value)
    assert "matmul" in msg and "f64[2,3]" in msg and "f64[4,2]" in msg
    assert "test_tensor.py:" in msg


def test_tensor_subclass_protocol_for_ir():
    t = tensor([1.0, 2.0])
    assert t._tg_trace.level == 0 and t._tg_concrete() is t.data
    assert isinstance(t * 2, Tensor)


def test_zero_derivative_gives_zero_grad_not_none():
    # As in PyTorch: sign's derivative is zero, and the leaf still gets a zero gradient.
    x = tensor(np.array([1.0, -2.0]), requires_grad=True)
    tnp.sign(x).sum().backward()
    assert x.grad is not None and x.grad.data.tolist() == [0.0, 0.0]


def test_backward_skips_the_product_no_leaf_needs():
    """Eager backward computes no cotangent for an operand that requires no grad (PyTorch's
    engine prunes it too): an MLP step makes 5 matrix products, not 6."""
    from tracegrad.ir import PRIMITIVES

    dot = PRIMITIVES["dot"]
    calls, impl = [], dot.impl
    dot.impl = lambda *a, **k: calls.append(1) or impl(*a, **k)
    try:
        x = np.ones((4, 6))
        w1 = tensor(np.full((6, 5), 0.1), requires_grad=True)
        w2 = tensor(np.full((5, 2), 0.1), requires_grad=True)
        np.mean((np.tanh(x @ w1) @ w2) ** 2).backward()
    finally:
        dot.impl = impl
    assert len(calls) == 5 and w1.grad is not None and w2.grad is not None


def test_autograd_grad_takes_bare_tensors_and_intermediate_inputs():
    """torch.autograd.grad's forms: bare tensors, intermediate inputs (the total
    cotangent reaching them), allow_unused and materialize_grads."""
    x = tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    z = (h ** 2).sum()
    dh, dx = autograd_grad(z, [h, x], retain_graph=True)
    np.testing.assert_allclose(dh.numpy(), [6.0, 12.0])
    np.testing.assert_allclose(dx.numpy(), [18.0, 36.0])
    w = tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused"):
        autograd_grad(z, [x, w], retain_graph=True)
    assert autograd_grad(z, [x, w], allow_unused=True, retain_graph=True)[1] is None
    dw = autograd_grad(z, [x, w], materialize_grads=True)[1]
    np.testing.assert_array_equal(dw.numpy(), [0.0])


def test_fill_zero_copy_on_results_that_require_grad():
    """PyTorch's in-place fills of a non-leaf: the history before gets a zero gradient,
    a copied tensor gets the gradient; requires_grad stays."""
    a = tensor([1.0, 2.0, 3.0], requires_grad=True)
    s = tensor([5.0, 6.0, 7.0], requires_grad=True)
    b = a * 2
    b.zero_()
    c = a * 3
    c.fill_(4.0)
    d = a * a
    d.copy_(s * 2)
    assert b.requires_grad and c.requires_grad
    ((b + 1) * c + d).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(s.grad.numpy(), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(c.detach().numpy(), [4.0, 4.0, 4.0])


def test_basic_indexing_makes_views_that_share_storage_and_history():
    """As PyTorch (tracer/views.py): values are shared both ways, an in-place change of a
    view rebases its base's graph, a change of the base makes the view's graph current."""
    a = tensor([0.0, 1.0, 2.0, 3.0])
    v = a[1:]
    v += 10.0
    np.testing.assert_array_equal(a.numpy(), [0.0, 11.0, 12.0, 13.0])
    m = tensor([[1.0, 2.0], [3.0, 4.0]])
    col = m[:, 0]
    col += 1.0
    np.testing.assert_array_equal(m.numpy(), [[2.0, 2.0], [4.0, 4.0]])

    a = tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    b = a * 1.0
    w = b[1:][1:]  # a view of a view
    w *= 5.0
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0, 5.0, 5.0])

    a = tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a * 2.0
    v = b[0:2]
    b *= 3.0  # the base changes: v is now (6a)[0:2]
    (v * v).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [72.0, 144.0, 0.0])

    a = tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="view of a leaf"):
        v = a[1:]
        v += 1.0
    b = np.exp(a)
    v = b[1:]
    v += 1.0  # exp's backward reads its result, which the view changed
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        b.sum().backward()


def test_whole_tensor_assignments_and_in_place_changes_as_pytorch():
    """Torch's values for cases a random comparison found (tracer/views.py, _update)."""
    from tracegrad.tracer import autograd_grad as agrad
    a = tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a * 2.0
    b[:] = -1.5  # a constant over all of a result: it still requires grad, zero gradient
    assert b.requires_grad
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.0, 0.0])
    a = tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a * 2.0
    b[:] = a  # a leaf over all of it: b is no leaf, a gets the gradient
    assert not b.is_leaf
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0, 1.0])
    a = tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = a[:]
    with no_grad():
        a -= 2.0  # the view's graph follows the base: still a's
    (v * 1.0).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0, 1.0])
    a = tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    b = a * 2.0
    with no_grad():
        b[0] = 5.0  # allowed on a result under no_grad; its graph is unchanged
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0, 2.0, 2.0])
    a = tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    x = tensor([0.0, 0.0, 0.0, 0.0])
    v = x[:2]
    x += a * a  # the view's flags follow its base
    assert v.requires_grad and v.grad_fn is not None
    a = tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a * a
    v = b[1:]
    v *= 2.0
    g_b, g_v = agrad(v.sum() + b.sum(), [b, v])  # v is b's new history seen through [1:]
    np.testing.assert_array_equal(g_b.numpy(), [1.0, 2.0, 2.0])
    np.testing.assert_array_equal(g_v.numpy(), [1.0, 1.0])


def test_torch_method_names_compute_torchs_values():
    """tracer/torch_methods.py: torch.Tensor's spellings on eager tensors (values checked
    by hand; max/min with dim return (values, indices), var with dim is unbiased)."""
    x = tensor(np.arange(6.0).reshape(2, 3) - 2.0, requires_grad=True)
    assert x.size() == (2, 3) and x.size(1) == 3 and x.size == 6 and x.dim() == 2
    assert x.numel() == 6 and x.t().shape == (3, 2) and x.unsqueeze(0).shape == (1, 2, 3)
    np.testing.assert_array_equal(x.sum(dim=0, keepdim=True).detach().numpy(), [[-1.0, 1.0, 3.0]])
    values, indices = x.max(dim=1)
    np.testing.assert_array_equal(values.detach().numpy(), [0.0, 3.0])
    np.testing.assert_array_equal(indices.numpy(), [2, 2])
    np.testing.assert_allclose(x.var(dim=1).detach().numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(x.clamp(min=0.0).detach().numpy(), [[0, 0, 0], [1, 2, 3]])
    np.testing.assert_array_equal(x.expand(2, 2, 3).shape, (2, 2, 3))
    s = x.softmax(dim=1).detach().numpy()
    np.testing.assert_allclose(s.sum(axis=1), [1.0, 1.0])
    np.testing.assert_allclose(np.exp(x.log_softmax(dim=1).detach().numpy()), s)
    x.pow(2).mul(0.5).sub(x, alpha=2).sum(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), x.detach().numpy() - 2.0)


def test_torch_style_splits_sorts_and_in_place_methods():
    x = tensor(np.array([[3.0, 1.0, 2.0, 5.0], [0.0, -1.0, 4.0, 4.0]]), requires_grad=True)
    values, indices = x.topk(2)
    np.testing.assert_array_equal(values.detach().numpy(), [[5, 3], [4, 4]])
    np.testing.assert_array_equal(indices.numpy(), [[3, 0], [2, 3]])
    values, indices = x.sort(dim=1, descending=True)
    np.testing.assert_array_equal(indices.numpy(), [[3, 0, 2, 1], [2, 3, 0, 1]])  # stable
    assert [p.shape for p in x.chunk(3, dim=1)] == [(2, 2), (2, 2)]
    assert [p.shape for p in x.split([1, 3], dim=1)] == [(2, 1), (2, 3)]
    b = x * 0.1
    b.add_(1.0, alpha=2).mul_(3.0).exp_().pow_(0.5)  # exp(3 (0.1 x + 2) / 2)
    b.sum().backward()
    want = 0.15 * np.exp(1.5 * (0.1 * x.detach().numpy() + 2))
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-13)


def test_set_grad_enabled_as_call_context_and_decorator():
    from tracegrad.tracer import set_grad_enabled
    x = tensor([1.0], requires_grad=True)
    with set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        set_grad_enabled(True)
    assert (set_grad_enabled(False)(lambda v: v * 2))(x).requires_grad is False
    assert (x * 2).requires_grad


def test_a_view_made_under_no_grad_cannot_change_in_place_with_grad_on():
    a = tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a * 2.0
    with no_grad():
        v = b[1:]
        v += 1.0  # fine under no_grad
    with pytest.raises(RuntimeError, match="created in no_grad mode"):
        v += 1.0


def test_grad_mode_decorators_on_generators_apply_inside():
    # as PyTorch's: the body runs in the decorator's mode at every resumption
    w = tensor([1.0], requires_grad=True)

    @no_grad()
    def gen():
        got = yield w * 2
        assert got == 7 and not is_grad_enabled()
        yield w * 3

    g = gen()
    assert not next(g).requires_grad and is_grad_enabled()
    assert not g.send(7).requires_grad

    @set_grad_enabled(False)
    def gen2():
        yield (w * 2).requires_grad
    assert list(gen2()) == [False] and is_grad_enabled()


def test_retain_grad_follows_an_in_place_change():
    a = tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    b.retain_grad()
    b.mul_(3)
    b.sum().backward()
    assert b.grad.tolist() == [1.0, 1.0] and a.grad.tolist() == [6.0, 6.0]


def test_requires_grad_switched_off_after_the_graph_and_on_for_results():
    a = tensor([1.0, 2.0], requires_grad=True)
    y = (a * 2).sum()
    y.requires_grad_(True)  # a result: a no-op, as in torch
    a.requires_grad_(False)
    y.backward()
    assert a.grad is None


def test_assigned_grad_is_checked_as_pytorch():
    w = tensor(np.ones((3, 1)), requires_grad=True)
    with pytest.raises(RuntimeError, match="different size"):
        w.grad = tensor(np.ones((1, 3)))
    with pytest.raises(RuntimeError, match="different type"):
        w.grad = tensor(np.ones((3, 1), np.float32))
    with pytest.raises(TypeError, match="Tensor or None"):
        w.grad = "hello"
    w.grad = np.ones((3, 1))  # an array is taken as a tensor
    (w * w).sum().backward()
    assert w.grad.numpy().ravel().tolist() == [3.0, 3.0, 3.0]


def test_max_with_dim_routes_the_gradient_to_its_index_at_ties():
    # torch's max(dim) reads its values at the returned indices: no split at ties
    x = tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    values, idx = x.max(dim=1)
    (values * tensor([1.0, 2.0])).sum().backward()
    assert idx.tolist() == [1, 0]
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]]


def test_clamp_gradient_is_one_at_the_bounds_as_torch():
    x = tensor([-1.0, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    x.clamp(0.0, 1.0).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    y = tensor([-1.0, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    z = y * 1
    z.clamp_(min=0.5)
    z.sum().backward()
    assert y.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_reading_the_grad_of_a_non_leaf_warns_as_torch():
    b = tensor([1.0], requires_grad=True) * 2
    with pytest.warns(UserWarning, match="not a leaf Tensor"):
        assert b.grad is None


def test_zero_grad_without_none_zeroes_the_same_tensor_and_detach_in_place():
    w = tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    g = w.grad
    zero_grad([w], set_to_none=False)
    assert w.grad is g and g.tolist() == [0.0, 0.0]
    b = tensor([1.0], requires_grad=True) * 2
    assert b.detach_() is b and b.is_leaf and not b.requires_grad


def test_copies_and_pickles_of_a_leaf_in_a_live_graph_are_new_leaves():
    import copy
    import pickle
    w = tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    keep = (w * 2).sum()            # a live graph holds w's accumulator
    keep.backward(retain_graph=True)
    deep, shallow = copy.deepcopy(w), copy.copy(w)
    loaded = pickle.loads(pickle.dumps(w))
    np.testing.assert_array_equal(deep.grad.numpy(), [2.0, 2.0, 2.0])   # deepcopy copies .grad
    assert shallow.grad is None and loaded.grad is None
    for c, k in ((deep, 3.0), (shallow, 4.0), (loaded, 5.0)):
        assert c.is_leaf and c.requires_grad
        (c * k).sum().backward()
    np.testing.assert_array_equal(deep.grad.numpy(), [5.0, 5.0, 5.0])
    np.testing.assert_array_equal(shallow.grad.numpy(), [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(loaded.grad.numpy(), [5.0, 5.0, 5.0])
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 2.0, 2.0])       # untouched
    shallow.data[0] = 7.0          # copy.copy shares the buffer, as PyTorch's
    assert w.data[0] == 7.0 and deep.data[0] == 1.0
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(keep)
