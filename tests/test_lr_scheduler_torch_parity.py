"""tracegrad.optim.lr_scheduler against torch.optim.lr_scheduler (2.13): a tracegrad and a
torch optimizer driven side by side give the same learning rates (and momenta, Adam's betas)
bit for bit: fresh, resumed with `last_epoch=k`, after a state_dict round trip (also of
torch's state into tracegrad's scheduler), and with `step(epoch)`.  The torch tests skip
without torch; the hand-computed ones below them do not need it."""
import contextlib
import copy
import math
import warnings

import numpy as np
import pytest

import tracegrad as tg

S = tg.optim.lr_scheduler


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _optimizer(lib, kind, groups):
    """An optimizer of `lib` (None: tracegrad's, else the torch module), one 2-vector per
    group; `groups` the groups' options."""
    if lib is None:
        optim, new = tg.optim, lambda: tg.tensor(np.ones(2), requires_grad=True)
    else:
        optim, new = lib.optim, lambda: lib.ones(2, dtype=lib.float64, requires_grad=True)
    return getattr(optim, kind)([{"params": [new()], **g} for g in groups])


def _module(lib):
    return S if lib is None else lib.optim.lr_scheduler


def _settings(opt):
    return [(g["lr"], g.get("momentum"), g.get("betas")) for g in opt.param_groups]


def _trajectory(sched, opt, steps):
    """(get_last_lr(), the groups' lr/momentum/betas) before each of `steps` steps."""
    seen = []
    for _ in range(steps):
        seen.append((list(sched.get_last_lr()), _settings(opt)))
        opt.step()
        sched.step()
    return seen


TWO = [{"lr": 0.1}, {"lr": 0.03}]
TWO_M = [{"lr": 0.1, "momentum": 0.5}, {"lr": 0.03}]
ADAM = [{"lr": 1e-3}, {"lr": 2e-3, "betas": (0.8, 0.99)}]

