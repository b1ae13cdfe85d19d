"""The cleaning passes (DCE, CSE, simplification, constant folding) and the pass manager.

Every rewrite is checked against the reference interpreter bit for bit: NaN
payloads are canonicalized, but the sign of zero counts.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tracegrad.ir import (PRIMITIVES, Eqn, GraphBuilder, Literal, ShapedArray, TracedValue, Var,
                          VerifyError, eval_graph, format_graph, ops, verify)
import tracegrad.passes.simplify as simplify_module
from tracegrad.passes.autodiff import grad_graph, vjp_graph
from tracegrad.passes.cse import cse
from tracegrad.passes.dce import dce
from tracegrad.passes.manager import (CLEANUP, MAX_CLEANUP_ROUNDS, PassVerifyError,
                                      PipelineResult, cleanup, cleanup_by_rounds, format_stages,
                                      pass_name, run_pipeline, stage_text)
from tracegrad.passes.simplify import (LOSSLESS_WIDENING, MAX_FOLDED_ELEMENTS, RULES,
                                       fold_constants, rule_names, simplify, simplify_counted)

F32, F64, I32, I64, BOOL = (np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64,
                                                  np.bool_))


# ---- helpers ----------------------------------------------------------------------

def trace(fn, *avals):
    """Graph of `fn` applied to traced inputs of the given (shape, dtype) pairs."""
    b = GraphBuilder(record_source=False)
    xs = [b.new_input(ShapedArray(s, d)) for s, d in avals]
    outs = fn(*xs)
    return b.build(list(outs) if isinstance(outs, (tuple, list)) else [outs])


def special_values(dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype == BOOL:
        return np.array([True, False, False, True])
    if dtype.kind == "i":
        ii = np.iinfo(dtype)
        big = 2 ** 53 + 1 if dtype == I64 else 2 ** 24 + 1  # not representable in f64 / f32
        return np.array([0, 1, -1, 2, 7, -9, ii.max, ii.min, big, -big], dtype)
    fi = np.finfo(dtype)
    return np.array([0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, np.inf, -np.inf, np.nan,
                     fi.smallest_subnormal, -fi.smallest_subnormal, fi.max, -fi.max, fi.tiny,
                     1e-3], dtype)


def filled(shape, dtype, offset=0) -> np.ndarray:
    vals = special_values(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    return np.resize(np.roll(vals, offset), n).reshape(shape).astype(dtype)


def example_args(graph, offset=0):
    return [filled(v.aval.shape, v.aval.dtype, offset + 3 * i) for i, v in enumerate(graph.invars)]


def canonical_bits(a: np.ndarray) -> np.ndarray:
    """Bits with every NaN made the default NaN; -0.0 and 0.0 stay different."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return a
    a = np.where(np.isnan(a), np.array(np.nan, a.dtype), a)
    return a.view(np.int32 if a.dtype == F32 else np.int64)


def assert_bits_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.shape, g.dtype) == (w.shape, w.dtype)
        assert np.array_equal(canonical_bits(g), canonical_bits(w)), (g, w)


def run_both(before, after, args):
    with np.errstate(all="ignore"):
        want = eval_graph(before, *args, with_guards=True)
        got = eval_graph(after, *args, with_guards=True)
    assert_bits_equal(got[0] + got[1], want[0] + want[1])


def prims(graph) -> list[str]:
    return [e.prim.name for e in graph.eqns]


def const_value(b, arr) -> TracedValue:
    """A traced handle on a graph constant, so ops on it record all-constant equations."""
    return TracedValue(b, b.const(np.asarray(arr)))


def literal_value(b, value, dtype) -> TracedValue:
    return TracedValue(b, Literal(value, dtype))


def snapshot(graph):
    """What a pass must leave as it found it in its input graph."""
    return (format_graph(graph), [c.copy() for c in graph.constvals],
            [(e.out, list(e.inputs), dict(e.params)) for e in graph.eqns],
            list(graph.outvars), [g.var for g in graph.guards], list(graph.constvars))


def assert_snapshot_equal(a, b):
    assert a[0] == b[0]
    assert all(np.array_equal(canonical_bits(x), canonical_bits(y)) for x, y in zip(a[1], b[1]))
    for xs, ys in zip(a[3:], b[3:]):
        assert len(xs) == len(ys) and all(x is y for x, y in zip(xs, ys))
    assert len(a[2]) == len(b[2])
    for (o1, i1, p1), (o2, i2, p2) in zip(a[2], b[2]):
        assert o1 is o2 and all(x is y for x, y in zip(i1, i2)) and p1 == p2


# ---- DCE --------------------------------------------------------------------------

def test_dce_removes_everything_not_reaching_an_output():
    def f(x, y):
        _ = ops.exp(ops.sin(x))                 # dead chain
        _ = ops.mul(x, np.ones(3, np.float32))  # dead, and its constant too
        return ops.add(ops.cos(x), np.full(3, 2.0, np.float32))
    g = trace(f, ((3,), F32), ((3,), F32))
    out = verify(dce(g))
    assert prims(out) == ["cos", "add"]
    assert len(g.constvars) == 2 and len(out.constvars) == 1
    assert out.invars == g.invars  # inputs stay, even the unused y
    run_both(g, out, example_args(g))


