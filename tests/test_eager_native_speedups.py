"""Eager speed-ups (docs/eager.md): kernels split over the persistent worker pool, the
caching numpy allocator (codegen/eager_memory.py) and fused backward rules."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import eager as gates
from tracegrad.codegen import eager as kernels
from tracegrad.codegen import pool
from tracegrad.ir.primitives import PRIMITIVES

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
pytestmark = pytest.mark.skipif(not gates.enabled_by_env(), reason="TRACEGRAD_EAGER_NATIVE=0")


@pytest.fixture(autouse=True)
def loaded():
    assert gates.BACKEND.load() is not None


@pytest.fixture
def memory():
    if gates.BACKEND.memory is None:
        pytest.skip("the caching allocator is not installed in this process")
    from tracegrad.codegen import eager_memory
    assert eager_memory.active()
    return eager_memory


def run_python(code, **env):
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env),
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


# ---- threads from the pool ---------------------------------------------------------------

@pytest.mark.parametrize("n_threads", [2, 3, 5])
@pytest.mark.parametrize("name", ["add", "exp", "tanh_vjp"])
def test_pool_slices_equal_one_thread(name, n_threads):
    n = 7 * kernels.CHUNK_ALIGN + 3
    x = np.random.default_rng(1).uniform(-3, 3, n)
    args = [x] if name == "exp" else [x, np.tanh(x)]
    spec = kernels.Spec(name, F64, "a" * len(args))
    kernels.KERNELS.get(spec)
    kernels.KERNELS.backoffs[len(args) + 1][0].value = 0  # no backoff left from earlier losses
    one = kernels.elementwise(spec, args, x.shape, 1)
    np.testing.assert_array_equal(kernels.elementwise(spec, args, x.shape, n_threads), one)
    assert pool.workers_here() >= 1  # the slices went to the pool's workers


def test_pool_sum_over_slices():
    x = np.random.default_rng(2).uniform(0, 1, 9 * kernels.CHUNK_ALIGN + 1)
    spec = kernels.Spec("reduce_sum", F64, "a", reduce="sum")
    for t in (1, 2, 4):
        assert np.isclose(float(kernels.full_sum(spec, x, t)), x.sum(), rtol=1e-13)


def test_threads_follow_compiled_programs_default():
    env = {k: v for k, v in os.environ.items() if k != "TRACEGRAD_EAGER_THREADS"}
    code = "from tracegrad.codegen import eager; print(eager.thread_count())"
    got = subprocess.run([sys.executable, "-c", code], env=dict(env, TRACEGRAD_NUM_THREADS="3"),
                         capture_output=True, text=True, check=True).stdout.split()
    assert got == ["3"]
    assert run_python(code, TRACEGRAD_EAGER_THREADS="1") == ["1"]


def test_python_threads_running_pooled_kernels_agree():
    x = np.random.default_rng(3).uniform(-2, 2, 300_000).astype(F32)
    want = PRIMITIVES["mul"].impl(x, x)
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(PRIMITIVES["mul"].run(x, x))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and len(results) == 80
    for r in results:
        np.testing.assert_array_equal(r, want)


# ---- the caching allocator ---------------------------------------------------------------

def test_a_freed_block_is_handed_out_again(memory):
    n = 1 << 18
    a = np.ones(n, F64)
    address = a.ctypes.data
    del a
    before = memory.MEMORY.stats()["hits"]
    b = np.empty(n, F64)
    assert b.ctypes.data == address
    assert memory.MEMORY.stats()["hits"] == before + 1
    b[:] = 7.0
    del b
    c = np.zeros(n, F64)  # calloc: a cached block comes back cleared
    assert c.ctypes.data == address and not c.any()


def test_the_block_freed_last_comes_first(memory):
    a, b = np.ones(1 << 18), np.ones(1 << 18)
    first, last = a.ctypes.data, b.ctypes.data
    del a, b  # a is filed first, b last
    c = np.empty(1 << 18)
    d = np.empty(1 << 18)
    assert (c.ctypes.data, d.ctypes.data) == (last, first)


def test_blocks_of_other_sizes_and_small_ones_are_not_reused(memory):
    a = np.ones(1 << 18, F64)
    address = a.ctypes.data
    del a
    b = np.empty(1 << 16, F64)  # smaller than the cached block by more than 1/8
    assert b.ctypes.data != address
    small = np.ones(100)
    del small
    assert memory.MEMORY.stats()["cached_bytes"] >= 1 << 21


def test_resize_and_realloc_keep_values(memory):
    a = np.arange(1 << 17, dtype=F64)
    a.resize(1 << 18, refcheck=False)
    assert a[-1] == 0 and a[(1 << 17) - 1] == (1 << 17) - 1
    a.resize(10, refcheck=False)
    np.testing.assert_array_equal(a, np.arange(10.0))


def test_the_budget_bounds_what_is_cached(memory):
    budget = memory.budget_bytes()
    blocks = [np.ones(1 << 20, F64) for _ in range(budget // (1 << 23) + 4)]  # 8 MiB each
    del blocks
    stats = memory.MEMORY.stats()
    assert 0 < stats["cached_bytes"] <= budget
    pile = [np.ones(int(1 << 17) + i * 4096, F32) for i in range(2 * memory.SLOTS)]
    del pile
    assert memory.MEMORY.stats()["cached_bytes"] <= budget
    assert memory.MEMORY.stats()["evicted"] > stats["evicted"]


def test_no_array_aliases_another(memory):
    live = [np.full(1 << 17, float(i)) for i in range(40)]
    del live[::2]
    more = [np.full(1 << 17, -float(i)) for i in range(20)]
    addresses = [a.ctypes.data for a in live + more]
    assert len(set(addresses)) == len(addresses)
    for i, a in enumerate(live):
        assert (a == 2 * i + 1).all()
    for i, a in enumerate(more):
        assert (a == -i).all()


def test_threads_allocating_at_once(memory):
    errors = []

    def churn(seed):
        try:
            rng = np.random.default_rng(seed)
            for _ in range(200):
                n = int(rng.integers(1 << 15, 1 << 19))
                a = np.full(n, seed, np.float32)
                assert a[-1] == seed
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
    ts = [threading.Thread(target=churn, args=(s,)) for s in range(4)]
    for t in ts:
        t.start()
    churn(9)
    for t in ts:
        t.join()
    assert not errors


def test_installed_by_the_first_native_operation_and_switchable():
    code = ("import numpy as np, tracegrad; from tracegrad.codegen.eager_memory import np_handler_name; "
            "a = np_handler_name(); tracegrad.numpy.exp(tracegrad.tensor(np.ones(8))); "
            "print(a, np_handler_name())")
    assert run_python(code) == ["default_allocator", "tracegrad_eager_cache"]
    assert run_python(code, TRACEGRAD_EAGER_CACHE_MB="0") == ["default_allocator"] * 2
    assert run_python(code, TRACEGRAD_EAGER_NATIVE="0") == ["default_allocator"] * 2


def test_arrays_alive_at_exit_are_freed_cleanly():
    code = ("import numpy as np, tracegrad, sys; "
            "tracegrad.numpy.exp(tracegrad.tensor(np.ones(8))); "
            "from tracegrad.codegen.eager_memory import active; "
            "big = [np.ones(1 << 18) for _ in range(4)]; cycle = [big]; cycle.append(cycle); "
            "sys.modules['numpy'].kept = np.ones(1 << 17); print(active())")
    assert run_python(code) == ["True"]  # check=True: a crash at shutdown fails the run


def test_a_forked_child_allocates(memory):
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    a = np.ones(1 << 18)
    del a
    pid = os.fork()
    if pid == 0:  # the child: allocate, free, reuse; exit status says whether it worked
        ok = all(np.full(1 << 18, float(i)).sum() == i * (1 << 18) for i in range(5))
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_uninstall_restores_numpy_allocator(memory):
    try:
        gates.uninstall()
        assert memory.np_handler_name() == "default_allocator"
    finally:
        gates.install()
    assert memory.active()


# ---- fused backward rules -----------------------------------------------------------------

def tanh_case(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 3).astype(dtype)
    if n >= 4:
        x[:4] = [np.inf, -np.inf, np.nan, -0.0]
    return x, np.tanh(x), rng.standard_normal(n).astype(dtype)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("n", [1, 5, 1000, 70_001])
def test_fused_tanh_vjp_is_the_rule_bit_for_bit(n, dtype):
    x, out, g = tanh_case(n, dtype)
    rule = PRIMITIVES["tanh"].vjp
    native = gates.fused_gate("tanh_vjp")
    for cot in (g, np.broadcast_to(np.asarray(-1.5, dtype), out.shape)):
        got = native(cot, out)
        assert got is not NotImplemented and got.dtype == dtype and got.flags.writeable
        want, = rule.unfused(cot, out, x)
        np.testing.assert_array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))
        np.testing.assert_array_equal(rule(cot, out, x)[0], want)


FUSED_CASES = {"tanh": np.tanh, "sqrt": np.sqrt, "log": np.log, "log1p": np.log1p, "abs": np.abs}


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("n", [5, 70_001])
@pytest.mark.parametrize("name", sorted(gates.FUSED_VJPS))
def test_every_fused_vjp_is_its_rule_bit_for_bit(name, n, dtype):
    """Each fused backward kernel (reading the output or the operand) gives the unfused
    rule's values, special values and signed zeros included, for array and broadcast g."""
    rng = np.random.default_rng(9)
    x = (rng.standard_normal(n) * 3).astype(dtype)
    if name in ("sqrt", "log", "log1p"):
        x = (np.abs(x) + 0.01 if name != "log1p" else np.abs(x) - 0.5).astype(dtype)
    x[:4] = [np.inf, np.nan, -0.0, 0.0]
    with np.errstate(all="ignore"):
        out = FUSED_CASES[name](x)
    g = rng.standard_normal(n).astype(dtype)
    rule = PRIMITIVES[name].vjp
    assert rule.unfused is not None
    for cot in (g, np.broadcast_to(np.asarray(-1.5, dtype), out.shape)):
        with np.errstate(all="ignore"):
            got, = rule(cot, out, x)
            want, = rule.unfused(cot, out, x)
        assert got.dtype == want.dtype == dtype
        np.testing.assert_array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))


