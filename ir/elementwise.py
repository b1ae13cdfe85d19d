"""Elementwise primitives: one row each, holding all of the primitive's facts.

Unary and binary primitives are described by their partial derivatives
(`d out / d operand`, evaluated at the primal point); the VJP is
`g * partial` summed back to the operand's shape by `ops.sum_to_shape`, the
JVP is `sum(t * partial)`.  Rules are written against `ir.ops`, so they run on
numpy arrays (eager backward), eager tensors (create_graph) and traced values
(the IR autodiff pass) alike.
"""
from __future__ import annotations

import math

import numpy as np

from . import gamma, ops
from .core import ShapedArray, is_float
from .primitives import Primitive, bind, binder, fail, register

__all__ = ["neg", "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tanh", "abs", "sign",
           "add", "sub", "mul", "div", "pow", "max", "min", "lt", "le", "gt", "ge", "eq", "ne",
           "logical_and", "logical_or", "logical_not", "stop_gradient", "integer_pow", "where",
           "convert", "floor", "ceil", "round", "trunc", "signbit", "atan", "atan2", "log2",
           "log10", "exp2", "rem", "copysign", "bitwise_and", "bitwise_or", "bitwise_xor",
           "bitwise_not", "shift_left", "shift_right", "erf", "erfc", "lgamma", "digamma"]


# ---- shape rules and numpy references ------------------------------------------------

def _common_shape(name, avals):
    shapes = {a.shape for a in avals if a.shape != ()}
    if len(shapes) > 1:
        fail(name, "operand shapes differ (only rank-0 operands broadcast implicitly)", *avals)
    return shapes.pop() if shapes else ()


def _same_dtype(name, avals):
    dtypes = {a.dtype for a in avals}
    if len(dtypes) > 1:
        fail(name, "operand dtypes differ", *avals)
    return dtypes.pop()


def _unary_rule(name, float_only):
    def rule(x):
        if float_only and not is_float(x.dtype):
            fail(name, "needs a float operand", x)
        return x
    return rule


def _binary_rule(name, out_bool=False, operands="any"):
    def rule(x, y):
        shape = _common_shape(name, (x, y))
        dtype = _same_dtype(name, (x, y))
        _check_kind(name, operands, x, y)
        return ShapedArray(shape, np.bool_ if out_bool else dtype)
    return rule


def _check_kind(name, operands, *avals):
    """`operands`: "any", "float" (float dtypes only) or "integer" (int or bool only)."""
    dtype = avals[0].dtype
    if operands == "float" and not is_float(dtype):
        fail(name, "needs float operands", *avals)
    if operands == "integer" and is_float(dtype):
        fail(name, "needs integer or bool operands", *avals)
    if operands == "int" and (is_float(dtype) or dtype == np.bool_):
        fail(name, "needs integer operands", *avals)


def _is_weak(x):
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def _cast_like(x, y):
    """numpy impl helper: Python scalars take the other operand's dtype."""
    weak_x, weak_y = _is_weak(x), _is_weak(y)
    x, y = np.asarray(x), np.asarray(y)
    if weak_x and not weak_y:
        x = x.astype(y.dtype)
    elif weak_y and not weak_x:
        y = y.astype(x.dtype)
    return x, y


def _np_binary(fn, out_dtype=None):
    def impl(x, y):
        x, y = _cast_like(x, y)
        with np.errstate(all="ignore"):
            out = fn(x, y)
        return np.asarray(out, dtype=out_dtype or x.dtype)
    return impl


def _np_unary(fn):
    def impl(x):
        x = np.asarray(x)
        with np.errstate(all="ignore"):
            return np.asarray(fn(x), dtype=x.dtype)
    return impl


# ---- derivative rules from partials ---------------------------------------------------

class Over:
    """A partial derivative 1 / d, applied as g / d: g * (1 / d) overflows where d is
    subnormal (log's derivative at 1e-310 times 1e-310 is 1, not inf), as JAX and PyTorch
    divide."""

    __slots__ = ("d",)

    def __init__(self, d):
        self.d = d


