"""`tracegrad.numpy`: the NumPy-like namespace (as `jax.numpy` is to JAX).

Every function works on eager tensors, traced values and plain numpy arrays.

>>> import tracegrad.numpy as tnp
>>> float(tnp.sum(tnp.exp(tnp.zeros(3))))
3.0
"""
from tracegrad.tracer import numpy as _namespace

__all__ = list(_namespace.__all__)
globals().update({name: getattr(_namespace, name) for name in __all__})
