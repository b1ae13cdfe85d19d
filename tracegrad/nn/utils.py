"""Gradient clipping of eager tensors' `.grad`, as `torch.nn.utils`.

>>> import numpy as np, tracegrad as tg
>>> w = tg.tensor(np.array([3.0, 4.0]), requires_grad=True)
>>> (w * w).sum().backward()  # w.grad = [6, 8], norm 10
>>> float(tg.nn.utils.clip_grad_norm_([w], max_norm=5.0))
10.0
>>> np.round(w.grad.numpy(), 6).tolist()
[3.0, 4.0]
"""
from __future__ import annotations

import numpy as np

from tracegrad.tracer import Tensor, no_grad, tensor


def _with_grads(parameters) -> list:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def _norm(values: np.ndarray, norm_type: float) -> np.ndarray:
    """torch's vector_norm: the largest (inf) or smallest (-inf) magnitude, the count of
    nonzeros (0), else sum(|x|^p)^(1/p)."""
    if norm_type in (np.inf, -np.inf):
        if not values.size:
            return np.zeros((), values.dtype)
        return (np.max if norm_type > 0 else np.min)(np.abs(values))
    if norm_type == 0:
        return np.asarray(np.count_nonzero(values), values.dtype)
    return np.sum(np.abs(values) ** norm_type) ** (1.0 / norm_type)


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach=None):
    """The `norm_type` norm of all `tensors` together (the norm of their norms)."""
    arrays = [t._data if isinstance(t, Tensor) else np.asarray(t) for t in
              ([tensors] if isinstance(tensors, Tensor) else tensors)]
    norm_type = float(norm_type)
    if not arrays:
        return tensor(np.zeros(()))
    norms = np.stack([_norm(a.ravel(), norm_type) for a in arrays])
    total = _norm(norms, norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from "
                           "`parameters` is non-finite, so it cannot be clipped. To disable "
                           "this error and scale the gradients by the non-finite norm anyway, "
                           "set `error_if_nonfinite=False`")
    return tensor(np.asarray(total))


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None):
    """Scale the gradients of `parameters` in place so that their total norm is at most
    `max_norm` (by max_norm / (norm + 1e-6), capped at 1, as torch's); returns the total
    norm before clipping (a 0-d tensor)."""
    params = _with_grads(parameters)
    total = get_total_norm([p.grad for p in params], norm_type, error_if_nonfinite)
    coef = min(float(max_norm) / (float(total.item()) + 1e-6), 1.0)
    with no_grad():
        for p in params:
            p.grad.mul_(coef)
    return total


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp the gradients of `parameters` in place to [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    with no_grad():
        for p in _with_grads(parameters):
            p.grad.clamp_(-clip_value, clip_value)
