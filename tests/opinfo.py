"""OpInfo: one record per `tracegrad.numpy` function, in the spirit of PyTorch's OpInfo.

An `OpInfo` names a function of `tracegrad.numpy` (`"sum"`, `"linalg.inv"`), its
numpy reference, sample inputs (`Sample`: shapes including 0-d, size 0 and
broadcasting, a drawing domain, keyword variants such as axis/keepdims/ddof),
the dtypes it runs in, tolerances, and whether it is differentiable.
`tests/test_opinfo.py` runs every entry eagerly (tensors), traced (the IR
interpreter) and compiled (`tracegrad.jit`), compares values with numpy and
gradients with central differences and with jax.numpy when installed.

How a sample is called: `fn(*args, **kwargs)`.  ndarray leaves of `args`
(also inside lists and tuples) are the inputs: floating leaves are drawn in
float64 and cast to the dtype under test, and are the differentiated inputs;
integer and bool leaves keep their dtype.  A leaf wrapped in `Static` and every
non-array value is a constant of the program (closed over when traced).

The table (`OPS`) follows the framework, grouped by family.
"""
from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fuzz_ref import log_softmax_ref, logsumexp_ref, sigmoid_ref, softmax_ref

FLOATS = ("float32", "float64")


# ---- samples -----------------------------------------------------------------------------

class Static:
    """An array argument that is a constant of the program, not an input (a static
    index array, a repeats count array...)."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"Static({self.value!r})"


@dataclass
class Sample:
    args: tuple
    kwargs: dict = field(default_factory=dict)

    def __repr__(self):
        args, kwvals = _map_leaves(lambda x: f"{x.dtype}{list(x.shape)}", tree(self))
        return f"Sample{args}{dict(zip(self.kwargs, kwvals)) or ''}"


def _map_leaves(f, tree):
    """`tree` (tuples and lists of leaves) with `f` applied to its ndarray leaves."""
    if isinstance(tree, (tuple, list)):
        return type(tree)(_map_leaves(f, t) for t in tree)
    return f(tree) if isinstance(tree, np.ndarray) else tree


def leaves(tree) -> list:
    out = []
    _map_leaves(out.append, tree)
    return out


def rebuild(tree, values):
    """`tree` with its ndarray leaves replaced, in order, by `values`; Static unwrapped."""
    it = iter(values)
    filled = _map_leaves(lambda _: next(it), tree)
    return _unwrap(filled)


def _unwrap(tree):
    if isinstance(tree, (tuple, list)):
        return type(tree)(_unwrap(t) for t in tree)
    return tree.value if isinstance(tree, Static) else tree


def is_float(x) -> bool:
    return np.issubdtype(np.asarray(x).dtype, np.floating)


def tree(sample: Sample) -> tuple:
    """The sample's leaves in one tree: positional args, then keyword values (in order)."""
    return (sample.args, tuple(sample.kwargs.values()))


def cast(sample: Sample, dtype) -> Sample:
    """The sample with its floating leaves in `dtype` (rounded for integers, > 0 for bool)."""
    dtype = np.dtype(dtype)

    def one(x):
        if not is_float(x):
            return x
        if dtype.kind in "iu":
            return np.round(x * 3).astype(dtype)
        return (x > 0) if dtype == np.bool_ else x.astype(dtype)
    args, kwvals = _map_leaves(one, tree(sample))
    return Sample(args, dict(zip(sample.kwargs, kwvals)))


def split_inputs(sample: Sample):
    """(float leaves, other leaves): the differentiated inputs and the rest."""
    ls = leaves(tree(sample))
    return [x for x in ls if is_float(x)], [x for x in ls if not is_float(x)]


def call(op: "OpInfo", fn, sample: Sample, floats, others):
    """`fn` applied to `sample` with its float and other leaves replaced by these values."""
    fl, ot = iter(floats), iter(others)
    values = [next(fl) if is_float(x) else next(ot) for x in leaves(tree(sample))]
    args, kwvals = rebuild(tree(sample), values)
    out = fn(*args, **dict(zip(sample.kwargs, kwvals)))
    return op.post(out) if op.post is not None else out


def outputs(out) -> list:
    """The output leaves of a function's result (tuples, lists, namedtuples flattened)."""
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in outputs(o)]
    return [out]


# ---- the record ----------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)  # hashed by identity (samples are cached per entry)
class OpInfo:
    name: str                       # tracegrad.numpy name; "linalg.X" for tnp.linalg.X
    ref: Callable | None = None     # numpy reference (default: np.<name>)
    shapes: tuple = ()              # input shapes of the default samples (one tuple each)
    kwargs: tuple = ({},)           # keyword variants, each crossed with every shape
    cases: tuple = ()               # more (shapes, kwargs) samples, not crossed
    make: Callable | None = None    # custom samples: make(rng, valid) -> list[Sample]
    low: float = -2.0               # floating inputs drawn from uniform[low, high] ...
    high: float = 2.0
    valid: Callable | None = None   # ... and redrawn until valid(*float leaves) holds
    dtypes: tuple = FLOATS
    rtol: float = 2e-5              # float32 tolerance; float64 uses rtol64
    rtol64: float = 1e-10
    grad: bool = True               # differentiable (False: the gradient must be zero)
    fd_rtol: float = 1e-6           # dot-product test against central differences
    fd: bool = True                 # False: samples sit on ties, differences say nothing
    post: Callable | None = None    # applied to outputs of both sides (e.g. sign gauges)
    constant_outputs: tuple = ()    # outputs that may be numpy arrays for tensor inputs
    fn: Callable | None = None      # the function under test (default: by name)
    jax: Callable | bool | None = None  # jax.numpy counterpart (None: by name, False: none)
    xfail: dict = field(default_factory=dict)  # check kind -> reason (strict xfail)
    id: str = ""                    # test id (default: name); entries may share a name

    @property
    def key(self) -> str:
        return self.id or self.name

    def resolve(self):
        if self.fn is not None:
            return self.fn
        import tracegrad.numpy as tnp
        return _attr(tnp, self.name)

    def reference(self):
        return self.ref if self.ref is not None else _attr(np, self.name)

    def jax_fn(self):
        if self.jax is False:
            return None
        if callable(self.jax):
            return self.jax
        import jax.numpy as jnp
        return _attr(jnp, self.name)

    def samples(self) -> list:
        return _samples(self)


def _attr(module, dotted):
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def draw(op: OpInfo, rng, shapes) -> list:
    """Float64 arrays of `shapes`, redrawn until `op.valid` accepts them."""
    for _ in range(1000):
        xs = [rng.uniform(op.low, op.high, s) for s in shapes]
        if op.valid is None or op.valid(*xs):
            return xs
    raise AssertionError(f"{op.key}: could not draw valid inputs for shapes {shapes}")


@functools.lru_cache(maxsize=None)
def _cached_samples(op: OpInfo) -> tuple:
    rng = np.random.default_rng(seed_of(op.key))
    if op.make is not None:
        return tuple(op.make(rng, op.valid))
    pairs = [(shapes, kw) for shapes in op.shapes for kw in op.kwargs] + list(op.cases)
    return tuple(Sample(tuple(draw(op, rng, shapes)), dict(kw)) for shapes, kw in pairs)


def _samples(op):
    return list(_cached_samples(op))


# ---- domains and shapes ------------------------------------------------------------------

def away_from(points, margin=0.1):
    """Every input element at least `margin` from each of `points` (kinks, poles)."""
    return lambda *xs: all(np.all(np.abs(x - p) > margin) for x in xs for p in points)


def no_ties(*xs):
    """Pairwise distinct elements across all inputs (max/min/sort: gradients at ties)."""
    flat = np.sort(np.concatenate([np.ravel(x) for x in xs]))
    return bool(np.all(np.diff(flat) > 1e-3))