# name: (optimizer, its groups, make(scheduler module, optimizer, last_epoch))
CASES = {
    "LambdaLR": ("SGD", TWO, lambda L, o, e: L.LambdaLR(
        o, [lambda k: 0.95 ** k, lambda k: 1 / (1 + k)], last_epoch=e)),
    "MultiplicativeLR": ("SGD", TWO, lambda L, o, e: L.MultiplicativeLR(
        o, lambda k: 1 - 0.01 * k, last_epoch=e)),
    "StepLR": ("SGD", TWO, lambda L, o, e: L.StepLR(o, step_size=4, gamma=0.5, last_epoch=e)),
    "MultiStepLR": ("SGD", TWO, lambda L, o, e: L.MultiStepLR(
        o, [3, 7, 7, 12], gamma=0.3, last_epoch=e)),
    "ConstantLR": ("SGD", TWO, lambda L, o, e: L.ConstantLR(
        o, factor=0.3, total_iters=13, last_epoch=e)),
    "LinearLR": ("SGD", TWO, lambda L, o, e: L.LinearLR(
        o, start_factor=0.2, end_factor=0.9, total_iters=14, last_epoch=e)),
    "ExponentialLR": ("SGD", TWO, lambda L, o, e: L.ExponentialLR(o, gamma=0.93, last_epoch=e)),
    "PolynomialLR": ("SGD", TWO, lambda L, o, e: L.PolynomialLR(
        o, total_iters=17, power=1.7, last_epoch=e)),
    "CosineAnnealingLR": ("SGD", TWO, lambda L, o, e: L.CosineAnnealingLR(
        o, T_max=7, eta_min=0.01, last_epoch=e)),
    "CosineAnnealingWarmRestarts": ("SGD", TWO, lambda L, o, e: L.CosineAnnealingWarmRestarts(
        o, T_0=3, T_mult=2, eta_min=0.001, last_epoch=e)),
    "CosineAnnealingWarmRestarts-T_mult=1": ("SGD", TWO, lambda L, o, e:
                                             L.CosineAnnealingWarmRestarts(o, 5, last_epoch=e)),
    "CyclicLR-triangular-SGD": ("SGD", TWO_M, lambda L, o, e: L.CyclicLR(
        o, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=4, last_epoch=e)),
    "CyclicLR-triangular2": ("SGD", TWO_M, lambda L, o, e: L.CyclicLR(
        o, 0.01, [0.1, 0.3], step_size_up=3, step_size_down=5, mode="triangular2",
        base_momentum=[0.7, 0.8], max_momentum=0.95, last_epoch=e)),
    "CyclicLR-exp_range-Adam": ("Adam", ADAM, lambda L, o, e: L.CyclicLR(
        o, 1e-4, 1e-2, step_size_up=5, mode="exp_range", gamma=0.97, base_momentum=0.85,
        max_momentum=0.95, last_epoch=e)),
    "CyclicLR-scale_fn": ("SGD", TWO_M, lambda L, o, e: L.CyclicLR(
        o, 0.01, 0.1, step_size_up=2, step_size_down=4, scale_fn=lambda x: 1 / (1 + 0.05 * x),
        scale_mode="iterations", last_epoch=e)),
    "CyclicLR-no-momentum": ("Adam", ADAM, lambda L, o, e: L.CyclicLR(
        o, 1e-4, 1e-2, step_size_up=3, mode="triangular2", cycle_momentum=False,
        last_epoch=e)),
    "OneCycleLR-cos-SGD": ("SGD", TWO_M, lambda L, o, e: L.OneCycleLR(
        o, max_lr=[1.0, 0.5], total_steps=31, last_epoch=e)),
    "OneCycleLR-linear-Adam": ("Adam", ADAM, lambda L, o, e: L.OneCycleLR(
        o, 0.01, epochs=4, steps_per_epoch=8, pct_start=0.25, anneal_strategy="linear",
        base_momentum=[0.8, 0.85], div_factor=10.0, final_div_factor=100.0, last_epoch=e)),
    "OneCycleLR-three_phase": ("SGD", TWO_M, lambda L, o, e: L.OneCycleLR(
        o, 0.5, total_steps=31, pct_start=0.35, three_phase=True, last_epoch=e)),
    "OneCycleLR-no-momentum": ("SGD", TWO, lambda L, o, e: L.OneCycleLR(
        o, 0.5, total_steps=33, anneal_strategy="linear", cycle_momentum=False,
        three_phase=True, last_epoch=e)),
    "SequentialLR": ("SGD", TWO, lambda L, o, e: L.SequentialLR(
        o, [L.LinearLR(o, 0.1, total_iters=5, last_epoch=e),
            L.CosineAnnealingLR(o, T_max=20, last_epoch=e)], milestones=[5], last_epoch=e)),
    "SequentialLR-three": ("SGD", TWO, lambda L, o, e: L.SequentialLR(
        o, [L.ConstantLR(o, 0.5, 4, last_epoch=e), L.MultiplicativeLR(o, lambda k: 0.9, e),
            L.StepLR(o, 3, 0.5, last_epoch=e)], milestones=[6, 15], last_epoch=e)),
    "ChainedScheduler": ("SGD", TWO, lambda L, o, e: L.ChainedScheduler(
        [L.ConstantLR(o, 0.1, 20, last_epoch=e), L.ExponentialLR(o, 0.9, last_epoch=e)],
        optimizer=o)),
    "ChainedScheduler-linear-cosine": ("SGD", TWO, lambda L, o, e: L.ChainedScheduler(
        [L.LinearLR(o, 0.3, total_iters=6, last_epoch=e),
         L.CosineAnnealingLR(o, T_max=12, eta_min=0.001, last_epoch=e)])),
}
NOT_ONE_CYCLE = [name for name in CASES if not name.startswith("OneCycle")]


def _pair(torch, name, groups=None, last_epoch=-1):
    """(tracegrad's, torch's) (scheduler, optimizer) for a case."""
    kind, case_groups, make = CASES[name]
    made = []
    for lib in (None, torch):
        opt = _optimizer(lib, kind, case_groups if groups is None else groups)
        made.append((make(_module(lib), opt, last_epoch), opt))
    return made


