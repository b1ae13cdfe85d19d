"""`tf.train`: TF1's optimizers (`GradientDescentOptimizer`, `MomentumOptimizer`,
`AdamOptimizer`, `AdagradOptimizer`, `RMSPropOptimizer`, each one assign op per variable and slot, with TF1's update
formulas), the global step (`get_or_create_global_step`, `get_global_step`) and
`Saver` (variables to and from an .npz file)."""
from __future__ import annotations

import numpy as np

from .graph import get_default_graph
from .math_ops import cast, rsqrt, sqrt
from .optimizer import Optimizer, hyper, non_slot_variable
from .saver import Saver
from .schedules import (exponential_decay, inverse_time_decay, piecewise_constant,  # noqa: F401
                        polynomial_decay)
from .variables import Variable, group

__all__ = ["Optimizer", "GradientDescentOptimizer", "MomentumOptimizer", "AdamOptimizer",
           "AdagradOptimizer", "RMSPropOptimizer",
           "Saver", "get_global_step", "get_or_create_global_step", "exponential_decay",
           "inverse_time_decay", "piecewise_constant", "polynomial_decay"]


class GradientDescentOptimizer(Optimizer):
    """TF1's SGD: `var -= learning_rate * grad` (the rate, a number or a tensor, in each
    variable's dtype).

    >>> import tracegrad.static as tf
    >>> with tf.Graph().as_default():
    ...     w = tf.Variable(1.0)
    ...     step = tf.train.GradientDescentOptimizer(0.25).minimize(w * w)
    ...     with tf.Session() as sess:
    ...         _ = sess.run(tf.global_variables_initializer()); sess.run(step)
    ...         print(sess.run(w))
    0.5
    """

    def __init__(self, learning_rate, use_locking=False, name="GradientDescent"):
        super().__init__(use_locking, name)
        self.learning_rate = learning_rate

    def _apply_dense(self, grad, var):
        return var.assign_sub(hyper(self.learning_rate, var) * grad)


class MomentumOptimizer(Optimizer):
    """TF1's ApplyMomentum: `accum = momentum * accum + grad`, then `var -= lr * accum`,
    or with `use_nesterov` `var -= lr * grad + lr * momentum * accum`; the slot
    "momentum" (variable `<var>/Momentum`) starts at 0."""

    def __init__(self, learning_rate, momentum, use_locking=False, name="Momentum",
                 use_nesterov=False):
        super().__init__(use_locking, name)
        self.learning_rate, self.momentum, self.use_nesterov = learning_rate, momentum, use_nesterov

    def _create_slots(self, var_list):
        for v in var_list:
            self._zeros_slot(v, "momentum", self.name)

    def _apply_dense(self, grad, var):
        lr, mu = hyper(self.learning_rate, var), hyper(self.momentum, var)
        accum_var = self.get_slot(var, "momentum")
        accum = accum_var.assign(accum_var * mu + grad)
        if self.use_nesterov:
            return group(accum, var.assign_sub(grad * lr + accum * mu * lr))
        return group(accum, var.assign_sub(accum * lr))


