"""The lowering table: one scalar LLVM emitter per elementwise primitive.

Each rule is `rule(b, args, dtypes, out, params) -> value` where `b` is an
`llvmlite.ir.IRBuilder`, `args` the operands (already LLVM values of
`llvm_type(dtypes[k])`), `out` the result dtype.  Rules see one element; the
loop vectorizer turns them into SIMD code, which is why every rule is
branch-free (`select`, never a conditional branch) and why transcendentals
come from `mathlib` (inline polynomials) and never from `llvm.exp` & co.,
which lower to scalar libm calls.  For float and bool operands the rules also
take `<N x T>` vectors (explicit vector loops, simd.py): their own constants
are splatted to the operands' lane count (`constant(..., lanes)`); integer
rules are scalar only.

Semantics follow numpy (the reference interpreter): max/min propagate NaN,
float->bool is `x != 0` (NaN is True), float->int truncates and gives INT_MIN
for NaN and out-of-range values (numpy's cast on x86; LLVM's `fptosi` is
poison there), integer division by zero gives INT_MIN likewise, bool
lives in registers as `i1` and in memory as one byte 0/1.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from tracegrad.ir.core import is_float
from tracegrad.ir.elementwise import integer_pow_by_products, widened_integer_pow
from tracegrad.ir.primitives import ELEMENTWISE_KINDS  # noqa: F401  (codegen's lowering domain)
from tracegrad.passes.kernels import REDUCTIONS

from . import mathlib
from .irutil import splat

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
BOOL, I32, I64 = np.dtype(np.bool_), np.dtype(np.int32), np.dtype(np.int64)

_REG_TYPES = {F32: ir.FloatType(), F64: ir.DoubleType(), BOOL: ir.IntType(1),
              I32: ir.IntType(32), I64: ir.IntType(64)}
_MEM_TYPES = {**_REG_TYPES, BOOL: ir.IntType(8)}


def llvm_type(dtype) -> ir.Type:
    """The type a value of `dtype` has in registers (bool is i1)."""
    return _REG_TYPES[np.dtype(dtype)]


def storage_type(dtype) -> ir.Type:
    """The type a value of `dtype` has in memory (bool is one byte)."""
    return _MEM_TYPES[np.dtype(dtype)]


def constant(value, dtype, lanes: int | None = None) -> ir.Constant:
    """`value` as an LLVM constant of `dtype`; a `<lanes x T>` splat if lanes is given."""
    dtype = np.dtype(dtype)
    if is_float(dtype):
        c = ir.Constant(llvm_type(dtype), float(np.asarray(value, dtype)))
    else:
        c = ir.Constant(llvm_type(dtype), int(np.asarray(value, dtype)))
    return splat(c, lanes)


def lanes_of(x) -> int | None:
    """The lane count of a vector value, None for a scalar."""
    return x.type.count if isinstance(x.type, ir.VectorType) else None


def to_register(b, stored, dtype):
    """A value loaded from memory -> its register form."""
    if np.dtype(dtype) == BOOL:
        return b.icmp_unsigned("!=", stored, _like(stored, ir.Constant(ir.IntType(8), 0)))
    return stored


def to_memory(b, value, dtype):
    """A register value -> what is stored (bool becomes 0/1 in a byte)."""
    if np.dtype(dtype) == BOOL:
        lanes = lanes_of(value)
        return b.zext(value, ir.IntType(8) if lanes is None else ir.VectorType(ir.IntType(8), lanes))
    return value


def _like(x, c: ir.Constant) -> ir.Constant:
    """Scalar constant c, splatted to x's lane count if x is a vector."""
    return splat(c, lanes_of(x))


def _int_min(dtype):
    return constant(np.iinfo(dtype).min, dtype)


def _truth(b, x, dtype):
    """x as i1, numpy's bool(x): nonzero (NaN counts as nonzero)."""
    dtype = np.dtype(dtype)
    if dtype == BOOL:
        return x
    if is_float(dtype):
        return b.fcmp_unordered("!=", x, constant(0, dtype, lanes_of(x)))
    return b.icmp_signed("!=", x, constant(0, dtype, lanes_of(x)))


# ---- unary -------------------------------------------------------------------

