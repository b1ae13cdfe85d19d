"""Views of eager tensors: indexing, reshapes, transposes and expands share storage, as
in PyTorch (and NumPy).

`v = t[1:]` (ints, slices, None, Ellipsis), `t.view(6)`, `t.reshape(...)` where NumPy
can reshape without a copy, `t.unsqueeze(0)`, `t.squeeze()`, `t.flatten()`, `t.T`,
`t.transpose(0, 1)`, `t.permute(...)`, `t.expand(...)` are tensors whose data is a NumPy
view of t's buffer and whose version counter is t's, made directly (`view_of`: numpy's
view and one backward node, a few microseconds).  A view is described by its *view
function* (`Index`, `Reshape`, `Permute`, `Expand`): how to compute the view from a base
value (the numpy view; the backward of that map, `vjp`) and how to put new view values
back into a base value (`put`).  Invariants:

* `v._view` is `(base, fn, version)`: the base tensor (itself possibly a view: chains
  are followed link by link), the view function and the version of the shared counter
  at which `v.grad_fn` was last made consistent with the base (`refresh`).
* Values are always shared: an in-place change of either is seen by the other.
* Autograd follows the values.  An in-place change of the view (`v += 1`, `v[0] = 2`,
  `v.zero_()`) gives the base a new history, `fn.put(old base, v)` (for an index: the
  old base with the view's values set there, PyTorch's CopySlices; for a view that
  covers the whole base: the inverse reshape or transpose of v), recursively up a chain
  of views, and the view becomes that new history seen through `fn`.  Under `no_grad`
  an in-place change is invisible to autograd (graphs stay as they were).
  An in-place change of the base (or of another view of it) makes the view's graph
  stale; the next operation that records it (tensor._record) first rebuilds it as
  `fn(base)` (PyTorch regenerates the view's grad_fn the same way).
* Saved-value checks see both: a node that saved the view's values is invalidated by
  any in-place change of the storage (the counter is shared).
* An expanded view repeats elements of its buffer (numpy's read-only broadcast): it
  cannot be changed in place, as in PyTorch.

Advanced indexing (arrays, masks, tensors) copies, as in PyTorch; so does `reshape`
where NumPy cannot view (a non-contiguous input), while `view` there raises PyTorch's
error.
"""
from __future__ import annotations

import weakref

import numpy as np

from . import indexing as _indexing
from . import numpy as tnp
from .autograd import GRAD_MODE, NODE_CLASSES, accumulator
from .torch_methods import expanded_shape, norm_dim, split_sizes


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


def _plain(g) -> bool:
    """Whether a cotangent is a plain backward's array (else a create_graph tensor)."""
    return isinstance(g, (np.ndarray, np.generic))


# ---- view functions: each is also the `prim` of its views' backward nodes (reads no saved
# values; `vjp(g, out, base)` maps the view's cotangent to the base's) ----------------------

class ViewFn:
    name = "view"
    selective_vjp = False
    __slots__ = ("backward_name",)

    def __init__(self, backward_name):
        self.backward_name = backward_name  # PyTorch's node class name

    def node_name(self, base_ndim, view_ndim):
        return self.backward_name


class Index(ViewFn):
    """base[index] for a basic index."""

    name = "basic_index"
    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index

    def numpy(self, data):
        return numpy_view(data, self.index)

    def take(self, base):
        """The view of a traced `base` (a functional value: traced_views.py)."""
        return _indexing.getitem(base, self.index)

    def node_name(self, base_ndim, view_ndim):
        return "SelectBackward0" if view_ndim < base_ndim else "SliceBackward0"

    def vjp(self, g, out, base):
        """The cotangent put at `index` in zeros of the base's shape."""
        if _plain(g):
            ct = np.zeros(np.shape(base), g.dtype)
            ct[self.index] = g
            return (ct,)
        return (_indexing.setitem(tnp.zeros(np.shape(base), g.dtype), self.index, g),)

    def put(self, old, value):
        return _indexing.setitem(old, self.index, value)


class Reshape(ViewFn):
    """base.reshape(shape) without a copy (view, flatten, squeeze, unsqueeze, ...)."""

    name = "reshape_view"
    __slots__ = ("shape",)

    def __init__(self, shape, backward_name="ViewBackward0"):
        super().__init__(backward_name)
        self.shape = tuple(shape)

    def numpy(self, data):
        try:
            return np.reshape(data, self.shape, copy=False)
        except ValueError:  # numpy would have to copy (or the sizes differ)
            return None

    def take(self, base):
        return tnp.reshape(base, self.shape)

    def vjp(self, g, out, base):
        return (np.reshape(g, np.shape(base)) if _plain(g) else tnp.reshape(g, np.shape(base)),)

    def put(self, old, value):
        return tnp.reshape(value, old.shape)


