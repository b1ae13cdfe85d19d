"""The cleaning passes (simplify, constant folding, CSE, DCE) work inside the
bodies of control-flow equations, and never run a loop at compile time."""
import numpy as np

import tracegrad as tg
from tracegrad.ir import eval_graph, verify
from tracegrad.ir.core import subgraphs
from tracegrad.passes.manager import cleanup


def _body_prims(graph):
    eqn, = [e for e in graph.eqns if subgraphs(e)]
    return [e.prim.name for body in subgraphs(eqn) for e in body.eqns]


def _messy_scan(c0, xs):
    def step(c, x):
        _dead = np.exp(x)
        a = np.sin(c) * 1.0 + np.sin(c)   # x*1 -> x; sin(c) twice -> once
        return a * x, a + 0.0 * 0.0
    return tg.scan(step, c0, xs)


def test_scan_body_is_simplified_deduplicated_and_dead_code_dropped():
    args = (np.float64(0.3), np.linspace(0.1, 1.0, 5))
    graph = tg.trace(_messy_scan)(*args).graph
    clean = verify(cleanup(graph))
    before, after = _body_prims(graph), _body_prims(clean)
    assert "exp" in before and "exp" not in after
    assert after.count("sin") == 1 and before.count("sin") == 2
    for got, want in zip(eval_graph(clean, *args), eval_graph(graph, *args)):
        np.testing.assert_array_equal(got, want)


def test_constant_loops_are_not_run_at_compile_time():
    def f(x):
        total = tg.fori_loop(0, 1000, lambda i, c: c + 1.0, np.float64(0.0))
        return x * total
    graph = tg.trace(f)(np.ones(2))
    clean = cleanup(graph.graph)
    assert any(subgraphs(e) for e in clean.eqns), "the loop was folded away"
    np.testing.assert_allclose(eval_graph(clean, np.ones(2))[0], [1000.0, 1000.0])


def test_nested_bodies_are_cleaned_too():
    def f(x):
        def outer(c, row):
            def body(i, s):
                _dead = np.exp(s)
                return s * 1.0 + np.cos(row) * np.cos(row)   # one cos after CSE, no mul by 1
            inner = tg.fori_loop(0, 3, body, c)
            return inner, inner
        return tg.scan(outer, x[0], x)
    x = np.linspace(0.0, 1.0, 4)
    graph = tg.trace(f)(x).graph
    text_before, text_after = str(graph), str(cleanup(graph))
    assert text_before.count("exp") == 1 and text_after.count("exp") == 0
    assert text_before.count("cos") == 2 and text_after.count("cos") == 1
    np.testing.assert_allclose(eval_graph(cleanup(graph), x)[0], eval_graph(graph, x)[0])
