"""Variables: state that lives in a Session, and the ops that set it.

A `Variable` is itself the tensor that reads it (its value at the start of the
run).  `assign`, `assign_add` and `assign_sub` return the new value and, when
run, update the session's copy from the same native call (replay.py gives the
order within one run).  `initializer` is the assign of the initial value;
`global_variables_initializer()` groups every variable's initializer.
"""
from __future__ import annotations

import numpy as np

from tracegrad.tracer import numpy as tnp

from .building import check_readable, new_op
from .dtypes import feedable
from .graph import Operation, get_default_graph, graph_of
from .sources import as_tensor
from .tensor import Tensor

__all__ = ["Variable", "global_variables_initializer", "variables_initializer",
           "global_variables", "trainable_variables", "group", "no_op", "assign",
           "assign_add", "assign_sub"]


class Variable(Tensor):
    """TF1's `tf.Variable(initial_value, name=None, dtype=None, trainable=True)`; TF1's
    `collections`, `validate_shape`, `caching_device`, `expected_shape` and `use_resource`
    are accepted and change nothing here (no collections, one device, shapes checked)."""

    def __init__(self, initial_value, name=None, dtype=None, trainable=True, collections=None,
                 validate_shape=True, caching_device=None, expected_shape=None,
                 use_resource=None):
        if callable(initial_value):  # TF1 takes a function that makes the initial value
            initial_value = initial_value()
        graph = get_default_graph()
        base = graph.scoped(name or "Variable")  # names below are absolute (end in "/")
        with graph.root():  # a variable made inside a body still lives in the graph
            init = as_tensor(initial_value, dtype, name=f"{base}/initial_value/")
            if not init.shape.is_fully_defined():
                raise ValueError(f"the initial value of a Variable needs a fully known shape, "
                                 f"{init!r} has shape {init.shape}")
            op = Operation(graph, "VariableV2", f"{base}/", [],
                           lambda env, state: [state.read(self)])
            op.variable, op.reads_variable = self, True
            super().__init__(op, 0, init.shape, init.dtype, init._probes)
            op.outputs = [self]
            self.initial_value, self.trainable = init, trainable
            self.initializer = self.assign(init, name=f"{op.name}/Assign/").op
            self.initializer.is_initializer = True
        graph.variables.append(self)

    def _kind(self):
        return "tf.Variable"

    def __repr__(self):
        return f"<tf.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}_ref>"

    __str__ = __repr__

    def value(self):
        return self

    def initialized_value(self):
        """The variable's value, for another variable's initial value: read in the run
        that initializes it, it is the value its initializer set (program.Plan)."""
        from .math_ops import identity  # (math_ops builds on Tensor)
        return identity(self)

    read_value = value

    def assign(self, value, use_locking=None, name=None):
        return _assign(self, value, "Assign", name, lambda old, new: new, reads=False)

    def assign_add(self, delta, use_locking=None, name=None):
        return _assign(self, delta, "AssignAdd", name, lambda old, d: old + d, reads=True)

    def assign_sub(self, delta, use_locking=None, name=None):
        return _assign(self, delta, "AssignSub", name, lambda old, d: old - d, reads=True)

    def load(self, value, session=None):
        """Set this variable's value in `session` (TF1's Variable.load)."""
        from .session import default_session
        session = session or default_session("Variable.load")
        session._values[self] = _checked_value(self, value)


def _of_var_dtype(var, value, what: str) -> np.ndarray:
    """`value` as an array of var's dtype where its kind allows (ints into a float
    variable); as TF1, no silent truncation of floats into an integer variable."""
    arr = feedable(value, var.dtype)
    if arr is None:
        raise TypeError(f"{what} a value of dtype {np.asarray(value).dtype} into {var!r} of "
                        f"dtype {var.dtype.name}")
    return arr


def _checked_value(var, value) -> np.ndarray:
    arr = np.array(_of_var_dtype(var, value, "cannot load"))
    if arr.shape != tuple(var.shape.dims):
        raise ValueError(f"cannot load a value of shape {arr.shape} into {var!r}")
    return arr


def _assign(var, value, op_type, name, combine, reads):
    value = _assigned(var, value, op_type)
    graph = graph_of([var, value], op_type)
    if graph._ctx is not None:
        raise NotImplementedError(f"{op_type} of {var.op.name} inside a tf.cond branch or a "
                                  "tf.while_loop body is not supported: assign its result "
                                  "after the control-flow op")
    check_readable(graph, [value], op_type)
    if not value.shape.is_compatible_with(var.shape.dims):  # TF1's validate_shape
        raise ValueError(f"{op_type}: cannot assign a value of shape {value.shape} to {var!r}")
    shape = tuple(var.shape.dims)

    def compute(env, state):
        delta = tnp.broadcast_to(tnp.astype(env[value], var.dtype), shape)
        new = combine(state.current(var), delta) if reads else delta
        state.assign(var, new)
        return [new]

    op = new_op(graph, op_type, name or f"{var.op.name}/{op_type}/", [value], compute,
                [(var.shape, var.dtype, var._probes)])
    op.variable, op.writes_variable, op.reads_variable = var, True, reads
    return op.outputs[0]


def _assigned(var, value, op_type):
    """`value` as a tensor of var's dtype: a Python or numpy value converted when its kind
    allows (ints into a float variable), a tensor only of that very dtype, as in TF1."""
    if isinstance(value, Tensor):
        if value.dtype != var.dtype:
            raise TypeError(f"Input 'value' of '{op_type}' Op has type {value.dtype.name} that "
                            f"does not match type {var.dtype.name} of argument 'ref'")
        return value
    return as_tensor(_of_var_dtype(var, value, f"{op_type}: cannot assign"))


def assign(ref, value, validate_shape=None, use_locking=None, name=None):
    """`ref.assign(value)`: an op that sets the variable `ref` to `value`; its value is the
    new one.  (`validate_shape` and `use_locking` are TF1's; shapes are always checked.)"""
    return ref.assign(value, name=name)


def assign_add(ref, value, use_locking=None, name=None):
    """`ref.assign_add(value)`: adds `value` to the variable `ref`; its value is the sum."""
    return ref.assign_add(value, name=name)


def assign_sub(ref, value, use_locking=None, name=None):
    """`ref.assign_sub(value)`: subtracts `value` from the variable `ref`; its value is the difference."""
    return ref.assign_sub(value, name=name)


def group(*inputs, name=None):
    """An op that runs `inputs` (tensors or ops) and has no value."""
    ops = [x.op if isinstance(x, Tensor) else x for x in inputs]
    graph = graph_of([o for o in ops], "group") if ops else get_default_graph()
    op = Operation(graph, "NoOp", name or "group_deps", [], lambda env, state: [],
                   n_outputs=0, control_inputs=ops)
    return op


def no_op(name=None):
    """An op that does nothing (a `group` of nothing)."""
    return group(name=name or "NoOp")


def global_variables(graph=None) -> list:
    """Every variable of the graph (the default graph), in creation order."""
    return list((graph or get_default_graph()).variables)


def trainable_variables(graph=None) -> list:
    """The variables made with `trainable=True` (what optimizers update by default)."""
    return [v for v in global_variables(graph) if v.trainable]


def variables_initializer(var_list, name="init"):
    """An op that sets each variable of `var_list` to its initial value in the session run."""
    op = group(*[v.initializer for v in var_list], name=name)
    op.is_initializer = True
    return op


def global_variables_initializer():
    """`variables_initializer(global_variables())`: run it in a session before reading variables."""
    return variables_initializer(global_variables(), name="init")


initialize_all_variables = global_variables_initializer  # TF1's deprecated name
