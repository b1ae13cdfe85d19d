"""Inline, branch-free, vectorizable float math for LLVM IR (float32 and float64).

`emit_unary(builder, name, x)` and `emit_pow(builder, x, y)` emit straight-line IR
(arithmetic, bit casts, `select`) for a scalar `float`/`double` value or an LLVM
vector of them, so a loop calling them vectorizes. Only intrinsics that lower to
single SIMD instructions are used (fma, sqrt, fabs, rint, floor, copysign):
`llvm.exp.*`, `llvm.log.*`, `llvm.sin.*` ... lower to scalar libm calls, which
stop the loop vectorizer.

>>> from llvmlite import ir
>>> from tracegrad.codegen import llvm_util, mathlib
>>> import ctypes
>>> m = ir.Module()
>>> fn = ir.Function(m, ir.FunctionType(ir.DoubleType(), [ir.DoubleType()]), "f")
>>> b = ir.IRBuilder(fn.append_basic_block())
>>> _ = b.ret(mathlib.emit_unary(b, "log1p", fn.args[0]))
>>> engine, _ = llvm_util.compile_ir(str(m))
>>> f = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(engine.get_function_address("f"))
>>> f(1e-20), f(-1.0)
(1e-20, -inf)

Special values follow numpy (and C99 Annex F): inf/nan propagate, signed zeros are
kept where numpy keeps them, results underflow gradually to subnormals and
overflow to inf. Accuracy (max error in ULPs against a higher-precision
reference, over the tested domains) is the data table `MAX_ULP`, checked by
tests/test_mathlib.py; approaches and measured figures are in docs/mathlib.md.

Polynomial coefficients are relative-error minimax fits computed for this module
(Remez exchange in 80-bit long double, then rounded to the target precision).
"""
from dataclasses import dataclass
from decimal import Decimal, localcontext

import numpy as np
from llvmlite import ir

from tracegrad.ir import gamma

from .irutil import Splat

__all__ = ["UNARY_NAMES", "BINARY_NAMES", "MAX_ULP", "SIN_COS_ACCURATE_RANGE", "emit_unary",
           "emit_binary", "emit_sincos", "emit_pow"]

UNARY_NAMES = ("exp", "log", "log1p", "expm1", "tanh", "sin", "cos",
               "sqrt", "abs", "sign", "neg", "atan", "log2", "log10", "exp2",
               "floor", "ceil", "rint", "trunc", "erf", "erfc", "lgamma", "digamma")
BINARY_NAMES = ("pow", "atan2")

# Max error in ULPs against a higher-precision reference over the tested domains
# (tests/test_mathlib.py asserts these). Measured maxima (docs/mathlib.md) are
# lower: exp 0.97, log 0.82, log1p 0.83, expm1 1.44, tanh 0.95 (f32) / 1.81 (f64), sin/cos 1.54,
# pow 0.50 (f32) / 1.14 (f64). sin/cos hold for |x| <= SIN_COS_ACCURATE_RANGE.
MAX_ULP = {
    ("exp", "f32"): 1.0, ("exp", "f64"): 1.0,
    ("expm1", "f32"): 2.0, ("expm1", "f64"): 2.0,
    ("log", "f32"): 1.0, ("log", "f64"): 1.0,
    ("log1p", "f32"): 1.0, ("log1p", "f64"): 1.0,
    ("tanh", "f32"): 1.0, ("tanh", "f64"): 2.5,
    ("sin", "f32"): 2.0, ("sin", "f64"): 2.0,
    ("cos", "f32"): 2.0, ("cos", "f64"): 2.0,
    ("pow", "f32"): 1.0, ("pow", "f64"): 2.0,
    ("sqrt", "f32"): 0.5, ("sqrt", "f64"): 0.5,     # correctly rounded
    ("abs", "f32"): 0.0, ("abs", "f64"): 0.0,
    ("sign", "f32"): 0.0, ("sign", "f64"): 0.0,
    ("neg", "f32"): 0.0, ("neg", "f64"): 0.0,
    # f32 computes these in float64 and rounds once
    ("atan", "f32"): 0.5, ("atan", "f64"): 1.0,
    ("atan2", "f32"): 0.5, ("atan2", "f64"): 1.5,
    ("log2", "f32"): 0.5, ("log2", "f64"): 1.0,
    ("log10", "f32"): 0.5, ("log10", "f64"): 1.0,
    ("exp2", "f32"): 0.5, ("exp2", "f64"): 1.5,
    ("erf", "f32"): 0.5, ("erf", "f64"): 2.0,
    ("erfc", "f32"): 0.5, ("erfc", "f64"): 4.0,
    # relative away from their zeros (docs/mathlib.md: absolute near the negative ones)
    ("lgamma", "f32"): 0.5, ("lgamma", "f64"): 6.0,
    ("digamma", "f32"): 0.5, ("digamma", "f64"): 3.5,
    **{(name, tag): 0.0 for name in ("floor", "ceil", "rint", "trunc") for tag in ("f32", "f64")},
}

# Beyond this |x| the pi/2 reduction loses accuracy (results stay finite, in [-1, 1]).
SIN_COS_ACCURATE_RANGE = {"f32": 1e6, "f64": 1e14}

TANH_SPLIT = 1.0  # float32 tanh: the polynomial below, 1 - 2/(exp(2|x|)+1) from here