def test_dce_keeps_guard_vars_and_what_they_read():
    b = GraphBuilder(record_source=False)
    x = b.new_input(ShapedArray((3,), F32))
    checked = ops.reduce_max(ops.exp(x), (0,))
    b.add_guard(checked, np.float32(1.0), "bool")
    _ = ops.tanh(x)
    g = b.build([ops.sin(x)])
    out = verify(dce(g))
    assert prims(out) == ["exp", "reduce_max", "sin"]
    assert out.guards[0].var is checked.var
    run_both(g, out, example_args(g))


def test_dce_returns_its_input_when_nothing_is_dead():
    g = trace(lambda x: ops.sin(x), ((3,), F32))
    assert dce(g) is g


# ---- CSE --------------------------------------------------------------------------

def test_cse_merges_duplicate_equations():
    def f(x):
        a = ops.exp(ops.sin(x))
        b = ops.exp(ops.sin(x))
        return ops.add(a, b), ops.mul(ops.transpose(x, (1, 0)), 2.0), ops.transpose(x, (1, 0))
    g = trace(f, ((2, 3), F32))
    out = verify(dce(cse(g)))
    assert len(g.eqns) == 8
    assert prims(out) == ["sin", "exp", "add", "transpose", "mul"]
    assert out.outvars[2] is out.eqns[prims(out).index("transpose")].out
    run_both(g, out, example_args(g))


def test_cse_keeps_negative_and_positive_zero_literals_apart():
    g = trace(lambda x: (ops.div(1.0, ops.add(x, 0.0)), ops.div(1.0, ops.add(x, -0.0))),
              ((), F32))
    out = verify(cse(g))
    assert out is g  # nothing to merge
    run_both(g, out, [np.float32(-0.0)])  # 1/(-0 + 0) = inf, 1/(-0 + -0) = -inf


def test_cse_merges_nan_literals_but_not_across_dtypes_or_params():
    g = trace(lambda x: (ops.add(x, float("nan")), ops.add(x, float("nan"))), ((2,), F64))
    assert len(dce(cse(g)).eqns) == 1
    lit32, lit64 = Literal(1, np.int32), Literal(1, np.int64)
    outs = [Var(ShapedArray((), F32)) for _ in range(2)]
    convert = PRIMITIVES["convert"]
    eqns = [Eqn(convert, [lit32], {"dtype": F32}, outs[0]),
            Eqn(convert, [lit64], {"dtype": F32}, outs[1])]
    g2 = trace(lambda x: x, ((), F32)).replace(eqns=eqns, outvars=outs)
    assert cse(verify(g2)) is g2
    g3 = trace(lambda x: (ops.transpose(x, (1, 0, 2)), ops.transpose(x, (0, 2, 1))),
               ((2, 2, 2), F32))
    assert cse(g3) is g3


def test_cse_merges_identical_constants_only():
    def f(x):
        a = ops.mul(x, np.array([1.0, -0.0, np.nan], np.float32))
        b = ops.mul(x, np.array([1.0, -0.0, np.nan], np.float32))   # same bytes: merged
        c = ops.mul(x, np.array([1.0, 0.0, np.nan], np.float32))    # +0.0: kept
        d = ops.mul(ops.convert(x, np.float64), np.array([1.0, -0.0, np.nan]))  # f64: kept
        return a, b, c, d
    g = trace(f, ((3,), F32))
    out = verify(dce(cse(g)))
    assert len(g.constvars) == 4 and len(out.constvars) == 3
    assert prims(out).count("mul") == 3
    assert out.outvars[0] is out.outvars[1]
    run_both(g, out, example_args(g))


def test_cse_redirects_guards():
    b = GraphBuilder(record_source=False)
    x = b.new_input(ShapedArray((3,), F32))
    b.add_guard(ops.reduce_sum(ops.exp(x), (0,)), np.float32(0), "bool")
    g = b.build([ops.reduce_sum(ops.exp(x), (0,))])
    out = verify(dce(cse(g)))
    assert len(out.eqns) == 2 and out.guards[0].var is out.outvars[0]
    assert g.guards[0].var is not g.outvars[0]  # the input graph's guard is untouched


# ---- simplification: every rule fires ----------------------------------------------

def _bind(name, **params):
    return lambda x: ops.bind(name, x, **params)


def _lit_bcast(x, c):
    """An equation `broadcast[shape=x.shape] c` in x's trace (ops.broadcast of a
    plain scalar would be evaluated by numpy instead of recorded)."""
    return x._tg_trace.process(PRIMITIVES["broadcast"], (np.float64(c),), {"shape": x.shape})


