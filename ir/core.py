"""IR data structures: abstract values, SSA variables, equations and graphs.

A graph is a jaxpr-like program: typed input variables, explicit constants
(captured arrays with their values), a list of equations in topological order,
output atoms, and the guards recorded while tracing.  Most primitives have a
single output; control flow has several, and holds its bodies (closed graphs,
which read only their own inputs) in its params.  Nodes are pure: the same equation evaluated twice gives the
same value, which is what DCE, CSE and fusion rely on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

def debug_checks() -> bool:
    """TRACEGRAD_DEBUG=1: verify graphs after every construction and pass (tests set it)."""
    return os.environ.get("TRACEGRAD_DEBUG", "") not in ("", "0")


# The dtypes the IR knows; everything else is rejected at the front end.
DTYPES = {
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
    np.dtype(np.bool_): "bool",
    np.dtype(np.int32): "i32",
    np.dtype(np.int64): "i64",
}
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def native(dtype) -> np.dtype:
    """`dtype` in the host's byte order ('>f8' on x86 is computed as f64)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def computed_dtype(dtype) -> np.dtype:
    """The dtype a NumPy array computes in: the host's byte order, and narrow integers
    (uint8, int16, ...) as int64, as arguments and constants alike; other dtypes as they
    are (those outside DTYPES are refused by the caller)."""
    dtype = native(dtype)
    if dtype.kind in "iu" and dtype not in DTYPES and np.can_cast(dtype, np.int64):
        return np.dtype(np.int64)
    return dtype


def supported_array(arr: np.ndarray, what: str = "a captured constant") -> np.ndarray:
    """`arr` in its `computed_dtype` (a converted copy if that differs); a TypeError naming
    the dtype for the rest (float16, complex...)."""
    dtype = computed_dtype(arr.dtype)
    if dtype in DTYPES:
        return arr if arr.dtype == dtype else arr.astype(dtype)
    hint = " (numpy computes float16 from bools and int8s)" if dtype == np.float16 else ""
    raise TypeError(f"{what} has dtype {dtype}{hint}; tracegrad computes float32, "
                    "float64, bool, int32 and int64: convert it first, e.g. x.astype(np.float32)")


def short_dtype(dtype) -> str:
    """f32, f64, bool, i32, i64; numpy's name for a dtype the IR does not have (messages)."""
    dtype = np.dtype(dtype)
    return DTYPES.get(dtype) or str(dtype)


def is_float(dtype) -> bool:
    return np.dtype(dtype) in FLOAT_DTYPES


@dataclass(frozen=True)
class ShapedArray:
    """The abstract value of an array: its shape and dtype."""

    shape: tuple
    dtype: np.dtype

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __str__(self):
        return f"{short_dtype(self.dtype)}[{','.join(map(str, self.shape))}]"

    __repr__ = __str__


def aval_of(x) -> ShapedArray:
    a = np.asarray(x)
    return ShapedArray(a.shape, a.dtype)


class Var:
    """An SSA value.  Identity is the object itself; names come from the printer."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval

    def __repr__(self):
        return f"Var({self.aval})"


class Literal:
    """A scalar constant written inline in an equation (like `2.0:f32[]`)."""

    __slots__ = ("value", "aval")

    def __init__(self, value, dtype):
        self.value = np.asarray(value, dtype=dtype)
        assert self.value.shape == (), "literals are scalars"
        self.aval = ShapedArray((), self.value.dtype)

    def __repr__(self):
        return f"Literal({self.value!r})"


Atom = Var | Literal


@dataclass(eq=False)
class Eqn:
    """`out = prim[params] inputs`; `src` is the user's file:line that made it.

    A multi-output primitive (control flow) binds a list of Vars: `outs` is
    always the list (a single Var given here becomes a list of one), `out` is
    the output of a single-output equation.
    """

    prim: Any
    inputs: list
    params: dict
    outs: list
    src: str | None = None

    def __post_init__(self):
        self.outs = list(self.outs) if isinstance(self.outs, (list, tuple)) else [self.outs]

    @property
    def out(self) -> "Var":
        if len(self.outs) != 1:
            raise AttributeError(f"{self.prim} has {len(self.outs)} outputs: use `outs`")
        return self.outs[0]

    @out.setter
    def out(self, var: "Var"):
        self.outs = [var]


def subgraphs(eqn) -> list:
    """The bodies an equation holds in its params (a Graph, or tuples of Graphs)."""
    found = []
    for v in eqn.params.values():
        if isinstance(v, Graph):
            found.append(v)
        elif isinstance(v, tuple):
            found.extend(g for g in v if isinstance(g, Graph))
    return found


def map_subgraphs(eqn, fn):
    """`eqn` with `fn` applied to each of its bodies (the one recursion helper of passes);
    `eqn` itself when `fn` returns every body unchanged."""
    def apply(v):
        if isinstance(v, Graph):
            return fn(v)
        if isinstance(v, tuple) and any(isinstance(g, Graph) for g in v):
            new = tuple(fn(g) if isinstance(g, Graph) else g for g in v)
            return v if all(a is b for a, b in zip(new, v)) else new
        return v
    params = {k: apply(v) for k, v in eqn.params.items()}
    if all(params[k] is v for k, v in eqn.params.items()):
        return eqn
    return Eqn(eqn.prim, eqn.inputs, params, eqn.outs, eqn.src)


@dataclass
class Guard:
    """A Python decision taken on a traced value during tracing.

    `var` is the graph value the decision read; `expected` the concrete value
    seen.  A new set of inputs may reuse the graph only if every guard's var
    evaluates to its expected value again.
    """

    var: Var
    expected: Any
    kind: str
    src: str | None = None

    def holds(self, value) -> bool:
        value = np.asarray(value)
        expected = np.asarray(self.expected)
        if value.shape != expected.shape:
            return False
        if not np.array_equal(value, expected, equal_nan=True):
            return False
        # -0.0 == 0.0, but a value used in Python (atan2, copysign, repr) tells them apart
        return value.dtype.kind != "f" or bool(np.array_equal(np.signbit(value),
                                                               np.signbit(expected)))


@dataclass(eq=False)  # identity: graphs hold arrays, and equal texts may differ in constants
class Graph:
    invars: list
    constvars: list
    constvals: list
    eqns: list
    outvars: list
    guards: list = field(default_factory=list)

    def __str__(self):
        from .printer import format_graph

        return format_graph(self)

    @property
    def in_avals(self):
        return [v.aval for v in self.invars]

    @property
    def out_avals(self):
        return [v.aval for v in self.outvars]

    def replace(self, **changes) -> "Graph":
        fields = dict(invars=self.invars, constvars=self.constvars, constvals=self.constvals,
                      eqns=self.eqns, outvars=self.outvars, guards=self.guards)
        fields.update(changes)
        return Graph(**fields)
