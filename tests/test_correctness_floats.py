"""Python floats are dynamic weak-typed float64 scalars, as in JAX (issue 10, item 7):
one specialization serves every value, compile_grad differentiates them, and
`x_f32 * s` stays float32.  Ints, bools and other hashables stay static."""
import math
import warnings

import numpy as np
import pytest

import tracegrad
import tracegrad.numpy as tnp
from tracegrad import compile_grad, jit

F32 = np.float32


def test_one_specialization_serves_every_float_value():
    f = jit(lambda x, s: np.sum(x * s))
    x = np.arange(10.0)
    for i in range(20):
        s = 0.5 * i - 3.0
        assert float(f(x, s)) == float(np.sum(x * s))
    (entry,) = f.cache_info()
    assert entry["hits"] == 19 and entry["reason"] == "first call: (f64[10], float)"


def test_compile_grad_differentiates_the_seeds_floats():
    value, grads = compile_grad(lambda a, b, c, d: (a + b) + c * d)(1.0, 2.0, 3.0, 4.0)
    assert float(value) == 15.0
    assert tuple(float(g) for g in grads) == (1.0, 1.0, 4.0, 3.0)
    value, grads = compile_grad(lambda a, b: a * b * b, argnums=1)(3.0, 2.0)
    assert (float(value), float(grads)) == (12.0, 12.0)


def test_floats_are_weakly_typed():
    x = np.linspace(0.0, 1.0, 5, dtype=F32)
    f = jit(lambda x, s: x * (s * 2.0 - 1.0) + s)
    for s in (0.25, 3.0):
        out = f(x, s)
        assert out.dtype == F32
        np.testing.assert_allclose(out, x * (s * 2.0 - 1.0) + s, rtol=1e-6)
    assert len(f.cache_info()) == 1
    value, (gx, gs) = compile_grad(lambda x, s: np.sum(x * s))(x, 2.0)
    assert value.dtype == F32 and gx.dtype == F32
    np.testing.assert_allclose(gx, np.full(5, 2.0))
    assert float(gs) == pytest.approx(float(np.sum(x)))


def test_a_numpy_scalar_is_strongly_typed_and_a_separate_signature():
    f = jit(lambda x, s: x * s)
    x = np.ones(3, F32)
    assert f(x, 2.0).dtype == F32
    assert f(x, np.float64(2.0)).dtype == np.float64  # numpy: f32 array * f64 scalar is f64
    assert f(x, np.array(2.0)).dtype == np.float64
    assert f(x, 3.0).dtype == F32 and len(f.cache_info()) == 2


def test_ints_bools_and_hashables_stay_static_and_static_argnums_makes_floats_static():
    f = jit(lambda x, n, flag: x * n if flag else x)
    x = np.ones(2)
    for n in (1, 2, 3):
        np.testing.assert_array_equal(f(x, n, True), x * n)
    np.testing.assert_array_equal(f(x, 2, False), x)
    assert len(f.cache_info()) == 4
    g = jit(lambda x, s: x * s, static_argnums=1)
    for s in (1.0, 2.0, 3.0):
        np.testing.assert_array_equal(g(x, s), x * s)
    assert len(g.cache_info()) == 3 and "argument 1 ('s'): 2.0 -> 3.0" in g.cache_info()[-1]["reason"]


def test_a_comparison_on_a_float_guards_only_its_outcome():
    f = jit(lambda x, s: x * s if s > 0 else x - s)
    x = np.ones(2)
    for s in (1.0, 2.0, 3.0):
        np.testing.assert_array_equal(f(x, s), x * s)
    np.testing.assert_array_equal(f(x, -1.0), x + 1.0)
    assert len(f.cache_info()) == 2


def test_c_code_reading_a_float_guards_its_value():
    # math.cos reads the value through __float__: the traced float is not a float
    # subclass, so the value cannot be baked into the program without a guard.
    f = jit(lambda x, t: x * math.cos(t), max_specializations=20)
    x = np.ones(2)
    for t in (0.0, 1.0, 2.0, 1.0):
        np.testing.assert_allclose(f(x, t), x * math.cos(t), rtol=1e-15)
    assert len(f.cache_info()) == 3
    assert all("guard" in e["reason"] or "first" in e["reason"] for e in f.cache_info())


def test_floats_inside_pytrees_are_weak_and_dynamic():
    f = jit(lambda p: p["w"] * p["lr"])
    w = np.ones(3, F32)
    for lr in (0.1, 0.01, 0.5):
        out = f({"w": w, "lr": lr})
        assert out.dtype == F32
        np.testing.assert_allclose(out, w * lr, rtol=1e-6)
    assert len(f.cache_info()) == 1


