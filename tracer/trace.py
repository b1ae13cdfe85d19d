"""The tracing front end: run a function once on traced values and keep the graph.

>>> import numpy as np
>>> def f(x, y):
...     return np.sum(np.sin(x) * y)
>>> x = np.ones(3, np.float32)
>>> print(trace(f)(x, x))
{ lambda a:f32[3] b:f32[3] . let
    c:f32[3] = sin a
    d:f32[3] = mul c b
    e:f32[] = reduce_sum[axes=(0,)] d
  in (e) }

Python control flow runs at trace time: loops unroll, and a decision that
reads a traced value (`if x.sum() > 0:`) takes the example's branch and records
a guard, which `TracedProgram.check_guards` re-checks for new inputs.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import (TRACES, GraphBuilder, ShapedArray, TracedValue, apply_graph, debug_checks,
                          eval_graph, ops, to_dot, to_networkx, user_source_location, verify)

from . import dtypes
from . import numpy as tnp
from .array import ArrayMixin
from .autograd import GRAD_MODE
from .numpy.dispatch import random_sampling_watch
from . import traced_views, views
from .indexing import getitem, setitem
from .scalars import TracedFloat
from .tensor import Tensor
from .tree import tree_flatten, tree_unflatten


def _conversion_hints(aval) -> str:
    """What else commonly converts a traced value: a NumPy array indexed by a traced index
    (NumPy's indexing cannot dispatch), and np.array of a list of traced values."""
    hints = ["\nnp.array([...]) of traced values converts each one: write np.stack([...])."]
    hints += _port_hint()
    if np.issubdtype(aval.dtype, np.integer) or aval.dtype == np.bool_:
        hints.append("\nA NumPy array indexed by a traced index (table[idx], np.eye(k)[y]) "
                     "converts the index: write tracegrad.numpy.take(table, idx, axis=0), or "
                     "compare instead (y[:, None] == np.arange(k) for a one-hot).")
    return "".join(hints)


def _port_hint() -> list:
    """A conversion inside a scipy function with a tracegrad.scipy port (scipy.special's
    logsumexp and softmax are plain Python over NumPy, not ufuncs): name the port."""
    import sys
    frame, outer = sys._getframe(2), None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.split(".")[0] == "scipy" and module.count(".") >= 1:
            outer = (module.split(".")[1], frame.f_code.co_name)
        frame = frame.f_back
    if outer is None:
        return []
    import importlib
    sub, name = outer
    try:  # the facade's port, looked up by name (the tracer does not depend on the facade)
        port = importlib.import_module(f"tracegrad.scipy.{sub}")
    except ImportError:
        return []
    if not hasattr(port, name):
        return []
    return [f"\nscipy.{sub}.{name} is NumPy code that cannot take traced values: call "
            f"tracegrad.scipy.{sub}.{name}, which takes the same arguments."]


def _finished(x) -> bool:
    trace = getattr(x, "_tg_trace", None)
    return trace is not None and getattr(trace, "finished", False)


class Traced(TracedValue, ArrayMixin):
    """A traced array: NumPy-like operators and methods that record graph equations.

    Python needs a concrete value for `bool()`, `int()`, `__index__` and
    `.tolist()`: those evaluate the example inputs and record a guard.
    `.item()` of a float value returns a `TracedFloat`, which records a guard
    only when its use needs one (see `tracer/scalars.py`); `float()` guards the
    value (CPython strips float subclasses returned by `__float__`).
    """

    var = ArrayMixin.var  # NumPy's variance, not TracedValue's graph variable (`_tg_var`)

    def _compared_with_none(self, result: bool):
        return tnp.full(self.shape, result, dtype=bool)  # NumPy's elementwise `x == None`

    def _concrete(self, kind: str) -> np.ndarray:
        return self._tg_trace.concrete(self, kind)

    def _one_element(self, what: str):
        if self.size != 1:
            raise ValueError(f"{what}: a traced array with {self.size} elements is not a scalar")
        return tnp.reshape(self, ())

    def __bool__(self):
        scalar = self._one_element("bool()")
        return bool(scalar._concrete("bool"))

    def __index__(self):
        if not np.issubdtype(self.dtype, np.integer):
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return int(self._one_element("__index__")._concrete("index"))

    def __int__(self):
        return int(self._one_element("int()")._concrete("int"))

    def __float__(self):
        # CPython turns a float subclass returned by __float__ into a plain float
        # (with a DeprecationWarning), which would drop a TracedFloat's lazy guard
        # silently: float() therefore guards the value at once.
        return float(self._one_element("float()")._concrete("float"))

    def _traced_float(self):
        scalar = self._one_element("item()")
        value = self._tg_trace.example_value(scalar)
        if value is None:  # abstract trace: `concrete` raises the explanatory error
            scalar._concrete("float")
        # A float value converts to float64 exactly, so the symbolic value may keep
        # its dtype (`x_f32 * s` then needs no convert); an int one is made float.
        is_float = np.issubdtype(self.dtype, np.floating)
        symbolic = scalar if is_float else tnp.astype(scalar, np.float64)
        return TracedFloat(float(value), symbolic)

    def __complex__(self):
        raise TypeError("tracegrad has no complex values")

    def __hash__(self):
        """A 0-d value with an example hashes by its value, as a NumPy scalar does
        (`RATES.get(mode[0])`, `x[0] in {1, 2}`): the value is guarded, and the lookup's `==`
        then guards its outcome; identity would make such lookups miss silently.  Larger
        arrays (dict keys of parameters, torch's way) and values of an abstract trace hash
        by identity, as tensors do."""
        if self.ndim or self._tg_trace.example_value(self) is None:
            return object.__hash__(self)
        return hash(self._concrete("hash").item())

    def __eq__(self, other):
        # a key left in a cache by a finished trace equals nothing of another (a lookup by
        # value would otherwise use it, after its trace, and raise)
        if _finished(self) or _finished(other):
            return self is other
        return ArrayMixin.__eq__(self, other)

    def item(self, *index):
        """A Python scalar: a `TracedFloat` for float arrays; int and bool are guarded values.
        An index picks the element as NumPy's does (a flat position, or one per dim)."""
        if index:
            flat = index[0] if len(index) == 1 and not isinstance(index[0], tuple) else None
            where = (flat,) if flat is not None else tuple(
                index[0] if len(index) == 1 else index)
            return (tnp.ravel(self) if flat is not None else self)[where].item()
        if np.issubdtype(self.dtype, np.floating):
            return self._traced_float()
        value = self._one_element("item()")._concrete("item")
        return value.item()

    def tolist(self):
        return self._concrete("tolist").tolist()

    def __array__(self, dtype=None, copy=None):
        where = user_source_location()
        raise TypeError(
            f"cannot convert a traced value {self.aval} to a numpy array: it has no value while "
            "a function is traced. Use tracegrad.numpy (or plain np.* functions, which "
            "dispatch to it) instead of converting. To write traced values into an array "
            "(buf[i] = v), start the array from a traced value (np.zeros_like(x)) or use "
            "buf.at[i].set(v): tracegrad.numpy's constructors from a shape (zeros, ones, full, "
            "empty, arange, eye) give plain numpy arrays, which cannot hold traced values."
            + _conversion_hints(self.aval) + (f"\n  at {where}" if where else ""))

    def numpy(self):
        """As `np.asarray` of a traced value: an error that says why and what to use."""
        return self.__array__()

    # ---- views (traced_views.py): NumPy's aliasing of basic indexing and transposes ----
    def __getitem__(self, index):
        if traced_views.is_view_index(index, self.ndim):
            return traced_views.make_view(TracedView, self, views.Index(index))
        return getitem(self, index)

    @property
    def T(self):
        return self.transpose()

    def transpose(self, *axes):
        out = ArrayMixin.transpose(self, *axes)  # NumPy's and torch's spellings, checked
        perm = views.transposed(axes, self.ndim)
        return traced_views.make_view(TracedView, self, views.Permute(perm), out)

    def swapaxes(self, axis1, axis2):
        return self.transpose(axis1, axis2)  # two ints: the swap

    def reshape(self, *shape, order="C"):
        out = ArrayMixin.reshape(self, *shape, order=order)
        return self._reshaped(out) if order == "C" else out

    def ravel(self, order="C"):
        out = ArrayMixin.ravel(self, order)
        return self._reshaped(out) if order == "C" else out

    def expand_dims(self, axis):
        return self._reshaped(ArrayMixin.expand_dims(self, axis))

    def squeeze(self, axis=None, *, dim=None):
        return self._reshaped(ArrayMixin.squeeze(self, axis, dim=dim))

    def _reshaped(self, out):
        """`out`, a reshape of this array, as a view of it where NumPy makes one: always of
        an array that is not a view, of a view where its layout allows (traced_views.py)."""
        if getattr(out, "_tg_trace", None) is not self._tg_trace or out is self:
            return out
        if isinstance(self, TracedView) and not traced_views.reshapes_as_view(self, out.shape):
            return out
        return traced_views.make_view(TracedView, self, views.Reshape(out.shape), out)

    def __setitem__(self, index, value):
        # Recorded as a functional update (scatter, dynamic_update_slice, a masked
        # select); this object then stands for the updated value (and a view passes it
        # on to its base: traced_views.py).
        if self._in_enclosing_trace():
            raise TypeError(_ENCLOSING_WRITE.format(self.aval))
        new = setitem(self, index, value)
        if getattr(new, "_tg_trace", None) is not self._tg_trace:
            # every element overwritten, by constants or by a value of an enclosing trace
            # (`z[:] = y` inside vmap under jit): lifted into this trace, zero derivative
            # to self; a write into an enclosing trace's value stays in the inner one
            new = tnp.where(np.ones(self.shape, bool), new, self)
        if getattr(new, "_tg_trace", None) is not self._tg_trace:
            raise TypeError(_ENCLOSING_WRITE.format(self.aval))
        self._tg_var = new._tg_var

    def _in_enclosing_trace(self) -> bool:
        """Whether this value belongs to a trace that encloses the one running now (a loop
        body's, a branch's, a transform's) and existed before that nested trace began: a
        write into it there would land once in the enclosing program, whatever the loop
        count or the branch taken.  A value the nested function made itself from enclosing
        values only (`buf = x * 2.0`) is recorded in the enclosing trace too, but is that
        function's own: writes into it are its business."""
        stack, mine = TRACES.traces, self._tg_trace
        if not stack or stack[-1] is mine or mine not in TRACES:
            return False
        nested = stack[next(i for i, t in enumerate(stack) if t is mine) + 1]
        mark = getattr(nested, "parent_mark", None)
        if mark is None or mark[0] is not mine:
            return True
        return not any(self._tg_var in e.outs for e in mine.eqns[mark[1]:])

    def _in_place(self, name, fn, other):
        """`self op= other` as NumPy's: the result cast back to self's dtype, which must be
        possible under 'same_kind' (an int array += 2.7 raises), and this object then
        stands for it, as after `self[...] = result` (names bound to it see the change)."""
        new = fn(self, other)
        if new.dtype != self.dtype:
            if not np.can_cast(new.dtype, self.dtype, casting="same_kind"):
                raise TypeError(f"Cannot cast ufunc '{name}' output from {new.dtype!r} to "
                                f"{self.dtype!r} with casting rule 'same_kind'")
            new = tnp.astype(new, self.dtype)
        if new.shape != self.shape:
            raise ValueError(f"non-broadcastable output operand with shape {self.shape} "
                             f"doesn't match the broadcast shape {new.shape}")
        if self._in_enclosing_trace():
            raise TypeError(_ENCLOSING_WRITE.format(self.aval))
        if getattr(new, "_tg_trace", None) is not self._tg_trace:
            return new  # an enclosing trace's value, updated in a nested one: a new name
        self._tg_var = new._tg_var
        return self

    def __iadd__(self, other):
        return self._in_place("add", tnp.add, other)

    def __isub__(self, other):
        return self._in_place("subtract", tnp.subtract, other)

    def __imul__(self, other):
        return self._in_place("multiply", tnp.multiply, other)

    def __itruediv__(self, other):
        return self._in_place("divide", tnp.true_divide, other)

    def __ifloordiv__(self, other):
        return self._in_place("floor_divide", tnp.floor_divide, other)

    def __imod__(self, other):
        return self._in_place("remainder", tnp.remainder, other)

    def __ipow__(self, other):
        return self._in_place("power", tnp.power, other)

    def __iand__(self, other):
        return self._in_place("bitwise_and", tnp.bitwise_and, other)

    def __ior__(self, other):
        return self._in_place("bitwise_or", tnp.bitwise_or, other)

    def __ixor__(self, other):
        return self._in_place("bitwise_xor", tnp.bitwise_xor, other)

    def __ilshift__(self, other):
        return self._in_place("left_shift", tnp.left_shift, other)

    def __irshift__(self, other):
        return self._in_place("right_shift", tnp.right_shift, other)

    def __imatmul__(self, other):
        return self._in_place("matmul", tnp.matmul, other)


_ENCLOSING_WRITE = ("cannot assign into a traced value {} of an enclosing trace from inside a "
                    "nested one (a loop body, a branch, a transform): return the updated value "
                    "instead")


class TracedView(traced_views.ViewState, Traced):
    """A traced view of another traced array (traced_views.py)."""

    @classmethod
    def _of(cls, base, fn, value):
        view = cls.__new__(cls)
        view._init_view(base, fn, value)
        return view

    @staticmethod
    def _plain(builder, var):
        return Traced(builder, var)


# ---- arguments ------------------------------------------------------------------------

def is_array_leaf(x) -> bool:
    """Leaves that become graph inputs; every other leaf is static (part of the program)."""
    return isinstance(x, (np.ndarray, np.generic, TracedValue, Tensor))


def _example_of(x):
    """(aval-able array, example value or None) of an array argument."""
    if isinstance(x, TracedValue):  # a value of an enclosing trace
        return x.aval, x._tg_trace.example_value(x)
    data = _data(x)
    dtype = dtypes.check(data.dtype, "traced input")  # the host's byte order ('>f8' -> f64)
    return ShapedArray(data.shape, dtype), data if data.dtype == dtype else data.astype(dtype)


class _Static:
    """A placeholder in the flattened arguments for a static_argnums argument."""

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, _Static) and _static_equal(self.value, other.value)

    def __repr__(self):
        return f"static({self.value!r})"