def _scale(g, partial):
    """g * partial; None stands for the partial 1, the float -1.0 for negation."""
    if partial is None:
        return g
    if isinstance(partial, float) and partial == -1.0:
        return neg(g)
    if isinstance(partial, Over):
        return div(g, partial.d)
    return mul(g, partial)


def _unary_rules(partial):
    def vjp(g, out, x, **params):
        return (_scale(g, partial(x, out, **params)),)

    def jvp(tangents, out, x, **params):
        t, = tangents
        return None if t is None else _scale(t, partial(x, out, **params))
    return vjp, jvp


def _add_all(terms):
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = add(total, t)
    return total


def _binary_rules(dx, dy):
    """A partial given as the constant ZERO (instead of a function) gives no cotangent."""
    def cotangent(g, d, x, y, out, like):
        return None if d is ZERO else ops.sum_to_shape(_scale(g, d(x, y, out)), ops.shape(like))

    def vjp(g, out, x, y, needed=(True, True)):
        return (cotangent(g, dx, x, y, out, x) if needed[0] else None,
                cotangent(g, dy, x, y, out, y) if needed[1] else None)

    def jvp(tangents, out, x, y):
        terms = [_scale(ops.broadcast(t, ops.shape(out)), d(x, y, out))
                 for t, d in zip(tangents, (dx, dy)) if t is not None and d is not ZERO]
        return _add_all(terms)
    return vjp, jvp


ZERO = "zero"  # a partial derivative that is identically zero


def _declare(name, kind, rule, impl, rules=None, **facts):
    prim = register(Primitive(name, kind, rule, impl, **facts))
    if rules is not None and prim.differentiable:
        prim.vjp, prim.jvp = rules
    return prim


def unary(name, np_fn, partial=None, *, float_only=True, **facts):
    """Register a unary primitive; `partial(x, out)` is d out / d x (None: not differentiable)."""
    if partial is None:
        facts["differentiable"] = False
    rules = _unary_rules(partial) if partial else None
    _declare(name, "unary", _unary_rule(name, float_only), _np_unary(np_fn), rules, **facts)
    return binder(name)


def binary(name, np_fn, dx=None, dy=None, *, kind="binary", operands="any", **facts):
    """Register a binary primitive with partials `dx(x, y, out)`, `dy(x, y, out)`
    (both None: not differentiable)."""
    out_bool = kind in ("compare", "logical")
    if out_bool or (dx is None and dy is None):
        facts["differentiable"] = False
    impl = _np_binary(np_fn, np.bool_ if out_bool else None)
    rules = None if out_bool else _binary_rules(dx, dy)
    facts.setdefault("selective_vjp", rules is not None)  # eager backward skips unneeded sides
    _declare(name, kind, _binary_rule(name, out_bool, operands), impl, rules, **facts)
    return binder(name)


def _pow_dy(x, y, out):
    # d/dy x**y = out * log(x); defined as 0 where x == 0 (as JAX does for y > 0), so
    # that 0**y does not poison the gradient with 0 * -inf, nor 0**-1 with inf * 0.
    zero = eq(x, 0.0)  # (out is inf there for y < 0: inf * log(1) would be nan)
    return where(zero, 0.0, mul(out, log(where(zero, 1.0, x))))


def _pow_dx(x, y, out):
    # y * x**(y-1).  Where x == y == 0 the base counts as 1, so the derivative is 0 there
    # (JAX's value: 0 * 0**-1 would be 0 * inf = nan), and elsewhere at y == 0 it is
    # 0 * x**-1, 0 still, but depending on y: the mixed derivative there is 1/x.
    both_zero = logical_and(eq(x, 0.0), eq(y, 0.0))
    return mul(y, pow(where(both_zero, 1.0, x), sub(y, 1.0)))


def _tie_mask(a, b, cmp):
    # maximum/minimum: the winner gets the gradient, ties split it evenly (as JAX).
    dt = ops.dtype(a)
    one = where(cmp(a, b), np.asarray(1.0, dt), np.asarray(0.0, dt))
    return where(eq(a, b), np.asarray(0.5, dt), one)


