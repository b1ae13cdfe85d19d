"""The eager `Tensor`: numpy underneath, define-by-run autograd on top (PyTorch's model).

>>> a, b, c, d = (tensor(v, requires_grad=True) for v in (1.0, 2.0, 3.0, 4.0))
>>> z = (a + b) + c * d
>>> z
tensor(15., grad_fn=<AddBackward0>)
>>> z.backward()
>>> a.grad, c.grad, d.grad
(tensor(1.), tensor(4.), tensor(3.))
"""
from __future__ import annotations

import copy
import functools
import threading
import warnings
import weakref

import numpy as np

from tracegrad.ir import ShapedArray
from tracegrad.ir.core import is_float

from . import dtypes
from . import indexing as _indexing
from . import numpy as tnp
from . import torch_methods
from .array import ArrayMixin
from .fast_ops import BROADCAST, evaluate, install_fast_paths
from .saved import reads
from . import views
from .autograd import (_FIXED_CLASS, GRAD_MODE, NODE_CLASSES, AccumulateGrad, Version,
                       accumulator, no_grad, node_class, run_backward, RemovableHandle)


class EagerTrace:
    """The trace object of eager tensors (level 0: any traced value outranks it).

    `process` computes the primitive's numpy implementation on the unboxed data
    and, when grad mode is on and an operand requires grad, records the node.
    This is every eager operation's path, kept to one pass over the operands.
    """

    level = 0

    def process(self, prim, args, params):
        if prim.multiple_results:  # control flow: loops over the tensors (eager_control.py)
            from . import eager_control
            return eager_control.run(prim, args, params, _as_tensor)
        datas, grad = [], False
        for a in args:
            if isinstance(a, Tensor):
                data = a._data
                if a._view is not None and not data.flags.c_contiguous:
                    # a strided view (a column) is computed on as the copy it once was, so
                    # that eager results stay the interpreter's bit for bit
                    data = np.ascontiguousarray(data)
                datas.append(data)
                grad = grad or a._requires_grad
            else:
                datas.append(a)
        out = prim.run(*datas, **params)
        if prim.kind == "structural":
            out = _fresh(out, datas)
        node, version = None, _shared_version(out, args) or Version()
        if grad and GRAD_MODE.enabled and prim.records_backward and out.dtype.kind == "f":
            node = _record(prim, args, datas, params, out, version)
        return Tensor._make(out, node, version)

    def exact(self, prim, x, y):
        """`process(prim, (x, y), {})` for an exactly rounded float primitive (add, sub,
        mul, div) on tensors or arrays of one float dtype whose shapes are equal or rank 0
        (fast_ops checks it): the same result, node and version counter, without the
        general path's questions (a fresh float result, never an operand's buffer)."""
        x_is, y_is = isinstance(x, Tensor), isinstance(y, Tensor)
        xd, yd = x._data if x_is else x, y._data if y_is else y
        out = evaluate(prim, xd, yd)
        node, version = None, Version()
        if GRAD_MODE.enabled and ((x_is and x._requires_grad) or (y_is and y._requires_grad)):
            node = _record(prim, (x, y), (xd, yd), {}, out, version)
        return _new_tensor(out, node, version)

    def broadcast(self, x, shape):
        """`process(broadcast, (x,), {"shape": shape})` for tensor `x` whose shape
        broadcasts to the tuple `shape` (the caller checked): a fresh copy, as the impl."""
        data = x._data
        out = np.empty(shape, data.dtype)
        out[...] = data
        node, version = None, Version()
        if x._requires_grad and GRAD_MODE.enabled and out.dtype.kind == "f":
            node = _record(BROADCAST, (x,), (data,), {"shape": shape}, out, version)
        return _new_tensor(out, node, version)

    def __repr__(self):
        return "EagerTrace(level=0)"


EAGER = EagerTrace()


class ConversionError(RuntimeError, ValueError):
    """A tensor of several elements where one value was needed (`item()`, `bool()`, `float()`):
    PyTorch raises RuntimeError there and NumPy ValueError, so this is both."""


def _fresh(out, datas):
    # Results own their buffer, so that in-place updates of one tensor cannot
    # change another behind its version counter.  Structural numpy impls may
    # return views (a contiguous transpose); stop_gradient returns its operand,
    # which is then shared on purpose (see `_shared_version`).
    if any(isinstance(d, np.ndarray) and d is not out and np.may_share_memory(out, d)
           for d in datas):
        return out.copy()
    return out


