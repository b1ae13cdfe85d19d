"""mathlib: compiled loop kernels against numpy (accuracy in ULPs, special values, SIMD).

Each function is compiled into `void k(T* noalias x, T* noalias y, i64 n)` computing
y[i] = f(x[i]) (pow: `(x, y, out, n)`), optimized and JIT-compiled by llvm_util,
and run on numpy arrays through ctypes. The accuracy reference is numpy in higher
precision (float64 for float32 results, 80-bit long double for float64 results);
nan/inf/signed-zero results must match numpy's own result for the dtype exactly.
"""
import ctypes
import math
import re

import numpy as np
import pytest
from llvmlite import ir

from tracegrad.codegen import llvm_util, mathlib

TAGS = {"f32": np.float32, "f64": np.float64}
REF = {"f32": np.float64, "f64": np.longdouble}          # reference precision
TRANSCENDENTAL = ("exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "atan", "log2", "log10",
                  "exp2", "erf", "erfc", "lgamma", "digamma")
NP_FUNC = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
           "tanh": np.tanh, "sin": np.sin, "cos": np.cos, "sqrt": np.sqrt,
           "abs": np.abs, "sign": np.sign, "neg": np.negative, "atan": np.arctan,
           "log2": np.log2, "log10": np.log10, "exp2": np.exp2, "floor": np.floor,
           "ceil": np.ceil, "rint": np.rint, "trunc": np.trunc,
           "pow": np.power, "atan2": np.arctan2}
# numpy has no erf: libm's through Python's math module, in float64 (within an ULP), so the
# float64 bounds are checked with one ULP of slack for the reference's own error
for _name in ("erf", "erfc"):
    _libm = np.frompyfunc(getattr(math, _name), 1, 1)
    NP_FUNC[_name] = lambda x, f=_libm: np.asarray(f(np.asarray(x, np.float64)), np.float64).astype(
        np.asarray(x).dtype)
REF_SLACK = {("erf", "f64"): 1.0, ("erfc", "f64"): 1.0}


def _scipy(name, fix=None):
    """scipy.special's `name` in float64 as the reference (a test extra; numpy has none)."""
    def f(x):
        special = pytest.importorskip("scipy.special")
        x = np.asarray(x)
        with np.errstate(all="ignore"):
            out = getattr(special, name)(x.astype(np.float64))
        return (out if fix is None else fix(x, out)).astype(x.dtype)
    return f


def _gammaln_fixed(x, out):
    """scipy's gammaln(-inf) is -inf (tracegrad's is C99's and torch's +inf), and it
    overflows to inf for subnormal x, where lgamma is -log|x| (to double precision below
    1e-17)."""
    with np.errstate(divide="ignore"):
        tiny = np.where((x != 0) & (np.abs(x) < 1e-17), -np.log(np.abs(x) + (x == 0)), out)
    return np.where(x == -np.inf, np.inf, tiny)


NP_FUNC["lgamma"] = _scipy("gammaln", _gammaln_fixed)
NP_FUNC["digamma"] = _scipy("psi")
# scipy's own errors there, against mpmath: gammaln up to 5.5 ULP (x in [0.25, 1.5]), psi
# up to 1.7 (x = 7.197); mpmath's values check the bounds themselves near the zeros below
REF_SLACK.update({("lgamma", "f64"): 6.0, ("digamma", "f64"): 2.0})
# their ULP bounds hold on the positive axis; below 0 the reflection's terms cancel near
# the functions' zeros, and the error is absolute there (test_gamma_family_below_zero)
RELATIVE_ONLY_ABOVE_ZERO = ("lgamma", "digamma")
INF, NAN = np.inf, np.nan


# ---- building and running kernels ------------------------------------------------------

def _ir_type(tag):
    return ir.FloatType() if tag == "f32" else ir.DoubleType()


