"""`tracegrad.optim`: SGD, Adam, AdamW, RMSprop and Adagrad with PyTorch's update
formulas, in two forms, and PyTorch's learning-rate schedulers (`lr_scheduler`).

* **Eager**, as `torch.optim`: `opt = Adam([w, b], lr=1e-3)`, then `opt.zero_grad()`,
  `loss.backward()`, `opt.step()`; the tensors are updated in place. Parameter groups
  (`[{"params": [w], "lr": 0.1}, {"params": [b]}]`) override the defaults per group, and
  `opt.param_groups[i]["lr"]` may be changed between steps.
* **Functional**, over pytrees of arrays: `state = opt.init(params)` and
  `params, state = opt.update(grads, state, params)`. It is written with
  `tracegrad.numpy`, so it traces and compiles: a `jit` function that computes the
  gradients and applies the update makes one training step one native call.

Both forms follow the same formulas: the functional rules (`_sgd`, `_adam`) build new
arrays with `tracegrad.numpy`; the eager step runs their in-place numpy transcriptions
(`_sgd_`, `_adam_`: no temporary tensors, the state buffers and the parameter updated where
they are, as torch.optim does). A test holds the two forms to each other.

>>> import numpy as np, tracegrad as tg
>>> w = tg.tensor(np.array([1.0, -2.0]), requires_grad=True)
>>> opt = tg.optim.SGD([w], lr=0.1, momentum=0.9)
>>> for _ in range(2):
...     opt.zero_grad()
...     (w * w).sum().backward()
...     opt.step()
>>> np.round(w.data, 12).tolist()  # v1 = 2 w0, w1 = 0.8 w0, v2 = 0.9 v1 + 2 w1
[0.46, -0.92]
"""
from __future__ import annotations

import sys
import warnings

import numpy as np

import tracegrad.numpy as tnp

from . import lr_scheduler
from .tracer import Tensor, enable_grad, no_grad, tree_flatten, tree_map, tree_unflatten, zero_grad
from .tracer.tree import flatten_like as _by_key, flatten_up_to


# ---- the update rules (one array; numpy arrays, tensors' data or traced values) ---------

def _directed(p, g, h):
    """The gradient a rule follows: negated to maximize, plus L2 weight decay (torch's order;
    Adam's rule has its decoupled variant)."""
    g = -g if h["maximize"] else g
    return g + h["weight_decay"] * p if h["weight_decay"] else g


def _sgd(p, g, s, h):
    """PyTorch's SGD: weight decay, momentum (the first step's buffer is the gradient),
    dampening, Nesterov, maximize."""
    g = _directed(p, g, h)
    if h["momentum"]:
        step = s["step"]
        buf = tnp.where(step == 0, g, h["momentum"] * s["momentum_buffer"] + (1 - h["dampening"]) * g)
        s = {"step": step + 1, "momentum_buffer": buf}
        g = g + h["momentum"] * buf if h["nesterov"] else buf
    return p - h["lr"] * g, s


def _adam(p, g, s, h):
    """PyTorch's Adam (L2 weight decay) and AdamW (decoupled decay), with amsgrad."""
    g = -g if h["maximize"] else g
    if h["decoupled"]:
        p = p * (1 - h["lr"] * h["weight_decay"])
    elif h["weight_decay"]:
        g = g + h["weight_decay"] * p
    (b1, b2), step = h["betas"], s["step"] + 1
    m = b1 * s["exp_avg"] + (1 - b1) * g
    v = b2 * s["exp_avg_sq"] + (1 - b2) * g * g
    new = {"step": step, "exp_avg": m, "exp_avg_sq": v}
    if h["amsgrad"]:
        v = new["max_exp_avg_sq"] = tnp.maximum(s["max_exp_avg_sq"], v)
    # the bias corrections in float64, as PyTorch's Python scalars (in float32, 1 - 0.999**t
    # cancels), rounded to the parameters' dtype where they meet them
    dt, t = tnp.dtype(m.dtype), tnp.astype(step, np.float64)
    bias1, bias2 = 1 - tnp.power(b1, t), 1 - tnp.power(b2, t)
    denom = tnp.sqrt(v) / tnp.astype(tnp.sqrt(bias2), dt) + h["eps"]
    return p - tnp.astype(h["lr"] / bias1, dt) * m / denom, new


