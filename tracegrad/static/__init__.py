"""`tracegrad.static`: TensorFlow 1 style define-then-run graphs on tracegrad's IR
and compiler.  Use it as `import tracegrad.static as tf`.

>>> import tracegrad.static as tf
>>> a, b = tf.placeholder(tf.float32), tf.placeholder(tf.float32)
>>> z = a * b + a
>>> z
<tf.Tensor 'add:0' shape=<unknown> dtype=float32>
>>> ga, gb = tf.gradients(z, [a, b])
>>> with tf.Session() as sess:
...     print(sess.run([z, ga, gb], feed_dict={a: 2.0, b: 3.0}))
[np.float32(8.0), np.float32(4.0), np.float32(2.0)]

A graph is built first: placeholders, constants, variables and math on them
record operations on symbolic tensors (no values).  `Session.run` keeps the ops
its fetches need, replays them into one tracegrad program for the fed shapes,
runs the same passes and LLVM backend as `tracegrad.jit`, caches the native
code per fetch set and fed shapes, and calls it once per run.  See docs/static.md.
"""
from . import errors, nn, train
from .array_ops import *  # noqa: F401,F403
from .array_ops import __all__ as _array_all
from .more_ops import *  # noqa: F401,F403
from .more_ops import __all__ as _more_all
from .control_flow import cond, while_loop
from .dtypes import as_dtype, bool, float32, float64, int32, int64  # noqa: A004
from .gradients import gradients
from .graph import Graph, Operation, control_dependencies, get_default_graph, reset_default_graph
from .initializers import *  # noqa: F401,F403
from .initializers import __all__ as _init_all
from .math_ops import *  # noqa: F401,F403
from .math_ops import __all__ as _math_all
from .session import InteractiveSession, Session, get_default_session
from .scopes import (AUTO_REUSE, VariableScope, get_variable, get_variable_scope, name_scope,
                     variable_scope)
from .shapes import Dimension, TensorShape
from .sources import constant, convert_to_tensor, placeholder, placeholder_with_default
from .tensor import Tensor
from .variables import (Variable, assign, assign_add, assign_sub, global_variables,
                        global_variables_initializer, group, initialize_all_variables, no_op,
                        trainable_variables, variables_initializer)

__all__ = ["errors", "nn", "train", "InteractiveSession", "cond", "while_loop", "as_dtype", "bool", "float32", "float64",
           "int32", "int64", "gradients", "Graph", "Operation", "get_default_graph",
           "reset_default_graph", "control_dependencies", "Session", "TensorShape", "constant", "convert_to_tensor",
           "placeholder", "placeholder_with_default", "Tensor", "Variable", "assign", "assign_add",
           "assign_sub",
           "global_variables", "global_variables_initializer", "initialize_all_variables",
           "group", "no_op",
           "trainable_variables", "variables_initializer", "AUTO_REUSE", "VariableScope",
           "get_variable", "get_variable_scope", "name_scope", "variable_scope", *_math_all,
           *_array_all, *_more_all, "get_default_session", "Dimension",
           *_init_all]
