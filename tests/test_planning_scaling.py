"""Fusion planning does work linear in the program (issue 9: compile time linear in
program size): counted in expansion steps and expansions, never timed.

Planning keeps each task's expansion across rounds and trial joins while the
values it consulted keep their status (`tasks.expand_task`); the kernel programs
must be exactly those of planning that expands every task afresh.
"""
import numpy as np
import pytest

from tracegrad.ir import GraphBuilder, ShapedArray, ops, verify
from tracegrad.passes.autodiff import grad_graph
from tracegrad.passes.dce import dce
from tracegrad.passes.fusion import expand, fuse, planning, tasks
from tracegrad.passes.manager import cleanup

from fusion_cases import drag_steps, w7_recurrence

F64 = np.dtype(np.float64)


def build(fn, *shapes):
    b = GraphBuilder()
    xs = [b.new_input(ShapedArray(s, F64)) for s in shapes]
    return verify(b.build([fn(*xs)]))


def projectile(steps, strided=False):
    """Euler steps with drag |v| v (benchmarks/compile_scaling.py); loss x[0] + x[1].
    `strided`: the loss is sum(x[1::2]) instead, whose gradient is a strided pad, a
    value planning must store before any round decides (a round of its own)."""
    def f(v0, c):
        x = drag_steps(v0, c, steps)
        if strided:
            return ops.reduce_sum(ops.slice(x, (1,), (2,), (1,)), (0,))
        return ops.add(ops.reshape(ops.slice(x, (0,), (1,), (1,)), ()),
                       ops.reshape(ops.slice(x, (1,), (1,), (1,)), ()))
    return f


def gradient(graph, argnums):
    return cleanup(dce(verify(grad_graph(graph, argnums=argnums, has_value=True))))


def projectile_gradient(steps, strided=False):
    return gradient(build(projectile(steps, strided), (2,), ()), (0, 1))


def recurrence_gradient(steps):
    return gradient(build(lambda x: w7_recurrence(x, steps), (16,)), (0,))


class Work:
    """Counts expansion steps, expansions made and rounds while installed."""

    def __init__(self, monkeypatch):
        self.steps = self.expansions = self.rounds = 0
        step, made, round_ = expand.Expander._step, tasks._expand, planning._round

        def counted_step(ex, key):
            self.steps += 1
            return step(ex, key)

        def counted_expand(plan, task):
            self.expansions += 1
            return made(plan, task)

        def counted_round(*args, **kw):
            self.rounds += 1
            return round_(*args, **kw)
        monkeypatch.setattr(expand.Expander, "_step", counted_step)
        monkeypatch.setattr(tasks, "_expand", counted_expand)
        monkeypatch.setattr(planning, "_round", counted_round)


def work(monkeypatch, graph) -> Work:
    with monkeypatch.context() as m:
        w = Work(m)
        fuse(graph)
    return w


@pytest.mark.parametrize("strided", [False, True], ids=["projectile", "store-first"])
def test_planning_work_is_linear_in_the_steps(monkeypatch, strided):
    counts = {n: work(monkeypatch, projectile_gradient(n, strided)) for n in (20, 40, 80)}
    for small, large in ((20, 40), (40, 80)):
        assert counts[large].rounds == counts[small].rounds
        assert counts[large].steps <= 2.2 * counts[small].steps
        assert counts[large].expansions <= 2.2 * counts[small].expansions


def test_the_final_round_reuses_the_expansions_before_it(monkeypatch):
    graph = projectile_gradient(40)
    per_round = []
    original = planning._round

    def counted(*args, **kw):
        before = w.expansions
        out = original(*args, **kw)
        per_round.append(w.expansions - before)
        return out
    with monkeypatch.context() as m:
        w = Work(m)
        m.setattr(planning, "_round", counted)
        fuse(graph)
    tasks_in_final_round = sum(len(g.tasks) for g in planning.plan(graph)[1])
    assert per_round[-1] < tasks_in_final_round / 4


def afresh(monkeypatch, graph) -> str:
    """The kernel program of planning that expands every task afresh."""
    with monkeypatch.context() as m:
        m.setattr(tasks, "_current", lambda plan, known: None)
        return str(fuse(graph))


@pytest.mark.parametrize("name, graph", [
    ("projectile", lambda: projectile_gradient(12)),
    ("projectile forward", lambda: build(projectile(12), (2,), ())),
    ("store-first", lambda: projectile_gradient(12, strided=True)),
    ("recurrence", lambda: recurrence_gradient(30)),  # past the analysis rounds
])
def test_kept_expansions_plan_as_fresh_ones(monkeypatch, name, graph):
    g = graph()
    assert str(fuse(g)) == afresh(monkeypatch, g)


def test_fresh_expansions_are_made_without_the_cache(monkeypatch):
    """The comparison above compares something: without kept expansions planning
    expands more."""
    g = projectile_gradient(12)
    kept = work(monkeypatch, g).expansions
    with monkeypatch.context() as m:
        m.setattr(tasks, "_current", lambda plan, known: None)
        assert work(m, g).expansions > kept


def test_the_gradient_of_a_stencil_loop_plans_in_bounded_time(monkeypatch):
    """Each step of a periodic stencil's gradient reads the next at every shift the later
    steps reach: past a bound on summaries, planning stores the frontier values at once
    (12 steps took minutes and gigabytes before)."""
    import tracegrad
    from tracegrad.passes.fusion import tasks
    monkeypatch.setenv("TRACEGRAD_REROLL", "0")
    expansions, expand = [], tasks._expand
    monkeypatch.setattr(tasks, "_expand", lambda plan, t: expansions.append(t) or expand(plan, t))

    def f(u):
        for _ in range(12):
            u = u + 0.1 * (np.roll(u, 1, 0) + np.roll(u, -1, 0) + np.roll(u, 1, 1)
                           + np.roll(u, -1, 1) - 4 * u)
        return np.sum(u ** 2)

    u = np.random.default_rng(0).normal(size=(24, 24))
    value, g = tracegrad.compile_grad(f, argnums=0, disk_cache=False)(u)
    assert len(expansions) < 20000
    ref_value, ref_g = tracegrad.value_and_grad(f)(u)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(g, ref_g, rtol=1e-10, atol=1e-12)
