"""Every use of LLVM holds one lock (issue 10.5): compiles, `asm()`, TRACEGRAD_DUMP."""
import threading
from concurrent.futures import ThreadPoolExecutor

import llvmlite.binding as llvm
import numpy as np

import tracegrad
from tracegrad.codegen import compile_program, llvm_util
from tracegrad.passes.kernels import Buffer, IndexMap, KernelProgram, Load, LoopKernel, Op, Store

F64 = np.dtype(np.float64)


def _lock_free_elsewhere() -> bool:
    """Whether another thread could take the LLVM lock right now."""
    got = []

    def probe():
        if llvm_util.LOCK.acquire(blocking=False):
            llvm_util.LOCK.release()
            got.append(True)
    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return bool(got)


def _program(n):
    x = Buffer("x", (n,), F64, "input", index=0)
    out = Buffer("out", (n,), F64, "output", index=0)
    body = [Load(x, IndexMap(0, (1,)), F64), Op("tanh", (0,), {}, F64)]
    kernel = LoopKernel("k", (n,), body, [Store(out, 1, IndexMap(0, (1,)))])
    return KernelProgram([x], [out], [], [], [kernel])


def test_llvm_is_only_entered_holding_the_lock(monkeypatch, tmp_path):
    calls = []
    for name in ("parse_assembly", "create_mcjit_compiler"):
        real = getattr(llvm, name)

        def checked(*args, _real=real, **kwargs):
            calls.append(not _lock_free_elsewhere())
            return _real(*args, **kwargs)
        monkeypatch.setattr(llvm, name, checked)
    monkeypatch.setenv("TRACEGRAD_DUMP", str(tmp_path))
    cp = compile_program(_program(37), disk_cache=False)
    f = tracegrad.jit(lambda x: np.tanh(x) * 2.0, disk_cache=False)
    f(np.ones(5))
    assert "tg_kern_" in cp.llvm_ir() and cp.asm() and f.asm()
    assert calls and all(calls), f"{calls.count(False)} of {len(calls)} LLVM calls outside the lock"
    assert any(p.name.endswith("asm.txt") for p in tmp_path.rglob("*"))


def test_eight_threads_compile_dump_and_disassemble(monkeypatch, tmp_path):
    """First calls with distinct shapes from 8 threads at once (one shared function and
    one function per thread), with TRACEGRAD_DUMP on and asm() read while others compile."""
    monkeypatch.setenv("TRACEGRAD_DUMP", str(tmp_path))
    shared = tracegrad.jit(lambda x: np.sum(np.exp(-x * x)), disk_cache=False)
    start = threading.Barrier(8)

    def work(i):
        n = 5 + 3 * i
        x = np.linspace(-2, 2, n)
        own = tracegrad.jit(lambda x: np.tanh(x) * (i + 1.0), disk_cache=False)
        start.wait()
        total, scaled = shared(x), own(x)
        np.testing.assert_allclose(total, np.sum(np.exp(-x * x)), rtol=1e-12)
        np.testing.assert_allclose(scaled, np.tanh(x) * (i + 1.0), rtol=1e-12)
        return own.asm(), shared.asm()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    assert all(a and b for a, b in results)
    assert len(shared.cache_info()) == 8
    assert any(p.name.endswith("asm.txt") for p in tmp_path.rglob("*"))  # one name per function


_TWICE = "define double @twice(double %x) {\n  %y = fmul double %x, 2.0\n  ret double %y\n}"


def test_an_engine_dropped_while_the_lock_is_busy_is_disposed_by_its_next_holder():
    """Disposing of an engine enters LLVM, so it happens under the lock (a fork meanwhile
    left the child waiting on LLVM's listener mutex); a drop while another thread holds
    the lock defers it instead of waiting (that thread may be waiting for this one)."""
    engine, _ = llvm_util.compile_ir(_TWICE)
    held, done = threading.Event(), threading.Event()

    def hold():
        with llvm_util.LOCK:
            held.set()
            done.wait(30)
    t = threading.Thread(target=hold)
    t.start()
    held.wait(30)
    try:
        engine.close()  # what __del__ does: it must not wait for the lock
        assert not engine.closed and llvm_util._PENDING[-1] is engine
    finally:
        done.set()
        t.join()
    tracegrad.jit(lambda x: x * 3.0)(np.ones(3))  # the next compile disposes of it
    assert engine.closed and engine not in llvm_util._PENDING
    other, _ = llvm_util.compile_ir(_TWICE)
    other.close()  # the lock free: at once
    assert other.closed