class Kernels:
    """All mathlib kernels for both dtypes, in one JIT-compiled module."""

    def __init__(self):
        module = ir.Module(name="mathlib_test")
        for tag in TAGS:
            ty = _ir_type(tag)
            for name in mathlib.UNARY_NAMES:
                llvm_util.loop_kernel(module, f"{name}_{tag}", ty, 1,
                             lambda b, x, name=name: mathlib.emit_unary(b, name, x))
            for name in mathlib.BINARY_NAMES:
                llvm_util.loop_kernel(module, f"{name}_{tag}", ty, 2,
                                      lambda b, x, y, name=name:
                                      mathlib.emit_binary(b, name, x, y))
            for k, part in enumerate(("sin", "cos")):
                llvm_util.loop_kernel(module, f"sincos.{part}_{tag}", ty, 1,
                             lambda b, x, k=k: mathlib.emit_sincos(b, x)[k])
        self.engine, self.module_ref = llvm_util.compile_ir(str(module))
        self.asm = llvm_util.assembly(self.module_ref)

    def __call__(self, name, tag, *arrays):
        dt = TAGS[tag]
        arrays = [np.ascontiguousarray(a, dtype=dt) for a in arrays]
        out = np.empty_like(arrays[0])
        addr = self.engine.get_function_address(f"{name}_{tag}")
        ptrs = [ctypes.c_void_p] * (len(arrays) + 1)
        fn = ctypes.CFUNCTYPE(None, *ptrs, ctypes.c_int64)(addr)
        fn(*[a.ctypes.data for a in arrays], out.ctypes.data, out.size)
        return out


@pytest.fixture(scope="module")
def kernels():
    return Kernels()


# ---- error measurement ---------------------------------------------------------------------

def ulp_error(got, ref, tag):
    """|got - ref| in units of the dtype's ULP at ref (subnormal spacing below normal)."""
    fi = np.finfo(TAGS[tag])
    mant, emin = fi.nmant, fi.minexp
    ref = np.asarray(ref, dtype=REF[tag])
    _, e = np.frexp(np.abs(ref))
    ulp = np.ldexp(np.ones_like(ref), np.maximum(e - 1, emin) - mant)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.abs(got.astype(REF[tag]) - ref) / ulp


def reference(name, tag, *args):
    with np.errstate(all="ignore"):
        hi = [np.asarray(a, dtype=TAGS[tag]).astype(REF[tag]) for a in args]
        same = [np.asarray(a, dtype=TAGS[tag]) for a in args]
        return NP_FUNC[name](*hi), NP_FUNC[name](*same)


def check(name, tag, got, args, max_ulp=None, mask=None):
    """ULP bound on finite results; nan, inf and sign agree with numpy's own result."""
    ref, same = reference(name, tag, *args)
    if name in RELATIVE_ONLY_ABOVE_ZERO:  # scipy's are absolute near the zeros: checked
        above = (np.asarray(args[0]) > 0) & (np.abs(ref) >= 0.25)  # against mpmath's values
        mask = above if mask is None else mask & above
    if mask is not None:
        got, ref, same = got[mask], ref[mask], same[mask]
    bound = mathlib.MAX_ULP[(name, tag)] if max_ulp is None else max_ulp
    bound += REF_SLACK.get((name, tag), 0.0)
    assert np.array_equal(np.isnan(got), np.isnan(same)), _worst(got, same, np.isnan)
    ok = ~np.isnan(same)
    assert np.array_equal(np.signbit(got[ok]), np.signbit(same[ok])), "sign differs from numpy"
    rounded = ref.astype(TAGS[tag])
    inf = np.isinf(rounded) | np.isinf(got)
    assert np.array_equal(got[inf & ok], rounded[inf & ok]), "inf where numpy is finite, or not"
    err = ulp_error(got[ok & ~inf], ref[ok & ~inf], tag)
    worst = float(err.max(initial=0.0))
    assert worst <= bound, f"{name} {tag}: {worst:.3f} ULP > {bound}"
    return worst


def _worst(got, same, pred):
    bad = np.flatnonzero(pred(got) != pred(same))[:5]
    return f"mismatch at {bad}: got {got[bad]}, numpy {same[bad]}"


def assert_same(got, want):
    """Bitwise-level equality for special results: nan, inf, zeros with their sign."""
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    ok = ~np.isnan(want)
    assert np.array_equal(got[ok], want[ok]), (got, want)
    assert np.array_equal(np.signbit(got[ok]), np.signbit(want[ok])), (got, want)


# ---- inputs --------------------------------------------------------------------------------

def sweep(tag, n=60_000):
    """Log-spaced magnitudes from the smallest subnormal to the largest finite, both signs."""
    fi = np.finfo(TAGS[tag])
    mags = np.geomspace(float(fi.smallest_subnormal), float(fi.max), n).astype(TAGS[tag])
    return np.concatenate([mags, -mags])


