"""float() guards of compiled functions (issue 10, item 3): rounding differences
between eager and compiled reductions are tolerated, and a guard that keeps
changing stops compiling after `max_specializations`, with one warning at the
user's line."""
import sys
import warnings

import numpy as np
import pytest

import tracegrad
from tracegrad.compile import SpecializationLimitWarning
from tracegrad.guards import GuardMismatch, settle, tolerance
from tracegrad.ir import Guard, eval_graph
from tracegrad.tracer import make_graph


def _sign_branch(x):
    if float(np.sum(x)) > 0:
        return x * 2.0
    return -x


def _rounding_sensitive_inputs(dtype, count=40):
    """Inputs whose compiled sum differs from numpy's in the last bits."""
    rng = np.random.default_rng(1)
    total = tracegrad.jit(np.sum)
    found = []
    for _ in range(400):
        x = rng.standard_normal(1000).astype(dtype)
        if float(total(x)) != float(np.sum(x)):
            found.append(x)
        if len(found) == count:
            break
    return found


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_float_guard_tolerates_the_rounding_of_compiled_sums(dtype):
    inputs = _rounding_sensitive_inputs(dtype, count=6)
    assert len(inputs) == 6, "the compiled sum should differ from numpy's for some inputs"
    f = tracegrad.jit(_sign_branch, max_specializations=len(inputs) + 1)
    for x in inputs:
        for _ in range(2):  # the second call reuses the first one's specialization
            np.testing.assert_allclose(f(x), _sign_branch(x), rtol=1e-6)
    info = f.cache_info()
    assert len(info) == len(inputs) and all(s["hits"] == 1 for s in info)


def test_a_settled_guard_expects_the_compiled_value_and_a_far_one_is_an_error():
    x = np.random.default_rng(0).standard_normal(1000)
    prog = make_graph(_sign_branch, (x,))
    (g,) = prog.graph.guards
    assert g.kind == "float" and float(g.expected) == float(np.sum(x))
    bound = tolerance(prog.graph, g, dict(zip(prog.graph.invars, [x])))
    eps = np.finfo(np.float64).eps
    assert bound == pytest.approx(8 * eps * 1001 * np.sum(np.abs(x)))
    near = np.float64(g.expected) + bound / 2
    (settled,) = settle(prog.graph, [x], [g], [np.asarray(near)])
    assert settled.expected == near and settled.holds(near) and not settled.holds(g.expected)
    assert g.expected == float(np.sum(x))  # the traced graph's guard is not changed
    with pytest.raises(GuardMismatch, match=r"rounding difference"):
        settle(prog.graph, [x], [g], [np.asarray(g.expected + 4 * bound)])


def test_the_tolerance_of_a_cancelling_sum_scales_with_the_magnitudes_summed():
    def centred(x):
        return x if float(np.sum(x - np.mean(x))) >= 0 else -x

    x = np.linspace(1e3, 2e3, 999)
    prog = make_graph(centred, (x,))
    (g,) = prog.graph.guards
    bound = tolerance(prog.graph, g, dict(zip(prog.graph.invars, [x])))
    assert abs(float(g.expected)) < 1e-9 < bound  # relative to the value it would be ~0
    f = tracegrad.jit(centred)
    for _ in range(3):
        np.testing.assert_array_equal(f(x), centred(x))


def test_a_comparison_that_flips_at_its_threshold_runs_uncompiled_with_a_warning():
    """The compiled sum decides the branch otherwise than the trace did: the call runs
    uncompiled (numpy's decision, as the function itself) and a warning names the line;
    after max_specializations such compiles the signature stops trying."""
    def f(x, c):
        return x if np.sum(x) >= c else -x

    x = _rounding_sensitive_inputs(np.float64, count=1)[0]
    compiled_sum = float(tracegrad.jit(np.sum)(x))
    threshold = max(compiled_sum, float(np.sum(x)))  # exactly one of the two reaches it
    jf = tracegrad.jit(f, static_argnums=1, max_specializations=2)
    for _ in range(2):
        with pytest.warns(tracegrad.SpecializationLimitWarning,
                          match=r"guard bool at .*test_correctness_guards.py:\d+.*uncompiled"):
            np.testing.assert_array_equal(jf(x, threshold), f(x, threshold))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the third call does not try to compile again
        np.testing.assert_array_equal(jf(x, threshold), f(x, threshold))
    assert max(jf._mismatches.values()) == 2


def _changing_float(x):
    return x * 2.0 if float(np.sum(x)) > 100.0 else x - 1.0


def _guard_line(fun, text):
    lines, start = __import__("inspect").getsourcelines(fun)
    return start + next(i for i, line in enumerate(lines) if text in line)


