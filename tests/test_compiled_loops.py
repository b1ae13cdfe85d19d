"""Compiled loops and branches: `jit` and `compile_grad` of scan, fori_loop, while_loop and
cond run as native loops inside the single native call (codegen/loops.py), compared with
eager execution, the kernel interpreter, numpy loops and central differences in float64."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import tracer
from tracegrad.codegen import compile_program, lower_program
from tracegrad.passes.autodiff import grad_graph
from tracegrad.passes.fusion import fuse
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.manager import cleanup

from compiled_loops_cases import (flat_argnums, CASES, F64, branch, case, cond_in_while, grad_argnums, rnn,
                                  rnn_args)

NAMES = [c[0] for c in CASES]


def _flat(args):
    return [np.asarray(a) for a in tracer.tree_leaves(list(args))]


def _close(got, want, rtol=1e-11, atol=1e-13):
    got, want = tracer.tree_leaves(got), tracer.tree_leaves(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", NAMES)
def test_jit_matches_eager_numpy_and_the_kernel_interpreter(name):
    _, fn, make, reference = case(name)
    args = make()
    f = tg.jit(fn, disk_cache=False)
    got = f(*args)
    _close(got, fn(*args))
    if reference is not None:
        _close(got, reference(*args), rtol=1e-10, atol=1e-12)


def _cleaned(fn, args, wrt=None):
    graph = tg.trace(fn)(*args).graph
    if wrt is not None:
        graph = grad_graph(graph, argnums=wrt)
    return cleanup(graph)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("grad", [False, True], ids=["value", "grad"])
def test_native_code_matches_the_kernel_interpreter(name, grad):
    """The compiled kernel program against the oracle running the same program."""
    _, fn, make, _ = case(name)
    args = make()
    flat = _flat(args)
    wrt = flat_argnums(args, grad_argnums(name, args)) if grad else None
    kp = fuse(_cleaned(fn, args, wrt))
    got = compile_program(kp, disk_cache=False)(*flat)
    _close(got, run_program(kp, *flat), rtol=1e-12, atol=1e-14)


def _central(fn, args, i, eps=1e-6):
    """Central differences of scalar fn along every element of the leaves of args[i]."""
    leaves, tree = tracer.tree_flatten(args[i])
    grads = []
    for k, leaf in enumerate(leaves):
        leaf = np.asarray(leaf, np.float64)
        out = np.zeros(leaf.shape)
        for j in np.ndindex(leaf.shape):
            vals = []
            for sign in (1, -1):
                moved = leaf.copy()
                moved[j] += sign * eps
                new = list(leaves)
                new[k] = moved
                shifted = list(args)
                shifted[i] = tracer.tree_unflatten(tree, new)
                vals.append(float(fn(*shifted)))
            out[j] = (vals[0] - vals[1]) / (2 * eps)
        grads.append(out)
    return tracer.tree_unflatten(tree, grads)


@pytest.mark.parametrize("name", NAMES)
def test_compile_grad_matches_eager_and_differences(name):
    _, fn, make, _ = case(name)
    args = make()
    argnums = grad_argnums(name, args)
    value, grads = tg.compile_grad(fn, argnums=argnums, disk_cache=False)(*args)
    eager_value, eager_grads = tg.value_and_grad(fn, argnums=argnums)(*args)
    _close(value, eager_value)
    _close(grads, eager_grads, rtol=1e-10, atol=1e-12)
    for g, i in zip(grads, argnums):
        _close(g, _central(fn, args, i), rtol=1e-6, atol=1e-7)


def test_cond_compiles_both_branches_into_one_specialization():
    f = tg.jit(branch, disk_cache=False)
    x = np.array([0.3, -0.2, 0.7])
    for p in (F64(0.8), F64(-0.8), F64(1.5), F64(-0.1)):
        _close(f(p, x), branch(p, x))
    assert len(f.cache_info()) == 1


def test_a_while_loop_with_a_branch_inside_is_one_specialization():
    f = tg.compile_grad(cond_in_while, disk_cache=False)
    for x in (np.array([0.1, 0.2, 0.3]), np.array([2.0, 1.0, -0.5]), np.zeros(3)):
        value, (g,) = f(x)
        _close(value, cond_in_while(x))
        _close(g, _central(cond_in_while, (x,), 0), rtol=1e-6, atol=1e-7)
    assert len(f.cache_info()) == 1


def test_traced_fori_bounds_are_one_specialization():
    fn = case("fori_traced")[1]
    f = tg.jit(fn, disk_cache=False)
    x = np.array([0.5, -0.25, 1.0])
    for n in (0, 1, 4, 9):
        _close(f(np.int64(n), x), fn(np.int64(n), x))
    assert len(f.cache_info()) == 1


def test_loops_inside_grad_inside_jit():
    def outer(h0, xs, W, U, b):
        g = tg.grad(rnn, argnums=2)(h0, xs, W, U, b)
        return np.sum(g * g)
    args = rnn_args(steps=5)
    got = tg.jit(outer, disk_cache=False)(*args)
    _close(got, outer(*args), rtol=1e-10)


def test_jit_of_nested_scan_and_zero_length_scan():
    for name in ("scan_in_scan", "empty_scan"):
        _, fn, make, _ = case(name)
        _close(tg.jit(fn, disk_cache=False)(*make()), fn(*make()))


def _normalized(text):
    """Text with numbers and kernel hashes blanked: what is left is the program's structure."""
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", re.sub(r"tg_kern_[0-9a-f]+", "K", text))


