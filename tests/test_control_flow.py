"""cond, switch, while_loop, fori_loop and scan (tracer/control_flow.py,
ir/control_flow.py): eager and traced results against hand-written numpy
loops, the IR they make, edge cases and error messages.  Derivatives are in
test_control_flow_autodiff.py."""
from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.ir import (ConcretizationError, GraphBuilder, ShapeError, ShapedArray,
                          VerifyError, eval_graph, ops, verify)
from tracegrad.passes.dce import dce

F64 = np.float64


def _eqn_names(graph):
    return [e.prim.name for e in graph.eqns]


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---- the reference loops -----------------------------------------------------------

def rnn_params(hidden=4, inputs=3, steps=6, seed=0):
    rng = _rng(seed)
    return (rng.standard_normal((hidden, hidden)) * 0.5, rng.standard_normal((inputs, hidden)),
            rng.standard_normal(hidden), rng.standard_normal((steps, inputs)))


def rnn_numpy(W, U, b, xs):
    h, hs = np.zeros(W.shape[0]), []
    for x in xs:
        h = np.tanh(W @ h + x @ U + b)
        hs.append(h)
    return h, np.stack(hs)


def rnn_scan(W, U, b, xs):
    def step(h, x):
        h = np.tanh(W @ h + x @ U + b)
        return h, h
    return tg.scan(step, np.zeros(W.shape[0]), xs)


def newton_sqrt_numpy(a, tol=1e-12):
    x, steps = a, 0
    while abs(x * x - a) > tol:
        x = 0.5 * (x + a / x)
        steps += 1
    return x, steps


def newton_sqrt(a):
    def body(c):
        x, steps = c
        return 0.5 * (x + a / x), steps + 1
    return tg.while_loop(lambda c: np.abs(c[0] * c[0] - a) > 1e-12, body, (a, 0))


# ---- scan ----------------------------------------------------------------------------

def test_scan_rnn_eager_traced_and_numpy_agree():
    args = rnn_params()
    h_ref, hs_ref = rnn_numpy(*args)
    h, hs = rnn_scan(*args)
    np.testing.assert_allclose(h, h_ref, rtol=1e-14)
    np.testing.assert_allclose(hs, hs_ref, rtol=1e-14)
    prog = tg.trace(rnn_scan)(*args)
    assert _eqn_names(prog.graph) == ["scan"]
    h2, hs2 = prog(*args)
    np.testing.assert_allclose(h2, h_ref, rtol=1e-14)
    np.testing.assert_allclose(hs2, hs_ref, rtol=1e-14)


def test_scan_on_eager_tensors_records_grad_fns():
    W, U, b, xs = rnn_params()
    Wt = tg.tensor(W, requires_grad=True)
    h, hs = rnn_scan(Wt, U, b, xs)
    assert isinstance(h, tg.Tensor) and h.grad_fn is not None
    assert isinstance(hs, tg.Tensor) and hs.shape == (6, 4)
    np.testing.assert_allclose(hs.detach().data, rnn_numpy(W, U, b, xs)[1], rtol=1e-14)


def test_scan_reverse_reads_from_the_end_and_keeps_ys_aligned():
    xs = np.array([1.0, 2.0, 3.0])
    step = lambda c, x: (c * 10 + x, c)  # noqa: E731
    ref_c, ref_ys = 0.0, [0.0] * 3
    for i in reversed(range(3)):
        ref_ys[i] = ref_c
        ref_c = ref_c * 10 + xs[i]
    for run in (lambda xs: tg.scan(step, 0.0, xs, reverse=True),
                lambda xs: tg.trace(lambda v: tg.scan(step, 0.0, v, reverse=True))(xs)(xs)):
        c, ys = run(xs)
        assert float(c) == ref_c == 321.0
        assert ys.tolist() == ref_ys == [32.0, 3.0, 0.0]


def test_scan_without_xs_uses_length():
    def f(a):
        return tg.scan(lambda c, x: (c * a, c), F64(1.0), None, length=4)
    for c, ys in (f(F64(2.0)), tg.trace(f)(F64(2.0))(F64(2.0))):
        assert float(c) == 16.0 and ys.tolist() == [1.0, 2.0, 4.0, 8.0]


Pair = namedtuple("Pair", "pos vel")


