"""Kernel programs with control flow (passes/fusion/control.py, passes/kernels.py):
LoopStep and CondStep planned from traced loops and branches, run by the kernel
interpreter against the IR interpreter, numpy loops and central differences,
printed nested, and planned once whatever the trip count."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import tracer
from tracegrad.ir import GraphBuilder, ShapedArray, eval_graph, ops
from tracegrad.passes.autodiff import grad_graph
from tracegrad.passes.dce import dce
from tracegrad.passes.fusion import fuse
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import CondStep, LoopStep

from compiled_loops_cases import flat_argnums, CASES, F64, case, grad_argnums, rnn, rnn_args

NAMES = [c[0] for c in CASES]


def _flat(args):
    return [np.asarray(a) for a in tracer.tree_leaves(list(args))]


def _graph(fn, args):
    return dce(tg.trace(fn)(*args).graph)


def _steps(kp):
    """Every control-flow step of a program, nested ones included."""
    found = []
    for k in kp.kernels:
        if isinstance(k, (LoopStep, CondStep)):
            found.append(k)
            for p in k.programs():
                found += _steps(p)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_kernel_program_matches_the_ir_and_numpy(name):
    _, fn, make, reference = case(name)
    args = make()
    graph = _graph(fn, args)
    kp = fuse(graph)
    assert _steps(kp), "the loop or branch is a step of the kernel program"
    got = run_program(kp, *_flat(args))
    np.testing.assert_allclose(got[0], eval_graph(graph, *_flat(args))[0], rtol=1e-13)
    if reference is not None:
        np.testing.assert_allclose(got[0], reference(*args), rtol=1e-12, atol=1e-14)


def _central(fn, flat, i, eps=1e-6):
    """The central difference of scalar `fn(flat)` along every element of input i."""
    x = flat[i]
    out = np.zeros(x.shape)
    for j in np.ndindex(x.shape):
        hi, lo = [a.copy() for a in flat], [a.copy() for a in flat]
        hi[i][j] += eps
        lo[i][j] -= eps
        out[j] = (fn(hi) - fn(lo)) / (2 * eps)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_gradient_kernel_program_matches_differences(name):
    _, fn, make, _ = case(name)
    args = make()
    flat = _flat(args)
    graph = _graph(fn, args)
    wrt = flat_argnums(args, grad_argnums(name, args))
    grads_graph = dce(grad_graph(graph, argnums=wrt))
    kp = fuse(grads_graph)
    got = run_program(kp, *flat)
    want = eval_graph(grads_graph, *flat)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    value = lambda xs: float(run_program(fuse(graph), *xs)[0])  # noqa: E731
    for g, i in zip(got[1:], wrt):
        np.testing.assert_allclose(g, _central(value, flat, i), rtol=1e-6, atol=1e-7)


def test_while_reverse_mode_is_a_taped_loop_step():
    _, fn, make, _ = case("damped")
    args = make()
    kp = fuse(dce(grad_graph(_graph(fn, args), argnums=(0, 1))))
    taped = [k for k in _steps(kp) if isinstance(k, LoopStep) and k.grad is not None]
    assert len(taped) == 1
    assert "while_vjp" in str(kp) and "grad body:" in str(kp)


def test_cond_is_one_step_with_both_branches():
    _, fn, make, _ = case("branch_true")
    kp = fuse(_graph(fn, make()))
    (step,) = [k for k in _steps(kp) if isinstance(k, CondStep)]
    assert len(step.branches) == 2
    for p in (F64(0.8), F64(-0.8)):
        x = make()[1]
        np.testing.assert_allclose(run_program(kp, p, x)[0], fn(p, x), rtol=1e-14)


def test_scan_steps_read_and_write_slices_in_place():
    """xs and ys are the program's own buffers (no copies around the loop)."""
    args = rnn_args(steps=7)
    kp = fuse(_graph(lambda xs, W: tg.scan(lambda h, x: (np.tanh(W @ h + x[:3].sum()),
                                                         h * 2.0), np.zeros(6), xs),
                     (args[1], args[2])))
    (step,) = _steps(kp)
    assert step.xs == [kp.inputs[0]] and step.ys == [kp.outputs[1]]
    assert step.carries == [kp.outputs[0]] and len(step.scratch) == 1


def test_swapped_carries_are_fresh_outputs_of_the_body():
    """A body returning (b, a) writes copies into the other halves of the double
    buffers: it never writes a buffer it reads."""
    _, fn, make, reference = case("swap_carries")
    kp = fuse(_graph(fn, make()))
    (step,) = _steps(kp)
    body = step.body
    read = {id(b) for k in body.kernels for b in k.reads()}
    written = {id(b) for k in body.kernels for b in k.writes()}
    assert not read & written - {id(b) for b in body.temps}
    assert {id(b) for b in body.outputs} <= written


def _text_without_constants(kp):
    return re.sub(r"\d+", "N", str(kp))


def test_program_text_does_not_grow_with_the_trip_count():
    short, long = rnn_args(steps=10), rnn_args(steps=1000)
    texts = []
    for args in (short, long):
        wrt = tuple(range(5))
        kp = fuse(dce(grad_graph(_graph(rnn, args), argnums=wrt)))
        texts.append(_text_without_constants(kp))
    assert texts[0] == texts[1]


def test_zero_length_scan_and_zero_trip_while():
    _, fn, make, _ = case("empty_scan")
    kp = fuse(_graph(fn, make()))
    np.testing.assert_allclose(run_program(kp, *make())[0], 2.0)
    _, fn, make, reference = case("zero_trip_while")
    kp = fuse(_graph(fn, make()))
    np.testing.assert_allclose(run_program(kp, *make())[0], reference(*make()), rtol=1e-14)


def test_literal_and_computed_operands_become_buffers():
    b = GraphBuilder()
    x = b.new_input(ShapedArray((3,), np.float64))
    body_b = GraphBuilder()
    c = body_b.new_input(ShapedArray((3,), np.float64))
    k = body_b.new_input(ShapedArray((), np.float64))
    body = body_b.build([ops.add(c, k), ops.mul(c, k)])
    outs = ops.scan([], [ops.sin(x)], [np.arange(4.0)], body, 4)
    graph = b.build(outs)
    kp = fuse(graph)
    got = run_program(kp, np.array([0.1, 0.2, 0.3]))
    want = eval_graph(graph, np.array([0.1, 0.2, 0.3]))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-14)


def test_nested_bodies_print_indented():
    _, fn, make, _ = case("scan_in_scan")
    text = str(fuse(_graph(fn, make())))
    assert re.search(r"^scan k\d+ length=3 ", text, re.M)
    assert re.search(r"^    scan k\d+ length=4 ", text, re.M)  # the inner body's step
