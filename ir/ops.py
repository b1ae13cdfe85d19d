"""The primitive-binding layer (JAX's `lax`): one small function per primitive.

Each family module (`elementwise`, `reductions`, `structural`, `linalg`)
defines its primitives' binding functions next to their rules; this module is
the one namespace that gathers them, with the helpers that read shapes and
dtypes of any operand.  The autodiff rules are written against it, so the same
rules serve eager autograd (numpy or tensors) and the IR autodiff pass (traced
values).
"""
from __future__ import annotations

import numpy as np

from .core import ShapedArray, aval_of
from .primitives import bind, find_trace  # noqa: F401  (part of this namespace)


def aval(x):
    """Shape and dtype of a boxed value, numpy array or scalar."""
    a = getattr(x, "aval", None)
    if a is not None:
        return a
    if getattr(x, "_tg_symbolic", None) is not None:  # a traced Python float (tracer/scalars.py):
        return ShapedArray((), np.dtype(np.float64))  # a float's type, read without a guard
    return aval_of(x)


def shape(x):
    # numpy arrays are the hot case in eager backward: skip building a ShapedArray
    return x.shape if isinstance(x, np.ndarray) else aval(x).shape


def dtype(x):
    return x.dtype if isinstance(x, np.ndarray) else aval(x).dtype


from .elementwise import *  # noqa: E402,F401,F403
from .reductions import *  # noqa: E402,F401,F403
from .structural import *  # noqa: E402,F401,F403
from .linalg import *  # noqa: E402,F401,F403
from .control_flow import *  # noqa: E402,F401,F403
from .indexing import *  # noqa: E402,F401,F403
from .sorting import *  # noqa: E402,F401,F403
from .cumulative import *  # noqa: E402,F401,F403
from .correlate import *  # noqa: E402,F401,F403
from .decompositions import *  # noqa: E402,F401,F403
from .custom import *  # noqa: E402,F401,F403