# (rule, case id, function, input avals).  Functions use `ops.bind` where the
# `ops` layer would already skip the no-op.
RULE_CASES = [
    ("mul_one_right", "literal", lambda x: ops.mul(x, 1.0), [((2, 3), F32)]),
    ("mul_one_right", "const", lambda x: ops.mul(x, np.ones((2, 3), np.float32)), [((2, 3), F32)]),
    ("mul_one_right", "int", lambda x: ops.mul(x, 1), [((4,), I64)]),
    ("mul_one_left", "literal", lambda x: ops.mul(1.0, x), [((2, 3), F64)]),
    ("div_one", "literal", lambda x: ops.div(x, 1.0), [((2, 3), F32)]),
    ("sub_zero", "literal", lambda x: ops.sub(x, 0.0), [((2, 3), F32)]),
    ("sub_zero", "int", lambda x: ops.sub(x, 0), [((3,), I32)]),
    ("add_neg_zero_right", "literal", lambda x: ops.add(x, -0.0), [((2, 3), F32)]),
    ("add_neg_zero_right", "int", lambda x: ops.add(x, 0), [((3,), I32)]),
    ("add_neg_zero_left", "literal", lambda x: ops.add(-0.0, x), [((2, 3), F64)]),
    ("add_neg_zero_left", "const", lambda x: ops.add(np.full(3, -0.0), x), [((3,), F64)]),
    ("neg_neg", "chain", lambda x: ops.neg(ops.neg(x)), [((2, 3), F32)]),
    ("transpose_identity", "id", _bind("transpose", perm=(0, 1)), [((2, 3), F32)]),
    ("transpose_transpose", "to_identity",
     lambda x: ops.transpose(ops.transpose(x, (1, 2, 0)), (2, 0, 1)), [((2, 3, 4), F32)]),
    ("transpose_transpose", "composed",
     lambda x: ops.transpose(ops.transpose(x, (1, 0, 2)), (0, 2, 1)), [((2, 3, 4), F32)]),
    ("reshape_same", "same", _bind("reshape", shape=(2, 3)), [((2, 3), F32)]),
    ("reshape_reshape", "chain", lambda x: ops.reshape(ops.reshape(x, (6,)), (3, 2)),
     [((2, 3), F32)]),
    ("broadcast_same", "same", _bind("broadcast", shape=(2, 3)), [((2, 3), F32)]),
    ("broadcast_broadcast", "chain",
     lambda x: ops.broadcast(ops.broadcast(x, (2, 3)), (4, 2, 3)), [((3,), F32)]),
    ("convert_same", "same", _bind("convert", dtype=F32), [((2, 3), F32)]),
    ("convert_convert", "round_trip",
     lambda x: ops.convert(ops.convert(x, np.float64), np.float32), [((2, 3), F32)]),
    ("convert_convert", "int_widen", lambda x: ops.convert(ops.convert(x, np.int64), np.float64),
     [((4,), I32)]),
    ("convert_convert", "bool", lambda x: ops.convert(ops.convert(ops.gt(x, 0.0), np.float32),
                                                     np.int32), [((4,), F32)]),
    ("integer_pow_one", "y1", lambda x: ops.integer_pow(x, 1), [((2, 3), F32)]),
    ("slice_whole", "whole", lambda x: ops.slice(x, (0, 0), (1, 1), (2, 3)), [((2, 3), F32)]),
    ("slice_slice", "strided", lambda x: ops.slice(ops.slice(x, (1, 4), (2, -2), (3, 3)),
                                                   (2, 0), (-1, 2), (3, 2)), [((7, 5), F32)]),
    ("slice_slice", "reversed_twice", lambda x: ops.slice(ops.slice(x, (3,), (-1,), (4,)),
                                                          (3,), (-1,), (4,)), [((4,), F32)]),
    ("pad_nothing", "nothing", lambda x: ops.pad(x, (0, 0), (1, 1), (2, 3)), [((2, 3), F32)]),
    ("reduce_sum_no_axes", "float", _bind("reduce_sum", axes=()), [((2, 3), F32)]),
    ("reduce_sum_no_axes", "int", _bind("reduce_sum", axes=()), [((4,), I64)]),
    ("reduce_sum_of_broadcast", "int",  # floats: see tests/test_sum_of_broadcast.py
     lambda x: ops.reduce_sum(ops.broadcast(x, (5, 2, 3)), (0, 1)), [((1, 3), I32)]),
    ("reduce_prod_no_axes", "float", _bind("reduce_prod", axes=()), [((2, 3), F64)]),
    *[(f"{r}_of_ones", "ones", _bind(r, axes=(1, 3)), [((2, 1, 3, 1), dt)])
      for r, dt in (("reduce_sum", F64), ("reduce_sum", I64), ("reduce_max", F32),
                    ("reduce_min", I32), ("reduce_prod", F64))],
    *[(f"{r}_of_concatenate", "stack", lambda x, r=r: ops.bind(r, ops.concatenate(
        [ops.reshape(x, (1, 2, 3)), ops.reshape(ops.neg(x), (1, 2, 3)),
         ops.reshape(ops.mul(x, x), (1, 2, 3))], 0), axes=(0, 2)), [((2, 3), F64)])
      for r in ("reduce_sum",)],
    ("reduce_max_no_axes", "float", _bind("reduce_max", axes=()), [((2, 3), F32)]),
    ("reduce_min_no_axes", "float", _bind("reduce_min", axes=()), [((2, 3), F64)]),
    ("where_same", "var", lambda x: ops.where(ops.gt(x, 0.0), x, x), [((2, 3), F32)]),
    ("where_same", "literal", lambda x: ops.where(ops.gt(x, 0.0), -0.0, -0.0), [((), F32)]),
    ("stop_gradient_twice", "chain", lambda x: ops.stop_gradient(ops.stop_gradient(x)),
     [((2, 3), F32)]),
    *[(f"scalar_operand_{name}", "bcast", fn, [((2, 3), F64)]) for name, fn in [
        ("add", lambda x: ops.add(x, _lit_bcast(x, -2.5))),
        ("sub", lambda x: ops.sub(_lit_bcast(x, 3.0), x)),
        ("mul", lambda x: ops.mul(_lit_bcast(x, -0.0), x)),
        ("div", lambda x: ops.div(x, _lit_bcast(x, 0.0))),
        ("pow", lambda x: ops.pow(x, _lit_bcast(x, 2.0))),
        ("max", lambda x: ops.max(x, _lit_bcast(x, np.nan))),
        ("min", lambda x: ops.min(_lit_bcast(x, -np.inf), x)),
        ("where", lambda x: ops.where(ops.gt(x, 0.0), x, _lit_bcast(x, 7.0))),
    ]],
]


