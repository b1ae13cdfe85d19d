"""The IR on its own: rule tables complete, verifier catches malformed graphs,
printer golden text, networkx/DOT export, interpreter and inlining."""
import numpy as np
import pytest

import tracegrad
import tracegrad.numpy as tnp
from tracegrad.ir.primitives import ELEMENTWISE_KINDS
from tracegrad.ir import (PRIMITIVES, Eqn, Graph, GraphBuilder, Literal, ShapedArray, Var,
                          VerifyError, eval_graph, eval_graph_bind, ops, to_dot,
                          to_networkx, verify)

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


def test_every_primitive_has_every_rule():
    for name, prim in PRIMITIVES.items():
        assert prim.name == name
        assert callable(prim.shape_rule) and callable(prim.impl), name
        assert callable(prim.vjp) and callable(prim.jvp), f"{name} lacks an autodiff rule"


def test_codegen_lowers_every_elementwise_primitive():
    from tracegrad.codegen import LOWERINGS

    elementwise = {n for n, p in PRIMITIVES.items()
                   if p.kind in ELEMENTWISE_KINDS}
    assert elementwise <= set(LOWERINGS), elementwise - set(LOWERINGS)


def test_every_reduction_primitive_has_one_store_kind_and_a_codegen_combiner():
    from tracegrad.codegen.scalar_ops import COMBINERS
    from tracegrad.passes.kernels import REDUCTION_OF_PRIMITIVE, REDUCTIONS

    reductions = {n for n, p in PRIMITIVES.items() if p.kind == "reduce"}
    assert reductions == set(REDUCTION_OF_PRIMITIVE)
    assert set(COMBINERS) == set(REDUCTIONS)
    for r in REDUCTIONS.values():  # the identity leaves every value as it is
        for dtype in (np.float32, np.int8, np.bool_):
            x = np.array([0, 1, 5], dtype)
            e = np.full(3, r.identity(dtype), dtype)
            np.testing.assert_array_equal(r.ufunc(e, x).astype(dtype), x, f"{r.name} {dtype}")


def _small_graph():
    b = GraphBuilder()
    x = b.new_input(ShapedArray((3,), F32))
    y = b.new_input(ShapedArray((3,), F32))
    out = ops.reduce_sum(ops.mul(ops.sin(x), y), (0,))
    return b.build([out])


def test_verifier_accepts_a_built_graph():
    assert verify(_small_graph())


def test_verifier_rejects_an_unbound_value():
    g = _small_graph()
    stray = Var(ShapedArray((3,), F32))
    g.eqns[1].inputs[0] = stray
    with pytest.raises(VerifyError, match="unbound"):
        verify(g)


def test_verifier_rejects_double_assignment():
    g = _small_graph()
    g.eqns[1].out = g.eqns[0].out
    with pytest.raises(VerifyError, match="twice"):
        verify(g)


def test_verifier_rejects_a_wrong_output_type():
    g = _small_graph()
    g.eqns[0].out.aval = ShapedArray((4,), F32)
    with pytest.raises(VerifyError, match="rule gives"):
        verify(g)


def test_verifier_rejects_bad_params_and_unknown_outputs():
    g = _small_graph()
    g.eqns[2].params = {"axes": (3,)}
    with pytest.raises(VerifyError, match="reduce_sum"):
        verify(g)
    g = _small_graph()
    g.outvars.append(Var(ShapedArray((), F32)))
    with pytest.raises(VerifyError, match="outputs"):
        verify(g)


def test_verifier_rejects_a_constant_of_the_wrong_shape():
    x = Var(ShapedArray((2,), F64))
    c = Var(ShapedArray((2,), F64))
    out = Var(ShapedArray((2,), F64))
    g = Graph([x], [c], [np.zeros(3)], [Eqn(PRIMITIVES["add"], [x, c], {}, out)], [out])
    with pytest.raises(VerifyError, match="constant"):
        verify(g)


