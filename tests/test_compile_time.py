"""Compile time linear in program size (issue 9.6): compile units, shared kernels, the
entry in parts, per-kernel disk reuse, the cache looked up before planning, stage times
and progress logging."""
import logging
import random
import re

import numpy as np
import pytest

import tracegrad
from tracegrad.codegen import (llvm_util, compile_graph, compile_program, compiler, fingerprint, lower_program,
                               units)
from tracegrad.codegen.kernel import KernelEmitter
from tracegrad.codegen.lower import PART_CALLS, plan_arena
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import (Buffer, Const, IndexMap, KernelProgram, Load, LoopKernel,
                                      Op, Store)

F64 = np.dtype(np.float64)


@pytest.fixture(autouse=True)
def unrolled(monkeypatch):
    """These tests compile unrolled programs: rerolling would make them one scan."""
    monkeypatch.setenv("TRACEGRAD_REROLL", "0")


def rnn_loss(steps):
    """The Elman RNN of benchmarks/compile_rnn.py, unrolled over `steps` inputs."""
    def loss(W, U, b, xs):
        h = np.zeros(4)
        for t in range(steps):
            h = np.tanh(W @ h + xs[t] @ U + b)
        return np.sum(h)
    return loss


def rnn_inputs(steps, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(4, 4)) * 0.5, rng.normal(size=(3, 4)) * 0.5,
            rng.normal(size=4) * 0.1, rng.normal(size=(steps, 3)))


def compiled_rnn(steps, disk_cache=False):
    f = tracegrad.compile_grad(rnn_loss(steps), disk_cache=disk_cache)
    args = rnn_inputs(steps)
    value, grads = f(*args)
    ref_value, ref_grads = tracegrad.value_and_grad(rnn_loss(steps), argnums=(0, 1, 2, 3))(*args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)
    return f._last.native


def defined_kernels(ir_text):
    return set(re.findall(r'^define [^@]*@"?(tg_kern_[0-9a-f]+)', ir_text, re.M))


# ---- structurally identical kernels are compiled once -----------------------------------

def test_identical_kernels_are_compiled_once():
    short, long = compiled_rnn(8), compiled_rnn(20)
    for cp in (short, long):
        stats = cp.kernel_stats
        assert stats["compiled"] == stats["distinct"] == len(cp.unit_keys)
        assert stats["calls"] > 3 * stats["distinct"]
        assert len(defined_kernels(cp.llvm_ir())) == stats["distinct"]
    assert long.kernel_stats["distinct"] == short.kernel_stats["distinct"], \
        "the distinct kernels of an unrolled loop do not grow with its length"
    assert long.kernel_stats["calls"] > 2 * short.kernel_stats["calls"]


def test_defined_functions_cover_the_distinct_kernels_and_none_is_inlined():
    kp = _many_steps_program(steps=3 * PART_CALLS)
    lowered = lower_program(kp, environment=fingerprint.kernel_environment())
    # the first step reads x twice (one argument), every later one two buffers
    assert lowered.n_calls == 3 * PART_CALLS and len(lowered.units) == 2
    cp = compile_program(kp, disk_cache=False)
    text = cp.llvm_ir()
    assert defined_kernels(text) == {u.symbol for u in lowered.units}
    step = lowered.units[1].symbol
    assert len(re.findall(rf'call void @"?{step}\b', text)) == lowered.n_calls - 1  # kept as calls
    assert re.search(r'^define internal .*@"?tg_part2\b', text, re.M)
    x = np.linspace(-1, 1, 8)
    np.testing.assert_array_equal(cp(x)[0], run_program(kp, x)[0])


def _many_steps_program(steps):
    """x -> steps of `t = t * 0.5 + x` through distinct temps, an unrolled loop of one kernel."""
    x = Buffer("x", (8,), F64, "input", index=0)
    out = Buffer("out", (8,), F64, "output", index=0)
    temps = [Buffer(f"t{i}", (8,), F64, "temp") for i in range(steps - 1)]
    idx = IndexMap(0, (1,))
    kernels, prev = [], x
    for i in range(steps):
        dst = temps[i] if i < steps - 1 else out
        body = [Load(prev, idx, F64), Load(x, idx, F64), Op("mul", (0, Const(0.5, F64)), {}, F64),
                Op("add", (2, 1), {}, F64)]
        kernels.append(LoopKernel(f"k{i}", (8,), body, [Store(dst, 3, idx)]))
        prev = dst
    return KernelProgram([x], [out], [], temps, kernels)


# ---- the canonical form --------------------------------------------------------------------

def _unit_key(kernel):
    canon, args = units.canonical_form(kernel)
    return units.KernelUnit.of(canon, len(args), False, "env").key, args