def _integer_pow_partial(x, out, y):
    if y == 0:
        return np.asarray(0.0, ops.dtype(x))
    if y == 1:
        return np.asarray(1.0, ops.dtype(x))
    return mul(float(y), x if y == 2 else integer_pow(x, y - 1))


# ---- the rows ---------------------------------------------------------------------------

_MATH = dict(cost=8, transcendental=True)

neg = unary("neg", np.negative, lambda x, out: np.asarray(-1.0, ops.dtype(x)),
            float_only=False, torch_name="NegBackward0")
exp = unary("exp", np.exp, lambda x, out: out, torch_name="ExpBackward0",
            numpy_name="exp", doc="e**x", **_MATH)
log = unary("log", np.log, lambda x, out: Over(x), torch_name="LogBackward0",
            numpy_name="log", doc="Natural logarithm", **_MATH)
log1p = unary("log1p", np.log1p, lambda x, out: Over(add(x, 1.0)),
              torch_name="Log1PBackward0", numpy_name="log1p", doc="log(1 + x), accurate near 0",
              **_MATH)
expm1 = unary("expm1", np.expm1, lambda x, out: add(out, 1.0), torch_name="Expm1Backward0",
              numpy_name="expm1", doc="exp(x) - 1, accurate near 0", **_MATH)
sqrt = unary("sqrt", np.sqrt, lambda x, out: div(0.5, out), torch_name="SqrtBackward0",
             numpy_name="sqrt", doc="Square root", cost=4)
sin = unary("sin", np.sin, lambda x, out: cos(x), torch_name="SinBackward0",
            numpy_name="sin", doc="Sine", **_MATH)
cos = unary("cos", np.cos, lambda x, out: neg(sin(x)), torch_name="CosBackward0",
            numpy_name="cos", doc="Cosine", **_MATH)
tanh = unary("tanh", np.tanh, lambda x, out: sub(1.0, mul(out, out)),
             torch_name="TanhBackward0", numpy_name="tanh", doc="Hyperbolic tangent", **_MATH)
def _abs_partial(x, out):
    # JAX's convention: d|x|/dx = 1 at x = 0 (x >= 0 counts as the right side).
    dt = ops.dtype(x)
    return where(ge(x, np.asarray(0, dt)), np.asarray(1, dt), np.asarray(-1, dt))


abs = unary("abs", np.abs, _abs_partial, float_only=False, torch_name="AbsBackward0")
# sign is flat everywhere (its jump at 0 has no derivative): not differentiable.
sign = unary("sign", np.sign, None, float_only=False, torch_name="SignBackward0")
# stop_gradient vanishes from kernel bodies (the value passes through): it costs nothing.
stop_gradient = unary("stop_gradient", np.asarray, None, float_only=False, cost=0)

add = binary("add", np.add, lambda x, y, out: None, lambda x, y, out: None,
             torch_name="AddBackward0")
sub = binary("sub", np.subtract, lambda x, y, out: None, lambda x, y, out: -1.0,
             torch_name="SubBackward0")
mul = binary("mul", np.multiply, lambda x, y, out: y, lambda x, y, out: x,
             torch_name="MulBackward0")
def _divide(x, y):
    """Float division; integers divide exactly, rounding toward zero as codegen's sdiv
    (not through float64, which is inexact past 2**53), y == 0 giving INT_MIN."""
    if x.dtype.kind != "i":
        return np.true_divide(x, y)
    safe = np.where(y == 0, 1, y).astype(x.dtype)
    q = np.floor_divide(x, safe)
    r = x - q * safe
    q = q + ((r != 0) & ((x < 0) != (safe < 0))).astype(x.dtype)   # floor -> trunc
    return np.where(y == 0, np.iinfo(x.dtype).min, q)


# d/dy reads x, not out (as PyTorch's DivBackward0): x / y is out again (CSE merges them
# in graphs), and an eager result changed in place does not spoil its own gradient
div = binary("div", _divide, lambda x, y, out: div(1.0, y),
             lambda x, y, out: neg(div(div(x, y), y)), torch_name="DivBackward0", cost=4)
