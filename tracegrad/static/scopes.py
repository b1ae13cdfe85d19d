"""`variable_scope`, `get_variable` and `name_scope`: TF1's way of naming and sharing
variables.

`get_variable(name, ...)` looks the variable `<scope>/<name>` up in the graph's store of
variables made by `get_variable`: with `reuse=True` it must exist, with the default
(`reuse=None`) it must not (a ValueError either way, as TF1), and with `AUTO_REUSE` it is
made on first use.  A scope's reuse is inherited by the scopes inside it.  Entering a
variable scope also opens a name scope, so ops made inside are named `<scope>/<op>`
(re-entering the scope opens `<scope>_1`, while its variables keep `<scope>/`).
"""
from __future__ import annotations

import contextlib

from .dtypes import as_dtype, float32
from .graph import get_default_graph
from .initializers import glorot_uniform_initializer, zeros_initializer
from .shapes import TensorShape
from .variables import Variable

__all__ = ["AUTO_REUSE", "VariableScope", "variable_scope", "get_variable",
           "get_variable_scope", "name_scope"]


class _AutoReuse:
    def __repr__(self):
        return "tf.AUTO_REUSE"


AUTO_REUSE = _AutoReuse()


class VariableScope:
    """A variable scope: its `name` (the prefix of its variables' names), `reuse`, and
    the default `initializer` and `dtype` of `get_variable` inside it."""

    def __init__(self, name="", reuse=None, initializer=None, dtype=None):
        self.name, self.reuse, self.initializer, self.dtype = name, reuse, initializer, dtype
        self.original_name_scope = ""

    def reuse_variables(self):
        """Reuse variables from now on in this scope (TF1's `scope.reuse_variables()`)."""
        self.reuse = True


def _state(graph):
    """The graph's variable scope stack and its {name: variable} store (made on demand)."""
    if not hasattr(graph, "_var_scopes"):
        graph._var_scopes, graph._var_store, graph._scope_uses = [VariableScope()], {}, {}
    return graph._var_scopes, graph._var_store


def get_variable_scope() -> VariableScope:
    """The current variable scope of the default graph."""
    return _state(get_default_graph())[0][-1]


def _inner_name(graph, outer, name_or_scope, default_name):
    if isinstance(name_or_scope, VariableScope):
        return name_or_scope.name
    if name_or_scope is None:  # TF1 makes default names unique: "dense", "dense_1"
        if default_name is None:
            raise TypeError("If default_name is None then name_or_scope is required")
        base = f"{outer.name}/{default_name}" if outer.name else default_name
        n = graph._scope_uses.get(base, 0)
        graph._scope_uses[base] = n + 1
        name_or_scope = default_name if n == 0 else f"{default_name}_{n}"
    return f"{outer.name}/{name_or_scope}" if outer.name else str(name_or_scope)


@contextlib.contextmanager
def variable_scope(name_or_scope, default_name=None, values=None, initializer=None,
                   regularizer=None, reuse=None, dtype=None, **unused):
    """Variables made by `get_variable` inside are named `<scope>/<name>`; `reuse` (True,
    `AUTO_REUSE`, or None: inherit) says whether existing ones are shared.

    >>> import tracegrad.static as tf
    >>> with tf.Graph().as_default():
    ...     with tf.variable_scope("layer"):
    ...         w = tf.get_variable("w", [2], initializer=tf.zeros_initializer())
    ...     with tf.variable_scope("layer", reuse=True):
    ...         print(tf.get_variable("w") is w, w.name)
    True layer/w:0
    """
    graph = get_default_graph()
    scopes, _ = _state(graph)
    outer = scopes[-1]
    given = name_or_scope if isinstance(name_or_scope, VariableScope) else None
    inherited = outer.reuse if outer.reuse in (True, AUTO_REUSE) else None
    scope = VariableScope(
        _inner_name(graph, outer, name_or_scope, default_name),
        reuse=inherited or reuse or (given.reuse if given else None),
        initializer=(initializer if initializer is not None else
                     given.initializer if given else outer.initializer),
        dtype=dtype or (given.dtype if given else outer.dtype))
    scopes.append(scope)
    try:
        with graph.name_scope(scope.name.rpartition("/")[2]) as name_scope_:
            scope.original_name_scope = name_scope_
            yield scope
    finally:
        scopes.pop()


def name_scope(name, default_name=None, values=None):
    """Op names made inside start with `<name>/` (made unique: "a", then "a_1")."""
    return get_default_graph().name_scope(name if name is not None else default_name)


def get_variable(name, shape=None, dtype=None, initializer=None, regularizer=None,
                 trainable=None, collections=None, validate_shape=True, **unused):
    """The variable `<scope>/<name>`: made (from `initializer`, the scope's, or else
    glorot uniform for floats and zeros otherwise) unless the scope reuses, then looked
    up (its shape and dtype must agree with those given)."""
    graph = get_default_graph()
    scopes, store = _state(graph)
    scope = scopes[-1]
    full = f"{scope.name}/{name}" if scope.name else name
    if full in store:
        return _shared(store[full], full, scope, shape, dtype)
    if scope.reuse is True:
        raise ValueError(f"Variable {full} does not exist, or was not created with "
                         "tf.get_variable(). Did you mean to set reuse=tf.AUTO_REUSE in VarScope?")
    initializer = initializer if initializer is not None else scope.initializer
    constant = initializer is not None and not callable(initializer)
    dtype = dtype or scope.dtype or (None if constant else float32)  # a constant has its own
    value = _initial_value(full, shape, dtype, initializer)
    with graph.as_default():
        var = Variable(value, name=f"{full}/", dtype=dtype,
                       trainable=True if trainable is None else trainable)
    store[full] = var
    return var


def _shared(var, full, scope, shape, dtype):
    if scope.reuse not in (True, AUTO_REUSE):
        raise ValueError(f"Variable {full} already exists, disallowed. Did you mean to set "
                         "reuse=True or reuse=tf.AUTO_REUSE in VarScope?")
    if shape is not None and not var.shape.is_compatible_with(list(shape)):
        raise ValueError(f"Trying to share variable {full}, but specified shape "
                         f"{TensorShape(list(shape))} and found shape {var.shape}.")
    if dtype is not None and as_dtype(dtype) != var.dtype:
        raise ValueError(f"Trying to share variable {full}, but specified dtype "
                         f"{as_dtype(dtype).name} and found dtype {var.dtype.name}.")
    return var


def _initial_value(full, shape, dtype, initializer):
    """A constant initializer (a tensor or a value) as it is; a callable one called."""
    if initializer is not None and not callable(initializer):
        if shape is not None:
            raise ValueError("If initializer is a constant, do not specify shape.")
        return initializer
    if shape is None or any(d is None for d in shape):
        raise ValueError(f"Shape of a new variable ({full}) must be fully defined, but "
                         f"instead was {shape}.")
    dtype = as_dtype(dtype)
    if initializer is None:
        initializer = (glorot_uniform_initializer() if dtype.kind == "f"
                       else zeros_initializer())
    return initializer(list(shape), dtype=dtype)
