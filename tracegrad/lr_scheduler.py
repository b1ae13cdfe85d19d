"""`tracegrad.optim.lr_scheduler`: PyTorch's learning-rate schedulers for the eager
optimizers, with PyTorch 2.13's formulas (the recursive, "chainable" ones where torch uses
them), so that a schedule gives torch's rates bit for bit.

Each scheduler sets `group["lr"]` of its optimizer's parameter groups (and, for `OneCycleLR`
and `CyclicLR`, `group["momentum"]` or `group["betas"][0]`): at construction for step 0
(keeping `group["initial_lr"]`), then once per `step()`, usually once per epoch after
`optimizer.step()`.  `get_last_lr()` gives the rates last set, `state_dict()` and
`load_state_dict()` save and restore a scheduler (their entries are torch's: a torch
scheduler's state loads too).  To resume, load the optimizer's state (which holds
`initial_lr`) and make the scheduler with `last_epoch=k`: as torch's, it then leaves the
optimizer's rates as they are.

>>> import numpy as np, tracegrad as tg
>>> w = tg.tensor(np.ones(2), requires_grad=True)
>>> opt = tg.optim.SGD([w], lr=1.0)
>>> sched = tg.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
>>> rates = []
>>> for epoch in range(5):
...     rates.append(sched.get_last_lr()[0])
...     opt.step(); sched.step()
>>> rates
[1.0, 1.0, 0.5, 0.5, 0.25]
"""
from __future__ import annotations

import math
import types
import warnings
from bisect import bisect_right
from collections import Counter

__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR",
           "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR",
           "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR", "SequentialLR",
           "ChainedScheduler", "ReduceLROnPlateau"]

_EPOCH_WARNING = ("The epoch parameter in `scheduler.step()` is deprecated, as in PyTorch: "
                  "with it, the closed form is used instead of the chainable one, where there "
                  "is one. Call `scheduler.step()` without it.")


# ---- helpers -------------------------------------------------------------------------------

def _check_optimizer(optimizer) -> None:
    from .optim import Optimizer  # (optim imports this module)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")


def _per_group(name: str, optimizer, value) -> list:
    """`value` for each parameter group: a list or tuple with one per group, or one value."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. "
                             f"{name} has {len(value)} values, param_groups has {n}.")
        return list(value)
    return [value] * n


def _values(optimizer, key: str) -> list:
    return [group[key] for group in optimizer.param_groups]


def _set_values(optimizer, key: str, values) -> None:
    values = list(values)
    if len(values) != len(optimizer.param_groups):
        raise ValueError(f"{len(values)} values of {key!r} for "
                         f"{len(optimizer.param_groups)} parameter groups")
    for group, value in zip(optimizer.param_groups, values):
        group[key] = value


def _set_momenta(optimizer, use_beta1: bool, momenta) -> None:
    """Set each group's momentum: Adam's first beta, or SGD's (RMSprop's) momentum."""
    for group, momentum in zip(optimizer.param_groups, momenta):
        if use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum


def _cycled_momenta(optimizer, base_momentum, max_momentum, last_epoch):
    """`(use_beta1, base_momenta, max_momenta)` of a scheduler that cycles the momentum; a
    new schedule (`last_epoch` -1) starts the groups at their maximum momentum."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` "
                         "option enabled")
    use_beta1 = "betas" in optimizer.defaults
    base = _per_group("base_momentum", optimizer, base_momentum)
    top = _per_group("max_momentum", optimizer, max_momentum)
    if last_epoch == -1:
        _set_momenta(optimizer, use_beta1, top)
        for group, hi, lo in zip(optimizer.param_groups, top, base):
            group["max_momentum"], group["base_momentum"] = hi, lo
    return use_beta1, base, top


def _lambdas(optimizer, lr_lambda) -> list:
    n = len(optimizer.param_groups)
    if not isinstance(lr_lambda, (list, tuple)):
        return [lr_lambda] * n
    if len(lr_lambda) != n:
        raise ValueError(f"Expected {n} lr_lambdas, but got {len(lr_lambda)}")
    return list(lr_lambda)


def _saved_callable(fn):
    """What a state dict keeps of a user's function: nothing for a plain function (None),
    the attributes of a callable object."""
    return None if fn is None or isinstance(fn, types.FunctionType) else fn.__dict__.copy()


# ---- the base ------------------------------------------------------------------------------

