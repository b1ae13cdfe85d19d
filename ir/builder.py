"""Building graphs by running code on traced values.

A `GraphBuilder` is the trace object behind traced values: `ops.bind` on a
traced value appends an equation to its builder and returns a new traced
value.  Numpy arrays met along the way become explicit constants, Python
scalars become literals of the other operand's dtype.

A builder may be given concrete example inputs; then any traced value can be
made concrete (for a Python `if`), by evaluating the equations recorded so
far, and the decision is recorded as a guard.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading

import numpy as np

from .core import Eqn, Graph, Guard, Literal, ShapedArray, Var, aval_of, supported_array
from .primitives import SYMBOLIC_SCALARS, ShapeError, unbox_scalar

# Creation order: `ops.find_trace` dispatches to the newest trace among the operands.
# Whether a value may be used at all is decided by `TRACES`, not by levels.
_levels = itertools.count(1)
# Frames from these folders are ours; the first frame outside them is the user's.
_OWN_DIRS = tuple(os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep + d + os.sep
                  for d in ("ir", "tracer", "passes", "codegen", "tracegrad"))


def user_source_location() -> str | None:
    """`file:line` of the innermost frame outside tracegrad (the user's code)."""
    frame = sys._getframe(1)
    while frame is not None:
        fname = frame.f_code.co_filename
        ours = fname.startswith(_OWN_DIRS) and not fname.endswith("__main__.py")  # the demo is user code
        if not ours and "numpy" + os.sep not in fname and not fname.startswith("<frozen"):
            return f"{fname}:{frame.f_lineno}"
        frame = frame.f_back
    return None


class TracedValue:
    """A stand-in for an array while a graph is being built."""

    __array_priority__ = 1000

    def __init__(self, builder: "GraphBuilder", var: Var):
        self._tg_trace = builder
        self._tg_var = var  # not `var`: array subclasses have NumPy's .var() (the variance)

    @property
    def var(self) -> Var:
        """The graph variable this value stands for (`_tg_var`, which internal code reads)."""
        return self._tg_var

    @property
    def aval(self) -> ShapedArray:
        return self._tg_var.aval

    @property
    def shape(self):
        return self._tg_var.aval.shape

    @property
    def dtype(self):
        return self._tg_var.aval.dtype

    @property
    def ndim(self):
        return self._tg_var.aval.ndim

    def __repr__(self):
        return f"Traced<{self._tg_var.aval}>"


class ConcretizationError(TypeError):
    """A Python decision needed the value of a traced array that has none."""


class UnexpectedTracerError(TypeError):
    """A traced value was used outside the trace that made it (JAX's error of that name)."""


class TraceStack(threading.local):
    """The traces whose functions are running on this thread, innermost last.

    `make_graph` enters a trace while the user's function runs.  A value of an
    entered trace may be used only while that trace is on the stack of the
    thread using it: by its own trace, or by a trace nested inside it (a
    closure, captured as an extra input).  A value kept past the end of its
    trace (in a global, a list) raises `UnexpectedTracerError` where it is used.
    Builders used directly (never entered) are not checked.
    """

    def __init__(self):
        self.traces: list = []

    @contextlib.contextmanager
    def entered(self, trace: "GraphBuilder", description: str):
        trace.description, trace.entered = description, True
        # where the enclosing trace stood: its values made since are the nested function's
        # own (tracer.trace.Traced._in_enclosing_trace)
        trace.parent_mark = (self.traces[-1], len(self.traces[-1].eqns)) if self.traces else None
        self.traces.append(trace)
        try:
            yield trace
        finally:
            if self.traces and self.traces[-1] is trace:  # `reset` may have emptied the stack
                self.traces.pop()
            trace.finished = True

    def __contains__(self, trace) -> bool:
        return any(t is trace for t in self.traces)

    def reset(self):
        """End every trace of this thread (for tests that leave one open on purpose)."""
        for t in self.traces:
            t.finished = True
        self.traces.clear()


TRACES = TraceStack()


def _origin(value: TracedValue) -> str:
    """Where `value` was made: its equation's source line, or its trace's inputs."""
    trace = value._tg_trace
    src = next((e.src for e in trace.eqns if any(o is value._tg_var for o in e.outs)), None)
    what = trace.description or "a trace"
    return f"at {src} in {what}" if src else f"as an input of {what}"


def leaked(value: TracedValue, problem: str) -> UnexpectedTracerError:
    where = user_source_location()
    return UnexpectedTracerError(
        f"a traced value {value.aval} {problem}. It was created {_origin(value)}"
        + (f", and is used at {where}" if where else "") + ". A traced value exists only "
        "while its function is being traced: return it from that function (or pass it as "
        "an argument) instead of keeping it in a global, a list or an attribute.")


class GraphBuilder:
    def __init__(self, value_cls=TracedValue, record_source=True):
        self.level = next(_levels)
        self.entered = self.finished = False  # set by `TRACES.entered`
        self.description: str | None = None
        self.value_cls = value_cls
        self.record_source = record_source
        self.invars: list[Var] = []
        self.eqns: list[Eqn] = []
        self.guards: list[Guard] = []
        self._consts: dict[int, tuple[Var, np.ndarray]] = {}
        self._example: dict[Var, np.ndarray] | None = None
        # Values of enclosing traces read by this one (closures in nested transforms):
        # each becomes an extra input, after the explicit ones, bound to `captured[i]`.
        self.captured: list[TracedValue] = []
        self._captured_vars: list[Var] = []
        # Whether eager tensors that require grad are captured too (not made constants):
        # set by transforms that apply their graph to the tensors, so autograd records it.
        self.capture_tensors = False

    # -- inputs and constants ------------------------------------------------
    def new_input(self, aval: ShapedArray, example=None) -> TracedValue:
        var = Var(aval)
        self.invars.append(var)
        if example is not None:
            self._example = self._example if self._example is not None else {}
            self._example[var] = np.asarray(example)
        return self.value_cls(self, var)

    def const(self, value) -> Var:
        """A captured array becomes an explicit constant (deduplicated by identity)."""
        # Keyed by identity; holding `value` keeps its id from being reused.  The
        # array is copied so that later mutation by the user cannot change the graph.
        key = id(value)
        if key not in self._consts:
            arr = supported_array(np.array(value, copy=True))
            self._consts[key] = (Var(aval_of(arr)), arr, value)
        return self._consts[key][0]

    def _atom(self, x, like_dtype):
        if type(x) in SYMBOLIC_SCALARS:  # a traced Python float: its traced value
            x = unbox_scalar(x, like_dtype)
        if isinstance(x, TracedValue):
            if x._tg_trace is self:
                return x._tg_var
            return self._capture(x) if self._may_capture(x._tg_trace) else self._foreign(x)
        if isinstance(x, (bool, int, float)) and not isinstance(x, np.generic):
            if type(x) is int and not -2**63 <= x < 2**63:
                raise OverflowError(f"Python int {x} too large to convert to int64")
            return Literal(x, like_dtype if like_dtype is not None else np.result_type(x))
        inner = getattr(x, "_tg_concrete", None)
        if inner is not None:  # an eager tensor captured by closure: its data is a constant,
            if self.capture_tensors and getattr(x, "requires_grad", False):
                return self._capture_tensor(x)  # or an input where autograd must see it
            x = inner()
        arr = np.asarray(x)
        if arr.ndim == 0 and arr.dtype != object:
            arr = supported_array(arr, f"the constant {arr!r}")
            return Literal(arr, arr.dtype)
        return self.const(x)

    def _may_capture(self, outer) -> bool:
        """`outer` encloses this trace: it is running on this thread (or, for builders
        never entered, was made before this one)."""
        if outer.entered:
            return not outer.finished and outer in TRACES
        return outer.level < self.level

    def _foreign(self, x: TracedValue):
        trace = x._tg_trace
        if trace.finished:
            raise leaked(x, "is used after its trace ended")
        if trace.entered:
            raise leaked(x, "is used outside its trace (from another thread, or by a trace "
                            "that is not nested inside it)")
        raise UnexpectedTracerError(f"a traced value of another trace leaked into this one: {x!r}")

    def _check_running(self, args):
        if self.finished:
            raise leaked(next(a for a in args if getattr(a, "_tg_trace", None) is self),
                         "is used after its trace ended")

    def _capture(self, outer: TracedValue) -> Var:
        """An enclosing trace's value becomes an input of this graph (a closure)."""
        return self._captured_var(outer, outer.aval, lambda: outer._tg_trace.example_value(outer))

    def _capture_tensor(self, tensor) -> Var:
        """An eager tensor that requires grad becomes an input of this graph (a closure)."""
        data = tensor._tg_concrete()
        return self._captured_var(tensor, aval_of(data), lambda: data)

    def _captured_var(self, outer, aval, example) -> Var:
        for value, var in zip(self.captured, self._captured_vars):
            if value is outer:
                return var
        var = Var(aval)
        if self._example is not None:
            value = example()
            if value is not None:
                self._example[var] = value
        self.captured.append(outer)
        self._captured_vars.append(var)
        return var

    # -- the trace protocol used by ops.bind ------------------------------------
    def process(self, prim, args, params):
        self._check_running(args)
        like = next((a.aval.dtype for a in args if isinstance(a, TracedValue)), None)
        if prim.name == "where":  # the condition is bool; the branches set the dtype
            like = next((a.aval.dtype for a in args[1:] if isinstance(a, TracedValue)), None)
            if like is None:  # a numpy array branch, else each scalar its own
                like = next((a.dtype for a in args[1:] if isinstance(a, (np.ndarray, np.generic))),
                            None)
        atoms = [self._atom(a, like) for a in args]
        src = user_source_location() if self.record_source else None
        try:
            out_aval = prim.shape_rule(*[a.aval for a in atoms], **params)
        except ShapeError as e:
            raise ShapeError(f"{e}" + (f"\n  at {src}" if src else "")) from None
        if prim.multiple_results:
            outs = [Var(a) for a in out_aval]
            self.eqns.append(Eqn(prim, atoms, dict(params), outs, src))
            return [self.value_cls(self, v) for v in outs]
        out = Var(out_aval)
        self.eqns.append(Eqn(prim, atoms, dict(params), out, src))
        return self.value_cls(self, out)

    # -- concrete values and guards ------------------------------------------
    def concrete(self, value: TracedValue, kind: str) -> np.ndarray:
        """The value `value` has for the example inputs; records a guard on it."""
        self._check_running([value])
        if self._example is None:
            raise ConcretizationError(
                f"{kind}() needs the concrete value of a traced {value.aval} array, but this "
                "trace has no example inputs (abstract tracing). Use tracegrad.numpy.where "
                "for data-dependent choices, or trace with concrete arguments."
                + (f"\n  at {user_source_location()}" if self.record_source else ""))
        result = self._evaluate(value._tg_var)
        if result is None:
            raise ConcretizationError(
                f"{kind}() needs the concrete value of a traced {value.aval} array, but it "
                "depends on a value of an enclosing trace that has none (abstract tracing). "
                "Use tracegrad.numpy.where for data-dependent choices."
                + (f"\n  at {user_source_location()}" if self.record_source else ""))
        self.guards.append(Guard(value._tg_var, result.copy(), kind, user_source_location()))
        return result

    def example_value(self, value: TracedValue) -> np.ndarray | None:
        """The value for the example inputs, without recording a guard (None if abstract)."""
        self._check_running([value])
        return None if self._example is None else self._evaluate(value._tg_var)

    def add_guard(self, value, expected, kind: str, src: str | None = None):
        """Record a guard decided elsewhere (e.g. inside an inlined inner trace)."""
        if isinstance(value, TracedValue):
            self.guards.append(Guard(value._tg_var, np.asarray(expected).copy(), kind, src))

    def _evaluate(self, var: Var) -> np.ndarray | None:
        """`var`'s value for the example inputs; None where it depends on a captured value
        of an enclosing trace that has no example (that trace is abstract)."""
        from .interpreter import eval_eqns

        env = dict(self._example)
        env.update({v: arr for v, arr, _ in self._consts.values()})
        eval_eqns(self.eqns, env, partial=True)
        self._example.update(env)  # memoize: later guards reuse earlier values
        return env.get(var)

    def build(self, outputs) -> Graph:
        outvars = [self._atom(o, None) for o in outputs]
        consts = list(self._consts.values())
        return Graph(list(self.invars) + self._captured_vars, [v for v, _, _ in consts],
                     [a for _, a, _ in consts],
                     list(self.eqns), outvars, list(self.guards))
