"""`tracegrad.nn`: PyTorch's `torch.nn.utils` gradient clipping for eager tensors
(`tracegrad.nn.utils.clip_grad_norm_`, `clip_grad_value_`)."""
from . import utils

__all__ = ["utils"]
