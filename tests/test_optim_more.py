"""RMSprop, Adagrad, the learning-rate schedulers, gradient clipping and the torch-porting
details of the optimizers (positional lr, per-instance defaults, torch's flags, torch's SGD
state); against independent numpy transcriptions of torch's documented algorithms, and
against torch itself where it is installed."""
import math

import numpy as np
import pytest

import tracegrad as tg

RNG = np.random.default_rng(0)
X, Y = RNG.standard_normal((20, 3)), RNG.standard_normal(20)


def _grad(w):
    return 2 * X.T @ (X @ w - Y) / len(Y)


def _eager(cls, kw, steps=40):
    w = tg.tensor(np.ones(3), requires_grad=True)
    opt = cls([w], **kw)
    for _ in range(steps):
        opt.zero_grad()
        ((X @ w - Y) ** 2).mean().backward()
        opt.step()
    return w.detach().numpy()


def _functional(cls, kw, steps=40):
    opt, w = cls(**kw), np.ones(3)
    state = opt.init(w)
    step = tg.jit(lambda w, s: opt.update(tg.grad(lambda w: np.mean((X @ w - Y) ** 2))(w), s, w))
    for _ in range(steps):
        w, state = step(w, state)
    assert len(step.cache_info()) == 1
    return w


def _rmsprop_reference(kw, steps=40):
    lr, alpha, eps = kw.get("lr", 1e-2), kw.get("alpha", 0.99), kw.get("eps", 1e-8)
    wd, mom, centered = kw.get("weight_decay", 0.0), kw.get("momentum", 0.0), kw.get("centered", False)
    w, sq, ga, buf = np.ones(3), np.zeros(3), np.zeros(3), np.zeros(3)
    for _ in range(steps):
        g = _grad(w) + wd * w
        sq = alpha * sq + (1 - alpha) * g * g
        if centered:
            ga = alpha * ga + (1 - alpha) * g
            avg = np.sqrt(sq - ga * ga) + eps
        else:
            avg = np.sqrt(sq) + eps
        if mom > 0:
            buf = mom * buf + g / avg
            w = w - lr * buf
        else:
            w = w - lr * g / avg
    return w


def _adagrad_reference(kw, steps=40):
    lr, decay, eps = kw.get("lr", 1e-2), kw.get("lr_decay", 0.0), kw.get("eps", 1e-10)
    wd, total = kw.get("weight_decay", 0.0), np.full(3, kw.get("initial_accumulator_value", 0.0))
    w = np.ones(3)
    for t in range(1, steps + 1):
        g = _grad(w) + wd * w
        total = total + g * g
        w = w - lr / (1 + (t - 1) * decay) * g / (np.sqrt(total) + eps)
    return w


CASES = [("RMSprop", {}), ("RMSprop", {"centered": True}), ("RMSprop", {"momentum": 0.9}),
         ("RMSprop", {"centered": True, "momentum": 0.5, "weight_decay": 0.1, "lr": 0.03}),
         ("Adagrad", {}), ("Adagrad", {"lr_decay": 0.01, "lr": 0.1}),
         ("Adagrad", {"initial_accumulator_value": 0.1, "weight_decay": 0.1, "eps": 1e-6})]


@pytest.mark.parametrize("name,kw", CASES)
def test_rmsprop_and_adagrad_follow_torchs_algorithms_in_both_forms(name, kw):
    reference = (_rmsprop_reference if name == "RMSprop" else _adagrad_reference)(kw)
    cls = getattr(tg.optim, name)
    np.testing.assert_allclose(_eager(cls, kw), reference, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_functional(cls, kw), reference, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,kw", CASES + [("SGD", {"momentum": 0.9, "nesterov": True}),
                                              ("Adam", {"amsgrad": True})])
def test_the_optimizers_match_torch(name, kw):
    torch = pytest.importorskip("torch")
    w = torch.tensor(np.ones(3), requires_grad=True)
    opt = getattr(torch.optim, name)([w], **kw)
    for _ in range(40):
        opt.zero_grad()
        ((torch.tensor(X) @ w - torch.tensor(Y)) ** 2).mean().backward()
        opt.step()
    np.testing.assert_allclose(_eager(getattr(tg.optim, name), kw), w.detach().numpy(),
                               rtol=1e-12, atol=1e-14)


# ---- schedulers --------------------------------------------------------------------------------