def test_every_rule_has_a_case_and_the_table_is_well_formed():
    names = rule_names()
    assert len(names) == len(set(names)) == len(RULES)
    assert {c[0] for c in RULE_CASES} == set(names)
    assert all(r.prim in PRIMITIVES and r.doc for r in RULES)


@pytest.mark.parametrize("rule,case,fn,avals", RULE_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in RULE_CASES])
def test_rule_fires_and_preserves_results(rule, case, fn, avals):
    g = trace(fn, *avals)
    before = snapshot(g)
    out, fired = simplify_counted(g)
    assert fired[rule] >= 1, dict(fired)
    verify(out)
    prim = next(r.prim for r in RULES if r.name == rule)
    if rule.startswith("scalar_operand_"):
        prim = "broadcast"  # these rules drop the broadcast feeding the operation
    if rule.endswith("_of_concatenate"):
        prim = "concatenate"  # each piece is reduced where it lies
    assert prims(cleanup(g)).count(prim) < prims(g).count(prim)
    for offset in range(3):
        run_both(g, out, example_args(g, offset))
    assert_snapshot_equal(before, snapshot(g))  # the input graph is untouched


def test_composed_transpose_is_one_transpose_with_the_composed_perm():
    g = trace(lambda x: ops.transpose(ops.transpose(x, (1, 0, 2)), (0, 2, 1)), ((2, 3, 4), F32))
    out = cleanup(g)
    assert prims(out) == ["transpose"] and out.eqns[0].params["perm"] == (1, 2, 0)


def test_reduce_sum_over_no_axes_keeps_numpys_signed_zero_semantics():
    g = trace(_bind("reduce_sum", axes=()), ((2,), F32))
    out = cleanup(g)
    assert prims(out) == ["add"]
    x = np.array([-0.0, np.nan], np.float32)
    run_both(g, out, [x])
    assert not np.signbit(eval_graph(out, x)[0][0])


NOT_SIMPLIFIED = [
    ("x*0", lambda x: ops.mul(x, 0.0), [((3,), F32)]),
    ("0*x", lambda x: ops.mul(0.0, x), [((3,), F32)]),
    ("x-x", lambda x: ops.sub(x, x), [((3,), F32)]),
    ("x+0.0", lambda x: ops.add(x, 0.0), [((3,), F32)]),
    ("0.0+x", lambda x: ops.add(0.0, x), [((3,), F64)]),
    ("x-(-0.0)", lambda x: ops.sub(x, -0.0), [((3,), F32)]),
    ("x/1 int", lambda x: ops.div(x, 1), [((3,), I64)]),
    ("x*[1,-0,1]", lambda x: ops.mul(x, np.array([1.0, -0.0, 1.0], np.float32)), [((3,), F32)]),
    ("scalar*ones grows", lambda x: ops.mul(x, np.ones(3, np.float32)), [((), F32)]),
    ("f64->f32->f64", lambda x: ops.convert(ops.convert(x, np.float32), np.float64), [((3,), F64)]),
    ("f32->f64->i32", lambda x: ops.convert(ops.convert(x, np.float64), np.int32), [((3,), F32)]),
    ("i64->f64->i64", lambda x: ops.convert(ops.convert(x, np.float64), np.int64), [((3,), I64)]),
    ("i32->f32->i32", lambda x: ops.convert(ops.convert(x, np.float32), np.int32), [((3,), I32)]),
    ("where(c,x,y)", lambda x: ops.where(ops.gt(x, 0.0), x, ops.neg(x)), [((3,), F32)]),
    ("where grows", lambda x: ops.where(ops.gt(x, 0.0), 1.0, 1.0), [((3,), F32)]),
    ("integer_pow 2", lambda x: ops.integer_pow(x, 2), [((3,), F32)]),
    ("slice step -1", lambda x: ops.slice(x, (2,), (-1,), (3,)), [((3,), F32)]),
]


@pytest.mark.parametrize("case,fn,avals", NOT_SIMPLIFIED, ids=[c[0] for c in NOT_SIMPLIFIED])
def test_inexact_identities_are_not_applied(case, fn, avals):
    g = trace(fn, *avals)
    out, fired = simplify_counted(g)
    assert out is g and not fired


@pytest.mark.parametrize("src", sorted(LOSSLESS_WIDENING, key=str))
def test_convert_chains_collapse_only_where_exact(src):
    for mid in sorted(LOSSLESS_WIDENING[src], key=str):
        for dst in (F32, F64, I32, I64, BOOL):
            g = trace(lambda x, mid=mid, dst=dst: ops.convert(ops.convert(x, mid), dst), ((10,), src))
            out = verify(cleanup(g))
            run_both(g, out, example_args(g))
            if not (src.kind == "f" and dst.kind == "i"):
                assert len(out.eqns) <= 1, (src, mid, dst)