def _static_equal(a, b) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # values whose == is not a plain bool compare by identity
        return a is b


def _flatten_args(args, static_argnums):
    static = {i % len(args) for i in static_argnums} if args else set()
    wrapped = tuple(_Static(a) if i in static else a for i, a in enumerate(args))
    return tree_flatten(wrapped, is_leaf=lambda x: isinstance(x, _Static))


class TracedProgram:
    """The result of tracing: a verified graph, its guards and argument structure.

    `str(program)` is the jaxpr-style text; calling the program evaluates the
    graph with the reference interpreter after checking that the arguments fit
    (same structure, static values, shapes and dtypes) and that every guard holds.
    """

    def __init__(self, graph, in_tree, out_tree, static_leaves, static_argnums=(), fun=None):
        self.graph = graph
        self.in_tree = in_tree
        self.out_tree = out_tree
        self.static_leaves = static_leaves  # flat index -> value of every non-array leaf
        self.static_argnums = tuple(static_argnums)
        self.fun = fun

    @property
    def guards(self):
        return self.graph.guards

    @property
    def in_avals(self):
        return self.graph.in_avals

    @property
    def out_avals(self):
        return self.graph.out_avals

    def __str__(self):
        return str(self.graph)

    def __repr__(self):
        name = getattr(self.fun, "__name__", "?")
        return (f"<TracedProgram of {name}: {len(self.graph.eqns)} equations, "
                f"{len(self.guards)} guards>")

    def to_networkx(self):
        """The graph as a `networkx.DiGraph` (nodes carry op, shape, dtype)."""
        return to_networkx(self.graph)

    def to_dot(self) -> str:
        """The graph as Graphviz DOT text."""
        return to_dot(self.graph)

    def array_args(self, *args):
        """The flat array arguments for `args`; TypeError if `args` do not fit the program."""
        leaves, tree = _flatten_args(args, self.static_argnums)
        self._check_structure(args, tree)
        arrays = []
        for i, leaf in enumerate(leaves):
            if i in self.static_leaves:
                if not _static_equal(self.static_leaves[i], leaf):
                    raise TypeError(f"static argument changed: traced with "
                                    f"{self.static_leaves[i]!r}, got {leaf!r}")
            else:
                arrays.append(_data(leaf))
        for i, (a, aval) in enumerate(zip(arrays, self.in_avals)):
            if a.shape != aval.shape or a.dtype != aval.dtype:
                raise TypeError(f"input {i} of shape {a.shape} and dtype {a.dtype} does not "
                                f"match the traced {aval} (the program takes "
                                f"{', '.join(map(str, self.in_avals))})")
        return arrays

    def _check_structure(self, args, tree):
        if tree == self.in_tree:
            return
        expected = len(self.in_tree.children) if self.in_tree.kind is tuple else None
        if expected is not None and tree.kind is tuple and len(args) != expected:
            raise TypeError(f"the program takes {expected} arguments "
                            f"({', '.join(map(str, self.in_avals))}), got {len(args)}")
        raise TypeError(f"arguments of structure {tree} do not match the traced "
                        f"structure {self.in_tree}")

    def _boxed_args(self, args):
        """The array leaves of `args` as they are (boxed or not), checked as `array_args` does."""
        leaves, tree = _flatten_args(args, self.static_argnums)
        self._check_structure(args, tree)
        arrays = [x for i, x in enumerate(leaves) if i not in self.static_leaves]
        for a, aval in zip(arrays, self.in_avals):
            if ops.aval(a) != aval:
                raise TypeError(f"argument {ops.aval(a)} does not match the traced {aval}")
        return arrays

    def failed_guard(self, *args):
        """The first guard that does not hold for `args`, or None when all hold."""
        arrays = self.array_args(*args)
        _, values = eval_graph(self.graph, *arrays, with_guards=True)
        return next((g for g, v in zip(self.guards, values) if not g.holds(v)), None)

    def check_guards(self, *args) -> bool:
        """Whether this program is valid for `args`: they fit and every guard holds."""
        try:
            return self.failed_guard(*args) is None
        except TypeError:
            return False

    def save(self, path, constants="embedded"):
        """Write the program as text to `path` (`tracegrad.load` reads it back); see
        `tracer/saving.py` for the format.  `constants="sidecar"` keeps array values in
        `path + ".npz"` instead of embedding them."""
        from .saving import save_program

        save_program(self, path, constants)

    def __call__(self, *args):
        leaves, _ = _flatten_args(args, self.static_argnums)
        if any(tnp.is_boxed(x) for x in leaves):  # inside a trace, or on eager tensors
            return tree_unflatten(self.out_tree, apply_graph(self.graph, self._boxed_args(args)))
        # a strided input is computed on as a contiguous copy, as an eager tensor's is, so
        # that the native kernels (contiguous only) give the same bits whatever the layout
        arrays = [a if a.flags.c_contiguous else np.ascontiguousarray(a)
                  for a in self.array_args(*args)]
        outs, values = eval_graph(self.graph, *arrays, with_guards=True)
        for g, v in zip(self.guards, values):
            if not g.holds(v):
                raise GuardFailure(g, v)
        return tree_unflatten(self.out_tree, outs)


