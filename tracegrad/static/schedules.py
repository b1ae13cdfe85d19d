"""TF1's learning-rate schedules (`tf.train.exponential_decay`, `piecewise_constant`,
`inverse_time_decay`, `polynomial_decay`): tensors computed from the global step each run,
with TF1's formulas, in the learning rate's dtype (a Python float is float32, as TF1's; the
rate may be a tensor)."""
from __future__ import annotations

import numpy as np

from tracegrad.tracer import numpy as tnp

from .building import call
from .sources import _tf1_default, as_tensor

__all__ = ["exponential_decay", "inverse_time_decay", "polynomial_decay", "piecewise_constant"]


def _rate(learning_rate):
    """The rate as a tensor (TF1's convert_to_tensor: a Python float is float32)."""
    return as_tensor(learning_rate)


def _like(lr, *values):
    """Each value in the rate's dtype (the step and the Python numbers)."""
    dt = tnp.dtype(lr.dtype)
    return [tnp.astype(v, dt) if hasattr(v, "dtype") and not isinstance(v, np.generic)
            else np.asarray(v, dt) for v in values]


def _exponential(step, lr, decay_steps, rate, staircase):
    step, decay_steps, rate = _like(lr, step, decay_steps, rate)
    p = step / decay_steps
    return lr * tnp.power(rate, tnp.floor(p) if staircase else p)


def exponential_decay(learning_rate, global_step, decay_steps, decay_rate, staircase=False,
                      name=None):
    """`learning_rate * decay_rate ** (global_step / decay_steps)` (the exponent floored
    with `staircase`)."""
    return call(_exponential, (global_step, _rate(learning_rate)),
                {"decay_steps": decay_steps, "rate": decay_rate, "staircase": staircase},
                name or "ExponentialDecay", op_type="ExponentialDecay")


def _inverse_time(step, lr, decay_steps, rate, staircase):
    step, decay_steps, rate, one = _like(lr, step, decay_steps, rate, 1)
    p = step / decay_steps
    return lr / (one + rate * (tnp.floor(p) if staircase else p))


def inverse_time_decay(learning_rate, global_step, decay_steps, decay_rate, staircase=False,
                       name=None):
    """`learning_rate / (1 + decay_rate * global_step / decay_steps)`."""
    return call(_inverse_time, (global_step, _rate(learning_rate)),
                {"decay_steps": decay_steps, "rate": decay_rate, "staircase": staircase},
                name or "InverseTimeDecay", op_type="InverseTimeDecay")


def _polynomial(step, lr, decay_steps, end, power, cycle):
    step, steps, end, power, one = _like(lr, step, decay_steps, end, power, 1)
    if cycle:
        steps = steps * tnp.maximum(one, tnp.ceil(step / steps))
    else:
        step = tnp.minimum(step, steps)
    return (lr - end) * tnp.power(one - step / steps, power) + end


def polynomial_decay(learning_rate, global_step, decay_steps, end_learning_rate=0.0001,
                     power=1.0, cycle=False, name=None):
    """TF1's: `(lr - end) * (1 - min(step, decay_steps) / decay_steps) ** power + end`
    (with `cycle`, decay_steps grows to the next multiple past the step)."""
    return call(_polynomial, (global_step, _rate(learning_rate)),
                {"decay_steps": decay_steps, "end": end_learning_rate, "power": power,
                 "cycle": cycle},
                name or "PolynomialDecay", op_type="PolynomialDecay")


def _piecewise(x, boundaries, values):
    out = tnp.full(tnp.shape(x), values[-1])
    for b, v in zip(reversed(boundaries), reversed(values[:-1])):
        out = tnp.where(x <= b, v, out)
    return out


def piecewise_constant(x, boundaries, values, name=None):
    """`values[0]` while x <= boundaries[0], `values[i]` while boundaries[i-1] < x <=
    boundaries[i], `values[-1]` past the last boundary (TF1's)."""
    if len(values) != len(boundaries) + 1:
        raise ValueError("The length of boundaries should be 1 less than the length of values")
    vals = [_tf1_default(v, None) for v in values]  # (Python floats are float32, as TF1's)
    return call(_piecewise, (x,), {"boundaries": list(boundaries), "values": vals},
                name or "PiecewiseConstant", op_type="PiecewiseConstant")
