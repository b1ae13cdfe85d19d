"""Autodiff special cases: zero and missing cotangents, missing rules, guards and source lines.
"""
from __future__ import annotations

import numpy as np
import pytest

from tracegrad.ir import (PRIMITIVES, GraphBuilder, Literal, Primitive, ShapedArray, eval_graph,
                          ops)
from tracegrad.passes.autodiff import (MissingRuleError, grad_graph, jvp_graph, vjp_graph,
                                       vjp_split)

from autodiff_cases import (F64, build, checked, run)


# ---- special cases -----------------------------------------------------------------

def test_stop_gradient_blocks_the_cotangent():
    graph = build(lambda x: ops.reduce_sum(ops.mul(ops.stop_gradient(x), x), (0,)),
                  [np.zeros(3)])
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(run(checked(grad_graph(graph)), x)[1], x)  # not 2x
    np.testing.assert_allclose(run(checked(jvp_graph(graph)), x, np.ones(3))[1], np.sum(x))


def test_unused_and_integer_inputs_get_typed_zeros():
    def fn(x, unused, n, m32):
        return ops.mul(ops.reduce_sum(x, (0,)), ops.convert(ops.reduce_sum(n, (0,)), F64))
    args = [np.ones(3), np.ones((2, 2), np.float32), np.array([1, 2], np.int64),
            np.array(7, np.int32)]
    graph = build(fn, args)
    vg = checked(vjp_graph(graph))
    _, gx, gu, gn, gm = run(vg, *args, np.float64(1.0))
    np.testing.assert_allclose(gx, [3.0, 3.0, 3.0])
    for got, a in [(gu, args[1]), (gn, args[2]), (gm, args[3])]:
        assert got.shape == a.shape and got.dtype == a.dtype and not got.any()
    jg = checked(jvp_graph(graph))
    tangent = run(jg, *args, np.ones(3), np.ones((2, 2), np.float32), np.ones(2, np.int64),
                  np.array(1, np.int32))[1]
    assert tangent == pytest.approx(9.0)


def test_outputs_that_are_inputs_repeated_or_literals():
    graph = build(lambda x, y: (x, ops.mul(x, y), x, np.float64(4.0)), [np.zeros(2), np.zeros(2)])
    assert isinstance(graph.outvars[3], Literal)
    x, y = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    cts = [np.array([1.0, 10.0]), np.array([100.0, 1000.0]), np.array([2.0, 20.0]),
           np.float64(7.0)]
    outs = run(checked(vjp_graph(graph)), x, y, *cts)
    np.testing.assert_allclose(outs[4], cts[0] + cts[2] + cts[1] * y)
    np.testing.assert_allclose(outs[5], cts[1] * x)
    tangents = run(checked(jvp_graph(graph)), x, y, np.ones(2), np.zeros(2))[4:]
    np.testing.assert_allclose(tangents[1], y)
    assert float(tangents[3]) == 0.0


def test_wrt_subset_and_bad_index():
    graph = build(lambda x, y: ops.mul(x, y), [np.zeros(2), np.zeros(2)])
    vg = checked(vjp_graph(graph, wrt=[1]))
    assert len(vg.invars) == 3 and len(vg.outvars) == 2
    out, gy = run(vg, np.array([2.0, 3.0]), np.ones(2), np.ones(2))
    np.testing.assert_allclose(gy, [2.0, 3.0])
    with pytest.raises(ValueError, match="wrt"):
        vjp_graph(graph, wrt=[2])


def test_comparisons_and_where_condition_get_no_cotangent():
    graph = build(lambda c, x: ops.where(ops.lt(c, x), ops.mul(x, c), x),
                  [np.zeros(3), np.zeros(3)])
    c, x = np.array([0.5, 2.0, -1.0]), np.array([1.0, 1.0, 1.0])
    _, gc, gx = run(checked(vjp_graph(graph)), c, x, np.ones(3))
    # c reaches the output through mul (differentiable) and lt (not)
    np.testing.assert_allclose(gc, np.where(c < x, x, 0.0))
    np.testing.assert_allclose(gx, np.where(c < x, c, 1.0))


@pytest.fixture
def fake_primitive(monkeypatch):
    """A registered primitive that nobody wrote autodiff rules for (so it verifies)."""
    fake = Primitive("fake_square", "unary", lambda x: x, lambda x: np.asarray(x) ** 2)
    monkeypatch.setitem(PRIMITIVES, fake.name, fake)
    return fake


def test_missing_rule_names_the_primitive(fake_primitive):
    fake = fake_primitive
    b = GraphBuilder()
    x = b.new_input(ShapedArray((3,), F64))
    y = b.process(fake, (ops.sin(x),), {})
    graph = b.build([ops.reduce_sum(y, (0,))])
    with pytest.raises(MissingRuleError, match="fake_square"):
        vjp_graph(graph)
    with pytest.raises(MissingRuleError, match="fake_square"):
        grad_graph(graph)
    with pytest.raises(MissingRuleError, match="fake_square"):
        jvp_graph(graph)