class Permute(ViewFn):
    """base.transpose(perm) (T, t, transpose, permute, swapaxes, movedim)."""

    name = "transpose_view"
    __slots__ = ("perm",)

    def __init__(self, perm, backward_name="PermuteBackward0"):
        super().__init__(backward_name)
        self.perm = tuple(perm)

    def numpy(self, data):
        return np.transpose(data, self.perm)

    def take(self, base):
        return tnp.transpose(base, self.perm)

    def _inverse(self, x):
        inv = tuple(np.argsort(self.perm).tolist())
        return np.transpose(x, inv) if _plain(x) else tnp.transpose(x, inv)

    def vjp(self, g, out, base):
        return (self._inverse(g),)

    def put(self, old, value):
        return self._inverse(value)


class Diagonal(ViewFn):
    """`base.diagonal(offset, dim1, dim2)`: the diagonal of dims dim1, dim2 as the last
    dim, writable (torch's; NumPy's is a read-only view)."""

    name = "diagonal_view"
    __slots__ = ("offset", "dim1", "dim2")

    def __init__(self, offset, dim1, dim2, ndim):
        super().__init__("DiagonalBackward0")
        self.offset = int(offset)
        self.dim1, self.dim2 = norm_dim(dim1, ndim), norm_dim(dim2, ndim)
        if self.dim1 == self.dim2:
            raise ValueError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")

    def numpy(self, data):
        """A writable numpy view of the diagonal (np.diagonal's is read-only), or None."""
        diag = np.diagonal(data, self.offset, self.dim1, self.dim2)
        if not diag.size:
            return None
        start = [slice(None)] * data.ndim
        start[self.dim1] = slice(max(-self.offset, 0), None)
        start[self.dim2] = slice(max(self.offset, 0), None)
        return np.lib.stride_tricks.as_strided(data[tuple(start)], diag.shape, diag.strides)

    def vjp(self, g, out, base):
        """The cotangent on the diagonal of zeros of the base's shape."""
        if _plain(g):
            ct = np.zeros(np.shape(base), g.dtype)
            self.numpy(ct)[...] = g
            return (ct,)
        return (self.put(tnp.zeros(np.shape(base), g.dtype), g),)

    def put(self, old, value):
        """old with `value` on the diagonal: its dims moved last, where an index pair
        (rows, columns) reads the diagonal in np.diagonal's layout."""
        last = tnp.moveaxis(old, (self.dim1, self.dim2), (-2, -1))
        n1, n2 = last.shape[-2:]
        k = min(n1 - max(-self.offset, 0), n2 - max(self.offset, 0))
        rows = np.arange(k) + max(-self.offset, 0)
        new = _indexing.setitem(last, (Ellipsis, rows, rows + self.offset), value)
        return tnp.moveaxis(new, (-2, -1), (self.dim1, self.dim2))


class Expand(ViewFn):
    """np.broadcast_to(base, shape): read-only, so never changed in place (`put` unused)."""

    name = "expand_view"
    __slots__ = ("shape",)

    def __init__(self, shape):
        super().__init__("ExpandBackward0")
        self.shape = tuple(shape)

    def numpy(self, data):
        return np.broadcast_to(data, self.shape)

    def vjp(self, g, out, base):
        """The cotangent summed over the broadcast dims (new leading ones, stretched ones)."""
        shape = np.shape(base)
        lead = len(self.shape) - len(shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                          if n == 1 and self.shape[lead + i] != 1)
        if _plain(g):
            return (np.sum(g, axis=axes).reshape(shape),)
        return (tnp.reshape(tnp.sum(g, axis=axes), shape),)


def view_of(base, fn, make):
    """`fn(base)` made directly (numpy's view and one backward node, PyTorch's
    SliceBackward0, ViewBackward0, ...), or None where numpy gives no view (an empty
    result, or a reshape that needs a copy)."""
    view = fn.numpy(base._data)
    if view is None:
        return None
    node = _node(base, fn, view) if GRAD_MODE.enabled and base._requires_grad else None
    out = make(view, node, base._version)
    out._view = (base, fn, base._version.value)
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


def _node(base, fn, view):
    """The backward node of `view` = fn(base) on base's current history."""
    edge = base.grad_fn if base.grad_fn is not None else accumulator(base)
    name = fn.node_name(base._data.ndim, view.ndim)
    node = NODE_CLASSES[name](fn, {}, [base, view], [], [edge])
    node.reads = False
    return node


