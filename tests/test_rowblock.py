"""Row-block fusion (passes/rowblock.py): runs of row kernels become one loop over row blocks."""
import numpy as np
import pytest

import tracegrad
from tracegrad.passes import rowblock as rb
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import LoopKernel, LoopStep


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One thread (tests/test_rowblock_parallel.py runs row blocks on two)."""
    monkeypatch.setenv("TRACEGRAD_NUM_THREADS", "1")


def layer_norm_loss(x, g, b):
    d = x - np.mean(x, axis=1, keepdims=True)
    y = d / np.sqrt(np.mean(d * d, axis=1, keepdims=True) + 1e-5) * g + b
    return np.sum(np.tanh(y) * y)


def layer_norm_grads(x, g, b):
    d = x - np.mean(x, axis=1, keepdims=True)
    r = 1 / np.sqrt(np.mean(d * d, axis=1, keepdims=True) + 1e-5)
    n = d * r
    y = n * g + b
    t = np.tanh(y)
    gy = t + y * (1 - t * t)
    gn = gy * g
    gx = r * (gn - gn.mean(axis=1, keepdims=True) - n * (gn * n).mean(axis=1, keepdims=True))
    return np.sum(t * y), (gx, np.sum(gy * n, axis=0), np.sum(gy, axis=0))


def inputs(rows, cols, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, cols)).astype(dtype),
            (1 + 0.1 * rng.standard_normal(cols)).astype(dtype),
            (0.1 * rng.standard_normal(cols)).astype(dtype))


def compiled(fn, args, argnums=(0, 1, 2)):
    f = tracegrad.compile_grad(fn, argnums=argnums, disk_cache=False)
    return f, f(*args)


def program(f):
    return f._spec().native.kernel_program()


def steps(kp):
    return [k for k in kp.kernels if isinstance(k, LoopStep)]


def test_layer_norm_runs_as_one_loop_over_row_blocks():
    args = inputs(512, 256)
    f, (value, grads) = compiled(layer_norm_loss, args)
    kp = program(f)
    step, = steps(kp)
    assert step.length > 1 and 512 % step.length == 0
    # the input is read as row slices; temps of the run are one block long
    assert args[0].shape == tuple(step.xs[0].shape)
    block = 512 // step.length
    assert all(t.size <= block * 256 for t in step.body.temps)
    # every big temp of the unblocked program is gone from the outer program
    assert all(t.size < 512 * 256 for t in kp.temps)
    ref_value, ref_grads = layer_norm_grads(*args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_blocked_program_matches_unblocked_in_the_interpreter(monkeypatch):
    args = inputs(256, 512, seed=1)
    f_on, _ = compiled(layer_norm_loss, args)
    monkeypatch.setattr(rb, "BLOCK_BYTES", 1 << 60)
    f_off, _ = compiled(layer_norm_loss, args)
    on, off = program(f_on), program(f_off)
    assert steps(on) and not steps(off)
    for a, b in zip(run_program(on, *args), run_program(off, *args)):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


def test_prime_row_count_uses_blocks_of_one_row():
    args = inputs(521, 300, seed=2)
    f, (value, grads) = compiled(layer_norm_loss, args)
    step, = steps(program(f))
    assert step.length == 521
    ref_value, ref_grads = layer_norm_grads(*args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def column_extremes(x):
    centered = x - np.max(x, axis=1, keepdims=True)
    soft = np.exp(centered) / np.sum(np.exp(centered), axis=1, keepdims=True)
    return np.sum(np.max(soft, axis=0)) + np.sum(np.min(centered, axis=0))


def test_max_and_min_over_rows_become_carries():
    x = inputs(1024, 128, seed=3)[0]
    f = tracegrad.jit(column_extremes, disk_cache=False)
    got = f(x)
    assert steps(program(f))
    np.testing.assert_allclose(got, column_extremes(x), rtol=1e-12)


def test_a_total_read_back_by_every_row_is_not_blocked():
    # x - sum(x) needs the whole sum before any row: no run may hold both kernels
    def f(x):
        return np.sum(np.sin(x - np.sum(x)))
    x = inputs(512, 256, seed=4)[0]
    jf = tracegrad.jit(f, disk_cache=False)
    np.testing.assert_allclose(jf(x), f(x), rtol=1e-9)
    for step in steps(program(jf)):
        loads = {id(ins.buffer) for k in step.body.kernels if isinstance(k, LoopKernel)
                 for ins in k.body if hasattr(ins, "index")}
        assert all(id(c) not in loads for c in step.body.outputs[:len(step.carries)])


def test_shifted_rows_are_not_row_wise():
    def f(x):
        return np.sum((x[1:] - x[:-1]) ** 2 * np.cos(x[1:]))
    x = inputs(1024, 256, seed=5)[0]
    jf = tracegrad.compile_grad(f, disk_cache=False)
    value, grad = jf(x)
    np.testing.assert_allclose(value, f(x), rtol=1e-12)
    assert not steps(program(jf))


def test_programs_on_two_threads_are_blocked_too(monkeypatch):
    # the step's ranges of blocks run on the threads (tests/test_rowblock_parallel.py)
    monkeypatch.setenv("TRACEGRAD_NUM_THREADS", "2")
    args = inputs(512, 256)
    f, (value, grads) = compiled(layer_norm_loss, args)
    step, = steps(program(f))
    assert step.groups == min(rb.GROUPS, step.length)
    ref_value, ref_grads = layer_norm_grads(*args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_small_programs_are_left_alone():
    args = inputs(8, 16)
    f, _ = compiled(layer_norm_loss, args)
    assert not steps(program(f))


@pytest.mark.parametrize("rows,cols", [(300, 1000), (4096, 64)])
def test_shapes_compile_and_match(rows, cols):
    args = inputs(rows, cols, seed=rows)
    _, (value, grads) = compiled(layer_norm_loss, args)
    ref_value, ref_grads = layer_norm_grads(*args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-11)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)