RANDOM_RANGES = {
    "exp": {"f32": (-110, 95), "f64": (-760, 720)},
    "expm1": {"f32": (-30, 95), "f64": (-60, 720)},
    "log": {"f32": (0, 8), "f64": (0, 8)},
    "log1p": {"f32": (-1, 4), "f64": (-1, 4)},
    "tanh": {"f32": (-12, 12), "f64": (-25, 25)},
    "sin": {"f32": (-400, 400), "f64": (-400, 400)},
    "cos": {"f32": (-400, 400), "f64": (-400, 400)},
    "log2": {"f32": (0, 8), "f64": (0, 8)},
    "log10": {"f32": (0, 8), "f64": (0, 8)},
    "exp2": {"f32": (-160, 130), "f64": (-1100, 1030)},
    "erf": {"f32": (-6, 6), "f64": (-7, 7)},
    "erfc": {"f32": (-4, 11), "f64": (-7, 28)},
    "lgamma": {"f32": (0, 40), "f64": (0, 40)},
    "digamma": {"f32": (0, 40), "f64": (0, 40)},
}


def random_values(name, tag, rng, n=40_000):
    lo, hi = RANDOM_RANGES.get(name, {}).get(tag, (-100, 100))
    wide = rng.uniform(lo, hi, n)
    small = rng.uniform(-1, 1, n) * 10.0 ** rng.uniform(-12, 0, n)
    return np.concatenate([wide, small]).astype(TAGS[tag])


SPECIAL = [0.0, -0.0, INF, -INF, NAN, 1.0, -1.0, 2.0, -2.0, 0.5, 1e-30, -1e-30]
EXTRA_SPECIAL = {
    "exp": [1000.0, -1000.0, 710.0, -750.0, 89.0, -104.0, -200.0],
    "expm1": [1000.0, -1000.0, 710.0, -750.0, 89.0, -89.0, -200.0],
    "log": [1e-300, -1e-300, 1e300],
    "log1p": [-1.5, 1e300, -0.999],
    "tanh": [30.0, -30.0, 1e300, -1e300],
    "sin": [1e30, -1e30, 3.0e38],
    "cos": [1e30, -1e30, 3.0e38],
    "atan": [1e300, -1e300, 0.4375, 0.6875, 1.1875, 2.4375, -2.4375],
    "log2": [1e-300, -1e-300, 1e300, 1024.0, 0.125],
    "log10": [1e-300, -1e-300, 1e300, 1000.0, 1e-5],
    "exp2": [1024.0, -1075.0, 1023.9, 128.0, -150.0, -149.0, -1100.0, 2000.0, -2000.0],
    **{name: [0.4999999999999999, 0.5, 2.0, 1.9999999999999998, 6.0, 26.5, 27.3, 28.0, 30.0,
              1e300, -1e300] for name in ("erf", "erfc")},
    **{name: [1.0, 2.0, 1.4616321449683622, 1.5, 3.0, 10.0, 9.999999999999998, 2.5e305,
              1e306, -3.0, -2.5, 4503599627370497.0, -4503599627370497.0]
       for name in ("lgamma", "digamma")},
    **{name: [2.5, -2.5, 1.5, -0.5, 1e300, -1e300, 4503599627370495.5, 8388607.5]
       for name in ("floor", "ceil", "rint", "trunc")},
}


def special_values(name, tag):
    fi = np.finfo(TAGS[tag])
    edge = [fi.smallest_subnormal, -fi.smallest_subnormal, fi.tiny, -fi.tiny, fi.max, -fi.max]
    with np.errstate(over="ignore"):
        return np.array(SPECIAL + EXTRA_SPECIAL.get(name, []), dtype=TAGS[tag]).tolist() + edge


# ---- tests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("name", mathlib.UNARY_NAMES)
def test_sweep_and_random(kernels, name, tag):
    rng = np.random.default_rng(abs(hash((name, tag))) % 2**32)
    for x in (sweep(tag), random_values(name, tag, rng)):
        got = kernels(name, tag, x)
        mask = None
        if name in ("sin", "cos"):
            mask = np.abs(x) <= mathlib.SIN_COS_ACCURATE_RANGE[tag]
        check(name, tag, got, [x], mask=mask)