def test_scan_pytree_carries_xs_and_ys():
    def f(p, xs):
        def step(c, x):
            new = Pair(c.pos + c.vel * p["dt"], c.vel + x["acc"])
            return new, {"pos": c.pos, "both": (c.pos, x["w"] * c.vel)}
        return tg.scan(step, Pair(np.zeros(2), np.ones(2)), xs)
    p = {"dt": F64(0.5)}
    xs = {"acc": _rng().standard_normal((5, 2)), "w": np.arange(5.0)}
    pos, vel, ref_pos, ref_both = np.zeros(2), np.ones(2), [], []
    for t in range(5):
        ref_pos.append(pos)
        ref_both.append(xs["w"][t] * vel)
        pos, vel = pos + vel * 0.5, vel + xs["acc"][t]
    for carry, ys in (f(p, xs), tg.trace(f)(p, xs)(p, xs)):
        assert isinstance(carry, Pair)
        np.testing.assert_allclose(carry.pos, pos, rtol=1e-14)
        np.testing.assert_allclose(ys["pos"], np.stack(ref_pos), rtol=1e-14)
        np.testing.assert_allclose(ys["both"][1], np.stack(ref_both), rtol=1e-14)


def test_zero_length_scan_eager_and_traced():
    step = lambda c, x: (c + x, {"y": c * 2.0, "n": x.sum()})  # noqa: E731
    xs = np.zeros((0, 3))
    for c, ys in (tg.scan(step, np.ones(3), xs),
                  tg.trace(lambda v: tg.scan(step, np.ones(3), v))(xs)(xs)):
        assert np.asarray(c).tolist() == [1.0, 1.0, 1.0]
        assert ys["y"].shape == (0, 3) and ys["n"].shape == (0,)
        assert ys["y"].dtype == np.float64


def test_printed_ir_does_not_grow_with_the_trip_count():
    texts = [str(tg.trace(rnn_scan)(*rnn_params(steps=t))) for t in (10, 1000)]
    assert texts[0].count("\n") == texts[1].count("\n")
    assert texts[0].replace("length=10 ", "").replace("[10,", "[") == \
        texts[1].replace("length=1000 ", "").replace("[1000,", "[")


def test_golden_printed_ir_of_an_rnn_step():
    W, U, b, xs = rnn_params(hidden=2, inputs=3, steps=5)
    expected = """\
{ lambda a:f64[2] ; b:f64[2,2] c:f64[3,2] d:f64[2] e:f64[5,3] . let
    t:f64[2] u:f64[5,2] = scan[length=5 num_carry=1 num_consts=3 reverse=False
      body={ lambda f:f64[2,2] g:f64[3,2] h:f64[2] i:f64[2] j:f64[3] . let
          k:f64[2,1] = reshape[shape=(2,1)] i
          l:f64[2,1] = dot f k
          m:f64[2] = reshape[shape=(2,)] l
          n:f64[1,3] = reshape[shape=(1,3)] j
          o:f64[1,2] = dot n g
          p:f64[2] = reshape[shape=(2,)] o
          q:f64[2] = add m p
          r:f64[2] = add q h
          s:f64[2] = tanh r
        in (s, s) }
    ] b c d a e
  in (t, u) }"""
    prog = tg.trace(rnn_scan)(W, U, b, xs)
    assert str(prog) == expected


def test_scan_closures_over_arrays_and_enclosing_traced_values():
    table = np.array([1.0, 2.0, 3.0])

    def f(w):
        # `table` is a numpy array (a body constant); `w` a value of the enclosing trace
        return tg.scan(lambda c, x: (c * w + x, c), F64(0.0), table)

    prog = tg.trace(f)(F64(0.5))
    scan_eqn = next(e for e in prog.graph.eqns if e.prim.name == "scan")
    assert scan_eqn.params["num_consts"] == 1 and scan_eqn.inputs[0] is prog.graph.invars[0]
    verify(prog.graph)  # the body reads no outer value
    c, ys = prog(F64(0.5))
    assert float(c) == 4.25 and ys.tolist() == [0.0, 1.0, 2.5]