# Polynomial coefficients, lowest degree first (see module docstring):
#   exp_h(r)  ~ (exp(r) - 1 - r) / r**2          on |r| <= ln2/2
#   log_R(z)  ~ (2 atanh(s) - 2 s) / s**3, z=s^2  on z <= ((sqrt2-1)/(sqrt2+1))**2
#   log_R1(z) ~ (log_R(z) - 2/3) / z              (same interval; double-word log)
#   sin_S(z)  ~ (sin(r) - r) / r**3, z=r^2        on |r| <= 0.8
#   cos_C(z)  ~ (cos(r) - 1 + z/2) / z**2         on |r| <= 0.8
_COEFFS = {
    ("exp_h", "f32"): (0.5, 0.1666666716337204, 0.04166646674275398, 0.008333360776305199,
                       0.0013933604350313544, 0.0001985780254472047),
    ("exp_h", "f64"): (0.5, 0.1666666666666667, 0.041666666666666616, 0.008333333333326183,
                       0.0013888888888917528, 0.00019841269874675395, 2.4801587246919307e-05,
                       2.7557255565683757e-06, 2.755734841376547e-07, 2.5105154560922067e-08,
                       2.0889791678386926e-09),
    ("log_R", "f32"): (0.6666668653488159, 0.3998876214027405, 0.29580608010292053),
    ("log_R", "f64"): (0.666666666666667, 0.39999999999899116, 0.2857142862613292,
                       0.22222211111460505, 0.18182890687063677, 0.1533167345838068,
                       0.14617005819102563),
    ("log_R1", "f64"): (0.4, 0.28571428571429364, 0.2222222222165605, 0.18181818335376776,
                        0.1538459496253429, 0.13334804753505133, 0.11706233733662476,
                        0.11723212198216852),
    ("sin_S", "f32"): (-0.1666666716337204, 0.008333331905305386, -0.0001983999100048095,
                       2.723789975789259e-06),
    ("sin_S", "f64"): (-0.16666666666666666, 0.00833333333333333, -0.00019841269841260517,
                       2.755731921517685e-06, -2.5052104771988927e-08, 1.605831303542155e-10,
                       -7.574871493292582e-13),
    ("cos_C", "f32"): (0.0416666641831398, -0.001388825592584908, 2.4538116122130305e-05),
    ("cos_C", "f64"): (0.041666666666666664, -0.0013888888888887085, 2.480158729830392e-05,
                       -2.7557317037693007e-07, 2.0876098558368676e-09, -1.1379267701266085e-11),
    # tanh_P(z) ~ (tanh(x) - x) / x**3, z=x^2 on |x| <= TANH_SPLIT: relative error of the
    # result minimized by Lawson's iteration in float64 against mpmath, 0.09 of 2^-24
    ("tanh_P", "f32"): (-0.33333295583724976, 0.13332344591617584, -0.05387980118393898,
                        0.021486658602952957, -0.007946107536554337, 0.002301364904269576,
                        -0.00035845208913087845),
    # atan_G(z) ~ (atan(t) - t) / t**3, z=t^2 on |t| <= 7/16 (Chebyshev fit, error 4e-18)
    ("atan_G", "f64"): (-0.3333333333333333, 0.1999999999999941, -0.14285714285566806,
                        0.11111111096645038, -0.09090908355602592, 0.07692285554889286,
                        -0.06666241923359964, 0.05876946456755061, -0.05216679739313656,
                        0.04492259293193656, -0.033128134256069586, 0.014773184616983806),
    # erf_P(w) ~ erf(z) / z, w=z^2 on z < 1/2: Taylor's series (truncation 5e-18)
    ("erf_P", "f64"): (1.1283791670955126, -0.37612638903183754, 0.11283791670955126,
                    -0.026866170645131252, 0.005223977625442188, -0.0008548327023450853,
                    0.00012055332981789664, -1.492565035840625e-05, 1.6462114365889248e-06,
                    -1.6365844691234924e-07, 1.4807192815879218e-08, -1.2290555301717928e-09),
    # erfc_G(s) ~ log(erfc(z) e^(z^2)), s=(z - 5/4)/(3/4) on 1/2 <= z <= 2, and
    # erfc_H(s) ~ log(erfc(z) e^(z^2) / t), t=2/(2+z), s=(t - c)/r on 2 <= z <= 28: Chebyshev
    # interpolation in mpmath at 50 digits, as monomials in s (absolute error 2e-16)
    ("erfc_G", "f64"): (-1.0001536619221256, -0.4257929562519297, 0.07266928271693704,
                    -0.013789831787983245, 0.002465425353666065, -0.00038133699580305104,
                    4.3922248959158055e-05, -1.3404035420953438e-06, -1.0843107656263274e-06,
                    3.8792741978978264e-07, -8.141572803659806e-08, 1.0593949761160146e-08,
                    -5.152130837003091e-11, -4.4113399632535786e-10, 1.5025080026926672e-10,
                    -3.098027977738141e-11, 3.704799188418661e-12, 1.5340134332746974e-13,
                    -2.2438959870788455e-13, 7.225463316633405e-14, -1.4137899509070291e-14,
                    5.779548692326871e-16, 3.7033817520272325e-16),
    ("erfc_H", "f64"): (-0.9510320073810189, 0.26420534711021165, 0.017198653399249947,
                    -0.001503576299937859, -0.0006684020826431641, -2.4362993387482392e-05,
                    2.7959675759400214e-05, 3.838791476270034e-06, -1.3089498560300388e-06,
                    -3.1334415653807674e-07, 7.090678274230543e-08, 2.2932554566617043e-08,
                    -4.667151075808284e-09, -1.5939215032371691e-09, 3.735199584082875e-10,
                    1.0163682878579629e-10, -3.345851554437606e-11, -5.217526350553321e-12,
                    2.8937186326113565e-12, 1.4655651481519908e-13, -1.7537753605188723e-13,
                    0.0, 0.0),
}


# ---- exact constants split into float parts ------------------------------------------

_LN2 = Decimal("0.6931471805599453094172321214581765680755001343602552541206800094933936")
_PIO2 = Decimal("1.5707963267948966192313216916397514420985846996875529104874722961539083")
_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459231")
_ATAN_HALF = Decimal("0.46364760900080611621425623146121440202853705428612026381093308872")
_ATAN_3HALF = Decimal("0.982793723247329067985710611014666014496877453631628556761425088318")
_LOG2E = Decimal("1.44269504088896340735992468100189213742664595415298593413544940693")
_LOG10E = Decimal("0.434294481903251827651128918916605082294397005803666566114453783166")


def _round(d, tag):
    """Decimal -> nearest float of the kind (float64 first; a rare double rounding is harmless)."""
    return float(np.float32(float(d))) if tag == "f32" else float(d)