def test_fused_rule_leaves_what_it_cannot_take_to_the_rule():
    native = gates.fused_gate("tanh_vjp")
    out = np.tanh(np.linspace(-1, 1, 64))
    for g, o in [(out, np.asarray(0.5)), (out.astype(F32), out), (out[::2], out[::2]),
                 (out, out.astype(np.int64)), (np.ones(3), out), ([1.0] * 64, out)]:
        assert native(g, o) is NotImplemented
    x = np.linspace(-1, 1, 64)
    want, = PRIMITIVES["tanh"].vjp.unfused(out[::2], out[::2], x[::2])
    np.testing.assert_array_equal(PRIMITIVES["tanh"].vjp(out[::2], out[::2], x[::2])[0], want)


@pytest.mark.parametrize("create_graph", [False, True])
def test_eager_tanh_gradients_with_and_without_fusion(create_graph):
    x0 = tanh_case(5000, F32, 4)[0][4:]

    def grad():
        x = tg.tensor(x0, requires_grad=True)
        (tg.numpy.tanh(x) * tg.numpy.exp(x)).sum().backward(create_graph=create_graph)
        return np.array(x.grad.detach().data)
    fused = grad()
    try:
        gates._uninstall_fused()  # the primitives' own rules, the same kernels
        assert getattr(PRIMITIVES["tanh"].vjp, "unfused", None) is None
        unfused = grad()
    finally:
        gates.install()
    assert PRIMITIVES["tanh"].vjp.unfused is not None
    np.testing.assert_array_equal(fused, unfused)