def test_scan_inside_scan():
    xss = _rng().standard_normal((3, 4))

    def f(w, xss):
        def outer(total, xs):
            c, ys = tg.scan(lambda h, x: (np.tanh(h * w + x), h), total, xs)
            return c, ys.sum()
        return tg.scan(outer, F64(0.1), xss)

    total, sums = F64(0.1), []
    for xs in xss:
        h, acc = total, 0.0
        for x in xs:
            acc += h
            h = np.tanh(h * 0.7 + x)
        total = h
        sums.append(acc)
    for c, ys in (f(F64(0.7), xss), tg.trace(f)(F64(0.7), xss)(F64(0.7), xss)):
        np.testing.assert_allclose(c, total, rtol=1e-14)
        np.testing.assert_allclose(ys, sums, rtol=1e-14)
    text = str(tg.trace(f)(F64(0.7), xss))
    assert text.count("scan[") == 2


# ---- while_loop -------------------------------------------------------------------------

def test_while_newton_sqrt_eager_traced_and_numpy_agree():
    for a in (2.0, 10.0, 1e-3):
        ref_x, ref_steps = newton_sqrt_numpy(a)
        for x, steps in (newton_sqrt(F64(a)), tg.trace(newton_sqrt)(F64(2.0))(F64(a))):
            assert float(x) == ref_x and int(steps) == ref_steps


def test_while_traced_is_one_equation_without_guards():
    prog = tg.trace(newton_sqrt)(F64(2.0))
    assert _eqn_names(prog.graph) == ["while"] and not prog.guards


def test_while_loop_that_runs_zero_times():
    def f(x):
        return tg.while_loop(lambda c: c[0] > 100.0, lambda c: (c[0] * 2, c[1] + 1), (x, 0))
    for x, n in (f(F64(3.0)), tg.trace(f)(F64(3.0))(F64(3.0))):
        assert float(x) == 3.0 and int(n) == 0


def test_cond_inside_while_loop():
    def bounce(x):
        def body(c):
            k, v = c
            v = tg.cond(v > 1.0, lambda v: v * 0.5, lambda v: v * 3.0 + x, v)
            return k + 1, v
        return tg.while_loop(lambda c: c[0] < 7, body, (0, x))[1]

    def ref(x):
        v = x
        for _ in range(7):
            v = v * 0.5 if v > 1.0 else v * 3.0 + x
        return v
    prog = tg.trace(bounce)(F64(0.1))
    assert str(prog).count("cond[") == 1 and str(prog).count("while[") == 1
    for x in (0.1, 0.3, 2.0):
        assert float(bounce(F64(x))) == ref(x) == float(prog(F64(x)))


# ---- fori_loop ---------------------------------------------------------------------------

def test_fori_loop_static_bounds_is_a_scan_and_traced_bounds_a_while():
    body = lambda i, c: c * 0.5 + i  # noqa: E731
    ref = 1.0
    for i in range(2, 7):
        ref = ref * 0.5 + i
    prog = tg.trace(lambda x: tg.fori_loop(2, 7, body, x))(F64(1.0))
    assert _eqn_names(prog.graph) == ["scan"]
    assert prog.graph.eqns[0].params["length"] == 5
    assert float(prog(F64(1.0))) == ref == float(tg.fori_loop(2, 7, body, F64(1.0)))
    dyn = tg.trace(lambda x, n: tg.fori_loop(2, n, body, x))(F64(1.0), np.int64(7))
    assert "while" in _eqn_names(dyn.graph)
    assert float(dyn(F64(1.0), np.int64(7))) == ref
    assert float(dyn(F64(1.0), np.int64(0))) == 1.0  # upper below lower: no iteration


def test_fori_loop_index_dtype_and_zero_trips():
    seen = []
    tg.fori_loop(0, 3, lambda i, c: seen.append(np.asarray(i).dtype) or c, F64(0.0))
    assert seen == [np.dtype(np.int64)] * 3
    assert float(tg.fori_loop(5, 5, lambda i, c: c + 1.0, F64(2.0))) == 2.0
    prog = tg.trace(lambda x: tg.fori_loop(5, 3, lambda i, c: c + 1.0, x))(F64(2.0))
    assert float(prog(F64(2.0))) == 2.0


# ---- cond, switch -------------------------------------------------------------------------

def test_cond_traced_holds_both_branches_and_no_guard():
    def f(x):
        return tg.cond(x.sum() > 0, lambda v: v * 2.0, lambda v: np.sin(v), x)
    prog = tg.trace(f)(np.ones(3))
    assert not prog.guards and str(prog).count("cond[") == 1
    for x in (np.ones(3), -np.ones(3)):
        np.testing.assert_array_equal(prog(x), x * 2.0 if x.sum() > 0 else np.sin(x))
        np.testing.assert_array_equal(f(x), prog(x))