@pytest.mark.parametrize("tag", TAGS)
def test_sincos_is_sin_and_cos_bit_for_bit(kernels, tag):
    """emit_sincos shares the reduction and polynomials; each result equals emit_unary's."""
    rng = np.random.default_rng(21)
    x = np.concatenate([sweep(tag), random_values("sin", tag, rng),
                        np.array(special_values("sin", tag), dtype=TAGS[tag])])
    for part in ("sin", "cos"):
        got, want = kernels(f"sincos.{part}", tag, x), kernels(part, tag, x)
        np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("name", mathlib.UNARY_NAMES)
def test_special_values(kernels, name, tag):
    x = np.array(special_values(name, tag), dtype=TAGS[tag])
    got = kernels(name, tag, x)
    ref, same = reference(name, tag, x)
    exact = np.isnan(same) | np.isinf(same) | (same == 0)
    assert_same(got[exact], same[exact])
    if name not in ("sin", "cos"):
        check(name, tag, got[~exact], [x[~exact]])


# (x, value) from mpmath at 50 digits: near the positive zeros (scipy's gammaln and psi are
# accurate there only to about 1e-16 absolute), and where scipy's values err most
NEAR_ZEROS = {"lgamma": [
    (0.9999999999990905, 5.249745890089625e-13),
    (1.0000000000009095, -5.249745890076018e-13),
    (0.999999, 5.772164873855652e-07),
    (1.000001, -5.772148423874147e-07),
    (1.001, -0.0005763935982833062),
    (0.999, 0.0005780385328913802),
    (0.9, 0.06637623973474295),
    (1.1, -0.049872441259839764),
    (1.9999999999990905, -3.845201127643794e-13),
    (2.0000000000009095, 3.8452011276491285e-13),
    (1.999999, -4.227840125965854e-07),
    (2.000001, 4.2278465762452923e-07),
    (1.999, -0.0004224618006921073),
    (2.001, 0.000423106734800117),
    (1.9, -0.03898427592308336),
    (2.1, 0.04543773854448518),
    # and where scipy's gammaln errs by 5 ULP (the sweep's reference: REF_SLACK)
    (0.6002143376005099, 0.3979037289521231), (0.3, 1.0957979948180756),
    (11.201078830768893, 15.579212002773794),
], "digamma": [
    # where scipy's psi errs by 1.7 ULP
    (7.19665698095922, 1.9025339815303584), (3.5, 1.103156640645243), (25.0, 3.198742512851974),
    (1.4616321449683622, -9.241265521729427e-17),
    (1.4616321449683625, 1.2245374622004068e-16),
    (1.461632144968362, -3.072790566546293e-16),
    (1.4616321459683623, 9.676722326577634e-10),
    (1.4616321439683622, -9.676724183686003e-10),
    (1.4616421449683623, 9.676678178388793e-06),
    (1.4616221449683622, -9.67676673120742e-06),
    (1.46, -0.0015805619870834522),
    (1.47, 0.008066489011364869),
]}


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("name", RELATIVE_ONLY_ABOVE_ZERO)
def test_gamma_family_keeps_relative_accuracy_at_its_positive_zeros(kernels, name, tag):
    x, want = (np.array(v) for v in zip(*NEAR_ZEROS[name]))
    got = kernels(name, tag, x.astype(TAGS[tag]))
    if tag == "f32":  # the float32 argument's own value, within float32's bound
        want = NP_FUNC[name](x.astype(np.float32).astype(np.float64))
    err = ulp_error(got, np.asarray(want, np.float64), tag)
    assert err.max() <= mathlib.MAX_ULP[(name, tag)] + (tag == "f32"), (x[np.argmax(err)], err.max())


def _reflected_reference(name, x):
    """Below 0 from the reflection formula: scipy at 1 - x > 1 and pi x's trig in long
    double on r = x - rint(x) (exact; scipy's own psi loses 1e-12 next to the poles)."""
    r = (x - np.rint(x)).astype(np.longdouble)
    pi = np.longdouble("3.14159265358979323846264338327950288")
    positive = NP_FUNC[name](1.0 - x).astype(np.longdouble)
    if name == "digamma":
        return positive - pi / np.tan(pi * r)
    return np.log(pi / np.abs(np.sin(pi * r))) - positive