def _rmsprop(p, g, s, h):
    """PyTorch's RMSprop: weight decay, centering, momentum, maximize."""
    g = _directed(p, g, h)
    alpha = h["alpha"]
    new = {**s, "step": s["step"] + 1,  # (entries the options leave unused kept as they are)
           "square_avg": alpha * s["square_avg"] + (1 - alpha) * g * g}
    if h["centered"]:
        new["grad_avg"] = alpha * s["grad_avg"] + (1 - alpha) * g
        avg = tnp.sqrt(new["square_avg"] - new["grad_avg"] * new["grad_avg"]) + h["eps"]
    else:
        avg = tnp.sqrt(new["square_avg"]) + h["eps"]
    if h["momentum"] > 0:
        new["momentum_buffer"] = h["momentum"] * s["momentum_buffer"] + g / avg
        return p - h["lr"] * new["momentum_buffer"], new
    return p - h["lr"] * (g / avg), new


def _adagrad(p, g, s, h):
    """PyTorch's Adagrad: learning-rate decay, weight decay, maximize."""
    g = _directed(p, g, h)
    step = s["step"] + 1
    rate = h["lr"] / (1 + tnp.astype(step - 1, np.float64) * h["lr_decay"])
    total = s["sum"] + g * g
    std = tnp.sqrt(total) + h["eps"]
    return p - tnp.astype(rate, tnp.dtype(p.dtype)) * (g / std), {"step": step, "sum": total}


def _in_place(rule):
    """The eager form of a functional `rule`: its results copied into the parameter and
    the state buffers (for the rules without a hand-written in-place transcription)."""
    def rule_(p, g, s, h, scratch=None):
        new_p, new_s = rule(p, g, s, h)
        np.copyto(p, new_p)
        for key, value in new_s.items():
            if key in s and np.shape(s[key]) == np.shape(value):
                np.copyto(s[key], value)
            else:
                s[key] = np.array(value)
    return rule_


# ---- the same rules in place (numpy arrays: the parameter, its gradient, its state) --------
# The gradient `g` is the tensor's .grad buffer: it is read, never written.  `scratch`, an
# array like `p` (or None), takes the temporaries: the eager step keeps one per parameter.

def _sgd_(p, g, s, h, scratch=None):
    g = _directed(p, g, h)
    if h["momentum"]:
        buf = s["momentum_buffer"]
        if s["step"] == 0:
            np.copyto(buf, g)
        else:
            buf *= h["momentum"]
            buf += (1 - h["dampening"]) * g
        s["step"] = s["step"] + 1
        g = g + h["momentum"] * buf if h["nesterov"] else buf
    p -= h["lr"] * g if scratch is None else np.multiply(g, h["lr"], out=scratch)


def _adam_(p, g, s, h, scratch=None):
    """With `scratch` the step allocates nothing, as torch.optim's fused path."""
    tmp = np.empty_like(p) if scratch is None else scratch
    g = -g if h["maximize"] else g
    if h["decoupled"]:
        p *= 1 - h["lr"] * h["weight_decay"]
    elif h["weight_decay"]:
        g = g + h["weight_decay"] * p
    (b1, b2), step = h["betas"], int(s["step"]) + 1
    s["step"] = np.asarray(step, np.int64)
    m, v = s["exp_avg"], s["exp_avg_sq"]
    m *= b1
    m += np.multiply(g, 1 - b1, out=tmp)  # (1 - b1) * g
    v *= b2
    np.multiply(g, g, out=tmp)
    tmp *= 1 - b2  # (1 - b2) * (g * g)
    v += tmp
    if h["amsgrad"]:
        v = np.maximum(s["max_exp_avg_sq"], v, out=s["max_exp_avg_sq"])
    bias1, root2 = _bias_corrections(b1, b2, step, m.dtype)
    denom = np.sqrt(v, out=tmp)
    denom /= root2
    denom += h["eps"]
    np.divide(m, denom, out=denom)
    denom *= (h["lr"] / bias1).astype(p.dtype)
    p -= denom