def _split(d, tag, parts, hi_bits=None):
    """d ~ sum(parts floats), each the rounded remainder of the previous ones.

    `hi_bits` truncates the leading part to that many fraction bits, so that
    k * part0 is exact for small integers k (Cody-Waite).
    """
    with localcontext() as ctx:
        ctx.prec = 80
        out, rest = [], d
        for i in range(parts):
            if i == 0 and hi_bits is not None:
                part = float(int(rest * 2 ** hi_bits) / Decimal(2 ** hi_bits))
            else:
                part = _round(rest, tag)
            out.append(part)
            rest -= Decimal(part)
    return tuple(out)


@dataclass(frozen=True)
class _Kind:
    """Bit layout and per-precision constants of one float kind."""
    tag: str
    bits: int
    mant: int               # explicit mantissa bits
    bias: int
    sqrt_half_bits: int     # bit pattern of fl(sqrt(1/2)): log reduces to [sqrt(1/2), sqrt(2))
    exp_lo: float           # exp: below, the result rounds to +0 (2^n split stays normal)
    exp_hi: float           # exp/expm1: above, the result overflows to inf
    expm1_lo: float         # expm1: below, the result is -1 and 2^(n-1) stays normal
    tanh_sat: float         # tanh: above, the result rounds to +-1


_KINDS = {
    "f32": _Kind("f32", 32, 23, 127, 0x3F3504F3, -104.0, 89.0, -80.0, 10.0),
    "f64": _Kind("f64", 64, 52, 1023, 0x3FE6A09E667F3BCD, -746.0, 710.0, -700.0, 20.0),
}


@dataclass(frozen=True)
class _Consts:
    ln2: tuple      # full-precision split: exp reduction with fma
    ln2_k: tuple    # hi part exact when multiplied by any exponent k (log)
    pio2: tuple     # three parts: sin/cos reduction with fma
    two_thirds: tuple


def _consts(tag, k_bits):
    return _Consts(
        ln2=_split(_LN2, tag, 2),
        ln2_k=_split(_LN2, tag, 2, hi_bits=(24 if tag == "f32" else 53) - k_bits),
        pio2=_split(_PIO2, tag, 3),
        two_thirds=_split(Decimal(2) / Decimal(3), tag, 2),
    )


# |k| <= 150 (f32) and 1075 (f64) for k the binary exponent of a (subnormal) input
_CONSTS = {"f32": _consts("f32", 9), "f64": _consts("f64", 12)}


# ---- typed op helpers ----------------------------------------------------------------

class _Ops:
    """IR helpers for one float kind, scalar or `<N x T>`; constants splat to the shape."""

    def __init__(self, builder, ty):
        self.b = builder
        self.ty = ty
        self.lanes = ty.count if isinstance(ty, ir.VectorType) else None
        elem = ty.element if self.lanes else ty
        if isinstance(elem, ir.FloatType):
            self.kind = _KINDS["f32"]
        elif isinstance(elem, ir.DoubleType):
            self.kind = _KINDS["f64"]
        else:
            raise TypeError(f"mathlib: expected float/double (or a vector of them), got {ty}")
        self.tag = self.kind.tag
        self.const_ = _CONSTS[self.tag]
        self.ity = self._shaped(ir.IntType(self.kind.bits))

    def _shaped(self, elem):
        return ir.VectorType(elem, self.lanes) if self.lanes else elem

    def other(self, tag):
        """Ops for the other float kind with the same lane count (f32 pow runs in f64)."""
        elem = ir.FloatType() if tag == "f32" else ir.DoubleType()
        return _Ops(self.b, self._shaped(elem))

    def _splat(self, ty, v):
        if not self.lanes:
            return ir.Constant(ty, v)
        return Splat(ir.Constant(ty.element, v), self.lanes)

    def c(self, v):
        return self._splat(self.ty, float(v))

    def ci(self, v):
        return self._splat(self.ity, int(v))

    def coeffs(self, name):
        return _COEFFS[(name, self.tag)]

    # arithmetic
    def add(self, a, b):
        return self.b.fadd(a, b)

    def sub(self, a, b):
        return self.b.fsub(a, b)

    def mul(self, a, b):
        return self.b.fmul(a, b)

    def div(self, a, b):
        return self.b.fdiv(a, b)

    def neg(self, a):
        return self.b.fneg(a)

    def fma(self, a, b, c):
        return self._intrinsic("llvm.fma", a, b, c)

    def poly(self, x, coeffs):
        """Horner with fma; coeffs lowest degree first."""
        acc = self.c(coeffs[-1])
        for ck in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, self.c(ck))
        return acc

    # intrinsics that lower to one SIMD instruction each
    def _intrinsic(self, name, *args):
        mod = self.b.module
        suffix = f"v{self.lanes}{self.tag}" if self.lanes else self.tag
        full = f"{name}.{suffix}"
        fn = mod.globals.get(full)
        if fn is None:
            fn = ir.Function(mod, ir.FunctionType(self.ty, [self.ty] * len(args)), full)
        return self.b.call(fn, args)

    def rint(self, a):
        return self._intrinsic("llvm.rint", a)

    def floor(self, a):
        return self._intrinsic("llvm.floor", a)

    def ceil(self, a):
        return self._intrinsic("llvm.ceil", a)

    def trunc(self, a):
        return self._intrinsic("llvm.trunc", a)

    def fabs(self, a):
        return self._intrinsic("llvm.fabs", a)

    def sqrt(self, a):
        return self._intrinsic("llvm.sqrt", a)

    def copysign(self, mag, sgn):
        return self._intrinsic("llvm.copysign", mag, sgn)

    # comparisons (ordered: false on NaN) and selection
    def cmp(self, op, a, b):
        return self.b.fcmp_ordered(op, a, b)

    def isnan(self, a):
        return self.b.fcmp_unordered("uno", a, a)

    def sel(self, cond, a, b):
        return self.b.select(cond, a, b)

    def clamp(self, x, lo, hi):
        """min(max(x, lo), hi), with NaN mapped to lo (callers restore NaN at the end)."""
        x = self.sel(self.b.fcmp_unordered("<", x, self.c(lo)), self.c(lo), x)
        return self.sel(self.cmp(">", x, self.c(hi)), self.c(hi), x)

    # bits
    def to_bits(self, a):
        return self.b.bitcast(a, self.ity)

    def from_bits(self, i):
        return self.b.bitcast(i, self.ty)

    def to_int(self, a):
        return self.b.fptosi(a, self.ity)

    def to_float(self, i):
        return self.b.sitofp(i, self.ty)

    def pow2(self, k):
        """2**k for an integer vector k in the normal exponent range."""
        biased = self.b.add(k, self.ci(self.kind.bias))
        return self.from_bits(self.b.shl(biased, self.ci(self.kind.mant)))

    def signbit(self, a):
        return self.b.icmp_signed("<", self.to_bits(a), self.ci(0))

    def finish(self, x, y):
        """y, except NaN where x is NaN (the reductions mapped NaN to finite values)."""
        return self.sel(self.isnan(x), x, y)