def test_cond_on_a_concrete_predicate_calls_one_branch():
    calls = []
    out = tg.cond(True, lambda x: calls.append("t") or x + 1, lambda x: calls.append("f") or x,
                  F64(1.0))
    assert float(out) == 2.0 and calls == ["t"]
    prog = tg.trace(lambda x: tg.cond(False, lambda v: v + 1, lambda v: v * 3, x))(F64(2.0))
    assert "cond" not in _eqn_names(prog.graph) and float(prog(F64(2.0))) == 6.0


def test_cond_with_numeric_predicate_and_pytrees():
    def f(p, x):
        return tg.cond(p, lambda d: {"a": d["x"] + 1, "b": (d["x"],)},
                       lambda d: {"a": d["x"] * 0, "b": (-d["x"],)}, {"x": x})
    prog = tg.trace(f)(F64(2.0), np.ones(2))
    for p in (F64(2.0), F64(0.0)):
        out = prog(p, np.ones(2))
        ref = f(p, np.ones(2))
        np.testing.assert_array_equal(out["a"], ref["a"])
        np.testing.assert_array_equal(out["b"][0], ref["b"][0])


def test_switch_clamps_the_index_like_jax():
    branches = [lambda x: x + 1, lambda x: x * 10, lambda x: -x]
    prog = tg.trace(lambda i, x: tg.switch(i, branches, x))(np.int64(0), F64(2.0))
    for i, expected in ((-5, 3.0), (0, 3.0), (1, 20.0), (2, -2.0), (9, -2.0)):
        assert float(tg.switch(i, branches, F64(2.0))) == expected
        assert float(prog(np.int64(i), F64(2.0))) == expected


def test_cond_index_is_clamped_by_the_primitive():
    b = GraphBuilder()
    i = b.new_input(ShapedArray((), np.int32))
    x = b.new_input(ShapedArray((), F64))
    branches = []
    for k in range(3):
        bb = GraphBuilder()
        v = bb.new_input(ShapedArray((), F64))
        branches.append(bb.build([ops.add(v, float(k))]))
    g = b.build(ops.cond(i, [x], branches))
    assert [float(eval_graph(g, np.int32(k), 1.0)[0]) for k in (-3, 0, 1, 2, 7)] == \
        [1.0, 1.0, 2.0, 3.0, 3.0]


# ---- weak scalars (JAX's rules) -------------------------------------------------------------

def test_weak_initial_carry_takes_the_dtype_the_body_returns():
    # A Python-scalar initial value is weak: when the body returns another dtype for
    # it, the loop is traced again with the carry of that dtype (JAX's rule).  Inside
    # the body the carry is an array, so NumPy's promotion gives that dtype.
    f = lambda x: tg.fori_loop(0, 3, lambda i, c: c + x, 0)  # noqa: E731  int init, float body
    for x in (F64(0.5), np.float32(0.5)):
        out, traced = f(x), tg.trace(f)(x)(x)
        expected = np.result_type(np.int64, x.dtype)
        assert out.dtype == traced.dtype == expected and float(out) == float(traced) == 1.5
    w = tg.while_loop(lambda c: c < 2.5, lambda c: c + 1.0, 0)
    traced = tg.trace(lambda x: tg.while_loop(lambda c: c < x, lambda c: c + 1.0, 0))(F64(2.5))
    assert np.asarray(w).dtype == traced.out_avals[0].dtype == np.float64 and float(w) == 3.0


def test_python_scalar_returned_for_a_carry_takes_its_dtype():
    c, ys = tg.scan(lambda c, x: (0.0, c), np.float32(1.0), np.zeros(2, np.float32))
    assert np.asarray(c).dtype == np.float32
    prog = tg.trace(lambda x: tg.scan(lambda c, v: (0.0, c), x, np.zeros(2, np.float32)))(
        np.float32(1.0))
    assert all(v.aval.dtype == np.float32 for v in prog.graph.outvars)
    out = tg.trace(lambda x: tg.cond(x > 0, lambda v: 1.0, lambda v: v, x))(np.float32(2.0))(
        np.float32(2.0))
    assert out.dtype == np.float32 and float(out) == 1.0


# ---- errors ---------------------------------------------------------------------------------

