"""codegen: dot kernels, inline and through BLAS (?gemm, ?gemv, ?dot)."""

import numpy as np
import pytest

from tracegrad.codegen.lower import plan_arena
from tracegrad.passes.kernels import DotKernel, IndexMap, Load, Store
from codegen_cases import (F32, F64, FLOATS, compile_, contiguous, ProgramBuilder,
                           assert_matches_interp, add_dot)


# ---- dot ---------------------------------------------------------------------------------------

DOT_DIMS = [(1, 3, 4, 5), (2, 64, 48, 40), (1, 1, 1, 1), (3, 7, 33, 9), (1, 70, 80, 90)]


@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)])
def test_dot(trans):
    """Inline loops (small) and BLAS calls (large), batched, with transposed operands."""
    rng = np.random.default_rng(7)
    pb = ProgramBuilder()
    for dt in FLOATS:
        for dims in DOT_DIMS:
            add_dot(pb, *dims, dt, *trans)
    kp = pb.build()
    inputs = [rng.standard_normal(buf.shape).astype(buf.dtype) for buf in kp.inputs]
    tol = {F32: dict(rtol=1e-4, atol=1e-4), F64: dict(rtol=1e-11, atol=1e-11)}
    assert_matches_interp(kp, inputs, tol_of=tol.get)


def test_dot_with_zero_dims():
    pb = ProgramBuilder()
    for dims in [(1, 0, 4, 5), (1, 3, 0, 5), (2, 3, 4, 0), (0, 3, 4, 5), (1, 300, 0, 300)]:
        add_dot(pb, *dims, F64)
    kp = pb.build()
    assert_matches_interp(kp, [np.ones(buf.shape) for buf in kp.inputs])


# (batch, m, k, n) above INLINE_FLOPS: matrix-vector products (?gemv) and vector dots (?dot)
GEMV_DIMS = [(1, 300, 200, 1), (1, 1, 200, 300), (3, 130, 300, 1), (2, 1, 300, 130),
             (1, 1, 40000, 1), (2, 1, 20000, 1), (1, 40000, 1, 1), (1, 1, 1, 40000)]


def _operand(x, trans):
    return np.swapaxes(x, 1, 2) if trans else x


@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)])
def test_matrix_vector_products_call_gemv_and_dot(trans):
    """n == 1 or m == 1 go to ?gemv and m == n == 1 to ?dot, as numpy does; every layout,
    batched, checked against numpy's product in float64."""
    rng = np.random.default_rng(11)
    pb = ProgramBuilder()
    for dt in FLOATS:
        for dims in GEMV_DIMS:
            add_dot(pb, *dims, dt, *trans)
    kp = pb.build()
    cp = compile_(kp)
    text = cp.llvm_ir()
    for call in ("void @tg_sgemv(", "void @tg_dgemv(", "float @tg_sdot(", "double @tg_ddot("):
        assert "call " + call in text
    assert "gemm" not in text
    inputs = [rng.standard_normal(buf.shape).astype(buf.dtype) for buf in kp.inputs]
    got = cp(*inputs)
    for j, out in enumerate(got):
        a, b = (_operand(x.astype(F64), t) for x, t in zip(inputs[2 * j:2 * j + 2], trans))
        eps = np.finfo(out.dtype).eps
        assert out.shape == (a.shape[0], a.shape[1], b.shape[2]) and out.dtype == inputs[2 * j].dtype
        bound = 64 * eps * (np.abs(a) @ np.abs(b))  # far below the O(1) error of a wrong layout
        assert np.all(np.abs(out - a @ b) <= bound), f"product {j}"


@pytest.mark.parametrize("m, n", [(300, 1), (1, 300)])
def test_gemv_ignores_what_its_output_held(m, n):
    """beta = 0: the arena bytes a gemv writes held NaN from a dead temp, and must not leak."""
    pb = ProgramBuilder()
    junk, a, b = pb.input((m * n,), F64), pb.input((1, m, 200), F64), pb.input((1, 200, n), F64)
    t0, t1 = pb.temp((m * n,), F64), pb.temp((1, m, n), F64)
    out0, out1 = pb.output((m * n,), F64), pb.output((1, m, n), F64)
    flat, grid = IndexMap(0, (1,)), IndexMap(0, contiguous((1, m, n)))
    pb.loop((m * n,), [Load(junk, flat, F64)], [Store(t0, 0, flat)])
    pb.loop((m * n,), [Load(t0, flat, F64)], [Store(out0, 0, flat)])
    pb.kernels.append(DotKernel("dot", a, b, t1, 1, m, 200, n))
    pb.loop((1, m, n), [Load(t1, grid, F64)], [Store(out1, 0, grid)])
    kp = pb.build()
    offsets, _ = plan_arena(kp)
    assert offsets[t0] == offsets[t1]  # the product's output reuses the NaN temp's bytes
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(a.shape), rng.standard_normal(b.shape)
    got = compile_(kp)(np.full(m * n, np.nan), x, y)
    assert np.isnan(got[0]).all()
    np.testing.assert_allclose(got[1], x @ y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [2, 3, 7])
def test_a_large_batch_of_small_products_is_one_loop_nest(k):
    """(B, k, k) @ (B, k, k) with B*k^3 above INLINE_FLOPS: one BLAS call per tiny product
    cost ten times a loop over all of them (blas.INLINE_MATRIX_MACS)."""
    rng = np.random.default_rng(k)
    pb = ProgramBuilder()
    add_dot(pb, 4000, k, k, k, F64)
    kp = pb.build()
    cp = compile_(kp)
    assert "gemm" not in cp.llvm_ir()
    a, b = (rng.standard_normal(buf.shape) for buf in kp.inputs)
    np.testing.assert_allclose(cp(a, b)[0], a @ b, rtol=1e-12, atol=1e-12)