_BIAS: dict = {}  # (b1, b2, step, dtype) -> (1 - b1**step, sqrt(1 - b2**step)), recent steps


def _bias_corrections(b1, b2, step, dtype):
    """Adam's bias corrections in the parameters' dtype, as the functional rule computes
    them (the same for every parameter of a step: computed once)."""
    key = (b1, b2, step, dtype)
    try:
        found = _BIAS.get(key)
    except TypeError:  # betas that do not hash (arrays): computed every time
        return _corrections(b1, b2, step, dtype)
    if found is None:
        if len(_BIAS) > 64:
            _BIAS.clear()
        found = _BIAS[key] = _corrections(b1, b2, step, dtype)
    return found


def _corrections(b1, b2, step, dtype):
    bias1, bias2 = (1 - np.power(np.float64(b), np.float64(step)) for b in (b1, b2))
    return bias1, np.sqrt(bias2).astype(dtype)


# torch.optim's switches between implementations (for-each, fused kernels, graph capture):
# accepted and ignored, the result is the same.
_TORCH_FLAGS = ("foreach", "fused", "differentiable", "capturable")


def _plain(value) -> np.ndarray:
    """A saved state entry as a numpy array (a torch tensor through `.numpy()`: its
    `__array__` takes no `copy=`, which numpy 2 warns about)."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


class Optimizer:
    """Base of the optimizers: the eager and functional forms around one `rule`."""

    rule = None
    rule_ = None  # the same rule, updating numpy arrays in place (the eager step)
    defaults: dict = {}

    def __init__(self, params=None, lr=None, **hyper):
        for flag in _TORCH_FLAGS:  # how torch runs the step, not what it computes
            hyper.pop(flag, None)
        if "decoupled_weight_decay" in hyper and "decoupled" in type(self).defaults:
            hyper["decoupled"] = bool(hyper.pop("decoupled_weight_decay"))  # torch's Adam
        if lr is not None:
            hyper["lr"] = lr
        unknown = set(hyper) - set(type(self).defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown options {sorted(unknown)}")
        self.hyper = {**type(self).defaults, **hyper}
        self._check(self.hyper)
        self.defaults = dict(self.hyper)  # this optimizer's options, as torch's `defaults`
        self.param_groups = [] if params is None else self._groups(params)
        self.state: dict = {}  # tensor -> its state (eager form), torch's names
        self._scratch: dict = {}  # id(tensor) -> a buffer like it for the step's temporaries

    def _check(self, h):
        for key in ("lr", "eps", "momentum", "weight_decay"):
            if key in h and not h[key] >= 0:
                raise ValueError(f"{type(self).__name__}: invalid {key} value {h[key]}")
        for i, b in enumerate(h.get("betas", ())):
            if not 0 <= b < 1:
                raise ValueError(f"{type(self).__name__}: invalid beta parameter at index "
                                 f"{i}: {b}")

    def _groups(self, params):
        if isinstance(params, (Tensor, dict)) or not hasattr(params, "__iter__"):
            raise TypeError(f"{type(self).__name__}: params should be an iterable of tensors "
                            f"or of dicts (parameter groups), but got {type(params).__name__}")
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        seen = {id(t) for group in getattr(self, "param_groups", ()) for t in group["params"]}
        return [self._group(group, seen) for group in groups]

    def _group(self, group, seen):
        """A parameter group: its tensors (a duplicate in it warned of and dropped, as
        torch warns; one in another group is an error) and every option."""
        tensors = group["params"]
        tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
        unique = list({id(t): t for t in tensors}.values())
        if len(unique) != len(tensors):
            warnings.warn(f"{type(self).__name__}: a parameter group holds the same tensor "
                          "more than once; it is updated once", UserWarning, stacklevel=4)
        for t in unique:
            self._check_param(t, seen)
        merged = {**self.hyper, **{k: v for k, v in group.items() if k != "params"}}
        self._check(merged)
        return {**merged, "params": unique}

    def _check_param(self, t, seen):
        name = type(self).__name__
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: parameters must be tensors, got {t!r:.60}")
        if not t.is_leaf:
            raise ValueError(f"{name}: can't optimize a non-leaf Tensor")
        if id(t) in seen:
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        seen.add(id(t))

    def add_param_group(self, param_group: dict):
        """Add a group of parameters (a dict with "params" and any options to override)."""
        self.param_groups += self._groups([dict(param_group)])

    # -- functional form ------------------------------------------------------------------
    def init(self, params):
        """The optimizer state for a pytree of arrays (zeros and step 0)."""
        return tree_map(self._init_leaf, params)

    def update(self, grads, state, params):
        """`(new_params, new_state)` for a pytree of gradients of the same structure."""
        leaves, tree = tree_flatten(params)
        g_leaves = _by_key(grads, tree)  # dicts matched by key, as state is
        s_leaves = flatten_up_to(tree, state)  # each leaf's state: the part at its place
        pairs = [type(self).rule(p, g, s, self.hyper) for p, g, s in zip(leaves, g_leaves, s_leaves)]
        return (tree_unflatten(tree, [p for p, _ in pairs]),
                tree_unflatten(tree, [s for _, s in pairs]))

    # -- eager form -------------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        zero_grad([t for group in self.param_groups for t in group["params"]], set_to_none)

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place (as `torch.optim`).  A
        `closure` that recomputes the loss (zero_grad, forward, backward) runs first, with
        gradients on; its loss is returned."""
        if not self.param_groups:
            raise RuntimeError(f"{type(self).__name__} was made without parameters: use the "
                               "functional form, init(params) and update(grads, state, params)")
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for t in group["params"]:
                    if t.grad is not None:
                        self._step_tensor(t, group)
        return loss

    def state_dict(self) -> dict:
        """{"state": {index: state}, "param_groups": [options, "params": indices]}, as
        torch's: parameters are numbered in group order; the state arrays are copies."""
        index = {id(t): i for i, t in enumerate(self._params())}
        state = {index[id(t)]: {k: np.array(v) for k, v in s.items()}
                 for t, s in self.state.items() if id(t) in index}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(t)] for t in g["params"]]} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict):
        """Take the options and state of `state_dict()` (of an optimizer whose groups hold
        as many parameters, of the same shapes)."""
        groups = state_dict["param_groups"]
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("loaded state dict has a different number of parameters or "
                             "parameter groups than this optimizer")
        params = self._params()
        for group, saved in zip(self.param_groups, groups):
            options = {k: v for k, v in saved.items() if k != "params"}
            if "decoupled_weight_decay" in options and "decoupled" in type(self).defaults:
                options["decoupled"] = bool(options.pop("decoupled_weight_decay"))  # torch's
            group.update(options)
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            values = {k: _plain(v) for k, v in s.items() if v is not None}  # torch's buffer: None
            self.state[p] = {k: np.array(v, dtype=v.dtype if k == "step" else p.dtype)
                             for k, v in values.items()}
            self._from_torch(self.state[p], p)

    def _from_torch(self, state, p):
        """Complete a loaded state that torch's optimizer keeps without some entries."""

    def _params(self) -> list:
        return [t for group in self.param_groups for t in group["params"]]

    def _step_tensor(self, t, group):
        p = t._data
        state = self.state.get(t)
        if state is None:
            state = self.state[t] = self._init_leaf(p)
        self._complete(state, p, group)
        type(self).rule_(p, t.grad._data, state, group, self._scratch_like(t, p))
        t._version.bump()  # an in-place update, as t.copy_ would count it

    def _scratch_like(self, t, p):
        scratch = self._scratch.get(id(t))
        if scratch is None or scratch.shape != p.shape or scratch.dtype != p.dtype:
            scratch = self._scratch[id(t)] = np.empty_like(p)
        return scratch

    def _init_leaf(self, p):
        raise NotImplementedError

    def _complete(self, state, p, group):
        """Add the state a group's options need and the defaults' did not (amsgrad)."""


