"""`Session`: runs fetches of one graph natively, holding the graph's variables.

`run(fetches, feed_dict)` follows TF1: fetches are a tensor, an operation, a
tensor name, or lists/tuples/namedtuples/dicts of them, returned with the same
structure (an operation gives None, a rank-0 tensor a numpy scalar).  Feeds are
checked against their tensor's static shape and dtype and converted as TF1
converts them.  Each (fetch set, fed tensors, fed shapes and dtypes) compiles once
(`CompiledRun`, cached in the session), so a `None` dimension gets one native
program per size fed.  Variables live in the session: a new session has none
initialized, running an initializer sets them to their initial values, and the
assign ops of a run update them from the outputs of the same native call.
"""
from __future__ import annotations

import threading

import numpy as np

from tracegrad.codegen import llvm_util
from tracegrad.ir import ShapedArray

from .dtypes import feedable
from .errors import FailedPreconditionError, InvalidArgumentError
from .graph import _STACK, Operation, get_default_graph, leave
from .program import CompiledRun, Plan, as_result
from .tensor import Tensor


class _Sessions(threading.local):
    def __init__(self):
        self.stack: list = []


_DEFAULT = _Sessions()


def get_default_session():
    """The innermost session made default (`with sess:`, `sess.as_default()`,
    `InteractiveSession`), or None."""
    return _DEFAULT.stack[-1] if _DEFAULT.stack else None


def default_session(what: str):
    if not _DEFAULT.stack:
        raise ValueError(f"{what}: no default session is registered. Use `with sess.as_default():` "
                         "or `with tf.Session() as sess:`, or pass session=sess")
    return _DEFAULT.stack[-1]


class Session:
    """Runs fetches of `graph` (the default graph) natively and holds its variables' values.

    >>> import tracegrad.static as tf
    >>> with tf.Graph().as_default():
    ...     x = tf.placeholder(tf.float32, [2])
    ...     with tf.Session() as sess:
    ...         print(sess.run(x * 2.0, feed_dict={x: [1.0, 2.0]}))
    [2. 4.]
    """
    def __init__(self, target="", graph=None, config=None):
        self.graph = graph if graph is not None else get_default_graph()
        self._values: dict = {}  # Variable -> np.ndarray
        self._closed = False
        # One run at a time: a run reads and then updates the variables.
        self._lock = threading.RLock()
        llvm_util.free_after_fork(self, "_lock")

    # -- context management --------------------------------------------------------------
    def __enter__(self):
        """The default session and, as in TF1, its graph the default graph for the block."""
        _DEFAULT.stack.append(self)
        _STACK.graphs.append(self.graph)
        return self

    def __exit__(self, *exc):
        leave(_STACK.graphs, self.graph)
        if _DEFAULT.stack and _DEFAULT.stack[-1] is self:
            _DEFAULT.stack.pop()
        self.close()

    def as_default(self):
        return _AsDefault(self)

    def close(self):
        self._closed = True
        self._values.clear()

    # -- running -------------------------------------------------------------------------
    def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        """The values of `fetches` (same structure) for the feeds in `feed_dict`."""
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session.")
        if options is not None or run_metadata is not None:
            raise NotImplementedError("Session.run: options and run_metadata are not supported")
        with self._lock:
            return self._run(fetches, feed_dict)

    def _compiled(self, key, tensors, ops, fed, feeds) -> CompiledRun:
        cache = self.graph.compiled
        run = cache.get(key)
        if run is not None:
            self._check_runnable(run.plan)
            return run
        plan = Plan(self.graph, tensors, ops, fed, fresh=key[3])
        self._check_runnable(plan)
        with self.graph.compile_lock:  # one thread compiles a program, the others wait
            run = cache.get(key)
            if run is None:
                avals = {t: ShapedArray(feeds[t].shape, feeds[t].dtype) for t in fed}
                run = cache[key] = CompiledRun(plan, [avals[t] for t in plan.fed])
                self.graph.last_feed_avals.update((t, a) for t, a in avals.items()
                                                  if t.op.type == "Placeholder")
        return run

    def _run(self, fetches, feed_dict):
        elements, rebuild = _flatten(fetches, self._element)
        feeds = self._feeds(feed_dict or {})
        tensors = [e for e in elements if isinstance(e, Tensor)]
        ops = [e for e in elements if isinstance(e, Operation)]
        fed = sorted(feeds, key=lambda t: (t.op.id, t.value_index))
        # uninitialized variables matter to runs of initializers only (program.Plan)
        fresh = frozenset(v for v in self.graph.variables if v not in self._values) \
            if _initializes(ops) else frozenset()
        key = (tuple(tensors), tuple(ops), tuple((t, feeds[t].shape, feeds[t].dtype) for t in fed),
               fresh)
        run = self._compiled(key, tensors, ops, fed, feeds)
        values, updates = run([feeds[t] for t in run.plan.fed],
                              [self._values[v] for v in run.plan.read_vars])
        self._values.update(updates)
        by_tensor = dict(zip(run.plan.fetch_tensors, values))
        return rebuild([as_result(by_tensor[e]) if isinstance(e, Tensor) else None
                        for e in elements])

    def cache_info(self) -> list:
        """One entry per program compiled for this session's graph (shared by all its
        sessions): fetches, fed shapes and the optimized IR."""
        return [{"fetches": [t.name for t in key[0]] + [op.name for op in key[1]],
                 "feeds": {t.name: str(ShapedArray(shape, dtype)) for t, shape, dtype in key[2]},
                 "ir": str(run.optimized)} for key, run in list(self.graph.compiled.items())]

    def _check_runnable(self, plan):
        for op in plan.placeholders:
            t = op.outputs[0]
            raise InvalidArgumentError(
                f"You must feed a value for placeholder tensor '{op.name}' with dtype "
                f"{t.dtype.name}" + ("" if t.shape.dims is None else
                                     f" and shape {_shape_text(t.shape)}")
                + ": a fetch needs it (feed_dict={" + op.name + ": ...})", op)
        for var in plan.read_vars:
            if var not in self._values:
                raise FailedPreconditionError(
                    f"Attempting to use uninitialized value {var.op.name}: run "
                    "tf.global_variables_initializer() (or its .initializer) in this session "
                    "first", var.op)

    # -- fetches and feeds ---------------------------------------------------------------
    def _element(self, x):
        """A fetch as a Tensor or Operation of this graph, made outside any body."""
        try:
            element = self._graph_element(x)
        except (TypeError, ValueError, KeyError) as e:
            raise type(e)(f"Fetch argument {x!r} cannot be interpreted as a Tensor. "
                          f"({e.args[0]})") from None
        if getattr(element, "op", element).ctx is not None:
            raise ValueError(f"Fetch argument {element!r} was made inside a tf.cond branch or a "
                             "tf.while_loop body and cannot be fetched: return it from the "
                             "branch or body and fetch that output")
        return element

    def _graph_element(self, x, allow_operation=True):
        if isinstance(x, str):
            if ":" in x:
                return self.graph.get_tensor_by_name(x)
            if not allow_operation:
                raise ValueError(f"the name {x!r} names an operation, not a tensor ('op:0')")
            return self.graph.get_operation_by_name(x)
        if isinstance(x, Tensor) or (allow_operation and isinstance(x, Operation)):
            if x.graph is not self.graph:
                raise ValueError(f"{x!r} is not an element of this graph.")
            return x
        raise TypeError(f"{x!r} has invalid type {type(x).__name__}: expected a tf.Tensor"
                        + (", tf.Operation" if allow_operation else "")
                        + " or its name")

    def _feeds(self, feed_dict) -> dict:
        feeds = {}
        for key, value in dict(feed_dict).items():
            try:
                t = self._graph_element(key, allow_operation=False)
            except (TypeError, ValueError, KeyError) as e:
                raise TypeError(f"Cannot interpret feed_dict key as Tensor: {e.args[0]}") from None
            feeds[t] = _fed_value(t, value)
        return feeds


