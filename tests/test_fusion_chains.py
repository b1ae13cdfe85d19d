"""Fusion planning decides long chains in a few rounds and plans as the
one-value-at-a-time iteration did.

The reference below is the planning loop before the sweep: each round stores
only the outermost values recomputed beyond the budget, then plans again with
every task fully expanded.  The planner must give the same kernel programs on
the programs here (an unrolled loop with a reduction per step, forward and
gradient, and the shapes of the test suite's workloads).
"""
import importlib
import pathlib
import sys

import numpy as np
import pytest

from tracegrad.ir import GraphBuilder, ShapedArray, eval_graph, ops, verify
from tracegrad.passes.autodiff import grad_graph
from tracegrad.passes.dce import dce
from tracegrad.passes.fusion import fuse, planning
from tracegrad.passes.fusion.emission import emit
from tracegrad.passes.fusion.merge import merge
from tracegrad.passes.fusion.recompute import BROADCAST_COST, RECOMPUTE_BUDGET, REPEAT_MIN, SAVED_MIN
from tracegrad.passes.fusion.state import Plan, op_cost
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.manager import cleanup

from fusion_cases import drag_steps, w7_recurrence

F64 = np.dtype(np.float64)


# ---- the reference: outermost values only, one round each ---------------------------

def _subtree(plan, var) -> set:
    seen, stack = set(), [var]
    while stack:
        v = stack.pop()
        if v not in seen:
            seen.add(v)
            stack.extend(a for a in plan.producer[v].inputs
                         if a in plan.producer and a not in plan.buffers and a not in seen)
    return seen


def _repeats(view) -> int:
    """Times a view evaluates each element in loops LLVM cannot hoist from (written apart
    from recompute.outer_repeats, as a check of it): the extents of the domain dims no
    row reads, left of the last dim some row reads."""
    read = [any(coefs[k] for _, coefs in view.rows) for k in range(len(view.box))]
    last = max((k for k, r in enumerate(read) if r), default=-1)
    return int(np.prod([max(hi - lo, 1) for k, (lo, hi) in enumerate(view.box)
                        if k < last and not read[k]]))


def _broadcast_heavy(var, views, cost) -> bool:
    repeats = max((_repeats(v) for v in views), default=1)
    size = int(np.prod(var.aval.shape))
    return (repeats >= REPEAT_MIN and cost > BROADCAST_COST
            and (repeats - 1) * size * cost >= SAVED_MIN)


def _outermost_heavy(plan, tasks, group_of) -> list:
    inst = {}
    for t in tasks:
        for var, view in t.instances:
            if var not in plan.buffers:
                inst.setdefault(var, set()).add((group_of[t].id, view))
    def cost(v):
        return sum(op_cost(plan.producer[u]) for u in _subtree(plan, v))

    heavy = {v for v, s in inst.items()
             if (len(s) > 1 and (len(s) - 1) * cost(v) > RECOMPUTE_BUDGET)
             or _broadcast_heavy(v, [view for _, view in s], cost(v))}
    chosen, covered = [], set()
    for eqn in reversed(plan.eqns):
        if eqn.out in heavy and eqn.out not in covered:
            chosen.append(eqn.out)
            covered |= _subtree(plan, eqn.out)
    return chosen


def reference_fuse(graph):
    state = Plan(graph)
    while True:
        tasks, needs = planning._build(state)
        if not needs:
            groups, group_of = merge(state, tasks)
            needs = _outermost_heavy(state, tasks, group_of)
            if not needs:
                return emit(state, groups)
        for v in needs:
            state.store(v)


# ---- programs -------------------------------------------------------------------------

def build(fn, *shapes):
    b = GraphBuilder(record_source=False)
    xs = [b.new_input(ShapedArray(s, F64)) for s in shapes]
    out = fn(*xs)
    return verify(b.build(list(out) if isinstance(out, (tuple, list)) else [out]))


def projectile(steps):
    """Euler steps of a projectile with drag |v| v; the loss is x[0] + x[1]."""
    def f(v0, c):
        return ops.reduce_sum(drag_steps(v0, c, steps), (0,))
    return f


def gradient(graph):
    return cleanup(dce(verify(grad_graph(graph, argnums=(0, 1), has_value=True))))