# ---- constant folding -------------------------------------------------------------

def _const_graph(make):
    b = GraphBuilder(record_source=False)
    x = b.new_input(ShapedArray((3,), F32))
    return b.build(list(make(b, x))), b


def test_fold_literals_to_a_literal_and_constants_to_a_constant():
    def make(b, x):
        lit = ops.add(literal_value(b, 2.0, F32), literal_value(b, -0.0, F32))
        c = ops.exp(const_value(b, special_values(F32)[:3]))
        return ops.mul(x, lit), ops.add(x, c), lit
    g, _ = _const_graph(make)
    out = verify(fold_constants(g))
    assert prims(out) == ["mul", "add"]
    assert isinstance(out.outvars[2], Literal) and out.outvars[2].value == 2.0
    assert isinstance(out.eqns[0].inputs[1], Literal)
    assert len(out.constvars) == 2
    run_both(g, out, example_args(g))
    assert fold_constants(out) is out


def test_fold_chains_and_never_aliases_an_existing_constant():
    def make(b, x):
        c = const_value(b, np.array([1.0, np.nan, -0.0], np.float32))
        return (ops.add(x, ops.stop_gradient(ops.neg(c))),)
    g, _ = _const_graph(make)
    out = verify(dce(fold_constants(g)))
    assert prims(out) == ["add"] and len(out.constvars) == 1
    assert not np.shares_memory(out.constvals[0], g.constvals[0])
    run_both(g, out, example_args(g))


def test_fold_keeps_broadcasts_of_scalars_and_large_results_symbolic():
    def make(b, x):
        big = ops.broadcast(literal_value(b, 1.5, F32), (2048, 2048))
        c = const_value(b, np.ones(8, np.float32))
        return ops.reduce_sum(big, (0, 1)), ops.exp(c), ops.add(x, 1.0)
    g, _ = _const_graph(make)
    # exp of a uniform constant folds to a broadcast of a literal, not an array constant
    assert prims(fold_constants(g)) == ["broadcast", "reduce_sum", "broadcast", "add"]
    assert prims(fold_constants(g, max_elements=4)) == ["broadcast", "reduce_sum", "exp", "add"]
    assert MAX_FOLDED_ELEMENTS < 2048 * 2048


def test_fold_leaves_an_equation_whose_reference_raises():
    b = GraphBuilder(record_source=False)
    x = b.new_input(ShapedArray((), BOOL))
    # numpy's subtract rejects bools: the error must stay a run-time one
    bad = ops.sub(literal_value(b, True, BOOL), literal_value(b, False, BOOL))
    g = b.build([x, bad])
    assert fold_constants(g) is g


# ---- random graphs: simplification never changes a result ---------------------------

FLOATS = (F32, F64)
INTS = (I32, I64)
SHAPES = [(), (4,), (2, 3), (2, 1, 3)]


def _perm(draw, n):
    return tuple(draw(st.permutations(range(n))))


def _transpose_detour(draw, x):
    y = ops.transpose(ops.transpose(x, _perm(draw, x.ndim)), _perm(draw, x.ndim))
    return ops.reshape(y, x.shape)


def _identity_transposes(draw, x):
    if x.ndim == 0:  # the reference's rank-0 transpose returns shape (1,): not exercised
        return x
    ident = tuple(range(x.ndim))
    return ops.bind("transpose", ops.bind("transpose", x, perm=ident), perm=ident)


def _broadcast_detour(draw, x):
    y = ops.broadcast(ops.broadcast(x, (2,) + x.shape), (3, 2) + x.shape)
    return ops.reduce_max(y, (0, 1)) if draw(st.booleans()) else ops.reduce_sum(y, (0, 1))


def _whole(prim):
    return lambda draw, x: ops.bind(prim, x, starts=(0,) * x.ndim, steps=(1,) * x.ndim,
                                    **{"sizes" if prim == "slice" else "shape": x.shape})


# Shape-preserving detours that give the structural rules work to do.
STRUCTURAL_DETOURS = {
    "transpose": _transpose_detour,
    "transpose_id": _identity_transposes,
    "reshape": lambda draw, x: ops.reshape(ops.reshape(x, (x.aval.size,)), x.shape),
    "broadcast": _broadcast_detour,
    "slice": _whole("slice"),
    "pad": _whole("pad"),
    **{p: (lambda q: lambda draw, x: ops.bind(q, x, axes=()))(p)
       for p in ["reduce_sum", "reduce_max", "reduce_min"]},
}


def _convert_round_trip(draw, x):
    mid = draw(st.sampled_from([F32, F64, I32, I64]))
    return ops.convert(ops.convert(x, mid), x.dtype)


def _compare_select(draw, x, y):
    c = ops.bind(draw(st.sampled_from(["lt", "le", "gt", "ge", "eq", "ne"])), x, y)
    return ops.where(c, x, y if draw(st.booleans()) else x)


def _with_literal(prim, value, left=False):
    def op(draw, x):
        return ops.bind(prim, value, x) if left else ops.bind(prim, x, value)
    return op


# (name, dtype kinds, arity, op(draw, *operands)); each op keeps its operand's shape
# (rank-0 operands of binary ops broadcast) and dtype.
def _unaries(kinds, names):
    return [(p, kinds, 1, (lambda q: lambda d, x: ops.bind(q, x))(p)) for p in names]


