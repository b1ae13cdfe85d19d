"""Views of traced arrays: NumPy's aliasing, recorded as functional updates.

In NumPy `r = y[::2]; r *= 3` changes `y`, and `r = y[1:]; y[2] = 0` changes `r`.  A
traced array is one graph value at a time (an in-place change rebinds the object to the
updated value, trace.py), so a slice taken from it would be a copy and such programs
would compute something else when traced than when run (eager tensors share storage,
views.py).  A `TracedView` keeps NumPy's meaning:

* it remembers its base (a traced array, or another view) and how it was taken (a view
  function of views.py: `Index` for basic indexing, `Permute` for `.T`/`transpose`/
  `swapaxes`), and the base's graph value it was read from;
* reading it (every use goes through `_tg_var`) first checks the base: if the base was
  changed in place since, the view is taken again from the base's current value;
* changing it in place (`r *= 3`, `r[0] = 1`) writes its new value into the base
  (`put`: a scatter of the base's current value), up a chain of views, so the base and
  every other view of it see the change at their next read.

Only what NumPy makes a view is one: basic indexing that is not a full integer index
(`y[1, 2]` of a 2-D array is a scalar copy in NumPy), `.T`, `transpose`, `swapaxes`,
`expand_dims` and `squeeze` (and their `np.` functions, and `np.flip`, `np.split`,
`np.rot90`, ...: numpy/view_functions.py), and `reshape`/`ravel` where NumPy reshapes
without a copy.  Every computed traced array stands for a C-contiguous one, which NumPy
reshapes as a view; a view's layout is its chain of view functions applied to such an
array, so `layout_probe` asks NumPy itself whether a reshape of a view would copy.
Writes through a view of a value of an enclosing trace, from inside a nested one (a loop
body, a transform), raise as assignments into such values do.
"""
from __future__ import annotations

import numpy as np

from . import numpy as tnp
from . import views


def is_view_index(index, ndim: int) -> bool:
    """Whether NumPy's `x[index]` is a view of x: a basic index other than one integer per
    dimension (which gives a scalar copy)."""
    if not views.is_basic(index):
        return False
    parts = index if isinstance(index, tuple) else (index,)
    return not (len(parts) == ndim and all(p is not None and p is not Ellipsis
                                            and not isinstance(p, slice) for p in parts))


def layout_probe(x):
    """An ndarray of traced array `x`'s shape and NumPy's layout of it (a view's strides
    within its root's C-contiguous buffer), over no memory: only NumPy's view functions
    (which never read) may be applied to it.  None where NumPy would not view `x`."""
    base = getattr(x, "_tg_base", None)
    if base is None:
        shape = tuple(x.shape)
        strides = tuple(int(np.prod(shape[d + 1:], dtype=np.int64)) for d in range(len(shape)))
        return np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), shape, strides)
    parent = layout_probe(base)
    return None if parent is None else x._tg_fn.numpy(parent)


def reshapes_as_view(x, shape) -> bool:
    """Whether NumPy reshapes `x` (a traced array or view) to `shape` without a copy."""
    probe = layout_probe(x)
    return probe is not None and views.Reshape(shape).numpy(probe) is not None


def make_view(cls, base, fn, value=None):
    """`fn(base)` (`value`, when already computed) as a view of base (an instance of
    `cls`, trace.py's TracedView)."""
    value = fn.take(base) if value is None else value
    if getattr(value, "_tg_trace", None) is not base._tg_trace:
        return value  # nothing traced to alias
    return cls._of(base, fn, value)


class ViewState:
    """A TracedView's own part: its base, view function, value, and the base value seen."""

    def _init_view(self, base, fn, value):
        self._tg_trace = value._tg_trace
        self._tg_base, self._tg_fn = base, fn
        self._tg_own, self._tg_seen = value._tg_var, base._tg_var

    @property
    def _tg_var(self):
        current = self._tg_base._tg_var  # (a view base is brought up to date first)
        if current is not self._tg_seen:  # the base changed in place: take the view again
            self._tg_own, self._tg_seen = self._tg_fn.take(self._tg_base)._tg_var, current
        return self._tg_own

    @_tg_var.setter
    def _tg_var(self, var):
        """An in-place change of the view: its new value goes into the base."""
        base = self._tg_base
        value = type(self)._plain(self._tg_trace, var)
        new = self._tg_fn.put(base, value)
        if getattr(new, "_tg_trace", None) is not base._tg_trace:
            raise TypeError("cannot write into a view of a traced value of an enclosing trace "
                            "from inside a nested one (a loop body, a transform): return the "
                            "updated value instead")
        if np.dtype(new.dtype) != np.dtype(base.dtype):
            new = tnp.astype(new, base.dtype)
        base._tg_var = new._tg_var
        self._tg_own, self._tg_seen = var, base._tg_var
