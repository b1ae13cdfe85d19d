"""tracegrad: eager define-by-run autograd, graph tracing, IR transforms and
LLVM compilation for NumPy-style Python.

>>> import tracegrad
>>> a = tracegrad.tensor(1.0, requires_grad=True)
>>> b = tracegrad.tensor(2.0, requires_grad=True)
>>> z = a * b + a
>>> z.backward()
>>> float(a.grad), float(b.grad)
(3.0, 1.0)

The stages are importable on their own: `tracegrad.tracer`, `tracegrad.ir`,
`tracegrad.passes`, `tracegrad.codegen`.
"""
__version__ = "0.1.0"

from tracegrad.tracer import (Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled,
                              tensor, trace, zero_grad)
from tracegrad.ir import UnexpectedTracerError
from . import numpy
from .numpy import stop_gradient, where
from tracegrad.tracer.autograd import inference_mode
from .transforms import grad, jvp, linearize, value_and_grad, vjp
from tracegrad.tracer.control_flow import cond, fori_loop, scan, switch, while_loop
from . import testing
from tracegrad.tracer.saving import load_program as load
from .pictures import draw
from . import nn, optim, tree_util
from . import config, flatten_util, lax, tree
from .custom import checkpoint, checkpoint_policies, custom_jvp, custom_vjp
from .custom import checkpoint as remat
from .shapes import ShapeDtypeStruct, eval_shape, make_jaxpr
from . import autograd
from . import eager
eager.install()  # native kernels behind Primitive.native (TRACEGRAD_EAGER_NATIVE=0: numpy)
from .vectorize import hessian, jacfwd, jacrev, vmap


def __getattr__(name):
    # The compiler (llvmlite) loads on first use: eager and tracing users never pay for it.
    if name in ("jit", "compile_grad", "SpecializationLimitWarning", "InPlaceArgumentWarning"):
        from . import compile as _compile
        return getattr(_compile, name)
    raise AttributeError(f"module 'tracegrad' has no attribute {name!r}")

__all__ = ["Tensor", "tensor", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "zero_grad", "trace",
           "numpy", "grad", "value_and_grad", "jvp", "vjp", "linearize", "jit", "compile_grad", "testing",
           "cond", "switch", "while_loop", "fori_loop", "scan", "load", "draw", "optim", "nn", "tree_util",
           "custom_vjp", "custom_jvp", "checkpoint", "remat", "checkpoint_policies", "autograd",
           "ShapeDtypeStruct", "eval_shape", "make_jaxpr", "stop_gradient", "vmap", "jacfwd", "jacrev", "hessian",
           "UnexpectedTracerError", "SpecializationLimitWarning", "InPlaceArgumentWarning", "where", "inference_mode",
           "lax", "flatten_util", "config", "tree"]