def test_carry_dtype_mismatch_names_the_path_and_both_types():
    xs = np.ones((3, 2), np.float32)
    with pytest.raises(TypeError) as info:
        tg.trace(lambda v: tg.scan(lambda c, x: ({"h": c["h"] * F64(2.0)}, None),
                                   {"h": np.ones(2, np.float32)}, v))(xs)
    msg = str(info.value)
    assert "scan body function carry" in msg and "carry['h']" in msg
    assert "float32[2]" in msg and "float64[2]" in msg and "dtypes do not match" in msg
    with pytest.raises(TypeError, match=r"carry\['h'\].*float32\[2\].*float64\[2\]"):
        tg.scan(lambda c, x: ({"h": c["h"] * F64(2.0)}, None), {"h": np.ones(2, np.float32)}, xs)


def test_carry_shape_and_structure_mismatches():
    with pytest.raises(TypeError, match=r"val\[1\] has type float64\[\] .* float64\[3\], so the "
                                        r"shapes do not match"):
        tg.trace(lambda x: tg.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] + x),
                                         (0, F64(0.0))))(np.ones(3))
    with pytest.raises(TypeError, match=r"(?s)same pytree structure.*input carry val is a tuple "
                                        r"of length 2 .* a tuple of length 3"):
        tg.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1], c[1]), (0, F64(0.0)))
    with pytest.raises(TypeError, match=r"(?s)fori_loop body_fun .* val\['a'\] has type "
                                        r"float64\[\] but .* int64\[\]"):
        tg.fori_loop(0, 2, lambda i, v: {"a": i}, {"a": F64(0.0)})


def test_branch_type_mismatch_and_predicate_errors():
    with pytest.raises(TypeError, match=r"(?s)true_fun and false_fun output must have identical "
                                        r"types.*out\[1\] of true_fun has type float64\[2\] "
                                        r"but that of false_fun has type float64\[3\]"):
        tg.trace(lambda x: tg.cond(x[0] > 0, lambda v: (v, v[:2]), lambda v: (v, v), x))(
            np.ones(3))
    with pytest.raises(TypeError, match="same pytree structure"):
        tg.trace(lambda x: tg.cond(x > 0, lambda v: (v, v), lambda v: v, x))(F64(1.0))
    with pytest.raises(TypeError, match="Pred must be a scalar"):
        tg.trace(lambda x: tg.cond(x > 0, lambda v: v, lambda v: v, x))(np.ones(3))
    with pytest.raises(TypeError, match="cond_fun must return a boolean scalar"):
        tg.trace(lambda x: tg.while_loop(lambda c: c, lambda c: c - 1.0, x))(F64(3.0))
    with pytest.raises(TypeError, match="cond_fun must return a boolean scalar"):
        tg.while_loop(lambda c: c, lambda c: c - 1.0, F64(3.0))


def test_scan_argument_errors():
    with pytest.raises(TypeError, match=r"must return a pair \(carry, y\)"):
        tg.scan(lambda c, x: c, 0.0, np.ones(3))
    with pytest.raises(ValueError, match="different leading axis sizes"):
        tg.scan(lambda c, x: (c, x), 0.0, (np.ones(3), np.ones(4)))
    with pytest.raises(ValueError, match="disagrees"):
        tg.scan(lambda c, x: (c, x), 0.0, np.ones(3), length=4)
    with pytest.raises(ValueError, match="no leading axis"):
        tg.scan(lambda c, x: (c, x), 0.0, F64(1.0))
    with pytest.raises(ValueError, match="`length` not provided"):
        tg.scan(lambda c, x: (c, x), 0.0, None)


def test_python_decision_inside_a_body_suggests_cond():
    def f(x):
        return tg.scan(lambda c, v: (c + v if v > 0 else c, c), F64(0.0), x)
    with pytest.raises(ConcretizationError, match="tracegrad.cond"):
        tg.trace(f)(np.ones(3))
    # eagerly, the same code is a Python loop and works
    assert float(f(np.array([1.0, -2.0, 3.0]))[0]) == 4.0


# ---- the primitives' own checks and DCE rules ------------------------------------------------

def _body(in_avals, fn):
    b = GraphBuilder()
    ins = [b.new_input(a) for a in in_avals]
    return b.build(list(fn(*ins)))


