"""Fixes from a hunt of the eager tensor's torch methods against PyTorch: scatter_add's
range check, argsort/argmax's positional torch arguments, lerp from the nearer end,
div_(rounding_mode=) and autograd, index_select of a 0-d index, norms' gradient at 0."""
import numpy as np
import pytest

import tracegrad as tg


def test_scatter_add_refuses_an_out_of_range_index_as_torch():
    x = tg.tensor(np.zeros((1, 3)))
    with pytest.raises(IndexError, match="index 5 is out of bounds for dim 1 of size 3"):
        x.scatter_add(1, tg.tensor(np.array([[5]])), tg.tensor(np.ones((1, 1))))
    out = x.scatter_add(1, tg.tensor(np.array([[2, 2]])), tg.tensor(np.ones((1, 2))))
    assert out.numpy().tolist() == [[0.0, 0.0, 2.0]]


def test_positional_torch_arguments_of_argsort_and_argmax():
    a = tg.tensor(np.array([[3.0, 1, 2], [0, 5, 4]]))
    assert a.argsort(1, True).tolist() == [[0, 2, 1], [1, 2, 0]]
    assert a.argmax(1, True).tolist() == [[0], [1]]
    assert a.argmin(0, True).tolist() == [[1, 0, 0]]


def test_lerp_reaches_end_exactly_at_weight_one():
    s, e = np.array([1e20, 1.0, -2.0]), np.array([1.0, 3.0, 5.0])
    assert tg.tensor(s).lerp(tg.tensor(e), 1.0).tolist() == e.tolist()
    assert tg.tensor(s).lerp(tg.tensor(e), 0.0).tolist() == s.tolist()
    start = tg.tensor(s, requires_grad=True)
    w = tg.tensor(np.array([0.25, 0.75, 1.0]), requires_grad=True)
    start.lerp(tg.tensor(e), w).sum().backward()
    np.testing.assert_allclose(start.grad.numpy(), 1 - w.detach().numpy())
    np.testing.assert_allclose(w.grad.numpy(), e - s)


def test_div_with_a_rounding_mode_in_place_keeps_autograd_working():
    x = tg.tensor(np.array([1.5, -2.5, 3.0]), requires_grad=True)
    o = tg.tensor(np.array([0.7, 1.1, 0.9]), requires_grad=True)
    y = x * 1.0
    y.div_(o, rounding_mode="floor")
    (y * 2).sum().backward()
    assert y.detach().numpy().tolist() == [2.0, -3.0, 3.0]
    assert np.all(x.grad.numpy() == 0) and np.all(o.grad.numpy() == 0)


def test_index_select_keeps_the_dim_for_a_0d_index():
    a = tg.tensor(np.arange(6.0).reshape(3, 2))
    assert a.index_select(0, tg.tensor(np.array(1))).shape == (1, 2)


@pytest.mark.parametrize("order", [0.5, 1, 3, np.inf, -1])
def test_vector_norm_gradients_at_zero_are_zero(order):
    g = tg.grad(lambda a: np.linalg.norm(a, order))(np.zeros(3))
    assert np.all(g == 0)
    x = np.array([0.0, 1.0, -4.0])
    np.testing.assert_allclose(tg.jit(lambda a: np.linalg.norm(a, order))(x),
                               np.linalg.norm(x, order))
    g = tg.grad(lambda a: np.linalg.norm(a, order))(x)
    assert g[0] == 0 and np.isfinite(g).all()


def test_more_torch_spellings():
    a = np.array([[3.0, -1.0, 2.0, np.nan], [0.5, 4.0, -2.0, 1.0]])
    t = tg.tensor(a)
    np.testing.assert_allclose(t.nanmean(1).numpy(), np.nanmean(a, 1))
    lo, hi = tg.tensor(a[1]).aminmax()
    assert (float(lo), float(hi)) == (-2.0, 4.0)
    values, indices = tg.tensor(a[1:]).kthvalue(2, 1)
    assert values.tolist() == [0.5] and indices.tolist() == [0]
    assert t.clamp_min(0.0).numpy()[1].tolist() == [0.5, 4.0, 0.0, 1.0]
    assert t.clamp_max(1.0).numpy()[1].tolist() == [0.5, 1.0, -2.0, 1.0]
    assert t.nan_to_num(9.0).numpy()[0, 3] == 9.0
    assert (t > 0).logical_not().numpy()[1].tolist() == [False, False, True, False]
    assert t.floor_divide(2.0).numpy()[1].tolist() == [0.0, 2.0, -1.0, 0.0]
    np.testing.assert_allclose(t.logaddexp(t).numpy()[1], np.logaddexp(a[1], a[1]))
    assert t.rot90().shape == (4, 2) and t.fliplr().numpy()[1, 0] == 1.0
    u = tg.tensor(np.ones((3, 3)))
    assert u.tril_().numpy().sum() == 6 and u.numpy()[0, 2] == 0
    v = tg.tensor(np.zeros((2, 3)))
    v.scatter_add_(1, tg.tensor(np.array([[0, 0], [2, 1]])), tg.tensor(np.ones((2, 2))))
    assert v.numpy().tolist() == [[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