def test_the_float_fast_path_and_its_fallbacks():
    f = jit(lambda x, s: np.sum(x * s))
    x = np.ones(10)
    f(x, 2.0)
    spec = f._last
    assert spec.direct and spec.floats == (1,)
    for s in (3.0, 4.0, 5.0):
        assert float(f(x, s)) == 10 * s
    assert spec.hits == 3 and f._last is spec
    assert float(f(x, 2)) == 20.0  # an int is static: another signature
    assert len(f.cache_info()) == 2


def test_transforms_trace_differentiated_floats_as_weak_scalars():
    x = np.ones(3, F32)
    value, (gx, gs) = tracegrad.value_and_grad(lambda x, s: np.sum(x * s), argnums=(0, 1))(x, 2.0)
    assert value.dtype == F32 and gx.dtype == F32 and float(gs) == 3.0
    assert float(tracegrad.grad(tracegrad.grad(lambda s: s * s * s))(2.0)) == 12.0
    out, tangent = tracegrad.jvp(lambda s: s * 3.0, (2.0,), (1.0,))
    assert (float(out), float(tangent)) == (6.0, 3.0)


def test_a_traced_float_is_not_a_python_float_but_acts_like_one():
    seen = {}

    def f(x, s):
        seen["type"] = type(s).__name__
        seen["repr"] = f"{s:.2f}"  # formatting reads the value: a guard
        return x * s

    g = jit(f)
    np.testing.assert_array_equal(g(np.ones(2), 1.5), [1.5, 1.5])
    assert seen == {"type": "WeakFloat", "repr": "1.50"}
    np.testing.assert_array_equal(g(np.ones(2), 2.5), [2.5, 2.5])  # the guard failed: retraced
    assert len(g.cache_info()) == 2


