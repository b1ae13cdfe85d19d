"""The tracer: printed programs, pytrees, static arguments, guards and trace-time errors."""
from __future__ import annotations

import numbers

import numpy as np
import pytest

from tracegrad import ir
from tracegrad.ir import ConcretizationError, GraphBuilder
from tracegrad.tracer import (GuardFailure, Traced, TracedFloat, TracedProgram, make_graph,
                              tensor, trace, tree_flatten, tree_map, tree_unflatten)
from tracegrad.tracer import numpy as tnp

F32 = np.float32


def test_printed_program_golden():
    def f(x, w, b):
        return tnp.sum(tnp.tanh(x @ w + b) ** 2, axis=1)

    prog = trace(f)(np.ones((4, 3), F32), np.ones((3, 2), F32), np.ones(2, F32))
    assert str(prog) == (
        "{ lambda a:f32[4,3] b:f32[3,2] c:f32[2] . let\n"
        "    d:f32[4,2] = dot a b\n"
        "    e:f32[4,2] = broadcast[shape=(4,2)] c\n"
        "    f:f32[4,2] = add d e\n"
        "    g:f32[4,2] = tanh f\n"
        "    h:f32[4,2] = integer_pow[y=2] g\n"
        "    i:f32[4] = reduce_sum[axes=(1,)] h\n"
        "  in (i) }")
    assert isinstance(prog, TracedProgram)
    assert [str(a) for a in prog.in_avals] == ["f32[4,3]", "f32[3,2]", "f32[2]"]


def test_program_evaluates_with_the_interpreter():
    def f(x, y):
        return tnp.softmax(x * y[:, None], axis=0)

    x, y = np.random.default_rng(0).standard_normal((2, 3, 4))
    prog = trace(f)(x, y[:, 0])
    want = f(tensor(x), tensor(y[:, 0])).data
    np.testing.assert_array_equal(prog(x, y[:, 0]), want)
    ir.verify(prog.graph)


def test_pytree_inputs_and_outputs():
    def f(params, batch):
        h = batch["x"] @ params[0] + params[1]
        return {"loss": tnp.mean(h), "parts": [h, h.max()]}

    params = (np.ones((3, 2)), np.zeros(2))
    batch = {"x": np.arange(6.0).reshape(2, 3)}
    prog = trace(f)(params, batch)
    assert len(prog.in_avals) == 3
    assert str(prog.out_tree) == "PyTreeDef({'loss': *, 'parts': [*, *]})"
    out = prog(params, batch)
    assert set(out) == {"loss", "parts"} and out["parts"][0].shape == (2, 2)
    np.testing.assert_allclose(out["loss"], np.mean(batch["x"] @ params[0]))
    with pytest.raises(TypeError, match="structure"):
        prog(list(params), batch)


def test_tree_utilities_round_trip():
    tree = {"a": (1, [2, None]), "b": np.ones(2)}
    leaves, treedef = tree_flatten(tree)
    assert leaves[:2] == [1, 2] and treedef.num_leaves == 3
    back = tree_unflatten(treedef, leaves)
    assert back["a"] == (1, [2, None]) and back["b"] is leaves[2]
    assert tree_map(lambda v: v * 2, {"k": (1, 2)}) == {"k": (2, 4)}
    with pytest.raises(ValueError):
        tree_unflatten(treedef, [1])


def test_static_arguments_and_loop_unrolling():
    def f(x, n, scale):
        for _ in range(n):
            x = x * scale
        return x

    prog = trace(f, static_argnums=1)(np.ones(2, F32), 3, 0.5)
    assert [e.prim.name for e in prog.graph.eqns] == ["mul"] * 3
    assert len(prog.in_avals) == 1  # the Python float 0.5 is static too
    np.testing.assert_array_equal(prog(np.full(2, 8, F32), 3, 0.5), np.ones(2, F32))
    with pytest.raises(TypeError, match="static argument changed"):
        prog(np.ones(2, F32), 4, 0.5)
    assert not prog.check_guards(np.ones(2, F32), 3, 0.25)


def test_argument_shapes_are_checked():
    prog = trace(lambda x: x + 1)(np.ones(3))
    with pytest.raises(TypeError, match="f64"):
        prog(np.ones(4))
    assert not prog.check_guards(np.ones(3, F32))