class LRScheduler:
    """Base of the schedulers: `get_lr()` gives the groups' rates at `last_epoch` (from their
    current ones, in the chainable forms), `step()` advances `last_epoch` and sets them.

    Construction takes the initial step: `last_epoch` -1 becomes 0 (the rates of step 0),
    a resumed `last_epoch=k` becomes k + 1, and while that step runs `_is_initial` is set,
    so that the chainable forms leave the optimizer's rates as they are (torch 2.13's rule).
    """

    _is_initial = False

    def __init__(self, optimizer, last_epoch: int = -1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   "when resuming scheduler with last_epoch >= 0 (load the "
                                   "optimizer's state first)")
        self.base_lrs = _values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list:
        raise NotImplementedError

    def step(self, epoch=None) -> None:
        """Advance one epoch (call it after `optimizer.step()`).  `epoch`, deprecated as in
        torch, jumps to that epoch and uses the closed form where there is one."""
        self._step_count += 1
        if epoch is not None:
            warnings.warn(_EPOCH_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None) -> None:
        if epoch is None:
            self.last_epoch += 1
            rates = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_get_closed_form_lr", None)
            rates = self.get_lr() if closed is None else closed()
        _set_values(self.optimizer, "lr", rates)
        self._last_lr = _values(self.optimizer, "lr")

    def get_last_lr(self) -> list:
        """The rates the last step set, one per parameter group."""
        return self._last_lr

    def state_dict(self) -> dict:
        """Every attribute but the optimizer (torch's entries)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


class _WithLambdas(LRScheduler):
    """Keeps `lr_lambdas` out of the state, but for the attributes of callable objects."""

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [_saved_callable(fn) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        saved = state.pop("lr_lambdas", None) or [None] * len(self.lr_lambdas)
        self.__dict__.update(state)
        for fn, attributes in zip(self.lr_lambdas, saved):
            if attributes is not None:
                fn.__dict__.update(attributes)


# ---- schedules of the epoch ----------------------------------------------------------------

class LambdaLR(_WithLambdas):
    """Rate `base_lr * lr_lambda(epoch)` (one function, or one per group)."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        self.optimizer = optimizer
        self.lr_lambdas = _lambdas(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * f(self.last_epoch) for f, base in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(_WithLambdas):
    """The rate times `lr_lambda(epoch)` every epoch but the first.

    >>> import numpy as np, tracegrad as tg
    >>> opt = tg.optim.SGD([tg.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    >>> sched = tg.optim.lr_scheduler.MultiplicativeLR(opt, lambda epoch: 0.5)
    >>> for _ in range(3):
    ...     opt.step(); sched.step()
    >>> sched.get_last_lr()
    [0.125]
    """

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        self.optimizer = optimizer
        self.lr_lambdas = _lambdas(optimizer, lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return _values(self.optimizer, "lr")
        return [group["lr"] * f(self.last_epoch)
                for f, group in zip(self.lr_lambdas, self.optimizer.param_groups)]


class StepLR(LRScheduler):
    """The rate times `gamma` every `step_size` epochs."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _values(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """The rate times `gamma` at each of the `milestones` (epochs; one listed twice, twice)."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        self.milestones, self.gamma = Counter(milestones), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return _values(self.optimizer, "lr")
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch]
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        passed = bisect_right(sorted(self.milestones.elements()), self.last_epoch)
        return [base * self.gamma ** passed for base in self.base_lrs]


class ConstantLR(LRScheduler):
    """The rate times `factor` until epoch `total_iters`, then the rate itself.

    >>> import numpy as np, tracegrad as tg
    >>> opt = tg.optim.SGD([tg.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    >>> sched = tg.optim.lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=2)
    >>> rates = []
    >>> for _ in range(4):
    ...     rates.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    >>> rates
    [0.5, 0.5, 1.0, 1.0]
    """

    def __init__(self, optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1):
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in self.optimizer.param_groups]
        if self.last_epoch != self.total_iters:
            return _values(self.optimizer, "lr")
        return [group["lr"] * (1.0 / self.factor) for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base in self.base_lrs]


