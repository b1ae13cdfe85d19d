"""First-call (compile) cost: stage times from trace to first run, units of one level
linked into one module, the light pipeline for vector-form kernels, an unoptimized
straight entry, and modules compiled on threads (codegen/llvm_jobs.py) giving the same
code as one thread."""
import re
import threading

import numpy as np
import pytest

import tracegrad
from tracegrad.codegen import compile_program, compiler, fingerprint, llvm_jobs, llvm_util, lower_program, simd, units
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import Buffer, IndexMap, KernelProgram, Load, LoopKernel, Op, Store

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)


def _chain_program(n=64, prims=("tanh", "exp", "sin")):
    """x -> one kernel per primitive, each through a temp; distinct kernels (distinct units)."""
    x = Buffer("x", (n,), F64, "input", index=0)
    out = Buffer("out", (n,), F64, "output", index=0)
    bufs = [x] + [Buffer(f"t{i}", (n,), F64, "temp") for i in range(len(prims) - 1)] + [out]
    idx = IndexMap(0, (1,))
    kernels = [LoopKernel(f"k{i}", (n,), [Load(bufs[i], idx, F64), Op(p, (0,), {}, F64)],
                          [Store(bufs[i + 1], 1, idx)]) for i, p in enumerate(prims)]
    return KernelProgram([x], [out], [], bufs[1:-1], kernels)


def _transcendental_heavy(x):
    return np.sum(np.tanh(x) * np.exp(-x * x / 2) + np.log(1 + np.exp(x)))


# ---- stage times -----------------------------------------------------------------------------

def test_cache_info_reports_every_stage_of_the_first_call():
    f = tracegrad.compile_grad(lambda x: np.sum(np.sin(x) * x), disk_cache=False)
    f(np.linspace(0, 1, 33))
    [info] = f.cache_info()
    stages = info["stage_seconds"]
    for stage in ("trace", "reroll", "gradient", "cleanup", "plan", "lower", "emit", "optimize", "object",
                  "entry", "link", "first_run"):
        assert stages[stage] >= 0, stage
    assert list(stages)[:4] == ["trace", "reroll", "gradient", "cleanup"] and list(stages)[-1] == "first_run"
    assert info["compile_seconds"] >= stages["trace"] + stages["first_run"]


def test_jit_stages_have_no_gradient():
    f = tracegrad.jit(lambda x: x * 2.0, disk_cache=False)
    f(np.ones(3))
    stages = f.cache_info()[0]["stage_seconds"]
    assert "trace" in stages and "gradient" not in stages


# ---- levels and pipelines ------------------------------------------------------------------------

def test_vector_form_kernels_take_the_light_pipeline_and_agree_with_numpy():
    x = np.linspace(-3, 3, 1000).astype(np.float32)
    f = tracegrad.compile_grad(_transcendental_heavy, argnums=0, disk_cache=False)
    value, grad = f(x)
    kp = f._last.native.kernel_program()
    levels = {u.opt_level() for u in lower_program(kp, environment=fingerprint.kernel_environment()).units}
    assert llvm_util.LIGHT in levels
    ref = tracegrad.value_and_grad(_transcendental_heavy, argnums=0)(x.astype(np.float64))
    np.testing.assert_allclose(value, ref[0], rtol=1e-5)
    np.testing.assert_allclose(grad, ref[1], rtol=1e-5, atol=1e-6)


def test_light_pipeline_promotes_the_accumulator_and_keeps_vector_code():
    text = '''
define void @k(ptr noalias %x, ptr noalias %out) {
entry:
  %acc = alloca <4 x double>
  store <4 x double> zeroinitializer, ptr %acc
  %v = load <4 x double>, ptr %x
  %a = load <4 x double>, ptr %acc
  %s = fadd <4 x double> %a, %v
  store <4 x double> %s, ptr %acc
  %r = load <4 x double>, ptr %acc
  store <4 x double> %r, ptr %out
  ret void
}'''
    ref = llvm_util.optimize(llvm_util.parse(text), llvm_util.LIGHT)
    optimized = str(ref)
    assert "alloca" not in optimized and "<4 x double>" in optimized


