"""Tensor hooks (`register_hook`, `register_post_accumulate_grad_hook`) and
`backward(inputs=...)`, with PyTorch's semantics (values written out from torch 2.13)."""
import numpy as np
import pytest

import tracegrad as tg


def _leaf(values):
    return tg.tensor(np.array(values, dtype=np.float64), requires_grad=True)


def test_a_leaf_hook_sees_the_gradient_and_can_replace_it():
    x, seen = _leaf([1.0, 2.0, 3.0]), []
    handle = x.register_hook(lambda g: seen.append(g.tolist()))
    y = x * x
    y.register_hook(lambda g: g * 2)  # a non-leaf's hook changes what flows on
    y.sum().backward()
    assert seen == [[4.0, 8.0, 12.0]] and x.grad.tolist() == [4.0, 8.0, 12.0]
    handle.remove()
    x.grad = None
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0, 6.0] and len(seen) == 1


def test_retain_grad_keeps_the_hooked_gradient():
    x = _leaf([1.0, 2.0])
    y = x * 3
    y.retain_grad()
    y.register_hook(lambda g: g + 1)
    (y * y).sum().backward()
    assert y.grad.tolist() == [7.0, 13.0] and x.grad.tolist() == [21.0, 39.0]


def test_hooks_run_in_autograd_grad_and_with_create_graph():
    x = _leaf([1.0, 2.0])
    x.register_hook(lambda g: g * 2)
    g, = tg.autograd.grad((x * x).sum(), x)
    assert g.tolist() == [4.0, 8.0]
    g, = tg.autograd.grad((x ** 3).sum(), x, create_graph=True)
    g.sum().backward()
    assert g.tolist() == [6.0, 24.0] and x.grad.tolist() == [24.0, 48.0]


def test_a_hook_may_not_change_the_shape_and_needs_a_tensor_requiring_grad():
    x = _leaf([1.0, 2.0])
    x.register_hook(lambda g: g[:1])
    with pytest.raises(RuntimeError, match="changed the size"):
        (x * x).sum().backward()
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        tg.tensor([1.0]).register_hook(print)


def test_post_accumulate_grad_hook_sees_the_accumulated_grad():
    x, calls = _leaf([1.0, 2.0]), []
    x.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad.tolist()))
    (x * x).sum().backward()
    (x * x).sum().backward()
    assert calls == [[2.0, 4.0], [4.0, 8.0]]
    with pytest.raises(RuntimeError, match="non-leaf"):
        (x * 2).register_post_accumulate_grad_hook(print)


def test_backward_inputs_accumulates_only_into_them():
    x, w = _leaf([1.0, 2.0]), _leaf([3.0, 4.0])
    (x * w).sum().backward(inputs=[x])
    assert x.grad.tolist() == [3.0, 4.0] and w.grad is None
    y = x * 2
    (y * y).sum().backward(inputs=[y])  # a non-leaf input gets its .grad
    assert y.grad.tolist() == [4.0, 8.0] and x.grad.tolist() == [3.0, 4.0]
    with pytest.raises(RuntimeError, match="cannot be empty"):
        (x * w).sum().backward(inputs=[])


def test_a_create_graph_gradient_through_a_piecewise_constant_rule_still_requires_grad():
    # torch: d|x|/dx = sgn(x) is recorded, so a gradient penalty backpropagates zeros
    x = _leaf([1.0, -2.0])
    g, = tg.autograd.grad(np.abs(x).sum(), x, create_graph=True)
    assert g.requires_grad and g.tolist() == [1.0, -1.0]
    (g * g).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]
    y = _leaf([1.0, 2.0])
    g, = tg.autograd.grad(y.sum(), y, create_graph=True)  # a linear rule reads nothing
    assert not g.requires_grad


def test_a_hook_that_changes_the_gradient_in_place_and_returns_none():
    """PyTorch uses the tensor a hook got, changed in place, when the hook returns None."""
    def double(g):
        g.mul_(2)

    a = tg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    a.register_hook(double)
    h = a * 3.0
    h.register_hook(double)  # a non-leaf's gradient flows on changed
    (h * tg.tensor(np.array([4.0, 5.0, 6.0]))).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [48.0, 60.0, 72.0])
