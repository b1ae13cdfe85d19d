"""`tracegrad.numpy`: the NumPy-like namespace (as `jax.numpy` is to JAX).

Every function works on eager tensors, traced values and plain numpy arrays.

>>> import tracegrad.numpy as tnp
>>> float(tnp.sum(tnp.exp(tnp.zeros(3))))
3.0
"""
import functools
import types

from tracegrad.tracer import numpy as _namespace


def _deferred_to(args, kwargs):
    """The first argument (or element of a list/tuple argument) whose type defines
    `__tg_function__`, or None.  Such values (tracegrad.static's symbolic tensors)
    take over the call, as NumPy's functions defer to `__array_function__`."""
    for a in (*args, *kwargs.values()):
        for x in (a if type(a) in (list, tuple) else (a,)):
            if hasattr(type(x), "__tg_function__"):
                return x
    return None


def _deferring(f):
    @functools.wraps(f)
    def call(*args, **kwargs):
        owner = _deferred_to(args, kwargs)
        if owner is not None:
            return owner.__tg_function__(f, args, kwargs)
        return f(*args, **kwargs)
    return call


__all__ = list(_namespace.__all__)
globals().update({name: _deferring(f) if isinstance(f, types.FunctionType) else f
                  for name, f in ((n, getattr(_namespace, n)) for n in __all__)})