pow = binary("pow", np.power, _pow_dx, _pow_dy, torch_name="PowBackward1", cost=16,
             transcendental=True)
max = binary("max", np.maximum, lambda x, y, out: _tie_mask(x, y, gt),
             lambda x, y, out: _tie_mask(y, x, gt), torch_name="MaximumBackward0")
min = binary("min", np.minimum, lambda x, y, out: _tie_mask(x, y, lt),
             lambda x, y, out: _tie_mask(y, x, lt), torch_name="MinimumBackward0")

lt = binary("lt", np.less, kind="compare")
le = binary("le", np.less_equal, kind="compare")
gt = binary("gt", np.greater, kind="compare")
ge = binary("ge", np.greater_equal, kind="compare")
eq = binary("eq", np.equal, kind="compare")
ne = binary("ne", np.not_equal, kind="compare")
logical_and = binary("and", np.logical_and, kind="logical")
logical_or = binary("or", np.logical_or, kind="logical")
_declare("not", "logical", lambda x: ShapedArray(x.shape, np.bool_), np.logical_not,
         differentiable=False)
logical_not = binder("not")


# ---- rounding, classification, more transcendentals, integer operations -----------------

# Rounding is flat between the integers and jumps at them: zero gradient (as JAX), but
# eager tensors record PyTorch's backward node (FloorBackward0 gives zeros too).
floor = unary("floor", np.floor, None, torch_name="FloorBackward0", doc="Largest integer <= x")
ceil = unary("ceil", np.ceil, None, torch_name="CeilBackward0", doc="Smallest integer >= x")
round = unary("round", np.rint, None, torch_name="RoundBackward0", numpy_name="rint",
              doc="Nearest integer, ties to even")
trunc = unary("trunc", np.trunc, None, torch_name="TruncBackward0",
              doc="Integer part, rounding toward zero")
_declare("signbit", "unary", lambda x: _typed_unary("signbit", x, "float", np.bool_),
         np.signbit, differentiable=False, doc="Sign bit set (also for -0.0 and -nan)")
signbit = binder("signbit")


def _typed_unary(name, x, operands, out_dtype=None):
    _check_kind(name, operands, x)
    return ShapedArray(x.shape, out_dtype or x.dtype)


_LN2, _LN10 = float(np.log(2.0)), float(np.log(10.0))

atan = unary("atan", np.arctan, lambda x, out: div(1.0, add(1.0, mul(x, x))),
             torch_name="AtanBackward0", numpy_name="arctan", doc="Inverse tangent", **_MATH)
log2 = unary("log2", np.log2, lambda x, out: div(1.0 / _LN2, x), torch_name="Log2Backward0",
             numpy_name="log2", doc="Base-2 logarithm (exact at powers of 2)", **_MATH)
log10 = unary("log10", np.log10, lambda x, out: div(1.0 / _LN10, x),
              torch_name="Log10Backward0", numpy_name="log10",
              doc="Base-10 logarithm (exact at powers of 10)", **_MATH)
exp2 = unary("exp2", np.exp2, lambda x, out: mul(out, _LN2), torch_name="Exp2Backward0",
             numpy_name="exp2", doc="2**x", **_MATH)


def _libm(fn):
    """numpy has no erf: libm's (through Python's math module, within an ULP), element by
    element, in float64 and rounded once for float32."""
    vectorized = np.frompyfunc(fn, 1, 1)
    return lambda x: np.asarray(vectorized(np.asarray(x, dtype=np.float64)), dtype=np.float64)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
erf = unary("erf", _libm(math.erf), lambda x, out: mul(_TWO_OVER_SQRT_PI, exp(neg(mul(x, x)))),
            torch_name="ErfBackward0", doc="Error function (scipy.special.erf)", **_MATH)
erfc = unary("erfc", _libm(math.erfc),
             lambda x, out: mul(-_TWO_OVER_SQRT_PI, exp(neg(mul(x, x)))),
             torch_name="ErfcBackward0", doc="1 - erf(x), accurate where erf is near 1", **_MATH)