def _slice_copy(src, offset, dst, value=None):
    body = [Load(src, IndexMap(offset, (1,)), F64)]
    if value is not None:
        body += [Op("mul", (0, Const(value, F64)), {}, F64)]
    return LoopKernel("copy", (3,), body, [Store(dst, len(body) - 1, IndexMap(0, (1,)))])


def test_canonical_form_ignores_buffers_offsets_and_shapes():
    xs = Buffer("xs", (50, 3), F64, "input", index=0)
    other = Buffer("ys", (7, 3), F64, "input", index=1)
    a, b = Buffer("a", (3,), F64, "temp"), Buffer("b", (3,), F64, "temp")
    key0, args0 = _unit_key(_slice_copy(xs, 0, a, 2.0))
    key1, args1 = _unit_key(_slice_copy(xs, 30, b, 2.0))
    key2, _ = _unit_key(_slice_copy(other, 6, a, 2.0))
    assert key0 == key1 == key2
    assert [s for _, s in args0] == [0, 0] and [s for _, s in args1] == [30, 0]


def test_canonical_form_keeps_what_the_code_depends_on():
    xs = Buffer("xs", (50, 3), F64, "input", index=0)
    a = Buffer("a", (3,), F64, "temp")
    keys = {_unit_key(_slice_copy(xs, 0, a, v))[0] for v in (2.0, 0.0, -0.0)}
    assert len(keys) == 3, "constants are keyed by their bytes (-0.0 is not 0.0)"
    f32 = Buffer("a32", (3,), np.dtype(np.float32), "temp")
    assert _unit_key(_slice_copy(xs, 0, f32))[0] != _unit_key(_slice_copy(xs, 0, a))[0]
    same = LoopKernel("k", (3,), [Load(a, IndexMap(0, (1,)), F64)], [Store(a, 0, IndexMap(0, (1,)))])
    two = LoopKernel("k", (3,), [Load(xs, IndexMap(0, (1,)), F64)], [Store(a, 0, IndexMap(0, (1,)))])
    assert _unit_key(same)[0] != _unit_key(two)[0], "one buffer is not two"


def test_shifted_arguments_stay_inside_their_buffers():
    """A pad reads from offset -2: the argument is not moved below the buffer's start."""
    x = Buffer("x", (5,), F64, "input", index=0)
    out = Buffer("out", (9,), F64, "output", index=0)
    body = [Load(x, IndexMap(-2, (1,), ((2, 7, 1),)), F64), Load(x, IndexMap(4, (-1,), ((0, 5, 1),)), F64),
            Op("add", (0, 1), {}, F64)]
    kernel = LoopKernel("pad", (9,), body, [Store(out, 2, IndexMap(0, (1,)))])
    _, args = _unit_key(kernel)
    assert [s for _, s in args] == [0, 0]
    kp = KernelProgram([x], [out], [], [], [kernel])
    xv = np.arange(5.0)
    np.testing.assert_array_equal(compile_program(kp, disk_cache=False)(xv)[0], run_program(kp, xv)[0])


# ---- independent parts, segments, optimization levels ----------------------------------------

def _gather_program(steps):
    """One kernel copying `steps` rows of xs into temps and summing them: the shape fusion
    gives an unrolled loop's `xs[t]`."""
    xs = Buffer("xs", (steps, 3), F64, "input", index=0)
    rows = [Buffer(f"r{t}", (3,), F64, "temp") for t in range(steps)]
    out = Buffer("out", (3,), F64, "output", index=0)
    idx = IndexMap(0, (1,))
    gather = LoopKernel("gather", (3,), [Load(xs, IndexMap(3 * t, (1,)), F64) for t in range(steps)],
                        [Store(r, t, idx) for t, r in enumerate(rows)])
    body = [Load(r, idx, F64) for r in rows]
    body += [Op("add", (0, 1), {}, F64)] + [Op("add", (steps + t - 2, t), {}, F64) for t in range(2, steps)]
    total = LoopKernel("total", (3,), body, [Store(out, len(body) - 1, idx)])
    return KernelProgram([xs], [out], [], rows, [gather, total])


def test_independent_stores_are_split_into_one_shared_unit():
    kp = _gather_program(80)
    parts = units.independent_parts(kp.kernels[0])
    assert len(parts) == 80 and all(len(p.body) == 1 for p in parts)
    assert units.independent_parts(kp.kernels[1]) == [kp.kernels[1]], "one store: whole"
    lowered = lower_program(kp)
    assert lowered.n_calls == 81 and len(lowered.units) == 2
    xs = np.random.default_rng(1).normal(size=(80, 3))
    np.testing.assert_array_equal(compile_program(kp, disk_cache=False)(xs)[0], run_program(kp, xs)[0])


