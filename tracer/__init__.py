"""tracegrad.tracer: eager define-by-run autograd, the NumPy-like namespace and the tracer.

Imports `tracegrad.ir` only.

>>> from tracegrad.tracer import tensor
>>> x = tensor(3.0, requires_grad=True)
>>> y = x * x + 1.0
>>> y.backward()
>>> x.grad
tensor(6.)
"""
from . import numpy
from .array import ArrayMixin
from .autograd import (GRAD_MODE, AccumulateGrad, Node, enable_grad, is_grad_enabled, no_grad,
                       set_grad_enabled)
from .dtypes import result_type
from .scalars import TracedFloat
from .tensor import EagerTrace, Tensor, backward, grad as autograd_grad, tensor, zero_grad
from .trace import GuardFailure, Traced, TracedProgram, make_graph, trace
from .saving import load_program
from .tree import PyTreeDef, tree_flatten, tree_leaves, tree_map, tree_unflatten

__all__ = [
    "tensor", "Tensor", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "zero_grad", "trace",
    "make_graph", "TracedProgram", "Traced", "numpy", "tree_flatten", "tree_unflatten",
    "tree_map", "tree_leaves", "PyTreeDef", "backward", "autograd_grad", "ArrayMixin",
    "EagerTrace", "Node", "AccumulateGrad", "GRAD_MODE", "GuardFailure", "TracedFloat",
    "result_type", "load_program",
]