class _GraphOps:
    """ir/gamma.py's operations as graph operations (ir.ops, looked up when called):
    trigamma, digamma's derivative, is built from them, so every order of derivative exists."""

    _NAMES = {"sel": "where", "rint": "round"}

    @staticmethod
    def c(v):
        return v  # a Python float: a weak constant of the operands' dtype

    def __getattr__(self, name):
        return getattr(ops, self._NAMES.get(name, name))


def _on_numpy(fn):
    """The numpy impl of one of ir/gamma.py's functions (computed in float64)."""
    return lambda x: fn(gamma.NUMPY, np.asarray(x, dtype=np.float64))


lgamma = unary("lgamma", _on_numpy(gamma.lgamma), lambda x, out: digamma(x),
               torch_name="LgammaBackward0", doc="log|Gamma(x)| (scipy.special.gammaln)",
               cost=24, transcendental=True)
digamma = unary("digamma", _on_numpy(gamma.digamma),
                lambda x, out: gamma.trigamma(_GraphOps(), x), torch_name="DigammaBackward0",
                doc="Gamma'(x) / Gamma(x) (scipy.special.psi)", cost=24, transcendental=True)


def _atan2_partial(wrt_first):
    # d atan2(a, b) / da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2); 0 at the origin, where
    # the quotient is 0/0 (PyTorch's value; a zero direction must not make every gradient nan)
    def partial(a, b, out):
        zero = np.asarray(0, ops.dtype(a))
        origin = logical_and(eq(a, zero), eq(b, zero))
        r2 = where(origin, np.asarray(1, ops.dtype(a)), add(mul(a, a), mul(b, b)))
        return div(b if wrt_first else neg(a), r2)
    return partial


atan2 = binary("atan2", np.arctan2, _atan2_partial(True), _atan2_partial(False),
               operands="float", torch_name="Atan2Backward0", cost=12, transcendental=True)
# C's fmod: x - trunc(x / y) * y, exact; the sign of x.  Integers: y == 0 gives 0 (numpy).
rem = binary("rem", np.fmod, lambda x, y, out: None,
             lambda x, y, out: neg(trunc(div(x, y))), torch_name="FmodBackward1", cost=4)


def _copysign_dx(x, y, out):
    dt = ops.dtype(x)
    return where(eq(signbit(x), signbit(y)), np.asarray(1, dt), np.asarray(-1, dt))


copysign = binary("copysign", np.copysign, _copysign_dx, ZERO, operands="float",
                  torch_name="CopysignBackward0")

# bitwise operations on integers (and bool, where they are the logical ones)
bitwise_and = binary("bitwise_and", np.bitwise_and, operands="integer")
bitwise_or = binary("bitwise_or", np.bitwise_or, operands="integer")
bitwise_xor = binary("bitwise_xor", np.bitwise_xor, operands="integer")
_declare("bitwise_not", "unary", lambda x: _typed_unary("bitwise_not", x, "integer"),
         _np_unary(np.invert), differentiable=False)
bitwise_not = binder("bitwise_not")
# numpy's shifts: a count outside [0, bits) gives 0 (left) or the sign fill (right)
shift_left = binary("shift_left", np.left_shift, operands="int")
shift_right = binary("shift_right", np.right_shift, operands="int")


# ---- integer_pow, where, convert ----------------------------------------------------------

def _integer_pow_rule(x, *, y):
    if not isinstance(y, int):
        fail("integer_pow", f"exponent must be a Python int, got {y!r}", x)
    return x