def test_a_guard_that_keeps_changing_stops_compiling_and_warns_once_at_its_line():
    f = tracegrad.jit(_changing_float, max_specializations=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(20):
            x = np.full(3, float(i * 10))
            np.testing.assert_array_equal(f(x), _changing_float(x))
    limit = [w for w in caught if issubclass(w.category, SpecializationLimitWarning)]
    assert len(limit) == 1 and len(caught) == 1
    (w,) = limit
    assert w.filename == __file__ and w.lineno == _guard_line(_changing_float, "float(np.sum")
    message = str(w.message)
    assert "guard float at" in message and "max_specializations=4" in message
    assert ".item() > c" in message
    assert len(f.cache_info()) == 4


def _changing_branch(x):
    if x[0] > x[1]:
        return x + 1.0
    return x - 1.0


def test_a_branch_guard_past_the_limit_advises_where():
    f = tracegrad.jit(_changing_branch, max_specializations=1)
    f(np.array([2.0, 1.0]))
    with pytest.warns(SpecializationLimitWarning, match="tracegrad.numpy.where") as record:
        np.testing.assert_array_equal(f(np.array([1.0, 2.0])), [0.0, 1.0])
    assert ".item()" not in str(record[0].message)
    assert record[0].lineno == _guard_line(_changing_branch, "if x[0] > x[1]")
    np.testing.assert_array_equal(f(np.array([3.0, 2.0])), [4.0, 3.0])  # the compiled one


def _two_branches(x):
    y = x + 1.0 if x[0] > 0 else x - 1.0
    return y * 2.0 if x[1] > 0 else y * 3.0


def test_the_signature_limit_warns_once_at_the_call_line():
    f = tracegrad.jit(_two_branches, max_specializations=3)
    for x in ([1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0]):
        f(np.array(x))
    assert len(f.cache_info()) == 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        out = [f(np.array([1.0, -1.0])) for _ in range(3)]
    (w,) = caught
    assert w.category is SpecializationLimitWarning and "3 specializations" in str(w.message)
    assert (w.filename, w.lineno) == (__file__, line)
    for o in out:
        np.testing.assert_array_equal(o, _two_branches(np.array([1.0, -1.0])))
    assert len(f.cache_info()) == 3


def test_compile_grad_past_the_limit_gives_the_same_values_and_gradients():
    def loss(w):
        scale = float(np.sum(w))  # a value guard that changes with every w
        return np.sum(np.sin(w) * scale)

    f = tracegrad.compile_grad(loss, max_specializations=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecializationLimitWarning)
        for i in range(4):
            w = np.linspace(0.0, 1.0, 5) + i
            value, (g,) = f(w)
            ref_value, ref_g = tracegrad.value_and_grad(loss)(w)
            np.testing.assert_allclose(value, ref_value, rtol=1e-12)
            np.testing.assert_allclose(g, ref_g, rtol=1e-12)
            assert type(g) is np.ndarray
    assert len(f.cache_info()) == 2


def test_guards_of_the_reference_interpreter_stay_exact():
    x = np.ones(3)
    prog = make_graph(_sign_branch, (x,))
    _, values = eval_graph(prog.graph, x, with_guards=True)
    assert all(isinstance(g, Guard) and g.holds(v) for g, v in zip(prog.guards, values))
    assert not prog.check_guards(x * (1 + 1e-15))


def test_a_float_guard_tells_negative_zero_from_zero():
    import math
    f = tracegrad.jit(lambda y: y + math.atan2(float(y), -1.0))
    assert f(np.array(0.0)) == math.pi
    assert f(np.array(-0.0)) == -math.pi  # not the specialization made for +0.0
    assert f(np.array(0.0)) == math.pi
    assert len(f.cache_info()) == 2


def test_cache_clear_forgets_the_keyword_variant_and_the_given_up_guards():
    w = np.array([1.0, 2.0])
    f = tracegrad.jit(lambda x, scale=1.0: x * w * scale)
    f(np.ones(2))
    f(np.ones(2), scale=2.0)
    assert len(f.cache_info()) == 2  # the keyword variant's specialization is listed
    w[:] = [10.0, 20.0]  # a closed-over constant: only a retrace sees it
    f.cache_clear()
    assert f.cache_info() == []
    np.testing.assert_array_equal(f(np.ones(2), scale=2.0), [20.0, 40.0])

    g = tracegrad.jit(lambda x: x * int(np.sum(x)), max_specializations=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecializationLimitWarning)
        for i in range(4):
            g(np.full(2, float(i)))
    g.cache_clear()
    for i in range(2):
        np.testing.assert_array_equal(g(np.full(2, float(i + 5))), np.full(2, (i + 5.0) * 2 * (i + 5)))
    assert len(g.cache_info()) == 2  # compiled again: the guard is no longer given up


def test_calls_past_the_limit_return_arrays_as_compiled_ones_do():
    f = tracegrad.jit(lambda x: {"k": int(np.sum(x)), "v": x * 2}, max_specializations=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecializationLimitWarning)
        outs = [f(np.full(2, float(i))) for i in range(3)]
    assert all(isinstance(o["k"], np.ndarray) and o["k"].shape == () for o in outs)
    assert [int(o["k"]) for o in outs] == [0, 2, 4]


def test_rounding_bound_counts_the_sums_inside_loops():
    from tracegrad import guards
    from tracegrad.tracer import make_graph
    A, x0 = np.full((4, 4), 0.5), np.ones(4)
    prog = make_graph(lambda a, x: tracegrad.scan(lambda c, _: (a @ c, None), x, None, length=3)[0],
                      (A, x0))
    eqn = next(e for e in prog.graph.eqns if e.prim.name == "scan")
    env = guards._bind(prog.graph, [A, x0])
    assert guards._summed(eqn, env) == (12, 8.0)   # 3 iterations of 4 terms; |A| |c| up to 8


def test_a_convergence_loop_rolled_into_a_scan_keeps_its_specialization():
    def solve(A, b):   # Jacobi: the residual comes from cancellation inside rolled dots
        x = np.zeros_like(b)
        r = b - A @ x
        while float(np.sqrt(np.sum(r * r))) > 1e-10:
            x = (b - (A @ x - np.diag(A) * x)) / np.diag(A)
            r = b - A @ x
        return x
    rng = np.random.default_rng(7)
    A, b = rng.normal(size=(4, 4)) + 6 * np.eye(4), rng.normal(size=4)
    f = tracegrad.jit(solve)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            np.testing.assert_allclose(f(A, b), np.linalg.solve(A, b), atol=1e-10)
    assert len(f.cache_info()) == 1
