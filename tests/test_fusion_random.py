"""Random programs (hypothesis) fused and checked, with their gradients, and emission
replaying the planning's expansions.
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracegrad.ir import GraphBuilder, ShapedArray, ops, verify
from tracegrad.passes.autodiff import grad_graph
from tracegrad.passes.fusion import body as fusion_body, emission as fusion_emission
from tracegrad.passes.fusion import expand as fusion_expand, planning as fusion_planning
from tracegrad.passes.dce import dce
from tracegrad.passes.kernels import Const, LoopKernel, Store
from fusion_cases import F64, build, sample, assert_matches, w7_recurrence


# ---- random programs -------------------------------------------------------------------

UNARY = ["sin", "tanh", "neg", "abs", "cos"]
BINARY = ["add", "sub", "mul", "max", "min"]


def _random_op(draw, pool):
    x = draw(st.sampled_from(pool[-2:] * 2 + pool))  # recent values: deeper chains
    shape = x.shape
    kind = draw(st.sampled_from(["unary", "binary", "broadcast", "reduce", "slice", "pad",
                                 "transpose", "reshape"]))
    if kind == "unary":
        return ops.bind(draw(st.sampled_from(UNARY)), x)
    if kind == "binary":
        same = [y for y in pool if y.shape == shape or y.shape == ()]
        return ops.bind(draw(st.sampled_from(BINARY)), x, draw(st.sampled_from(same)))
    if kind == "broadcast" and len(shape) < 3:
        lead = draw(st.integers(1, 3))
        return ops.broadcast(x, (lead,) + tuple(draw(st.integers(1, 3)) if d == 1 else d
                                                 for d in shape))
    if kind == "reduce" and shape:
        axes = tuple(sorted(draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
        prims = ["reduce_sum", "reduce_max"] if all(shape[a] for a in axes) else ["reduce_sum"]
        return ops.bind(draw(st.sampled_from(prims)), x, axes=axes)
    if kind == "slice" and shape and all(shape):
        starts, steps, sizes = [], [], []
        for d in shape:
            step = draw(st.sampled_from([1, 2, -1, -2]))
            start = draw(st.integers(0, d - 1))
            room = (d - 1 - start) // step if step > 0 else start // -step
            starts.append(start), steps.append(step), sizes.append(draw(st.integers(0, room + 1)))
        return ops.slice(x, starts, steps, sizes)
    if kind == "pad" and shape:
        steps = [draw(st.sampled_from([1, 1, -1, 2])) for _ in shape]
        lo = [draw(st.integers(0, 2)) for _ in shape]
        span = [(d - 1) * abs(p) + 1 if d else 0 for d, p in zip(shape, steps)]
        out = [a + s + draw(st.integers(0, 2)) for a, s in zip(lo, span)]
        starts = [a if p > 0 else a + s - 1 for a, s, p in zip(lo, span, steps)]
        if all(d for d in shape):
            return ops.pad(x, starts, steps, out)
    if kind == "transpose" and len(shape) > 1:
        return ops.transpose(x, draw(st.permutations(range(len(shape)))))
    if kind == "reshape" and shape:
        size = int(np.prod(shape))
        opts = [(size,), (1, size)] + [(a, size // a) for a in range(2, size) if size % a == 0]
        return ops.reshape(x, draw(st.sampled_from(opts)))
    return ops.sin(x)


@st.composite
def random_programs(draw):
    shapes = draw(st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple),
                           min_size=1, max_size=3))
    b = GraphBuilder()
    pool = [b.new_input(ShapedArray(s, F64)) for s in shapes]
    for _ in range(draw(st.integers(1, 10))):
        pool.append(_random_op(draw, pool))
    outs = [pool[-1]] + draw(st.lists(st.sampled_from(pool), max_size=2))
    return verify(b.build(outs)), shapes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_programs(), st.integers(0, 2**32 - 1))
def test_random_programs(program, seed):
    graph, shapes = program
    r = np.random.default_rng(seed)
    assert_matches(graph, *[r.standard_normal(s) for s in shapes])


def _gradient_of(graph, shapes):
    """The gradient of sum(sin(first output)) of a random program, cleaned by DCE."""
    last = graph.outvars[0]
    b = GraphBuilder()
    xs = [b.new_input(ShapedArray(s, F64)) for s in shapes]
    from tracegrad.ir import eval_graph_bind
    y = ops.sin(eval_graph_bind(graph.replace(outvars=[last]), *xs)[0])
    loss = verify(b.build([ops.reduce_sum(y, tuple(range(len(last.aval.shape))))]))
    return dce(verify(grad_graph(loss, tuple(range(len(shapes))))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_programs(), st.integers(0, 2**32 - 1))
def test_random_program_gradients(program, seed):
    """The autodiff pass's pads, sum_to_shape reductions and transposes, fused."""
    graph, shapes = program
    r = np.random.default_rng(seed)
    assert_matches(_gradient_of(graph, shapes), *[r.standard_normal(s) for s in shapes])


def _emitted_by_expanding(plan, group, name):
    """A group's loop kernel as a fresh expansion of its tasks into one body builds it."""
    body, stores = fusion_body.Body(), []
    for t in group.tasks:
        ex = fusion_expand.Expander(plan, group.domain, body, t.roots | t.inline)
        for s in t.stores:
            val = ex.value(s.atom, s.view)
            if isinstance(val, Const):
                val = body.emit("convert", (val,), {"dtype": val.dtype}, val.dtype)
            stores.append(Store(s.buffer, val, s.index, s.reduce))
    return LoopKernel(name, group.domain, fusion_body.compact(body.instrs, stores), stores)


def assert_replay_equals_expansion(graph):
    """Emission replays the tasks' planning expansions instead of expanding them again;
    the kernels must be exactly the ones a fresh expansion gives."""
    plan, groups = fusion_planning.plan(graph)
    for i, g in enumerate(groups):
        if not g.dot:
            assert fusion_emission.emit_loop(plan, g, f"k{i}") == _emitted_by_expanding(plan, g, f"k{i}")
    return groups


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_programs())
def test_emission_replays_the_planning_expansions(program):
    graph, shapes = program
    assert_replay_equals_expansion(graph)
    assert_replay_equals_expansion(_gradient_of(graph, shapes))


def test_emission_replays_several_tasks_into_one_kernel():
    def f(x, y):  # stores over one domain sharing work, with literals, a constant and a pad
        s = ops.sin(ops.mul(x, 0.5))
        return (ops.add(s, y), ops.reduce_sum(ops.mul(s, s), (0,)), ops.exp(s), np.float64(2.0),
                ops.pad(ops.slice(s, (1,), (1,), (7,)), (1,), (1,), (8,)))
    graph = build(f, ((8,), F64), ((8,), F64))
    groups = assert_replay_equals_expansion(graph)
    assert max(len(g.tasks) for g in groups) >= 3
    assert_matches(graph, sample((8,), F64), sample((8,), F64))
    w7 = build(lambda x: w7_recurrence(x, 20), ((16,), F64))
    assert len(assert_replay_equals_expansion(dce(verify(grad_graph(w7))))) == 1
