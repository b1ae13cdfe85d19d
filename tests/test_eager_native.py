"""Native eager kernels (codegen/eager.py behind tracegrad/eager.py): results equal numpy's
within mathlib's ULP bounds, everything they do not take falls back to numpy, gradients."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import eager as gates
from tracegrad.codegen import eager as kernels
from tracegrad.codegen.mathlib import MAX_ULP
from tracegrad.ir.primitives import PRIMITIVES
from tracegrad.ir.elementwise import integer_pow_by_products

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
TAGS = {F32: "f32", F64: "f64"}
INSTALLED = [(name, dt) for name, limits in gates.THRESHOLDS.items() for dt in limits]
pytestmark = pytest.mark.skipif(not gates.enabled_by_env(), reason="TRACEGRAD_EAGER_NATIVE=0")


@pytest.fixture(autouse=True)
def loaded():
    """The kernels loaded (as by the first qualifying call)."""
    assert gates.BACKEND.load() is not None


def ulps(a, b):
    """Distance in units in the last place between arrays of one float dtype."""
    itype = {F32: np.int32, F64: np.int64}[a.dtype]
    ia, ib = a.view(itype).astype(np.int64), b.view(itype).astype(np.int64)
    ia = np.where(ia < 0, np.iinfo(itype).min - ia, ia)  # monotone over the reals
    ib = np.where(ib < 0, np.iinfo(itype).min - ib, ib)
    return np.abs(ia - ib)


def operand(n, dtype, seed=0, lo=-20.0, hi=20.0):
    return np.random.default_rng(seed).uniform(lo, hi, n).astype(dtype)


POSITIVE = {"log", "log1p", "sqrt", "log2", "log10", "pow"}  # keep to the real domain
EXACT = {"neg", "abs", "sqrt", "add", "sub", "mul", "div", "integer_pow", "where"}
PARAMS = {"reduce_sum": {"axes": (0,)}, "integer_pow": {"y": 3}}  # what the gates are called with


def operands(name, n, dtype):
    lo = 0.01 if name in POSITIVE else -20.0
    first = operand(n, dtype, 0, lo, 20.0)
    if PRIMITIVES[name].kind == "unary" or name == "reduce_sum":
        return [first]
    if name == "where":  # a random mask: numpy's where branches on every element
        return [operand(n, dtype, 2) > 0, first, operand(n, dtype, 1)]
    return [first, operand(n, dtype, 1, -3.0 if name == "pow" else -20.0, 3.0 if name == "pow" else 20.0)]


def sizes(name, dtype):
    """The window's ends and a size inside it that is not a multiple of the vector width."""
    lo, hi = gates.THRESHOLDS[name][dtype]
    top = hi - 1 if hi is not None else max(lo, 1000) + 37
    return sorted({lo, min(lo + 37, top), top})


WIDER = {F32: np.float64, F64: np.longdouble}