def test_shape_rules_reject_bodies_that_do_not_fit():
    s = ShapedArray((), F64)
    b = GraphBuilder()
    x, xs = b.new_input(s), b.new_input(ShapedArray((4,), F64))
    to_f32 = _body([s, s], lambda c, v: [ops.convert(c, np.float32), v])
    with pytest.raises(ShapeError, match="carry outputs of body"):
        ops.scan([], [x], [xs], to_f32, 4)
    good = _body([s, s], lambda c, v: [ops.add(c, v), v])
    with pytest.raises(ShapeError, match="leading axis of length 5"):
        ops.scan([], [x], [xs], good, 5)
    not_bool = _body([s], lambda c: [c])
    with pytest.raises(ShapeError, match="cond_graph must return one bool"):
        ops.while_([], [], [x], not_bool, _body([s], lambda c: [c]))


def test_verifier_rejects_a_body_reading_an_outer_value():
    b = GraphBuilder()
    x, xs = b.new_input(ShapedArray((), F64)), b.new_input(ShapedArray((3,), F64))
    outer = ops.exp(x)
    body = _body([x.aval, x.aval], lambda c, v: [ops.add(c, v), c])
    g = b.build(ops.scan([], [outer], [xs], body, 3))
    leaky = body.eqns[0]
    leaky.inputs = [leaky.inputs[0], outer.var]  # the body now reads the outer `exp`
    with pytest.raises(VerifyError, match="unbound"):
        verify(g)


def test_dce_drops_unused_carries_ys_and_operands():
    def f(x, xs):
        def step(c, v):
            a, b, unused = c
            return (a * v, b + 1.0, unused + a), (v * 2.0, b)
        (a, b, unused), (ys, bs) = tg.scan(step, (x, x, x), xs)
        return a
    g = dce(tg.trace(f)(F64(1.0), np.arange(3.0)).graph)
    eqn, = g.eqns
    assert eqn.params["num_carry"] == 1 and len(eqn.outs) == 1
    assert len(eqn.params["body"].eqns) == 1
    assert float(eval_graph(g, 1.0, np.arange(1.0, 4.0))[0]) == 6.0


def test_dce_keeps_carries_the_condition_reads():
    def f(x):
        i, a, b = tg.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2, c[2] + c[1]),
                                (0, x, x))
        return a
    g = dce(tg.trace(f)(F64(1.0)).graph)
    eqn, = g.eqns
    assert len(eqn.outs) == 2  # the counter stays: the condition reads it
    assert float(eval_graph(g, 1.0)[0]) == 8.0


def test_dce_drops_unused_branch_outputs_and_operands():
    def f(x, y):
        return tg.cond(x > 0, lambda a, b: (a, b * 2), lambda a, b: (-a, b), x, y)[0]
    g = dce(tg.trace(f)(F64(1.0), F64(2.0)).graph)
    cond_eqn = g.eqns[-1]
    assert len(cond_eqn.outs) == 1 and len(cond_eqn.inputs) == 2
    assert [float(eval_graph(g, v, 2.0)[0]) for v in (1.0, -1.0)] == [1.0, 1.0]


# ---- compiled mode ---------------------------------------------------------------------------

def test_jit_of_a_scan_matches_eager():
    args = rnn_params()
    h, hs = tg.jit(rnn_scan)(*args)
    np.testing.assert_allclose(hs, rnn_numpy(*args)[1], rtol=1e-12)


def test_networkx_and_dot_exports_hold_the_bodies():
    prog = tg.trace(rnn_scan)(*rnn_params())
    graph = prog.to_networkx()
    assert graph.number_of_nodes() > 0
    dot = prog.to_dot()
    assert "scan" in dot and "tanh" in dot  # the body's equations are drawn too


def test_jax_keywords_unroll_and_operand():
    """JAX's `unroll` hint (checked, results unchanged) and cond's `operand=`."""
    xs = np.arange(4.0)
    step = lambda c, x: (c + x, c * x)  # noqa: E731
    for unroll in (0, 1, 3, True):  # JAX takes any non-negative int
        carry, ys = tg.scan(step, 0.0, xs, unroll=unroll)
        assert float(carry) == 6.0 and ys.tolist() == [0.0, 0.0, 2.0, 9.0]
    with pytest.raises(ValueError, match="unroll"):
        tg.scan(step, 0.0, xs, unroll=-1)
    assert tg.scan(lambda c, _: (c + 1, c), 0.0, None, length=3.0)[1].tolist() == [0, 1, 2]
    with pytest.raises(TypeError, match="length must be"):
        tg.scan(lambda c, _: (c + 1, c), 0.0, None, length=2.5)
    assert int(tg.fori_loop(0, 4, lambda i, v: v + i, 0, unroll=2)) == 6
    assert float(tg.jit(lambda x: tg.fori_loop(0, 4, lambda i, v: v + x[i], 0.0,
                                               unroll=4))(xs)) == 6.0
    assert float(tg.cond(False, lambda v: v + 1, lambda v: v - 1, operand=np.float64(2.0))) == 1.0
    with pytest.raises(TypeError, match="not both"):
        tg.cond(True, lambda v: v, lambda v: v, 1.0, operand=2.0)


