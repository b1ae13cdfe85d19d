"""codegen: compile-time paths of kernel bodies: explicit vector loops and out-of-line math."""

import numpy as np
import pytest

from tracegrad.codegen import outline, simd
from tracegrad.codegen import lower_program
from tracegrad.codegen.lower import KernelEmitter
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import Buffer, Const, IndexMap, Load, LoopKernel, Op, Store
from codegen_cases import (F32, F64, I64, BOOL, FLOATS, compile_, set_body_mode, ProgramBuilder,
                           elementwise_program, assert_matches_interp, MATH_TOL,
                           many_transcendentals_program, _transcendental_inputs)


# ---- compile-time paths: explicit vector loops and out-of-line math -----------------------------

def test_body_modes_take_their_path(monkeypatch):
    """Each body mode really emits what it names (else the mode-parametrized tests prove nothing)."""
    kp = elementwise_program("exp", [F64], F64, {}, sizes=(33,))
    int_kp = elementwise_program("add", [I64, I64], I64, {}, sizes=(33,))
    expect = {"default": (False, False, False), "vector": (True, False, False),
              "outline": (True, True, False), "vfabi": (False, True, True)}
    for mode, (masked, called, abi) in expect.items():
        with monkeypatch.context() as m:
            set_body_mode(m, mode)
            text = lower_program(kp).text()
            assert ("llvm.masked.load" in text) == masked, mode
            assert ("call double @\"tg_m_exp_f64\"" in text or "@\"tg_m_exp_v" in text) == called, mode
            assert ("vector-function-abi-variant" in text) == abi, mode
            assert "masked" not in lower_program(int_kp).text(), "int kernels stay scalar"


@pytest.mark.parametrize("dtype", FLOATS)
def test_out_of_line_math_matches_inline_bit_for_bit(dtype, monkeypatch):
    """The same mathlib code inline (LLVM's vectorizer), out of line in an explicit vector
    loop (with sin/cos shared) and out of line widened through the vector ABI attribute:
    elementwise results are identical; sums differ only by summation order."""
    sizes = (1, 7, 16, 33, 1023, 4099)  # remainders, an exact multiple, the split loop
    kp = many_transcendentals_program(dtype, sizes)
    assert all(outline.wants_outline(k) for k in kp.kernels)  # 10 transcendentals > 8
    inputs = _transcendental_inputs(kp)
    results, texts = {}, {}
    for mode in ("inline", "default", "vfabi"):
        with monkeypatch.context() as m:
            if mode == "inline":  # the path every small kernel takes
                m.setattr(outline, "OUTLINE_MIN_CALLS", 10 ** 9)
                m.setattr(simd, "LONG_BODY", 10 ** 9)
            set_body_mode(m, mode if mode == "vfabi" else "default")
            cp = compile_(kp)
            results[mode], texts[mode] = cp(*inputs), cp.llvm_ir()
    lanes = simd.vector_lanes(KernelEmitter(None, kp.kernels[-1], "k", math=object()))
    tag = "f32" if dtype == F32 else "f64"
    assert "@tg_m_" not in texts["inline"]
    assert f"@tg_m_sincos_v{lanes}{tag}" in texts["default"]
    assert f"<{lanes} x {'float' if dtype == F32 else 'double'}> @tg_m_exp_v{lanes}{tag}(" in texts["default"]
    assert f"@tg_m_exp_v{lanes}{tag}" in texts["vfabi"], "the loop vectorizer did not widen the calls"
    want = run_program(kp, *inputs)
    for mode in ("default", "vfabi"):
        for j, (g, ref, w) in enumerate(zip(results[mode], results["inline"], want)):
            if g.shape:
                np.testing.assert_array_equal(g, ref, err_msg=f"{mode} output {j}")
                np.testing.assert_allclose(g, w, err_msg=f"{mode} output {j}", **MATH_TOL[dtype])
            else:
                scale = np.sum(np.abs(results["inline"][j - 1].astype(np.float64))) + 1
                assert abs(float(g) - float(ref)) <= 8 * np.finfo(dtype).eps * scale, (mode, j)