class GuardFailure(RuntimeError):
    """New inputs took another branch than the traced example: retrace for them."""

    def __init__(self, guard, value):
        self.guard, self.value = guard, value
        where = f" at {guard.src}" if guard.src else ""
        super().__init__(f"guard ({guard.kind}){where} failed: the traced program assumed "
                         f"{np.asarray(guard.expected).tolist()!r}, the inputs give "
                         f"{np.asarray(value).tolist()!r}; retrace for these inputs")


def _data(leaf):
    return leaf.data if isinstance(leaf, Tensor) else np.asarray(leaf)


# ---- tracing ------------------------------------------------------------------------------

def _output_leaf(x):
    sym = tnp.symbolic_value(x)
    if sym is not None:
        return sym
    if dtypes.is_weak(x) or is_array_leaf(x):
        return x
    raise TypeError(f"a traced function must return arrays or numbers (in tuples, lists or "
                    f"dicts); got {type(x).__name__}")


def make_graph(fun, args, static_argnums=(), concrete=True, builder=None,
               capture_tensors=False, on_writes=None) -> TracedProgram:
    """Trace `fun(*args)` once; array leaves of `args` become graph inputs.

    `concrete=False` traces abstractly (shapes and dtypes only): Python
    decisions on traced values then raise a ConcretizationError.  `builder` lets
    a caller supply its own GraphBuilder (its value class should be `Traced`).
    `capture_tensors`: eager tensors that require grad, closed over by `fun`, are
    captured (in `prog.captured`) instead of made constants, while grad mode is on: a
    transform applying the graph to them then records autograd.
    `on_writes(written)`: called with (position, returned) of each array leaf that `fun`
    wrote into in place (`x[i] = v`, `x += v`; the graph holds such writes functionally),
    `returned` when its final value is among fun's outputs; it returns the positions
    whose final values the graph should output after fun's outputs (`prog.writes`, in
    that order), so that the caller can write them back.
    """
    builder = builder if builder is not None else GraphBuilder(value_cls=Traced)
    builder.capture_tensors = capture_tensors and GRAD_MODE.enabled
    leaves, in_tree = _flatten_args(tuple(args), static_argnums)
    static, traced = {}, []
    for i, leaf in enumerate(leaves):
        if is_array_leaf(leaf):
            aval, example = _example_of(leaf)
            traced.append(builder.new_input(aval, example if concrete else None))
        else:
            static[i] = leaf
            traced.append(leaf)
    call_args = tree_unflatten(in_tree, [t.value if isinstance(t, _Static) else t
                                         for t in traced])
    inputs = [getattr(t, "_tg_var", None) for t in traced]
    writes = []
    with random_sampling_watch(fun), TRACES.entered(builder, _describe_trace(fun)):
        out_leaves, out_tree = tree_flatten(fun(*call_args))
        if on_writes is not None:
            written = _writes(traced, inputs, out_leaves)
            writes = list(on_writes(written)) if written else []
        graph = builder.build([_output_leaf(x) for x in out_leaves] +
                              [_output_leaf(traced[i]) for i in writes])
    if debug_checks():
        verify(graph)
    prog = TracedProgram(graph, in_tree, out_tree, static, static_argnums, fun)
    prog.writes = writes
    # Values of enclosing traces the function closed over: the graph's last inputs.
    prog.captured = list(builder.captured)
    return prog