def _row_kernel(invariant: bool, extra: int, cols: int = 64):
    """out[i] += f(x[i, j], v[i]) over (8, cols) f32 with `extra` tanh ops (explicit vector
    form from 9 on); with `invariant`, sqrt(v[i]) is an op that does not vary along j."""
    x = Buffer("x", (8, cols), F32, "input", index=0)
    v = Buffer("v", (8,), F32, "input", index=1)
    out = Buffer("out", (8,), F32, "output", index=0)
    body = [Load(x, IndexMap(0, (cols, 1)), F32), Load(v, IndexMap(0, (1, 0)), F32)]
    body.append(Op("sqrt", (1,), {}, F32) if invariant else Op("mul", (0, 1), {}, F32))
    body.append(Op("mul", (0, 2), {}, F32))
    for _ in range(extra):
        body.append(Op("tanh", (len(body) - 1,), {}, F32))
    kernel = LoopKernel("k", (8, cols), body, [Store(out, len(body) - 1, IndexMap(0, (1, 0)), "sum")])
    return kernel, KernelProgram([x, v], [out], [], [], [kernel])


@pytest.mark.parametrize("cols", [64, 2048])
@pytest.mark.parametrize("invariant", [False, True])
def test_vector_form_with_loop_invariant_work_keeps_the_full_pipeline(invariant, cols):
    """A row of 2048 stays a loop, whose invariant work needs O2's LICM; a row of 64 is
    written out (unrolled.py) and its first step computes that work once."""
    kernel, kp = _row_kernel(invariant, extra=9, cols=cols)
    assert units.invariant_work(kernel) == invariant
    [unit] = lower_program(kp, environment="").units
    loop = -(-cols // (llvm_util.vector_bits() // 32)) > simd.row_vectors()
    assert unit.opt_level() == (units.SCALAR_LEVEL if invariant and loop else llvm_util.LIGHT)
    if invariant and not loop:
        assert str(unit.build_module()).count("llvm.sqrt") - 1 == 1  # once per row (+ declare)
    rng = np.random.default_rng(0)
    x, v = rng.normal(size=(8, cols)).astype(np.float32), rng.uniform(0.5, 2, 8).astype(np.float32)
    got = compile_program(kp, disk_cache=False)(x, v)[0]
    np.testing.assert_allclose(got, run_program(kp, x, v)[0], rtol=1e-4, atol=1e-5)


def test_scalar_units_run_the_scalar_level():
    lowered = lower_program(_chain_program(n=200, prims=("neg", "abs")), environment="")
    assert {u.opt_level() for u in lowered.units} == {units.SCALAR_LEVEL}


def test_tiny_cheap_units_run_the_light_pipeline():
    """A few simple ops over a hundred elements: vectorizing saves nanoseconds a call and
    costs milliseconds of compile time; a transcendental keeps the vectorizer."""
    lowered = lower_program(_chain_program(n=100, prims=("neg", "abs")), environment="")
    assert {u.opt_level() for u in lowered.units} == {llvm_util.LIGHT}
    lowered = lower_program(_chain_program(n=100, prims=("tanh",)), environment="")
    assert {u.opt_level() for u in lowered.units} != {llvm_util.LIGHT}


def _sum_program(shape, axis, dtype=F64):
    """out = sum(x * x, axis) over x of `shape` (a 2-D x; axis 1: row sums, 0: column sums)."""
    x = Buffer("x", shape, dtype, "input", index=0)
    n_out = shape[1 - axis]
    out = Buffer("out", (n_out,), dtype, "output", index=0)
    strides = (1, 0) if axis == 1 else (0, 1)
    body = [Load(x, IndexMap(0, (shape[1], 1)), dtype), Op("mul", (0, 0), {}, dtype)]
    kernel = LoopKernel("k", shape, body, [Store(out, 1, IndexMap(0, strides), "sum")])
    return KernelProgram([x], [out], [], [], [kernel])


@pytest.mark.parametrize("shape,axis", [((3, 5000), 1), ((300, 700), 0), ((1, 100_003), 1)])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_long_sums_take_the_vector_form_and_agree_with_numpy(shape, axis, dtype):
    """A sum kernel whose innermost dim is long runs as an explicit vector loop through the
    light pipeline (simd.long_sum), rows and columns alike, odd lengths included."""
    kp = _sum_program(shape, axis, dtype)
    [unit] = lower_program(kp, environment="").units
    assert unit.opt_level() == llvm_util.LIGHT
    x = np.random.default_rng(1).normal(size=shape).astype(dtype)
    got = compile_program(kp, disk_cache=False)(x)[0]
    ref = np.sum(x.astype(np.float64) ** 2, axis=axis)
    np.testing.assert_allclose(got, ref, rtol=1e-12 if dtype == F64 else 1e-6)


def test_short_row_sums_keep_the_scalar_level():
    [unit] = lower_program(_sum_program((250, 100), 1), environment="").units
    assert unit.opt_level() == units.SCALAR_LEVEL


def _rows_program(cols, prims, dtype=F64, step=1):
    """One kernel over (4, cols): out = `prims` applied in turn to x[:, ::step] + r (r per
    row, so the domain stays two-dimensional)."""
    x = Buffer("x", (4, cols * step), dtype, "input", index=0)
    r = Buffer("r", (4,), dtype, "input", index=1)
    out = Buffer("out", (4, cols), dtype, "output", index=0)
    idx = IndexMap(0, (cols, 1))
    body = [Load(x, IndexMap(0, (cols * step, step)), dtype), Load(r, IndexMap(0, (1, 0)), dtype),
            Op("add", (0, 1), {}, dtype)]
    for p in prims:
        body.append(Op(p, (len(body) - 1,), {}, dtype))
    kernel = LoopKernel("k", (4, cols), body, [Store(out, len(body) - 1, idx)])
    return kernel, KernelProgram([x, r], [out], [], [], [kernel])


@pytest.mark.parametrize("cols, prims, step, level", [
    (100, ("neg",), 1, units.SCALAR_LEVEL),  # short rows keep unrolling
    (1024, ("neg",), 1, llvm_util.ROLLED),  # long rows: unrolled code for nothing
    (100, ("tanh", "exp"), 1, llvm_util.LIGHT),  # a costly body takes the vector form
    (100, ("tanh", "exp"), 2, llvm_util.FLAT),  # ... or, strided, fills the core un-interleaved
])
def test_levels_follow_the_inner_extent_and_body_cost(cols, prims, step, level):
    kernel, kp = _rows_program(cols, prims, step=step)
    [unit] = lower_program(kp, environment="").units
    assert unit.opt_level() == level
    x, r = np.random.default_rng(1).normal(size=(4, cols * step)), np.arange(4.0)
    np.testing.assert_allclose(compile_program(kp, disk_cache=False)(x, r)[0], run_program(kp, x, r)[0],
                               rtol=1e-13)


@pytest.mark.parametrize("variant", [llvm_util.ROLLED, llvm_util.FLAT])
def test_o2_variants_emit_less_code_than_o2(variant):
    """The variants' options reach LLVM: O2 unrolls a float32 row of 1024 (16 steps of 64
    elements) fully, the variants do not."""
    kernel, kp = _rows_program(1024, ("neg",), F32)
    [unit] = lower_program(kp, environment="").units
    text = str(unit.build_module())

    def lines(level):
        return len(str(llvm_util.optimize(llvm_util.parse(text), level)).splitlines())

    assert lines(variant) * 2 < lines(units.SCALAR_LEVEL)


def test_a_straight_entry_is_not_optimized_and_a_loop_entry_is():
    kp = _chain_program()
    lowered = lower_program(kp, environment="")
    assert compiler._straight(kp)
    assert compiler._entry_job(lowered, True).level == 0
    assert compiler._entry_job(lowered, False).level == 2 and compiler._entry_job(lowered, False).fast
    looped = tracegrad.jit(lambda xs: tracegrad.fori_loop(0, 5, lambda i, c: c * 0.5 + xs, xs),
                           disk_cache=False)
    xs = np.linspace(0, 1, 7)
    np.testing.assert_allclose(looped(xs), xs * (2 - 0.5 ** 5), rtol=1e-13)
    assert not compiler._straight(looped._last.native.kernel_program())


# ---- merged units ----------------------------------------------------------------------------------

def _defined_kernels(text):
    return set(re.findall(r'^define [^@]*@"?(tg_kern_[0-9a-f]+)', text, re.M))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_without_a_disk_cache_units_of_one_level_share_a_module(n_threads):
    kp = _chain_program()
    cp = compile_program(kp, disk_cache=False, n_threads=n_threads)
    x = np.linspace(-1, 1, 64)
    np.testing.assert_allclose(cp(x)[0], run_program(kp, x)[0], rtol=1e-14)
    assert cp.kernel_stats["compiled"] == cp.kernel_stats["distinct"] == 3
    modules = cp.llvm_ir().split("; ---- tracegrad module ----")
    assert len(modules) - 1 <= n_threads  # the entry, then at most one module per worker
    symbols = {u.symbol for u in lower_program(kp, environment=fingerprint.kernel_environment()).units}
    assert _defined_kernels(cp.llvm_ir()) == symbols


def test_with_a_disk_cache_each_unit_is_stored_and_loaded_on_its_own(tmp_path):
    kp = _chain_program()
    first = compile_program(kp, disk_cache=str(tmp_path), n_threads=2)
    assert first.kernel_stats["compiled"] == 3
    other = _chain_program(prims=("tanh", "exp", "cos"))  # shares two units with `kp`
    second = compile_program(other, disk_cache=str(tmp_path), n_threads=2)
    assert second.kernel_stats["loaded"] == 2 and second.kernel_stats["compiled"] == 1
    x = np.linspace(-1, 1, 64)
    np.testing.assert_allclose(second(x)[0], run_program(other, x)[0], rtol=1e-14)


def test_shares_balance_the_text_lengths():
    texts = ["a" * n for n in (10, 9, 5, 4, 3, 1)]
    groups = compiler._shares(texts, 2)
    sums = [sum(map(len, g)) for g in groups]
    assert len(groups) == 2 and sum(sums) == 32 and max(sums) - min(sums) <= 2
    assert compiler._shares(["x"], 4) == [["x"]]


# ---- threads ----------------------------------------------------------------------------------------

def _unit_texts(kp):
    lowered = lower_program(kp, environment="")
    return [(str(m), level) for m, level in (u.build() for u in lowered.units)]


def test_threads_make_the_same_object_code_as_one_thread():
    jobs = [llvm_jobs.Job([text], level) for text, level in _unit_texts(_chain_program(n=1000))]
    jobs.append(llvm_jobs.Job([jobs[0].texts[0]], 0, fast=True))
    serial = llvm_jobs.run_jobs(jobs, 1)
    for _ in range(3):
        parallel = llvm_jobs.run_jobs(jobs, 2)
        assert [d.obj for d in parallel] == [d.obj for d in serial]
        assert [d.ir_text for d in parallel] == [d.ir_text for d in serial]


def test_threads_link_several_texts_into_one_module():
    texts = [t for t, _ in _unit_texts(_chain_program())]
    [done] = llvm_jobs.run_jobs([llvm_jobs.Job(texts, 2)], 1)
    pair = llvm_jobs.run_jobs([llvm_jobs.Job(texts[:2], 2), llvm_jobs.Job(texts[2:], 2)], 2)
    assert len(_defined_kernels(done.ir_text)) == 3
    assert _defined_kernels(done.ir_text) == _defined_kernels(pair[0].ir_text + pair[1].ir_text)


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_ir_on_a_thread_is_a_python_error(workers):
    good = _unit_texts(_chain_program())[0][0]
    jobs = [llvm_jobs.Job([good], 2), llvm_jobs.Job(["define void @f() {\n  ret i32 0\n}"], 2)]
    with pytest.raises(RuntimeError, match="(?i)error|ret"):
        llvm_jobs.run_jobs(jobs, workers)
    assert llvm_jobs.run_jobs(jobs[:1], workers)[0].obj  # the slots still work


def _scaled_loss(scale):
    return lambda v: np.sum(np.tanh(v * scale) + np.exp(-v * v))


def test_many_programs_compile_on_threads_one_after_another():
    for i, n in enumerate((5, 17, 64, 255)):
        x = np.linspace(-1, 1, n)
        value, grad = tracegrad.compile_grad(_scaled_loss(i + 1.0), argnums=0, disk_cache=False)(x)
        ref = tracegrad.value_and_grad(_scaled_loss(i + 1.0), argnums=0)(x)
        np.testing.assert_allclose(value, ref[0], rtol=1e-12)
        np.testing.assert_allclose(grad, ref[1], rtol=1e-11, atol=1e-14)


def test_compiles_leave_the_garbage_collector_as_they_found_it():
    """A compile freezes the heap it found (gc.freeze) and unfreezes it after; an
    application's own freeze is left alone."""
    import gc
    from tracegrad.compile import collector_paused
    seen = []
    with collector_paused():
        seen.append(gc.get_freeze_count() > 0 or len(gc.get_objects(generation=2)) == 0)
    assert seen == [True] and gc.get_freeze_count() == 0
    f = tracegrad.compile_grad(lambda x: np.sum(np.sin(x) * x), disk_cache=False)
    f(np.linspace(0, 1, 33))
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        tracegrad.compile_grad(lambda x: np.sum(np.cos(x) * x), disk_cache=False)(np.ones(5))
        assert gc.get_freeze_count() > frozen // 2  # still frozen (some frozen objects died)
    finally:
        gc.unfreeze()


def test_garbage_made_before_a_compile_is_not_kept_by_it():
    """Young garbage found when a compile starts is collected first, not frozen with the
    heap (frozen, a cycle would wait for a full collection)."""
    import gc
    import weakref

    class Node:
        pass
    refs = []
    for k in range(5):
        a, b = Node(), Node()
        a.b, b.a = b, a
        refs.append(weakref.ref(a))
        del a, b
        tracegrad.jit(lambda z, k=k: np.sin(z) * k + 1, disk_cache=False)(np.ones(4))
    gc.collect(1)
    assert all(r() is None for r in refs)


def test_no_llvm_thread_outlives_run_jobs_however_it_ends(monkeypatch):
    """The caller's own share may end in an exception (a Ctrl-C between jobs): the helpers
    stop after their current job and are joined before LOCK is released."""
    jobs = [llvm_jobs.Job([text], level) for text, level in _unit_texts(_chain_program(n=200))]
    real, calls = llvm_jobs._run_on, []

    def interrupted(c, slot, job):
        calls.append(job)
        if threading.current_thread() is threading.main_thread() and len(calls) > 1:
            raise KeyboardInterrupt("simulated")
        return real(c, slot, job)

    monkeypatch.setattr(llvm_jobs, "_run_on", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with llvm_util.LOCK:
            llvm_jobs.run_jobs(jobs * 4, 2)
    assert not [t for t in threading.enumerate() if t.name == "tracegrad-llvm"]
    assert len(calls) < len(jobs) * 4  # the rest were not started