@pytest.mark.parametrize("dtype", FLOATS)
def test_explicit_vector_loops_in_two_dims(dtype, monkeypatch):
    """Rows and columns of a 2-D domain through the explicit vector loop: masked tails of an
    inner dim (static), splat loads, step-1 pad bounds split into segments, reductions
    along either axis (the one into memory needs a fill), bool values."""
    monkeypatch.setattr(simd, "LONG_BODY", 0)
    rng = np.random.default_rng(13)
    for m, n in [(5, 37), (3, 16), (37, 5), (2, 200)]:
        pb = ProgramBuilder()
        x, col = pb.input((m, n), dtype), pb.input((m,), dtype)
        ew, rows, cols, mx = (pb.output((m, n + 3), dtype), pb.output((m,), dtype),
                              pb.output((n,), dtype), pb.output((m,), dtype))
        body = [Load(x, IndexMap(0, (n, 1), ((0, m, 1), (0, n, 1))), dtype),  # 0 pad: x[i, j], j < n
                Load(col, IndexMap(0, (1, 0)), dtype),                    # 1 splat along dim 1
                Op("exp", (0,), {}, dtype), Op("mul", (2, 1), {}, dtype),  # 2, 3
                Op("gt", (0, Const(0.0, dtype)), {}, BOOL),               # 4
                Op("where", (4, 3, Const(-1.0, dtype)), {}, dtype)]        # 5
        stores = [Store(ew, 5, IndexMap(0, (n + 3, 1))),
                  Store(rows, 5, IndexMap(0, (1, 0)), "sum"), Store(mx, 3, IndexMap(0, (1, 0)), "max")]
        pb.loop((m, n + 3), body, stores)
        pb.loop((m, n), body[:1] + [Op("sin", (0,), {}, dtype)], [Store(cols, 1, IndexMap(0, (0, 1)), "sum")])
        kp = pb.build()
        assert all(KernelEmitter(None, k, "k", math=object()).lanes for k in kp.kernels)
        inputs = [rng.standard_normal((m, n)).astype(dtype), rng.standard_normal(m).astype(dtype)]
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == F32 else dict(rtol=1e-12, atol=1e-12)
        assert_matches_interp(kp, inputs, **tol)


def test_strided_inner_loads_keep_the_scalar_body():
    """Stride 2 or -1 in the innermost dim, or step-2 bounds: no explicit vector loop."""
    x = Buffer("x", (64,), F64, "input", index=0)
    out = Buffer("o", (32,), F64, "output", index=0)
    for index in [IndexMap(0, (1,)), IndexMap(0, (2,)), IndexMap(31, (-1,)),
                  IndexMap(0, (1,), ((0, 32, 2),))]:
        body = [Load(x, index, F64)] + [Op("sin", (k,), {}, F64) for k in range(10)]
        kernel = LoopKernel("k", (32,), body, [Store(out, 10, IndexMap(0, (1,)))])
        lanes = KernelEmitter(None, kernel, "k", math=object()).lanes
        assert (lanes is not None) == (index.strides == (1,) and index.bounds is None), index


def test_string_attributes_print_on_functions():
    from llvmlite import ir
    from tracegrad.codegen import llvm_util
    from tracegrad.codegen.irutil import Function
    m = ir.Module()
    fn = Function(m, ir.FunctionType(ir.VoidType(), []), "f")
    fn.attributes.add("noinline")
    fn.string_attributes["prefer-vector-width"] = 512
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.call(fn, [])
    b.ret_void()
    text = str(m)
    assert 'noinline "prefer-vector-width"="512"' in text
    llvm_util.parse(text)  # LLVM reads it (and verifies VFABI names: see the outline tests)