def check_close(name, got, want, args):
    """Exact ops equal numpy bit for bit; the others are within mathlib's bound of numpy
    on wider operands, rounded (the bound is against the exact value, and the rounded
    reference is within half an ULP of it)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if name in EXACT:
        np.testing.assert_array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))
        return
    ref = PRIMITIVES[name].impl(*[a.astype(WIDER[a.dtype]) for a in args]).astype(got.dtype)
    if name in ("lgamma", "digamma"):  # the same algorithm on numpy; relative above 0 only
        np.testing.assert_allclose(got, ref, rtol=4 * np.finfo(got.dtype).eps,
                                   atol=4 * np.finfo(got.dtype).eps)
        return
    assert ulps(got, ref).max() <= np.floor(MAX_ULP[(name, TAGS[got.dtype])] + 0.5)


@pytest.mark.parametrize("name,dtype", INSTALLED, ids=lambda v: str(v))
def test_native_runs_and_matches_numpy(name, dtype):
    prim = PRIMITIVES[name]
    for n in sizes(name, dtype):
        args = operands(name, n, dtype)
        params = PARAMS.get(name, {})
        got = prim.native(*args, **params)
        assert got is not NotImplemented, "the native kernel was not used"
        want = prim.impl(*args, **params)
        if name == "reduce_sum":
            x = args[0].astype(np.float64)
            assert got.dtype == want.dtype and got.shape == ()
            assert abs(float(got) - np.sum(x)) <= 4 * np.finfo(dtype).eps * np.sum(np.abs(x))
        else:
            check_close(name, got, want, args)


@pytest.mark.parametrize("name,dtype", INSTALLED, ids=lambda v: str(v))
def test_outside_the_window_is_numpy(name, dtype):
    lo, hi = gates.THRESHOLDS[name][dtype]
    prim = PRIMITIVES[name]
    params = PARAMS.get(name, {})
    for n in [lo - 1] + ([hi] if hi is not None else []):
        if n > 0:
            args = operands(name, n, dtype)
            got = prim.native(*args, **params)
            if n == hi and name in gates.NUMPY_LOOPS:  # numpy's own loop (eager_uloop.py)
                np.testing.assert_array_equal(got, prim.impl(*args))
            else:
                assert got is NotImplemented


@pytest.mark.parametrize("name,dtype", INSTALLED, ids=lambda v: str(v))
def test_threaded_run_equals_one_thread(name, dtype):
    args = operands(name, 3 * kernels.CHUNK_ALIGN + 5, dtype)
    x = args[0]
    if name == "reduce_sum":
        spec = kernels.Spec(name, dtype, "a", reduce="sum")
        # partials per block, not per thread: the same bits on any number of threads
        x = operands(name, 5 * kernels.SUM_BLOCK + 5, dtype)[0]
        one, two, three = (kernels.full_sum(spec, x, t) for t in (1, 2, 3))
        np.testing.assert_array_equal(one, two)
        np.testing.assert_array_equal(one, three)
        ref = x.astype(np.float64).sum()   # float64 partials: float32 sums round once
        assert np.isclose(float(one), ref, rtol=1e-12 if dtype == F64 else 1e-7)
    else:
        pattern = "baa" if name == "where" else "a" * len(args)
        spec = kernels.Spec(name, dtype, pattern, tuple(PARAMS.get(name, {}).items()))
        one, two = (kernels.elementwise(spec, args, x.shape, t) for t in (1, 2))
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name,ref", [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                                      ("div", np.divide)])
@pytest.mark.parametrize("pattern", ["aa", "as", "sa"])
def test_binary_patterns_are_exact(name, ref, dtype, pattern):
    n = 5000
    ops = [operand(n, dtype, 1) if c == "a" else np.asarray(2.5, dtype) for c in pattern]
    got = kernels.binary(name, pattern, ops)
    np.testing.assert_array_equal(got, ref(*ops))


def test_pattern_reads_scalars_and_broadcast_views():
    x = operand(10, F32)
    pattern, ops, shape, dtype = gates._pattern(x, 2.0)
    assert pattern == "as" and ops[1].dtype == F32 and ops[1].shape == () and shape == (10,)
    pattern, ops, _, _ = gates._pattern(np.broadcast_to(np.float32(3), (10,)), x)
    assert pattern == "sa" and float(ops[0]) == 3.0
    assert gates._pattern(x, x.astype(F64)) is None  # promotion stays numpy's
    assert gates._pattern(x, np.ones(5, F32)) is None  # broadcasting shapes too


@pytest.mark.parametrize("make", [
    lambda n: np.asarray(1.5),  # 0-d
    lambda n: np.zeros(0),  # size 0
    lambda n: operand(2 * n, F64)[::2],  # not contiguous
    lambda n: np.asfortranarray(operand(n, F64).reshape(-1, 4)),  # not C order
    lambda n: operand(n, F64).astype(">f8"),  # byte-swapped
    lambda n: operand(n, np.float16),  # a dtype without a kernel
    lambda n: np.arange(n),  # integers
], ids=["0d", "empty", "strided", "fortran", "byteswapped", "f16", "int"])
def test_fallbacks(make):
    x = make(4096)
    assert PRIMITIVES["sin"].native(x) is NotImplemented
    np.testing.assert_array_equal(PRIMITIVES["sin"].run(x), PRIMITIVES["sin"].impl(x))


def test_partial_sums_fall_back():
    x = operand(1 << 16, F32).reshape(256, 256)
    assert PRIMITIVES["reduce_sum"].native(x, axes=(1,)) is NotImplemented
    assert PRIMITIVES["reduce_sum"].native(x.T, axes=(0, 1)) is NotImplemented
    assert PRIMITIVES["reduce_sum"].native(x, axes=(0, 1)) is not NotImplemented


def test_eager_gradients_through_native_kernels():
    x = operand(1 << 15, F64) / 10
    t = tg.tensor(x, requires_grad=True)
    y = tg.numpy.sum(tg.numpy.sin(t) * tg.numpy.cos(t))
    y.backward()
    np.testing.assert_allclose(float(y), np.sum(np.sin(x) * np.cos(x)), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(t.grad), np.cos(2 * x), atol=1e-12)


@pytest.fixture
def fresh(monkeypatch):
    """A fresh kernel table and fresh gates (theirs remember the kernels they called);
    afterwards the process's own again."""
    table = kernels.Kernels()
    monkeypatch.setattr(kernels, "KERNELS", table)
    gates.install()
    yield table
    monkeypatch.undo()
    gates.install()