def _shared_version(out, args):
    # A primitive may return its operand's buffer (stop_gradient): the result
    # then shares that tensor's version counter, as a PyTorch view would.
    for a in args:
        if isinstance(a, Tensor) and a._data is out:
            return a._version
    return None


def _edge(a):
    if not isinstance(a, Tensor) or not a._requires_grad:
        return None
    return a.grad_fn if a.grad_fn is not None else accumulator(a)


def _record(prim, args, datas, params, out, out_version):
    """The backward node of `prim` on `args` giving `out` (whose tensor will have
    `out_version`): its edges, and the versions of the values its backward reads
    (saved.reads), checked when it runs."""
    edges = []
    for a in args:  # _edge, inlined: this is every recorded operation's path
        if isinstance(a, Tensor) and a._view is not None:
            views.refresh(a)  # a view whose base changed in place: its graph first
        if not isinstance(a, Tensor) or not a._requires_grad:
            edges.append(None)
        elif a.grad_fn is not None:
            edges.append(a.grad_fn)
        else:
            acc = a._accumulator() if a._accumulator is not None else None
            edges.append(acc if acc is not None else accumulator(a))
    read = reads(prim, datas, out, params, tuple([e is not None for e in edges]))
    versions = [(a._version, a._version.value) for a, r in zip(args, read)
                if r and isinstance(a, Tensor)]
    if read[-1]:
        versions.append((out_version, out_version.value))
    cls = _FIXED_CLASS.get(prim) or node_class(prim, np.ndim(datas[0]), params)
    # params is bind's own keyword dict (or an equation's, never mutated): no copy
    node = cls(prim, params, [*args, out], versions, edges)
    node.reads = any(read)
    return node


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor._make(np.array(x))


def _kept_accumulator(leaf):
    """The leaf's AccumulateGrad, kept alive by the leaf (its hooks live there)."""
    acc = accumulator(leaf)
    leaf._accumulator = functools.partial(_identity, acc)  # called like the weakref it replaces
    return acc


def _identity(x):
    return x


def _unpickle_tensor(data, requires_grad):
    t = _new_tensor(data)
    t._requires_grad = requires_grad
    return t


def _new_tensor(data: np.ndarray, grad_fn=None, version=None) -> Tensor:
    """`Tensor._make(data, grad_fn)` for a fresh array, without the classmethod's binding
    (the operators' and the backward's hot paths)."""
    t = _TENSOR_NEW(Tensor)
    t._data, t._aval, t._grad, t.grad_fn = data, None, None, grad_fn
    t._requires_grad = grad_fn is not None
    t._version = version if version is not None else Version()
    t._retains_grad, t._accumulator, t._view = False, None, None
    return t


def _format_data(data: np.ndarray) -> str:
    return np.array2string(data, separator=", ", prefix="tensor(", threshold=1000)


