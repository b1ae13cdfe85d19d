"""Loop rerolling (passes/reroll.py): Python loops that tracing unrolled compile as scans.

Every case compares the rerolled compile with the unrolled one (TRACEGRAD_REROLL=0)
and with eager references, values and gradients, and checks the shape of the
rolled IR: one scan, whose printed size does not grow with the trip count.
"""
import random
import re

import numpy as np
import pytest

import tracegrad
from tracegrad.ir import GraphBuilder, ShapedArray, interpreter, ops
from tracegrad.passes.reroll import reroll
from tracegrad.tracer import make_graph

RNG = np.random.default_rng(7)


def compiled(fun, args, monkeypatch, on=True, grad=True):
    """(outputs, function) of fun compiled with rerolling on or off."""
    monkeypatch.setenv("TRACEGRAD_REROLL", "1" if on else "0")
    f = (tracegrad.compile_grad if grad else tracegrad.jit)(fun, disk_cache=False)
    return f(*args), f


def leaves(tree):
    return [np.asarray(x) for x in tracegrad.tree_util.tree_leaves(tree)]


def rolled_text(f):
    stages = f._last.stages
    return stages["rerolled"]() if "rerolled" in stages else None


def check_same(fun, args, monkeypatch, grad=True, rtol=1e-12):
    """Rolled == unrolled == eager; returns the rolled IR text."""
    rolled, f = compiled(fun, args, monkeypatch, True, grad)
    unrolled, _ = compiled(fun, args, monkeypatch, False, grad)
    for a, b in zip(leaves(rolled), leaves(unrolled)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-13)
    if grad:
        ref = tracegrad.value_and_grad(fun, argnums=tuple(range(len(args))))(*args)
        for a, b in zip(leaves(rolled), leaves(ref)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    return rolled_text(f)


# ---- the loops users write ------------------------------------------------------------------

def projectile(steps):
    gravity = np.array([0.0, -9.81])

    def loss(v0, c):
        x, v = np.zeros(2), v0
        for _ in range(steps):
            v = v + 0.01 * (gravity - c * np.sqrt(np.sum(v * v)) * v)
            x = x + 0.01 * v
        return x[0] + x[1]
    return loss


def test_projectile_rolls_into_one_scan(monkeypatch):
    args = (np.array([30.0, 30.0]), np.array(0.05))
    text = check_same(projectile(300), args, monkeypatch)
    assert text.count("scan[") == 1 and "length=299" in text


def test_rolled_ir_does_not_grow_with_trip_count(monkeypatch):
    args = (np.array([30.0, 30.0]), np.array(0.05))
    texts = [rolled_text(compiled(projectile(n), args, monkeypatch)[1]) for n in (100, 400)]
    assert re.sub(r"length=\d+", "", texts[0]) == re.sub(r"length=\d+", "", texts[1])


def rnn(W, U, xs):
    h, hs = np.zeros(W.shape[0]), []
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + xs[t] @ U + 0.1 * t)
        hs.append(h)
    return np.sum(np.stack(hs) ** 2)


def rnn_args(steps):
    return RNG.normal(size=(5, 5)) * 0.4, RNG.normal(size=(3, 5)), RNG.normal(size=(steps, 3))


def test_rnn_reads_xs_slices_and_stacks_ys(monkeypatch):
    text = check_same(rnn, rnn_args(40), monkeypatch)
    assert text.count("scan[") == 1
    top = [line for line in text.splitlines() if not line.startswith("      ")]
    # x[t] became one strided slice of xs; np.stack(hs) one slice of the scan's ys
    assert sum("slice[" in line for line in top) <= 4
    assert "concatenate" in text and text.count("concatenate") == 1


def midpoint(steps):
    """Explicit midpoint steps of the Lorenz system: each trip evaluates the field twice,
    at different points, so the trip's two halves differ (hunt LW: never rolled)."""
    def field(s, p):
        return np.stack([p[0] * (s[1] - s[0]), s[0] * (p[1] - s[2]) - s[1], s[0] * s[1] - p[2] * s[2]])

    def loss(s, p):
        for _ in range(steps):
            s = s + 0.01 * field(s + 0.005 * field(s, p), p)
        return np.sum(s ** 2)
    return loss


def test_an_integrator_whose_stages_differ_rolls(monkeypatch):
    args = (np.array([1.0, 1.0, 1.05]), np.array([10.0, 28.0, 8 / 3]))
    text = check_same(midpoint(60), args, monkeypatch)
    assert text is not None and text.count("scan[") == 1