@pytest.mark.parametrize("name", sorted(CASES))
def test_rates_match_torch(torch, name):
    (sched, opt), (t_sched, t_opt) = _pair(torch, name)
    assert _trajectory(sched, opt, 30) == _trajectory(t_sched, t_opt, 30)


@pytest.mark.parametrize("name", sorted(NOT_ONE_CYCLE))
def test_resume_with_last_epoch_matches_torch(torch, name):
    """The reproducer's case: `initial_lr` in the groups, the current rate another; torch
    2.13's initial step leaves the rate (of the chainable forms) as it is."""
    groups = [{**g, "initial_lr": 10 * g["lr"]} for g in CASES[name][1]]
    (sched, opt), (t_sched, t_opt) = _pair(torch, name, groups, last_epoch=3)
    assert _trajectory(sched, opt, 12) == _trajectory(t_sched, t_opt, 12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_resume_from_a_checkpoint_matches_torch(torch, name):
    """Run 10 steps, load the optimizer's state into a new one, make the scheduler with
    `last_epoch=10` (the groups hold initial_lr, and OneCycleLR's max_lr, min_lr, ...)."""
    kind, groups, make = CASES[name]
    runs = []
    for lib in (None, torch):
        opt = _optimizer(lib, kind, groups)
        _trajectory(make(_module(lib), opt, -1), opt, 10)
        resumed = _optimizer(lib, kind, groups)
        resumed.load_state_dict(opt.state_dict())
        runs.append(_trajectory(make(_module(lib), resumed, 10), resumed, 10))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_round_trip_matches_torch(torch, name):
    """tracegrad's state into a new scheduler, and torch's state into tracegrad's: both go
    on as torch's scheduler does."""
    kind, groups, make = CASES[name]
    (sched, opt), (t_sched, t_opt) = _pair(torch, name)
    _trajectory(sched, opt, 12)
    _trajectory(t_sched, t_opt, 12)
    ours, theirs = copy.deepcopy(sched.state_dict()), copy.deepcopy(t_sched.state_dict())
    continued = []
    for state in (ours, theirs):
        new_opt = _optimizer(None, kind, groups)
        new = make(S, new_opt, -1)
        new_opt.load_state_dict(opt.state_dict())
        new.load_state_dict(state)
        continued.append(_trajectory(new, new_opt, 10))
    expected = _trajectory(t_sched, t_opt, 10)
    assert continued[0] == expected
    assert continued[1] == expected


CLOSED_FORMS = ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
                "PolynomialLR", "CosineAnnealingLR", "LambdaLR", "MultiplicativeLR"]


@pytest.mark.parametrize("name", CLOSED_FORMS)
def test_step_with_an_epoch_matches_torch(torch, name):
    """`step(epoch)` (deprecated, warns): the closed form where there is one, else get_lr."""
    (sched, opt), (t_sched, t_opt) = _pair(torch, name)
    for epoch in [3, 7, None, 2, 12, 12, None, 0, 20, None]:
        with pytest.warns(UserWarning, match="epoch") if epoch is not None else \
                contextlib.nullcontext():
            sched.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_opt.step()
            t_sched.step(epoch)
        assert (sched.get_last_lr(), _settings(opt)) == (t_sched.get_last_lr(), _settings(t_opt))


@pytest.mark.parametrize("T_mult", [1, 3])
def test_warm_restarts_with_fractional_epochs_match_torch(torch, T_mult):
    (sched, opt), (t_sched, t_opt) = [
        (m.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=T_mult, eta_min=0.002), o)
        for m, o in ((S, _optimizer(None, "SGD", TWO)), (torch.optim.lr_scheduler,
                                                       _optimizer(torch, "SGD", TWO)))]
    for epoch in [0.5, 1.25, None, 3.999, 4.0, 7.3, None, None, 20.9, 2, 55.5, None]:
        for s, o in ((sched, opt), (t_sched, t_opt)):
            o.step()
            s.step(epoch)
        assert (sched.get_last_lr(), sched.T_cur, sched.T_i, sched.last_epoch) == \
            (t_sched.get_last_lr(), t_sched.T_cur, t_sched.T_i, t_sched.last_epoch)


