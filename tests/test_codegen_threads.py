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
    assert "tg_pool_run" in cp.llvm_ir()
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
    assert "tg_pool_run" not in cp.llvm_ir()
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
    2 cores starts no threads of its own; with BLAS on 1 thread it does.  (Products as
    plain calls: TRACEGRAD_BLAS_SERIAL=0, blas.py; tests/test_blas_split.py has the rest.)"""
    import os
    from tracegrad.codegen import blas
    monkeypatch.setenv("TRACEGRAD_BLAS_SERIAL", "0")
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
    assert ("tg_pool_run" in cp.llvm_ir()) == threaded
    rng = np.random.default_rng(12)
    inputs = [rng.standard_normal(buf.shape) for buf in kp.inputs]
    for g, w in zip(cp(*inputs), run_program(kp, *inputs)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_outlined_threaded_kernel_with_odd_chunks(tiny_thread_threshold):
    kp = many_transcendentals_program(F64, (1001,))
    cp = compile_program(kp, disk_cache=False, n_threads=3)
    assert "tg_pool_run" in cp.llvm_ir() and "@tg_m_sincos" in cp.llvm_ir()
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
    assert "tg_pool_run" in cp.llvm_ir()
    xv = np.random.default_rng(15).uniform(-1, 1, n)
    got, want = cp(xv), run_program(kp, xv)
    np.testing.assert_allclose(got[0], want[0], **MATH_TOL[F64])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


@pytest.mark.parametrize("n", [64 * 300, 64 * 300 + 8, 64 * 300 + 5])
def test_threads_of_a_one_dim_kernel_get_whole_vectors(n, tiny_thread_threshold, monkeypatch):
    """A one-dim kernel's thread shares are multiples of threads.ROW_ALIGN: where the length
    is a multiple of the lanes no step is masked (the body is emitted once), elsewhere the
    last step is; both agree with the interpreter."""
    from tracegrad.codegen import threads
    monkeypatch.setattr(simd, "LONG_BODY", 0)
    pb = ProgramBuilder()
    x = pb.input((n,), F64)
    out = pb.output((n,), F64)
    total = pb.output((), F64)
    body = [Load(x, IndexMap(0, (1,)), F64), Op("exp", (0,), {}, F64)]
    pb.loop((n,), body, [Store(out, 1, IndexMap(0, (1,))), Store(total, 1, IndexMap(0, (0,)), "sum")])
    kp = pb.build()
    cp = compile_program(kp, disk_cache=False, n_threads=3)
    assert "tg_pool_run" in cp.llvm_ir()
    whole = n % (simd.llvm_util.vector_bits() // 64) == 0
    assert ("llvm.masked" in cp.llvm_ir()) != whole
    xv = np.random.default_rng(16).uniform(-1, 1, n)
    got, want = cp(xv), run_program(kp, xv)
    np.testing.assert_allclose(got[0], want[0], **MATH_TOL[F64])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    edges = threads._edges((n,), 3)
    assert edges[0] == 0 and edges[-1] == n and len(edges) == 4
    assert all(e % threads.ROW_ALIGN == 0 for e in edges[:-1])
    assert threads._edges((100, 7), 3) == [0, 33, 66, 100]  # rows of a 2-D kernel: equal shares


# ---- the persistent pool (pool.py) -----------------------------------------------------------

_TASK_IR = """
declare i64 @tg_sys_pthread_self()
define void @task(ptr %ctx) {
  %out = load ptr, ptr %ctx
  %ip = getelementptr i8, ptr %ctx, i64 8
  %i = load i64, ptr %ip
  %slot = getelementptr [2 x i64], ptr %out, i64 %i
  %v = load i64, ptr %slot
  %v1 = add i64 %v, %i
  %v2 = add i64 %v1, 1
  store i64 %v2, ptr %slot
  %tidp = getelementptr i64, ptr %slot, i64 1
  %tid = call i64 @tg_sys_pthread_self()
  store i64 %tid, ptr %tidp
  ret void
}
"""


@pytest.fixture(name="pool_task")
def pool_task_fixture():
    """run(n) -> (out, tids): tg_pool_run over n slices of a native task that adds i + 1 to
    out[i] and records the thread that ran slice i."""
    import ctypes

    import llvmlite.binding as llvm

    from tracegrad.codegen import llvm_util, pool
    from tracegrad.codegen.irutil import libc_symbols

    for name, address in libc_symbols(("pthread_self",)).items():
        llvm.add_symbol(name, address)
    engine, _ = llvm_util.compile_ir(_TASK_IR)
    task = engine.get_function_address("task")
    run_pool = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                ctypes.c_int64)(pool.run_address())

    def run(n):
        results = np.zeros((max(n, 1), 2), np.int64)
        ctx = np.zeros((max(n, 1), 2), np.int64)
        ctx[:, 0], ctx[:, 1] = results.ctypes.data, np.arange(max(n, 1))
        run_pool(task, ctx.ctypes.data, 16, n)
        return results[:n, 0], results[:n, 1]
    yield run
    del engine


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
def test_pool_runs_every_slice_once_each_on_its_own_thread(pool_task, n):
    out, tids = pool_task(n)
    np.testing.assert_array_equal(out, np.arange(1, n + 1))
    assert len(set(tids.tolist())) == n


def test_pool_held_by_another_thread_runs_every_slice_on_the_caller(pool_task):
    import os

    from tracegrad.codegen import pool
    busy = pool.busy_word()
    busy.value = os.getpid()  # as if another thread of this process were in tg_pool_run
    try:
        out, tids = pool_task(4)
        assert busy.value == os.getpid()  # not released by the caller that did not take it
    finally:
        busy.value = 0
    np.testing.assert_array_equal(out, np.arange(1, 5))
    assert len(set(tids.tolist())) == 1


def test_pool_held_in_a_parent_process_is_taken_over(pool_task):
    """After fork the child's copy of `busy` may name the parent: the child takes the pool."""
    import os

    from tracegrad.codegen import pool
    pool.busy_word().value = os.getpid() + 1
    out, tids = pool_task(3)
    assert pool.busy_word().value == 0
    np.testing.assert_array_equal(out, np.arange(1, 4))
    assert len(set(tids.tolist())) == 3