def test_switch_clamps_an_int64_index_before_narrowing_it():
    branches = [lambda x: x * 0.0, lambda x: x * 0.0 + 1.0, lambda x: x * 0.0 + 2.0]
    f = lambda i, x: tg.switch(i, branches, x)   # noqa: E731
    for i, want in ((2**31, 2.0), (2**32 + 1, 2.0), (2**62, 2.0), (-2**31 - 1, 0.0), (1, 1.0)):
        i = np.int64(i)
        assert float(tg.jit(f)(i, 1.0)) == want
        assert float(tg.trace(f)(i, 1.0)(i, 1.0)) == want
        assert float(tg.switch(i, branches, 1.0)) == want


def test_a_guarded_program_applied_in_a_body_is_refused():
    """A traced program's guards (its Python decisions) cannot be checked per iteration:
    applied inside a scan or cond body, it raises instead of running the traced branch
    for every input (which returned the wrong branch's values)."""
    def f(x):
        if x.sum() > 0:
            return x * 2
        return x - 1
    prog = tg.trace(f)(np.ones(3))
    xs = np.stack([np.ones(3), -3 * np.ones(3)])
    with pytest.raises(ConcretizationError, match="holds guards"):
        tg.jit(lambda xs: tg.scan(lambda c, x: (c, prog(x)), 0.0, xs)[1])(xs)
    with pytest.raises(ConcretizationError, match="holds guards"):
        tg.jit(lambda x: tg.cond(x[0] < 5, prog, lambda z: z, x))(xs[1])
    plain = tg.trace(lambda x: x * 3)(np.ones(3))  # no guards: fine in a body
    out = tg.jit(lambda xs: tg.scan(lambda c, x: (c, plain(x)), 0.0, xs)[1])(xs)
    np.testing.assert_array_equal(out, xs * 3)


def test_eager_loops_over_numpy_arrays_are_values():
    """A body updating its carry in place: each y is the step's value, the caller's arrays
    are untouched, and eager agrees with jit (the traced loop's value semantics)."""
    def body(c, x):
        c[0] += x
        return c, c
    init, xs = np.zeros(2), np.array([1.0, 2.0, 3.0])
    carry, ys = tg.scan(body, init, xs)
    want = tg.jit(lambda i, x: tg.scan(body, i, x))(np.zeros(2), xs)
    assert ys.tolist() == [[1, 0], [3, 0], [6, 0]] == want[1].tolist()
    assert carry.tolist() == [6, 0] and init.tolist() == [0, 0] and xs.tolist() == [1, 2, 3]

    def bump(c):
        c[0] += 1
        return c
    assert tg.while_loop(lambda c: c[0] < 3, bump, init).tolist() == [3, 0]
    assert init.tolist() == [0, 0]


def test_eager_loops_over_tensors_are_values_with_gradients():
    """Tensors too (hunt L2): the initial carry is cloned and a y sharing the carry's
    memory is cloned, so in-place bodies give jit's ys and gradients and leave the
    caller's tensor alone."""
    def body(c, x):
        c += x
        return c, c
    xs = np.ones((3, 2))
    t = tg.tensor(np.array([1., 2.]))
    ys = tg.scan(body, t, xs)[1]
    assert ys.numpy().tolist() == [[2, 3], [3, 4], [4, 5]] and t.numpy().tolist() == [1, 2]
    w = tg.tensor(np.array([1., 2.]), requires_grad=True)
    (tg.scan(body, w * 1.0, xs)[1] ** 2).sum().backward()
    want = tg.compile_grad(lambda a: (tg.scan(body, a, xs)[1] ** 2).sum())(np.array([1., 2.]))[1][0]
    np.testing.assert_allclose(w.grad.numpy(), want)
    np.testing.assert_allclose(want, [18., 24.])
    t = tg.tensor(np.array([1., 2.]))
    out = tg.while_loop(lambda c: c.sum() < 10, lambda c: c.__imul__(2), t)
    assert out.numpy().tolist() == [4, 8] and t.numpy().tolist() == [1, 2]