# ---- exp family ------------------------------------------------------------------------

def _exp_reduce(o, x):
    """x = n*ln2 + r with n integral (float) and |r| <= ln2/2; x finite, clamped."""
    n = o.rint(o.mul(x, o.c(1.4426950408889634)))
    hi, lo = o.const_.ln2
    r = o.fma(n, o.c(-hi), x)      # exact: x and n*hi agree in their leading bits
    return n, o.fma(n, o.c(-lo), r)


def _expm1_small(o, r):
    """expm1(r) for |r| <= ln2/2, relative accuracy kept near 0: r + r^2 h(r)."""
    return o.fma(o.mul(r, r), o.poly(r, o.coeffs("exp_h")), r)


def _expm1_small_dw(o, r):
    """expm1(r) = ph + pl for |r| <= ln2/2 (Fast2Sum: |r^2 h| < |r|)."""
    q = o.mul(o.mul(r, r), o.poly(r, o.coeffs("exp_h")))
    ph = o.add(r, q)
    return ph, o.add(o.sub(r, ph), q)


def _scale(o, p, n):
    """p * 2**n in two exact steps, so results in the subnormal range round only once."""
    k = o.to_int(n)
    k1 = o.b.ashr(k, o.ci(1))
    k2 = o.b.sub(k, k1)
    return o.mul(o.mul(p, o.pow2(k1)), o.pow2(k2))


def _exp_core(o, x, extra=None):
    """exp(x + extra) for x not NaN (|extra| tiny, for pow's double-word argument)."""
    xc = o.clamp(x, o.kind.exp_lo, o.kind.exp_hi)
    n, r = _exp_reduce(o, xc)
    if extra is not None:
        r = o.add(r, o.sel(o.cmp("==", x, xc), extra, o.c(0.0)))
    p = o.add(_expm1_small(o, r), o.c(1.0))
    return _scale(o, p, n)


def _exp(o, x):
    return o.finish(x, _exp_core(o, x))


def _expm1_core(o, x):
    """expm1(x) for x not NaN: 2^n (p + 1) - 1 = 2 (t p + (t - 1/2)) with t = 2^(n-1).

    t = 2^(n-1) stays normal up to the overflow threshold; t - 1/2 is exact for
    all n where it matters. p = ph + pl carries its rounding error, which the
    scaling by t would otherwise magnify relative to a result near 2^n - 1.
    """
    xc = o.clamp(x, o.kind.expm1_lo, o.kind.exp_hi)
    n, r = _exp_reduce(o, xc)
    ph, pl = _expm1_small_dw(o, r)
    t = o.pow2(o.b.sub(o.to_int(n), o.ci(1)))
    a = o.fma(t, ph, o.sub(t, o.c(0.5)))
    return o.mul(o.c(2.0), o.fma(t, pl, a))


def _expm1(o, x):
    y = _expm1_core(o, x)
    # expm1(x) rounds to x there; covers -0.0 and subnormals (t p would underflow)
    tiny = o.cmp("<", o.fabs(x), o.c(2.0 ** -(o.kind.mant + 3)))
    return o.finish(x, o.sel(tiny, x, y))


def _tanh(o, x):
    return (_tanh_split if o.tag == "f32" else _tanh_dw)(o, x)


def _tanh_split(o, x):
    """float32 tanh in two pieces, both computed, one selected per lane (no double words).

    |x| < TANH_SPLIT: |x| + |x|^3 P(x^2) (P minimax, error far below an ULP).  Above:
    1 - 2 / (e + 1), e = exp(2|x|); there the result is >= 0.76 and q = 2 / (e + 1) <= 0.24,
    so exp's, the add's and the division's errors reach the result scaled by q.  No double
    words (`_tanh_dw`: expm1's carried error, an exact t + 2, a Newton correction) and a
    plain exp: about half the double-word form's cost (docs/mathlib.md, "Speed").
    """
    ax = o.fabs(x)
    ax = o.sel(o.cmp(">", ax, o.c(o.kind.tanh_sat)), o.c(o.kind.tanh_sat), ax)
    z = o.mul(ax, ax)
    small = o.fma(o.mul(ax, z), o.poly(z, o.coeffs("tanh_P")), ax)
    q = o.div(o.c(2.0), o.add(_exp_bounded(o, o.add(ax, ax)), o.c(1.0)))
    y = o.sel(o.cmp("<", ax, o.c(TANH_SPLIT)), small, o.sub(o.c(1.0), q))
    return o.finish(x, o.copysign(y, x))


def _exp_bounded(o, x):
    """exp(x) for 0 <= x <= 2 tanh_sat: no clamp, and 2^n is one normal factor."""
    n, r = _exp_reduce(o, x)
    return o.mul(o.add(_expm1_small(o, r), o.c(1.0)), o.pow2(o.to_int(n)))


def _tanh_dw(o, x):
    """tanh|x| = t / (t + 2), t = expm1(2|x|); sign restored by copysign (keeps -0.0).

    The quotient gets one Newton correction with the exact residual t - y (t + 2),
    so that little more than expm1's error remains (one division, for speed).
    """
    ax = o.fabs(x)
    ax = o.sel(o.cmp(">", ax, o.c(o.kind.tanh_sat)), o.c(o.kind.tanh_sat), ax)
    t = _expm1_core(o, o.add(ax, ax))
    d, dl = _two_sum(o, t, o.c(2.0))
    inv = o.div(o.c(1.0), d)
    y = o.mul(t, inv)
    res = o.fma(o.neg(y), dl, o.fma(o.neg(y), d, t))
    y = o.fma(res, inv, y)
    return o.finish(x, o.copysign(y, x))