def test_slices_beyond_the_pool_run_on_the_caller(tmp_path):
    """A pool of 2 workers and 6 slices: 4 on the caller, each slice once."""
    import subprocess
    import sys
    script = f"""
import sys
sys.path.insert(0, {str(__import__('os').path.dirname(__file__))!r})
from tracegrad.codegen import pool
pool.MAX_WORKERS = 2
import test_codegen_threads as t
import numpy as np
fixture = t.pool_task_fixture.__wrapped__()
run = next(fixture)  # the fixture holds the task's engine
out, tids = run(6)
assert out.tolist() == [1, 2, 3, 4, 5, 6], out
assert len(set(tids.tolist())) == 3, tids
assert pool.workers_here() == 2
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_workers_start_once_and_stay(tiny_thread_threshold, monkeypatch):
    import os

    import tracegrad
    from tracegrad.codegen import pool
    monkeypatch.setenv("TRACEGRAD_NUM_THREADS", "3")
    monkeypatch.setenv("TRACEGRAD_DISABLE_CACHE", "1")
    f = tracegrad.jit(lambda x: np.tanh(x) * 2.0)
    x = np.linspace(-1, 1, 3000)
    for _ in range(3):
        np.testing.assert_allclose(f(x), np.tanh(x) * 2.0, rtol=1e-12)
    assert pool.workers_here() >= 2
    tasks = "/proc/self/task"
    before = len(os.listdir(tasks)) if os.path.isdir(tasks) else None
    for _ in range(50):
        f(x)
    if before is not None:
        assert len(os.listdir(tasks)) == before


_POOL_CACHE_SCRIPT = """
import sys
import numpy as np
from tracegrad.codegen import compile_program, pool, threads
if sys.argv[2] == "loaded":
    def refuse():
        raise AssertionError("the pool was built, not loaded from the cache")
    pool.build_object = refuse
threads.PARALLEL_MIN_COST = 64
sys.path.insert(0, {tests!r})
from codegen_cases import F64, ProgramBuilder
from tracegrad.passes.kernels import IndexMap, Load, Op, Store
pb = ProgramBuilder()
x = pb.input((64, 8), F64)
out = pb.output((64, 8), F64)
idx = IndexMap(0, (8, 1))
pb.loop((64, 8), [Load(x, idx, F64), Op("exp", (0,), {{}}, F64)], [Store(out, 1, idx)])
cp = compile_program(pb.build(), disk_cache=sys.argv[1], n_threads=2)
xv = np.linspace(-1, 1, 512).reshape(64, 8)
assert np.allclose(cp(xv)[0], np.exp(xv), rtol=1e-12) and pool.workers_here() == 1
print("ok")
"""


def test_pool_code_comes_from_the_disk_cache_in_a_new_process(tmp_path):
    import os
    import subprocess
    import sys
    script = _POOL_CACHE_SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)))
    for mode in ("built", "loaded"):
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "cache"), mode],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