class LinearLR(LRScheduler):
    """The rate's factor going linearly from `start_factor` to `end_factor` over
    `total_iters` epochs."""

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1):
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 "
                             "and less or equal to 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return _values(self.optimizer, "lr")
        span = self.end_factor - self.start_factor
        ratio = 1.0 + span / (self.total_iters * self.start_factor + (self.last_epoch - 1) * span)
        return [group["lr"] * ratio for group in groups]

    def _get_closed_form_lr(self):
        span = self.end_factor - self.start_factor
        done = min(self.total_iters, self.last_epoch)
        return [base * (self.start_factor + span * done / self.total_iters)
                for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """The rate times `gamma` every epoch."""

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return _values(self.optimizer, "lr")
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class PolynomialLR(LRScheduler):
    """The rate times `(1 - epoch / total_iters) ** power`, then 0 after `total_iters`.

    >>> import numpy as np, tracegrad as tg
    >>> opt = tg.optim.SGD([tg.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    >>> sched = tg.optim.lr_scheduler.PolynomialLR(opt, total_iters=4, power=1.0)
    >>> rates = []
    >>> for _ in range(6):
    ...     rates.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    >>> rates
    [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """

    def __init__(self, optimizer, total_iters: int = 5, power: float = 1.0,
                 last_epoch: int = -1):
        self.total_iters, self.power = total_iters, power
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial or self.last_epoch > self.total_iters:
            return _values(self.optimizer, "lr")
        t, n = self.last_epoch, self.total_iters
        decay = ((1.0 - t / n) / (1.0 - (t - 1) / n)) ** self.power
        return [group["lr"] * decay for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        done = min(self.total_iters, self.last_epoch)
        return [base * (1.0 - done / self.total_iters) ** self.power for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """The rate following half a cosine from its base to `eta_min` over `T_max` epochs (and
    back up over the next `T_max`, as torch's recursion does)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, T, low = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if self._is_initial:
            return _values(self.optimizer, "lr")
        if self._step_count == 1 and t > 0:
            return [low + (base - low) * (1 + math.cos(t * math.pi / T)) / 2
                    for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [group["lr"] + (base - low) * (1 - math.cos(math.pi / T)) / 2
                    for base, group in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (group["lr"] - low) + low for group in groups]

    def _get_closed_form_lr(self):
        low = self.eta_min
        return [low + (base - low) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing from the base rate to `eta_min` over `T_0` epochs, restarting at
    the base rate, each period `T_mult` times the last (SGDR).  `step(epoch)` takes a
    fractional epoch (steps within an epoch).

    >>> import numpy as np, tracegrad as tg
    >>> opt = tg.optim.SGD([tg.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    >>> sched = tg.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2)
    >>> rates = []
    >>> for _ in range(4):
    ...     rates.append(round(opt.param_groups[0]["lr"], 6)); opt.step(); sched.step()
    >>> rates  # a period of 2, then of 4
    [1.0, 0.5, 1.0, 0.853553]
    >>> sched.step(2.5); round(sched.get_last_lr()[0], 6)  # half an epoch into the second
    0.96194
    """

    def __init__(self, optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1):
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type "
                             f"{type(eta_min)}")
        self.T_0 = self.T_i = T_0
        self.T_mult, self.eta_min = T_mult, eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        low, phase = self.eta_min, math.pi * self.T_cur / self.T_i
        return [low + (base - low) * (1 + math.cos(phase)) / 2 for base in self.base_lrs]

    def step(self, epoch=None) -> None:
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            self._jump_to(epoch)
        self.last_epoch = math.floor(epoch)
        _set_values(self.optimizer, "lr", self.get_lr())
        self._last_lr = _values(self.optimizer, "lr")

    def _jump_to(self, epoch) -> None:
        """`T_cur` and `T_i` at `epoch` (which may be fractional), in closed form."""
        if epoch < 0:
            raise ValueError(f"Expected non-negative epoch, but got {epoch}")
        T_0, mult = self.T_0, self.T_mult
        if epoch < T_0:
            self.T_i, self.T_cur = T_0, epoch
        elif mult == 1:
            self.T_cur = epoch % T_0
        else:
            n = int(math.log(epoch / T_0 * (mult - 1) + 1, mult))
            self.T_cur = epoch - T_0 * (mult ** n - 1) / (mult - 1)
            self.T_i = T_0 * mult ** n


# ---- schedules of the batch, with momentum ---------------------------------------------------

_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


class CyclicLR(LRScheduler):
    """The rate cycling between `base_lr` and `max_lr` (a triangle of `step_size_up` steps
    up and `step_size_down` down), its amplitude scaled per cycle (`triangular`: 1,
    `triangular2`: halved each cycle) or per step (`exp_range`: `gamma ** step`), or by
    `scale_fn`; with `cycle_momentum` the momentum (or Adam's first beta) goes the other
    way, between `max_momentum` and `base_momentum`.  Step it once per batch.

    >>> import numpy as np, tracegrad as tg
    >>> opt = tg.optim.SGD([tg.tensor(np.ones(1), requires_grad=True)], lr=1.0, momentum=0.9)
    >>> sched = tg.optim.lr_scheduler.CyclicLR(opt, 0.1, 1.0, step_size_up=2)
    >>> rates = []
    >>> for _ in range(5):
    ...     rates.append(round(opt.param_groups[0]["lr"], 6)); opt.step(); sched.step()
    >>> rates, round(opt.param_groups[0]["momentum"], 6)
    ([0.1, 0.55, 1.0, 0.55, 0.1], 0.85)
    """

    def __init__(self, optimizer, base_lr, max_lr, step_size_up: int = 2000,
                 step_size_down: int | None = None, mode: str = "triangular",
                 gamma: float = 1.0, scale_fn=None, scale_mode: str = "cycle",
                 cycle_momentum: bool = True, base_momentum=0.8, max_momentum=0.9,
                 last_epoch: int = -1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        base_lrs = _per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            _set_values(optimizer, "lr", base_lrs)
        self.max_lrs = _per_group("max_lr", optimizer, max_lr)
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        if mode not in _CYCLIC_MODES and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        self.mode, self.gamma = mode, gamma
        self._scale_fn_custom, self.scale_mode = scale_fn, scale_mode
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1, self.base_momentums, self.max_momentums = _cycled_momenta(
                optimizer, base_momentum, max_momentum, last_epoch)
        super().__init__(optimizer, last_epoch)  # (its first step: base_lrs from initial_lr)
        self.base_lrs = base_lrs

    def _init_scale_fn(self) -> None:
        """The built-in modes scale per cycle, but `exp_range` per step."""
        if self._scale_fn_custom is None:
            self.scale_mode = "iterations" if self.mode == "exp_range" else "cycle"

    def scale_fn(self, x) -> float:
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / 2.0 ** (x - 1)
        return self.gamma ** x

    def get_lr(self):
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        ratio = self.step_ratio
        rise = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        rates = [lo + (hi - lo) * rise * scale for lo, hi in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            momenta = [hi - (hi - lo) * rise * scale
                       for lo, hi in zip(self.base_momentums, self.max_momentums)]
            _set_momenta(self.optimizer, self.use_beta1, momenta)
        return rates

    def state_dict(self):
        state = super().state_dict()
        state["_scale_fn_custom"] = _saved_callable(state.get("_scale_fn_custom"))
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        attributes = state.pop("_scale_fn_custom", None)
        state.pop("_scale_fn_ref", None)
        super().load_state_dict(state)
        if attributes is not None:
            self._scale_fn_custom.__dict__.update(attributes)
        self._init_scale_fn()


def _one_cycle_steps(total_steps, epochs, steps_per_epoch) -> int:
    if total_steps is not None:
        if total_steps <= 0 or not isinstance(total_steps, int):
            raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
        return total_steps
    if epochs is None or steps_per_epoch is None:
        raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
    if not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f"Expected positive integer epochs, but got {epochs}")
    if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
        raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
    return epochs * steps_per_epoch


def _phase(end_step, start_lr, end_lr, start_momentum, end_momentum) -> dict:
    return {"end_step": end_step, "start_lr": start_lr, "end_lr": end_lr,
            "start_momentum": start_momentum, "end_momentum": end_momentum}


def _one_cycle_phases(total: int, pct_start: float, three_phase: bool) -> list:
    """The phases (their last step, and the group entries they go from and to)."""
    warm_up = _phase(float(pct_start * total) - 1, "initial_lr", "max_lr",
                     "max_momentum", "base_momentum")
    if not three_phase:
        return [warm_up, _phase(total - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
    return [warm_up,
            _phase(float(2 * pct_start * total) - 2, "max_lr", "initial_lr",
                   "base_momentum", "max_momentum"),
            _phase(total - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]


class OneCycleLR(LRScheduler):
    """The 1cycle policy: the rate rising from `max_lr / div_factor` to `max_lr` over the
    first `pct_start` of `total_steps` (or `epochs * steps_per_epoch`), then annealing
    (`anneal_strategy` "cos" or "linear") to `initial_lr / final_div_factor`; `three_phase`
    comes back down to the initial rate before the final annealing.  With `cycle_momentum`
    the momentum (or Adam's first beta) goes the other way, between `max_momentum` and
    `base_momentum`.  Step it once per batch.

    >>> import numpy as np, tracegrad as tg
    >>> opt = tg.optim.SGD([tg.tensor(np.ones(1), requires_grad=True)], lr=1.0, momentum=0.9)
    >>> sched = tg.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=5,
    ...     pct_start=0.4, anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0)
    >>> rates, momenta = [], []
    >>> for _ in range(5):
    ...     group = opt.param_groups[0]
    ...     rates.append(round(group["lr"], 6)); momenta.append(round(group["momentum"], 6))
    ...     opt.step(); sched.step()
    >>> rates, momenta
    ([0.1, 1.0, 0.667, 0.334, 0.001], [0.95, 0.85, 0.883333, 0.916667, 0.95])
    """

    def __init__(self, optimizer, max_lr, total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        self.total_steps = _one_cycle_steps(total_steps, epochs, steps_per_epoch)
        self._schedule_phases = _one_cycle_phases(self.total_steps, pct_start, three_phase)
        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError("anneal_strategy must be one of 'cos' or 'linear', instead got "
                             f"{anneal_strategy}")
        self._anneal_func_type = anneal_strategy
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for group, top in zip(optimizer.param_groups, max_lrs):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _cycled_momenta(optimizer, base_momentum, max_momentum,
                                             last_epoch)[0]
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start, end, pct):
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _phase_at(self, step):
        """The phase that `step` is in, and how far into it (0 to 1)."""
        start, last = 0.0, len(self._schedule_phases) - 1
        for i, phase in enumerate(self._schedule_phases):
            end = phase["end_step"]
            if step <= end or i == last:
                return phase, (step - start) / (end - start)
            start = end

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"Tried to step {step} times. The specified number of total "
                             f"steps is {self.total_steps}")
        phase, pct = self._phase_at(step)
        groups = self.optimizer.param_groups
        rates = [self._anneal(g[phase["start_lr"]], g[phase["end_lr"]], pct) for g in groups]
        if self.cycle_momentum:
            momenta = [self._anneal(g[phase["start_momentum"]], g[phase["end_momentum"]], pct)
                       for g in groups]
            _set_momenta(self.optimizer, self.use_beta1, momenta)
        return rates


# ---- schedulers of schedulers -----------------------------------------------------------------

def _check_schedulers(owner, optimizer, schedulers) -> None:
    name = type(owner).__name__
    if len(schedulers) < 1:
        raise ValueError(f"{name} expects at least one scheduler, but got no scheduler.")
    for i, scheduler in enumerate(schedulers):
        if not hasattr(scheduler, "optimizer"):
            raise TypeError(f"{name} at index {i} should have `optimizer` as its attribute.")
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(f"{name} does not support `ReduceLROnPlateau` scheduler as it "
                             "requires additional kwargs to be specified when calling `step`, "
                             f"but got one at index {i} in the given schedulers sequence.")
        if optimizer != scheduler.optimizer:
            raise ValueError(f"{name} expects all schedulers to belong to the same optimizer, "
                             f"but got scheduler {type(scheduler).__name__} at index {i} "
                             "with another one.")


class _OfSchedulers(LRScheduler):
    """The state of a scheduler of schedulers: its own and each of theirs."""

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        saved = state.pop("_schedulers")
        self.__dict__.update(state)
        for scheduler, s in zip(self._schedulers, saved):
            scheduler.load_state_dict(s)


class SequentialLR(_OfSchedulers):
    """`schedulers[i]` runs from `milestones[i - 1]` on (each restarted at its epoch 0).

    >>> import numpy as np, tracegrad as tg
    >>> S = tg.optim.lr_scheduler
    >>> opt = tg.optim.SGD([tg.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    >>> warm_up = S.LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> sched = S.SequentialLR(opt, [warm_up, S.ExponentialLR(opt, gamma=0.5)], milestones=[3])
    >>> rates = []
    >>> for _ in range(6):
    ...     rates.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    >>> rates
    [0.25, 0.5, 0.75, 1.0, 0.5, 0.25]
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch: int = -1):
        _check_schedulers(self, optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError("Sequential Schedulers expects number of schedulers provided to be "
                             "one more than the number of milestone points, but got number of "
                             f"schedulers {len(schedulers)} and the number of milestones to be "
                             f"equal to {len(milestones)}")
        self._schedulers, self._milestones = schedulers, milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:  # undo what the schedulers' construction did
            group["lr"] = group["initial_lr"]
        self.recursive_undo()
        first = schedulers[bisect_right(milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def recursive_undo(self, sched=None) -> None:
        """Take back the initial step of every scheduler (nested ones included)."""
        scheduler = self if sched is None else sched
        if hasattr(scheduler, "_schedulers"):
            for s in scheduler._schedulers:
                self.recursive_undo(s)
        elif hasattr(scheduler, "last_epoch"):
            scheduler.last_epoch -= 1

    def step(self) -> None:
        self.last_epoch += 1
        i = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[i]
        if i > 0 and self._milestones[i - 1] == self.last_epoch:
            scheduler._update_lr(0)  # its epoch 0 (closed form, where it has one)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_OfSchedulers):
    """Steps every one of `schedulers` at each `step()` (their chainable forms compose).

    >>> import numpy as np, tracegrad as tg
    >>> S = tg.optim.lr_scheduler
    >>> opt = tg.optim.SGD([tg.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    >>> sched = S.ChainedScheduler([S.ConstantLR(opt, factor=0.5, total_iters=2),
    ...                             S.ExponentialLR(opt, gamma=0.5)])
    >>> rates = []
    >>> for _ in range(4):
    ...     rates.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    >>> rates
    [0.5, 0.25, 0.25, 0.125]
    """

    def __init__(self, schedulers, optimizer=None):
        if len(schedulers) < 1:
            raise ValueError(f"{type(self).__name__} expects at least one scheduler to be "
                             "chained, but got no scheduler.")
        optimizer = optimizer or schedulers[0].optimizer
        _check_schedulers(self, optimizer, schedulers)
        self._schedulers, self.optimizer = schedulers, optimizer
        self._last_lr = _values(schedulers[-1].optimizer, "lr")

    def step(self) -> None:
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = _values(self._schedulers[-1].optimizer, "lr")


# ---- a schedule of a metric -------------------------------------------------------------------

class ReduceLROnPlateau(LRScheduler):
    """The rate times `factor` once the metric given to `step(metric)` has not improved
    (by `threshold`, relative or absolute) for more than `patience` epochs; then
    `cooldown` epochs without counting; never below `min_lr`, nor by less than `eps`.

    >>> import numpy as np, tracegrad as tg
    >>> opt = tg.optim.SGD([tg.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    >>> sched = tg.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    >>> for loss in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95]:
    ...     sched.step(loss)
    >>> sched.get_last_lr()
    [0.25]
    """

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr=0, eps: float = 1e-8):
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        self.factor = factor
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, "
                                 f"got {len(min_lr)}")
            self.default_min_lr, self.min_lrs = None, list(min_lr)
        else:
            self.default_min_lr, self.min_lrs = min_lr, [min_lr] * len(optimizer.param_groups)
        self.patience, self.cooldown, self.eps = patience, cooldown, eps
        self.last_epoch = 0
        self._last_lr = _values(optimizer, "lr")
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics, epoch=None) -> None:
        """One epoch's value of the metric (a number, or a one-element tensor)."""
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(_EPOCH_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr(epoch)
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = _values(self.optimizer, "lr")

    def _reduce_lr(self, epoch) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"The number of param groups in the `optimizer` "
                                   f"({len(groups)}) differs from when `ReduceLROnPlateau` "
                                   f"was initialized ({len(self.min_lrs)}), usually due to a "
                                   "new param group being added to the optimizer. Please "
                                   "modify the `min_lrs` field to match the length of the "
                                   "`optimizer` param groups.")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, floor in zip(groups, self.min_lrs):
            old = float(group["lr"])
            new = max(old * self.factor, floor)
            if old - new > self.eps:
                group["lr"] = new

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a, best) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode, threshold, threshold_mode) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode} is unknown!")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode} is unknown!")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode

    def load_state_dict(self, state_dict) -> None:
        self.__dict__.update(state_dict)
        self._init_is_better(self.mode, self.threshold, self.threshold_mode)