def test_first_call_work_does_not_grow_with_the_trip_count():
    """T=300 and T=3000: the same kernel program and the same emitted LLVM modules (entry and
    compile units), up to constants; compile_grad compiles both.  (Both are above
    simd.LONG_SUM_MIN: below it, a sum over the steps keeps the scalar form.)"""
    programs, modules = [], []
    for steps in (300, 3000):
        args = rnn_args(steps=steps)
        f = tg.compile_grad(rnn, disk_cache=False)
        f(*args)
        programs.append(_normalized(f.ir("kernels")))
        kp = fuse(_cleaned(rnn, args, wrt=tuple(range(5))))
        modules.append(_normalized(lower_program(kp).text()))
    assert programs[0] == programs[1]
    assert modules[0] == modules[1]


def test_tiny_products_in_a_loop_body_are_inline_loops():
    """The RNN step's 6x6 and 6x3 products never call BLAS (once per trip it would cost
    more than the product)."""
    kp = fuse(_cleaned(rnn, rnn_args(steps=20), wrt=tuple(range(5))))
    text = lower_program(kp).text()
    assert "tg_step" in text and not re.search(r"tg_[sd](gemm|gemv|dot)", text)


def test_disk_cache_tells_apart_constants_inside_bodies(tmp_path):
    """Two programs differing only in a constant captured by a loop body get two entries."""
    def make(scale):
        C = np.linspace(0.0, 1.0, 200) * scale
        return lambda x: np.sum(tg.fori_loop(0, 3, lambda i, c: c * C + 1.0, x))
    x = np.ones(200)
    for scale in (1.0, 2.0):
        f = make(scale)
        _close(tg.jit(f, disk_cache=str(tmp_path))(x), f(x))


def test_a_while_loop_whose_tape_grows_many_times():
    """Reverse mode through 5000 trips: the tape doubles from 16 records ten times."""
    def f(x):
        v, k = tg.while_loop(lambda s: s[1] < 5000,
                             lambda s: (np.sin(s[0]) * 0.999 + 0.001, s[1] + 1), (x, 0))
        return np.sum(v * v)
    x = np.array([0.3, -0.4])
    value, (g,) = tg.compile_grad(f, disk_cache=False)(x)
    eager_value, eager_g = tg.value_and_grad(f)(x)
    _close(value, eager_value)
    _close(g, eager_g, rtol=1e-9)


def test_equal_loop_bodies_are_one_compile_unit():
    """Two scans with the same body: one body unit, called by both steps."""
    def f(x, xs):
        step = lambda c, v: (np.tanh(c * v + 0.5), None)  # noqa: E731
        return np.sum(tg.scan(step, x, xs)[0]) + np.sum(tg.scan(step, x * 2.0, xs)[0])
    args = (np.array([0.1, 0.2]), np.linspace(0.0, 1.0, 5))
    kp = fuse(_cleaned(f, args))
    lowered = lower_program(kp)
    bodies = [u for u in lowered.units if u.symbol.startswith("tg_body_")]
    assert len(bodies) == 1
    assert str(lowered.module).count(f"call void @\"{bodies[0].symbol}\"") == 2
    _close(tg.jit(f, disk_cache=False)(*args), f(*args))