class Tensor(views.ViewMethods, ArrayMixin):
    """An eager array that records the operations it takes part in, for `backward()`."""

    __slots__ = ("_data", "_aval", "_grad", "grad_fn", "_requires_grad", "_version",
                 "_retains_grad", "_accumulator", "_view", "__weakref__")
    _tg_trace = EAGER

    def __init__(self, data, requires_grad=False, dtype=None):
        arr = np.array(data.data if isinstance(data, Tensor) else data, dtype=dtype, copy=True)
        if arr.dtype.kind in "OUSV":
            raise TypeError(f"tensor(): cannot make a tensor from a {type(data).__name__} "
                            f"({data!r:.40}): numpy converts it to an array of dtype {arr.dtype}. "
                            "Pass a number, (nested) lists of numbers or a numeric array.")
        native = dtypes.check(arr.dtype, "tensor")
        self._init(arr if arr.dtype == native else arr.astype(native), None, None)
        self.requires_grad = requires_grad

    def _init(self, data, grad_fn, version):
        self._data, self._aval, self._grad, self.grad_fn = data, None, None, grad_fn
        self._requires_grad = grad_fn is not None
        self._version = version if version is not None else Version()
        self._retains_grad, self._accumulator, self._view = False, None, None

    @classmethod
    def _make(cls, data, grad_fn=None, version=None):
        """Wrap a result array without copying (results are fresh buffers)."""
        t = cls.__new__(cls)  # `_init`, inlined: every eager operation comes here
        t._data = data if type(data) is np.ndarray else np.asarray(data)
        t._aval, t._grad, t.grad_fn = None, None, grad_fn
        t._requires_grad = grad_fn is not None
        t._version = version if version is not None else Version()
        t._retains_grad, t._accumulator, t._view = False, None, None
        return t

    @property
    def grad(self):
        """The accumulated gradient (a tensor of this tensor's shape and dtype), or None."""
        if self.grad_fn is not None and not self._retains_grad and self._grad is None:
            warnings.warn("The .grad attribute of a Tensor that is not a leaf Tensor is being "
                          "accessed. Its .grad attribute won't be populated during "
                          "autograd.backward(). If you indeed want the gradient for a non-leaf "
                          "Tensor, use .retain_grad() on the non-leaf Tensor.", UserWarning,
                          stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value):
        # PyTorch's checks on assignment; a numpy array is taken as a tensor of it
        if value is not None:
            if isinstance(value, np.ndarray):
                value = Tensor._make(value)
            elif not isinstance(value, Tensor):
                raise TypeError("assigned grad expected to be a Tensor or None but got grad "
                                f"of type {type(value).__name__}")
            if value is self:
                raise RuntimeError("can't assign Variable as its own grad")
            if value.shape != self.shape:
                raise RuntimeError(f"assigned grad has data of a different size: "
                                   f"{value.shape} for a tensor of shape {self.shape}")
            if value.dtype != self.dtype:
                raise RuntimeError(f"assigned grad has data of a different type: "
                                   f"{value.dtype} for a tensor of dtype {self.dtype}")
        self._grad = value

    # ---- boxed-value protocol (ir.ops, ir.builder) ------------------------------------
    def _tg_concrete(self):
        return self.data

    @property
    def data(self) -> np.ndarray:
        """The numpy buffer (changes through it bypass autograd's checks, as in PyTorch)."""
        return self._data

    @data.setter
    def data(self, value):
        self._data = np.asarray(value.data if isinstance(value, Tensor) else value)
        dtypes.check(self._data.dtype, "tensor")
        self._aval = None

    @property
    def aval(self) -> ShapedArray:
        if self._aval is None:  # cached: in-place operations keep shape and dtype
            self._aval = ShapedArray(self._data.shape, self._data.dtype)
        return self._aval

    @property
    def shape(self):
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self):
        return self._data.ndim

    # ---- autograd attributes -----------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        if self._view is not None and GRAD_MODE.enabled:
            views.refresh(self)  # a view whose base changed in place: its flags follow
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if self.grad_fn is not None:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If "
                               "you want to use a computed variable in a subgraph that doesn't "
                               "require differentiation use var_no_grad = var.detach().")
        if flag and not is_float(self.dtype):
            raise RuntimeError(f"Only Tensors of floating point dtype can require gradients "
                               f"(got {self.dtype})")
        self._requires_grad = bool(flag)

    def requires_grad_(self, requires_grad=True):
        # torch: on a result, requires_grad_(True) is a no-op, the attribute's assignment raises
        if not (requires_grad and self.grad_fn is not None):
            self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    # ---- copies and pickling, as PyTorch's: a new leaf, never the original's accumulator ----
    def __copy__(self):
        """A new leaf sharing this tensor's buffer and version counter (PyTorch's copy.copy)."""
        t = _new_tensor(self._data, version=self._version)
        t._requires_grad = self._requires_grad
        return t

    def __deepcopy__(self, memo):
        """A new leaf with copies of the data and of `.grad`; only leaves may be deep-copied."""
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment.")
        t = _new_tensor(self._data.copy())
        t._requires_grad = self._requires_grad
        memo[id(self)] = t
        if self._grad is not None:
            t._grad = copy.deepcopy(self._grad, memo)
        return t

    def __reduce__(self):
        # pickles the values and the flag; the graph, .grad and hooks stay behind
        return _unpickle_tensor, (self._data, self._requires_grad)

    def retain_grad(self):
        """Keep the gradient of this non-leaf in `.grad` during backward."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None and not self._retains_grad:
            self.grad_fn.retained = weakref.ref(self)
            self._retains_grad = True

    def register_hook(self, hook):
        """Call `hook(grad)` whenever the gradient of this tensor is computed; a tensor it
        returns replaces the gradient (of a leaf: before it is accumulated in `.grad`; of
        a non-leaf: before it flows on).  Returns a handle whose `remove()` takes it off.

        >>> import tracegrad as tg
        >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
        >>> h = x.register_hook(lambda g: g * 10)
        >>> (x * x).sum().backward()
        >>> x.grad.tolist()
        [20.0, 40.0]
        >>> h.remove()
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        node = self.grad_fn if self.grad_fn is not None else _kept_accumulator(self)
        if node.hooks is None:
            node.hooks = {}
        return RemovableHandle(node.hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call `hook(self)` after a backward has accumulated this leaf's `.grad`."""
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        acc = _kept_accumulator(self)
        if acc.post_hooks is None:
            acc.post_hooks = {}
        return RemovableHandle(acc.post_hooks, hook)

    def _rebase(self, grad_fn, requires_grad):
        """A new history after an in-place change; a retained gradient follows it (the
        gradient of the new value, as PyTorch's)."""
        if self._retains_grad and self.grad_fn is not None:
            self.grad_fn.retained = None
        self.grad_fn, self._requires_grad = grad_fn, requires_grad
        if self._retains_grad and grad_fn is not None:
            grad_fn.retained = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def detach(self):
        """The same data (shared, with its version counter) cut from the graph."""
        return Tensor._make(self.data, None, self._version)

    def detach_(self):
        """Cut this tensor from the graph in place: it becomes a leaf that does not
        require grad (PyTorch's; not for views, whose history is their base's)."""
        if self._view is not None:
            raise RuntimeError("detach_(): cannot detach a view in place; use detach()")
        self.grad_fn, self._requires_grad = None, False
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into the `.grad` of every leaf requiring grad (only
        of `inputs`, tensors or a sequence of them, where given).

        `retain_graph` defaults to `create_graph`; a freed graph cannot be reused.
        """
        backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph,
                 inputs=inputs)

    # ---- conversion to Python / numpy ---------------------------------------------------
    def _scalar(self, what):
        if self.data.size != 1:
            raise ConversionError(f"a Tensor with {self.data.size} elements cannot be converted "
                                  f"to a Python {what}")
        return self.data.reshape(()).item()

    def item(self):
        return self._scalar("scalar")

    def __float__(self):
        return float(self._scalar("float"))

    def __int__(self):
        return int(self._scalar("int"))

    def __bool__(self):
        if self.data.size != 1:
            raise ConversionError(f"The truth value of a Tensor with {self.data.size} elements "
                                  "is ambiguous. Use a.any() or a.all()")
        return bool(self.data.reshape(()))

    def __index__(self):
        if not np.issubdtype(self.dtype, np.integer) or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.data.reshape(()))

    def tolist(self):
        return self.data.tolist()

    def numpy(self, force: bool = False):
        """The tensor's data (shared, not copied); `force=True` allows a tensor that
        requires grad and returns a copy, as PyTorch's."""
        if force:
            return self.data.copy()
        self._check_detached()
        return self.data

    def __array__(self, dtype=None, copy=None):
        # Values only: every supported numpy function dispatches to tracegrad.numpy
        # first (__array_function__), so this is reached by explicit conversions,
        # which would drop the graph silently: PyTorch refuses them, and so do we.
        self._check_detached()
        return self.data if dtype is None else self.data.astype(dtype)

    def _check_detached(self):
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")

    def __format__(self, spec):
        return format(self.item(), spec) if spec and self.data.size == 1 else repr(self)

    def __repr__(self):
        extras = []
        if self.dtype in (np.float32, np.int32):
            extras.append(f"dtype={self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name()}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([_format_data(self.data)] + extras) + ")"

    # ---- in-place operations -----------------------------------------------------------
    def _check_inplace(self, op: str):
        if self.requires_grad and self.grad_fn is None and GRAD_MODE.enabled:
            raise RuntimeError(f"a leaf Variable that requires grad is being used in an "
                               f"in-place operation ({op}); wrap it in `with no_grad():`")

    def _assign(self, op: str, value, index=Ellipsis):
        self._check_inplace(op)
        src = value.data if isinstance(value, Tensor) else value
        if index is Ellipsis:
            src = np.asarray(src)
            if np.broadcast_shapes(src.shape, self.shape) != self.shape:
                raise ValueError(f"{op}: result of shape {src.shape} does not fit the tensor's "
                                 f"shape {self.shape}")
            np.copyto(self.data, src, casting="same_kind")
        else:
            self.data[index] = src
        self._version.bump()
        return self

    def _update(self, op: str, fn, value, index=Ellipsis):
        """`self = fn(self, value)` in place.  When autograd must see it (grad mode, and
        self or value requires grad) the new value is computed with recording from a
        snapshot of self, and self takes the result's grad_fn (PyTorch's rebase).  A view
        also rebases its base (views.py)."""
        if self._view is None:
            return self._update_own(op, fn, value, index)
        views.check_inplace(self, op)
        if GRAD_MODE.enabled:
            views.refresh(self)
        self._update_own(op, fn, value, index)
        views.propagate(self, Tensor._make)
        return self

    def _update_own(self, op: str, fn, value, index=Ellipsis):
        if not (GRAD_MODE.enabled and (self._requires_grad or _requires_grad(value))):
            if index is not Ellipsis:
                return self._assign(op, value, _plain_index(index))
            if _ufunc_in_place(self, fn, value):
                self._version.bump()
                return self
            return self._assign(op, _no_grad(fn, self, value))
        if self.grad_fn is None and self._requires_grad:
            self._check_inplace(op)  # a leaf that requires grad: PyTorch's error
        # `old` aliases self's buffer; it gets a copy only if a node saved its values
        old = Tensor._make(self.data, self.grad_fn, _AliasVersion())
        new = fn(old, value)
        if old._version.saved:
            old._data = self.data.copy()
        if isinstance(new, np.ndarray) or (isinstance(new, Tensor) and new.grad_fn is None):
            # the whole tensor replaced by a constant or by a leaf: the old history stays
            # linked with zero gradient (PyTorch's CopySlices), the leaf gets its gradient
            new = _overwrite(old, new)
        if not isinstance(new, Tensor):
            raise TypeError(f"{op}: cannot store a traced value into an eager tensor")
        if new.shape != self.shape:
            raise ValueError(f"{op}: result of shape {new.shape} does not fit the tensor's "
                             f"shape {self.shape}")
        np.copyto(self.data, new.data, casting="same_kind")
        self._rebase(new.grad_fn, new._requires_grad)
        self._version.bump()
        return self

    def __iadd__(self, other):
        return self._update("+=", tnp.add, other)

    def __isub__(self, other):
        return self._update("-=", tnp.subtract, other)

    def __imul__(self, other):
        return self._update("*=", tnp.multiply, other)

    def __itruediv__(self, other):
        return self._update("/=", tnp.divide, other)

    def __ipow__(self, other):
        return self._update("**=", tnp.power, other)

    def __ifloordiv__(self, other):
        return self._update("//=", tnp.floor_divide, other)

    def __imod__(self, other):
        return self._update("%=", tnp.remainder, other)

    def __iand__(self, other):
        return self._update("&=", tnp.bitwise_and, other)

    def __ior__(self, other):
        return self._update("|=", tnp.bitwise_or, other)

    def __ixor__(self, other):
        return self._update("^=", tnp.bitwise_xor, other)

    def __ilshift__(self, other):
        return self._update("<<=", tnp.left_shift, other)

    def __irshift__(self, other):
        return self._update(">>=", tnp.right_shift, other)

    def __getitem__(self, index):
        if views.is_basic(index):  # a view sharing storage, as PyTorch's (views.py)
            if self._view is not None and GRAD_MODE.enabled:
                views.refresh(self)
            out = views.view_of(self, views.Index(index), Tensor._make)
            if out is not None:
                return out
        return _indexing.getitem(self, index)

    def __setitem__(self, index, value):
        self._update("__setitem__", lambda old, v: _indexing.setitem(old, index, v), value, index)

    # torch's in-place spellings (add_, sub_, mul_ and div_: TorchMethods', through the
    # operators above)
    def pow_(self, exponent):
        return self._update("pow_", tnp.power, exponent)

    def exp_(self):
        return self._update("exp_", lambda old, _: tnp.exp(old), None)

    def clamp_(self, min=None, max=None):
        return self._update("clamp_", lambda old, _: torch_methods.clamp(old, min, max), None)

    clip_ = clamp_

    def zero_(self):
        return self._update("zero_", _overwrite, np.zeros((), self.dtype))

    def fill_(self, value):
        return self._update("fill_", _overwrite, value)

    def copy_(self, src):
        return self._update("copy_", _overwrite, src)

    # torch's meanings of names that ArrayMixin (shared with traced values) gives NumPy's
    clip = torch_methods.TorchMethods.clamp  # clamp's gradient: x's at a bound, not shared

    def clone(self):
        """A C-ordered copy, its backward node torch's CloneBackward0 (the identity)."""
        if self._view is not None and GRAD_MODE.enabled:
            views.refresh(self)
        out = _new_tensor(np.array(self._data, order="C", copy=True))
        if GRAD_MODE.enabled and self._requires_grad:
            edge = self.grad_fn if self.grad_fn is not None else accumulator(self)
            out.grad_fn = NODE_CLASSES["CloneBackward0"](_CLONE, {}, [None, None], [], [edge])
            out.grad_fn.reads = False
            out._requires_grad = True
        return out

    def diagonal(self, offset=0, axis1=0, axis2=1, *, dim1=None, dim2=None):
        """torch's diagonal: a view sharing storage (writes show through both ways);
        NumPy's is a read-only view."""
        fn = views.Diagonal(offset, axis1 if dim1 is None else dim1, axis2 if dim2 is None else dim2,
                      self.ndim)
        out = views.viewed(self, fn)
        return out if out is not None else tnp.diagonal(self, offset, fn.dim1, fn.dim2)


def _overwrite(old, value):
    """`value` broadcast to old's shape, as an expression of `old` whose gradient to it is
    zero (PyTorch's fill_/copy_ on a result that requires grad: the history before is
    cut, a tensor `value` gets the gradient)."""
    return tnp.where(np.zeros(old.shape, bool), old, value)


class _Clone:
    """The `prim` of clone's backward node: the identity (saves nothing)."""

    name = "clone"
    selective_vjp = False

    @staticmethod
    def vjp(g, out, unused):
        return (g,)


_CLONE = _Clone()


install_fast_paths(Tensor, EAGER)  # the commonest operators skip tracegrad.numpy's layers
_TENSOR_NEW = Tensor.__new__




class _AliasVersion(Version):
    """The version counter of the pre-update alias in `Tensor._update`: nodes read it when
    they save the alias (its values are needed by backward), which `saved` records."""

    __slots__ = ("_value", "saved")

    def __init__(self):
        self._value, self.saved = 0, False

    @property
    def value(self):
        self.saved = True
        return self._value

    @value.setter
    def value(self, v):
        self._value = v


# tracegrad.numpy's functions of the in-place operators, and numpy's ufuncs for them
_IN_PLACE_UFUNCS = {tnp.add: np.add, tnp.subtract: np.subtract, tnp.multiply: np.multiply,
                    tnp.divide: np.divide}


def _ufunc_in_place(t: Tensor, fn, value) -> bool:
    """`t op= value` by numpy's ufunc straight into t's buffer (no temporary, no copy),
    where numpy's result has t's shape; False when the general path must run."""
    ufunc = _IN_PLACE_UFUNCS.get(fn)
    if isinstance(value, Tensor):
        value = value.data
    elif ufunc is None or not isinstance(value, (int, float, bool, np.ndarray, np.generic)):
        return False
    try:
        if ufunc is None or np.broadcast_shapes(np.shape(value), t.shape) != t.shape:
            return False
    except ValueError:  # the general path raises tracegrad's error
        return False
    with np.errstate(all="ignore"):  # as the primitives compute (inf and nan, no warnings)
        ufunc(t.data, value, out=t.data, casting="same_kind")
    return True


def _requires_grad(value) -> bool:
    """Whether an in-place update's operand (a tensor, or a tuple of a method's arguments:
    torch_methods._in_place) requires grad."""
    if type(value) is tuple:
        return any(getattr(v, "_requires_grad", False) for v in value)
    return getattr(value, "_requires_grad", False)


def _plain_index(index):
    """An index for numpy's own setitem: tensors in it become their arrays."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    return index.data if isinstance(index, Tensor) else index


def _no_grad(fn, *args):
    # The new value of an in-place update is computed without recording: the
    # operation is only allowed where no graph could depend on it.
    with no_grad():
        return fn(*args)


def tensor(data, requires_grad=False, dtype=None) -> Tensor:
    """A new leaf tensor holding a copy of `data` (dtype as `np.asarray` gives it).

    >>> import tracegrad as tg
    >>> tg.tensor([1.0, 2.0], requires_grad=True)
    tensor([1., 2.], requires_grad=True)
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def zero_grad(tensors, set_to_none=True):
    """Reset the `.grad` of `tensors` (to None, or to zeros in place)."""
    for t in tensors:
        if t.grad is None:
            continue
        if set_to_none:
            t.grad = None
        else:  # the same gradient tensor, zeroed in place (PyTorch's)
            if t._grad.grad_fn is not None:
                t._grad.detach_()
            t._grad.zero_()


# ---- backward ----------------------------------------------------------------------------

def _seed(output: Tensor, gradient, create_graph: bool):
    if gradient is None:
        if output.data.size != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs "
                               f"(the output has shape {output.shape}); pass `gradient`")
        g = np.empty(output.shape, output.dtype)  # np.ones, without its Python layer
        g.fill(1)
    else:
        g = gradient.data if isinstance(gradient, Tensor) and not create_graph else gradient
        g = g if isinstance(g, Tensor) else np.asarray(g, output.dtype)
        if tuple(g.shape) != output.shape:
            raise RuntimeError(f"Mismatch in shape: grad_output has a shape of {tuple(g.shape)} "
                               f"and output has a shape of {output.shape}")
    return Tensor._make(g) if create_graph and not isinstance(g, Tensor) else g