def _float_or_int(float_rule, int_rule):
    def rule(b, args, dtypes, out, params):
        rule_ = float_rule if is_float(dtypes[0]) else int_rule
        return rule_(b, args[0], np.dtype(dtypes[0]))
    return rule


def _math(name):
    def rule(b, args, dtypes, out, params):
        return mathlib.emit_unary(b, name, args[0])
    return rule


def _int_neg(b, x, dtype):
    return x if dtype == BOOL else b.neg(x)


def _int_abs(b, x, dtype):
    if dtype == BOOL:
        return x
    return b.select(b.icmp_signed("<", x, constant(0, dtype)), b.neg(x), x)


def _int_sign(b, x, dtype):
    if dtype == BOOL:
        return x
    pos = b.zext(b.icmp_signed(">", x, constant(0, dtype)), x.type)
    neg = b.zext(b.icmp_signed("<", x, constant(0, dtype)), x.type)
    return b.sub(pos, neg)


def _ipow(b, x, n: int, dtype):
    """x**n for a Python int n >= 0 by square-and-multiply: exact repeated products."""
    result, base = None, x
    while n:
        if n & 1:
            result = base if result is None else _mul(b, result, base, dtype)
        n >>= 1
        if n:
            base = _mul(b, base, base, dtype)
    return constant(1, dtype, lanes_of(x)) if result is None else result


def _mul(b, x, y, dtype):
    if is_float(dtype):
        return b.fmul(x, y)
    return b.and_(x, y) if dtype == BOOL else b.mul(x, y)


def _int_reciprocal(b, p, dtype):
    """numpy's int(1 / p) for an integer p: +-1 for p = +-1, 0 for |p| > 1, INT_MIN for 0."""
    one, minus_one = constant(1, dtype), constant(-1, dtype)
    r = b.select(b.icmp_signed("==", p, minus_one), minus_one, constant(0, dtype))
    r = b.select(b.icmp_signed("==", p, one), one, r)
    return b.select(b.icmp_signed("==", p, constant(0, dtype)), _int_min(dtype), r)


def _integer_pow(b, args, dtypes, out, params):
    y, x, dtype = int(params["y"]), args[0], np.dtype(dtypes[0])
    if widened_integer_pow(dtype, y):  # as ir.elementwise's impl: in float64, one rounding
        wide = _integer_pow(b, [convert_value(b, x, dtype, F64)], [F64], out, params)
        return convert_value(b, wide, F64, dtype)
    if not integer_pow_by_products(dtype, y):
        return mathlib.emit_pow(b, x, constant(float(y), dtype, lanes_of(x)))
    p = _ipow(b, x, abs(y), dtype)
    if y >= 0:
        return p
    if is_float(dtype):
        return b.fdiv(constant(1, dtype, lanes_of(p)), p)
    return _int_reciprocal(b, p, dtype)


def _identity(b, args, dtypes, out, params):
    return args[0]


# ---- binary ------------------------------------------------------------------

def _arith(fop, iop, bool_op=None):
    def rule(b, args, dtypes, out, params):
        x, y = args
        dtype = np.dtype(dtypes[0])
        if is_float(dtype):
            return getattr(b, fop)(x, y)
        if dtype == BOOL:
            if bool_op is None:
                raise NotImplementedError(f"codegen: {fop[1:]} of bool operands")
            return getattr(b, bool_op)(x, y)
        return getattr(b, iop)(x, y)
    return rule


def _int_div(b, x, y, dtype):
    """numpy's int(x / y): truncation; y == 0 -> INT_MIN; never a trapping sdiv."""
    zero, minus_one = constant(0, dtype), constant(-1, dtype)
    is_zero = b.icmp_signed("==", y, zero)
    is_m1 = b.icmp_signed("==", y, minus_one)
    # sdiv traps on 0 and on INT_MIN / -1: divide by 1 there and patch the result
    safe = b.select(b.or_(is_zero, is_m1), constant(1, dtype), y)
    q = b.sdiv(x, safe)
    q = b.select(is_m1, b.neg(x), q)
    return b.select(is_zero, _int_min(dtype), q)


def _div(b, args, dtypes, out, params):
    x, y = args
    dtype = np.dtype(dtypes[0])
    if is_float(dtype):
        return b.fdiv(x, y)
    if dtype == BOOL:
        raise NotImplementedError("codegen: div of bool operands")
    return _int_div(b, x, y, dtype)