PLATEAU = {
    "min-rel": dict(mode="min", factor=0.5, patience=2),
    "max-abs-cooldown": dict(mode="max", factor=0.3, patience=1, threshold=0.05,
                             threshold_mode="abs", cooldown=2),
    "min-abs-min_lr-per-group": dict(mode="min", factor=0.2, patience=0, threshold=0.01,
                                     threshold_mode="abs", min_lr=[0.01, 0.002]),
    "max-rel-eps": dict(mode="max", factor=0.5, patience=3, threshold=0.2, min_lr=0.005,
                        eps=0.02),
}
METRICS = [1 / (1 + k // 4) + 0.01 * ((7 * k) % 3) for k in range(30)]


@pytest.mark.parametrize("config", sorted(PLATEAU))
def test_reduce_on_plateau_matches_torch(torch, config):
    kw = PLATEAU[config]
    (sched, opt), (t_sched, t_opt) = [
        (m.ReduceLROnPlateau(o, **kw), o)
        for m, o in ((S, _optimizer(None, "SGD", TWO)), (torch.optim.lr_scheduler,
                                                       _optimizer(torch, "SGD", TWO)))]
    for k, metric in enumerate(METRICS):
        if k == 15:  # a round trip of each one's state (and torch's into tracegrad's)
            for state in (sched.state_dict(), t_sched.state_dict()):
                again = S.ReduceLROnPlateau(opt, **kw)
                again.load_state_dict(copy.deepcopy(state))
                assert again.state_dict() == sched.state_dict()
        for s, o in ((sched, opt), (t_sched, t_opt)):
            o.step()
            s.step(metric)
        assert (sched.get_last_lr(), _settings(opt), sched.num_bad_epochs,
                sched.cooldown_counter, sched.best) == \
            (t_sched.get_last_lr(), _settings(t_opt), t_sched.num_bad_epochs,
             t_sched.cooldown_counter, t_sched.best)
    assert sched.get_last_lr() != [0.1, 0.03]  # (each configuration reduces the rates)


@pytest.mark.parametrize("kind, name", [("SGD", "OneCycleLR-cos-SGD"),
                                        ("Adam", "CyclicLR-exp_range-Adam")])
def test_training_with_cycled_momentum_matches_torch(torch, kind, name):
    """The optimizers take the momentum (Adam's first beta) the scheduler sets."""
    groups = CASES[name][1]
    start = [np.array([1.0, -2.0]), np.array([0.5, 3.0])]
    ws = [tg.tensor(a.copy(), requires_grad=True) for a in start]
    ts = [torch.tensor(a.copy(), requires_grad=True) for a in start]
    opt = getattr(tg.optim, kind)([{"params": [w], **g} for w, g in zip(ws, groups)])
    t_opt = getattr(torch.optim, kind)([{"params": [w], **g} for w, g in zip(ts, groups)])
    sched, t_sched = CASES[name][2](S, opt, -1), CASES[name][2](torch.optim.lr_scheduler, t_opt, -1)
    for _ in range(20):
        for params, o, s in ((ws, opt, sched), (ts, t_opt, t_sched)):
            o.zero_grad()
            sum((p * p).sum() for p in params).backward()
            o.step()
            s.step()
    for w, t in zip(ws, ts):  # (the optimizers' own agreement: to rounding, not bitwise)
        np.testing.assert_allclose(w.detach().numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-14)


# ---- hand-computed values (no torch) -----------------------------------------------------------

def _sgd(lr=1.0, **kw):
    return tg.optim.SGD([tg.tensor(np.ones(1), requires_grad=True)], lr=lr, **kw)


def _rates(sched, opt, steps, key="lr"):
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0][key])
        opt.step()
        sched.step()
    return seen


