"""The NumPy protocols: `__array_ufunc__` and `__array_function__` of tensors and
traced values call `dispatch_ufunc` / `dispatch_function`, which read the one
table mapping numpy callables to this namespace (`TABLE`, assembled in
`__init__` from every family's `NUMPY` dict)."""
from __future__ import annotations

from ._core import _reject
from .reductions import UFUNC_REDUCE

TABLE: dict = {}  # numpy ufunc or function -> our implementation


def _numpy_name(f) -> str:
    """`np.sum`, `np.linalg.norm`: how the user spelled the numpy callable."""
    module = getattr(f, "__module__", None) or "numpy"
    prefix = "np" + module[len("numpy"):] if module.startswith("numpy") else module
    return f"{prefix}.{getattr(f, '__name__', repr(f))}"


def dispatch_ufunc(ufunc, method, inputs, kwargs):
    """Implementation of `__array_ufunc__` for tracegrad arrays."""
    _reject(_numpy_name(ufunc), out=kwargs.pop("out", None))
    if method == "__call__" and ufunc in TABLE:
        if kwargs:
            raise TypeError(f"{_numpy_name(ufunc)}: keyword arguments {sorted(kwargs)} are "
                            "not supported on tracegrad arrays")
        return TABLE[ufunc](*inputs)
    if method == "reduce" and ufunc in UFUNC_REDUCE:
        (a, *rest), axis = inputs, kwargs.pop("axis", 0)
        if rest:
            axis = rest[0]
        return UFUNC_REDUCE[ufunc](a, axis=axis, **kwargs)
    raise TypeError(f"{_numpy_name(ufunc)}.{method} is not supported on tracegrad arrays"
                    if method != "__call__" else
                    f"{_numpy_name(ufunc)} is not supported on tracegrad arrays")


def dispatch_function(func, args, kwargs):
    """Implementation of `__array_function__` for tracegrad arrays."""
    impl = TABLE.get(func)
    if impl is None:
        raise TypeError(f"{_numpy_name(func)} is not supported on tracegrad arrays (tensors "
                        "and traced values); supported: the functions of tracegrad.numpy")
    return impl(*args, **kwargs)