def _box(data, node):
    return Tensor._make(np.asarray(data), node)


def _as_tensor_grad(g, like: Tensor, create_graph: bool, owned=False) -> Tensor:
    if isinstance(g, Tensor):  # a cotangent may be shared (add's VJP returns g twice): a
        # copy, differentiable under create_graph (PyTorch's AccumulateGrad clones too)
        return g.clone() if create_graph else Tensor._make(g.data.copy())
    # Cotangent arrays may be shared between operands (add's VJP returns g twice): copy,
    # unless the engine says that no one else holds this one.
    data = like._data
    if type(g) is np.ndarray and g.dtype == data.dtype and g.shape == data.shape:
        return Tensor._make(g if owned else g.copy())
    return Tensor._make(np.array(g, dtype=data.dtype, copy=True).reshape(data.shape))


# Backward passes on several threads may reach one leaf at once: its first gradient is
# set and later ones are added (np.add releases the GIL) under this lock, as PyTorch's
# AccumulateGrad holds a mutex.  Reentrant: a create_graph sum is an eager operation,
# which could reach user code that accumulates on the same thread.
_ACCUMULATING = threading.RLock()


def _plain_sink(acc: AccumulateGrad, g, owned):
    """`_leaf_sink(False)`, with a first gradient of the leaf's dtype and shape inlined."""
    leaf = acc.variable
    if not leaf._requires_grad:  # switched off since the graph was built: no gradient
        return
    data = leaf._data
    with _ACCUMULATING:
        if (leaf.grad is None and type(g) is np.ndarray and g.dtype == data.dtype
                and g.shape == data.shape):
            leaf._grad = _new_tensor(g if owned else g.copy())
        else:
            _accumulate(leaf, g, owned, False)