def test_resume_keeps_the_optimizers_rate():
    """The reproducer: ExponentialLR, CosineAnnealingLR and LinearLR resumed at epoch 3 with
    initial_lr 1.0 and lr 0.1 start from 0.1."""
    def opt():
        return tg.optim.SGD([{"params": [tg.tensor(np.zeros(1), requires_grad=True)],
                              "lr": 0.1, "initial_lr": 1.0}], lr=0.1)
    o = opt()
    assert _rates(S.ExponentialLR(o, 0.5, last_epoch=3), o, 4) == [0.1, 0.05, 0.025, 0.0125]
    o = opt()  # torch's recursion from 0.1 at epoch 4: factor (1 + cos(5pi/10)) / (1 + cos(4pi/10))
    rates = _rates(S.CosineAnnealingLR(o, T_max=10, last_epoch=3), o, 2)
    assert rates == pytest.approx([0.1, 0.1 * 1 / (1 + math.cos(0.4 * math.pi))], rel=1e-15)
    o = opt()  # LinearLR past the first epoch: a ratio of consecutive factors
    rates = _rates(S.LinearLR(o, start_factor=0.5, total_iters=10, last_epoch=3), o, 2)
    assert rates == pytest.approx([0.1, 0.1 * (1 + 0.5 / (5 + 4 * 0.5))], rel=1e-15)
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(_sgd(), 2, last_epoch=3)


def test_constant_multiplicative_polynomial_by_hand():
    o = _sgd()
    assert _rates(S.ConstantLR(o, factor=0.5, total_iters=3), o, 5) == [0.5, 0.5, 0.5, 1.0, 1.0]
    o = _sgd()
    assert _rates(S.MultiplicativeLR(o, lambda e: 0.5), o, 4) == [1.0, 0.5, 0.25, 0.125]
    o = _sgd(16.0)
    rates = _rates(S.PolynomialLR(o, total_iters=4, power=2.0), o, 6)
    assert rates == pytest.approx([16.0, 9.0, 4.0, 1.0, 0.0, 0.0], rel=1e-14, abs=1e-14)
    with pytest.raises(ValueError, match="between 0 and 1"):
        S.ConstantLR(_sgd(), factor=1.5)
    with pytest.raises(TypeError, match="function"):
        S.MultiplicativeLR(_sgd(), 0.5)