def _regraph(t) -> None:
    """Make view `t`'s graph `fn(base)` on the base's current history (PyTorch's views
    are always their base's history seen through the view function)."""
    base, fn, _ = t._view
    if base._view is not None:
        refresh(base)
    grad = GRAD_MODE.enabled and base._requires_grad
    node = _node(base, fn, t._data) if grad else None
    t._rebase(node, grad or (t._requires_grad and node is not None))  # retain_grad follows
    t._view = (base, fn, t._version.value)


def refresh(t) -> None:
    """Rebuild a stale view's graph on its base's current history (module docstring)."""
    if t._view[2] != t._version.value:
        _regraph(t)


def check_inplace(t, op: str) -> None:
    """PyTorch's errors for an in-place change of an expanded view (any grad mode), and,
    with grad on, of a view of a leaf that requires grad, or of a view made under no_grad."""
    if not t._data.flags.writeable:
        raise RuntimeError(f"unsupported operation ({op}): some elements of the input tensor "
                           "and the written-to tensor refer to a single memory location (an "
                           "expanded tensor). Please clone() the tensor before performing "
                           "the operation.")
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
    history becomes fn.put(old base, t), up the chain of views.  `make(data, grad_fn,
    version)` builds a tensor (Tensor._make)."""
    base, fn, _ = t._view
    if GRAD_MODE.enabled and (t._requires_grad or base._requires_grad):
        old = make(base._data, base.grad_fn, None)
        old._requires_grad = base._requires_grad
        value = make(t._data, t.grad_fn, None)
        value._requires_grad = t._requires_grad
        new = fn.put(old, value)
        base._rebase(new.grad_fn, new._requires_grad)  # a retained gradient follows
    if base._view is not None:
        propagate(base, make)
        base._view = base._view[:2] + (base._version.value,)
    if GRAD_MODE.enabled:
        _regraph(t)  # the view is now its base's new history seen through fn
    else:  # under no_grad autograd does not see the change: graphs stay as they were
        t._view = (base, fn, t._version.value)


# ---- torch's view methods on eager tensors (Tensor's bases: ViewMethods, ArrayMixin) -------

def viewed(t, fn):
    """fn(t) as a view of eager tensor `t`, or None where numpy cannot view it."""
    if t._view is not None and GRAD_MODE.enabled:
        refresh(t)
    return view_of(t, fn, type(t)._make)


def _shape_arg(shape) -> tuple:
    """torch's and NumPy's shape arguments: `f(2, 3)`, `f((2, 3))`, `f(6)`."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def permutation(axes, ndim: int) -> tuple:
    """NumPy's transpose axes (None: reversed; negatives allowed) as a permutation."""
    if axes is None:
        return tuple(range(ndim))[::-1]
    perm = tuple(norm_dim(int(a), max(ndim, 1)) for a in axes)
    if sorted(perm) != list(range(ndim)):
        raise ValueError(f"axes {tuple(axes)} don't match an array of {ndim} dimensions")
    return perm


def transposed(axes, ndim: int) -> tuple:
    """The permutation of `transpose(*axes)`: torch's swap of exactly two dims, or NumPy's
    (no argument or None: reversed; a tuple, or one int per axis)."""
    if len(axes) == 2 and all(isinstance(a, (int, np.integer)) for a in axes):
        return _swap(ndim, *axes)
    if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
        axes = axes[0]
    return permutation(axes or None, ndim)


def _swap(ndim: int, d0, d1) -> tuple:
    perm = list(range(ndim))
    if ndim:
        a, b = norm_dim(d0, ndim), norm_dim(d1, ndim)
        perm[a], perm[b] = perm[b], perm[a]
    return tuple(perm)


