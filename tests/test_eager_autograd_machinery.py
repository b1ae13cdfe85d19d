"""The eager autograd machinery against PyTorch's behaviour (hunt A): gradients that must
not alias one another, version checks of what a custom Function saved, counts of
gradients, hooks, gradients taken at an intermediate tensor, accumulation from several
threads, and PyTorch's refusals.  Expected values are PyTorch 2.13's."""
import threading

import numpy as np
import pytest

import tracegrad as tg


def test_create_graph_gradients_are_separate_tensors():
    x, y = tg.tensor([1., 2.], requires_grad=True), tg.tensor([3., 4.], requires_grad=True)
    (x + y).sum().backward(create_graph=True)
    assert x.grad is not y.grad
    (x * 3).sum().backward()  # adds into x.grad only
    np.testing.assert_array_equal(y.grad.numpy(force=True), [1., 1.])
    np.testing.assert_array_equal(x.grad.numpy(force=True), [4., 4.])


def test_create_graph_leaves_the_callers_gradient_alone():
    x, seed = tg.tensor([1., 2.], requires_grad=True), tg.tensor([1., 1.])
    (x + 0).backward(seed, create_graph=True)
    x.grad.zero_()
    np.testing.assert_array_equal(seed.numpy(), [1., 1.])


def test_retained_create_graph_gradient_is_its_own_tensor():
    x = tg.tensor([1., 2.], requires_grad=True)
    y = x * 1
    y.retain_grad()
    (y + x).sum().backward(create_graph=True)
    assert y.grad is not x.grad
    np.testing.assert_array_equal(x.grad.numpy(force=True), [2., 2.])


class _SavesOutput(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = x * 2
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


@pytest.mark.parametrize("change", ["mul_", "setitem"])
def test_a_saved_output_changed_in_place_is_refused(change):
    x = tg.tensor([1., 2.], requires_grad=True)
    z = _SavesOutput.apply(x)
    if change == "mul_":
        z.mul_(3)
    else:
        with tg.no_grad():
            z[0] = 100.
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_a_saved_output_left_alone_gives_the_rules_gradient():
    x = tg.tensor([1., 2.], requires_grad=True)
    _SavesOutput.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2., 4.])


def test_an_output_interleaved_with_a_saved_tensor_keeps_its_own_version():
    class Halves(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            both = x * 2
            ctx.save_for_backward(both[::2])
            return both[1::2]  # shares the buffer, no element

        @staticmethod
        def backward(ctx, g):
            return tg.tensor(np.full(4, 2.0))

    x = tg.tensor(np.arange(4.), requires_grad=True)
    y = Halves.apply(x)
    y.mul_(3)  # not the saved tensor: backward still runs
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2., 2., 2., 2.])


def test_save_for_backward_takes_tensors_only():
    class F(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(3.0)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g
    with pytest.raises(TypeError, match="save_for_backward"):
        F.apply(tg.tensor([1.], requires_grad=True))


def test_a_function_returns_its_non_tensor_outputs_as_they_are():
    class F(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, 5

        @staticmethod
        def backward(ctx, g, g_count):
            return g * 2
    x = tg.tensor([1., 2.], requires_grad=True)
    y, count = F.apply(x)
    assert count == 5 and type(count) is int
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2., 2.])


def test_gradient_counts_must_match_outputs():
    x = tg.tensor([1., 2.], requires_grad=True)
    outs = [(x * 2).sum(), (x * 3).sum()]
    with pytest.raises(RuntimeError, match="got 2 tensors and 1 gradients"):
        tg.autograd.grad(outs, x, grad_outputs=[tg.tensor(5.)])
    with pytest.raises(RuntimeError, match="got 2 tensors and 1 gradients"):
        tg.autograd.backward(outs, [tg.tensor(5.)])


def test_an_array_gradient_is_one_gradient():
    x = tg.tensor([1., 2.], requires_grad=True)
    g, = tg.autograd.grad(x * 2, x, grad_outputs=np.array([5., 7.]))
    np.testing.assert_array_equal(g.numpy(), [10., 14.])


def test_grad_needs_inputs():
    x = tg.tensor([1., 2.], requires_grad=True)
    with pytest.raises(RuntimeError, match="non-empty inputs"):
        tg.autograd.grad((x * 2).sum(), [])


@pytest.mark.parametrize("where", ["leaf", "intermediate"])
def test_a_hook_may_return_a_tensor_that_requires_grad(where):
    x = tg.tensor([1., 2.], requires_grad=True)
    y = x * 1
    (x if where == "leaf" else y).register_hook(lambda g: g.requires_grad_())
    (y * y).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(force=True), [2., 4.])


def test_a_hook_returning_a_list_is_a_type_error():
    x = tg.tensor([1., 2.], requires_grad=True)
    y = x * 1
    y.register_hook(lambda g: [1., 2.])
    with pytest.raises(TypeError, match="returned a list"):
        (y * y).sum().backward()


def test_a_post_accumulate_hook_must_return_none():
    x = tg.tensor([1., 2.], requires_grad=True)
    x.register_post_accumulate_grad_hook(lambda t: t.grad)
    with pytest.raises(RuntimeError, match="should return None"):
        (x * 2).sum().backward()


def test_grad_at_an_intermediate_leaves_its_node_for_a_later_backward():
    x = tg.tensor([1., 2.], requires_grad=True)
    feat = x.exp()
    g, = tg.autograd.grad((feat * feat).sum(), feat)
    np.testing.assert_allclose(g.numpy(), 2 * np.exp([1., 2.]))
    (feat * 3).sum().backward()  # feat's node was neither run nor freed
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp([1., 2.]))


def test_grad_at_an_intermediate_does_not_call_its_custom_backward():
    calls = []

    class F(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            calls.append(1)
            return g * 2
    x = tg.tensor([1., 2.], requires_grad=True)
    mid = F.apply(x)
    tg.autograd.grad((mid * mid).sum(), mid)
    assert calls == []


def test_backward_on_several_threads_adds_every_gradient():
    x = tg.tensor(np.ones(100_000), requires_grad=True)

    def work():
        for _ in range(10):
            (x * 2).sum().backward()
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(100_000, 80.))


def test_torch_refusals():
    x = tg.tensor([1., 2.], requires_grad=True)
    with pytest.raises(RuntimeError, match="own grad"):
        x.grad = x
    with pytest.raises(RuntimeError, match="leaf variables"):
        (x * 2).requires_grad = True
    with pytest.raises(RuntimeError):  # PyTorch: RuntimeError; NumPy: ValueError (both)
        tg.tensor([1., 2.]).item()
    with pytest.raises(ValueError):
        bool(tg.tensor([1., 2.]))


def test_inference_mode_false_turns_grad_on_inside_no_grad():
    with tg.no_grad():
        with tg.inference_mode(False):
            assert tg.is_grad_enabled()
        assert not tg.is_grad_enabled()


def test_numpy_force_copies_a_tensor_that_requires_grad():
    x = tg.tensor([1., 2.], requires_grad=True)
    a = x.numpy(force=True)
    a[0] = 9.
    np.testing.assert_array_equal(x.detach().numpy(), [1., 2.])