def test_kernels_with_shared_values_or_targets_stay_whole():
    x = Buffer("x", (4,), F64, "input", index=0)
    a, b = Buffer("a", (4,), F64, "temp"), Buffer("b", (4,), F64, "temp")
    idx = IndexMap(0, (1,))
    chain = [Load(x, idx, F64)] + [Op("sin", (k,), {}, F64) for k in range(units.SPLIT_MIN_BODY)]
    shared = LoopKernel("k", (4,), chain, [Store(a, 1, idx), Store(b, len(chain) - 1, idx)])
    assert len(units.independent_parts(shared)) == 1
    loads = [Load(x, idx, F64) for _ in range(units.SPLIT_MIN_BODY)]
    same_target = LoopKernel("k", (4,), loads, [Store(a, 0, idx), Store(a, 1, IndexMap(0, (0,)), "sum")])
    assert len(units.independent_parts(same_target)) == 1
    read_back = LoopKernel("k", (4,), loads + [Load(a, idx, F64)], [Store(a, 0, idx), Store(b, 1, idx)])
    assert len(units.independent_parts(read_back)) == 1


@pytest.mark.parametrize("long_body", [False, True])
@pytest.mark.parametrize("budget", [None, 1000])
def test_many_pad_segments_split_or_keep_run_time_checks(long_body, budget, monkeypatch):
    """The gradient of `xs[t]` over an unrolled loop sums one padded row per step: split
    at every bound, the body is copied once per row; past SEGMENT_BUDGET it is not."""
    from tracegrad.codegen import kernel as kernel_module, simd, threads
    if long_body:
        monkeypatch.setattr(simd, "LONG_BODY", 0)
    else:  # its 39 adds would take the vector form as a costly body
        monkeypatch.setattr(threads, "COSTLY_BODY", 10 ** 9)
    if budget is not None:
        monkeypatch.setattr(kernel_module, "SEGMENT_BUDGET", budget)
    steps = 40
    rows = [Buffer(f"g{t}", (3,), F64, "input", index=t) for t in range(steps)]
    out = Buffer("dxs", (steps, 3), F64, "output", index=0)
    body = [Load(g, IndexMap(-3 * t, (3, 1), ((t, t + 1, 1), (0, 3, 1))), F64) for t, g in enumerate(rows)]
    body += [Op("add", (0, 1), {}, F64)] + [Op("add", (steps + t - 2, t), {}, F64) for t in range(2, steps)]
    kernel = LoopKernel("dxs", (steps, 3), body, [Store(out, len(body) - 1, IndexMap(0, (3, 1)))])
    em = KernelEmitter(None, kernel, "k", math=object())
    assert em.splits(0) == (budget is None)
    assert (em.lanes is not None) == long_body  # unsplit dim 0: checked per row in either body
    kp = KernelProgram(rows, [out], [], [], [kernel])
    gs = [np.full(3, t + 1.0) * (-1) ** t for t in range(steps)]
    np.testing.assert_array_equal(compile_program(kp, disk_cache=False)(*gs)[0], run_program(kp, *gs)[0])


def test_optimization_level_follows_the_kernel_size():
    kp = _gather_program(150)  # a scalar body of 299 instructions (explicit vector loops from 400)
    [total] = [u for u in lower_program(kp).units if len(u.kernel.body) > units.LONG_SCALAR_BODY]
    assert total.opt_level() == 1
    [copy] = [u for u in lower_program(kp).units if len(u.kernel.body) == 1]
    assert copy.opt_level() == llvm_util.LIGHT  # a short body over 3 elements
    wide = LoopKernel("wide", (units.TINY_DOMAIN + 1,), copy.kernel.body, copy.kernel.stores)
    assert units._opt_level(wide, None) == units.SCALAR_LEVEL


# ---- arena planning ------------------------------------------------------------------------

