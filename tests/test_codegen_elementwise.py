"""codegen: elementwise primitives, edge values and index maps (broadcast, negative
strides, pad bounds, constants), compiled vs the kernel interpreter (numpy).
"""

import numpy as np
import pytest

from tracegrad.codegen import LOWERINGS
from tracegrad.codegen.scalar_ops import ELEMENTWISE_KINDS
from tracegrad.ir import PRIMITIVES
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import Const, IndexMap, Load, Op, Store
from codegen_cases import (F64, I64, BOOL, SIZES, FLOATS, INTS, compile_, ProgramBuilder,
                           elementwise_program, multi_elementwise_program, assert_matches_interp,
                           _sample, MATH_TOL, OPS, OUT_BOOL, _tolerance)
from codegen_cases import body_mode_fixture  # noqa: F401 (a pytest fixture)


@pytest.mark.parametrize("prim,domains,dtypes,params,tol", OPS,
                         ids=[f"{op[0]}{op[3] or ''}" for op in OPS])
def test_primitive_vs_interpreter(prim, domains, dtypes, params, tol, body_mode):
    """Every dtype and size of one table row in one program."""
    rng = np.random.default_rng(len(prim) * 7919 + len(domains))
    sigs = [([dt] * len(domains), BOOL if prim in OUT_BOOL else dt) for dt in dtypes]
    kp = multi_elementwise_program(prim, sigs, params)
    inputs = [_sample(rng, d, dt, n) for dt in dtypes for n in SIZES for d in domains]
    assert_matches_interp(kp, inputs, tol_of=lambda out_dt: _tolerance(tol, out_dt))


def test_where_and_convert(body_mode):
    """where over every dtype, and convert between every pair of dtypes: two programs."""
    rng = np.random.default_rng(1)
    n = 33
    dtypes = FLOATS + INTS + (BOOL,)
    kp = multi_elementwise_program("where", [([BOOL, dt, dt], dt) for dt in FLOATS + INTS], {},
                                   sizes=(n,))
    inputs = []
    for dt in FLOATS + INTS:
        inputs += [rng.random(n) < 0.5, _sample(rng, "any", dt, n), _sample(rng, "any", dt, n)]
    assert_matches_interp(kp, inputs)
    pairs = [(src, dst) for src in dtypes for dst in dtypes]
    pb = ProgramBuilder()
    for src, dst in pairs:
        x, out, idx = pb.input((n,), src), pb.output((n,), dst), IndexMap(0, (1,))
        pb.loop((n,), [Load(x, idx, src), Op("convert", (0,), {"dtype": dst}, dst)],
                [Store(out, 1, idx)])
    inputs = []
    for src, _ in pairs:
        x = _sample(rng, "any", src, n)
        if src in FLOATS:
            x[:3] = [0.0, -0.0, 2.5]
        inputs.append(x)
    assert_matches_interp(pb.build(), inputs)


def test_every_elementwise_primitive_has_a_lowering():
    needed = {name for name, p in PRIMITIVES.items() if p.kind in ELEMENTWISE_KINDS}
    assert "exp" in needed and "where" in needed and "convert" in needed
    missing = needed - set(LOWERINGS)
    assert not missing, f"primitives without a codegen lowering: {sorted(missing)}"


# ---- NaN / inf / edge values ----------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_nan_inf_propagation(dtype, body_mode):
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 3.0], dtype)
    other = np.array([1.0, np.nan, 2.0, -0.0, 0.0, np.inf, -np.inf, np.nan], dtype)
    with np.errstate(all="ignore"):
        for prim in ("max", "min", "div", "add", "mul"):
            kp = elementwise_program(prim, [dtype, dtype], dtype, {}, sizes=(8,))
            assert_matches_interp(kp, [special, other])
        for prim in ("exp", "log", "sqrt", "tanh", "sign", "abs", "expm1", "log1p"):
            kp = elementwise_program(prim, [dtype], dtype, {}, sizes=(8,))
            got = compile_(kp)(special)[0]
            want = run_program(kp, special)[0]
            assert np.array_equal(np.isnan(got), np.isnan(want)), prim
            finite = np.isfinite(want)
            assert np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)]), prim
            np.testing.assert_allclose(got[finite], want[finite], **MATH_TOL[dtype])