def widened_integer_pow(dtype, y: int) -> bool:
    """Whether x**y of a narrow float computes in float64 and rounds once: beyond a square
    its repeated products would round each time (float32 x**31: 22 ULP), and a negative
    power's x**|y| could overflow where the result is a subnormal."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" and dtype.itemsize < 8 and (y > 2 or y < 0)


# Float x**y with |y| above this is pow(x, y) (within 1.5 ULP) rather than products: the
# relative error of repeated squaring doubles with each square (float64 x**64: 33 ULP).
PRODUCT_POW_MAX = 4


def integer_pow_by_products(dtype, y: int) -> bool:
    """Whether x**y (a Python int y) is computed as exact repeated products (integers, and
    floats for |y| <= PRODUCT_POW_MAX: at most 2 ULP), else as pow."""
    return np.dtype(dtype).kind != "f" or abs(y) <= PRODUCT_POW_MAX


def _integer_pow_impl(x, *, y):
    x = np.asarray(x)
    if widened_integer_pow(x.dtype, y):
        return np.asarray(_integer_pow_impl(x.astype(np.float64), y=y).astype(x.dtype))
    with np.errstate(all="ignore"):
        if not integer_pow_by_products(x.dtype, y):
            return np.asarray(np.power(x, float(y)))
        if x.dtype.kind == "f":  # codegen's products, in its order: its values bit for bit
            p = _square_and_multiply(x, abs(y))
            return p if y >= 0 else np.asarray(np.divide(1, p, dtype=x.dtype))
        return np.asarray(np.power(x, y) if y >= 0 else 1 / np.power(x, -y), dtype=x.dtype)


def _square_and_multiply(x, n: int):
    """x**n for a float array and an int n >= 0 as exact repeated products (codegen's
    scalar_ops._ipow): a multiplication or two where numpy's power calls pow per element."""
    result, base = None, x
    while n:
        if n & 1:
            result = base if result is None else np.multiply(result, base)
        n >>= 1
        if n:
            base = np.multiply(base, base)
    if result is None:
        return np.ones_like(x)
    return result.copy() if result is x else np.asarray(result)  # a fresh array, as ufuncs give


_declare("integer_pow", "unary", _integer_pow_rule, _integer_pow_impl,
         _unary_rules(_integer_pow_partial), torch_name="PowBackward0")


def integer_pow(x, y: int):
    return bind("integer_pow", x, y=int(y))


def _where_rule(c, x, y):
    if c.dtype != np.bool_:
        fail("where", "condition must be bool", c, x, y)
    shape = _common_shape("where", (c, x, y))
    return ShapedArray(shape, _same_dtype("where", (x, y)))


def _where_impl(c, x, y):
    x, y = _cast_like(x, y)
    return np.asarray(np.where(c, x, y), dtype=x.dtype)


def _where_vjp(g, out, c, x, y):
    # The unselected branch gets an exact zero: an inf or nan there never leaks
    # into the gradient of the selected one (as in JAX).
    zero = np.asarray(0.0, ops.dtype(g))
    return (None, ops.sum_to_shape(where(c, g, zero), ops.shape(x)),
            ops.sum_to_shape(where(c, zero, g), ops.shape(y)))


def _where_jvp(tangents, out, c, x, y):
    _, tx, ty = tangents
    if tx is None and ty is None:
        return None
    zero = np.asarray(0.0, ops.dtype(out))
    # rank-0 operands broadcast implicitly: the tangent has the output's shape
    t = where(c, zero if tx is None else tx, zero if ty is None else ty)
    return ops.broadcast(t, ops.shape(out))


_declare("where", "select", _where_rule, _where_impl, (_where_vjp, _where_jvp),
         torch_name="WhereBackward0")


def where(c, x, y):
    return bind("where", c, x, y)


def _convert_vjp(g, out, x, *, dtype):
    return (convert(g, ops.dtype(x)),)


def _convert_jvp(tangents, out, x, *, dtype):
    t, = tangents
    if t is None or not np.issubdtype(dtype, np.floating):
        return None
    return bind("convert", t, dtype=dtype)


_declare("convert", "cast", lambda x, *, dtype: ShapedArray(x.shape, dtype),
         lambda x, *, dtype: np.asarray(x).astype(dtype), (_convert_vjp, _convert_jvp),
         torch_name="ToCopyBackward0")


def convert(x, dtype):
    dt = np.dtype(dtype)
    boxed_or_array = hasattr(x, "_tg_trace") or isinstance(x, np.ndarray)
    return x if boxed_or_array and ops.dtype(x) == dt else bind("convert", x, dtype=dt)