def test_uninstall_restores_the_rules():
    try:
        gates.uninstall()
        assert getattr(PRIMITIVES["tanh"].vjp, "unfused", None) is None
    finally:
        gates.install()
    assert PRIMITIVES["tanh"].vjp.unfused is not None


def test_install_twice_wraps_once():
    rule = PRIMITIVES["tanh"].vjp
    gates.install()
    assert PRIMITIVES["tanh"].vjp is rule and not hasattr(rule.unfused, "unfused")


def test_a_threaded_run_that_loses_sends_the_next_calls_to_one_thread():
    made = kernels.KERNELS.get(kernels.Spec("neg", F64, "a"))
    left, length = kernels.KERNELS.backoffs[2]
    x = np.arange(2 * kernels.CHUNK_ALIGN - 1, dtype=F64)
    out = np.empty_like(x)
    run = lambda t: made.driver(made.address, x.ctypes.data, out.ctypes.data, x.size, t, 0)  # noqa: E731
    busy = pool.busy_word()
    busy.value = os.getpid()  # as if another thread held the pool: every slice on the caller
    try:
        for _ in range(5):  # a preemption inside the caller's empty slice could hide one loss
            left.value = length.value = 0
            run(2)  # slice 0 is empty (slices start at multiples of CHUNK_ALIGN): slice 1 is late
            if left.value:
                break
        assert left.value == kernels.BACKOFF_MIN and length.value == 2 * kernels.BACKOFF_MIN
        np.testing.assert_array_equal(out, -x)
        out[:] = 0
        run(2)  # on one thread, counted down
        assert left.value == kernels.BACKOFF_MIN - 1
        np.testing.assert_array_equal(out, -x)
        run(1)  # one thread asked: not counted
        assert left.value == kernels.BACKOFF_MIN - 1
        for _ in range(5):
            length.value, left.value = kernels.BACKOFF_MAX, 0
            run(2)
            if left.value:
                break
        assert left.value == kernels.BACKOFF_MAX and length.value == kernels.BACKOFF_MAX
    finally:
        busy.value = 0
        left.value = length.value = 0