def _binaries(kinds, names):
    return [(p, kinds, 2, (lambda q: lambda d, x, y: ops.bind(q, x, y))(p)) for p in names]


def _literal_ops(kinds, cases):
    return [(f"{p}{v!r}{'L' if left else ''}", kinds, 1, _with_literal(p, v, left))
            for p, v, left in cases]


# (name, dtype kinds, arity, op(draw, *operands)); each op keeps its operand's shape
# (rank-0 operands of binary ops broadcast) and dtype.  Ordinary arithmetic:
MATH_OPS = [
    *_unaries("f", ["exp", "log", "sqrt", "sin", "tanh", "expm1", "log1p"]),
    *_unaries("fi", ["neg", "abs", "sign", "stop_gradient"]),
    ("integer_pow", "f", 1, lambda d, x: ops.integer_pow(x, d(st.sampled_from([-1, 0, 2, 3])))),
    ("integer_pow", "i", 1, lambda d, x: ops.integer_pow(x, d(st.sampled_from([0, 2])))),
    *_binaries("fi", ["add", "sub", "mul", "max", "min"]),
    *_binaries("f", ["div", "pow"]),
    ("select", "fi", 2, _compare_select),
]
# Shapes that the rules (or a wrong rule) would rewrite:
BAIT_OPS = [
    ("neg_neg", "fi", 1, lambda d, x: ops.neg(ops.neg(x))),
    ("sg_sg", "fi", 1, lambda d, x: ops.stop_gradient(ops.stop_gradient(x))),
    ("pow1", "fi", 1, lambda d, x: ops.integer_pow(x, 1)),
    ("convert", "fi", 1, _convert_round_trip),
    *[(k, "fi", 1, fn) for k, fn in STRUCTURAL_DETOURS.items()],
    *_literal_ops("f", [("mul", 1.0, False), ("mul", 1.0, True), ("div", 1.0, False),
                        ("sub", 0.0, False), ("sub", -0.0, False), ("add", 0.0, False),
                        ("add", -0.0, False), ("add", -0.0, True), ("add", 0.0, True),
                        ("mul", 0.0, False), ("mul", -1.0, False)]),
    *_literal_ops("i", [("mul", 1, False), ("mul", 1, True), ("sub", 0, False),
                        ("add", 0, True), ("mul", 0, False), ("div", 1, False)]),
    ("x-x", "fi", 1, lambda d, x: ops.sub(x, x)),
]


def _operands(draw, pool, arity):
    return [draw(st.sampled_from(pool)) for _ in range(arity)]


def _initial_pool(draw, b, shape, dtype):
    n_inputs = draw(st.integers(1, 3))
    pool = [b.new_input(ShapedArray(shape, dtype)) for _ in range(n_inputs)]
    if draw(st.booleans()):
        pool.append(const_value(b, filled(shape, dtype, draw(st.integers(0, 15)))))
    if draw(st.booleans()):
        value = draw(st.sampled_from(list(special_values(dtype))))
        pool.append(literal_value(b, value, dtype))
    return pool


@st.composite
def random_graphs(draw):
    dtype = draw(st.sampled_from(FLOATS + INTS))
    shape = draw(st.sampled_from(SHAPES))
    kind = "f" if dtype.kind == "f" else "i"
    menus = [[op for op in ops_ if kind in op[1]] for ops_ in (MATH_OPS, BAIT_OPS)]
    b = GraphBuilder(record_source=False)
    pool = _initial_pool(draw, b, shape, dtype)
    n_start = len(pool)
    for _ in range(draw(st.integers(1, 16))):
        _, _, arity, fn = draw(st.sampled_from(draw(st.sampled_from(menus))))
        pool.append(fn(draw, *_operands(draw, pool, arity)))
    if draw(st.booleans()):
        b.add_guard(draw(st.sampled_from(pool)), 0, "bool")
    if draw(st.booleans()):  # observe every value, so no wrong rewrite can hide in dead code
        outs = pool[n_start:]
    else:                    # or only a few, leaving dead code for DCE
        outs = [pool[-1]] + draw(st.lists(st.sampled_from(pool), max_size=2))
    graph = b.build(outs)
    # Every special value reaches every input position in one of the argument sets.
    n_special = len(special_values(dtype))
    return graph, [[filled(shape, dtype, o + 5 * i) for i in range(len(graph.invars))]
                   for o in range(n_special)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_cleaning_never_changes_results(case):
    graph, arg_sets = case
    before = snapshot(graph)
    with np.errstate(all="ignore"):
        want = [eval_graph(graph, *args, with_guards=True) for args in arg_sets]

    def check(after):
        verify(after)
        for args, (outs, guards) in zip(arg_sets, want):
            with np.errstate(all="ignore"):
                got_outs, got_guards = eval_graph(after, *args, with_guards=True)
            assert_bits_equal(got_outs + got_guards, outs + guards)

    current = graph
    for p in CLEANUP + CLEANUP:
        current = p(current)
        check(current)
    final = cleanup(graph)
    check(final)
    assert cleanup(final) is final  # a fixed point
    assert_snapshot_equal(before, snapshot(graph))  # the input graph is untouched


def _single_op_graph(draw, op, dtype, shape):
    _, _, arity, fn = op
    b = GraphBuilder(record_source=False)
    xs = [b.new_input(ShapedArray(shape, dtype)) for _ in range(arity)]
    if draw(st.booleans()):  # also feed it a computed value (a sign flip reaches -0.0, -inf)
        xs[0] = ops.neg(xs[0])
    return b.build([fn(draw, *xs)])


@pytest.mark.parametrize("op", BAIT_OPS + MATH_OPS, ids=[op[0] for op in BAIT_OPS + MATH_OPS])
@settings(max_examples=8, deadline=None)
@given(data=st.data(), shape=st.sampled_from([(), (2, 3)]))
def test_each_op_alone_keeps_every_special_value(op, data, shape):
    """Every op the random graphs use, alone, over every special value: a wrong
    rule cannot hide behind the odds of the random-graph generator."""
    dtypes = [d for d in FLOATS + INTS if ("f" if d.kind == "f" else "i") in op[1]]
    dtype = data.draw(st.sampled_from(dtypes))
    graph = _single_op_graph(data.draw, op, dtype, shape)
    out = verify(cleanup(graph))
    for offset in range(len(special_values(dtype))):
        run_both(graph, out, example_args(graph, offset))


# ---- cleanup computes exactly what rounds of the passes compute -----------------------

def assert_same_graph(got, want):
    """The same graph, not merely an equivalent one: the printed text, the constants'
    bytes and the very Var objects (so the same equations were kept)."""
    assert format_graph(got) == format_graph(want)
    assert list(got.constvars) == list(want.constvars)  # Vars compare by identity
    assert all(a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
               for a, b in zip(got.constvals, want.constvals))
    assert [e.out for e in got.eqns] == [e.out for e in want.eqns]
    assert all(a is b for a, b in zip(got.outvars, want.outvars) if isinstance(a, Var))
    assert [g.var for g in got.guards if isinstance(g.var, Var)] == \
        [g.var for g in want.guards if isinstance(g.var, Var)]


def assert_cleanup_by_rounds(graph, max_rounds=MAX_CLEANUP_ROUNDS):
    want = cleanup_by_rounds(graph, max_rounds)
    got = cleanup(graph, max_rounds)
    assert_same_graph(verify(got), want)
    assert (got is graph) == (want is graph)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs(), st.booleans())