def test_arena_never_overlaps_temps_that_are_alive_together():
    rng = random.Random(3)
    for _ in range(200):
        temps = [Buffer(f"t{i:02d}", (rng.choice([1, 3, 8, 17, 100]),), F64, "temp")
                 for i in range(rng.randint(1, 30))]
        kernels = []
        for k in range(rng.randint(1, 25)):
            bufs = rng.sample(temps, rng.randint(1, min(3, len(temps))))
            body = [Load(b, IndexMap(0, (0,)), F64) for b in bufs[1:]]
            kernels.append(LoopKernel(f"k{k}", (1,), body, [Store(bufs[0], 0, IndexMap(0, (0,)))]))
        kp = KernelProgram([], [], [], temps, kernels)
        offsets, top = plan_arena(kp)
        spans = {}
        for k, kernel in enumerate(kernels):
            for b in kernel.reads() + kernel.writes():
                lo, _ = spans.get(b, (k, k))
                spans[b] = (lo, k)
        placed = [(offsets[b], offsets[b] + b.size * 8, lo, hi) for b, (lo, hi) in spans.items()]
        for i, (o1, e1, l1, h1) in enumerate(placed):
            assert e1 <= top and o1 % 64 == 0
            for o2, e2, l2, h2 in placed[i + 1:]:
                assert not (l1 <= h2 and l2 <= h1 and o1 < e2 and o2 < e1)


# ---- the disk cache: per kernel, and before planning ----------------------------------------

def test_a_longer_loop_reuses_the_kernels_of_a_shorter_one_on_disk(tmp_path):
    short = compiled_rnn(20, disk_cache=str(tmp_path))
    long = compiled_rnn(40, disk_cache=str(tmp_path))
    new = set(long.unit_keys) - set(short.unit_keys)
    assert long.kernel_stats["loaded"] == len(set(long.unit_keys) & set(short.unit_keys)) > 0
    assert long.kernel_stats["compiled"] == len(new) < long.kernel_stats["distinct"]


def _graph_and_planner():
    from tracegrad.passes.fusion import fuse
    from tracegrad.passes.manager import cleanup
    from tracegrad.passes.autodiff import grad_graph
    prog = tracegrad.trace(rnn_loss(6))(*rnn_inputs(6))
    graph = cleanup(grad_graph(prog.graph, argnums=(0, 1, 2, 3), has_value=True))
    calls = []

    def plan(g):
        calls.append(g)
        return fuse(g)
    return graph, plan, calls


def test_the_disk_cache_is_read_before_planning(tmp_path):
    graph, plan, calls = _graph_and_planner()
    first = compile_graph(graph, plan, disk_cache=str(tmp_path))
    assert len(calls) == 1 and not first.from_cache and "plan" in first.stage_seconds
    second = compile_graph(graph, plan, disk_cache=str(tmp_path))
    assert second.from_cache and len(calls) == 1, "a hit does not plan"
    assert "plan" not in second.stage_seconds and "lookup" in second.stage_seconds
    args = rnn_inputs(6)
    for a, b in zip(first(*args), second(*args)):
        np.testing.assert_array_equal(a, b)
    assert str(second.kernel_program()) == str(first.kernel_program()) and len(calls) == 2
    assert not compile_graph(graph, plan, disk_cache=False).from_cache


def test_stage_times_and_progress_logging(monkeypatch, caplog):
    monkeypatch.setenv("TRACEGRAD_LOG", "info")
    monkeypatch.setattr(compiler, "PROGRESS_AFTER", 0.0)
    monkeypatch.setattr(compiler, "PROGRESS_EVERY", 0.0)
    with caplog.at_level(logging.INFO, logger="tracegrad"):
        cp = compiled_rnn(4)
    for stage in ("lower", "optimize", "object", "entry", "link"):
        assert cp.stage_seconds[stage] >= 0
    messages = [r.getMessage() for r in caplog.records if r.name == "tracegrad"]
    assert any("distinct kernels" in m for m in messages)
    assert any(m.startswith("compiled ") for m in messages)
    monkeypatch.delenv("TRACEGRAD_LOG")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tracegrad"):
        compiled_rnn(3)
    assert not [r for r in caplog.records if r.name == "tracegrad"]


def _per_step_reductions(steps):
    def loss(x, a):
        for _ in range(steps):
            x = x * a + 0.001 * np.sin(x)
        return np.sum(x)
    return loss