# ---- numpy's own loops on the pool --------------------------------------------------------

@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", gates.NUMPY_LOOPS)
def test_numpy_loops_past_the_window_are_numpy_bit_for_bit(name, dtype):
    hi = gates.THRESHOLDS[name][dtype][1]
    if hi is None:
        pytest.skip("mathlib's kernel at every size")
    prim = PRIMITIVES[name]
    rng = np.random.default_rng(5)
    for n in (hi, hi + 1037, max(hi, 3 * kernels.thread_min(name)) + 5):
        x = rng.uniform(0.01 if name in ("log", "log1p") else -8, 8, n).astype(dtype)
        x[:4] = [np.inf, -np.inf, np.nan, -0.0]
        got = prim.native(x)
        assert got is not NotImplemented and got.dtype == dtype
        want = prim.impl(x)
        np.testing.assert_array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))
        assert prim.native(x[::2]) is NotImplemented  # strided: the impl


def test_numpy_loop_slices_equal_one_call():
    from tracegrad.codegen import eager_uloop
    x = np.random.default_rng(6).uniform(-4, 4, 9 * kernels.CHUNK_ALIGN + 7).astype(F32)
    spec = kernels.Spec("numpy_tanh", F32, "a")
    for t in (1, 2, 3):
        np.testing.assert_array_equal(kernels.elementwise(spec, [x], x.shape, t), np.tanh(x))
    assert eager_uloop.loop_of(np.tanh, F32) is not None
    assert eager_uloop.loop_of(np.add, F32) is None  # not unary
    assert eager_uloop.loop_of(np.tanh, np.dtype(np.int8)) is None  # no int8 -> int8 loop


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", sorted(gates.FUSED_TIE_VJPS))
def test_fused_max_min_vjps_are_the_rule_bit_for_bit(name, dtype):
    """max's and min's fused cotangents (ties split, NaN and signed zeros included), for
    array and scalar other sides, array and broadcast g, either side or both needed; a
    scalar side's cotangent (a reduction) still comes from the rule."""
    rng = np.random.default_rng(8)
    n = 70_001
    x, y, g = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    x[:6], y[:6] = [np.nan, 0.0, -0.0, 1.0, np.inf, 2.0], [1.0, 0.0, 0.0, np.nan, np.inf, 2.0]
    prim = PRIMITIVES[name]
    assert prim.vjp.unfused is not None
    for other in (y, np.asarray(0.0, dtype), 0.0):
        out = prim.impl(x, other)
        for cot in (g, np.broadcast_to(np.asarray(-1.5, dtype), x.shape)):
            for needed in ((True, True), (True, False), (False, True)):
                got = prim.vjp(cot, out, x, other, needed=needed)
                want = prim.vjp.unfused(cot, out, x, other, needed=needed)
                for a, b in zip(got, want):
                    assert (a is None) == (b is None)
                    if a is not None:
                        a, b = np.asarray(a), np.asarray(b)
                        assert a.dtype == b.dtype and a.shape == b.shape
                        np.testing.assert_array_equal(a, b)
                        assert np.array_equal(np.signbit(a), np.signbit(b))
