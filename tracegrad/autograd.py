"""`tracegrad.autograd`, as `torch.autograd`: `Function` (custom backward rules),
`grad` and `backward` for eager tensors."""
from tracegrad.tracer import autograd_grad as grad
from tracegrad.tracer import backward

from .custom import Function, FunctionCtx

__all__ = ["Function", "FunctionCtx", "grad", "backward"]