def _leaf_sink(create_graph: bool):
    if not create_graph:
        return _plain_sink

    def sink(acc: AccumulateGrad, g, owned):
        leaf = acc.variable
        if not leaf._requires_grad:
            return
        with _ACCUMULATING:
            _accumulate(leaf, g, owned, True)
    return sink


def _accumulate(leaf, g, owned, create_graph: bool):
    """Add `g` into the leaf's `.grad` (hold _ACCUMULATING)."""
    if leaf.grad is None:
        leaf._grad = _as_tensor_grad(g, leaf, create_graph, owned)
    elif create_graph or leaf.grad.requires_grad:
        leaf._grad = leaf._grad + _as_tensor_grad(g, leaf, create_graph)
    else:  # summed into the existing buffer: no copy of g first
        data = leaf.grad.data
        np.add(data, np.reshape(g.data if isinstance(g, Tensor) else g, data.shape), out=data,
               casting="same_kind")
        leaf.grad._version.bump()


def _roots(outputs, gradients, create_graph):
    if len(gradients) != len(outputs):
        raise RuntimeError(f"grad_tensors/grad_outputs: got {len(outputs)} tensors and "
                           f"{len(gradients)} gradients")
    roots, seeds = [], []
    for i, (out, grad) in enumerate(zip(outputs, gradients)):
        if not out.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not "
                               "have a grad_fn")
        roots.append(out.grad_fn if out.grad_fn is not None else accumulator(out))
        seeds.append(_seed(out, grad, create_graph))
    return roots, seeds


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate the gradients of `tensors` (weighted by `grad_tensors`) into the leaves;
    as torch.autograd.backward, each is a tensor or a sequence of them.  Given `inputs`,
    only their `.grad` accumulates (a non-leaf input's too)."""
    tensors = _as_sequence(tensors)
    grad_tensors = [None] * len(tensors) if grad_tensors is None else _as_sequence(grad_tensors)
    retain_graph = create_graph if retain_graph is None else retain_graph
    roots, seeds = _roots(tensors, grad_tensors, create_graph)
    sink, only = _leaf_sink(create_graph), {}
    if inputs is not None:
        sink, only = _only_inputs(_as_sequence(inputs), create_graph)
    mode = GRAD_MODE.enabled
    GRAD_MODE.enabled = create_graph  # only a create_graph backward records its own graph
    try:
        run_backward(roots, seeds, retain_graph=retain_graph, create_graph=create_graph,
                     box=_box, sink=sink, inputs=only.get("targets"),
                     capture=only.get("capture"))
    finally:
        GRAD_MODE.enabled = mode


def _only_inputs(inputs, create_graph):
    """(sink, {targets, capture}) for a backward that accumulates into `inputs` alone."""
    if not inputs:
        raise RuntimeError("backward(): 'inputs' argument to backward() cannot be empty.")
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("backward(): one of the inputs does not require grad")
    plain, wanted = _leaf_sink(create_graph), {id(t) for t in inputs if t.is_leaf}

    def sink(acc, g, owned):
        if id(acc.variable) in wanted:
            plain(acc, g, owned)

    def into(t):
        def capture(g):
            if g is not None:
                g = _as_tensor_grad(g, t, create_graph)
                t._grad = g if t._grad is None else t._grad + g
        return capture

    capture = {t.grad_fn: into(t) for t in inputs if not t.is_leaf}
    targets = [accumulator(t) if t.is_leaf else t.grad_fn for t in inputs]
    return sink, {"targets": targets, "capture": capture or None}


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False):
    """The gradients of `outputs` with respect to `inputs`, without touching `.grad`.

    As `torch.autograd.grad`: `outputs`, `inputs` and `grad_outputs` are tensors or
    sequences of them; inputs may be leaves or intermediate results; an input the
    outputs do not depend on is an error unless `allow_unused` (then None) or
    `materialize_grads` (then zeros).

    >>> import tracegrad as tg
    >>> x = tg.tensor(3.0, requires_grad=True)
    >>> dx, = tg.autograd.grad(x ** 3, x, create_graph=True)
    >>> ddx, = tg.autograd.grad([dx], [x])
    >>> float(dx), float(ddx)
    (27.0, 18.0)
    """
    outputs, inputs = _as_sequence(outputs), _as_sequence(inputs)
    if not inputs:
        raise RuntimeError("grad requires non-empty inputs.")
    grad_outputs = [None] * len(outputs) if grad_outputs is None else _as_sequence(grad_outputs)
    retain_graph = create_graph if retain_graph is None else retain_graph
    roots, seeds = _roots(outputs, grad_outputs, create_graph)
    found = _gradients_of(inputs, roots, seeds, retain_graph, create_graph)
    return tuple(_unused(t, found.get(id(t)), allow_unused or materialize_grads,
                         materialize_grads) for t in inputs)


