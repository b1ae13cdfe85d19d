"""`tracegrad.nn`: JAX's `jax.nn` activation functions (`tracegrad.nn.relu`, `gelu`,
`softmax`, `one_hot`, ... in `tracegrad/nn/activations.py`) and PyTorch's
`torch.nn.utils` gradient clipping for eager tensors (`tracegrad.nn.utils.clip_grad_norm_`,
`clip_grad_value_`)."""
from . import activations, utils
from .activations import *  # noqa: F403
from .activations import __all__ as _activations

__all__ = ["utils", "activations", *_activations]