def _writes(traced, inputs, out_leaves) -> list:
    """(position, returned) of the input leaves whose object now stands for another value
    (written in place), `returned` if that value is among the outputs."""
    returned = {id(getattr(x, "_tg_var", None)) for x in out_leaves}
    return [(i, id(t._tg_var) in returned) for i, (t, var) in enumerate(zip(traced, inputs))
            if var is not None and t._tg_var is not var]


def _describe_trace(fun) -> str:
    """How an error names this trace: the function and the user's line that started it."""
    name = getattr(fun, "__qualname__", None) or type(fun).__name__
    where = user_source_location()
    return f"the trace of {name}" + (f" started at {where}" if where else "")


def trace(fun, static_argnums=()):
    """`trace(f)(*example_args)` runs `f` once on traced values and returns its program.

    Like `jax.make_jaxpr`, but the example values are kept: data-dependent
    Python control flow takes the example's branch and records a guard.

    >>> import numpy as np
    >>> import tracegrad as tg
    >>> prog = tg.trace(lambda x: x * 2 if x.sum() > 0 else -x)(np.ones(2))
    >>> prog.check_guards(np.ones(2)), prog.check_guards(-np.ones(2))
    (True, False)
    """
    static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    def traced(*args):
        return make_graph(fun, args, static_argnums)
    traced.__name__ = f"trace({getattr(fun, '__name__', 'fun')})"
    return traced