def test_forward_only_jit_rolls_too(monkeypatch):
    text = check_same(rnn, rnn_args(30), monkeypatch, grad=False)
    assert text is not None and "scan[" in text


def test_reversed_loop_is_a_reverse_scan(monkeypatch):
    def backwards(xs, w):
        h, hs = np.zeros(3), []
        for t in reversed(range(xs.shape[0])):
            h = np.tanh(h * w + xs[t])
            hs.append(h)
        return np.sum(np.stack(hs) * np.arange(xs.shape[0])[:, None])
    text = check_same(backwards, (RNG.normal(size=(30, 3)), RNG.normal(size=3)), monkeypatch)
    assert "reverse=True" in text


def test_column_slices_move_on_axis_one(monkeypatch):
    def cols(W, xs):
        h = np.ones(3)
        for t in range(xs.shape[1]):
            h = np.sin(W @ h * xs[:, t])
        return np.sum(h)
    text = check_same(cols, (RNG.normal(size=(3, 3)), RNG.normal(size=(3, 30))), monkeypatch)
    assert "scan[" in text and "transpose" in text


def test_changing_literals_and_constants_become_xs(monkeypatch):
    def decay(x):
        for i in range(30):
            x = np.tanh(x * np.full(3, 1.0 + i / 100) + np.arange(3.0) + 0.5 * i)
        return np.sum(x)
    text = check_same(decay, (RNG.normal(size=3),), monkeypatch)
    assert "scan[" in text


def test_nested_loops_roll_inside_the_body(monkeypatch):
    def nested(x):
        for _ in range(8):
            for j in range(30):
                x = np.cos(x) * 0.9 + 0.01 * j
            x = x / np.sum(x * x)
        return np.sum(x)
    text = check_same(nested, (RNG.normal(size=4),), monkeypatch)
    # the outer loop, the inner loop of its peeled first iteration, and the inner
    # loop inside the outer scan's body
    assert text.count("scan[") == 3
    assert any(line.startswith("          ") and "scan[" in line for line in text.splitlines())


def test_two_step_recurrence(monkeypatch):
    def fib(a, b):
        for _ in range(30):
            a, b = b, np.sin(a) + b * 0.5
        return np.sum(a * b)
    check_same(fib, (RNG.normal(size=3), RNG.normal(size=3)), monkeypatch)


def test_short_loops_stay_unrolled(monkeypatch):
    def short(x):
        for _ in range(3):
            x = np.sin(x) * 2.0
        return np.sum(x)
    assert check_same(short, (RNG.normal(size=3),), monkeypatch) is None


def test_switch_turns_it_off(monkeypatch):
    _, f = compiled(projectile(100), (np.array([3.0, 3.0]), np.array(0.1)), monkeypatch, on=False)
    assert rolled_text(f) is None


def test_guards_inside_a_rolled_loop_still_respecialize(monkeypatch):
    def halving(x):
        for _ in range(30):
            if np.sum(x) > 10.0:
                x = x * 0.5
            x = np.sin(x) + x
        return np.sum(x)
    monkeypatch.setenv("TRACEGRAD_REROLL", "1")
    f = tracegrad.jit(halving, disk_cache=False)
    for x in (np.full(3, 0.1), np.full(3, 0.2), np.full(3, 5.0)):
        np.testing.assert_allclose(f(x), halving(x), rtol=1e-12)
    assert "scan[" in rolled_text(f)
    assert len(f.cache_info()) >= 2  # a decision flipped: a new specialization


# ---- graph level: the rolled program is the unrolled one -------------------------------------

UNARY = [ops.sin, ops.tanh, ops.exp, ops.neg]


def random_loop(seed):
    """A graph: a loop body of random ops over 1-3 carries, closing over an outer
    array and a literal, unrolled 6..40 times, then summed."""
    rnd = random.Random(seed)
    b = GraphBuilder()
    n_carry = rnd.randint(1, 3)
    carries = [b.new_input(ShapedArray((4,), np.float64)) for _ in range(n_carry)]
    outer = b.new_input(ShapedArray((4,), np.float64))
    body = [(rnd.randrange(4), rnd.randrange(n_carry), rnd.randrange(n_carry), rnd.random())
            for _ in range(rnd.randint(2, 6))]
    kept = []
    for _ in range(rnd.randint(6, 40)):
        new = list(carries)
        for op, i, j, c in body:
            v = ops.mul(UNARY[op](ops.mul(new[i], 0.3)), c)
            new[j] = ops.add(ops.add(v, outer), new[j])
        carries = new
        kept.append(carries[0])
    total = ops.reduce_sum(carries[-1], (0,))
    for v in kept[::3]:
        total = ops.add(total, ops.reduce_sum(v, (0,)))
    return b.build([total]), n_carry + 1