def test_warm_restarts_by_hand():
    o = _sgd()
    sched = S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2)
    c = math.cos
    assert _rates(sched, o, 7) == pytest.approx(
        [1.0, 0.5, 1.0, (1 + c(math.pi / 4)) / 2, 0.5, (1 + c(3 * math.pi / 4)) / 2, 1.0],
        rel=1e-15, abs=1e-16)
    sched.step(2.5)  # 2.5 epochs: half an epoch into the second period (of 4)
    assert (sched.T_cur, sched.T_i, sched.last_epoch) == (0.5, 4, 2)
    assert sched.get_last_lr() == [(1 + c(math.pi * 0.5 / 4)) / 2]
    sched.step(6.0)  # the third period (of 8) starts at 2 + 4
    assert (sched.T_cur, sched.T_i, sched.get_last_lr()) == (0.0, 8, [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        sched.step(-1)
    with pytest.raises(ValueError, match="T_0"):
        S.CosineAnnealingWarmRestarts(_sgd(), T_0=0)


def test_cyclic_by_hand():
    o = _sgd(momentum=0.9)
    sched = S.CyclicLR(o, 0.1, 1.0, step_size_up=2)
    assert _rates(sched, o, 6) == pytest.approx([0.1, 0.55, 1.0, 0.55, 0.1, 0.55], rel=1e-15)
    o = _sgd(momentum=0.9)
    sched = S.CyclicLR(o, 0.1, 1.0, step_size_up=2, mode="triangular2")
    assert _rates(sched, o, 8, "momentum") == pytest.approx(  # the second cycle: half as high
        [0.9, 0.85, 0.8, 0.85, 0.9, 0.875, 0.85, 0.875], rel=1e-15)
    adam = tg.optim.Adam([tg.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    sched = S.CyclicLR(adam, 0.0, 1.0, step_size_up=1, mode="exp_range", gamma=0.5,
                       base_momentum=0.8, max_momentum=0.9)
    assert _rates(sched, adam, 4) == [0.0, 0.5, 0.0, 0.125]  # amplitude gamma ** step
    assert adam.param_groups[0]["betas"] == (0.9, 0.999)
    assert sched.state_dict()["_scale_fn_custom"] is None
    with pytest.raises(ValueError, match="momentum"):
        S.CyclicLR(tg.optim.Adagrad([tg.tensor(np.ones(1), requires_grad=True)]), 0.1, 1.0)


def test_one_cycle_by_hand():
    o = _sgd(momentum=0.9)
    sched = S.OneCycleLR(o, 1.0, total_steps=5, pct_start=0.4, anneal_strategy="linear",
                         div_factor=10.0, final_div_factor=100.0)
    group = o.param_groups[0]
    assert (group["initial_lr"], group["max_lr"], group["min_lr"]) == (0.1, 1.0, 0.001)
    lrs, momenta = [], []
    for _ in range(5):
        lrs.append(group["lr"])
        momenta.append(group["momentum"])
        o.step()
        sched.step()
    assert lrs == pytest.approx([0.1, 1.0, 1 - 0.999 / 3, 1 - 2 * 0.999 / 3, 0.001], rel=1e-14)
    assert momenta == pytest.approx([0.95, 0.85, 0.85 + 0.1 / 3, 0.85 + 0.2 / 3, 0.95],
                                    rel=1e-14)
    assert sched.last_epoch == 5  # (step 5 of 5 was allowed, as torch does; step 6 is not)
    with pytest.raises(ValueError, match="total steps"):
        sched.step()
    o = _sgd()  # cosine, three phases: up to max_lr at 2, back to initial_lr at 4, then down
    sched = S.OneCycleLR(o, 1.0, total_steps=10, pct_start=0.3, three_phase=True,
                         div_factor=4.0, final_div_factor=1.0)
    rates = _rates(sched, o, 10)
    assert rates[:5] == pytest.approx([0.25, 0.625, 1.0, 0.625, 0.25], rel=1e-14)
    assert rates[-1] == pytest.approx(0.25, rel=1e-14)
    with pytest.raises(ValueError, match="total_steps OR"):
        S.OneCycleLR(_sgd(), 1.0)


def test_sequential_and_chained_by_hand():
    o = _sgd()
    sched = S.SequentialLR(o, [S.ConstantLR(o, factor=0.5, total_iters=2),
                               S.ExponentialLR(o, gamma=0.5)], milestones=[3])
    assert _rates(sched, o, 6) == [0.5, 0.5, 1.0, 1.0, 0.5, 0.25]
    o = _sgd()
    sched = S.ChainedScheduler([S.ConstantLR(o, factor=0.1, total_iters=2),
                                S.ExponentialLR(o, gamma=0.5)])
    assert _rates(sched, o, 4) == pytest.approx([0.1, 0.05, 0.25, 0.125], rel=1e-15)
    state = sched.state_dict()
    assert [s["last_epoch"] for s in state["_schedulers"]] == [4, 4]
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        S.SequentialLR(o, [S.ReduceLROnPlateau(o), S.StepLR(o, 2)], milestones=[2])
    with pytest.raises(ValueError, match="milestone"):
        S.SequentialLR(o, [S.StepLR(o, 2)], milestones=[2])


def test_reduce_on_plateau_by_hand():
    o = _sgd()
    sched = S.ReduceLROnPlateau(o, factor=0.5, patience=1)
    rates = []
    for loss in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.5]:
        sched.step(loss)
        rates.append(sched.get_last_lr()[0])
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    o = tg.optim.SGD([{"params": [tg.tensor(np.ones(1), requires_grad=True)], "lr": 1.0},
                      {"params": [tg.tensor(np.ones(1), requires_grad=True)], "lr": 1e-9}])
    sched = S.ReduceLROnPlateau(o, mode="max", factor=0.1, patience=0, cooldown=1,
                                min_lr=[0.05, 0.0])
    for accuracy in [0.5, 0.4, 0.4, 0.4]:  # the best, then worse: reduced, cooldown, reduced
        sched.step(accuracy)
    # the first group stops at its min_lr; the second's changes (under eps) are skipped
    assert sched.get_last_lr() == [0.05, 1e-9]
    with pytest.raises(ValueError, match="Factor"):
        S.ReduceLROnPlateau(o, factor=1.0)