def test_tensor_and_numpy_scalar_arguments():
    prog = trace(lambda x, s: x * s)(tensor([1.0, 2.0], requires_grad=True), np.float64(3.0))
    assert [str(a) for a in prog.in_avals] == ["f64[2]", "f64[]"]
    np.testing.assert_array_equal(prog(np.array([1.0, 1.0]), np.float64(2.0)), [2.0, 2.0])


# ---- guards ----------------------------------------------------------------------------------

def branchy(x):
    if x.sum() > 0:
        return x * 2
    return -x


def test_data_dependent_branch_records_a_guard():
    prog = trace(branchy)(np.ones(3))
    assert len(prog.guards) == 1
    g = prog.guards[0]
    assert g.kind == "bool" and bool(g.expected) is True and "test_trace.py:" in g.src
    assert str(prog).endswith("guard c == True  (bool)")
    assert prog.check_guards(np.array([1.0, 2.0, -1.0]))
    assert not prog.check_guards(np.array([-1.0, -2.0, 1.0]))
    assert prog.failed_guard(np.array([-1.0, 0.0, 0.0])) is g
    assert prog.failed_guard(np.ones(3)) is None
    with pytest.raises(GuardFailure, match="retrace"):
        prog(-np.ones(3))
    other = trace(branchy)(-np.ones(3))
    assert [e.prim.name for e in other.graph.eqns] == ["reduce_sum", "gt", "neg"]


def test_item_comparison_guards_only_the_outcome():
    def f(a, b):
        if a.item() > 0:
            return a + b
        return a - b

    prog = trace(f)(np.array(1.0), np.array(2.0))
    (g,) = prog.guards
    assert g.kind == "bool" and g.var.aval.dtype == np.bool_
    assert prog.check_guards(np.array(5.0), np.array(2.0))    # same sign: reusable
    assert not prog.check_guards(np.array(-5.0), np.array(2.0))
    np.testing.assert_array_equal(prog(np.array(5.0), np.array(2.0)), 7.0)


def test_item_as_operand_stays_symbolic():
    def f(a, x):
        s = a.item()
        return x * s, np.exp(s)

    prog = trace(f)(np.array(2.0, F32), np.ones(3, F32))
    assert prog.guards == []
    # .item() is detached (a constant for autodiff, as in PyTorch): stop_gradient, no guard
    assert [e.prim.name for e in prog.graph.eqns if e.prim.name != "stop_gradient"] == [
        "mul", "convert", "exp"]
    y, e = prog(np.array(3.0, F32), np.ones(3, F32))
    np.testing.assert_array_equal(y, [3.0, 3.0, 3.0])
    assert y.dtype == F32 and e.dtype == np.float64  # a Python float is weak, np.exp of it f64


def test_item_other_uses_guard_the_value():
    def f(a, x):
        s = a.item()
        assert isinstance(s, numbers.Real) and isinstance(s, TracedFloat)
        label = f"{s:.1f}"  # formatting needs the value
        return x * (s * 2.0), label

    prog = trace(lambda a, x: f(a, x)[0])(np.array(1.5), np.ones(2))
    (g,) = prog.guards
    assert g.kind == "value" and float(g.expected) == 1.5
    assert prog.check_guards(np.array(1.5), np.ones(2))
    assert not prog.check_guards(np.array(1.25), np.ones(2))
    # the value is baked in as a literal: no equation reads `a`
    assert all(e.inputs[0] is not prog.graph.invars[0] for e in prog.graph.eqns)


def test_int_and_index_conversions_guard_the_value():
    prog = trace(lambda n, x: x[: int(n)] * 2)(np.array(2), np.arange(4.0))
    assert [g.kind for g in prog.guards] == ["int"]
    assert prog.check_guards(np.array(2), np.zeros(4))
    assert not prog.check_guards(np.array(3), np.zeros(4))
    prog = trace(lambda n, x: x * [10, 20, 30][n] + x[n])(np.array(1), np.arange(4.0))
    assert [g.kind for g in prog.guards] == ["index"]  # x[n] is a dynamic_slice: no guard
    np.testing.assert_array_equal(prog(np.array(1), np.ones(4)), np.full(4, 21.0))
    prog = trace(lambda n, x: x * n.item())(np.array(3), np.ones(2))
    assert [g.kind for g in prog.guards] == ["item"]  # ints are guarded at once