def _as_sequence(values) -> list:
    """A tensor (or one array) as a list of one; a sequence as a list."""
    return [values] if isinstance(values, (Tensor, np.ndarray)) else list(values)


def _gradients_of(inputs, roots, seeds, retain_graph, create_graph) -> dict:
    """{id(input): gradient} of the inputs the roots reach (leaves through their
    AccumulateGrad, intermediate tensors through their grad_fn's total cotangent)."""
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    found = {}
    wanted = {id(t) for t in inputs if t.is_leaf}

    def sink(acc, g, owned):
        if id(acc.variable) in wanted:
            found[id(acc.variable)] = _as_tensor_grad(g, acc.variable, create_graph, owned)

    capture = {}
    for t in inputs:
        if not t.is_leaf:
            capture[t.grad_fn] = lambda g, t=t: found.__setitem__(
                id(t), _as_tensor_grad(g, t, create_graph, False) if g is not None else None)
    targets = [accumulator(t) if t.is_leaf else t.grad_fn for t in inputs]
    mode = GRAD_MODE.enabled
    GRAD_MODE.enabled = create_graph
    try:  # only the nodes leading to `inputs` run (no other leaf's gradient is computed)
        run_backward(roots, seeds, retain_graph=retain_graph, create_graph=create_graph,
                     box=_box, sink=sink, inputs=targets, capture=capture or None,
                     accumulates=False)
    finally:
        GRAD_MODE.enabled = mode
    return found


def _unused(t, g, allowed: bool, materialize: bool):
    if g is not None:
        return g
    if not allowed:
        raise RuntimeError("One of the differentiated Tensors appears to not have been used "
                           "in the graph. Set allow_unused=True if this is the desired behavior.")
    return Tensor._make(np.zeros(t.shape, t.dtype)) if materialize else None