def test_per_step_reductions_of_an_unrolled_gradient_expand_together(monkeypatch):
    """d/da of an unrolled loop is one reduction per step, each over the whole chain of
    steps: planned apart, that is quadratic in the steps; as partners, one expansion."""
    from tracegrad.passes.fusion import planning, tasks

    expansions, expand = [], tasks._expand
    monkeypatch.setattr(tasks, "_expand", lambda plan, t: expansions.append(t) or expand(plan, t))
    args = (np.random.default_rng(0).normal(size=4000), np.array(0.999))
    value, grads = tracegrad.compile_grad(_per_step_reductions(60), disk_cache=False)(*args)
    together = len(expansions)
    # the same plan without partners: every reduction expanded on its own
    monkeypatch.setattr(planning, "combine", lambda plan, ts: (ts, {}))
    expansions.clear()
    value_apart, grads_apart = tracegrad.compile_grad(_per_step_reductions(60),
                                                      disk_cache=False)(*args)
    assert together + 50 < len(expansions)
    assert value == value_apart
    for g, h in zip(grads, grads_apart):
        np.testing.assert_array_equal(g, h)
    ref_value, ref_grads = tracegrad.value_and_grad(_per_step_reductions(60), argnums=(0, 1))(*args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for g, h in zip(grads, ref_grads):
        np.testing.assert_allclose(g, h, rtol=1e-10)


def test_one_round_stores_every_strided_pad_a_task_meets(monkeypatch):
    """The gradient of K strided slices adds K strided pads (scatters), each a value
    that must be stored.  A task's expansion goes on past the first such value, so one
    round finds all K: planning is a few rounds, not K (quadratic in K)."""
    from tracegrad.passes.fusion import planning

    rounds, plan_round = [], planning._round
    monkeypatch.setattr(planning, "_round", lambda *a, **k: rounds.append(1) or plan_round(*a, **k))
    K = 40

    def loss(x):
        return sum(np.sum(np.sin(x[i::K])) for i in range(K))

    x = np.random.default_rng(1).normal(size=4003)
    value, (grad,) = tracegrad.compile_grad(loss, disk_cache=False)(x)
    assert len(rounds) <= 4
    np.testing.assert_allclose(value, loss(x), rtol=1e-12)
    np.testing.assert_allclose(grad, np.cos(x), rtol=1e-12)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_reductions_recomputing_one_temp_replay_its_expansion(monkeypatch, mode):
    """d/dv of np.convolve(x, v) is one reduction per tap, each joining the kernel that
    computes the convolution and recomputing it there.  Each replays one kept expansion
    of the convolution instead of expanding it again: planning is linear in the taps
    (it was quadratic: 73k expansion steps at 64 taps where 16 took 5k)."""
    from tracegrad.passes.fusion import expand

    steps, step = [], expand.Expander._step
    monkeypatch.setattr(expand.Expander, "_step", lambda self, key: steps.append(1) or step(self, key))
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)

    def loss(x, v):
        return np.sum(np.convolve(x, v, mode) ** 2)

    counts = []
    for taps in (16, 64):
        steps.clear()
        v = rng.normal(size=taps)
        value, (gx, gv) = tracegrad.compile_grad(loss, argnums=(0, 1), disk_cache=False)(x, v)
        counts.append(len(steps))
        y = 2 * np.convolve(x, v, mode)  # dL/dy, put back at its place in the full output
        full = np.zeros(len(x) + taps - 1)
        start = {"full": 0, "same": (taps - 1) // 2, "valid": taps - 1}[mode]
        full[start:start + len(y)] = y
        ref_gx, ref_gv = np.correlate(full, v, "valid"), np.correlate(full, x, "valid")
        np.testing.assert_allclose(value, loss(x, v), rtol=1e-12)
        np.testing.assert_allclose(gx, ref_gx, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(gv, ref_gv, rtol=1e-10, atol=1e-10)
    assert counts[1] < 6 * counts[0]


@pytest.mark.parametrize("n,taps,mode", [(300, 100, "full"), (300, 257, "same"), (90, 200, "valid")])
def test_a_long_filter_is_one_correlate_kernel_with_correlations_as_derivatives(n, taps, mode):
    """Past SHIFTED_TAPS a convolution is the `correlate` extern primitive, and so are its
    derivatives: no temp holds the (taps, n) windows (a 513-tap filter over 100k values
    made 412 MB of them and took 176 ms a call)."""
    rng = np.random.default_rng(3)
    x, v = rng.normal(size=n), rng.normal(size=taps)

    def loss(x, v):
        return np.sum(np.convolve(x, v, mode) ** 2)

    f = tracegrad.compile_grad(loss, argnums=(0, 1), disk_cache=False)
    value, (gx, gv) = f(x, v)
    kp = f._last.native.kernel_program()
    assert sum(1 for k in kp.kernels if getattr(k, "prim", None) == "correlate") == 3
    assert max(t.size for t in kp.temps) <= n + 3 * taps  # (the windows: n * taps)
    y = 2 * np.convolve(x, v, mode)
    full = np.zeros(n + taps - 1)
    b = min(n, taps)
    start = {"full": 0, "same": (b - 1) // 2, "valid": b - 1}[mode]
    full[start:start + len(y)] = y
    np.testing.assert_allclose(value, loss(x, v), rtol=1e-12)
    np.testing.assert_allclose(gx, np.correlate(full, v, "valid"), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gv, np.correlate(full, x, "valid"), rtol=1e-9, atol=1e-9)
