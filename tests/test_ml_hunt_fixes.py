"""Fixes from a hunt with realistic training programs: NumPy's ufunc.at and ufunc.outer on
tracegrad arrays, torch's decoupled_weight_decay in a loaded Adam state, and torch's norm
orders 0 and -inf in clip_grad_norm_."""
import numpy as np
import pytest

import tracegrad as tg

IDX = np.array([0, 1, 1, 2, -1])


def scatter_loss(v):
    out = np.zeros(3) + 0 * v[0]
    np.add.at(out, IDX, v * v)
    np.subtract.at(out, np.array([2, 2]), v[:2])
    return np.sum(out ** 3)


def numpy_scatter_loss(v):
    out = np.zeros(3)
    np.add.at(out, IDX, v * v)
    np.subtract.at(out, np.array([2, 2]), v[:2])
    return np.sum(out ** 3)


def test_add_at_accumulates_repeated_indices_with_gradients():
    v = np.array([1.0, 2.0, 3.0, 4.0, 0.5])
    expected = numpy_scatter_loss(v)
    eps, basis = 1e-6, np.eye(5)
    fd = [(numpy_scatter_loss(v + eps * e) - numpy_scatter_loss(v - eps * e)) / (2 * eps)
          for e in basis]
    value, grad = tg.value_and_grad(scatter_loss)(v)
    np.testing.assert_allclose(value, expected, rtol=1e-14)
    np.testing.assert_allclose(grad, fd, rtol=1e-7)
    np.testing.assert_allclose(tg.jit(scatter_loss)(v), expected, rtol=1e-14)
    t = tg.tensor(v, requires_grad=True)
    scatter_loss(t).backward()
    np.testing.assert_allclose(t.grad.numpy(), fd, rtol=1e-7)


@pytest.mark.parametrize("ufunc", [np.multiply, np.divide, np.maximum, np.minimum, np.power])
def test_other_ufunc_at_with_unique_indices(ufunc):
    idx, v = np.array([0, 2, 1]), np.array([1.5, 3.0, 0.5])

    def f(v):
        out = np.full(3, 1.25) + 0 * v[0]
        ufunc.at(out, idx, v)
        return out
    expected = np.full(3, 1.25)
    ufunc.at(expected, idx, v)
    np.testing.assert_allclose(tg.jit(f)(v), expected, rtol=1e-15)

    def repeated(v):
        out = np.full(3, 1.25) + 0 * v[0]
        ufunc.at(out, np.array([0, 2, 0, 0]), np.concatenate([v, v[:1]]))
        return out
    expected = np.full(3, 1.25)
    ufunc.at(expected, np.array([0, 2, 0, 0]), np.concatenate([v, v[:1]]))
    np.testing.assert_allclose(tg.jit(repeated)(v), expected, rtol=1e-14)


def test_ufunc_at_into_a_numpy_array_says_what_to_do():
    with pytest.raises(TypeError, match=r"cannot hold traced values.*\.at\[indices\]\.add"):
        tg.jit(lambda v: np.add.at(np.zeros(3), IDX, v))(np.ones(5))


@pytest.mark.parametrize("ufunc", [np.add, np.subtract, np.multiply, np.maximum, np.power])
def test_ufunc_outer(ufunc):
    a, b = np.array([1.0, 2.0]), np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(tg.jit(lambda a, b: ufunc.outer(a, b))(a, b), ufunc.outer(a, b))


def test_adam_takes_decoupled_weight_decay_from_a_loaded_state():
    torch = pytest.importorskip("torch")
    p = torch.ones(3, requires_grad=True)
    saved = torch.optim.AdamW([p], lr=0.1, weight_decay=0.5)
    p.sum().backward()
    saved.step()
    start = p.detach().numpy().copy()
    tp = torch.tensor(start, requires_grad=True)
    to = torch.optim.Adam([tp], lr=0.1)
    to.load_state_dict(saved.state_dict())
    gp = tg.tensor(start.copy(), requires_grad=True)
    go = tg.optim.Adam([gp], lr=0.1)
    go.load_state_dict(saved.state_dict())
    for _ in range(3):
        for opt, x in ((to, tp), (go, gp)):
            opt.zero_grad()
            x.sum().backward()
            opt.step()
    assert go.param_groups[0]["decoupled"] is True
    np.testing.assert_allclose(gp.detach().numpy(), tp.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("norm_type, expected", [(0, 1.0), (-np.inf, 0.0), (np.inf, 8.0)])
def test_clip_grad_norm_orders_zero_and_minus_inf(norm_type, expected):
    """torch's total norm is the norm of the per-tensor norms: order 0 counts the tensors
    whose gradient has a nonzero (here one), -inf takes the smallest magnitude."""
    w = tg.tensor(np.array([3.0, 0.0, -4.0]), requires_grad=True)
    (w * w).sum().backward()  # grad [6, 0, -8]
    assert float(tg.nn.utils.clip_grad_norm_([w], 100.0, norm_type=norm_type)) == expected
    assert float(tg.nn.utils.get_total_norm([np.array([0.0, 2.0]), np.array([0.0, 0.0]),
                                             np.array([1.0, 1.0])], norm_type=0)) == 2.0