def _zeros(p):
    return tnp.zeros_like(p)


class SGD(Optimizer):
    """Stochastic gradient descent (PyTorch's formula)."""

    rule, rule_ = staticmethod(_sgd), staticmethod(_sgd_)
    defaults = {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
                "nesterov": False, "maximize": False}

    def _check(self, h):
        super()._check(h)
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")

    def _init_leaf(self, p):
        return {"step": np.zeros((), np.int64), "momentum_buffer": _zeros(p)}

    def _from_torch(self, state, p):
        """torch's SGD keeps no step: a buffer means the first step was taken."""
        if "step" not in state:
            state["step"] = np.asarray(int("momentum_buffer" in state), np.int64)
        state.setdefault("momentum_buffer", np.zeros_like(p._data))


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient (PyTorch's `Adam`)."""

    rule, rule_ = staticmethod(_adam), staticmethod(_adam_)
    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                "amsgrad": False, "maximize": False, "decoupled": False}

    def _init_leaf(self, p):
        state = {"step": np.zeros((), np.int64), "exp_avg": _zeros(p), "exp_avg_sq": _zeros(p)}
        if self.hyper["amsgrad"]:
            state["max_exp_avg_sq"] = _zeros(p)
        return state

    def _complete(self, state, p, group):
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = np.zeros_like(p)