def moved(ndim: int, source, destination) -> list:
    """The permutation of movedim / np.moveaxis: the moved dims at their destinations,
    the others in order."""
    def dims(d):
        return [norm_dim(a, max(ndim, 1)) for a in (d if isinstance(d, (tuple, list)) else (d,))]
    src, dst = dims(source), dims(destination)
    if len(src) != len(dst):
        raise ValueError("movedim: source and destination must have the same number of dims")
    if not ndim:  # torch's 0-d tensor: dims 0 and -1 (checked) move nothing
        return []
    order = [n for n in range(ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return order


def _squeezed(shape, dims) -> tuple:
    """torch's squeeze: every size-one dim, or the listed ones whose size is one."""
    if dims is None:
        return tuple(n for n in shape if n != 1)
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    drop = {norm_dim(d, max(len(shape), 1)) for d in dims}
    return tuple(n for i, n in enumerate(shape) if not (i in drop and n == 1))


class ViewMethods:
    """Eager tensors' shape methods that return views, as PyTorch's (module docstring);
    traced values keep ArrayMixin's functional ones."""

    __slots__ = ()

    def view(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (type, np.dtype, str)):
            return super().view(*shape)  # view(dtype): the bits reinterpreted
        shape = shape or (self.shape,)  # NumPy's view(): the same shape
        out = viewed(self, Reshape(_shape_arg(shape)))
        if out is None:
            super().reshape(*shape)  # raises for sizes that do not match
            raise RuntimeError("view size is not compatible with input tensor's size and stride "
                               "(at least one dimension spans across two contiguous subspaces)."
                               " Use .reshape(...) instead.")
        return out

    def reshape(self, *shape, order="C"):
        """A view where numpy can reshape without a copy, else a copy (torch's); NumPy's
        `order="F"` reshape is a copy."""
        out = viewed(self, Reshape(_shape_arg(shape))) if order == "C" else None
        return out if out is not None else super().reshape(*shape, order=order)

    def view_as(self, other):
        return self.view(other.shape)

    def reshape_as(self, other):
        return self.reshape(other.shape)

    def flatten(self, start_dim=0, end_dim=-1, *, order="C"):
        if isinstance(start_dim, str) or order != "C":  # NumPy's flatten(order) copies
            return super().flatten(start_dim, end_dim, order=order)
        shape, n = self.shape, max(len(self.shape), 1)
        s, e = norm_dim(start_dim, n), norm_dim(end_dim, n)
        if s > e:
            raise ValueError("flatten() has invalid args: start_dim cannot come after end_dim")
        merged = int(np.prod(shape[s:e + 1], dtype=np.int64))
        return self.reshape(shape[:s] + (merged,) + shape[e + 1:] if shape else (1,))

    def ravel(self, order="C"):
        return self.reshape(-1) if order == "C" else super().ravel(order)

    def unsqueeze(self, dim):
        d = norm_dim(dim, len(self.shape) + 1)
        return viewed(self, Reshape(self.shape[:d] + (1,) + self.shape[d:],
                                    "UnsqueezeBackward0"))

    def expand_dims(self, axis):
        shape = np.expand_dims(np.broadcast_to(np.int8(0), self.shape), axis).shape
        return viewed(self, Reshape(shape, "UnsqueezeBackward0"))

    def squeeze(self, axis=None, *, dim=None):
        dims = dim if axis is None else axis
        name = "SqueezeBackward0" if dims is None else (
            "SqueezeBackward2" if isinstance(dims, (tuple, list)) else "SqueezeBackward1")
        return viewed(self, Reshape(_squeezed(self.shape, dims), name))

    @property
    def T(self):
        return viewed(self, Permute(permutation(None, len(self.shape))))

    @property
    def mT(self):
        if len(self.shape) < 2:
            raise ValueError("mT: the tensor must have at least 2 dimensions")
        return viewed(self, Permute(_swap(len(self.shape), -2, -1), "TransposeBackward0"))

    def t(self):
        if len(self.shape) > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dimensions, but self is "
                             f"{len(self.shape)}D")
        return viewed(self, Permute(permutation(None, len(self.shape)), "TBackward0"))

    def transpose(self, *axes):
        """torch's swap of exactly two dims, or NumPy's permutation (ArrayMixin.transpose)."""
        if len(axes) == 2 and all(isinstance(a, (int, np.integer)) for a in axes):
            return self.swapaxes(*axes)  # torch's node name for a swap
        return viewed(self, Permute(transposed(axes, len(self.shape))))

    def swapaxes(self, axis1, axis2):
        return viewed(self, Permute(_swap(len(self.shape), axis1, axis2), "TransposeBackward0"))

    swapdims = swapaxes

    def permute(self, *dims):
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return viewed(self, Permute(permutation(dims, len(self.shape))))

    def movedim(self, source, destination):
        return viewed(self, Permute(moved(len(self.shape), source, destination)))

    def expand(self, *sizes):
        return viewed(self, Expand(expanded_shape(self.shape, _shape_arg(sizes))))

    def split(self, split_size=None, dim=0, *, split_size_or_sections=None):
        """torch's split, each piece a view (narrow); `split_size_or_sections` is torch's
        keyword name for the sizes."""
        split_size = split_size_or_sections if split_size is None else split_size
        d = norm_dim(dim, max(len(self.shape), 1))
        sizes = split_sizes(split_size, self.shape[d])
        starts = np.cumsum([0] + sizes[:-1]).tolist()
        return tuple(self.narrow(d, s, n) for s, n in zip(starts, sizes))
