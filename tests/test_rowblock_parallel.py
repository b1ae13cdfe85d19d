"""Row-block steps over ranges of blocks (LoopStep.groups): threads, merge order, determinism."""
import numpy as np
import pytest

import tracegrad
from tracegrad.codegen import rowsteps
from tracegrad.codegen.compiler import compile_program
from tracegrad.passes import rowblock as rb
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import LoopStep

from test_rowblock import column_extremes

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def layer_norm_gelu(x, g, b):
    d = x - np.mean(x, axis=1, keepdims=True)
    y = d / np.sqrt(np.mean(d * d, axis=1, keepdims=True) + 1e-5) * g + b
    h = 0.5 * y * (1 + np.tanh(0.7978845608028654 * (y + 0.044715 * y * y * y)))
    return np.sum(h * h) / x.shape[0]


def inputs(rows, cols, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, cols)).astype(dtype),
            (1 + 0.1 * rng.standard_normal(cols)).astype(dtype),
            (0.1 * rng.standard_normal(cols)).astype(dtype))


def compiled(monkeypatch, fn, args, threads, argnums=(0, 1, 2)):
    monkeypatch.setenv("TRACEGRAD_NUM_THREADS", str(threads))
    f = tracegrad.compile_grad(fn, argnums=argnums, disk_cache=False)
    return f, f(*args)


def program(f):
    return f._spec().native.kernel_program()


def the_step(kp) -> LoopStep:
    step, = [k for k in kp.kernels if isinstance(k, LoopStep)]
    return step


def flat(result):
    value, grads = result
    return [np.asarray(value)] + [np.asarray(g) for g in grads]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1024, 1001])
def test_one_and_two_threads_give_identical_bits(monkeypatch, rows, dtype):
    # the gradients of g and b are column sums over every row: carries of the step
    args = inputs(rows, 384, dtype, seed=rows)
    f1, one = compiled(monkeypatch, layer_norm_gelu, args, 1)
    f2, two = compiled(monkeypatch, layer_norm_gelu, args, 2)
    step = the_step(program(f2))
    assert step.groups == min(rb.GROUPS, step.length) and len(step.carries) >= 2
    for a, b in zip(flat(one), flat(two)):
        np.testing.assert_array_equal(a, b)
    # ... and both are the interpreter's result on the same (grouped) program, and the
    # float64 reference's
    ref = run_program(program(f2), *args)
    with np.errstate(all="ignore"):
        f64 = tracegrad.compile_grad(layer_norm_gelu, argnums=(0, 1, 2), disk_cache=False)
        want = flat(f64(*(a.astype(np.float64) for a in args)))
    for got, r, w in zip(flat(two), ref, want):
        np.testing.assert_allclose(got, r, **TOL[dtype])
        np.testing.assert_allclose(got, w, **TOL[dtype])


def test_two_threads_run_the_ranges_on_the_pool(monkeypatch):
    args = inputs(1024, 512, np.float64)
    f, _ = compiled(monkeypatch, layer_norm_gelu, args, 2)
    assert rowsteps.share_count(_Scope(2), the_step(program(f))) == 2
    assert "tg_pool_run" in f.llvm_ir()
    f1, _ = compiled(monkeypatch, layer_norm_gelu, args, 1)
    assert rowsteps.share_count(_Scope(1), the_step(program(f1))) == 1


class _Scope:
    def __init__(self, threads):
        self.step_threads = threads


def test_ranges_are_folded_in_order_in_the_interpreter(monkeypatch):
    # groups change only the order of the sums: the grouped program matches the
    # sequential one to rounding, for any group count
    args = inputs(640, 256, np.float64, seed=5)
    f, _ = compiled(monkeypatch, layer_norm_gelu, args, 1)
    kp = program(f)
    step = the_step(kp)
    results = []
    for groups in (None, 1, 3, step.groups):
        step.groups = groups
        results.append(run_program(kp, *args))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("groups", [1, 2, 3, 5])
def test_any_group_count_compiles_to_the_interpreters_result(monkeypatch, groups):
    args = inputs(515, 300, np.float64, seed=groups)  # 515 = 5 * 103 rows
    f, _ = compiled(monkeypatch, layer_norm_gelu, args, 1)
    kp = program(f)
    the_step(kp).groups = groups
    want = run_program(kp, *args)
    for threads in (1, 2):
        got = compile_program(kp, disk_cache=False, n_threads=threads)(*args)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_and_min_carries_on_two_threads(monkeypatch, dtype):
    x = inputs(2047, 160, dtype, seed=7)[0]
    monkeypatch.setenv("TRACEGRAD_NUM_THREADS", "2")
    f = tracegrad.jit(column_extremes, disk_cache=False)
    got = f(x)
    assert the_step(program(f)).groups > 1
    np.testing.assert_allclose(got, column_extremes(x.astype(np.float64)), **TOL[dtype])


def test_rows_without_carries_run_on_two_threads(monkeypatch):
    # only row outputs (ys): each range writes its own rows
    def normalize(x):
        d = x - np.mean(x, axis=1, keepdims=True)
        return np.tanh(d / np.sqrt(np.mean(d * d, axis=1, keepdims=True) + 1e-5))
    x = inputs(999, 400, np.float64, seed=8)[0]
    monkeypatch.setenv("TRACEGRAD_NUM_THREADS", "2")
    f = tracegrad.jit(normalize, disk_cache=False)
    got = f(x)
    step = the_step(program(f))
    assert not step.carries and step.ys
    np.testing.assert_allclose(got, normalize(x), rtol=1e-12, atol=1e-14)
