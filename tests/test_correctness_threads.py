"""Compiled functions called from several threads at once (issue 10, item 5):
first calls compile once per signature, results are right, dumps stay whole,
and compiling leaves the garbage collector's process-wide switch alone; threaded
kernels (the persistent worker pool) from several Python threads, after fork and
at interpreter exit."""
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import tracegrad

THREADS = 8


def _race(target, n=THREADS):
    """Run target(i) for i < n in n threads released together; re-raise the first error."""
    barrier, errors, results = threading.Barrier(n), [], [None] * n

    def run(i):
        try:
            barrier.wait(30)
            results[i] = target(i)
        except BaseException as e:  # noqa: BLE001 (reported on the main thread)
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return results


def _counting(fun):
    traces = []

    def wrapped(*args):
        traces.append(threading.get_ident())
        return fun(*args)
    wrapped.__name__ = fun.__name__
    return wrapped, traces


def _loss(x):
    return np.sum(np.tanh(x) * x)


def test_first_calls_with_distinct_shapes_from_eight_threads(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEGRAD_DUMP", str(tmp_path))
    monkeypatch.setenv("TRACEGRAD_DISABLE_CACHE", "1")
    fun, traces = _counting(_loss)
    f = tracegrad.compile_grad(fun)
    inputs = [np.linspace(-1.0, 1.0, 5 + i) for i in range(THREADS)]
    results = _race(lambda i: f(inputs[i]))
    for x, (value, (g,)) in zip(inputs, results):
        ref_value, ref_g = tracegrad.value_and_grad(_loss)(x)
        np.testing.assert_allclose(value, ref_value, rtol=1e-12)
        np.testing.assert_allclose(g, ref_g, rtol=1e-12)
    assert len(traces) == THREADS and len(f.cache_info()) == THREADS
    stages = ("traced", "gradient", "optimized", "kernels", "llvm", "asm")
    files = sorted(p.name for p in tmp_path.rglob("*.txt"))
    assert len(list(tmp_path.iterdir())) == THREADS  # one folder per specialization
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    for stage in stages:
        assert len([n for n in files if n.endswith(f"-{stage}.txt")]) == THREADS
    for p in tmp_path.rglob("*"):
        if p.name.endswith("-asm.txt"):
            assert p.read_text().strip()


def test_eight_threads_racing_on_one_signature_compile_it_once():
    fun, traces = _counting(_loss)
    f = tracegrad.jit(fun)
    x = np.linspace(-1.0, 1.0, 33)
    results = _race(lambda i: f(x))
    assert len(traces) == 1
    (entry,) = f.cache_info()
    assert entry["hits"] <= THREADS - 1  # a statistic: concurrent hits may undercount
    for r in results:
        np.testing.assert_allclose(r, _loss(x), rtol=1e-12)


def test_threads_past_the_guard_limit_stay_correct():
    def branchy(x):
        return x * 2.0 if float(np.sum(x)) > 10.0 else x - 1.0

    f = tracegrad.jit(branchy, max_specializations=3)
    with pytest.warns(tracegrad.compile.SpecializationLimitWarning):
        results = _race(lambda i: [f(np.full(4, float(i * 10 + k))) for k in range(4)])
    for i, outs in enumerate(results):
        for k, out in enumerate(outs):
            np.testing.assert_array_equal(out, branchy(np.full(4, float(i * 10 + k))))
    assert len(f.cache_info()) <= 3


def test_compiling_does_not_switch_the_garbage_collector(monkeypatch):
    def fail():
        raise AssertionError("library code must not switch the process-wide GC off")

    monkeypatch.setattr(gc, "disable", fail)
    f = tracegrad.compile_grad(_loss)
    assert gc.isenabled()
    f(np.ones(7))
    assert gc.isenabled()


# ---- threaded kernels (the persistent pool, codegen/pool.py) ------------------------------------

@pytest.fixture(name="threaded")
def threaded_fixture(monkeypatch):
    """Kernels of any size split over 3 threads; no disk cache."""
    from tracegrad.codegen import threads
    monkeypatch.setattr(threads, "PARALLEL_MIN_COST", 64)
    monkeypatch.setenv("TRACEGRAD_NUM_THREADS", "3")
    monkeypatch.setenv("TRACEGRAD_DISABLE_CACHE", "1")


def _rows_and_total(x):
    return np.tanh(x) * 2.0, np.sum(x * x)  # row-owned stores and a privatized full sum


def test_threaded_programs_called_from_eight_python_threads_at_once(threaded):
    f, g = tracegrad.jit(_rows_and_total), tracegrad.jit(lambda x: np.exp(-x) + 1.0)
    xs = [np.linspace(-1.0, 1.0, 4000) * (1 + i) for i in range(THREADS)]
    f(xs[0]), g(xs[0])  # compiled before the race: the race is in the native calls

    def calls(i):
        return [(f(xs[i]), g(xs[i])) for _ in range(25)]
    for i, outs in enumerate(_race(calls)):
        for (rows, total), other in outs:
            np.testing.assert_allclose(rows, np.tanh(xs[i]) * 2.0, rtol=1e-12)
            np.testing.assert_allclose(total, np.sum(xs[i] * xs[i]), rtol=1e-12)
            np.testing.assert_allclose(other, np.exp(-xs[i]) + 1.0, rtol=1e-12)


def _in_forked_child(check, seconds=60):
    """Run `check()` in a forked child; it must return True there within `seconds` (a child
    that hangs, even in an at-fork hook before `check` starts, is killed: a failure)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process
        pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        code = 1
        try:
            code = 0 if check() else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + seconds
    while not (ended := os.waitpid(pid, os.WNOHANG))[0]:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child did not finish in {seconds} s")
        time.sleep(0.01)
    status = ended[1]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_threaded_program_runs_in_a_forked_child(threaded):
    """The child has none of the parent's workers: it starts its own, and the result is right."""
    from tracegrad.codegen import pool
    f = tracegrad.jit(_rows_and_total)
    x = np.linspace(-2.0, 2.0, 5000)
    want = _rows_and_total(x)
    f(x)
    assert pool.workers_here() >= 2
    def child():
        for _ in range(20):
            rows, total = f(x)
            if not (np.allclose(rows, want[0], rtol=1e-12) and np.isclose(total, want[1])):
                return False
        return pool.workers_here() >= 2

    _in_forked_child(child)
    np.testing.assert_allclose(f(x)[0], want[0], rtol=1e-12)  # the parent's pool still works


_FORK_WHILE_COMPILING_SCRIPT = """
import faulthandler, os, signal, threading, time, warnings
faulthandler.dump_traceback_later(150, exit=True)  # a hang prints every thread's stack
os.environ["TRACEGRAD_NUM_THREADS"] = "2"
os.environ["TRACEGRAD_DISABLE_CACHE"] = "1"  # every new shape compiles (two LLVM threads)
import numpy as np
import tracegrad
from tracegrad.codegen import llvm_util  # registers tracegrad's fork hook
import concurrent.futures.thread  # so this one's before-fork hook runs first

def reduce_rows(x):
    t = np.tanh(x)
    return np.exp(t - np.max(t, axis=0))  # a temp in the arena: the program holds its mutex

def in_child(check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(60)
            code = 0 if check() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status

f = tracegrad.jit(reduce_rows)
x = np.random.default_rng(0).normal(size=(2000, 256))
want = reduce_rows(x)
f(x)
stop = threading.Event()

def run():
    while not stop.is_set():
        f(x)

def compile_shapes():  # a new function each time: it compiles past the signature limit
    n = 10
    while not stop.is_set():
        n += 1
        tracegrad.jit(lambda x: np.sin(x) * 2.0)(np.ones(n))

workers = [threading.Thread(target=run), threading.Thread(target=compile_shapes)]
for w in workers:
    w.start()
try:
    for _ in range(12):
        time.sleep(0.02)
        in_child(lambda: np.allclose(f(x), want, rtol=1e-12) and np.allclose(
            tracegrad.jit(lambda x: np.cos(x) + 1.0)(x[0]), np.cos(x[0]) + 1.0))
finally:
    stop.set()
    for w in workers:
        w.join()
print("ok", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_while_other_threads_run_and_compile_runs_and_compiles(tmp_path):
    """A parent thread may hold a program's mutex (running it) or the compile locks (LLVM's
    and llvmlite's, compiling) at the fork; that thread does not exist in the child, whose
    first call of that program, or first compile, waited forever (3 forks in 5).  And the
    fork itself waited forever when another library's before-fork hook (concurrent.futures',
    registered after tracegrad's) held a lock the compiling thread needed while holding the
    compile lock that tracegrad's hook waits for.  In a subprocess: a hang is a failure."""
    done = subprocess.run([sys.executable, "-c", _FORK_WHILE_COMPILING_SCRIPT], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-4000:]


_SHUTDOWN_SCRIPT = """
import os, threading, time
os.environ["TRACEGRAD_NUM_THREADS"] = "3"
os.environ["TRACEGRAD_DISABLE_CACHE"] = "1"
import numpy as np
import tracegrad
from tracegrad.codegen import threads
threads.PARALLEL_MIN_COST = 64
f = tracegrad.jit(lambda x: np.tanh(x) * 2.0)
x = np.linspace(-1.0, 1.0, 20000)
f(x)
def hammer():
    while True:
        f(x)
for _ in range(2):
    threading.Thread(target=hammer, daemon=True).start()
time.sleep(0.2)
print("exiting", flush=True)
"""


def test_interpreter_exits_while_daemon_threads_run_threaded_kernels(tmp_path):
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _SHUTDOWN_SCRIPT], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "exiting"