def _initializes(ops) -> bool:
    """Whether the fetched ops run an initializer (themselves or grouped: tf.group)."""
    stack = list(ops)
    while stack:
        op = stack.pop()
        if getattr(op, "is_initializer", False):
            return True
        stack.extend(op.control_inputs)
    return False


def _shape_text(shape) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape.dims) + "]"


def _fed_value(t, value) -> np.ndarray:
    arr = feedable(value, t.dtype)
    if arr is None:
        got = np.asarray(value).dtype if not isinstance(value, str) else "str"
        raise TypeError(f"Cannot feed value of dtype {got} for Tensor '{t.name}', which has dtype "
                        f"{t.dtype.name}: convert it explicitly (np.asarray(value, "
                        f"{t.dtype.name})) if that is intended")
    if not t.shape.is_compatible_with(arr.shape):
        raise ValueError(f"Cannot feed value of shape {arr.shape} for Tensor '{t.name}', which "
                         f"has shape '{t.shape}'")
    return arr if arr.flags.c_contiguous else arr.copy()  # (ascontiguousarray makes 0-d 1-d)


def _flatten(fetches, element):
    """(leaves, rebuild) for a fetch structure of tensors, operations and names."""
    if isinstance(fetches, (list, tuple)) and not isinstance(fetches, str):
        parts = [_flatten(f, element) for f in fetches]
        sizes = [len(p[0]) for p in parts]

        def rebuild(values):
            out, i = [], 0
            for (_, sub), n in zip(parts, sizes):
                out.append(sub(values[i:i + n]))
                i += n
            if hasattr(fetches, "_fields"):  # namedtuple
                return type(fetches)(*out)
            return type(fetches)(out) if isinstance(fetches, tuple) else out
        return [leaf for p in parts for leaf in p[0]], rebuild
    if isinstance(fetches, dict):
        keys = list(fetches)
        leaves, sub = _flatten([fetches[k] for k in keys], element)
        return leaves, lambda values: type(fetches)(zip(keys, sub(values)))
    if fetches is None:
        raise TypeError("Fetch argument None has invalid type <class 'NoneType'>")
    return [element(fetches)], lambda values: values[0]


class InteractiveSession(Session):
    """A Session that makes itself the default session, and its graph the default graph,
    from creation until `close()` (for `t.eval()` in a shell), as TF1's."""

    def __init__(self, target="", graph=None, config=None):
        super().__init__(target, graph, config)
        _DEFAULT.stack.append(self)
        _STACK.graphs.append(self.graph)
        self._installed = True

    def close(self):
        if getattr(self, "_installed", False):
            self._installed = False
            leave(_DEFAULT.stack, self)
            leave(_STACK.graphs, self.graph)
        super().close()


class _AsDefault:
    def __init__(self, session):
        self.session = session

    def __enter__(self):
        _DEFAULT.stack.append(self.session)
        return self.session

    def __exit__(self, *exc):
        _DEFAULT.stack.pop()
