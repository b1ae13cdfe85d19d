"""codegen: kernels split across threads, and threads beside a threaded BLAS."""

import numpy as np
import pytest

from tracegrad.codegen import compile_program, simd
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import IndexMap, Load, Op, Store
from codegen_cases import (F32, F64, ProgramBuilder, MATH_TOL, add_dot,
                           many_transcendentals_program, _transcendental_inputs)
from codegen_cases import body_mode_fixture  # noqa: F401 (a pytest fixture)
from codegen_cases import tiny_thread_threshold_fixture  # noqa: F401 (a pytest fixture)


# ---- threads ---------------------------------------------------------------------------------

def test_threaded_kernels_match_interpreter(tiny_thread_threshold, body_mode):
    """Row-owned stores, a full reduction and a reduction over dim 0 (private partials)."""
    rng = np.random.default_rng(9)
    pb = ProgramBuilder()
    x = pb.input((37, 129), F64)
    full = pb.output((), F64)
    rows = pb.output((37,), F64)
    cols = pb.output((129,), F32)
    ew = pb.output((37, 129), F64)
    idx = IndexMap(0, (129, 1))
    body = [Load(x, idx, F64), Op("exp", (0,), {}, F64), Op("convert", (1,), {"dtype": F32}, F32)]
    pb.loop((37, 129), body, [Store(full, 1, IndexMap(0, (0, 0)), "sum"),
                              Store(rows, 1, IndexMap(0, (1, 0)), "max"),
                              Store(cols, 2, IndexMap(0, (0, 1)), "sum"),
                              Store(ew, 1, idx)])
    kp = pb.build()
    cp = compile_program(kp, disk_cache=False, n_threads=3)
    assert "tg_sys_pthread_create" in cp.llvm_ir()
    xv = rng.standard_normal((37, 129))
    got, want = cp(xv), run_program(kp, xv)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], **MATH_TOL[F64])
    np.testing.assert_allclose(got[2], want[2], rtol=1e-5)
    np.testing.assert_allclose(got[3], want[3], **MATH_TOL[F64])


def test_kernels_whose_rows_overlap_stay_on_one_thread(tiny_thread_threshold):
    pb = ProgramBuilder()
    x = pb.input((40, 40), F64)
    out = pb.output((79,), F64)  # out[i + j] += x[i, j]: rows of different i overlap
    pb.loop((40, 40), [Load(x, IndexMap(0, (40, 1)), F64)], [Store(out, 0, IndexMap(0, (1, 1)), "sum")])
    kp = pb.build()
    cp = compile_program(kp, disk_cache=False, n_threads=4)
    assert "pthread_create" not in cp.llvm_ir()
    xv = np.random.default_rng(10).standard_normal((40, 40))
    np.testing.assert_allclose(cp(xv)[0], run_program(kp, xv)[0], rtol=1e-12)


@pytest.mark.parametrize("blas_threads, cpus, want", [(1, 4, 3), (2, 2, 1), (2, 4, 3), (4, 4, 1),
                                                      (8, 4, 1), (3, 16, 3)])
def test_threads_beside_blas_leave_its_workers_their_cores(blas_threads, cpus, want):
    from tracegrad.codegen import threads
    assert threads.beside_blas(3, blas_threads, cpus) == want


@pytest.mark.parametrize("blas_threads, threaded", [(1, True), (2, False)])
def test_program_calling_threaded_blas_runs_its_kernels_on_one_thread(
        blas_threads, threaded, tiny_thread_threshold, monkeypatch):
    """OpenBLAS's workers spin between calls: a program that calls BLAS with 2 threads on
    2 cores starts no threads of its own; with BLAS on 1 thread it does."""
    import os
    from tracegrad.codegen import blas
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(blas, "thread_count", lambda: blas_threads)
    pb = ProgramBuilder()
    add_dot(pb, 1, 64, 64, 64, F64)
    x = pb.input((64, 64), F64)
    out = pb.output((64, 64), F64)
    idx = IndexMap(0, (64, 1))
    pb.loop((64, 64), [Load(x, idx, F64), Op("tanh", (0,), {}, F64)], [Store(out, 1, idx)])
    kp = pb.build()
    cp = compile_program(kp, disk_cache=False, n_threads=2)
    assert "call void @tg_dgemm(" in cp.llvm_ir()
    assert ("tg_sys_pthread_create" in cp.llvm_ir()) == threaded
    rng = np.random.default_rng(12)
    inputs = [rng.standard_normal(buf.shape) for buf in kp.inputs]
    for g, w in zip(cp(*inputs), run_program(kp, *inputs)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_outlined_threaded_kernel_with_odd_chunks(tiny_thread_threshold):
    kp = many_transcendentals_program(F64, (1001,))
    cp = compile_program(kp, disk_cache=False, n_threads=3)
    assert "tg_sys_pthread_create" in cp.llvm_ir() and "@tg_m_sincos" in cp.llvm_ir()
    inputs = _transcendental_inputs(kp)
    got, want = cp(*inputs), run_program(kp, *inputs)
    np.testing.assert_allclose(got[0], want[0], **MATH_TOL[F64])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


@pytest.mark.parametrize("n", [301, 2001, 4096])
def test_threaded_split_vector_loop_with_segments(n, tiny_thread_threshold, monkeypatch):
    """Dim 0 split into pad segments and into thread slices: a slice that misses a segment
    runs nothing there (a long segment runs full vectors plus one masked step)."""
    monkeypatch.setattr(simd, "LONG_BODY", 0)
    pb = ProgramBuilder()
    x = pb.input((n,), F64)
    out = pb.output((n,), F64)
    total = pb.output((), F64)
    half = n // 2  # two long segments: the last slice misses the first one
    body = [Load(x, IndexMap(1, (1,), ((0, n - 1, 1),)), F64),  # x[i + 1] for i < n - 1, else 0
            Load(x, IndexMap(0, (1,), ((0, half, 1),)), F64),   # x[i] for i < half, else 0
            Op("sub", (0, 1), {}, F64), Op("exp", (2,), {}, F64)]
    pb.loop((n,), body, [Store(out, 3, IndexMap(0, (1,))), Store(total, 3, IndexMap(0, (0,)), "sum")])
    kp = pb.build()
    cp = compile_program(kp, disk_cache=False, n_threads=3)
    assert "tg_sys_pthread_create" in cp.llvm_ir()
    xv = np.random.default_rng(15).uniform(-1, 1, n)
    got, want = cp(xv), run_program(kp, xv)
    np.testing.assert_allclose(got[0], want[0], **MATH_TOL[F64])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