def normalized(x):
    mean = ops.div(ops.reduce_sum(x, (0,)), 5.0)
    d = ops.sub(x, ops.broadcast(ops.reshape(mean, (1, 7)), (5, 7)))
    var = ops.add(ops.div(ops.reduce_sum(ops.mul(d, d), (0,)), 5.0), 1e-5)
    y = ops.div(d, ops.broadcast(ops.reshape(ops.sqrt(var), (1, 7)), (5, 7)))
    return ops.reduce_sum(ops.sin(y), (0, 1))


def recurrence(x, steps=20):
    for _ in range(steps):
        x = ops.add(ops.mul(ops.tanh(x), 0.5), ops.mul(x, x))
    return ops.reduce_sum(x, (0,))


PROGRAMS = {
    **{f"projectile{n}": (projectile(n), ((2,), ())) for n in (1, 2, 3, 4, 6, 8)},
    "normalized": (normalized, ((5, 7),)),
    "recurrence": (lambda x: recurrence(x), ((16,),)),
}


@pytest.mark.parametrize("grad", [False, True], ids=["value", "gradient"])
@pytest.mark.parametrize("name", PROGRAMS)
def test_plans_as_the_one_value_per_round_iteration(name, grad):
    fn, shapes = PROGRAMS[name]
    graph = build(fn, *shapes)
    if grad:
        if len(shapes) == 1:
            graph = cleanup(dce(verify(grad_graph(graph, argnums=(0,), has_value=True))))
        else:
            graph = gradient(graph)
    reference = str(reference_fuse(graph))
    assert _plan_of(str(fuse(graph))) == _plan_of(reference)
    with pytest.MonkeyPatch.context() as m:  # without partners, the very same program text
        m.setattr(planning, "combine", lambda plan, tasks: (tasks, {}))
        assert str(fuse(graph)) == reference


def _plan_of(text: str) -> list:
    """A kernel program's text up to the order of each kernel's instructions (partners,
    `fusion/combine.py`, expand a kernel's tasks together, in another order): per kernel,
    its header, its stores' targets and how many of each operation it computes."""
    kernels = []
    for block in text.split("kernel ")[1:]:
        lines = block.splitlines()
        ops = sorted(line.split("=")[1].split()[0] for line in lines[1:] if " = " in line
                     and line.strip().startswith("%"))
        stores = sorted(line.split()[1] for line in lines[1:] if line.strip().startswith("store"))
        kernels.append((lines[0], stores, ops))
    return kernels


def _rounds(monkeypatch, graph) -> int:
    count = []
    original = planning._round

    def counted(plan, rejected, **kw):
        count.append(1)
        return original(plan, rejected, **kw)
    monkeypatch.setattr(planning, "_round", counted)
    fuse(graph)
    return len(count)


def test_a_long_chain_is_planned_in_a_few_rounds(monkeypatch):
    graph = gradient(build(projectile(40), (2,), ()))
    assert _rounds(monkeypatch, graph) <= 4


def test_a_chain_analysis_cannot_shorten_falls_back_to_full_rounds(monkeypatch):
    """Where analysis rounds would decide one link per round, planning switches to
    full outermost-first rounds after ANALYSIS_ROUNDS: the round count stays small."""
    graph = build(lambda x: w7_recurrence(x, 60), (16,))
    graph = cleanup(dce(verify(grad_graph(graph, argnums=(0,), has_value=True))))
    assert _rounds(monkeypatch, graph) <= 16  # one link per round would be ~180


def test_a_long_chain_plans_correct_kernels():
    graph = gradient(build(projectile(30), (2,), ()))
    kp = fuse(graph)
    args = (np.array([30.0, 30.0]), np.array(0.05))
    for got, want in zip(run_program(kp, *args), eval_graph(graph, *args)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_compile_scaling_benchmark_runs(capsys, monkeypatch):
    root = str(pathlib.Path(__file__).resolve().parents[1])
    if root not in sys.path:  # benchmarks/ is not an installed package
        monkeypatch.syspath_prepend(root)
    compile_scaling = importlib.import_module("benchmarks.compile_scaling")
    compile_scaling.main(["2", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "steps" and [ln.split()[0] for ln in lines[1:]] == ["2", "3"]
