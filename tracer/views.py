"""Views of eager tensors: basic indexing shares storage, as in PyTorch (and NumPy).

`v = t[1:]` (ints, slices, None, Ellipsis) is a tensor whose data is a NumPy view of
t's buffer and whose version counter is t's, made directly (`view_of`: numpy's view and
one backward node, a few microseconds, where the general indexing path of the traced
primitives costs tens).  Invariants:

* `v._view` is `(base, index, version)`: the base tensor, the basic index and the
  version of the shared counter at which `v.grad_fn` was last made consistent with the
  base (`refresh`).
* Values are always shared: an in-place change of either is seen by the other.
* Autograd follows the values.  An in-place change of the view (`v += 1`, `v[0] = 2`,
  `v.zero_()`) gives the base a new history: the old base with the view's new values
  set at `index` (`setitem`, PyTorch's CopySlices), recursively up a chain of views,
  and the view becomes that new history seen through the index.  Under `no_grad` an
  in-place change is invisible to autograd (graphs stay as they were).
  An in-place change of the base (or of another view of it) makes the view's graph
  stale; the next operation that records it (tensor._record) first rebuilds it as
  `base[index]` (PyTorch regenerates the view's grad_fn the same way).
* Saved-value checks see both: a node that saved the view's values is invalidated by
  any in-place change of the storage (the counter is shared).

Advanced indexing (arrays, masks, tensors) copies, as in PyTorch; reshape and transpose
copy too (a documented difference: only basic indexing makes views).
"""
from __future__ import annotations

import weakref

import numpy as np

from . import indexing as _indexing
from . import numpy as tnp
from .autograd import GRAD_MODE, NODE_CLASSES, accumulator


def is_basic(index) -> bool:
    """Whether `index` selects by ints, slices, None and Ellipsis only."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, slice)
               or (isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_)))
               for p in parts)


def numpy_view(data: np.ndarray, index):
    """data[index] as an ndarray sharing data's buffer (0-d results too), or None."""
    parts = index if isinstance(index, tuple) else (index,)
    if not any(p is Ellipsis for p in parts):
        parts = parts + (Ellipsis,)  # a full integer index then gives a 0-d view
    try:
        view = data[parts]
    except (IndexError, TypeError):
        return None
    if isinstance(view, np.ndarray) and view.size and np.may_share_memory(view, data):
        return view
    return None


class _BasicIndex:
    """The backward of a view `base[index]` (the `prim` of its node): the cotangent put
    at `index` in zeros of the base's shape.  Reads no saved values."""

    name = "basic_index"
    selective_vjp = False

    def __init__(self, index, shape):
        self.index, self.shape = index, shape

    def vjp(self, g, out, base):
        if isinstance(g, (np.ndarray, np.generic)):  # a plain backward's arrays
            ct = np.zeros(self.shape, g.dtype)
            ct[self.index] = g
            return (ct,)
        # a create_graph backward: recorded on tensors
        return (_indexing.setitem(tnp.zeros(self.shape, g.dtype), self.index, g),)


def view_of(base, index, make):
    """base[index] for a basic index, made directly (numpy's view and one backward node,
    PyTorch's SliceBackward0/SelectBackward0), or None where numpy gives no view (an
    empty result)."""
    view = numpy_view(base._data, index)
    if view is None:
        return None
    node = _node(base, index, view) if GRAD_MODE.enabled and base._requires_grad else None
    out = make(view, node, base._version)
    out._view = (base, index, base._version.value)
    if not GRAD_MODE.enabled and base._requires_grad:
        key = id(out)
        _NO_GRAD_VIEWS[key] = weakref.ref(out, lambda _, key=key: _NO_GRAD_VIEWS.pop(key, None))
    return out


# views of tensors that require grad made under no_grad (id -> weak reference; tensors
# compare elementwise, so no WeakSet): changing them in place with grad on is ambiguous,
# and PyTorch refuses it
_NO_GRAD_VIEWS: dict = {}


def _made_without_grad(t) -> bool:
    ref = _NO_GRAD_VIEWS.get(id(t))
    return ref is not None and ref() is t


def _node(base, index, view):
    """The backward node of `view` = base[index] on base's current history."""
    edge = base.grad_fn if base.grad_fn is not None else accumulator(base)
    name = "SelectBackward0" if view.ndim < base._data.ndim else "SliceBackward0"
    node = NODE_CLASSES[name](_BasicIndex(index, base._data.shape), {}, [base, view], [], [edge])
    node.reads = False
    return node


def _regraph(t) -> None:
    """Make view `t`'s graph `base[index]` on the base's current history (PyTorch's views
    are always their base's history seen through the index)."""
    base, index, _ = t._view
    if base._view is not None:
        refresh(base)
    grad = GRAD_MODE.enabled and base._requires_grad
    t.grad_fn = _node(base, index, t._data) if grad else None
    t._requires_grad = grad or (t._requires_grad and t.grad_fn is not None)
    t._view = (base, index, t._version.value)


def refresh(t) -> None:
    """Rebuild a stale view's graph on its base's current history (module docstring)."""
    if t._view[2] != t._version.value:
        _regraph(t)


def check_inplace(t, op: str) -> None:
    """PyTorch's errors for an in-place change, with grad on, of a view of a leaf that
    requires grad, or of a view made under no_grad."""
    if GRAD_MODE.enabled and _made_without_grad(t):
        raise RuntimeError(f"a view was created in no_grad mode and is being modified in place "
                           f"({op}) with grad mode enabled: make it under grad mode, or change "
                           "it under no_grad")
    base = t._view[0]
    while base._view is not None:
        base = base._view[0]
    if GRAD_MODE.enabled and base._requires_grad and base.grad_fn is None:
        raise RuntimeError(f"a view of a leaf Variable that requires grad is being used in an "
                           f"in-place operation ({op}); wrap it in `with no_grad():`")


def propagate(t, make) -> None:
    """After an in-place change of view `t` (already in the shared storage): the base's
    history becomes setitem(old base, index, t), up the chain of views.  `make(data,
    grad_fn, version)` builds a tensor (Tensor._make)."""
    base, index, _ = t._view
    if GRAD_MODE.enabled and (t._requires_grad or base._requires_grad):
        old = make(base._data, base.grad_fn, None)
        old._requires_grad = base._requires_grad
        value = make(t._data, t.grad_fn, None)
        value._requires_grad = t._requires_grad
        new = _indexing.setitem(old, index, value)
        base.grad_fn, base._requires_grad = new.grad_fn, new._requires_grad
    if base._view is not None:
        propagate(base, make)
        base._view = base._view[:2] + (base._version.value,)
    if GRAD_MODE.enabled:
        _regraph(t)  # the view is now its base's new history seen through the index
    else:  # under no_grad autograd does not see the change: graphs stay as they were
        t._view = (base, index, t._version.value)