@pytest.mark.parametrize("seed", range(40))
def test_random_loops_evaluate_the_same(seed):
    graph, n_in = random_loop(seed)
    rolled = reroll(graph, min_eqns=8, min_trips=3)
    assert any(e.prim.name == "scan" for e in rolled.eqns)
    args = [np.random.default_rng(seed).normal(size=4) * 0.5 for _ in range(n_in)]
    want = interpreter.eval_graph(graph, *args)
    got = interpreter.eval_graph(rolled, *args)
    np.testing.assert_array_equal(got[0], want[0])  # the same operations in the same order


def test_peeled_first_iteration_and_length():
    b = GraphBuilder()
    h = x = b.new_input(ShapedArray((3,), np.float64))
    for _ in range(20):
        h = ops.tanh(ops.add(ops.mul(h, x), 1.0))
    g = reroll(b.build([h]), min_eqns=8)
    assert [e.prim.name for e in g.eqns] == ["mul", "add", "tanh", "scan"]
    assert g.eqns[-1].params["length"] == 19


def test_traced_graph_with_slices_rolls_and_matches():
    xs = RNG.normal(size=(25, 2))

    def f(xs, w):
        h = np.zeros(2)
        for t in range(25):
            h = np.sin(h * w + xs[t])
        return np.sum(h)
    prog = make_graph(f, [xs, np.ones(2)], concrete=True)
    rolled = reroll(prog.graph, min_eqns=8)
    assert any(e.prim.name == "scan" for e in rolled.eqns)
    np.testing.assert_array_equal(interpreter.eval_graph(rolled, xs, np.ones(2))[0],
                                  interpreter.eval_graph(prog.graph, xs, np.ones(2))[0])


def test_loops_over_large_arrays_stay_unrolled(monkeypatch):
    """Unrolled, fusion makes a chain of steps on a large array one pass over memory."""
    def steps(x):
        for _ in range(40):
            x = x * 0.9 + 0.1 * x * x
        return np.sum(x)
    assert check_same(steps, (RNG.normal(size=8192),), monkeypatch) is None
    assert check_same(steps, (RNG.normal(size=64),), monkeypatch) is not None


def test_long_loops_over_mid_size_arrays_roll_when_differentiated():
    # the unrolled gradient's fusion planning is quadratic in the loop's length: for
    # compile_grad such a loop rolls, with the unrolled program's values and gradients
    def f(x, a):
        for _ in range(160):
            x = x * a + 0.001 * np.sin(x)
        return np.sum(x)
    x, a = np.random.default_rng(0).normal(size=3000), np.array(0.999)
    g = tracegrad.compile_grad(f, disk_cache=False)
    value, grads = g(x, a)
    assert "rerolled" in g._spec().stages
    forward = tracegrad.jit(f, disk_cache=False)  # forward only: one fused pass, unrolled
    forward(x, a)
    assert "rerolled" not in forward._spec().stages
    ev, eg = tracegrad.value_and_grad(f, argnums=(0, 1))(x, a)
    np.testing.assert_allclose(value, ev, rtol=1e-12)
    for got, want in zip(grads, eg):
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_a_loop_over_slices_of_a_large_stacked_array_rolls(monkeypatch):
    """The body reads x[t], 9 elements, not the whole stacked x (8,199 and more): the
    body's arrays are small, so the loop rolls however long the sequence is (it stayed
    unrolled past 8,192 stacked elements, and its compile_grad took 12 s at T=1000)."""
    def f(x):
        h = np.ones(3)
        for t in range(x.shape[0]):
            h = h @ x[t]
            h = h / np.sum(h)
        return h[0]
    x = np.abs(RNG.normal(size=(1000, 3, 3))) + 0.1
    g = tracegrad.compile_grad(f, disk_cache=False)
    value, (grad,) = g(x)
    assert "rerolled" in g._spec().stages
    ev, eg = tracegrad.value_and_grad(f)(x)
    np.testing.assert_allclose(value, ev, rtol=1e-12)
    np.testing.assert_allclose(grad, eg, rtol=1e-9, atol=1e-15)