def test_eager_zero_length_scan_over_a_tensor_gives_tensors():
    t = tg.tensor(np.array([1., 2.]), requires_grad=True)
    c, ys = tg.scan(lambda c, x: (c * x, c.sum()), t, np.zeros((0, 2)))
    assert isinstance(ys, tg.Tensor) and ys.shape == (0,) and c is not t
    c.sum().backward()
    assert t.grad.numpy().tolist() == [1, 1]


def test_eager_fori_loop_without_steps_never_calls_the_body():
    A = np.arange(16.0).reshape(4, 4)
    assert tg.fori_loop(0, 0, lambda i, c: c + A[i, i], 0.0) == 0.0
    assert float(tg.fori_loop(0, 2, lambda i, c: c + A[i, i], 0.0)) == 5.0
    assert tg.fori_loop(3, 1, lambda i, c: c + (1.0 if c > 0 else 2.0), 0.0) == 0.0


def test_fori_index_widening_a_float32_carry_says_what_to_write():
    with pytest.raises(TypeError, match=r"float32\[\].*float64\[\][\s\S]*i.astype"):
        tg.fori_loop(0, 3, lambda i, c: c + i, np.float32(0))
    with pytest.raises(TypeError, match="i.astype"):
        tg.jit(lambda c: tg.fori_loop(0, 3, lambda i, v: v + i, c))(np.float32(0))
    out = tg.fori_loop(0, 3, lambda i, c: c + i.astype(c.dtype), np.float32(0))
    assert out.dtype == np.float32 and float(out) == 3.0


def test_eager_bodies_over_numpy_arrays_have_jax_at_updates():
    """A body written for JAX (`c.at[i].set(v)`) runs eagerly on NumPy carries and xs as it
    does traced; the results are plain NumPy arrays."""
    body = lambda i, c: c.at[i].set(2.0 * i)  # noqa: E731
    eager = tg.fori_loop(0, 3, body, np.zeros(3))
    traced = tg.jit(lambda z: tg.fori_loop(0, 3, body, z))(np.zeros(3))
    assert type(eager) is np.ndarray and eager.tolist() == traced.tolist() == [0, 2, 4]
    carry, ys = tg.scan(lambda c, x: (c.at[0].add(x.sum()), x.at[1].set(0.0)),
                        np.zeros(2), np.ones((3, 2)))
    assert carry.tolist() == [6, 0] and ys.tolist() == [[1, 0]] * 3 and type(ys) is np.ndarray
    out = tg.while_loop(lambda c: c[0] < 3, lambda c: c.at[0].add(1.0), np.zeros(2))
    assert type(out) is np.ndarray and out.tolist() == [3, 0]


def test_concrete_cond_branches_get_numpy_operands_with_at_updates():
    x = np.zeros(3)
    out = tg.cond(True, lambda v: v.at[1].set(5.0).at[2].add(1.0), lambda v: v, x)
    assert type(out) is np.ndarray and out.tolist() == [0, 5, 1] and x.tolist() == [0, 0, 0]
    out = tg.switch(0, [lambda v: v.at[()].add(2.0), lambda v: v], np.ones(()))
    assert type(out) is np.ndarray and float(out) == 3.0


def test_eager_loop_updates_chain_and_zero_trips_give_arrays():
    """`.at` results keep `.at` (chains, 0-d carries); a fori_loop with no steps gives the
    arrays a loop that runs would (a weak 0 is an int64 array), never the caller's object."""
    body = lambda i, c: c.at[0].add(1.0).at[1].set(i)  # noqa: E731
    assert tg.fori_loop(0, 3, body, np.zeros(3)).tolist() == [3, 2, 0]
    carry, ys = tg.scan(lambda c, x: (c.at[()].add(x), x.at[()].get()), np.zeros(()), np.arange(3.0))
    assert float(carry) == 3.0 and ys.tolist() == [0, 1, 2]
    init = np.ones(2)
    out = tg.fori_loop(0, 0, body, init)
    assert out is not init and out.tolist() == [1, 1]
    zero = tg.fori_loop(0, 0, body, 0)
    assert isinstance(zero, np.ndarray) and zero.dtype == np.int64