def test_compile_failure_warns_once_and_falls_back(monkeypatch, fresh):
    def broken(spec):
        raise RuntimeError("no code today")
    monkeypatch.setattr(kernels, "unit_of", broken)
    x = operand(1 << 12, F64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            np.testing.assert_array_equal(PRIMITIVES["sin"].run(x), np.sin(x))
        assert PRIMITIVES["cos"].native(x) is NotImplemented
    assert [str(w.message) for w in caught if "native eager" in str(w.message)] == [
        next(str(w.message) for w in caught if "native eager" in str(w.message))]


def test_the_compiler_loads_on_the_first_qualifying_call():
    code = ("import numpy as np, sys, tracegrad; "
            "from tracegrad.ir.primitives import PRIMITIVES; "
            "a = 'llvmlite' in sys.modules; PRIMITIVES['sin'].run(np.asarray(0.5)); "
            "b = 'llvmlite' in sys.modules; y = PRIMITIVES['sin'].native(np.ones(8)); "
            "print(a, b, y is NotImplemented, 'llvmlite' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False", "True"]


def test_env_switch_disables():
    code = ("import tracegrad; from tracegrad.ir.primitives import PRIMITIVES; "
            "print(any(p.native is not None for p in PRIMITIVES.values()))")
    env = dict(os.environ, TRACEGRAD_EAGER_NATIVE="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_uninstall_and_install():
    try:
        gates.uninstall()
        assert all(PRIMITIVES[n].native is None for n in gates.THRESHOLDS)
    finally:
        assert gates.install() == list(gates.THRESHOLDS)
    assert all(PRIMITIVES[n].native is not None for n in gates.THRESHOLDS)


def test_fast_call_refuses_what_it_cannot_take():
    x = operand(4096, F64)
    made = kernels.KERNELS.get_fast("add", F64, "aa")
    if made.builtin is None:
        pytest.skip("no native fast call in this process")
    s = np.asarray(1.0)
    for args in [(x,), (x, x, x), (x, [1.0] * 4096), (x, 1.0), (x, x[::2]), (x, x.astype(F32)),
                 (x, x.reshape(64, 64)), (x, x[:-1]), (x, s), (x.astype(">f8"), x)]:
        assert made.builtin(*args) is made.sentinel
    np.testing.assert_array_equal(made.builtin(x, x), x + x)
    scalar = kernels.KERNELS.get_fast("mul", F64, "sa")
    assert scalar.builtin(x, x) is scalar.sentinel  # operand 0 must be 0-d
    np.testing.assert_array_equal(scalar.builtin(s, x.reshape(8, 512)), x.reshape(8, 512))


def test_ctypes_path_without_fast_call(fresh):
    fresh.calls = {}  # as in a process whose numpy ABI the fast call does not know
    x = operand(3 * kernels.CHUNK_ALIGN + 1, F64)
    np.testing.assert_array_equal(kernels.unary("sin", x), kernels.elementwise(
        kernels.Spec("sin", F64, "a"), [x], x.shape))
    assert fresh.get_fast("sin", F64, "a").builtin is None
    assert kernels.unary("sin", x[::2]) is None
    assert PRIMITIVES["sin"].native(x[::2]) is NotImplemented
    np.testing.assert_array_equal(PRIMITIVES["add"].run(x, 2.0), x + 2.0)


def test_large_inputs_run_threaded_and_match(monkeypatch, fresh):
    n = kernels.thread_min("sin") + 12345
    x = operand(n, F64)
    monkeypatch.setenv("TRACEGRAD_EAGER_THREADS", "2")  # read when a descriptor is made
    got = PRIMITIVES["sin"].run(x)
    assert ulps(got, np.sin(x)).max() <= np.ceil(MAX_ULP[("sin", "f64")]) + 1
    np.testing.assert_array_equal(got, kernels.elementwise(kernels.Spec("sin", F64, "a"), [x], x.shape))


def test_threads_of_python_share_the_kernels(fresh):
    from concurrent.futures import ThreadPoolExecutor

    xs = [operand(5000 + 7 * i, F64, i) for i in range(8)]
    names = ["sin", "cos", "exp", "tanh"] * 2
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda nx: PRIMITIVES[nx[0]].run(nx[1]), zip(names, xs)))
    for name, x, g in zip(names, xs, got):
        check_close(name, g, PRIMITIVES[name].impl(x), [x])


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_cos_beyond_the_accurate_range_are_numpy(name):
    x = operand(4096, F64)
    assert PRIMITIVES[name].native(x) is not NotImplemented
    for bad in (1e15, np.inf, np.nan):
        y = x.copy()
        y[100] = bad
        assert PRIMITIVES[name].native(y) is NotImplemented
        np.testing.assert_array_equal(PRIMITIVES[name].run(y), PRIMITIVES[name].impl(y))