def _two_sum(o, a, b):
    """a + b = s + e exactly (Knuth's TwoSum; no ordering of |a|, |b| needed)."""
    s = o.add(a, b)
    bb = o.sub(s, a)
    return s, o.add(o.sub(a, o.sub(s, bb)), o.sub(b, bb))


# ---- log family -------------------------------------------------------------------------

def _log_reduce(o, x):
    """x = 2^k * (1 + f) with f in [sqrt(1/2)-1, sqrt(2)-1); x > 0 finite (else garbage).

    Subnormals are scaled by 2^mant first. Adding (one - sqrt_half) to the bits
    makes the exponent field carry exactly when the mantissa is >= sqrt(1/2).
    """
    kd = o.kind
    tiny = o.cmp("<", x, o.c(2.0 ** (1 - kd.bias)))
    x = o.sel(tiny, o.mul(x, o.c(2.0 ** kd.mant)), x)
    one_bits = kd.bias << kd.mant
    bits = o.b.add(o.to_bits(x), o.ci(one_bits - kd.sqrt_half_bits))
    k = o.b.sub(o.b.lshr(bits, o.ci(kd.mant)), o.ci(kd.bias))
    k = o.b.sub(k, o.b.select(tiny, o.ci(kd.mant), o.ci(0)))
    mant = o.b.and_(bits, o.ci((1 << kd.mant) - 1))
    m = o.from_bits(o.b.add(mant, o.ci(kd.sqrt_half_bits)))
    return o.to_float(k), o.sub(m, o.c(1.0))      # m - 1 is exact (Sterbenz)


def _log_from_parts(o, k, f, tail):
    """k ln2 + log1p(f) + tail, fdlibm-style: s = f/(2+f), log1p(f) = f - (hfsq - s(hfsq+R)).

    The large terms (k*ln2_hi exact, f exact) are added last so the rounding
    error is that of the small corrections.
    """
    s = o.div(f, o.add(f, o.c(2.0)))
    z = o.mul(s, s)
    big_r = o.mul(z, o.poly(z, o.coeffs("log_R")))
    hfsq = o.mul(o.mul(f, f), o.c(0.5))
    ln2_hi, ln2_lo = o.const_.ln2_k
    small = o.fma(k, o.c(ln2_lo), tail)
    small = o.fma(s, o.add(hfsq, big_r), small)
    return o.fma(k, o.c(ln2_hi), o.sub(f, o.sub(hfsq, small)))


def _log_specials(o, x, y, at_zero):
    """Shared special cases of log and log1p, on argument x with pole at x == at_zero."""
    zero, inf = o.c(at_zero), o.c(float("inf"))
    y = o.sel(o.cmp("==", x, inf), inf, y)
    y = o.sel(o.cmp("<", x, zero), o.c(float("nan")), y)
    y = o.sel(o.cmp("==", x, zero), o.c(float("-inf")), y)
    return o.finish(x, y)


def _log(o, x):
    k, f = _log_reduce(o, x)
    return _log_specials(o, x, _log_from_parts(o, k, f, o.c(0.0)), 0.0)


def _log1p(o, x):
    """log1p(x) = log(u) + c/u where u = fl(1 + x) and c = (1 + x) - u exactly (TwoSum)."""
    u, c = _two_sum(o, o.c(1.0), x)
    k, f = _log_reduce(o, u)
    y = _log_from_parts(o, k, f, o.div(c, u))
    y = o.sel(o.cmp("==", x, o.c(0.0)), x, y)       # keep -0.0
    return _log_specials(o, x, y, -1.0)


# ---- sin / cos ---------------------------------------------------------------------------

def _trig_reduce(o, x):
    """x = n pi/2 + r with q = n mod 4 (as float); finite x (inf/nan give garbage).

    Cody-Waite in three fma steps (pi/2 split in three floats); accurate while n is
    exact and small, see SIN_COS_ACCURATE_RANGE. Past it the clamp keeps r, and so
    the result, bounded.
    """
    n = o.rint(o.mul(x, o.c(0.6366197723675814)))
    c1, c2, c3 = o.const_.pio2
    r = o.fma(n, o.c(-c1), x)      # exact while n*c1 and x share their leading bits
    r = o.fma(n, o.c(-c2), r)
    r = o.clamp(o.fma(n, o.c(-c3), r), -1.6, 1.6)
    q = o.sub(n, o.mul(o.c(4.0), o.floor(o.mul(n, o.c(0.25)))))      # n mod 4, as float
    return r, q


def _trig_polys(o, r):
    """(sin(r), cos(r)) for |r| <= 0.8 (accurate), bounded up to the clamp."""
    z = o.mul(r, r)
    s = o.fma(o.mul(r, z), o.poly(z, o.coeffs("sin_S")), r)
    c = o.fma(o.mul(z, z), o.poly(z, o.coeffs("cos_C")), o.fma(z, o.c(-0.5), o.c(1.0)))
    return s, c


def _trig_quadrant(o, x, s, c, q, quarter_turns):
    """sin(x + quarter_turns * pi/2) from the parts: quadrant (q + quarter_turns) mod 4
    selects sin(r), cos(r), -sin(r), -cos(r); inf/nan give nan."""
    q = o.add(q, o.c(float(quarter_turns)))
    q = o.sel(o.cmp(">=", q, o.c(4.0)), o.sub(q, o.c(4.0)), q)
    odd = o.b.or_(o.cmp("==", q, o.c(1.0)), o.cmp("==", q, o.c(3.0)))
    v = o.sel(odd, c, s)
    v = o.sel(o.cmp(">=", q, o.c(2.0)), o.neg(v), v)
    v = o.sel(o.cmp(">", v, o.c(1.0)), o.c(1.0), v)
    v = o.sel(o.cmp("<", v, o.c(-1.0)), o.c(-1.0), v)
    finite = o.cmp("<", o.fabs(x), o.c(float("inf")))
    return o.sel(finite, v, o.sub(x, x))              # inf - inf and nan give nan


def _sin_from(o, x, s, c, q):
    y = _trig_quadrant(o, x, s, c, q, 0)
    return o.sel(o.cmp("==", x, o.c(0.0)), x, y)      # keep -0.0