def test_cleanup_equals_rounds_of_the_passes(case, short_chains):
    """`cleanup` revisits only what changed; the result must still be the rounds' own,
    however many rounds are allowed.  With one rewrite per equation per sweep,
    rule chains are cut short and resumed by the next sweep (or round), which
    the worklist must reproduce."""
    graph, _ = case
    before = snapshot(graph)
    graphs = [graph]
    if graph.invars[0].aval.dtype.kind == "f":
        graphs.append(vjp_graph(graph, verify=True))
    with pytest.MonkeyPatch.context() as mp:
        if short_chains:
            mp.setattr(simplify_module, "MAX_REWRITES_PER_EQN", 1)
        for g in graphs:
            for max_rounds in (1, 2, MAX_CLEANUP_ROUNDS):
                assert_cleanup_by_rounds(g, max_rounds)
    assert_snapshot_equal(before, snapshot(graph))


def test_cleanup_resumes_rule_chains_cut_short(monkeypatch):
    """reshape(reshape(x)) needs two rewrites of one equation; allowed one per sweep,
    the second happens on the next sweep, in the worklist as in the rounds."""
    monkeypatch.setattr(simplify_module, "MAX_REWRITES_PER_EQN", 1)
    g = trace(lambda x: ops.neg(ops.reshape(ops.reshape(x, (6,)), (2, 3))), ((2, 3), F32))
    for max_rounds in (1, MAX_CLEANUP_ROUNDS):
        assert prims(cleanup_by_rounds(g, max_rounds)) == ["neg"]
        assert_cleanup_by_rounds(g, max_rounds)


def test_cleanup_keeps_the_first_occurrence_when_an_earlier_equation_turns_duplicate():
    """Round 1 folds 0.5 + 0.5, round 2 rewrites x * 1.0 to x: the earlier sin(...)
    becomes sin(x), which a later equation already computed and which CSE keyed
    in round 1.  The rounds keep the earlier one, so must the worklist."""
    b = GraphBuilder(record_source=False)
    x = b.new_input(ShapedArray((3,), F32))
    one = ops.add(literal_value(b, 0.5, F32), literal_value(b, 0.5, F32))
    early, late = ops.sin(ops.mul(x, one)), ops.sin(x)
    g = b.build([late, early])
    want = cleanup_by_rounds(g)
    assert prims(want) == ["sin"] and want.outvars[0] is want.outvars[1] is early.var
    assert_cleanup_by_rounds(g)


def _recurrence(x, steps=12):
    """W7 in small: its gradient needs three rounds (folding feeds the rules)."""
    for _ in range(steps):
        x = ops.add(ops.mul(ops.sin(x), 0.9), ops.mul(ops.mul(0.1, x), x))
    return ops.reduce_sum(x, (0,))


def test_cleanup_of_a_gradient_equals_rounds_of_the_passes():
    g = verify(grad_graph(trace(_recurrence, ((16,), F64))))
    assert_cleanup_by_rounds(g)
    once = cleanup_by_rounds(g, 1)
    assert cleanup_by_rounds(once, 1) is not once  # the first round left work for the next
    for rounds in (1, 2):
        assert_cleanup_by_rounds(g, rounds)