def test_missing_rule_off_the_differentiated_path_is_fine(fake_primitive):
    fake = fake_primitive
    b = GraphBuilder()
    x = b.new_input(ShapedArray((3,), F64))
    w = b.new_input(ShapedArray((3,), F64))
    scale = b.process(fake, (w,), {})
    graph = b.build([ops.reduce_sum(ops.mul(ops.sin(x), scale), (0,))])
    gg = checked(grad_graph(graph, argnums=(0,)))
    x0, w0 = np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(run(gg, x0, w0)[1], np.cos(x0) * w0 ** 2)


def test_rules_with_a_wrong_shape_are_reported(monkeypatch):
    bad = Primitive("bad_rule", "unary", lambda x: x, lambda x: np.asarray(x))
    monkeypatch.setitem(PRIMITIVES, bad.name, bad)
    bad.vjp = lambda g, out, x: (ops.reduce_sum(g, (0,)),)
    b = GraphBuilder()
    x = b.new_input(ShapedArray((3,), F64))
    graph = b.build([ops.reduce_sum(b.process(bad, (x,), {}), (0,))])
    with pytest.raises(TypeError, match="bad_rule.*f64\\[\\].*f64\\[3\\]"):
        grad_graph(graph)


# ---- guards and sources ------------------------------------------------------------

def _guarded_graph():
    """sum(x * y) with a Python branch on sum(x) > 0 recorded as a guard."""
    b = GraphBuilder()
    x = b.new_input(ShapedArray((3,), F64), np.array([1.0, 2.0, 3.0]))
    y = b.new_input(ShapedArray((3,), F64), np.array([1.0, 1.0, 1.0]))
    positive_ = b.concrete(ops.gt(ops.reduce_sum(x, (0,)), 0.0), "bool")
    out = ops.mul(x, y) if positive_ else ops.sub(x, y)
    return b.build([ops.reduce_sum(out, (0,))])


def test_vjp_split_keeps_guards_in_the_forward_graph():
    forward, backward = map(checked, vjp_split(_guarded_graph()))
    assert len(forward.guards) == 1 and not backward.guards
    _, values = eval_graph(forward, np.array([-1.0, -2.0, 3.0]), np.ones(3), with_guards=True)
    assert not forward.guards[0].holds(values[0])


@pytest.mark.parametrize("transform", [vjp_graph, grad_graph, jvp_graph,
                                       lambda g: grad_graph(g, argnums=(0, 1), has_value=False)],
                         ids=["vjp", "grad", "jvp", "grad_no_value"])
def test_guards_survive_the_transforms(transform):
    graph = _guarded_graph()
    assert len(graph.guards) == 1
    new = checked(transform(graph))
    assert len(new.guards) == 1
    guard = new.guards[0]
    assert guard.kind == "bool" and guard.expected == graph.guards[0].expected
    extra = [np.ones(v.aval.shape) for v in new.invars[2:]]
    _, values = eval_graph(new, np.array([1.0, 2.0, 3.0]), np.ones(3), *extra, with_guards=True)
    assert guard.holds(values[0])
    _, values = eval_graph(new, np.array([-1.0, -2.0, 3.0]), np.ones(3), *extra, with_guards=True)
    assert not guard.holds(values[0])  # the guard reads the replayed input, not a copy


def test_guards_survive_second_order():
    graph = _guarded_graph()
    hvp = checked(vjp_graph(checked(jvp_graph(graph)), wrt=[0]))
    assert len(hvp.guards) == 1
    _, values = eval_graph(hvp, np.array([-1.0, -2.0, 3.0]), np.ones(3), np.ones(3), np.ones(3),
                           0.0, 1.0, with_guards=True)
    assert not hvp.guards[0].holds(values[0])


def test_replayed_and_derivative_equations_keep_the_source_line():
    graph = build(lambda x: ops.reduce_sum(ops.sin(x), (0,)), [np.zeros(3)])
    sin_src = graph.eqns[0].src
    assert sin_src is not None and sin_src.startswith(__file__)
    gg = checked(grad_graph(graph))
    assert {e.src for e in gg.eqns if e.prim.name in ("sin", "cos")} == {sin_src}


def test_transforms_verify_only_when_asked(monkeypatch):
    """The verifier costs as much as a transform on large graphs: it runs on request
    (`verify=True`) or, by default, in debug mode ($TRACEGRAD_DEBUG=1)."""
    import tracegrad.passes.autodiff as autodiff
    seen = []
    monkeypatch.setattr(autodiff, "verify_graph", lambda g: seen.append(g) or g)
    graph = build(lambda x: ops.reduce_sum(ops.sin(x), (0,)), [np.zeros(3)])
    transforms = [vjp_graph, grad_graph, jvp_graph]
    monkeypatch.delenv("TRACEGRAD_DEBUG", raising=False)
    for transform in transforms:
        transform(graph)
    vjp_split(graph)
    assert seen == []
    for transform in transforms:
        result = transform(graph, verify=True)
        assert seen[-1] is result
    forward, backward = vjp_split(graph, verify=True)
    assert seen[-2] is forward and seen[-1] is backward
    seen.clear()
    monkeypatch.setenv("TRACEGRAD_DEBUG", "1")
    for transform in transforms:
        result = transform(graph)
        assert seen[-1] is result
        transform(graph, verify=False)
    assert len(seen) == len(transforms)