def _sin(o, x):
    r, q = _trig_reduce(o, x)
    return _sin_from(o, x, *_trig_polys(o, r), q)


def _cos(o, x):
    r, q = _trig_reduce(o, x)
    return _trig_quadrant(o, x, *_trig_polys(o, r), q, 1)


def emit_sincos(builder, x):
    """(sin(x), cos(x)) sharing the reduction and both polynomials; each is bit-for-bit
    what `emit_unary` gives for it alone."""
    o = _Ops(builder, x.type)
    r, q = _trig_reduce(o, x)
    s, c = _trig_polys(o, r)
    return _sin_from(o, x, s, c, q), _trig_quadrant(o, x, s, c, q, 1)


# ---- exact ones --------------------------------------------------------------------------

def _sign(o, x):
    """numpy: 1, -1, +0 for +-0, nan for nan."""
    y = o.sel(o.cmp("==", x, o.c(0.0)), o.c(0.0), x)
    y = o.sel(o.cmp("<", x, o.c(0.0)), o.c(-1.0), y)
    return o.sel(o.cmp(">", x, o.c(0.0)), o.c(1.0), y)


_UNARY = {
    "exp": _exp, "log": _log, "log1p": _log1p, "expm1": _expm1, "tanh": _tanh,
    "sin": _sin, "cos": _cos, "sqrt": lambda o, x: o.sqrt(x), "abs": lambda o, x: o.fabs(x),
    "sign": _sign, "neg": lambda o, x: o.neg(x),
    "atan": lambda o, x: _in_f64(o, _atan, x), "log2": lambda o, x: _log_base(o, x, _LOG2E),
    "log10": lambda o, x: _log_base(o, x, _LOG10E), "exp2": lambda o, x: _in_f64(o, _exp2, x),
    # rounding to integral values: one SIMD instruction each (rint: ties to even, as numpy)
    "floor": lambda o, x: o.floor(x), "ceil": lambda o, x: o.ceil(x),
    "rint": lambda o, x: o.rint(x), "trunc": lambda o, x: o.trunc(x),
    "erf": lambda o, x: _in_f64(o, _erf, x), "erfc": lambda o, x: _in_f64(o, _erfc, x),
    "lgamma": lambda o, x: _in_f64(o, _gamma_family(gamma.lgamma), x),
    "digamma": lambda o, x: _in_f64(o, _gamma_family(gamma.digamma), x),
}
assert tuple(_UNARY) == UNARY_NAMES


# ---- atan, atan2 ----------------------------------------------------------------------------

def _in_f64(o, fn, *args):
    """fn computed in float64 for float32 operands, rounded once (float64's error is far
    below a float32 ULP); float64 operands as they are."""
    if o.tag == "f64":
        return fn(o, *args)
    d = o.other("f64")
    return o.b.fptrunc(fn(d, *[o.b.fpext(a, d.ty) for a in args]), o.ty)


# fdlibm's reduction of atan(a), a >= 0: on [lo, hi) the argument is t = (p a - q)/(r a + s)
# and atan(a) = base + atan(t), |t| <= 7/16; the numerators are exact (Sterbenz)
_ATAN_PIECES = (  # (lo, p, q, r, s, base)
    (7 / 16, 2.0, 1.0, 1.0, 2.0, _ATAN_HALF),
    (11 / 16, 1.0, 1.0, 1.0, 1.0, _PI / 4),
    (19 / 16, 1.0, 1.5, 1.5, 1.0, _ATAN_3HALF),
    (39 / 16, 0.0, 1.0, 1.0, 0.0, _PI / 2),
)


def _atan_pos(o, a, flip=None):
    """atan(a) for a >= 0 (a = inf gives pi/2; nan gives nan), float64; pi - atan(a) in the
    lanes where `flip` is set (a double-word pi - base, so the quadrant costs no accuracy)."""
    a = o.sel(o.cmp(">", a, o.c(2.0 ** 600)), o.c(2.0 ** 600), a)   # inf: 0 * a is no nan
    p, q, r, s = (o.c(v) for v in (1.0, 0.0, 0.0, 1.0))
    hi, lo = _atan_base(o, Decimal(0), flip)
    for start, pk, qk, rk, sk, base in _ATAN_PIECES:
        inside = o.cmp(">=", a, o.c(start))
        bh, bl = _atan_base(o, base, flip)
        p, q, r, s, hi, lo = (o.sel(inside, new, old) for new, old in
                              zip((o.c(pk), o.c(qk), o.c(rk), o.c(sk), bh, bl),
                                  (p, q, r, s, hi, lo)))
    t = o.div(o.fma(p, a, o.neg(q)), o.fma(r, a, s))
    if flip is not None:
        t = o.sel(flip, o.neg(t), t)
    z = o.mul(t, t)
    w = o.fma(o.mul(t, z), o.poly(z, _COEFFS[("atan_G", "f64")]), lo)
    return o.add(hi, o.add(t, w))


def _atan_base(o, base, flip):
    """The double word base (or pi - base where `flip`), as splatted constants."""
    bh, bl = (o.c(v) for v in _split(base, "f64", 2))
    if flip is None:
        return bh, bl
    fh, fl = (o.c(v) for v in _split(_PI - base, "f64", 2))
    return o.sel(flip, fh, bh), o.sel(flip, fl, bl)


def _atan(o, x):
    return o.finish(x, o.copysign(_atan_pos(o, o.fabs(x)), x))


def _atan2(o, y, x):
    """numpy's arctan2(y, x) (C99 Annex F): quadrant from the signs, including of zeros."""
    ax, ay, inf = o.fabs(x), o.fabs(y), o.c(float("inf"))
    ratio = o.div(ay, ax)
    ratio = o.sel(o.b.and_(o.cmp("==", ax, inf), o.cmp("==", ay, inf)), o.c(1.0), ratio)
    ratio = o.sel(o.cmp("==", ay, o.c(0.0)), o.c(0.0), ratio)   # 0/0 and 0/inf: on the axis
    res = o.copysign(_atan_pos(o, ratio, o.signbit(x)), y)
    return o.sel(o.b.or_(o.isnan(x), o.isnan(y)), o.add(x, y), res)