class AdamOptimizer(Optimizer):
    """TF1's ApplyAdam (Kingma and Ba's "epsilon hat" form): with beta powers b1p = beta1^t,
    b2p = beta2^t (float32 variables `beta1_power`, `beta2_power`, advanced after the
    updates) and slots m, v (`<var>/Adam`, `<var>/Adam_1`, initially 0):
    `lr_t = lr * sqrt(1 - b2p) / (1 - b1p)`, `m += (g - m) * (1 - beta1)`,
    `v += (g*g - v) * (1 - beta2)`, `var -= lr_t * m / (sqrt(v) + epsilon)`."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 use_locking=False, name="Adam"):
        super().__init__(use_locking, name)
        self.learning_rate, self.beta1, self.beta2, self.epsilon = (learning_rate, beta1,
                                                                    beta2, epsilon)

    def _create_slots(self, var_list):
        graph = var_list[0].graph
        self._powers = (non_slot_variable(self, self.beta1, "beta1_power", graph),
                        non_slot_variable(self, self.beta2, "beta2_power", graph))
        for v in var_list:
            self._zeros_slot(v, "m", self.name)
            self._zeros_slot(v, "v", f"{self.name}_1")

    def _apply_dense(self, grad, var):
        b1p, b2p = (cast(p, var.dtype) if p.dtype != var.dtype else p for p in self._powers)
        lr, eps = hyper(self.learning_rate, var), hyper(self.epsilon, var)
        beta1, beta2 = hyper(self.beta1, var), hyper(self.beta2, var)
        lr_t = lr * sqrt(1 - b2p) / (1 - b1p)
        m_var, v_var = self.get_slot(var, "m"), self.get_slot(var, "v")
        m = m_var.assign_add((grad - m_var) * (1 - beta1))
        v = v_var.assign_add((grad * grad - v_var) * (1 - beta2))
        return group(m, v, var.assign_sub(lr_t * m / (sqrt(v) + eps)))

    def _finish(self, var_list) -> list:
        b1p, b2p = self._powers
        return [b1p.assign(b1p * hyper(self.beta1, b1p)), b2p.assign(b2p * hyper(self.beta2, b2p))]


class AdagradOptimizer(Optimizer):
    """TF1's ApplyAdagrad: `accum += grad * grad`, then `var -= grad * lr * rsqrt(accum)`;
    the slot "accumulator" (variable `<var>/Adagrad`) starts at `initial_accumulator_value`."""

    def __init__(self, learning_rate, initial_accumulator_value=0.1, use_locking=False,
                 name="Adagrad"):
        if initial_accumulator_value <= 0.0:
            raise ValueError(f"initial_accumulator_value must be positive: "
                             f"{initial_accumulator_value}")
        super().__init__(use_locking, name)
        self.learning_rate, self.initial = learning_rate, initial_accumulator_value

    def _create_slots(self, var_list):
        for v in var_list:
            self._filled_slot(v, "accumulator", self.name, self.initial)

    def _apply_dense(self, grad, var):
        accum_var = self.get_slot(var, "accumulator")
        accum = accum_var.assign_add(grad * grad)
        return group(accum, var.assign_sub(grad * hyper(self.learning_rate, var) * rsqrt(accum)))


class RMSPropOptimizer(Optimizer):
    """TF1's ApplyRMSProp: `ms += (grad^2 - ms) * (1 - decay)`,
    `mom = mom * momentum + grad * lr / sqrt(ms + epsilon)`, `var -= mom`; with `centered`,
    `mg += (grad - mg) * (1 - decay)` and the denominator `sqrt(ms - mg^2 + epsilon)`.
    Slots, named as TF1 names them: "rms" (`<var>/RMSProp`, starting at 1, as TF1's),
    "mg" (`<var>/RMSProp_1`, with `centered`) and "momentum" (the next name), both at 0."""

    def __init__(self, learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10,
                 use_locking=False, centered=False, name="RMSProp"):
        super().__init__(use_locking, name)
        self.learning_rate, self.decay, self.momentum = learning_rate, decay, momentum
        self.epsilon, self.centered = epsilon, centered

    def _create_slots(self, var_list):
        for v in var_list:  # the graph numbers the repeated names, as TF1's does
            self._filled_slot(v, "rms", self.name, 1)
            if self.centered:
                self._zeros_slot(v, "mg", self.name)
            self._zeros_slot(v, "momentum", self.name)

    def _apply_dense(self, grad, var):
        lr, rho = hyper(self.learning_rate, var), hyper(self.decay, var)
        mu, eps = hyper(self.momentum, var), hyper(self.epsilon, var)
        ms_var, mom_var = self.get_slot(var, "rms"), self.get_slot(var, "momentum")
        ms = ms_var.assign_add((grad * grad - ms_var) * (1 - rho))
        updates, denominator = [ms], ms + eps
        if self.centered:
            mg_var = self.get_slot(var, "mg")
            mg = mg_var.assign_add((grad - mg_var) * (1 - rho))
            updates.append(mg)
            denominator = ms - mg * mg + eps
        mom = mom_var.assign(mom_var * mu + grad * lr / sqrt(denominator))
        return group(*updates, mom, var.assign_sub(mom))


def get_global_step(graph=None):
    """The graph's global step: the one `get_or_create_global_step` made, or else its
    variable named 'global_step' (as TF1 looks it up); None if there is none."""
    graph = graph or get_default_graph()
    step = getattr(graph, "_global_step", None)
    if step is None:
        step = next((v for v in graph.variables if v.op.name == "global_step"), None)
    return step


def get_or_create_global_step(graph=None):
    """The global step, made if missing: an int64 scalar variable 'global_step', initially
    0, not trainable (pass it to `minimize(global_step=...)` to count the steps)."""
    graph = graph or get_default_graph()
    step = get_global_step(graph)
    if step is None:
        with graph.as_default():
            step = Variable(np.int64(0), name="global_step", trainable=False)
        graph._global_step = step
    return step