@pytest.mark.parametrize("name", RELATIVE_ONLY_ABOVE_ZERO)
def test_gamma_family_below_zero(kernels, name):
    """Below 0 (the reflection formulas) the error is within a few 1e-15 of max(1, |value|):
    relative where the value is large, absolute near the functions' zeros."""
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.uniform(-40, 0, 20_000), -(10.0 ** rng.uniform(-300, 15, 2000))])
    x = x[(x != np.rint(x)) & (x > -4e15)]
    got, ref = kernels(name, "f64", x), _reflected_reference(name, x)
    err = np.abs(got - ref) / np.maximum(1.0, np.abs(ref))
    assert float(err.max()) <= 8e-15, (x[np.argmax(err)], err.max())


SINGULAR = {  # exact results numpy gives, written out
    "log": [(0.0, -INF), (-0.0, -INF), (-1.0, NAN), (INF, INF), (1.0, 0.0)],
    "log1p": [(-1.0, -INF), (-2.0, NAN), (-0.0, -0.0), (0.0, 0.0), (INF, INF)],
    "expm1": [(-0.0, -0.0), (-INF, -1.0), (INF, INF), (1000.0, INF)],
    "exp": [(1000.0, INF), (-1000.0, 0.0), (-INF, 0.0), (0.0, 1.0), (-0.0, 1.0)],
    "tanh": [(-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (50.0, 1.0)],
    "sin": [(-0.0, -0.0), (INF, NAN), (-INF, NAN)],
    "cos": [(-0.0, 1.0), (INF, NAN)],
    "sign": [(-0.0, 0.0), (NAN, NAN), (-5.0, -1.0)],
    "sqrt": [(-0.0, -0.0), (-1.0, NAN)],
    "atan": [(-0.0, -0.0), (INF, np.pi / 2), (-INF, -np.pi / 2), (1.0, np.pi / 4)],
    "log2": [(0.0, -INF), (-0.0, -INF), (-1.0, NAN), (INF, INF), (1.0, 0.0), (8.0, 3.0)],
    "log10": [(0.0, -INF), (-1.0, NAN), (INF, INF), (1.0, 0.0), (1000.0, 3.0), (0.01, -2.0)],
    "exp2": [(-INF, 0.0), (INF, INF), (0.0, 1.0), (-0.0, 1.0), (10.0, 1024.0), (-3.0, 0.125)],
    "rint": [(2.5, 2.0), (-2.5, -2.0), (-0.4, -0.0), (0.5, 0.0), (1.5, 2.0)],
    "floor": [(-0.0, -0.0), (-0.5, -1.0), (INF, INF)],
    "ceil": [(-0.5, -0.0), (0.5, 1.0), (-INF, -INF)],
    "trunc": [(-0.5, -0.0), (-1.5, -1.0), (NAN, NAN)],
}


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("name", SINGULAR)
def test_singular_points(kernels, name, tag):
    x, want = (np.array(v, dtype=TAGS[tag]) for v in zip(*SINGULAR[name]))
    assert_same(kernels(name, tag, x), want)


@pytest.mark.parametrize("tag", TAGS)
def test_exp_subnormal_results(kernels, tag):
    """exp of large negative x rounds gradually through the subnormals like numpy."""
    fi = np.finfo(TAGS[tag])
    lo = np.log(float(fi.smallest_subnormal)) - 1.0
    x = np.linspace(lo, np.log(float(fi.tiny)) + 1.0, 20_000).astype(TAGS[tag])
    got = kernels("exp", tag, x)
    assert (got[:50] == 0).all() and (got[-50:] >= fi.tiny).all()
    check("exp", tag, got, [x])


@pytest.mark.parametrize("tag", TAGS)
def test_log_subnormal_inputs(kernels, tag):
    fi = np.finfo(TAGS[tag])
    x = np.geomspace(float(fi.smallest_subnormal), float(fi.tiny) * 4, 20_000).astype(TAGS[tag])
    check("log", tag, kernels("log", tag, x), [x])
    check("log1p", tag, kernels("log1p", tag, x), [x])


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("name", ("sin", "cos"))
def test_sin_cos_beyond_accurate_range(kernels, name, tag):
    """Past SIN_COS_ACCURATE_RANGE accuracy degrades, but results stay finite in [-1, 1]."""
    fi = np.finfo(TAGS[tag])
    mags = np.geomspace(mathlib.SIN_COS_ACCURATE_RANGE[tag], float(fi.max), 50_000)
    x = np.concatenate([mags, -mags]).astype(TAGS[tag])
    got = kernels(name, tag, x)
    assert np.isfinite(got).all() and (np.abs(got) <= 1).all()


@pytest.mark.parametrize("tag", TAGS)
def test_sin_cos_near_multiples_of_half_pi(kernels, tag):
    """Arguments next to k*pi/2 (cancellation in the reduction) up to the accurate range."""
    k = np.unique(np.geomspace(1, mathlib.SIN_COS_ACCURATE_RANGE[tag] / 1.6, 3000).astype(np.int64))
    base = (k * (np.pi / 2)).astype(TAGS[tag])
    x = np.concatenate([np.nextafter(base, -INF), base, np.nextafter(base, INF)])
    for name in ("sin", "cos"):
        check(name, tag, kernels(name, tag, x), [x])


# ---- pow -----------------------------------------------------------------------------------

def pow_inputs(tag, rng, n=60_000):
    """Positive bases over the whole range with exponents keeping x**y near the finite range,
    plus negative bases with integral exponents and small exponents."""
    fi = np.finfo(TAGS[tag])
    top = np.log(float(fi.max))
    x = np.exp(rng.uniform(np.log(float(fi.smallest_subnormal)), top, n))
    y = rng.uniform(-1.05, 1.05, n) * top / np.abs(np.log(x))
    xi = -rng.uniform(0.5, 3.0, n // 4)
    yi = np.round(rng.uniform(-60, 60, n // 4))
    xs = rng.uniform(0, 10, n // 4)
    ys = rng.uniform(-5, 5, n // 4)
    xn = 1.0 + rng.uniform(-0.3, 0.3, n // 4)          # |log x| small, |y| large
    yn = rng.uniform(-1.0, 1.0, n // 4) * top / np.abs(np.log(xn))
    dt = TAGS[tag]
    return (np.concatenate([x, xi, xs, xn]).astype(dt), np.concatenate([y, yi, ys, yn]).astype(dt))


@pytest.mark.parametrize("tag", TAGS)
def test_pow_accuracy(kernels, tag):
    x, y = pow_inputs(tag, np.random.default_rng(7))
    check("pow", tag, kernels("pow", tag, x, y), [x, y])


POW_SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 2.5, -2.5,
               INF, -INF, NAN, 1e-30, -1e30]


@pytest.mark.parametrize("tag", TAGS)
def test_pow_special_values(kernels, tag):
    """Every pair of special operands; numpy's SIMD loop (a long array) is the reference."""
    xs, ys = np.meshgrid(POW_SPECIAL, POW_SPECIAL)
    x, y = xs.ravel().astype(TAGS[tag]), ys.ravel().astype(TAGS[tag])
    got = kernels("pow", tag, x, y)
    ref, same = reference("pow", tag, x, y)
    exact = np.isnan(same) | np.isinf(same) | (same == 0) | (same == 1)
    assert_same(got[exact], same[exact])
    check("pow", tag, got[~exact], [x[~exact], y[~exact]])


# ---- atan2, exact results ----------------------------------------------------------------------

@pytest.mark.parametrize("tag", TAGS)
def test_atan2_accuracy(kernels, tag):
    rng = np.random.default_rng(11)
    dt = TAGS[tag]
    y = np.concatenate([rng.uniform(-5, 5, 40_000), rng.permutation(sweep(tag, 20_000))])
    x = np.concatenate([rng.uniform(-5, 5, 40_000), sweep(tag, 20_000)])
    y, x = y.astype(dt), x.astype(dt)
    check("atan2", tag, kernels("atan2", tag, y, x), [y, x])


@pytest.mark.parametrize("tag", TAGS)
def test_atan2_special_values(kernels, tag):
    """Every pair of signed zeros, infinities, nan and finite values: C99 Annex F."""
    fi = np.finfo(TAGS[tag])
    vals = [0.0, -0.0, INF, -INF, NAN, 1.0, -1.0, 3.0, -0.5, float(fi.smallest_subnormal),
            -float(fi.max)]
    ys, xs = np.meshgrid(vals, vals)
    y, x = ys.ravel().astype(TAGS[tag]), xs.ravel().astype(TAGS[tag])
    got = kernels("atan2", tag, y, x)
    ref, same = reference("atan2", tag, y, x)
    exact = np.isnan(same) | (same == 0) | (np.abs(x) == INF) | (np.abs(y) == INF) | (x == 0)
    # the multiples of pi/4 are the correctly rounded ones (numpy's float32 may be 1 ULP off)
    assert_same(got[exact], ref.astype(TAGS[tag])[exact])
    check("atan2", tag, got[~exact], [y[~exact], x[~exact]])


@pytest.mark.parametrize("tag", TAGS)
def test_exact_integer_results(kernels, tag):
    """log2/exp2 at powers of two and log10 at powers of ten are exact integers (numpy's
    log10(1000) == 3); float32 1e-5 is not a power of ten, so float64's range there."""
    fi = np.finfo(TAGS[tag])
    k = np.arange(fi.minexp - fi.nmant, fi.maxexp).astype(TAGS[tag])
    two = np.ldexp(np.ones_like(k), k.astype(int))
    np.testing.assert_array_equal(kernels("log2", tag, two), k)
    np.testing.assert_array_equal(kernels("exp2", tag, k), two)
    e10 = np.arange(0, 11 if tag == "f32" else 23).astype(TAGS[tag])
    np.testing.assert_array_equal(kernels("log10", tag, (10.0 ** e10).astype(TAGS[tag])), e10)


# ---- vectorization -------------------------------------------------------------------------

LIBM = re.compile(r"call\w*\s+\*?[\w.@]*\b(exp|expf|log|logf|sin|sinf|cos|cosf|pow|powf|tanh"
                  r"|tanhf|expm1|log1p|__\w+_finite)\b")


def _function_asm(asm, fname):
    start = asm.index(f"{fname}:")
    end = asm.find(".Lfunc_end", start)
    return asm[start:end]


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("name", TRANSCENDENTAL + mathlib.BINARY_NAMES)
def test_vectorized_without_libm(kernels, name, tag):
    body = _function_asm(kernels.asm, f"{name}_{tag}")
    assert re.search(r"%[yz]mm\d+", body), f"{name}_{tag} did not vectorize"
    assert not LIBM.search(body), f"{name}_{tag} calls libm"
    assert "call" not in body, f"{name}_{tag} calls a function"


def test_unknown_name_is_reported():
    m = ir.Module()
    fn = ir.Function(m, ir.FunctionType(ir.FloatType(), [ir.FloatType()]), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    with pytest.raises(NotImplementedError, match="polygamma"):
        mathlib.emit_unary(b, "polygamma", fn.args[0])


def test_vector_operands():
    """A <8 x float> value goes through the same emitters (intrinsics mangled per type)."""
    m = ir.Module()
    v8 = ir.VectorType(ir.FloatType(), 8)
    fn = ir.Function(m, ir.FunctionType(v8, [v8, v8]), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    y = mathlib.emit_pow(b, mathlib.emit_unary(b, "sin", fn.args[0]), fn.args[1])
    b.ret(mathlib.emit_unary(b, "tanh", y))
    llvm_util.parse(str(m))


# ---- the llvm_util plumbing these kernels go through -----------------------------------------

def test_docstring_examples():
    import doctest
    for mod in (mathlib, llvm_util):
        result = doctest.testmod(mod)
        assert result.failed == 0 and result.attempted > 0, mod.__name__


def test_object_code_reloads():
    """emit_object -> load_object gives an engine with the same working function."""
    m = ir.Module()
    f64 = ir.DoubleType()
    fn = ir.Function(m, ir.FunctionType(f64, [f64]), "half_exp")
    b = ir.IRBuilder(fn.append_basic_block())
    b.ret(b.fmul(mathlib.emit_unary(b, "exp", fn.args[0]), ir.Constant(f64, 0.5)))
    _, ref = llvm_util.compile_ir(str(m))
    engine = llvm_util.load_object(llvm_util.target_machine().emit_object(ref))
    f = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(engine.get_function_address("half_exp"))
    assert f(0.0) == 0.5 and f(1.0) == pytest.approx(np.e / 2, rel=1e-15)