def _int_pow(b, x, y, dtype):
    """x**y for integer y by a square-and-multiply loop (wrapping like numpy).

    A loop with branches keeps this kernel scalar; integer pow is rare and an
    unrolled branch-free version over all 64 exponent bits made O3 crawl.
    y < 0 gives int(1 / x**|y|).
    """
    neg = b.icmp_signed("<", y, constant(0, dtype))
    e0 = b.select(neg, b.neg(y), y)
    pre, fn = b.block, b.function
    loop, done = fn.append_basic_block("ipow"), fn.append_basic_block("ipow.done")
    b.branch(loop)
    b.position_at_end(loop)
    ty = llvm_type(dtype)
    result, base, e = b.phi(ty), b.phi(ty), b.phi(ty)
    result.add_incoming(constant(1, dtype), pre)
    base.add_incoming(x, pre)
    e.add_incoming(e0, pre)
    one = constant(1, dtype)
    bit = b.icmp_signed("!=", b.and_(e, one), constant(0, dtype))
    nxt_result = b.select(bit, b.mul(result, base), result)
    nxt_e = b.lshr(e, one)
    result.add_incoming(nxt_result, loop)
    base.add_incoming(b.mul(base, base), loop)
    e.add_incoming(nxt_e, loop)
    b.cbranch(b.icmp_signed("!=", nxt_e, constant(0, dtype)), loop, done)
    b.position_at_end(done)
    p = b.select(b.icmp_signed("==", e0, constant(0, dtype)), one, nxt_result)
    return b.select(neg, _int_reciprocal(b, p, dtype), p)


def _pow(b, args, dtypes, out, params):
    x, y = args
    dtype = np.dtype(dtypes[0])
    if is_float(dtype):
        return mathlib.emit_pow(b, x, y)
    if dtype == BOOL:
        return b.or_(x, b.xor(y, constant(True, BOOL, lanes_of(y))))  # x**y: 1 unless x=0,y=1
    return _int_pow(b, x, y, dtype)


def float_max(b, x, y):
    """numpy.maximum: NaN if either is NaN, else the larger; y when equal (numpy's pick
    between -0.0 and +0.0, so a reduction keeps the later of equal elements)."""
    pick_x = b.or_(b.fcmp_unordered("uno", x, x), b.fcmp_ordered(">", x, y))
    return b.select(pick_x, x, y)


def float_min(b, x, y):
    pick_x = b.or_(b.fcmp_unordered("uno", x, x), b.fcmp_ordered("<", x, y))
    return b.select(pick_x, x, y)


def int_max(b, x, y, dtype):
    if dtype == BOOL:
        return b.or_(x, y)
    return b.select(b.icmp_signed(">=", x, y), x, y)


def int_min(b, x, y, dtype):
    if dtype == BOOL:
        return b.and_(x, y)
    return b.select(b.icmp_signed("<=", x, y), x, y)


def _extremum(float_fn, int_fn):
    def rule(b, args, dtypes, out, params):
        dtype = np.dtype(dtypes[0])
        if is_float(dtype):
            return float_fn(b, *args)
        return int_fn(b, *args, dtype)
    return rule


# ---- compare, logical, select, convert ---------------------------------------

def _compare(op, float_unordered=False):
    def rule(b, args, dtypes, out, params):
        x, y = args
        dtype = np.dtype(dtypes[0])
        if is_float(dtype):
            # ordered compares are False with a NaN operand; `ne` is True (unordered)
            cmp = b.fcmp_unordered if float_unordered else b.fcmp_ordered
            return cmp(op, x, y)
        if dtype == BOOL:
            return b.icmp_unsigned(op, x, y)
        return b.icmp_signed(op, x, y)
    return rule


def _logical(op):
    def rule(b, args, dtypes, out, params):
        x, y = (_truth(b, a, d) for a, d in zip(args, dtypes))
        return getattr(b, op)(x, y)
    return rule


def _not(b, args, dtypes, out, params):
    return b.xor(_truth(b, args[0], dtypes[0]), constant(True, BOOL, lanes_of(args[0])))


def _where(b, args, dtypes, out, params):
    c, x, y = args
    return b.select(_truth(b, c, dtypes[0]), x, y)