SCHEDULES = {
    "StepLR": ({"step_size": 3, "gamma": 0.5}, lambda e: 0.5 ** (e // 3)),
    "MultiStepLR": ({"milestones": [2, 5, 5], "gamma": 0.3},
                    lambda e: 0.3 ** ((e >= 2) + 2 * (e >= 5))),
    "ExponentialLR": ({"gamma": 0.9}, lambda e: 0.9 ** e),
    "LinearLR": ({"start_factor": 0.25, "total_iters": 6}, lambda e: 0.25 + 0.75 * min(e, 6) / 6),
    "CosineAnnealingLR": ({"T_max": 7, "eta_min": 0.01},
                          lambda e: (0.01 + 0.69 * (1 + math.cos(math.pi * e / 7)) / 2) / 0.7),
    "LambdaLR": ({"lr_lambda": lambda e: 1 / (1 + e)}, lambda e: 1 / (1 + e)),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedulers_give_their_closed_forms(name):
    kw, factor = SCHEDULES[name]
    w = tg.tensor(np.ones(2), requires_grad=True)
    opt = tg.optim.SGD([w], 0.7)
    sched = getattr(tg.optim.lr_scheduler, name)(opt, **kw)
    epochs = range(8 if name == "CosineAnnealingLR" else 15)  # (the cosine's first half)
    rates = []
    for _ in epochs:
        rates.append(sched.get_last_lr()[0])
        assert opt.param_groups[0]["lr"] == rates[-1]
        opt.step()
        sched.step()
    np.testing.assert_allclose(rates, [0.7 * factor(e) for e in epochs], rtol=1e-12)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedulers_match_torch(name):
    torch = pytest.importorskip("torch")
    kw = SCHEDULES[name][0]
    wt = torch.tensor(np.ones(2), requires_grad=True)
    ot = torch.optim.SGD([wt], lr=0.7)
    st = getattr(torch.optim.lr_scheduler, name)(ot, **kw)
    opt = tg.optim.SGD([tg.tensor(np.ones(2), requires_grad=True)], lr=0.7)
    sched = getattr(tg.optim.lr_scheduler, name)(opt, **kw)
    for _ in range(25):
        assert sched.get_last_lr() == st.get_last_lr()
        ot.step()
        st.step()
        opt.step()
        sched.step()


# ---- clipping, porting details ---------------------------------------------------------------------

def test_clip_grad_norm_and_value():
    from tracegrad.nn.utils import clip_grad_norm_, clip_grad_value_
    a = tg.tensor(np.array([3.0, 0.0]), requires_grad=True)
    b = tg.tensor(np.array([[0.0, 4.0]]), requires_grad=True)
    ((a * a).sum() + (b * b).sum()).backward()  # grads [6, 0] and [[0, 8]]: norm 10
    total = clip_grad_norm_([a, b], max_norm=5.0)
    assert float(total) == 10.0
    np.testing.assert_allclose(a.grad.numpy(), [6 * 5 / (10 + 1e-6), 0.0])
    assert float(clip_grad_norm_([a, b], 100.0, norm_type=np.inf)) == pytest.approx(8 * 5 / 10, 1e-6)
    clip_grad_value_([a, b], 1.0)
    np.testing.assert_allclose(b.grad.numpy(), [[0.0, 1.0]])
    with pytest.raises(RuntimeError, match="non-finite"):
        b.grad.data[0, 0] = np.nan
        clip_grad_norm_([a, b], 1.0, error_if_nonfinite=True)


def test_porting_details_positional_lr_defaults_flags():
    w = tg.tensor(np.ones(2), requires_grad=True)
    opt = tg.optim.SGD([w], 0.1, momentum=0.9, foreach=False)
    assert opt.defaults["lr"] == 0.1 and opt.defaults["momentum"] == 0.9
    opt.defaults["lr"] = 0.5
    assert tg.optim.SGD([tg.tensor(np.ones(1), requires_grad=True)]).defaults["lr"] == 1e-3
    adam = tg.optim.Adam([tg.tensor(np.ones(1), requires_grad=True)], decoupled_weight_decay=True,
                         fused=None)
    assert adam.defaults["decoupled"]


def test_sgd_resumes_from_a_state_without_step_as_torchs():
    w = tg.tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = tg.optim.SGD([w], lr=0.1, momentum=0.9)
    saved = {"state": {0: {"momentum_buffer": np.array([2.0, -4.0])}},
             "param_groups": [{**opt.defaults, "params": [0]}]}
    opt.load_state_dict(saved)
    (w * w).sum().backward()
    opt.step()  # buf = 0.9 * [2, -4] + [2, -4] = [3.8, -7.6]
    np.testing.assert_allclose(w.detach().numpy(), [1.0 - 0.38, -2.0 + 0.76])


def test_functional_update_matches_grads_to_params_by_key():
    opt = tg.optim.SGD(lr=0.1)
    params = {"a": np.ones(2), "b": np.ones(3)}
    new, _ = opt.update({"b": np.ones(3), "a": np.full(2, 2.0)}, opt.init(params), params)
    np.testing.assert_allclose(new["a"], [0.8, 0.8])
    np.testing.assert_allclose(new["b"], [0.9, 0.9, 0.9])