def test_cleanup_of_a_clean_graph_is_the_graph():
    g = cleanup(verify(grad_graph(trace(_recurrence, ((4,), F32)))))
    assert cleanup(g) is g and cleanup_by_rounds(g) is g


# ---- the pass manager -------------------------------------------------------------

def _messy_graph():
    def f(x):
        _ = ops.exp(x)
        return ops.add(ops.mul(ops.sin(x), 1.0), ops.sin(x))
    return trace(f, ((3,), F32))


def test_run_pipeline_records_and_verifies_every_stage():
    g = _messy_graph()
    result = run_pipeline(g, CLEANUP, debug=True)
    assert isinstance(result, PipelineResult)
    names = [name for name, _ in result.stages]
    assert names == ["input", "simplify", "fold_constants", "cse", "dce"]
    assert result.stages[0][1] == format_graph(g)
    assert result.stages[-1][1] == format_graph(result.graph)
    assert prims(result.graph) == ["sin", "add"]
    assert "-- 04 dce --" in result.text() and result.text() == format_stages(result.stages)
    assert stage_text("dce", result.graph).startswith("-- dce --\n{ lambda")


def test_run_pipeline_without_debug_records_nothing(monkeypatch):
    monkeypatch.delenv("TRACEGRAD_DUMP", raising=False)
    result = run_pipeline(_messy_graph(), CLEANUP)
    assert result.stages == [] and prims(result.graph) == ["sin", "add"]


def test_debug_names_the_pass_that_broke_the_graph():
    def retype_output(graph):
        eqn = graph.eqns[0]
        bad = Eqn(eqn.prim, eqn.inputs, eqn.params, Var(ShapedArray((7,), F32)))
        return graph.replace(eqns=[bad] + graph.eqns[1:])
    with pytest.raises(PassVerifyError, match="retype_output") as info:
        run_pipeline(_messy_graph(), [simplify, retype_output, dce], debug=True)
    assert isinstance(info.value, VerifyError)
    assert [name for name, _ in info.value.stages] == ["input", "simplify"]
    run_pipeline(_messy_graph(), [retype_output])  # unchecked without debug


def test_pipeline_rejects_a_pass_that_returns_no_graph():
    with pytest.raises(TypeError, match="'nothing' returned NoneType"):
        run_pipeline(_messy_graph(), [_named(lambda g: None, "nothing")])


def _named(fn, name):
    fn.pass_name = name
    return fn


def test_pass_names_come_from_the_function_or_an_attribute():
    assert [pass_name(p) for p in CLEANUP] == ["simplify", "fold_constants", "cse", "dce"]
    assert pass_name(_named(lambda g: g, "mine")) == "mine"


def test_dump_env_var_is_read_at_call_time(tmp_path, monkeypatch):
    dump = tmp_path / "dumps" / "nested"
    monkeypatch.setenv("TRACEGRAD_DUMP", str(dump))
    result = run_pipeline(_messy_graph(), CLEANUP, label="f")
    files = sorted(os.listdir(dump))
    assert files == ["f-00-input.txt", "f-01-simplify.txt", "f-02-fold_constants.txt",
                     "f-03-cse.txt", "f-04-dce.txt"]
    assert (dump / "f-04-dce.txt").read_text() == format_graph(result.graph) + "\n"
    assert [n for n, _ in result.stages][-1] == "dce"


def test_dump_dir_argument_and_label_sanitizing(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACEGRAD_DUMP", raising=False)
    run_pipeline(_messy_graph(), [dce], dump_dir=str(tmp_path), label="my fn/1")
    assert sorted(os.listdir(tmp_path)) == ["my_fn_1-00-input.txt", "my_fn_1-01-dce.txt"]


def test_cleanup_reaches_a_fixed_point():
    def f(x):
        y = ops.reshape(ops.reshape(ops.neg(ops.neg(ops.mul(x, 1.0))), (6,)), (2, 3))
        z = ops.add(ops.sin(y), ops.sin(x))
        # where(c, a, a) only shows up once CSE has merged the two branches
        return ops.where(ops.gt(x, 0.0), ops.sub(z, 0.0), ops.sub(z, 0.0))
    g = trace(f, ((2, 3), F32))
    out = verify(cleanup(g))
    assert prims(out) == ["sin", "add"]
    assert cleanup(out) is out
    run_both(g, out, example_args(g))


def test_expansion_helpers_are_not_left_reading_a_redirected_value(monkeypatch):
    """reduce_sum(broadcast(broadcast(transpose(transpose(x))))) with one rewrite per sweep:
    the rule's helper equation (an Expansion, not yet in the state) read a value that a
    later sweep of the same state redirected; the state now restarts first."""
    monkeypatch.setattr(simplify_module, "MAX_REWRITES_PER_EQN", 1)
    b = GraphBuilder()
    x = b.new_input(ShapedArray((2, 3), np.int32))
    v = ops.transpose(ops.transpose(x, (1, 0)), (1, 0))
    v = ops.reduce_sum(ops.broadcast(ops.broadcast(v, (2, 2, 3)), (3, 2, 2, 3)), (0, 1))
    g = b.build([v])
    for max_rounds in (1, 2, MAX_CLEANUP_ROUNDS):
        assert_cleanup_by_rounds(g, max_rounds)