class AdamW(Adam):
    """Adam with decoupled weight decay (PyTorch's `AdamW`, default decay 0.01)."""

    defaults = {**Adam.defaults, "weight_decay": 1e-2, "decoupled": True}


class RMSprop(Optimizer):
    """RMSprop (PyTorch's formula: `alpha` the smoothing, `centered`, `momentum`)."""

    rule, rule_ = staticmethod(_rmsprop), staticmethod(_in_place(_rmsprop))
    defaults = {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
                "centered": False, "maximize": False}

    def _check(self, h):
        super()._check(h)
        if not h["alpha"] >= 0:
            raise ValueError(f"RMSprop: invalid alpha value {h['alpha']}")

    def _init_leaf(self, p):
        return {"step": np.zeros((), np.int64), "square_avg": _zeros(p),
                "momentum_buffer": _zeros(p), "grad_avg": _zeros(p)}


class Adagrad(Optimizer):
    """Adagrad (PyTorch's formula: `lr_decay`, `initial_accumulator_value`)."""

    rule, rule_ = staticmethod(_adagrad), staticmethod(_in_place(_adagrad))
    defaults = {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0,
                "initial_accumulator_value": 0.0, "eps": 1e-10, "maximize": False}

    def _check(self, h):
        super()._check(h)
        for key in ("lr_decay", "initial_accumulator_value"):
            if not h[key] >= 0:
                raise ValueError(f"Adagrad: invalid {key} value {h[key]}")

    def _init_leaf(self, p):
        return {"step": np.zeros((), np.int64),
                "sum": tnp.full_like(p, self.hyper["initial_accumulator_value"])}


# `from tracegrad.optim.lr_scheduler import StepLR`, as torch's module path
sys.modules.setdefault(__name__ + ".lr_scheduler", lr_scheduler)