def _float_to_int(b, x, dst):
    """numpy's cast on x86: truncation, and INT_MIN (the instruction's "integer
    indefinite") for NaN and values out of dst's range, as eager numpy gives; through the
    saturating intrinsic, since plain fptosi is poison out of range."""
    module = b.block.function.module
    fnty = ir.FunctionType(llvm_type(dst), [x.type])
    fn = module.declare_intrinsic("llvm.fptosi.sat", [llvm_type(dst), x.type], fnty)
    limit = float(2 ** (8 * np.dtype(dst).itemsize - 1))
    inside = b.and_(b.fcmp_ordered(">=", x, ir.Constant(x.type, -limit)),
                    b.fcmp_ordered("<", x, ir.Constant(x.type, limit)))
    return b.select(inside, b.call(fn, [x]), _int_min(dst))


def convert_value(b, x, src, dst):
    """x (a value of dtype src, or a vector of them) as dtype dst."""
    src, dst = np.dtype(src), np.dtype(dst)
    if src == dst:
        return x
    if dst == BOOL:
        return _truth(b, x, src)
    lanes = lanes_of(x)
    ty = llvm_type(dst) if lanes is None else ir.VectorType(llvm_type(dst), lanes)
    if is_float(src) and is_float(dst):
        return b.fpext(x, ty) if dst.itemsize > src.itemsize else b.fptrunc(x, ty)
    if is_float(dst):
        return b.uitofp(x, ty) if src == BOOL else b.sitofp(x, ty)
    if is_float(src):
        if lanes is not None:
            raise NotImplementedError("codegen: float -> int conversion of vectors")
        return _float_to_int(b, x, dst)
    if src == BOOL:
        return b.zext(x, ty)
    return b.sext(x, ty) if dst.itemsize > src.itemsize else b.trunc(x, ty)


def _convert(b, args, dtypes, out, params):
    return convert_value(b, args[0], dtypes[0], out)


# ---- rounding, classification, inverse trig, rem, bitwise -----------------------

def _math2(name):
    def rule(b, args, dtypes, out, params):
        return mathlib.emit_binary(b, name, *args)
    return rule


def _signbit(b, args, dtypes, out, params):
    """The sign bit (set for -0.0 and negative NaNs, as numpy), scalar or vector."""
    x, dtype = args[0], np.dtype(dtypes[0])
    ity = ir.IntType(8 * dtype.itemsize)
    lanes = lanes_of(x)
    bits = b.bitcast(x, ity if lanes is None else ir.VectorType(ity, lanes))
    return b.icmp_signed("<", bits, _like(x, ir.Constant(ity, 0)))


def _copysign(b, args, dtypes, out, params):
    return _float_intrinsic(b, "llvm.copysign", *args)


def _float_intrinsic(b, name, *args):
    ty = args[0].type
    lanes = lanes_of(args[0])
    tag = "f32" if isinstance(ty.element if lanes else ty, ir.FloatType) else "f64"
    full = f"{name}.{f'v{lanes}' if lanes else ''}{tag}"
    fn = b.module.globals.get(full) or ir.Function(
        b.module, ir.FunctionType(ty, [ty] * len(args)), full)
    return b.call(fn, args)


def _int_rem(b, x, y, dtype):
    """C's x % y (sign of x); y == 0 gives 0 as numpy; never a trapping srem
    (y == 0 and INT_MIN % -1 divide by 1 instead: the result is 0 for both)."""
    zero = constant(0, dtype)
    bad = b.or_(b.icmp_signed("==", y, zero), b.icmp_signed("==", y, constant(-1, dtype)))
    r = b.srem(x, b.select(bad, constant(1, dtype), y))
    return b.select(bad, zero, r)


def _rem(b, args, dtypes, out, params):
    x, y = args
    dtype = np.dtype(dtypes[0])
    if is_float(dtype):
        return b.frem(x, y)   # C fmod: exact (libm's fmod where LLVM has no instruction)
    if dtype == BOOL:
        raise NotImplementedError("codegen: rem of bool operands")
    return _int_rem(b, x, y, dtype)


def _bitwise(op):
    def rule(b, args, dtypes, out, params):
        return getattr(b, op)(*args)
    return rule


def _bitwise_not(b, args, dtypes, out, params):
    x = args[0]
    return b.xor(x, _like(x, ir.Constant(x.type.element if lanes_of(x) else x.type, -1)))


