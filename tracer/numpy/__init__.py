"""The NumPy-like namespace (`tracegrad.numpy`, as `jax.numpy` sits over `lax`).

Every function accepts eager tensors, traced values, numpy arrays and Python
scalars, and lowers to the primitives of `tracegrad.ir` through `ir.ops`: the
same code computes eagerly (recording autograd), builds a graph while tracing,
or evaluates plain numpy.  NumPy 2 semantics: NEP 50 promotion (Python scalars
are weak), explicit `broadcast` for broadcasting, `convert` so that every
binary primitive sees one dtype.

>>> import numpy as np
>>> from tracegrad.tracer import numpy as tnp
>>> tnp.add(np.ones(3, np.float32), 2.0).dtype
dtype('float32')
>>> float(tnp.logsumexp(np.array([1000.0, 1000.0])))  # stable: 1000 + log 2
1000.6931471805599

Differences from NumPy, by design: int and bool inputs of float functions
(`exp`, `log`, ...) compute in float64 (NumPy gives float16 for bool); `out=` is never
accepted.
"""
from __future__ import annotations

import numpy as np

from . import (composites, constructors, contractions, elementwise, indexing, linalg, math,
               polynomial, products, reductions, shapes, sorting, special, structure)
from ._core import BroadcastError, is_boxed, symbolic_value
from .dispatch import TABLE as NUMPY_TABLE
from .dispatch import dispatch_function, dispatch_ufunc
from .elementwise import UFUNCS, uf

# Each family module lists its functions in `__all__` and the numpy callables they
# implement in `NUMPY`; a new family is one more entry here.
FAMILIES = (elementwise, reductions, shapes, products, constructors, composites, math, indexing,
            sorting, linalg, structure, contractions, polynomial, special)

# dtype and constant names, as in numpy
float32, float64, int32, int64, bool_ = np.float32, np.float64, np.int32, np.int64, np.bool_
dtype = np.dtype
pi, e, inf, nan, newaxis = np.pi, np.e, np.inf, np.nan, None

__all__ = ["float32", "float64", "int32", "int64", "bool_", "dtype", "pi", "e", "inf", "nan",
           "newaxis", "BroadcastError"]
for _family in FAMILIES:
    globals().update({name: getattr(_family, name) for name in _family.__all__})
    __all__ += _family.__all__
    NUMPY_TABLE.update(_family.NUMPY)

__all__ = list(dict.fromkeys(__all__))
