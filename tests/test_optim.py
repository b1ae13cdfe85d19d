"""tracegrad.optim against PyTorch's update formulas (a numpy transcription of torch.optim's
documented algorithms, and torch itself when installed), eager and functional, compiled."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import optim

CASES = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    (optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, maximize=False)),
    (optim.Adam, dict(lr=0.01)),
    (optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    (optim.Adam, dict(lr=0.01, amsgrad=True)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.AdamW, dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
]


def reference(cls, h, p, grads):
    """torch.optim's algorithms (their documentation's pseudocode), step by step."""
    h = {**cls.defaults, **h}
    p, buf, m, v, vmax = p.copy(), None, 0.0, 0.0, 0.0
    for t, g in enumerate(grads, 1):
        g = -g if h["maximize"] else g
        if cls is optim.SGD:
            g = g + h["weight_decay"] * p
            if h["momentum"]:
                buf = g if buf is None else h["momentum"] * buf + (1 - h["dampening"]) * g
                g = g + h["momentum"] * buf if h["nesterov"] else buf
            p = p - h["lr"] * g
            continue
        if cls is optim.AdamW:
            p = p * (1 - h["lr"] * h["weight_decay"])
        else:
            g = g + h["weight_decay"] * p
        b1, b2 = h["betas"]
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vhat = np.maximum(vmax, v) if h["amsgrad"] else v
        vmax = vhat
        denom = np.sqrt(vhat) / np.sqrt(1 - b2 ** t) + h["eps"]
        p = p - h["lr"] / (1 - b1 ** t) * m / denom
    return p


def _loss(w, x):
    return np.sum(np.tanh(x @ w) ** 2)


X = np.random.default_rng(0).standard_normal((5, 3))
W0 = np.array([0.5, -1.0, 2.0])


def _grads_along_eager_path(cls, h, steps):
    """Run the eager optimizer; return its final weights and the gradients it saw."""
    w = tg.tensor(W0.copy(), requires_grad=True)
    opt, seen = cls([w], **h), []
    for _ in range(steps):
        opt.zero_grad()
        _loss(w, X).backward()
        seen.append(w.grad.data.copy())
        opt.step()
    return w.data, seen


@pytest.mark.parametrize("cls, h", CASES)
def test_eager_steps_follow_pytorchs_formulas(cls, h):
    final, seen = _grads_along_eager_path(cls, h, steps=6)
    np.testing.assert_allclose(final, reference(cls, h, W0, seen), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls, h", CASES)
def test_functional_form_compiles_into_one_training_step(cls, h):
    opt = cls(**h)

    @tg.jit
    def train_step(params, state, x):
        loss, grads = tg.value_and_grad(lambda p: _loss(p["w"], x))(params)
        params, state = opt.update(grads, state, params)
        return loss, params, state

    params, state = {"w": W0.copy()}, opt.init({"w": W0.copy()})
    eager_final, _ = _grads_along_eager_path(cls, h, steps=6)
    for _ in range(6):
        _, params, state = train_step(params, state, X)
    np.testing.assert_allclose(params["w"], eager_final, rtol=1e-10, atol=1e-12)
    assert len(train_step.cache_info()) == 1  # the step counter is data, not a new signature
    assert int(state["w"]["step"]) == (6 if cls is not optim.SGD or h.get("momentum") else 0)


def test_param_groups_and_changing_the_learning_rate():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0], requires_grad=True)
    opt = optim.SGD([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1)
    (a.sum() + 2 * b.sum()).backward()
    opt.step()
    assert a.data.tolist() == [0.5, 1.5] and np.allclose(b.data, [2.8])
    opt.param_groups[1]["lr"] = 1.0
    opt.step()
    assert np.allclose(b.data, [0.8])


def test_parameters_without_grad_are_skipped_as_in_torch():
    w, frozen = (tg.tensor([1.0], requires_grad=True), tg.tensor([1.0]))
    opt = optim.SGD([w, frozen], lr=0.5)
    (w * w).sum().backward()
    opt.step()
    assert w.data.tolist() == [0.0] and frozen.data.tolist() == [1.0]


def test_amsgrad_set_per_group_or_later():
    w, b = (tg.tensor([1.0, 2.0], requires_grad=True) for _ in range(2))
    opt = optim.Adam([{"params": [w]}, {"params": [b], "amsgrad": True}], lr=0.1)
    for _ in range(2):
        (w * w + b * b).sum().backward()
        opt.step()
    opt.param_groups[0]["amsgrad"] = True
    opt.step()
    assert np.all(w.data < [1.0, 2.0]) and "max_exp_avg_sq" in opt.state[w]


def test_float32_adam_bias_corrections_as_torch():
    # torch computes 1 - beta**t with Python floats: one step from w = 1, g = 0.5
    w = tg.tensor(np.ones(1, np.float32), requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    (0.5 * w).sum().backward()
    opt.step()
    assert w.data[0] == np.float32(0.90000004)


def test_float32_parameters_stay_float32():
    w = tg.tensor(np.ones(3, np.float32), requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    (w * w).sum().backward()
    opt.step()
    assert w.dtype == np.float32 and np.all(w.data < 1)


def test_errors():
    w = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(w, lr=0.1)  # a bare tensor, as torch.optim refuses it
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([w * 2], lr=0.1)
    for bad in ({"momentum": -0.5}, {"weight_decay": -1.0}, {"lr": -1.0}):
        with pytest.raises(ValueError, match="invalid"):
            optim.SGD([w], **bad)
    with pytest.raises(ValueError, match="beta"):
        optim.Adam([w], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="invalid eps"):
        optim.Adam([{"params": [w], "eps": -1e-8}])
    with pytest.raises(TypeError, match="unknown options"):
        optim.Adam([], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(lr=0.1, nesterov=True)
    with pytest.raises(RuntimeError, match="functional form"):
        optim.SGD(lr=0.1).step()
    with pytest.raises(ValueError, match="structure"):
        opt = optim.SGD(lr=0.1)
        opt.update({"w": np.ones(2)}, opt.init({"w": np.ones(2)}), {"v": np.ones(2)})


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
@pytest.mark.parametrize("cls, h", CASES)
def test_against_torch(cls, h):
    import torch

    tw = torch.tensor(W0.copy(), requires_grad=True)
    kwargs = {k: v for k, v in h.items()}
    topt = getattr(torch.optim, cls.__name__)([tw], **kwargs)
    for _ in range(6):
        topt.zero_grad()
        torch.sum(torch.tanh(torch.tensor(X) @ tw) ** 2).backward()
        topt.step()
    final, _ = _grads_along_eager_path(cls, h, steps=6)
    np.testing.assert_allclose(final, tw.detach().numpy(), rtol=1e-10)


def _quadratic_steps(opt, params, n):
    for _ in range(n):
        opt.zero_grad()
        sum(((p - 3.0) ** 2).sum() for p in params).backward()
        opt.step()


@pytest.mark.parametrize("make", [lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: tg.optim.Adam(ps, lr=0.1, amsgrad=True)])
def test_state_dict_round_trip_continues_the_same_run(make):
    """torch's checkpoint idiom: state_dict() after some steps, load_state_dict() into a
    fresh optimizer over copies of the parameters, and both go on identically."""
    params = [tg.tensor(np.array([1.0, -2.0]), requires_grad=True),
              tg.tensor(np.array([[0.5]]), requires_grad=True)]
    opt = make(params)
    _quadratic_steps(opt, params, 3)
    saved = opt.state_dict()
    assert sorted(saved["state"]) == [0, 1] and saved["param_groups"][0]["params"] == [0, 1]
    copies = [tg.tensor(p.detach().numpy().copy(), requires_grad=True) for p in params]
    other = make(copies)
    other.load_state_dict(saved)
    _quadratic_steps(opt, params, 2)
    _quadratic_steps(other, copies, 2)
    for p, q in zip(params, copies):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_step_with_a_closure_state_by_tensor_and_added_groups():
    w = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = tg.tensor(np.array([0.5]), requires_grad=True)
    opt = tg.optim.SGD([w], lr=0.1, momentum=0.9)

    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum() + (b ** 2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure)) == 5.25
    np.testing.assert_allclose(opt.state[w]["momentum_buffer"], [2.0, 4.0])
    opt.add_param_group({"params": [b], "lr": 1.0})
    opt.step(closure)
    assert opt.param_groups[1]["lr"] == 1.0 and opt.param_groups[1]["momentum"] == 0.9
    np.testing.assert_allclose(b.detach().numpy(), [0.5 - 1.0 * 1.0])
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [w]})
    with pytest.warns(UserWarning, match="more than once"):
        twice = tg.optim.SGD([w, w], lr=0.1)
    assert len(twice.param_groups[0]["params"]) == 1
