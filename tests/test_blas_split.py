"""codegen/blas.py: products on the program's threads (OpenBLAS on one thread, a large gemm
in slices on the worker pool) and the serial section that restores OpenBLAS's setting."""

import threading

import numpy as np
import pytest

from tracegrad.codegen import blas
from tracegrad.codegen.compiler import compile_program
from tracegrad.passes.kernel_interp import run_program
from codegen_cases import F32, F64, ProgramBuilder, add_dot, dot_program

needs_serial = pytest.mark.skipif(not blas.serial_products(),
                                  reason="no OpenBLAS with thread-count functions")


@pytest.mark.parametrize("dims, threads, want", [
    ((256, 784, 512), 2, ("n", (0, 256, 512))),
    ((784, 256, 512), 2, ("m", (0, 384, 784))),
    ((256, 10, 512), 2, ("n", (0, 256, 512))),
    ((300, 784, 10), 3, ("m", (0, 96, 192, 300))),
    ((256, 784, 512), 1, None),  # one thread
    ((784, 256, 512), 4, ("m", (0, 192, 384, 576, 784))),
    ((1024, 8, 512), 16, ("m", tuple(range(0, 1025, 128)))),  # 8 slices of 2^19 MACs
    ((2048, 2048, 1024), 16, ("m", tuple(range(0, 2049, 128)))),
    ((64, 64, 64), 2, None),  # too little work to share
    ((100, 100000, 100), 2, None),  # 100 rows: no two slices of 64
])
def test_split_edges(dims, threads, want):
    m, k, n = dims
    kernel = dot_program(1, m, k, n, F32).kernels[0]
    assert blas.split_edges(kernel, threads) == want


def test_batched_products_and_matrix_vector_products_are_not_split():
    assert blas.split_edges(dot_program(2, 256, 784, 512, F32).kernels[0], 2) is None
    assert blas.split_edges(dot_program(1, 4096, 4096, 1, F32).kernels[0], 2) is None


# (m, k, n): split by rows (m >= n) or columns, edges off and on multiples of 16, slices of
# unequal size (3 threads), float32 and float64, every layout of the operands.
SHAPES = [(256, 784, 512), (300, 257, 130), (130, 301, 333), (784, 256, 40)]


@needs_serial
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)])
def test_split_products_match_the_interpreter(trans, threads):
    rng = np.random.default_rng(5)
    pb = ProgramBuilder()
    for dt in (F32, F64):
        for m, k, n in SHAPES:
            add_dot(pb, 1, m, k, n, dt, *trans)
    kp = pb.build()
    assert all(blas.split_edges(k, threads) is not None for k in kp.kernels)
    cp = compile_program(kp, disk_cache=False, n_threads=threads)
    assert "tg_pool_run" in cp.llvm_ir() and "tg_blas_serial_enter" in cp.llvm_ir()
    inputs = [rng.standard_normal(buf.shape).astype(buf.dtype) for buf in kp.inputs]
    for g, w in zip(cp(*inputs), run_program(kp, *inputs)):
        tol = 2e-4 if g.dtype == F32 else 1e-11
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


@needs_serial
def test_openblas_thread_count_is_restored_after_every_call():
    before = blas.thread_count()
    kp = dot_program(1, 256, 300, 256, F64)
    cp = compile_program(kp, disk_cache=False, n_threads=2)
    x = [np.ones(buf.shape) for buf in kp.inputs]
    for _ in range(3):
        np.testing.assert_array_equal(cp(*x)[0], np.full((1, 256, 256), 300.0))
        assert blas.thread_count() == before


@needs_serial
def test_concurrent_programs_leave_openblas_setting_as_it_was():
    """Serial sections of several threads overlap: the count goes back only after the
    last one, to the value saved by the first."""
    before = blas.thread_count()
    kp = dot_program(1, 200, 300, 260, F64)
    cp = compile_program(kp, disk_cache=False, n_threads=2)
    rng = np.random.default_rng(3)
    x = [rng.standard_normal(buf.shape) for buf in kp.inputs]
    want = x[0] @ x[1]
    errors = []

    def work():
        for _ in range(20):
            if not np.allclose(cp(*x)[0], want, rtol=1e-12, atol=1e-12):
                errors.append("wrong product")

    workers = [threading.Thread(target=work) for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors
    assert blas.thread_count() == before


@needs_serial
def test_serial_programs_keep_their_threads_for_other_kernels(monkeypatch):
    """With products serial, a program that calls BLAS does not leave cores to OpenBLAS's
    workers (calls_blas: none of its products runs on them); with
    TRACEGRAD_BLAS_SERIAL=0 it does, and the two kinds of code have different keys."""
    kp = dot_program(1, 64, 64, 64, F64)
    serial = blas.describe()
    assert not blas.calls_blas(kp)
    monkeypatch.setenv("TRACEGRAD_BLAS_SERIAL", "0")
    assert blas.calls_blas(kp)
    assert blas.describe() != serial
    cp = compile_program(kp, disk_cache=False, n_threads=2)
    assert "tg_blas_serial_enter" not in cp.llvm_ir()
    x = [np.ones(buf.shape) for buf in kp.inputs]
    np.testing.assert_array_equal(cp(*x)[0], np.full((1, 64, 64), 64.0))


def test_products_of_one_thread_programs_are_plain_calls():
    """One program thread leaves the other cores to OpenBLAS's own threads."""
    kp = dot_program(1, 256, 784, 512, F32)
    cp = compile_program(kp, disk_cache=False, n_threads=1)
    text = cp.llvm_ir()
    assert "call void @tg_sgemm(" in text
    assert "tg_blas_serial_enter" not in text and "tg_pool_run" not in text
    rng = np.random.default_rng(8)
    x = [rng.standard_normal(buf.shape).astype(F32) for buf in kp.inputs]
    np.testing.assert_allclose(cp(*x)[0], x[0] @ x[1], rtol=2e-4, atol=2e-4)


@needs_serial
def test_state_left_by_a_parent_process_is_taken_over():
    """After a fork with products in flight (the lock and the count of another pid), the
    first product gives OpenBLAS the saved count back and counts from zero."""
    lib, state = blas.find_blas(), blas._SERIAL_STATE
    before = blas.thread_count()
    kp = dot_program(1, 256, 300, 256, F64)
    cp = compile_program(kp, disk_cache=False, n_threads=2)
    stale = (1 << 40) + 7  # no process has this pid
    state[0], state[1], state[2], state[3] = stale, 1, before, stale
    lib.set_num_threads(1)
    try:
        out = cp(*[np.ones(buf.shape) for buf in kp.inputs])[0]
        assert (state[0], state[1], blas.thread_count()) == (0, 0, before)
    finally:
        state[0], state[1] = 0, 0
        lib.set_num_threads(before)
    np.testing.assert_array_equal(out, np.full((1, 256, 256), 300.0))
