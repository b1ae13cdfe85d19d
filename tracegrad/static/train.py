"""`tf.train.GradientDescentOptimizer`: TF1's plain SGD step as one assign op per variable,
and the global step (`get_or_create_global_step`, `get_global_step`)."""
from __future__ import annotations

import numpy as np

from .gradients import gradients
from .graph import get_default_graph
from .math_ops import cast
from .tensor import Tensor
from .variables import Variable, group, trainable_variables

__all__ = ["GradientDescentOptimizer", "get_global_step", "get_or_create_global_step"]


class GradientDescentOptimizer:
    def __init__(self, learning_rate, use_locking=False, name="GradientDescent"):
        self.learning_rate, self.name = learning_rate, name

    def compute_gradients(self, loss, var_list=None):
        """[(gradient or None, variable)] for the trainable variables (or `var_list`)."""
        var_list = trainable_variables() if var_list is None else list(var_list)
        if not var_list:
            raise ValueError("No variables to optimize.")
        return list(zip(gradients(loss, var_list), var_list))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """One op assigning `v - learning_rate * g` to each variable with a gradient."""
        grads_and_vars = list(grads_and_vars)
        if all(g is None for g, _ in grads_and_vars):
            raise ValueError(f"No gradients provided for any variable: "
                             f"{[v.name for _, v in grads_and_vars]}.")
        updates = [v.assign_sub(self._rate(v) * g) for g, v in grads_and_vars if g is not None]
        if global_step is not None:
            updates.append(global_step.assign_add(1))
        return group(*updates, name=name or self.name)

    def _rate(self, var):
        """The learning rate in `var`'s dtype, as TF1 casts it for each variable; a Python
        number is weak (exact in a float64 variable), a numpy number is converted."""
        lr = self.learning_rate
        if isinstance(lr, Tensor):
            return lr if lr.dtype == var.dtype else cast(lr, var.dtype)
        return lr if type(lr) in (int, float) else np.asarray(lr, var.dtype)

    def minimize(self, loss, global_step=None, var_list=None, name=None):
        grads_and_vars = self.compute_gradients(loss, var_list)
        if all(g is None for g, _ in grads_and_vars):
            raise ValueError(
                "No gradients provided for any variable, check your graph for ops that do not "
                f"support gradients, between variables {[v.name for _, v in grads_and_vars]} "
                f"and loss {loss!r}.")
        return self.apply_gradients(grads_and_vars, global_step, name)


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