def _shift(left):
    """numpy's shifts: a count outside [0, bits) (unsigned compare) gives 0, or for a
    right shift the sign fill; LLVM's shl/ashr are poison there, so clamp and select."""
    def rule(b, args, dtypes, out, params):
        x, n = args
        dtype = np.dtype(dtypes[0])
        width = constant(8 * dtype.itemsize, dtype)
        inside = b.icmp_unsigned("<", n, width)
        if left:
            return b.select(inside, b.shl(x, b.select(inside, n, constant(0, dtype))),
                            constant(0, dtype))
        last = constant(8 * dtype.itemsize - 1, dtype)
        return b.ashr(x, b.select(inside, n, last))
    return rule


LOWERINGS = {
    "neg": _float_or_int(lambda b, x, d: mathlib.emit_unary(b, "neg", x), _int_neg),
    "abs": _float_or_int(lambda b, x, d: mathlib.emit_unary(b, "abs", x), _int_abs),
    "sign": _float_or_int(lambda b, x, d: mathlib.emit_unary(b, "sign", x), _int_sign),
    **{name: _math(name) for name in
       ("exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tanh")},
    "integer_pow": _integer_pow,
    "stop_gradient": _identity,
    "optimization_barrier": _identity,
    "add": _arith("fadd", "add", "or_"),
    "sub": _arith("fsub", "sub", "xor"),
    "mul": _arith("fmul", "mul", "and_"),
    "div": _div,
    "pow": _pow,
    "max": _extremum(float_max, int_max),
    "min": _extremum(float_min, int_min),
    "lt": _compare("<"), "le": _compare("<="), "gt": _compare(">"), "ge": _compare(">="),
    "eq": _compare("=="), "ne": _compare("!=", float_unordered=True),
    "and": _logical("and_"), "or": _logical("or_"), "not": _not,
    "where": _where,
    "convert": _convert,
    **{name: _math(name) for name in ("atan", "log2", "log10", "exp2", "floor", "ceil", "trunc",
                                      "erf", "erfc", "lgamma", "digamma")},
    "round": _math("rint"),
    "atan2": _math2("atan2"),
    "signbit": _signbit,
    "copysign": _copysign,
    "rem": _rem,
    "bitwise_and": _bitwise("and_"), "bitwise_or": _bitwise("or_"),
    "bitwise_xor": _bitwise("xor"), "bitwise_not": _bitwise_not,
    "shift_left": _shift(True), "shift_right": _shift(False),
}

# ---- reductions ---------------------------------------------------------------

def reduction_identity(kind: str, dtype, lanes: int | None = None) -> ir.Constant:
    """The reduction's identity (0 for sums, 1 for products, -inf/+inf or the integer
    extremes for max/min: `REDUCTIONS`) as a constant (a splat if lanes)."""
    return constant(REDUCTIONS[kind].identity(dtype), dtype, lanes)


def _sum(b, acc, x, dtype):
    if is_float(dtype):
        return b.fadd(acc, x, flags=("reassoc",))
    return b.or_(acc, x) if dtype == np.bool_ else b.add(acc, x)


def _prod(b, acc, x, dtype):
    if is_float(dtype):
        return b.fmul(acc, x, flags=("reassoc",))
    return b.and_(acc, x) if dtype == np.bool_ else b.mul(acc, x)


def _extreme(floats, ints):
    return lambda b, acc, x, dtype: floats(b, acc, x) if is_float(dtype) else ints(b, acc, x, dtype)


# one per key of passes.kernels.REDUCTIONS (a test holds them equal)
COMBINERS = {"sum": _sum, "prod": _prod, "max": _extreme(float_max, int_max),
             "min": _extreme(float_min, int_min)}


def combine(b, kind: str, acc, x, dtype):
    """acc (+|*|max|min) x; float sums and products carry `reassoc` so LLVM may vectorize
    them."""
    return COMBINERS[kind](b, acc, x, np.dtype(dtype))


def lower_op(b, prim, args, dtypes, out, params):
    """Emit `prim` on scalar operands; a missing rule names the primitive."""
    rule = LOWERINGS.get(prim)
    if rule is None:
        raise NotImplementedError(f"codegen: no lowering rule for primitive {prim!r}")
    return rule(b, args, [np.dtype(d) for d in dtypes], np.dtype(out), params or {})