# ---- log2, log10, exp2 -----------------------------------------------------------------------

def _log_base(o, x, inv_ln_base):
    """log(x) / ln(base): the double-word log times a double-word 1/ln(base) (f64), or
    float64's log for float32; exact powers of the base give exact integers."""
    if o.tag == "f32":
        d = o.other("f64")
        xd = o.b.fpext(x, d.ty)
        k, f = _log_reduce(d, xd)
        y = d.mul(_log_from_parts(d, k, f, d.c(0.0)), d.c(float(inv_ln_base)))
        return _log_specials(o, x, o.b.fptrunc(y, o.ty), 0.0)
    lh, ll = _log_dw(o, x)
    ch, cl = _split(inv_ln_base, "f64", 2)
    th = o.mul(lh, o.c(ch))
    tl = o.add(o.fma(lh, o.c(ch), o.neg(th)), o.fma(lh, o.c(cl), o.mul(ll, o.c(ch))))
    return _log_specials(o, x, o.add(th, tl), 0.0)


def _exp2(o, x):
    """2**x = 2**n * exp(f ln2), n = rint(x), f = x - n exact; f ln2 as a double word (f64)."""
    xc = o.clamp(x, -1080.0, 1030.0)            # 2^(n/2) stays normal in _scale
    n = o.rint(xc)
    f = o.sub(xc, n)
    ln2 = float(_LN2)
    th = o.mul(f, o.c(ln2))
    tl = o.fma(f, o.c(o.const_.ln2[1]), o.fma(f, o.c(ln2), o.neg(th)))
    p = o.add(o.c(1.0), o.add(_expm1_small(o, th), tl))
    return o.finish(x, _scale(o, p, n))


# ---- erf, erfc -------------------------------------------------------------------------------

_ERFC_T = (2.0 / 30, 0.5)  # the range of t = 2/(2+z) on 2 <= z <= 28 (erfc_H's)


def _erf_small(o, a):
    """erf(a) for 0 <= a < 1/2: a P(a^2)."""
    return o.mul(a, o.poly(o.mul(a, a), o.coeffs("erf_P")))


def _erfc_big(o, a):
    """erfc(a) for a >= 1/2 (other lanes: finite garbage), float64: e^(-a^2 + G) on [1/2, 2],
    t e^(-a^2 + H(t)) past 2 (t = 2/(2+a)), with a^2 exact as a double word (fma) and its
    low part carried into exp's reduced argument; past 28 the result has underflowed to 0."""
    z = o.clamp(a, 0.5, 28.0)
    far = o.cmp(">=", z, o.c(2.0))
    t = o.div(o.c(2.0), o.add(o.c(2.0), z))
    mid, half = (_ERFC_T[0] + _ERFC_T[1]) / 2, (_ERFC_T[1] - _ERFC_T[0]) / 2
    s = o.sel(far, o.div(o.sub(t, o.c(mid)), o.c(half)), o.div(o.sub(z, o.c(1.25)), o.c(0.75)))
    g = o.c(0.0)
    for cg, ch in reversed(tuple(zip(o.coeffs("erfc_G"), o.coeffs("erfc_H")))):
        g = o.fma(g, s, o.sel(far, o.c(ch), o.c(cg)))   # Horner, each lane its piece's coeffs
    hi = o.mul(z, z)
    lo = o.fma(z, z, o.neg(hi))
    e, tail = _two_sum(o, o.neg(hi), o.sub(g, lo))
    x = _exp_core(o, e, extra=tail)
    return o.sel(far, o.mul(t, x), x)


def _erf(o, x):
    a = o.fabs(x)
    y = o.sel(o.cmp("<", a, o.c(0.5)), _erf_small(o, a), o.sub(o.c(1.0), _erfc_big(o, a)))
    return o.finish(x, o.copysign(y, x))


def _erfc(o, x):
    a = o.fabs(x)
    y = o.sel(o.cmp("<", a, o.c(0.5)), o.sub(o.c(1.0), _erf_small(o, a)), _erfc_big(o, a))
    return o.finish(x, o.sel(o.signbit(x), o.sub(o.c(2.0), y), y))


# ---- lgamma, digamma: ir/gamma.py's algorithms on these operations ---------------------

class _GammaOps:
    """ir/gamma.py's operations object over `_Ops` (float64)."""

    def __init__(self, o):
        self.o = o
        self.c, self.add, self.sub, self.mul, self.div = o.c, o.add, o.sub, o.mul, o.div
        self.sel, self.rint, self.floor, self.abs = o.sel, o.rint, o.floor, o.fabs

    def lt(self, a, b):
        return self.o.cmp("<", a, b)

    def ge(self, a, b):
        return self.o.cmp(">=", a, b)

    def eq(self, a, b):
        return self.o.cmp("==", a, b)

    def isinf(self, a):
        return self.o.cmp("==", self.o.fabs(a), self.o.c(float("inf")))

    def log(self, a):
        return _log(self.o, a)

    def log1p(self, a):
        return _log1p(self.o, a)

    def sin(self, a):
        return _sin(self.o, a)

    def cos(self, a):
        return _cos(self.o, a)


def _gamma_family(fn):
    """The mathlib rule of one of ir/gamma.py's functions."""
    return lambda o, x: o.finish(x, fn(_GammaOps(o), x))


def emit_binary(builder, name, x, y):
    """Emit `name(x, y)` (see BINARY_NAMES) for float/double values or vectors of one type."""
    if name == "pow":
        return emit_pow(builder, x, y)
    if name != "atan2":
        raise NotImplementedError(f"mathlib: no binary function {name!r}; "
                                  f"have {', '.join(BINARY_NAMES)}")
    if x.type != y.type:
        raise TypeError(f"mathlib.emit_binary: operand types differ: {x.type} vs {y.type}")
    return _in_f64(_Ops(builder, x.type), _atan2, x, y)


def emit_unary(builder, name, x):
    """Emit `name(x)` for x a float/double value or vector of them; see UNARY_NAMES."""
    try:
        rule = _UNARY[name]
    except KeyError:
        raise NotImplementedError(f"mathlib: no unary function {name!r}; "
                                  f"have {', '.join(UNARY_NAMES)}") from None
    return rule(_Ops(builder, x.type), x)