def test_smart_scalar_comparisons_between_items():
    def f(a, b, x):
        return x + 1 if a.item() < b.item() else x - 1

    prog = trace(f)(np.array(1.0), np.array(2.0), np.zeros(1))
    assert [g.kind for g in prog.guards] == ["bool"]
    assert prog.check_guards(np.array(0.0), np.array(5.0), np.zeros(1))
    assert not prog.check_guards(np.array(6.0), np.array(5.0), np.zeros(1))


def test_bool_of_a_non_scalar_is_ambiguous():
    with pytest.raises(ValueError, match="not a scalar"):
        trace(lambda x: x if x > 0 else -x)(np.ones(2))


def test_abstract_tracing_rejects_data_dependence():
    prog = make_graph(lambda x: tnp.sin(x) * 2, (np.ones(3, F32),), concrete=False)
    assert [e.prim.name for e in prog.graph.eqns] == ["sin", "mul"]
    with pytest.raises(ConcretizationError, match="test_trace.py:"):
        make_graph(branchy, (np.ones(3),), concrete=False)
    with pytest.raises(ConcretizationError):
        make_graph(lambda x: x * x.item(), (np.ones(()),), concrete=False)


def test_make_graph_with_a_caller_builder():
    builder = GraphBuilder(value_cls=Traced, record_source=False)
    prog = make_graph(lambda x: x + 1, (np.ones(2),), builder=builder)
    assert prog.graph.invars == builder.invars and prog.graph.eqns[0].src is None


def test_equations_record_the_user_source_line():
    prog = trace(lambda x: tnp.exp(x))(np.ones(2))
    assert "test_trace.py:" in prog.graph.eqns[0].src


# ---- trace-time errors --------------------------------------------------------------------

def test_broadcast_error_names_op_shapes_and_location():
    def f(x, y):
        return x + y  # the line the message must point at

    with pytest.raises(ValueError) as info:
        trace(f)(np.ones(3, F32), np.ones(4, F32))
    msg = str(info.value)
    assert "add" in msg and "(3,) (4,)" in msg and "f32[3]" in msg and "f32[4]" in msg
    assert f"test_trace.py:{f.__code__.co_firstlineno + 1}" in msg


def test_primitive_shape_errors_are_located():
    with pytest.raises(TypeError) as info:
        trace(lambda x: tnp.concatenate([x, x[None]]))(np.ones(3))
    assert "concatenate" in str(info.value) and "test_trace.py:" in str(info.value)


def test_setitem_on_traced_values_is_a_functional_update():  # more in tests/test_setitem.py
    def f(x):
        x[0] = 1.0
        return x

    assert trace(f)(np.ones(2))(np.full(2, 5.0)).tolist() == [1.0, 5.0]


def test_augmented_assignment_on_traced_values_rebinds():
    def f(x):
        x += 1
        x *= 2
        return x

    np.testing.assert_array_equal(trace(f)(np.ones(2))(np.zeros(2)), [2.0, 2.0])


def test_non_array_outputs_are_rejected():
    with pytest.raises(TypeError, match="must return arrays"):
        trace(lambda x: "text")(np.ones(1))


def test_python_scalar_output_becomes_a_literal():
    prog = trace(lambda x: (x, 3.0))(np.ones(1))
    assert prog(np.zeros(1))[1] == 3.0


def test_float_conversion_records_a_value_guard():
    # float() cannot return a lazily guarded float (CPython strips the subclass),
    # so it must guard the value itself: a missing guard would specialize silently.
    def f(x):
        return x * 2.0 if float(x.sum()) > 0 else x * 3.0

    prog = trace(f)(np.ones(3))
    assert len(prog.guards) == 1
    assert prog.check_guards(np.ones(3)) and not prog.check_guards(np.full(3, 2.0))


def test_program_gives_the_same_bits_for_strided_inputs():
    base = np.random.default_rng(0).standard_normal(4000)
    f = lambda x: np.exp(x) + np.sin(x) * np.tanh(x)   # noqa: E731
    strided = base[::2]
    prog = make_graph(f, (np.ascontiguousarray(strided),))
    np.testing.assert_array_equal(prog(strided), prog(np.ascontiguousarray(strided)))