GOLDEN_SOFTMAX = """\
{ lambda a:f64[2,3] . let
    b:f64[2] = reduce_max[axes=(1,)] a
    c:f64[2,1] = reshape[shape=(2,1)] b
    d:f64[2,1] = stop_gradient c
    e:f64[2,3] = broadcast[shape=(2,3)] d
    f:f64[2,3] = sub a e
    g:f64[2,3] = exp f
    h:f64[2] = reduce_sum[axes=(1,)] g
    i:f64[2,1] = reshape[shape=(2,1)] h
    j:f64[2,3] = broadcast[shape=(2,3)] i
    k:f64[2,3] = div g j
  in (k) }"""


def test_printer_golden_softmax_and_stable():
    prog = tracegrad.trace(lambda x: tnp.softmax(x, axis=1))(np.zeros((2, 3)))
    assert str(prog) == GOLDEN_SOFTMAX
    again = tracegrad.trace(lambda x: tnp.softmax(x, axis=1))(np.ones((2, 3)))
    assert str(again) == str(prog)


def test_printer_shows_constants_literals_and_guards():
    w = np.arange(3.0)

    def f(x):
        y = x * w + 2.0
        return y if float(y.sum()) > 0 else -y

    text = str(tracegrad.trace(f)(np.ones(3)))
    assert text.startswith("{ lambda a:f64[3] ; b:f64[3] . let")
    assert "2.0:f64[]" in text and "guard" in text


def test_networkx_export_carries_op_shape_dtype():
    g = _small_graph()
    nxg = to_networkx(g)
    ops_ = {d["op"] for _, d in nxg.nodes(data=True)}
    assert ops_ == {"input", "sin", "mul", "reduce_sum"}
    assert nxg.number_of_edges() == 4
    import networkx as nx
    assert nx.is_directed_acyclic_graph(nxg)
    sink = [n for n, d in nxg.nodes(data=True) if "output" in d]
    assert len(sink) == 1 and nxg.nodes[sink[0]]["shape"] == () and nxg.nodes[sink[0]]["dtype"] == "float32"


def test_dot_export_is_graphviz_text():
    text = to_dot(_small_graph())
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    assert text.count("->") == 4 and "sin" in text and "peripheries=2" in text


def test_interpreter_matches_numpy_and_inlining_composes():
    g = _small_graph()
    x = np.linspace(0, 1, 3, dtype=np.float32)
    y = np.arange(3, dtype=np.float32)
    (out,) = eval_graph(g, x, y)
    np.testing.assert_allclose(out, np.sum(np.sin(x) * y), rtol=1e-6)
    outer = GraphBuilder()
    a = outer.new_input(ShapedArray((3,), F32))
    (inlined,) = eval_graph_bind(g, a, a)
    g2 = verify(outer.build([inlined]))
    assert [e.prim.name for e in g2.eqns] == ["sin", "mul", "reduce_sum"]
    np.testing.assert_allclose(eval_graph(g2, x)[0], np.sum(np.sin(x) * x), rtol=1e-6)


def test_literals_take_the_other_operands_dtype():
    b = GraphBuilder()
    x = b.new_input(ShapedArray((2,), F32))
    g = b.build([ops.mul(x, 2.0)])
    lit = g.eqns[0].inputs[1]
    assert isinstance(lit, Literal) and lit.aval.dtype == F32


def test_shape_errors_name_the_primitive_and_operands():
    b = GraphBuilder()
    x = b.new_input(ShapedArray((2,), F32))
    y = b.new_input(ShapedArray((3,), F32))
    with pytest.raises(TypeError, match=r"add: operand shapes differ.*f32\[2\].*f32\[3\]"):
        ops.add(x, y)


def test_traced_program_exports():
    prog = tracegrad.trace(lambda x: np.sum(np.exp(x)))(np.ones(3))
    assert {d["op"] for _, d in prog.to_networkx().nodes(data=True)} == {"input", "exp", "reduce_sum"}
    assert prog.to_dot().startswith("digraph")