# ---- pow ---------------------------------------------------------------------------------

def _log_dw(o, x):
    """log(x) as a double-word hi + lo with ~2^-63 relative error (f64, x > 0 finite).

    Same reduction as `_log_from_parts`, but s = f/(2+f), s^3 and 2/3 carry their
    rounding errors (fma residuals) so the product y*log(x) in pow stays exact enough.
    """
    k, f = _log_reduce(o, x)
    two = o.c(2.0)
    uh = o.add(two, f)
    ul = o.add(o.sub(two, uh), f)                       # 2 + f = uh + ul exactly
    sh = o.div(f, uh)
    rem = o.fma(o.neg(sh), ul, o.fma(o.neg(sh), uh, f))
    sl = o.div(rem, uh)                                  # s = sh + sl
    s2h = o.mul(sh, sh)
    s2l = o.fma(o.mul(sh, two), sl, o.fma(sh, sh, o.neg(s2h)))
    s3h = o.mul(s2h, sh)
    s3l = o.add(o.fma(s2h, sh, o.neg(s3h)), o.fma(s2l, sh, o.mul(s2h, sl)))
    w = o.mul(s2h, o.poly(s2h, o.coeffs("log_R1")))
    c23h, c23l = o.const_.two_thirds
    rh = o.add(o.c(c23h), w)
    rl = o.add(o.add(o.sub(o.c(c23h), rh), w), o.c(c23l))     # Fast2Sum: |2/3| > |w|
    th = o.mul(s3h, rh)
    tl = o.add(o.fma(s3h, rh, o.neg(th)), o.fma(s3h, rl, o.mul(s3l, rh)))
    return _dw_add_log_terms(o, k, o.mul(sh, two), o.mul(sl, two), th, tl)


def _dw_add_log_terms(o, k, ah, al, th, tl):
    """k ln2 + (ah + al) + (th + tl) as hi + lo; |th| < |ah| and |L| < |k ln2| if k != 0."""
    lh = o.add(ah, th)
    ll = o.add(o.add(o.sub(ah, lh), th), o.add(al, tl))
    ln2_hi, ln2_lo = o.const_.ln2_k
    kh = o.mul(k, o.c(ln2_hi))                           # exact: ln2_hi has short mantissa
    hh = o.add(kh, lh)
    hl = o.add(o.add(o.sub(kh, hh), lh), o.fma(k, o.c(ln2_lo), ll))
    return hh, hl


def _pow_core_f64(o, ax, y):
    """|x|^y for finite ax > 0, finite y: exp(y * log ax) with y*log carried as hi + lo."""
    lh, ll = _log_dw(o, ax)
    th = o.mul(y, lh)
    tl = o.fma(y, ll, o.fma(y, lh, o.neg(th)))
    return _exp_core(o, th, tl)


def _pow_core_f32(o, ax, y):
    """|x|^y in float64 (log and exp errors ~2^-52 are far below a float32 ULP)."""
    d = o.other("f64")
    ad = o.b.fpext(ax, d.ty)
    yd = o.b.fpext(y, d.ty)
    k, f = _log_reduce(d, ad)
    t = o.b.fmul(yd, _log_from_parts(d, k, f, d.c(0.0)))
    return o.b.fptrunc(_exp_core(d, t), o.ty)


def _pow_specials(o, x, y, core):
    """numpy's (C99 Annex F) special cases of pow around the magnitude `core`."""
    inf, ax, ay = o.c(float("inf")), o.fabs(x), o.fabs(y)
    yint = o.cmp("==", o.floor(y), y)
    half = o.mul(y, o.c(0.5))
    yodd = o.b.and_(yint, o.cmp("!=", o.floor(half), half))
    # x in {0, inf} or y = +-inf: result is inf, 0 or 1 by the sign of y*log|x|
    lsign = o.sel(o.cmp("<", ax, o.c(1.0)), o.c(-1.0),
                  o.sel(o.cmp(">", ax, o.c(1.0)), o.c(1.0), o.c(0.0)))
    e = o.mul(lsign, y)
    limit = o.sel(o.cmp(">", e, o.c(0.0)), inf, o.sel(o.cmp("<", e, o.c(0.0)), o.c(0.0), o.c(1.0)))
    special = o.b.or_(o.b.or_(o.cmp("==", ax, o.c(0.0)), o.cmp("==", ax, inf)),
                      o.cmp("==", ay, inf))
    mag = o.sel(special, limit, core)
    res = o.sel(o.b.and_(o.signbit(x), yodd), o.neg(mag), mag)
    neg_base = o.b.and_(o.cmp("<", x, o.c(0.0)), o.cmp("<", ax, inf))
    bad = o.b.or_(o.b.and_(neg_base, o.b.not_(yint)), o.b.or_(o.isnan(x), o.isnan(y)))
    res = o.sel(bad, o.c(float("nan")), res)
    unit = o.b.or_(o.cmp("==", y, o.c(0.0)), o.cmp("==", x, o.c(1.0)))
    return o.sel(unit, o.c(1.0), res)


def emit_pow(builder, x, y):
    """Emit numpy's `x ** y` for float/double values (or vectors) of the same type.

    Negative x with integral y gives the signed power; with non-integral finite y, nan.
    x = +-0, +-inf and y = +-inf follow C99 (pow(-inf, 0.5) = inf, pow(-1, inf) = 1);
    y = 0 or x = 1 give 1 even with a nan operand.
    """
    if x.type != y.type:
        raise TypeError(f"mathlib.emit_pow: operand types differ: {x.type} vs {y.type}")
    o = _Ops(builder, x.type)
    ax = o.fabs(x)
    # the core sees a harmless stand-in where the specials decide the result
    ok = o.b.and_(o.cmp("<", ax, o.c(float("inf"))), o.cmp(">", ax, o.c(0.0)))
    safe_x = o.sel(ok, ax, o.c(1.0))
    safe_y = o.sel(o.cmp("<", o.fabs(y), o.c(float("inf"))), y, o.c(0.0))
    core = (_pow_core_f32 if o.tag == "f32" else _pow_core_f64)(o, safe_x, safe_y)
    return _pow_specials(o, x, y, core)
