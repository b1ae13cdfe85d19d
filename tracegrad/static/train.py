"""`tf.train.GradientDescentOptimizer`: TF1's plain SGD step as one assign op per variable."""
from __future__ import annotations

from .gradients import gradients
from .variables import group, trainable_variables

__all__ = ["GradientDescentOptimizer"]


class GradientDescentOptimizer:
    def __init__(self, learning_rate, use_locking=False, name="GradientDescent"):
        self.learning_rate, self.name = learning_rate, name

    def compute_gradients(self, loss, var_list=None):
        """[(gradient or None, variable)] for the trainable variables (or `var_list`)."""
        var_list = trainable_variables() if var_list is None else list(var_list)
        return list(zip(gradients(loss, var_list), var_list))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """One op assigning `v - learning_rate * g` to each variable with a gradient."""
        updates = [v.assign_sub(self.learning_rate * g) for g, v in grads_and_vars if g is not None]
        if global_step is not None:
            updates.append(global_step.assign_add(1))
        return group(*updates, name=name or self.name)

    def minimize(self, loss, global_step=None, var_list=None, name=None):
        return self.apply_gradients(self.compute_gradients(loss, var_list), global_step, name)