@pytest.mark.parametrize("dtype, top", [(np.float64, 710.4758600739439), (np.float32, 89.415985)])
def test_sinh_and_cosh_stay_finite_up_to_their_overflow(dtype, top):
    x = np.array([top, -top, top * 0.9995], dtype)
    for fn in (tnp.sinh, tnp.cosh):
        got = tracegrad.jit(fn)(x)
        assert np.all(np.isfinite(got))
        ref = getattr(np, fn.__name__)(x.astype(np.longdouble))
        np.testing.assert_allclose(got, ref.astype(dtype), rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_keeps_its_relative_accuracy_in_the_left_tail(dtype):
    x = np.linspace(-80 if dtype == np.float32 else -700, 40, 2001).astype(dtype)
    ref = (1 / (1 + np.exp(-x.astype(np.longdouble))))
    normal = ref > np.finfo(dtype).tiny
    for got in (tracegrad.jit(tnp.sigmoid)(x), tnp.sigmoid(tracegrad.tensor(x)).numpy()):
        err = np.abs(got[normal] - ref[normal]) / ref[normal] / np.finfo(dtype).eps
        assert err.max() < 4


def test_a_float32_product_rounds_once():
    x = np.random.default_rng(8).uniform(0.999, 1.001, 10**5).astype(np.float32)
    ref = np.prod(x.astype(np.float64))
    for got in (tracegrad.jit(tnp.prod)(x), tnp.prod(tracegrad.tensor(x)).numpy()):
        assert got.dtype == np.float32
        assert abs(float(got) / ref - 1) < 2 * np.finfo(np.float32).eps


@pytest.mark.parametrize("n", [3, 7, 31, -1, -2, -5])
def test_float32_integer_powers_round_once(n):
    x = (np.random.default_rng(0).standard_normal(1001) * 3).astype(np.float32)
    x[0] = 1.8446988e+19  # x**-2 is a subnormal although x**2 overflows
    with np.errstate(all="ignore"):
        ref = (x.astype(np.float64) ** n).astype(np.float32)
        got = tracegrad.jit(lambda a: a ** n)(x)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal((tracegrad.tensor(x) ** n).numpy(), got)


def test_nanargmax_of_an_all_nan_lane_raises_on_concrete_data():
    x = np.array([[np.nan, np.nan], [1.0, np.nan]])
    for a in (x, tracegrad.tensor(x)):
        with pytest.raises(ValueError, match="All-NaN slice"):
            tnp.nanargmax(a, axis=1)
    assert tracegrad.jit(lambda a: tnp.nanargmin(a, axis=1))(x).tolist() == [0, 0]


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_integer_min_and_max_in_a_row_block_start_from_the_dtypes_extremes(dtype):
    x = (np.arange(4096 * 64) % 1000 + 5).astype(dtype).reshape(4096, 64)

    def f(x):  # the row-wise sum puts the column min and max in a row block's carries
        return x - np.sum(x, axis=1, keepdims=True), np.min(x, axis=0), np.max(x, axis=0)

    for got, want in zip(tracegrad.jit(f)(x), f(x)):
        np.testing.assert_array_equal(got, want)


def test_a_scalar_half_power_is_numpys_sqrt():
    x = np.array([-np.inf, -0.0, 2.0, 0.25, 1e300])
    with np.errstate(invalid="ignore"):
        want = x ** 0.5
    for got in (tracegrad.jit(lambda a: a ** 0.5)(x), (tracegrad.tensor(x) ** 0.5).numpy(),
                tracegrad.jit(lambda a: np.power(a, np.float64(0.5)))(x)):
        np.testing.assert_array_equal(got, want)
        assert np.signbit(got[1])


@pytest.mark.parametrize("src", [np.float32, np.float64])
@pytest.mark.parametrize("dst", [np.int32, np.int64])
def test_float_to_int_casts_out_of_range_as_eager_numpy(src, dst):
    """NaN, +-inf and values beyond the int's range cast to INT_MIN, as numpy (and so eager
    tensors) on x86; jit used to saturate."""
    f = np.array([np.nan, np.inf, -np.inf, 1e20, 3e9, -3e9, 2.7, -2.7, 2.0**63, -2.0**63,
                  2.0**31, -2.0**31, 0.0, -0.0], src)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = f.astype(dst)
        got = jit(lambda a: a.astype(dst))(f)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == dst


@pytest.mark.parametrize("decimals", [-400, -30, -1, 2, 9, 10, 30, 300, 400])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_scales_as_numpy_at_any_decimals(decimals, dtype):
    """numpy builds 10**d by repeated products past 1e9 (30 decimals: an ULP from the
    correctly rounded power) and gives NaN where it overflows; 400 raised OverflowError."""
    x = np.random.default_rng(0).uniform(-100, 100, 500).astype(dtype)
    with np.errstate(all="ignore"):
        want = np.round(x, decimals)
        np.testing.assert_array_equal(jit(lambda a: np.round(a, decimals))(x), want)
        np.testing.assert_array_equal(np.round(tracegrad.tensor(x), decimals).numpy(), want)


def test_put_place_copyto_into_numpy_arrays():
    """Writing traced values into a NumPy array is the explanatory TypeError (it recursed
    without end); tensors' values are written as NumPy's."""
    for write in (lambda x: np.put(np.zeros(5), [1, 4], x[:2]),
                  lambda x: np.place(np.zeros(5), np.arange(5) > 2, x[:2]),
                  lambda x: np.copyto(np.zeros(5), x)):
        with pytest.raises(TypeError, match="traced value"):
            jit(lambda x, write=write: (write(x), np.sum(x))[1])(np.arange(1.0, 6.0))
    z = np.zeros(5)
    np.put(z, [1, 4], tracegrad.tensor(np.array([7.0, 8.0])))
    np.testing.assert_array_equal(z, [0, 7, 0, 0, 8])


def test_histogram_of_no_data_uses_numpys_unit_range():
    want = np.histogram(np.array([]), bins=3)
    for got in (np.histogram(tracegrad.tensor(np.array([])), bins=3),
                jit(lambda a: np.histogram(a, bins=3))(np.array([]))):
        np.testing.assert_array_equal(np.asarray(got[0]), want[0])
        np.testing.assert_allclose(np.asarray(got[1]), want[1])


def test_a_traced_float_reaching_numpys_own_copyto_and_result_type_is_its_value():
    """Plain NumPy functions of a NumPy array and a float argument (np.full_like(y, c))
    reach copyto/result_type with the traced float: its value, as float() (they recursed
    without end)."""
    y = np.array([1.0, 2.0, 4.0, 3.0])
    np.testing.assert_allclose(tracegrad.jit(lambda c: np.sum(np.full_like(y, c) * y))(2.0), 20.0)
    np.testing.assert_allclose(tracegrad.jit(
        lambda c: np.nan_to_num(np.array([1.0, np.nan]), nan=c))(3.0), [1.0, 3.0])
    assert tracegrad.jit(lambda c: np.zeros(2) + np.result_type(c, 1.0).itemsize)(2.0)[0] == 8
    with pytest.warns(UserWarning, match="no derivative flows through a Python number"):
        assert tracegrad.grad(lambda c: np.sum(np.full_like(y, c) * y))(2.0) == 0.0


def test_a_ufuncs_dtype_keyword_computes_in_that_dtype():
    x = np.array([1.5, 2.5])
    out = tracegrad.jit(lambda x: np.subtract(x, 1, dtype=np.float32))(x)
    assert out.dtype == np.float32 and out.tolist() == [0.5, 1.5]
    np.testing.assert_array_equal(tracegrad.jit(lambda x: np.add(x, 2, dtype=np.float64))(
        np.array([1, 2])), [3.0, 4.0])
    with pytest.raises(TypeError, match="same_kind"):
        tracegrad.jit(lambda x: np.add(x, x, dtype=np.int64))(x)
