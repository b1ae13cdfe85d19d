"""The closed set of primitives, and the one record of everything known about each.

A `Primitive` is the single home of a primitive's facts, as JAX keeps all of
`sin`'s rules next to `sin_p` in `lax.py`: its shape/dtype rule and numpy
reference, its VJP and JVP, its cost for fusion, the name PyTorch gives its
backward node, whether it is a transcendental (a polynomial in codegen), and
the NumPy function the front end derives from it.  The families register
themselves in `elementwise.py`, `reductions.py`, `structural.py` and
`linalg.py`; codegen keeps one lowering table keyed by name, checked complete
by a test.

Conventions the rest of the pipeline relies on:
  * every primitive has exactly one output;
  * elementwise n-ary primitives take operands of one dtype whose shapes are
    equal, except that rank-0 operands broadcast (the front end makes every
    other broadcast explicit with `broadcast`);
  * axes/shape params are tuples of Python ints, so params are hashable.

`bind` applies a primitive to whatever its operands are.  Boxed values (eager
tensors, traced values) carry a `_tg_trace` object with a `level` and a
`process(prim, args, params)` method; the operand with the highest level
decides.  Plain numpy arrays and Python scalars are evaluated with the numpy
reference implementation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# The kinds of primitive that fuse into loop bodies, one element at a time.
ELEMENTWISE_KINDS = ("unary", "binary", "compare", "logical", "select", "cast")
# "extern": a whole-array routine (sort, gather, LAPACK, ...) that fusion never
# fuses into: it reads its operands from buffers and writes fresh output buffers;
# codegen runs a native lowering when it has one, and otherwise calls back into
# the primitive's numpy `impl` from the compiled code.
KINDS = ELEMENTWISE_KINDS + ("reduce", "structural", "dot", "control", "extern")


class ShapeError(TypeError):
    """A primitive was applied to operands whose shapes or dtypes do not fit."""


@dataclass(eq=False)
class Primitive:
    """Everything about one primitive; `PRIMITIVES[name]` is the only instance.

    vjp(g, out, *primals, **params) -> tuple of cotangents (None = zero);
    jvp(tangents, out, *primals, **params) -> tangent or None (zero).
    A primitive with `differentiable=False` has zero derivatives everywhere
    (comparisons, `sign`, `stop_gradient`): autodiff treats its output as
    constant, and eager tensors record no backward node for it.
    """

    name: str
    kind: str
    shape_rule: Callable
    impl: Callable
    vjp: Callable | None = None
    jvp: Callable | None = None
    differentiable: bool = True
    # relative per-element cost, in simple vector ops: fusion recomputes cheap
    # values in each consumer and stores expensive ones; threads weigh kernels by
    # it.  Default: 1 for elementwise primitives, 0 for index-only ones.
    cost: int | None = None
    transcendental: bool = False  # lowered to a mathlib polynomial (outlined when many)
    torch_name: str | None = None  # PyTorch's backward node class name
    # where PyTorch's name depends on the operands: (rank of operand 0, params) -> name or None
    torch_variant: Callable | None = None
    # the NumPy ufunc this primitive is, when the front end derives its function
    # and array method from the table (float-valued unary functions)
    numpy_name: str | None = None
    doc: str = ""
    # several outputs: the shape rule returns a list of avals, impl and bind a list
    multiple_results: bool = False
    # vjp(..., needed=bools) computes only the cotangents of the operands flagged
    # (eager backward passes it: an operand that requires no grad costs nothing)
    selective_vjp: bool = False
    # dce_rule(eqn, used) -> (eqn', used_inputs): drops the outputs not `used`
    # (a list of bools per output) and says which inputs the rest still read
    dce_rule: Callable | None = None
    # a native replacement of `impl` for concrete numpy operands, installed by the
    # facade (ir/ stays free of codegen); it returns NotImplemented where it does
    # not apply (dtype, layout, size), and `run` then falls back to `impl`
    native: Callable | None = None
    # impl_into(out, *operands, **params): `impl` writing its one result into `out`, an
    # array of the result's type (the host callback's output buffer: no result array
    # allocated and copied over)
    impl_into: Callable | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"primitive {self.name}: unknown kind {self.kind!r}")
        if not self.differentiable:
            self.vjp, self.jvp = zero_vjp, zero_jvp
        if self.cost is None:
            self.cost = 1 if self.elementwise else 0

    @property
    def elementwise(self) -> bool:
        return self.kind in ELEMENTWISE_KINDS

    @property
    def records_backward(self) -> bool:
        """Eager tensors record a backward node: differentiable, or PyTorch's flat
        functions with a node of their own (`sign` gives SignBackward0, zero gradients)."""
        return self.differentiable or self.torch_name is not None

    def backward_name(self, ndim: int, params: dict) -> str:
        variant = self.torch_variant(ndim, params) if self.torch_variant else None
        return variant or self.torch_name

    def run(self, *args, **params):
        """Evaluate on concrete operands: the native eager kernel where one is
        installed and applies, else the numpy reference `impl`."""
        if self.native is not None:
            out = self.native(*args, **params)
            if out is not NotImplemented:
                return out
        return self.impl(*args, **params)

    def __repr__(self):
        return self.name


PRIMITIVES: dict[str, Primitive] = {}


def register(prim: Primitive) -> Primitive:
    if prim.name in PRIMITIVES:
        raise ValueError(f"primitive {prim.name!r} registered twice")
    PRIMITIVES[prim.name] = prim
    return prim


def zero_vjp(g, out, *primals, **params):
    return (None,) * len(primals)


def zero_jvp(tangents, out, *primals, **params):
    return None


def fail(name, msg, *avals):
    shown = ", ".join(str(a) for a in avals)
    raise ShapeError(f"{name}: {msg} (operands: {shown})")


# ---- binding ----------------------------------------------------------------------

def find_trace(args):
    best = None
    for a in args:
        t = getattr(a, "_tg_trace", None)
        if t is not None and (best is None or t.level > best.level):
            best = t
    return best


# Traced Python scalars (`tracer.scalars`): type -> fn(scalar, like_dtype or None) giving
# its traced 0-d value, in like_dtype as a Python number would be.  They carry no
# `_tg_trace` (they must not count as arrays), so `bind` and the builder unbox them.
SYMBOLIC_SCALARS: dict = {}


def like_dtype(prim, args):
    """The dtype a Python number among `args` takes: the first array's (where's branches')."""
    operands = args[1:] if prim.name == "where" else args
    return next((a.dtype for a in operands if type(a) not in SYMBOLIC_SCALARS
                 and getattr(a, "dtype", None) is not None), None)


def unbox_scalar(x, like):
    """`x` as its traced value when it is a traced Python scalar, else `x` itself."""
    fn = SYMBOLIC_SCALARS.get(type(x))
    return x if fn is None else fn(x, like)


def bind(name, *args, **params):
    prim = PRIMITIVES[name]
    trace = find_trace(args)
    if trace is None:
        if SYMBOLIC_SCALARS and any(type(a) in SYMBOLIC_SCALARS for a in args):
            like = like_dtype(prim, args)  # a traced Python float stays symbolic
            return bind(name, *(unbox_scalar(a, like) for a in args), **params)
        return prim.run(*args, **params)
    return trace.process(prim, args, params)


def binder(name: str) -> Callable:
    """The plain function applying primitive `name` to positional operands."""
    def f(*args):
        return bind(name, *args)
    f.__name__ = f.__qualname__ = name
    return f