def test_integer_division_by_zero_does_not_trap():
    x = np.array([7, -7, 0, np.iinfo(np.int64).min], np.int64)
    y = np.array([0, 2, 0, -1], np.int64)
    got = compile_(elementwise_program("div", [I64, I64], I64, {}, sizes=(4,)))(x, y)[0]
    assert got[1] == -3 and got[0] == np.iinfo(np.int64).min


# ---- index maps: broadcast, negative strides, pad bounds, constants ----------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_broadcast_negative_stride_and_offsets(dtype, body_mode):
    rng = np.random.default_rng(2)
    pb = ProgramBuilder()
    m, n = 5, 33
    x = pb.input((m, n), dtype)
    row = pb.input((n,), dtype)
    col = pb.input((m,), dtype)
    out = pb.output((m, n), dtype)
    body = [Load(x, IndexMap(m * n - 1, (-n, -1)), dtype),  # x reversed in both axes
            Load(row, IndexMap(0, (0, 1)), dtype),  # broadcast along dim 0
            Load(col, IndexMap(0, (1, 0)), dtype),  # broadcast along dim 1 (splat)
            Op("add", (0, 1), {}, dtype), Op("mul", (3, 2), {}, dtype)]
    pb.loop((m, n), body, [Store(out, 4, IndexMap(0, (n, 1)))])
    inputs = [rng.standard_normal((m, n)).astype(dtype), rng.standard_normal(n).astype(dtype),
              rng.standard_normal(m).astype(dtype)]
    got = assert_matches_interp(pb.build(), inputs)[0]
    np.testing.assert_array_equal(got, (inputs[0][::-1, ::-1] + inputs[1]) * inputs[2][:, None])


@pytest.mark.parametrize("n", [1, 7, 1023])
def test_pad_bounds_never_read_outside(n, body_mode):
    """out[i] = x[i-2] + 1 for 2 <= i < n+2, else 1; out2 interleaves x with zeros."""
    rng = np.random.default_rng(3)
    pb = ProgramBuilder()
    x = pb.input((n,), F64)
    out = pb.output((n + 4,), F64)
    out2 = pb.output((2 * n,), F64)
    body = [Load(x, IndexMap(-2, (1,), ((2, n + 2, 1),)), F64), Op("add", (0, Const(1.0, F64)), {}, F64)]
    pb.loop((n + 4,), body, [Store(out, 1, IndexMap(0, (1,)))])
    body2 = [Load(x, IndexMap(0, (1, 0), ((0, n, 1), (1, 2, 1))), F64)]
    pb.loop((n, 2), body2, [Store(out2, 0, IndexMap(0, (2, 1)))])
    xv = rng.standard_normal(n)
    got = assert_matches_interp(pb.build(), [xv])
    np.testing.assert_array_equal(got[0], np.concatenate([[1, 1], xv + 1, [1, 1]]))
    np.testing.assert_array_equal(got[1][::2], 0)


def test_bounds_with_step(body_mode):
    """Valid where 1 <= i < 8 and (i-1) % 2 == 0; the clamped address stays inside x."""
    pb = ProgramBuilder()
    x = pb.input((8,), F64)
    out = pb.output((11,), F64)
    body = [Load(x, IndexMap(0, (1,), ((1, 8, 2),)), F64)]
    pb.loop((11,), body, [Store(out, 0, IndexMap(0, (1,)))])
    got = assert_matches_interp(pb.build(), [np.arange(1.0, 9.0)])[0]
    assert got.tolist() == [0, 2, 0, 4, 0, 6, 0, 8, 0, 0, 0]


def test_constants_small_and_large(body_mode):
    rng = np.random.default_rng(4)
    pb = ProgramBuilder()
    small = pb.const(np.arange(4.0))
    big = pb.const(rng.standard_normal(1000))
    x = pb.input((1000,), F64)
    out = pb.output((1000,), F64)
    body = [Load(x, IndexMap(0, (1,)), F64), Load(big, IndexMap(0, (1,)), F64),
            Load(small, IndexMap(0, (0,)), F64), Op("mul", (0, 1), {}, F64), Op("add", (3, 2), {}, F64)]
    pb.loop((1000,), body, [Store(out, 4, IndexMap(0, (1,)))])
    assert_matches_interp(pb.build(), [rng.standard_normal(1000)])
