"""TF1's `tf.train.Optimizer` protocol: `compute_gradients`, `apply_gradients`, `minimize`,
and slot variables (`get_slot`, `get_slot_names`).

A subclass gives `_apply_dense(grad, var)`, the update of one variable (an assign op
built from the variable's slots, which `_create_slots` made), and may give `_finish`,
the ops that run after every variable's update (Adam's beta powers).  Within one run a
read of a variable sees its value at the start of the run and assigns apply in creation
order (replay.py): so an update reads the slots' new values through the tensors their
assigns return, and `_finish` reads the start-of-run values it must advance.
"""
from __future__ import annotations

import numpy as np

from .gradients import gradients
from .graph import get_default_graph
from .math_ops import cast
from .tensor import Tensor
from .variables import Variable, group, trainable_variables


class Optimizer:
    """The base of TF1's optimizers (not used directly)."""

    def __init__(self, use_locking, name):
        self.name = name
        self._slots: dict = {}  # slot name -> {variable: slot variable}

    def compute_gradients(self, loss, var_list=None):
        """[(gradient or None, variable)] for the trainable variables (or `var_list`)."""
        var_list = trainable_variables() if var_list is None else list(var_list)
        if not var_list:
            raise ValueError("No variables to optimize.")
        return list(zip(gradients(loss, var_list), var_list))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """One op updating each variable that has a gradient (and counting `global_step`)."""
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            raise ValueError(f"No gradients provided for any variable: "
                             f"{[v.name for _, v in grads_and_vars]}.")
        self._create_slots([v for _, v in pairs])
        updates = [self._apply_dense(g, v) for g, v in pairs]
        updates += self._finish([v for _, v in pairs])
        if global_step is not None:
            updates.append(global_step.assign_add(1))
        return group(*updates, name=name or self.name)

    def minimize(self, loss, global_step=None, var_list=None, name=None):
        """`apply_gradients(compute_gradients(loss, var_list), global_step)`."""
        grads_and_vars = self.compute_gradients(loss, var_list)
        if all(g is None for g, _ in grads_and_vars):
            raise ValueError(
                "No gradients provided for any variable, check your graph for ops that do not "
                f"support gradients, between variables {[v.name for _, v in grads_and_vars]} "
                f"and loss {loss!r}.")
        return self.apply_gradients(grads_and_vars, global_step, name)

    # -- what subclasses give ------------------------------------------------------------
    def _create_slots(self, var_list):
        """Make the slot variables the updates read (none by default)."""

    def _apply_dense(self, grad, var):
        raise NotImplementedError

    def _finish(self, var_list) -> list:
        return []

    # -- slots ---------------------------------------------------------------------------
    def _zeros_slot(self, var, slot_name, op_name):
        """A non-trainable variable `<var>/<op_name>` of var's shape and dtype, initially 0."""
        return self._filled_slot(var, slot_name, op_name, 0)

    def _filled_slot(self, var, slot_name, op_name, value):
        """A non-trainable variable `<var>/<op_name>` of var's shape and dtype, initially
        `value` everywhere."""
        slots = self._slots.setdefault(slot_name, {})
        if var not in slots:
            with var.graph.as_default():
                slots[var] = Variable(np.full(tuple(var.shape.dims), value, var.dtype),
                                      name=f"{var.op.name}/{op_name}", trainable=False)
        return slots[var]

    def get_slot(self, var, name):
        """The slot variable `name` ("momentum", "m", "v") of `var`, or None."""
        return self._slots.get(name, {}).get(var)

    def get_slot_names(self) -> list:
        return sorted(self._slots)


def hyper(value, var):
    """A hyperparameter in `var`'s dtype, as TF1 casts it for each variable; a Python
    number is weak (exact in a float64 variable), a numpy number is converted."""
    if isinstance(value, Tensor):
        return value if value.dtype == var.dtype else cast(value, var.dtype)
    return value if type(value) in (int, float) else np.asarray(value, var.dtype)


def non_slot_variable(optimizer, value, name, graph=None):
    """A non-trainable scalar variable of the optimizer (Adam's beta powers), one per graph."""
    graph = graph or get_default_graph()
    store = optimizer.__dict__.setdefault("_non_slot", {})
    if (graph, name) not in store:
        with graph.as_default():
            store[(graph, name)] = Variable(value, name=name, trainable=False)
    return store[(graph, name)]