@pytest.mark.parametrize("dtype", [F32, F64])
def test_where_takes_arrays_scalars_and_python_numbers_exactly(dtype):
    """where is a branch-free select: numpy's values bit for bit (NaN, -0.0 and infinities
    pass through), for every mix of array and scalar branches."""
    rng = np.random.default_rng(3)
    n = 3 * kernels.CHUNK_ALIGN + 11
    c = rng.standard_normal(n) > 0
    x, y = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    x[:4], y[:4] = [np.nan, -0.0, np.inf, -np.inf], [-0.0, np.nan, 1.0, 2.0]
    prim = PRIMITIVES["where"]
    for args in [(c, x, y), (c, x, np.asarray(0.5, dtype)), (c, np.asarray(-1.0, dtype), y),
                 (c, np.asarray(1.0, dtype), np.asarray(0.0, dtype)), (c, x, 2.0), (c, 1, y)]:
        got, want = prim.native(*args), prim.impl(*args)
        assert got is not NotImplemented
        assert got.dtype == want.dtype == dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))


def test_where_refuses_what_the_kernel_cannot_walk():
    rng = np.random.default_rng(4)
    c = rng.standard_normal(8192) > 0
    x = rng.standard_normal(8192)
    where = PRIMITIVES["where"].native
    assert where(c[::2], x[::2], x[::2]) is NotImplemented  # strided
    assert where(c, x.astype(np.int64), 0) is NotImplemented  # no float branch
    assert where(c, x, x.astype(F32)) is NotImplemented  # two dtypes
    assert where(c.reshape(2, -1), x[:4096], 0.0) is NotImplemented  # broadcasting
    assert where(c[:100], x[:100], 0.0) is NotImplemented  # below the window: numpy's
    assert where(c.astype(np.int8), x, x) is NotImplemented  # not a bool condition


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("y", [0, 1, 2, 3, 4, 5, -1, -2, 64, -32, 100])
def test_integer_pow_products_and_pow(y, dtype):
    """x ** y by square-and-multiply up to |y| = PRODUCT_POW_MAX, natively and in the impl
    bit for bit; beyond, pow (mathlib's natively, numpy's in the impl) within 2 ULP, where
    products drifted by tens of ULP (float64 x**64: 33)."""
    x = np.random.default_rng(5).uniform(-3, 3, 5000).astype(dtype)
    if abs(y) > 8:
        x = np.random.default_rng(5).uniform(0.5, 2.0, 5000).astype(dtype)
    x[:4] = [np.inf, np.nan, -0.0, 0.0]
    prim = PRIMITIVES["integer_pow"]
    with np.errstate(all="ignore"):
        got, want = prim.native(x, y=y), prim.impl(x, y=y)
        ref = np.power(x.astype(np.longdouble), y)
    assert got.dtype == dtype
    ok = np.isfinite(ref) & (np.abs(ref) > np.finfo(dtype).tiny)
    if integer_pow_by_products(np.float64, y):
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(got[~ok], want[~ok])
        np.testing.assert_allclose(got[ok], want[ok], rtol=2 * np.finfo(dtype).eps)
    np.testing.assert_allclose(got[ok], ref[ok].astype(np.float64), rtol=4 * np.finfo(dtype).eps)


def test_where_of_a_scalar_condition_copies_the_chosen_branch():
    x = np.random.default_rng(6).standard_normal(5000)
    where = PRIMITIVES["where"]
    for c in (np.asarray(True), np.asarray(False)):
        for args in [(c, x, 0.0), (c, 0.0, x), (c, x, np.asarray(2.0)), (c, x, x[::-1].copy())]:
            got = where.native(*args)
            want = where.impl(*args)
            if got is NotImplemented:  # the scalar was chosen: numpy broadcasts it
                assert np.ndim(args[1] if c else args[2]) == 0
                continue
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
            assert not any(np.shares_memory(got, a) for a in args if isinstance(a, np.ndarray))
    assert where.native(np.asarray(True), x.astype(F32), x) is NotImplemented


def test_without_numpys_avx512_loops_mathlib_runs_at_every_size():
    """The windows' upper ends are where numpy's SVML (AVX-512) loops win; without them
    (an AVX2 host) the kernels run at every size."""
    if gates.numpy_has_svml():
        pytest.skip("this host runs numpy's AVX-512 loops: the measured windows hold")
    for name in gates.SVML_BOUNDED:
        assert all(window == gates.ANY for window in gates.THRESHOLDS[name].values())
    x = np.random.default_rng(3).uniform(0.1, 3.0, 200_003).astype(np.float32)
    got = PRIMITIVES["log1p"].native(x)
    assert got is not NotImplemented
    np.testing.assert_allclose(got, np.log1p(x.astype(np.float64)), rtol=4e-7)