U = ((), (0,), (3,), (2, 3))                         # unary: 0-d, size 0, vector, matrix
U1 = ((0,), (3,), (2, 3))                            # at least one axis
B = (((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((4,), ()),
     ((0,), (1,)), ((), ()))                         # binary, with broadcasting
R = ((4,), (2, 3), (2, 3, 4))                        # reductions (nonempty)
AXES = ({}, {"axis": 0}, {"axis": -1, "keepdims": True}, {"axis": (0, -1)})


def shapes1(*shapes):
    return tuple((s,) for s in shapes)


def op(name, ref=None, **kw) -> OpInfo:
    return OpInfo(name, ref, **kw)


def unary(name, ref=None, **kw) -> OpInfo:
    kw.setdefault("shapes", shapes1(*U))
    return OpInfo(name, ref, **kw)


def binary(name, ref=None, **kw) -> OpInfo:
    kw.setdefault("shapes", B)
    return OpInfo(name, ref, **kw)


def reduction(name, ref=None, axes=AXES, **kw) -> OpInfo:
    """A reduction over `axes` variants, on R shapes and the full reduction of a 0-d
    and a size-0 input where numpy defines it."""
    kw.setdefault("shapes", shapes1((2, 3), (2, 3, 4)))
    kw.setdefault("kwargs", axes)
    kw["cases"] = ((((4,),), {}), (((4,),), {"axis": 0})) + kw.get("cases", ())
    return OpInfo(name, ref, **kw)


# ---- references and jax counterparts that numpy and jax.numpy do not name ------------------

def _jax(path):
    """A lazily imported jax callable, e.g. _jax("nn.sigmoid")."""
    def f(*args, **kwargs):
        import jax
        return _attr(jax, path)(*args, **kwargs)
    return f


def libm(name):
    """Python's math.`name` elementwise (numpy has no erf), in float64 then the input's
    float dtype."""
    import math
    f = np.frompyfunc(getattr(math, name), 1, 1)

    def ref(x):
        x = np.asarray(x)
        out = np.asarray(f(x.astype(np.float64)), np.float64)
        return out.astype(x.dtype) if x.dtype.kind == "f" else out
    return ref


def scipy_ref(name):
    """scipy.special's `name` (a test extra), in the input's float dtype."""
    def ref(x):
        import scipy.special
        x = np.asarray(x)
        out = getattr(scipy.special, name)(x.astype(np.float64))
        return out.astype(x.dtype) if x.dtype.kind == "f" else out
    return ref


def NOT_INTEGER(*xs):
    """Inputs away from the poles at 0 and the negative integers."""
    return all(np.all(np.abs(x - np.rint(x)) > 0.05) for x in xs)


def with_bool_condition(shapes):
    """where(condition, x, y) samples: a bool condition broadcast with x and y."""
    def make(rng, valid):
        return [Sample((rng.uniform(-1, 1, c) > 0, rng.uniform(-2, 2, x), rng.uniform(-2, 2, y)))
                for c, x, y in shapes]
    return make


def fixed(*samples):
    """Samples written out: each a tuple of args (shapes become float64 inputs) or
    (args, kwargs).  A tuple of ints inside args stays static (a shape or axes)."""
    def make(rng, valid):
        out = []
        for s in samples:
            args, kwargs = s if isinstance(s, tuple) and len(s) == 2 and isinstance(s[1], dict) \
                else (s, {})
            out.append(_draw_valid(rng, valid, args, kwargs))
        return out
    return make


def _draw_valid(rng, valid, args, kwargs) -> Sample:
    for _ in range(1000):
        sample = Sample(tuple(_draw_marked(rng, a) for a in args),
                        {k: _draw_marked(rng, v) for k, v in kwargs.items()})
        if valid is None or valid(*split_inputs(sample)[0]):
            return sample
    raise AssertionError(f"could not draw valid inputs for {args}")


class Shape:
    """In `fixed` samples: a float64 input of this shape (drawn from [-2, 2])."""

    def __init__(self, *shape, low=-2.0, high=2.0):
        self.shape, self.low, self.high = shape, low, high


def _draw_marked(rng, a):
    if isinstance(a, Shape):
        return rng.uniform(a.low, a.high, a.shape)
    if isinstance(a, list):
        return [_draw_marked(rng, x) for x in a]
    return a


S = Shape

# ---- the table -----------------------------------------------------------------------------

NONZERO = away_from([0], 0.3)
POSITIVE = {"low": 0.3, "high": 2.0}
COMPARE = {"grad": False, "dtypes": FLOATS + ("int32", "int64")}
LOGICAL = {"grad": False, "dtypes": FLOATS + ("bool",)}
BITWISE = {"grad": False, "dtypes": ("bool", "int32", "int64")}

ELEMENTWISE = [
    unary("exp"), unary("log", **POSITIVE), unary("log1p", low=-0.5), unary("expm1"),
    unary("sqrt", **POSITIVE), unary("sin"), unary("cos"), unary("tanh"),
    unary("abs", valid=away_from([0])), unary("absolute", valid=away_from([0])),
    unary("sign", grad=False), unary("negative"), unary("positive"), unary("square"),
    unary("reciprocal", valid=NONZERO),
    binary("power", **POSITIVE),
    op("power", id="power_int_exponent", make=fixed((S(3), 3), (S(2, 3), -2), (S(), 0)),
       valid=NONZERO),
    binary("add"), binary("subtract"), binary("multiply"),
    binary("divide", valid=lambda x, y: NONZERO(y)),
    binary("true_divide", valid=lambda x, y: NONZERO(y)),
    binary("maximum", valid=no_ties), binary("minimum", valid=no_ties),
    op("where", make=with_bool_condition((((3,), (3,), (3,)), ((2, 3), (3,), ()),
                                          ((), (2, 1), (1, 3)), ((0,), (0,), (1,))))),
    op("clip", make=fixed((S(2, 3), -0.5, 0.5), (S(4), None, 0.5), (S(), -1.0, None)),
       valid=away_from([-0.5, 0.5, -1.0], 0.05)),
    unary("stop_gradient", ref=lambda x: x, grad=False, jax=_jax("lax.stop_gradient")),
    binary("less", **COMPARE), binary("less_equal", **COMPARE), binary("greater", **COMPARE),
    binary("greater_equal", **COMPARE), binary("equal", **COMPARE),
    binary("not_equal", **COMPARE),
    binary("logical_and", **LOGICAL), binary("logical_or", **LOGICAL),
    binary("logical_xor", **LOGICAL), unary("logical_not", **LOGICAL),
    binary("bitwise_and", **BITWISE), binary("bitwise_or", **BITWISE),
    binary("bitwise_xor", **BITWISE), unary("invert", **BITWISE),
]

SUM_CASES = ((((),), {}), (((0,),), {}), (((2, 0),), {"axis": 0}), (((3, 0),), {"axis": 1}))

REDUCTIONS = [
    reduction("sum", cases=SUM_CASES, dtypes=FLOATS + ("int32", "int64", "bool")),
    reduction("mean", cases=SUM_CASES[:1]),
    reduction("var", kwargs=AXES + ({"axis": 1, "ddof": 1},), cases=SUM_CASES[:1]),
    reduction("std", kwargs=AXES + ({"axis": 0, "ddof": 1, "keepdims": True},)),
    reduction("max", valid=no_ties, cases=SUM_CASES[:1] + ((((3, 0),), {"axis": 0}),)),
    reduction("amax", valid=no_ties), reduction("min", valid=no_ties),
    reduction("amin", valid=no_ties, cases=SUM_CASES[:1]),
]

SHAPES = [
    op("reshape", make=fixed((S(2, 3), (3, 2)), (S(2, 3), (-1,)), (S(), (1, 1)),
                             (S(0, 3), (3, 0)), (S(2, 3, 4), (4, -1)))),
    unary("ravel"),
    op("transpose", make=fixed((S(2, 3),), (S(),), (S(2, 3, 4), (1, 0, 2)),
                               ((S(2, 0, 4),), {"axes": (2, 0, 1)}))),
    op("swapaxes", make=fixed((S(2, 3, 4), 0, -1), (S(3, 1), 1, 0))),
    op("moveaxis", make=fixed((S(2, 3, 4), 0, -1), (S(2, 3, 4), -1, 0))),
    op("sliding_window_view", ref=np.lib.stride_tricks.sliding_window_view,
       make=fixed((S(7), 3), (S(4, 5), (2, 3)), ((S(4, 5), 2), {"axis": -1}),
                  ((S(40, 2), 35), {"axis": 0}))),
    op("broadcast_to", make=fixed((S(), (2, 3)), (S(3), (2, 3)), (S(2, 1), (2, 4)),
                                  (S(1), (0,)))),
    op("squeeze", make=fixed((S(1, 3, 1),), ((S(1, 3, 1),), {"axis": 0}),
                             ((S(1, 3, 1),), {"axis": (0, 2)}), (S(),))),
    op("expand_dims", make=fixed((S(), 0), (S(3), -1), (S(2, 3), (0, 2)))),
    op("concatenate", make=fixed(([S(2, 3), S(2, 1)], 1), ([S(3), S(0), S(2)],),
                                 (([S(2, 2), S(3)],), {"axis": None}))),
    op("stack", make=fixed(([S(2, 3), S(2, 3)],), ([S(), S()], 0), (([S(3), S(3)],), {"axis": -1}))),
]

MATMUL_SHAPES = (((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                 ((5, 2, 3), (3, 4)), ((5, 2, 3), (1, 3, 4)), ((0, 3), (3, 2)), ((2, 0), (0, 3)))

PRODUCTS = [
    op("matmul", shapes=MATMUL_SHAPES),
    op("dot", shapes=MATMUL_SHAPES[:4] + (((2, 3), (4, 3, 2)), ((), (2, 3)), ((2, 0), (0, 3)))),
    op("vdot", shapes=(((3,), (3,)), ((2, 3), (3, 2)), ((0,), (0,)))),
    op("inner", shapes=(((3,), (3,)), ((2, 3), (4, 3)), ((), (2,)), ((2, 0), (0,)))),
    op("outer", shapes=(((3,), (4,)), ((2, 2), (3,)), ((), (2,)), ((0,), (2,)))),
]

CONSTRUCTORS = [
    unary("asarray"), unary("array"),
    op("astype", make=fixed((S(2, 3), np.float64), (S(), np.float64), (S(0,), np.float64))),
    op("astype", id="astype_int", grad=False,
       make=fixed((S(2, 3), np.int64), (S(3), np.int32), (S(3), np.bool_))),
    unary("zeros_like", grad=False), unary("ones_like", grad=False),
    op("full_like", make=fixed((S(2, 3), 2.5), (S(), -1.0), (S(0,), 1.0)), grad=False),
    op("zeros", make=fixed(((2, 3),), (0,), ((),))),
    op("ones", make=fixed(((2, 3),), ((3,), {"dtype": np.float32}))),
    op("full", make=fixed(((2, 3), 1.5), ((0,), 2.0))),
    op("arange", make=fixed((5,), (1, 7, 2), (0,), ((3,), {"dtype": np.float64}))),
    op("eye", make=fixed((3,), (2, 4), ((3,), {"k": 1}))),
]

COMPOSITES = [
    unary("sigmoid", ref=sigmoid_ref, low=-8, high=8, jax=_jax("nn.sigmoid")),
    unary("softplus", ref=lambda x: np.logaddexp(0.0, x), low=-8, high=8,
          jax=_jax("nn.softplus")),
    unary("relu", ref=lambda x: np.maximum(x, 0), valid=away_from([0]), jax=_jax("nn.relu")),
    reduction("logsumexp", ref=logsumexp_ref, cases=SUM_CASES[:1],
              jax=_jax("scipy.special.logsumexp")),
    op("softmax", ref=softmax_ref, shapes=shapes1(*R), kwargs=({}, {"axis": 0}),
       jax=_jax("nn.softmax")),
    op("log_softmax", ref=log_softmax_ref, shapes=shapes1(*R), kwargs=({}, {"axis": 0}),
       jax=_jax("nn.log_softmax")),
]


# ---- the NumPy coverage families (issue 11) ----------------------------------------------

def ints(low, high, shape, rng):
    return rng.integers(low, high, shape)


def make_with(builder):
    """Samples from `builder(rng)` (a list of Samples), redrawn while `valid` fails."""
    def make(rng, valid):
        for _ in range(1000):
            samples = builder(rng)
            if valid is None or all(valid(*split_inputs(s)[0]) for s in samples):
                return samples
        raise AssertionError("could not draw valid samples")
    return make


def no_ties_finite(*xs):
    return no_ties(*[x[np.isfinite(x)] for x in xs])


def nan_samples(*shapes_kwargs):
    """Inputs with a NaN at every fifth position (the nan* reductions ignore them)."""
    def build(rng):
        out = []
        for shape, kw in shapes_kwargs:
            x = rng.uniform(-2, 2, shape)
            x.reshape(-1)[::5] = np.nan
            out.append(Sample((x,), dict(kw)))
        return out
    return make_with(build)


NAN_CASES = (((2, 3), {}), ((3, 4), {"axis": 0}), ((2, 4), {"axis": 1, "keepdims": True}),
             ((5,), {}))
NAN_REDUCTIONS = [op(n, make=nan_samples(*NAN_CASES), valid=no_ties_finite)
                  for n in ("nansum", "nanprod", "nanmean", "nanvar", "nanstd", "nanmax",
                            "nanmin", "nanmedian")] + [
    op("nanquantile", make=nan_samples(((3, 4), {"q": 0.3}), ((5,), {"q": 0.5}))),
    op("nanpercentile", make=nan_samples(((3, 4), {"q": 30.0, "axis": 1}))),
    op("nancumsum", make=nan_samples(((2, 3), {"axis": 1}), ((5,), {}))),
    op("nancumprod", make=nan_samples(((2, 3), {"axis": 0}), ((5,), {}))),
    op("nanargmax", make=nan_samples(*NAN_CASES[:3]), grad=False, valid=no_ties_finite),
    op("nanargmin", make=nan_samples(*NAN_CASES[:3]), grad=False, valid=no_ties_finite),
]

MORE_REDUCTIONS = [
    reduction("prod", low=0.5, high=1.5, cases=SUM_CASES[:2],
              dtypes=FLOATS + ("int64",)),
    reduction("ptp", valid=no_ties, axes=({}, {"axis": 0}, {"axis": -1, "keepdims": True})),
    reduction("any", cases=SUM_CASES[:2], **LOGICAL), reduction("all", cases=SUM_CASES[:2],
                                                                **LOGICAL),
    reduction("count_nonzero", axes=({}, {"axis": 0}, {"axis": 1, "keepdims": True}),
              grad=False, dtypes=FLOATS + ("int64", "bool")),
    reduction("average", axes=({}, {"axis": 0}, {"axis": -1, "keepdims": True})),
    op("average", id="average_weights", make=fixed((S(2, 3),), ((S(2, 3),), {"axis": 1,
       "weights": S(3, low=0.5)}), ((S(4),), {"weights": S(4, low=0.5)}))),
    op("cov", shapes=shapes1((3, 5), (5,)), kwargs=({}, {"rowvar": False}, {"ddof": 0},
                                                     {"bias": True})),
    op("corrcoef", shapes=shapes1((3, 5)), kwargs=({}, {"rowvar": False})),
]

MORE_SHAPES = [
    op("concat", make=fixed((([S(2, 3), S(2, 1)],), {"axis": 1}), (([S(3), S(2)],), {"axis": 0}),
                            (([S(2, 2), S(1, 2)],), {"axis": 0}))),
    op("permute_dims", make=fixed((S(2, 3, 4), (2, 0, 1)), (S(2, 3), (1, 0)))),
    op("rollaxis", make=fixed((S(2, 3, 4), 2), (S(2, 3, 4), 0, 2))),
    op("unstack", make=fixed((S(2, 3),), ((S(2, 3),), {"axis": 1}))),
    op("atleast_1d", make=fixed((S(),), (S(2, 3),), (S(), S(3)))),
    op("atleast_2d", make=fixed((S(),), (S(3),), (S(2, 3, 4),))),
    op("atleast_3d", make=fixed((S(),), (S(3),), (S(2, 3),))),
    op("vstack", make=fixed(([S(3), S(3)],), ([S(2, 3), S(1, 3)],), ([S()],))),
    op("row_stack", ref=np.vstack, jax=_jax("numpy.vstack"), make=fixed(([S(3), S(3)],), ([S(2, 3), S(1, 3)],))),
    op("hstack", make=fixed(([S(3), S(2)],), ([S(2, 3), S(2, 1)],), ([S(), S()],))),
    op("dstack", make=fixed(([S(3), S(3)],), ([S(2, 3), S(2, 3)],))),
    op("column_stack", make=fixed(([S(3), S(3)],), ([S(3, 2), S(3)],))),
    op("block", make=fixed(([S(2, 2), S(2, 1)],), ([[S(2, 2), S(2, 1)], [S(1, 2), S(1, 1)]],))),
    op("split", make=fixed((S(6), 3), (S(6, 2), [1, 4]), ((S(2, 4), 2), {"axis": 1}))),
    op("array_split", make=fixed((S(7), 3), (S(2, 5), 2, 1), (S(3), [1, 1]))),
    op("hsplit", make=fixed((S(2, 4), 2), (S(6), [2]))),
    op("vsplit", make=fixed((S(4, 2), 2),)),
    op("dsplit", make=fixed((S(1, 2, 4), 2),)),
]

MORE_CONSTRUCTORS = [
    unary("asanyarray", jax=_jax("numpy.asarray")),
    unary("ascontiguousarray", jax=_jax("numpy.asarray")), unary("copy"),
    unary("empty_like", ref=np.zeros_like, grad=False, jax=_jax("numpy.zeros_like")),
    op("empty", ref=np.zeros, make=fixed(((2, 3),), (0,)), jax=_jax("numpy.zeros")),
    op("identity", make=fixed((3,), (0,), ((2,), {"dtype": np.float32}))),
    op("tri", make=fixed((3,), (2, 4, 1), ((3,), {"k": -1}))),
]


def put_along_axis_fn(arr, indices, values, axis):
    """put_along_axis on a copy, returned (numpy's and tracegrad's write in place)."""
    import tracegrad.numpy as tnp
    out = tnp.copy(arr)
    tnp.put_along_axis(out, indices, values, axis)
    return out


def put_along_axis_ref(arr, indices, values, axis):
    out = np.copy(arr)
    np.put_along_axis(out, indices, values, axis)
    return out


def setitem(index, add=False):
    """y = copy(x); y[index] = v (or +=); return y: a functional update (scatter)."""
    def f(x, v):
        y = x.copy() if isinstance(x, np.ndarray) else _tnp().copy(x)
        if add:
            y[index] += v
        else:
            y[index] = v
        return y
    return f


def _tnp():
    import tracegrad.numpy as tnp
    return tnp


def indexing_samples(rng, valid=None):
    x = rng.uniform(-2, 2, (4, 3))
    return [Sample((x, np.array([0, 2, 2]))), Sample((x, np.array([[1], [3]]))),
            Sample((rng.uniform(-2, 2, 5), np.array([], np.int64)))]


def take_samples(rng, valid=None):
    x = rng.uniform(-2, 2, (4, 3))
    return [Sample((x, np.array([0, 2, 2]))), Sample((x, np.array([[1, 0]])), {"axis": 1}),
            Sample((x, np.array([3, 0])), {"axis": 0}), Sample((x, np.array(5)))]


def along_axis_samples(rng, valid=None):
    x = rng.uniform(-2, 2, (3, 4))
    return [Sample((x, rng.integers(0, 4, (3, 2)), -1)), Sample((x, rng.integers(0, 3, (1, 4)), 0))]


def put_along_samples(rng, valid=None):
    x = rng.uniform(-2, 2, (3, 4))
    idx = np.argsort(rng.uniform(size=(3, 4)), axis=1)[:, :2]  # distinct per row
    return [Sample((x, idx, rng.uniform(-2, 2, (3, 2)), 1))]


def nonzero_samples(rng, valid=None):
    a = rng.integers(-1, 2, (3, 4))
    return [Sample((a,), {"size": int(np.count_nonzero(a))}), Sample((a[0],), {"size": 6})]


def nonzero_ref(name):
    """np.<name> with jax's `size`: cut to `size` or padded with `fill_value` (0)."""
    def f(a, size):
        out = getattr(np, name)(a)
        pad = lambda v: np.concatenate([v[:size], np.zeros((max(size - len(v), 0),) + v.shape[1:],
                                                           v.dtype)])
        return tuple(pad(v) for v in out) if isinstance(out, tuple) else pad(out)
    return f


def extract_samples(rng, valid=None):
    a = rng.uniform(-2, 2, (3, 4))
    c = rng.integers(0, 2, (3, 4)).astype(bool)
    return [Sample((c, a), {"size": int(c.sum())}), Sample((c, a), {"size": 12})]


def extract_ref(condition, arr, size):
    v = np.extract(condition, arr)
    return np.concatenate([v[:size], np.zeros(max(size - len(v), 0), arr.dtype)])


GETITEM = [
    op("getitem", id="getitem_int_array", fn=lambda x, i: x[i], ref=lambda x, i: x[i],
       jax=lambda x, i: x[i], make=indexing_samples),
    op("getitem", id="getitem_mixed", fn=lambda x: x[[0, 2], 1:, None],
       ref=lambda x: x[[0, 2], 1:, None], jax=lambda x: x[np.array([0, 2]), 1:, None],
       shapes=shapes1((3, 4, 2))),
    op("getitem", id="getitem_bool_mask", make=fixed((S(3, 4), Static(np.eye(3, 4) > 0)),),
       fn=lambda x, m: x[m], ref=lambda x, m: x[m], jax=False),
    op("getitem", id="getitem_traced_int", fn=lambda x, i: x[i], ref=lambda x, i: x[i],
       jax=lambda x, i: x[i],
       make=lambda rng, valid: [Sample((rng.uniform(-2, 2, (4, 3)), np.array(2)))]),
    op("setitem", id="setitem_int_array", fn=setitem(([0, 2],)), ref=setitem(([0, 2],)),
       jax=lambda x, v: x.at[np.array([0, 2])].set(v), shapes=(((4, 3), (2, 3)), ((4, 3), ()))),
    op("setitem", id="setitem_slice", fn=setitem((slice(1, 3), 0)),
       ref=setitem((slice(1, 3), 0)), jax=lambda x, v: x.at[1:3, 0].set(v),
       shapes=(((4, 3), (2,)),)),
    op("setitem", id="iadd_repeated_index", fn=setitem(([0, 2, 0],), add=True),
       ref=setitem(([0, 2, 0],), add=True), shapes=(((4, 3), (3, 3)),),
       jax=lambda x, v: x.at[np.array([0, 2, 0])].set(x[np.array([0, 2, 0])] + v)),
]


INDEXING = [
    op("take", make=take_samples), op("take_along_axis", make=along_axis_samples),
    op("put_along_axis", fn=put_along_axis_fn, ref=put_along_axis_ref, make=put_along_samples,
       jax=lambda a, i, v, axis: _jax("numpy.put_along_axis")(a, i, v, axis, inplace=False)),
    op("choose", make=lambda rng, valid: [Sample((rng.integers(0, 3, (2, 3)),
                                                  [rng.uniform(-2, 2, (2, 3)) for _ in range(3)]))]),
    op("select", make=lambda rng, valid: [Sample(([rng.uniform(-1, 1, 4) > 0,
                                                   rng.uniform(-1, 1, 4) > 0],
                                                  [rng.uniform(-2, 2, 4), rng.uniform(-2, 2, 4)],
                                                  0.5))]),
    op("compress", make=fixed((Static(np.array([True, False, True])), S(3, 2)),
                              ((Static(np.array([False, True])), S(3, 2)), {"axis": 1})),
       fn=None, jax=False),
    op("nonzero", ref=nonzero_ref("nonzero"), make=nonzero_samples, dtypes=("int64",)),
    op("argwhere", ref=nonzero_ref("argwhere"), make=nonzero_samples, dtypes=("int64",)),
    op("flatnonzero", ref=nonzero_ref("flatnonzero"), make=nonzero_samples, dtypes=("int64",)),
    op("extract", ref=extract_ref, make=extract_samples),
    op("diag_indices", make=fixed((3,), (2, 3))),
    op("diag_indices_from", shapes=shapes1((3, 3)), grad=False),
    op("tril_indices", make=fixed((3,), (3, 1), (3, 0, 4))),
    op("triu_indices", make=fixed((3,), (3, -1), (2, 0, 4))),
    op("tril_indices_from", shapes=shapes1((3, 4)), kwargs=({}, {"k": 1}), grad=False),
    op("triu_indices_from", shapes=shapes1((3, 3)), kwargs=({}, {"k": -1}), grad=False),
    op("indices", make=fixed(((2, 3),), ((3,),))),
    op("ix_", make=lambda rng, valid: [Sample((np.array([0, 2]), np.array([1, 0, 1])))],
       dtypes=("int64",)),
    op("unravel_index", make=lambda rng, valid: [Sample((np.array([0, 5, 7]), (2, 4))),
                                                 Sample((np.array(3), (2, 2)))],
       dtypes=("int64",)),
    op("ravel_multi_index", make=lambda rng, valid: [Sample(((np.array([0, 1]),
                                                              np.array([3, 2])), (2, 4)))],
       dtypes=("int64",)),
]

AXIS_SORT = ({}, {"axis": 0}, {"axis": None})

SORTING = [
    op("sort", shapes=shapes1((5,), (3, 4), (0,)), kwargs=({},), valid=no_ties,
       cases=((((3, 4),), {"axis": 0}), (((3, 4),), {"axis": None}), (((),), {"axis": None}))),
    op("argsort", shapes=shapes1((5,), (3, 4)), kwargs=AXIS_SORT, valid=no_ties, grad=False),
    op("partition", make=fixed((S(5), 2), ((S(3, 4), 1), {"axis": 0})), valid=no_ties,
       xfail={"jax": "jax.numpy.partition orders the entries past kth differently (numpy's "
                     "and tracegrad's are sorted): both are valid partitions"}),
    op("argpartition", make=fixed((S(5), 2), ((S(3, 4), 1), {"axis": 0})), valid=no_ties,
       grad=False),
    op("lexsort", make=lambda rng, valid: [Sample(([rng.integers(0, 3, 6).astype(float),
                                                    rng.integers(0, 3, 6).astype(float)],))],
       grad=False),
    op("argmax", shapes=shapes1((5,), (3, 4)), kwargs=({}, {"axis": 0},
                                                      {"axis": -1, "keepdims": True}),
       valid=no_ties, grad=False),
    op("argmin", shapes=shapes1((5,), (3, 4)), kwargs=({}, {"axis": 0}), valid=no_ties,
       grad=False),
    op("searchsorted", make=lambda rng, valid: [
        Sample((np.sort(rng.uniform(-2, 2, 6)), rng.uniform(-2, 2, (2, 3)))),
        Sample((np.sort(rng.uniform(-2, 2, 6)), rng.uniform(-2, 2, 4)), {"side": "right"})],
       grad=False),
    op("digitize", make=lambda rng, valid: [
        Sample((rng.uniform(-2, 2, (2, 3)), Static(np.array([-1.0, 0.0, 1.0])))),
        Sample((rng.uniform(-2, 2, 4), Static(np.array([1.0, 0.0, -1.0]))), {"right": True})],
       grad=False),
    op("quantile", make=fixed((S(5), 0.3), ((S(3, 4), [0.25, 0.75]), {"axis": 1}),
                              ((S(3, 4), 0.5), {"axis": 0, "keepdims": True}),
                              ((S(6), 0.4), {"method": "nearest"})), valid=no_ties),
    op("percentile", make=fixed((S(5), 30.0), ((S(3, 4), [10.0, 90.0]), {"axis": 0})),
       valid=no_ties),
    op("median", shapes=shapes1((5,), (4,), (3, 4)), kwargs=({}, {"axis": -1}),
       valid=no_ties),
    op("cumsum", shapes=shapes1((5,), (3, 4), (0,)), kwargs=({}, {"axis": 0}, {"axis": -1}),
       dtypes=FLOATS + ("int32", "int64", "bool"), cases=((((),), {}),)),
    op("cumprod", shapes=shapes1((5,), (3, 4)), kwargs=({}, {"axis": 0}),
       dtypes=FLOATS + ("int64",)),
    op("cumulative_sum", shapes=shapes1((5,), (3, 4)), kwargs=({"axis": 0},
                                                               {"axis": 0, "include_initial": True})),
    op("cumulative_prod", shapes=shapes1((5,), (3, 4)),
       kwargs=({"axis": -1}, {"axis": 0, "include_initial": True})),
    op("bincount", dtypes=("float64",), ref=lambda x, weights=None, length=0: np.bincount(x, weights, length)[:length],
       jax=lambda x, weights=None, length=0: _jax("numpy.bincount")(x, weights, length=length),
       make=lambda rng, valid: [
           Sample((rng.integers(0, 5, 8),), {"length": 5}),
           Sample((rng.integers(0, 4, 6), rng.uniform(-2, 2, 6)), {"length": 3}),
           Sample((rng.integers(0, 3, 4),), {"length": 6})]),
    op("bincount", id="bincount_float32_weights", dtypes=("float32",),
       ref=lambda x, weights, length: np.bincount(x, weights, length)[:length],
       make=lambda rng, valid: [Sample((rng.integers(0, 4, 6), rng.uniform(-2, 2, 6)),
                                       {"length": 4})]),
    op("histogram", make=lambda rng, valid: [
        Sample((rng.uniform(-2, 2, 10),), {"bins": 4, "range": (-2.0, 2.0)}),
        Sample((rng.uniform(-2, 2, 10),), {"bins": Static(np.array([-2.0, 0.0, 1.0, 2.0])),
                                           "weights": rng.uniform(0, 1, 10)})],
       constant_outputs=(1,)),  # static bin edges
    op("unique", make=lambda rng, valid: [
        Sample((np.array([2.0, 0.0, 1.0, 2.0, 0.0, 3.0]),), {"size": 3}),
        Sample((np.array([3.0, 1.0, 3.0, 2.0]),), {"size": 3, "return_counts": True})],
       fd=False, ref=lambda a, size, **kw: _unique_ref(a, size, **kw)),
]


def _unique_ref(a, size, **kw):
    out = np.unique(a, **kw)
    if isinstance(out, tuple):
        return tuple(v[:size] for v in out)
    return out[:size]


PAD_MODES = ({"mode": "constant"}, {"mode": "edge"}, {"mode": "reflect"},
             {"mode": "symmetric"}, {"mode": "wrap"}, {"mode": "maximum"}, {"mode": "mean"},
             {"mode": "linear_ramp", "end_values": 1.0}, {"mode": "constant",
                                                          "constant_values": 2.0})

STRUCTURE = [
    op("pad", make=fixed(*[((S(3, 4), ((1, 2), (2, 1))), kw) for kw in PAD_MODES],
                         (S(3), 2), (S(), 1), ((S(2, 3), 1), {"mode": "minimum"})),
       valid=no_ties),
    op("tile", make=fixed((S(3), 2), (S(2, 3), (2, 1)), (S(), 3), (S(2), (2, 1, 2)))),
    op("repeat", make=fixed((S(3), 2), ((S(2, 3), 2), {"axis": 0}),
                            ((S(2, 3), Static(np.array([1, 0, 2]))), {"axis": 1}))),
    op("resize", make=fixed((S(3), (2, 4)), (S(2, 3), (4,)), (S(3), 0))),
    op("flip", shapes=shapes1((3,), (2, 3)), kwargs=({}, {"axis": 0}), cases=((((),), {}),)),
    op("fliplr", shapes=shapes1((2, 3))), op("flipud", shapes=shapes1((2, 3), (3,))),
    op("rot90", make=fixed((S(2, 3),), (S(2, 3), 2), ((S(2, 3, 4), -1), {"axes": (1, 2)}))),
    op("roll", make=fixed((S(5), 2), ((S(2, 3), -1), {"axis": 1}), (S(2, 3), 4),
                          ((S(2, 3), (1, 2)), {"axis": (0, 1)}))),
    op("append", make=fixed((S(3), S(2)), ((S(2, 3), S(1, 3)), {"axis": 0}))),
    op("insert", make=fixed((S(4), 1, S()), ((S(2, 3), [0, 2], S(2, 2)), {"axis": 1}))),
    op("delete", make=fixed((S(5), [0, 3]), ((S(2, 3), 1), {"axis": 1}),
                            (S(4), slice(1, 3)))),
    op("tril", shapes=shapes1((3, 4), (2, 3, 3)), kwargs=({}, {"k": 1})),
    op("triu", shapes=shapes1((3, 4), (2, 3, 3)), kwargs=({}, {"k": -1})),
    op("meshgrid", make=fixed((S(3), S(2)), ((S(3), S(2)), {"indexing": "ij"}),
                              ((S(2), S(3)), {"sparse": True}))),
    op("broadcast_arrays", make=fixed((S(3), S(2, 1)), (S(), S(2)))),
    op("diff", make=fixed((S(5),), ((S(3, 4),), {"axis": 0}), ((S(6),), {"n": 2}),
                          ((S(4),), {"prepend": 0.0, "append": S(2)}))),
    op("ediff1d", make=fixed((S(5),), ((S(2, 3),), {"to_begin": S(1), "to_end": 2.0}))),
    op("diagonal", make=fixed((S(3, 3),), (S(3, 4), 1), ((S(2, 3, 3),), {"axis1": 1,
                                                                        "axis2": 2}))),
    op("diag", make=fixed((S(3),), (S(3), 1), (S(3, 4),), (S(3, 3), -1))),
    op("diagflat", make=fixed((S(3),), (S(2, 2), 1))),
    op("trace", make=fixed((S(3, 3),), (S(3, 4), 1), ((S(2, 3, 3),), {"axis1": 1, "axis2": 2})),
       dtypes=FLOATS + ("int64",)),
]

CONTRACTIONS = [
    op("einsum", make=fixed(("ij,jk->ik", S(2, 3), S(3, 4)), ("ii", S(3, 3)),
                            ("i,i", S(3), S(3)), ("bij,bjk->bik", S(2, 2, 3), S(2, 3, 2)),
                            ("ij->ji", S(2, 3)), ("i,j->ij", S(2), S(3)), ("...i,i", S(2, 3), S(3)),
                            ("ij,jk,kl", S(2, 3), S(3, 2), S(2, 2)))),
    op("tensordot", make=fixed((S(2, 3, 4), S(3, 4, 2)), ((S(2, 3), S(3, 2)), {"axes": 1}),
                               ((S(2, 3), S(2, 3)), {"axes": ([0, 1], [0, 1])}),
                               ((S(2), S(3)), {"axes": 0}))),
    op("kron", shapes=(((2,), (3,)), ((2, 2), (2, 3)), ((), (2,)))),
    op("cross", shapes=(((3,), (3,)), ((4, 3), (3,)), ((2,), (2,)) if False else ((2, 3), (2, 3)))),
    op("vecdot", shapes=(((3,), (3,)), ((2, 3), (3,)), ((4, 2), (3, 1, 2))),
       kwargs=({},), cases=((((3, 2), (3, 2)), {"axis": 0}),)),
    op("matrix_transpose", shapes=shapes1((2, 3), (4, 2, 3))),
    op("matvec", shapes=(((2, 3), (3,)), ((4, 2, 3), (1, 3)))),
    op("vecmat", shapes=(((3,), (3, 2)), ((4, 3), (1, 3, 2)))),
]

MORE_ELEMENTWISE = [
    unary("arctan"), unary("log2", **POSITIVE), unary("log10", **POSITIVE), unary("exp2"),
    unary("rint", valid=lambda x: np.all(np.abs(x - np.round(x)) < 0.4), grad=False),
    unary("isreal", grad=False), unary("iscomplex", grad=False),
]

def frac_away(margin=0.05):
    """x1 / x2 at least `margin` from an integer, x2 away from 0 (floor and mod jumps)."""
    def valid(x, y):
        q = x / y
        return NONZERO(y) and bool(np.all(np.abs(q - np.round(q)) > margin))
    return valid


def not_near_integers(x, margin=0.05):
    return bool(np.all(np.abs(x - np.round(x)) > margin))


def specials(rng, valid=None):
    """Floating inputs with nan, +-inf and a signed zero, and an ordinary one."""
    return [Sample((np.array([np.nan, np.inf, -np.inf, 1.5, -0.0, 0.0]),)),
            Sample((rng.uniform(-2, 2, (2, 3)),))]


def int_pairs(low, high, low2, high2):
    """Integer-only binary samples (shifts, gcd): drawn directly as ints."""
    def make(rng, valid=None):
        return [Sample((rng.integers(low, high, shape), rng.integers(low2, high2, shape2)))
                for shape, shape2 in (((3,), (3,)), ((2, 3), (3,)), ((), (2,)))]
    return make


def in_place(name, mutate_first=True):
    """numpy's in-place writer `name` (fill_diagonal, put, place) on a copy, returned."""
    def f(a, *args, **kwargs):
        xp = np if isinstance(a, np.ndarray) else _tnp()
        out = xp.copy(a)
        getattr(xp, name)(out, *args, **kwargs)
        return out
    f.__name__ = name
    return f


def _jax_functional(name):
    """jax.numpy's functional form of an in-place numpy writer."""
    def f(a, *args, **kwargs):
        import jax.numpy as jnp
        return getattr(jnp, name)(a, *args, inplace=False, **kwargs)
    return f


INT = ("int32", "int64")
NO_JAX_NEXTAFTER = {"jax": "jax has no differentiation rule for nextafter"}
UNIT = {"low": -0.9, "high": 0.9}
BINARY_POSITIVE = {"low": 0.3, "high": 2.0}

MATH = [
    unary("tan", low=-1.2, high=1.2), unary("arcsin", **UNIT), unary("asin", **UNIT),
    unary("arccos", **UNIT), unary("acos", **UNIT),
    binary("arctan2", valid=lambda y, x: NONZERO(y)), binary("atan2", valid=lambda y, x: NONZERO(y)),
    unary("deg2rad"), unary("rad2deg"), unary("radians"), unary("degrees"),
    unary("sinc", valid=NONZERO), binary("hypot", valid=lambda x, y: NONZERO(x)),
    unary("sinh"), unary("cosh"), unary("arcsinh"), unary("asinh"),
    unary("arccosh", low=1.2, high=3.0), unary("acosh", low=1.2, high=3.0),
    unary("arctanh", **UNIT), unary("atanh", **UNIT),
    binary("logaddexp"), binary("logaddexp2"), unary("cbrt", valid=NONZERO),
    binary("float_power", **BINARY_POSITIVE), binary("pow", **BINARY_POSITIVE),
    op("ldexp", make=lambda rng, valid: [Sample((rng.uniform(-2, 2, (2, 3)),
                                                 rng.integers(-3, 4, (2, 3)))),
                                         Sample((rng.uniform(-2, 2, 3), np.array(2)))]),
    op("isnan", make=specials, grad=False), op("isinf", make=specials, grad=False),
    op("isfinite", make=specials, grad=False), op("isposinf", make=specials, grad=False),
    op("isneginf", make=specials, grad=False), op("signbit", make=specials, grad=False),
    binary("copysign", valid=lambda x, y: NONZERO(x) and NONZERO(y)),
    unary("fabs", valid=NONZERO),
    binary("heaviside", valid=lambda x, y: NONZERO(x)),
    binary("fmax", valid=no_ties), binary("fmin", valid=no_ties),
    unary("floor", grad=False, valid=not_near_integers),
    unary("ceil", grad=False, valid=not_near_integers),
    unary("trunc", grad=False, valid=not_near_integers),
    unary("fix", grad=False, valid=not_near_integers, jax=_jax("numpy.trunc")),
    unary("round", grad=False, kwargs=({}, {"decimals": 1}), valid=lambda x: not_near_integers(
        x + 0.5) and not_near_integers(10 * x + 0.5)),
    unary("around", grad=False, valid=lambda x: not_near_integers(x + 0.5)),
    binary("floor_divide", grad=False, valid=frac_away(), dtypes=FLOATS + INT),
    binary("remainder", valid=frac_away(), dtypes=FLOATS + INT),
    binary("mod", valid=frac_away(), dtypes=FLOATS + INT),
    binary("divmod", valid=frac_away(), dtypes=FLOATS + INT),
    binary("fmod", valid=frac_away(), dtypes=FLOATS + INT),
    unary("modf", valid=not_near_integers),
    op("nan_to_num", make=lambda rng, valid: [
        Sample((np.array([np.nan, np.inf, -np.inf, 1.5, -0.5]),),
               {"nan": 1.0, "posinf": 5.0, "neginf": -5.0}),
        Sample((rng.uniform(-2, 2, (2, 3)),))]),
    unary("real"), unary("imag", grad=False, constant_outputs=(0,)), unary("conjugate"), unary("conj"),
    unary("angle", grad=False, valid=NONZERO),
    binary("isclose", grad=False), binary("allclose", grad=False),
    op("array_equal", grad=False, shapes=(((3,), (3,)), ((2, 3), (3,)), ((0,), (0,)))),
    op("array_equiv", grad=False, shapes=(((3,), (3,)), ((2, 3), (3,)), ((2,), (3,))),
       xfail={"jax": "jnp.array_equiv raises for shapes that do not broadcast (numpy: False)"}),
    op("isclose", id="isclose_equal_nan", grad=False, make=lambda rng, valid: [
        Sample((np.array([np.nan, 1.0, 2.0]), np.array([np.nan, 1.0 + 1e-9, 2.1])),
               {"equal_nan": True})]),
    op("left_shift", make=int_pairs(-5, 6, 0, 8), dtypes=INT),
    op("right_shift", make=int_pairs(-50, 50, 0, 8), dtypes=INT),
    op("bitwise_left_shift", make=int_pairs(-5, 6, 0, 8), dtypes=INT),
    op("bitwise_right_shift", make=int_pairs(-50, 50, 0, 8), dtypes=INT),
    op("gcd", make=int_pairs(-20, 20, -12, 12), dtypes=INT),
    op("lcm", make=int_pairs(-9, 9, -6, 6), dtypes=INT),
    unary("bitwise_not", grad=False, dtypes=("bool",) + INT),
    unary("bitwise_invert", grad=False, dtypes=("bool",) + INT,
          ref=np.bitwise_not),
    unary("atan"),
    unary("erf", ref=libm("erf"), jax=_jax("scipy.special.erf"), low=-4.0, high=4.0),
    unary("erfc", ref=libm("erfc"), jax=_jax("scipy.special.erfc"), low=-4.0, high=4.0),
    unary("lgamma", ref=scipy_ref("gammaln"), jax=_jax("scipy.special.gammaln"),
          low=-4.0, high=6.0, valid=NOT_INTEGER),
    unary("digamma", ref=scipy_ref("psi"), jax=_jax("scipy.special.digamma"),
          low=-4.0, high=6.0, valid=NOT_INTEGER),
    unary("frexp", valid=NONZERO), binary("nextafter", xfail=NO_JAX_NEXTAFTER),
    unary("spacing", grad=False, make=specials, xfail=NO_JAX_NEXTAFTER),
    op("copyto", fn=in_place("copyto"), ref=in_place("copyto"), jax=False,
       make=fixed((S(2, 3), S(3)), (S(2, 3), S()),
                  ((S(3), S(3)), {"where": np.array([True, False, True])}))),
]

WINDOWS = [op(n, make=fixed((5,), (1,), (0,))) for n in ("bartlett", "blackman", "hamming",
                                                             "hanning")]

MORE_CONSTRUCTORS_2 = WINDOWS + [
    op("kaiser", make=fixed((5, 3.0), (1, 0.5))),
    op("linspace", make=fixed((S(), S(), 5), ((S(), S(), 4), {"endpoint": False}),
                              ((S(2), S(2), 3), {"axis": 1}), (0.0, 1.0, 5))),
    op("logspace", make=fixed((S(), S(), 5), ((S(), S(), 4), {"base": 2.0}))),
    op("geomspace", make=fixed((S(low=0.5), S(low=0.5), 5),
                               ((S(low=0.5), S(low=0.5), 3), {"endpoint": False}))),
    op("vander", make=fixed((S(3),), ((S(4),), {"N": 2}), ((S(3),), {"increasing": True}))),
    op("fromfunction", make=fixed((lambda i, j: i + 2 * j, (2, 3)),), jax=False),
    op("fromiter", make=fixed((range(4), np.float64),), jax=False),
    op("frombuffer", make=fixed((np.arange(3.0).tobytes(),),), jax=False),
]


def _sum_axis(a, axis):
    return (np if isinstance(a, np.ndarray) else _tnp()).sum(a, axis=axis)


def accumulate(ufunc):
    """numpy's ufunc.accumulate (dispatched by `__array_ufunc__`)."""
    def f(a, axis=0):
        return getattr(np, ufunc).accumulate(a, axis=axis)
    f.__name__ = f"{ufunc}.accumulate"
    return f


ACCUMULATE = [op(u, id=f"{u}_accumulate", fn=accumulate(u), ref=accumulate(u), jax=False,
                 shapes=shapes1((5,), (3, 4)),
                 cases=((((3, 4),), {"axis": 1}),), valid=no_ties)
              for u in ("add", "multiply", "maximum", "minimum")]

MORE_STRUCTURE = ACCUMULATE + [
    op("gradient", make=fixed((S(5),), (S(4), 0.5), ((S(3, 4),), {"axis": 1}))),
    op("gradient", id="gradient_edge_order_2", make=fixed(((S(5),), {"edge_order": 2}),),
       xfail={"jax": "jnp.gradient does not support edge_order"}),
    op("trapezoid", make=fixed((S(5),), ((S(2, 4),), {"dx": 0.5}),
                               ((S(4),), {"x": np.array([0.0, 0.5, 1.5, 2.0])}))),
    op("apply_along_axis", make=fixed((lambda v: v * v[0], 1, S(2, 3)),),
       jax=False),
    op("apply_over_axes", make=fixed((_sum_axis, S(2, 3, 4), (0, 2)),), jax=False),
    op("fill_diagonal", fn=in_place("fill_diagonal"), ref=in_place("fill_diagonal"),
       make=fixed((S(3, 3), 2.0), (S(4, 3), S(3))), jax=_jax_functional("fill_diagonal")),
    op("put", fn=in_place("put"), ref=in_place("put"),
       make=fixed((S(2, 3), [0, 4], S(2)), (S(5), 1, 7.0)), jax=_jax_functional("put")),
    op("place", fn=in_place("place"), ref=in_place("place"),
       make=fixed((S(2, 3), Static(np.eye(2, 3) > 0), S(2)),), jax=False),
    op("mask_indices", make=fixed((3, np.triu), (3, np.tril, 1)), jax=False),
    op("convolve", make=fixed((S(5), S(3)), ((S(4), S(2)), {"mode": "same"}),
                              ((S(5), S(3)), {"mode": "valid"}), (S(2), S(4)),
                              ((S(80), S(70)), {"mode": "same"}))),  # past SHIFTED_TAPS
    op("correlate", make=fixed((S(5), S(3)), ((S(4), S(2)), {"mode": "full"}),
                               ((S(5), S(3)), {"mode": "same"}), (S(66), S(90)))),
]

# ---- linalg: well-conditioned inputs ------------------------------------------------------

def general(rng, *shape):
    """A well-conditioned square matrix (stack): uniform[-1, 1] plus 3 I."""
    n = shape[-1]
    return rng.uniform(-1, 1, shape) + 3 * np.eye(n)


def spd(rng, *shape):
    """A symmetric positive definite matrix (stack) with distinct eigenvalues (whp)."""
    a = rng.uniform(-1, 1, shape)
    return a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])


def linalg_op(name, build, **kw):
    return op(f"linalg.{name}", make=lambda rng, valid: build(rng), **kw)


def column_signs(m):
    """m with each column's sign fixed by its first row (eigenvectors, singular vectors are
    defined up to sign); operators only, so it runs on numpy, tracegrad and jax arrays."""
    d = m[..., :1, :]
    return m * (d / abs(d))


def eigh_post(out):
    w, v = out
    return w, column_signs(v)


def svd_post(out):
    u, s, vh = out
    d = u[..., :1, :]
    d = d / abs(d)
    return u * d, s, vh * _swap(d)


def _swap(d):
    """(..., 1, k) -> (..., k, 1), by indexing so that every array library accepts it."""
    return d[..., 0, :, None]


MATS = lambda rng: [Sample((general(rng, 3, 3),)), Sample((general(rng, 2, 3, 3),)),
                    Sample((general(rng, 1, 1),))]
SPD = lambda rng: [Sample((spd(rng, 3, 3),)), Sample((spd(rng, 2, 2, 2),))]

LINALG = [
    linalg_op("norm", lambda rng: [
        Sample((rng.uniform(-2, 2, 4),)), Sample((rng.uniform(-2, 2, (3, 3)),)),
        Sample((rng.uniform(0.5, 2, 4),), {"ord": 1}), Sample((rng.uniform(-2, 2, 4),),
                                                             {"ord": np.inf}),
        Sample((general(rng, 3, 3),), {"ord": 2}), Sample((general(rng, 3, 3),), {"ord": "nuc"}),
        Sample((general(rng, 3, 3),), {"ord": 1}), Sample((rng.uniform(-2, 2, (2, 3)),),
                                                         {"axis": 1, "keepdims": True}),
        Sample((rng.uniform(-2, 2, (2, 3, 4)),), {"axis": (1, 2)})], valid=no_ties),
    linalg_op("vector_norm", lambda rng: [
        Sample((rng.uniform(-2, 2, (2, 3)),)), Sample((rng.uniform(-2, 2, (2, 3)),),
                                                     {"axis": 0, "ord": 3}),
        Sample((rng.uniform(0.5, 2, 4),), {"ord": 1})]),
    linalg_op("matrix_norm", lambda rng: [
        Sample((rng.uniform(-2, 2, (2, 3, 3)),)), Sample((general(rng, 3, 3),), {"ord": 2}),
        Sample((general(rng, 3, 3),), {"ord": -np.inf})], valid=no_ties),
    linalg_op("inv", MATS), linalg_op("det", MATS), linalg_op("slogdet", MATS),
    linalg_op("solve", lambda rng: [
        Sample((general(rng, 3, 3), rng.uniform(-2, 2, 3))),
        Sample((general(rng, 3, 3), rng.uniform(-2, 2, (3, 2)))),
        Sample((general(rng, 2, 3, 3), rng.uniform(-2, 2, (2, 3, 1))))]),
    linalg_op("cholesky", SPD), linalg_op("eigvalsh", SPD),
    linalg_op("eigh", SPD, post=eigh_post),
    linalg_op("svd", lambda rng: [Sample((general(rng, 3, 3),)),
                                  Sample((rng.uniform(-2, 2, (2, 4, 3)),),
                                         {"full_matrices": False})], post=svd_post),
    linalg_op("svdvals", lambda rng: [Sample((rng.uniform(-2, 2, (3, 4)),)),
                                      Sample((general(rng, 2, 3, 3),))]),
    linalg_op("qr", lambda rng: [Sample((general(rng, 3, 3),)),
                                 Sample((rng.uniform(-2, 2, (4, 3)),)),
                                 Sample((rng.uniform(-2, 2, (4, 3)),), {"mode": "r"})]),
    linalg_op("lstsq", lambda rng: [Sample((rng.uniform(-2, 2, (5, 3)), rng.uniform(-2, 2, 5))),
                                    Sample((general(rng, 3, 3), rng.uniform(-2, 2, (3, 2))))],
              jax=False),  # jax.numpy gives residuals where numpy gives none (square a)
    linalg_op("pinv", lambda rng: [Sample((general(rng, 3, 3),)),
                                   Sample((rng.uniform(-2, 2, (4, 3)),))]),
    linalg_op("matrix_power", lambda rng: [Sample((general(rng, 3, 3), 3)),
                                           Sample((general(rng, 2, 2, 2), -2))]),
    linalg_op("matrix_power", lambda rng: [Sample((general(rng, 3, 3), 0)),
                                           Sample((general(rng, 2, 2, 2), 0))],
              id="matrix_power_0"),
    linalg_op("matrix_rank", lambda rng: [Sample((general(rng, 3, 3),)),
                                          Sample((np.outer(rng.uniform(1, 2, 3),
                                                           rng.uniform(1, 2, 4)),))]),
    linalg_op("cond", lambda rng: [Sample((general(rng, 3, 3),)),
                                   Sample((general(rng, 3, 3), "fro"))]),
    linalg_op("multi_dot", lambda rng: [Sample(([rng.uniform(-2, 2, (2, 3)),
                                                 rng.uniform(-2, 2, (3, 4)),
                                                 rng.uniform(-2, 2, 4)],))]),
    linalg_op("tensorsolve", lambda rng: [Sample((general(rng, 6, 6).reshape(6, 2, 3),
                                                  rng.uniform(-2, 2, 6)))]),
    linalg_op("tensorinv", lambda rng: [Sample((general(rng, 6, 6).reshape(2, 3, 6),),
                                               {"ind": 2})]),
    linalg_op("trace", lambda rng: [Sample((rng.uniform(-2, 2, (2, 3, 3)),)),
                                    Sample((rng.uniform(-2, 2, (3, 4)),), {"offset": 1})]),
    linalg_op("outer", lambda rng: [Sample((rng.uniform(-2, 2, 3), rng.uniform(-2, 2, 2)))]),
    linalg_op("matmul", lambda rng: [Sample((rng.uniform(-2, 2, (2, 3)),
                                             rng.uniform(-2, 2, (3, 2))))]),
    linalg_op("cross", lambda rng: [Sample((rng.uniform(-2, 2, (2, 3)),
                                            rng.uniform(-2, 2, 3)))]),
    linalg_op("diagonal", lambda rng: [Sample((rng.uniform(-2, 2, (2, 3, 4)),)),
                                       Sample((rng.uniform(-2, 2, (3, 3)),), {"offset": -1})]),
    linalg_op("matrix_transpose", lambda rng: [Sample((rng.uniform(-2, 2, (2, 3, 4)),))]),
    linalg_op("vecdot", lambda rng: [Sample((rng.uniform(-2, 2, (2, 3)),
                                             rng.uniform(-2, 2, 3)))]),
    linalg_op("tensordot", lambda rng: [Sample((rng.uniform(-2, 2, (2, 3)),
                                                rng.uniform(-2, 2, (3, 2))), {"axes": 1})]),
]

# ---- polynomials, interpolation, i0, isin (tracer/numpy/polynomial.py) ----------------------

_XP = np.array([-2.0, -0.5, 0.4, 1.0, 2.2])


def _interp_samples(rng, valid):
    x = np.array([[-2.5, -1.0, 0.1], [0.7, 1.3, 2.9]])  # away from the sample points
    return [Sample((x, _XP, rng.uniform(-2, 2, 5))),
            Sample((x[0], _XP, rng.uniform(-2, 2, 5)), {"left": -3.0, "right": 4.0}),
            Sample((x, _XP[::-1].copy(), rng.uniform(-2, 2, 5)), {"period": 2.3})]


def _no_jump_near_discont(p):
    """No jump between neighbours (either axis) within 0.1 of a discont (pi, or 1.5 for
    period 3): a correction switching on there is a step the differences would see."""
    jumps = np.concatenate([np.abs(np.diff(p, axis=a)).ravel() for a in range(p.ndim)])
    return bool(np.all((np.abs(jumps - np.pi) > 0.1) & (np.abs(jumps - 1.5) > 0.1)))


POLYNOMIAL = [
    op("polyval", make=fixed((S(4), S(2, 3)), (S(3, 2), S(2)))),
    op("polyadd", make=fixed((S(4), S(2)), (S(2), S(3)), (S(3), S(3)))),
    op("polysub", make=fixed((S(4), S(2)), (S(2), S(3)))),
    op("polymul", make=fixed((S(4), S(2)), (S(1), S(3)))),
    op("polyder", make=fixed((S(5),), ((S(5),), {"m": 2}), ((S(2),), {"m": 3}))),
    op("polyint", make=fixed((S(4),), ((S(3),), {"m": 2, "k": 1.5}), ((S(3), 2, S(2)), {}))),
    op("poly", make=fixed((S(4),), (S(1),))),
    op("interp", make=_interp_samples),
    op("unwrap", make=fixed((S(3, 6, low=-4.0, high=4.0),),
                            ((S(6, 3, low=-4.0, high=4.0),), {"axis": 0}),
                            ((S(6, low=-4.0, high=4.0),), {"period": 3.0})),
       valid=_no_jump_near_discont),
    unary("i0", low=-10.0, high=10.0),
    op("isin", grad=False, dtypes=FLOATS + ("int64",), make=lambda rng, valid: [
        Sample((np.array([[1.0, 2.0, 3.5], [0.0, -1.0, 2.0]]), np.array([2.0, 5.0, -1.0]))),
        Sample((np.array([1.0, 4.0, 2.0]), np.array([2.0, 3.0])), {"invert": True})]),
    op("histogram_bin_edges", make=fixed(((S(10),), {"bins": 4}), ((S(2, 5),), {"bins": 3})),
       valid=no_ties),
    op("histogram_bin_edges", id="histogram_bin_edges_range", grad=False,
       make=fixed(((S(6),), {"bins": 3, "range": (-1.0, 1.0)})),
       constant_outputs=(0,)),  # a static range: constant edges
]


OPS = (ELEMENTWISE + MORE_ELEMENTWISE + REDUCTIONS + MORE_REDUCTIONS + NAN_REDUCTIONS + SHAPES
       + MORE_SHAPES + PRODUCTS + CONSTRUCTORS + MORE_CONSTRUCTORS + COMPOSITES + GETITEM
       + INDEXING + SORTING + STRUCTURE + CONTRACTIONS + MATH + MORE_CONSTRUCTORS_2
       + MORE_STRUCTURE + LINALG + POLYNOMIAL)

# Functions of tracegrad.numpy.__all__ that need no entry: they return Python values
# describing an array, not arrays (checked by their own tests in test_numpy_protocol).
EXEMPT = {
    "shape": "returns a tuple of ints", "ndim": "returns an int", "size": "returns an int",
    "broadcast_shapes": "shapes in, a shape out", "result_type": "returns a dtype",
    "promote_types": "returns a dtype", "can_cast": "returns a Python bool",
    "isscalar": "returns a Python bool", "iscomplexobj": "returns a Python bool",
    "isrealobj": "returns a Python bool",
    "einsum_path": "returns numpy's contraction path (a list and a text)",
    "isdtype": "dtypes in, a Python bool out", "issubdtype": "dtypes in, a Python bool out",
    "iterable": "returns a Python bool",
}
