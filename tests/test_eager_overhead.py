"""The eager hot paths with fewer layers (tracer/fast_ops.py, the plain backward rules of
tracer/autograd.py, the optimizers' scratch buffers) keep every semantic of the general
paths: the same values bit for bit (products within the order BLAS sums in), numpy's error state untouched outside them, version
counters, retain_graph, create_graph and gradient accumulation."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.ir.primitives import PRIMITIVES
from tracegrad.tracer import autograd as engine

RNG = np.random.default_rng(7)


def _leaves(shapes, dtype, grad=(True, True)):
    return [tg.tensor((RNG.standard_normal(s) + 2.5).astype(dtype), requires_grad=g)
            for s, g in zip(shapes, grad)]


def _grads(fn, leaves, general=False, monkeypatch=None):
    """fn's output and the leaves' gradients, through the plain rules or (general) without."""
    copies = [tg.tensor(t.data, requires_grad=t.requires_grad) for t in leaves]
    if general:
        monkeypatch.setattr(engine, "PLAIN_VJPS", {})
    out = fn(*copies)
    out.backward(tg.tensor(np.ones(out.shape, out.dtype) * 0.75))
    if general:
        monkeypatch.undo()
    return [out.data] + [None if t.grad is None else t.grad.data for t in copies]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x is None) == (y is None)
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)


CASES = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "rsub": lambda x, y: y - x,
    "mul": lambda x, y: x * y, "div": lambda x, y: x / y, "rdiv": lambda x, y: y / x,
    "neg": lambda x, y: -x * y, "tanh": lambda x, y: x.tanh() * y,
    "exp": lambda x, y: (x * 0.1).exp() + y, "square": lambda x, y: x * x + y,
    "literal": lambda x, y: (2.0 - x) / 3 + y * 0.5,
}
SHAPES = [((), ()), ((3,), (3,)), ((2, 3), (2, 3)), ((2, 3), (3,)), ((4, 1), (1, 3)),
          ((2, 3), ()), ((), (2, 3))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_plain_rules_give_the_general_rules_values(name, shapes, dtype, monkeypatch):
    for grad in ((True, True), (True, False), (False, True)):
        leaves = _leaves(shapes, dtype, grad)
        fast = _grads(CASES[name], leaves)
        _same(fast, _grads(CASES[name], leaves, general=True, monkeypatch=monkeypatch))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_sum_and_mean_rules_give_the_general_values(dtype, monkeypatch):
    x, w, b = _leaves([(5, 4), (4, 3), (3,)], dtype) + _leaves([(3,)], dtype)[:1]

    def mlp(x, w, b):
        return ((x @ w + b).tanh() * 2.0).mean() + (x @ w).sum()
    for grads in ((False, True, True), (True, True, False)):
        leaves = [tg.tensor(t.data, requires_grad=g) for t, g in zip((x, w, b), grads)]
        _same(_grads(mlp, leaves), _grads(mlp, leaves, general=True, monkeypatch=monkeypatch))


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-14)])
@pytest.mark.parametrize("n, k, m", [(1, 3, 2), (17, 33, 10), (64, 128, 31)])
def test_matmul_plain_rule_on_transposed_views_agrees_with_the_general_rule(n, k, m, dtype, rtol,
                                                                             monkeypatch):
    """The plain rule hands BLAS transposed views (no copies): the same sums, possibly
    added in another order (fast_ops._swapped)."""
    x, w = _leaves([(n, k), (k, m)], dtype)
    fast = _grads(lambda x, w: x @ w, [x, w])
    general = _grads(lambda x, w: x @ w, [x, w], general=True, monkeypatch=monkeypatch)
    for a, b in zip(fast, general):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0)


def test_rank0_operations_are_numpys_ufuncs_bit_for_bit():
    values = [0.0, -0.0, 1.5, -3.25, np.inf, -np.inf, np.nan, 1e308, 5e-324]
    ops = [(lambda x, y: x + y, np.add), (lambda x, y: x - y, np.subtract),
           (lambda x, y: x * y, np.multiply), (lambda x, y: x / y, np.true_divide)]
    for dtype in (np.float32, np.float64):
        for u in values:
            for v in values:
                with np.errstate(over="ignore"):  # 1e308 is inf in float32
                    x, y = (tg.tensor(np.asarray(t, dtype), requires_grad=True) for t in (u, v))
                for op, ufunc in ops:
                    with np.errstate(all="ignore"):
                        want = ufunc(x.data, y.data)
                    got = op(x, y)
                    assert got.dtype == dtype and got.shape == ()
                    assert np.asarray(want).tobytes() == got.data.tobytes()


def test_rank0_operations_warn_nothing_and_keep_numpys_error_state():
    x, y = (tg.tensor(np.asarray(v), requires_grad=True) for v in (np.inf, 0.0))
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        values = [(x - x).item(), (x * y).item()]  # nan and nan: numpy would raise here
        z = x / y  # inf; its backward divides by zero twice: 1/y and out/y
        z.backward()
        assert np.geterr()["invalid"] == "raise"  # the quiet state ended with each operation
        with pytest.raises(FloatingPointError):
            np.subtract(np.asarray(np.inf), np.asarray(np.inf))
    assert np.isnan(values).all() and x.grad.item() == np.inf and y.grad.item() == -np.inf


def test_custom_backward_runs_under_the_callers_error_state():
    seen = []

    class Probe(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, g):
            seen.append(np.geterr()["divide"])
            return g
    x = tg.tensor(np.asarray(2.0), requires_grad=True)
    with np.errstate(divide="warn"):
        (Probe.apply(x * 3.0) * 2.0).backward()
    assert seen == ["warn"] and x.grad.item() == 6.0


def test_arrays_still_go_through_the_primitives_run(monkeypatch):
    calls = []
    mul = PRIMITIVES["mul"]
    run = mul.run
    monkeypatch.setattr(mul, "run", lambda *a, **p: calls.append(1) or run(*a, **p))
    x, y = _leaves([(3,), (3,)], np.float64)
    (x * y).backward(tg.tensor(np.ones(3)))
    assert len(calls) == 3  # the forward and one cotangent per operand (native kernels apply)
    s, t = _leaves([(), ()], np.float64)
    (s * t).backward()
    assert len(calls) == 3  # rank 0: numpy's ufunc directly (no native kernel takes it)


def test_version_counters_still_guard_saved_operands():
    a, b = _leaves([(), ()], np.float64)
    y = a * b  # saves both operands' values
    with tg.no_grad():
        b += 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    c, d = _leaves([(2,), (2,)], np.float64)
    z = c + d  # add reads no values: in-place changes are allowed
    with tg.no_grad():
        d *= 2.0
    z.backward(tg.tensor(np.ones(2)))
    assert c.grad.data.tolist() == [1.0, 1.0]


def test_retain_graph_and_accumulation():
    a, b = _leaves([(), ()], np.float64)
    z = (a + b) * b
    z.backward(retain_graph=True)
    first = (a.grad.item(), b.grad.item())
    z.backward()
    assert (a.grad.item(), b.grad.item()) == (2 * first[0], 2 * first[1])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        z.backward()


def test_create_graph_keeps_second_order():
    a = tg.tensor(np.asarray(1.5), requires_grad=True)
    y = a * a * a - a / 2.0
    da, = tg.autograd.grad([y], [a], create_graph=True)
    assert da.item() == 3 * 1.5 ** 2 - 0.5 and da.requires_grad
    dda, = tg.autograd.grad([da], [a])
    assert dda.item() == 6 * 1.5


def test_gradients_of_shared_cotangents_are_separate_buffers():
    a, b = _leaves([(), ()], np.float32)
    (a + b).backward()
    assert not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.data[...] = 5.0
    assert b.grad.item() == 1.0


# ---- optimizers: the scratch buffer is only a place for temporaries -----------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, h", [
    (tg.optim.Adam, dict(lr=0.1)), (tg.optim.Adam, dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    (tg.optim.AdamW, dict(lr=0.05)), (tg.optim.Adam, dict(lr=0.1, maximize=True)),
    (tg.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)), (tg.optim.SGD, dict(lr=0.1))])
def test_in_place_rules_with_scratch_equal_them_without(cls, h, dtype):
    rng = np.random.default_rng(2)
    p0 = rng.standard_normal(6).astype(dtype)
    hyper = {**cls.defaults, **h}
    opt = cls(**h)
    plain, scratched = p0.copy(), p0.copy()
    s1, s2, scratch = opt._init_leaf(p0), opt._init_leaf(p0), np.empty_like(p0)
    for _ in range(4):
        g = rng.standard_normal(6).astype(dtype)
        cls.rule_(plain, g, s1, hyper)
        cls.rule_(scratched, g, s2, hyper, scratch)
    assert plain.tobytes() == scratched.tobytes()
    assert sorted(s1) == sorted(s2) and all(np.array_equal(s1[k], s2[k]) for k in s1)


def test_eager_step_state_holds_no_scratch():
    w = tg.tensor(np.ones(3, np.float32), requires_grad=True)
    opt = tg.optim.Adam([w], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
    assert sorted(opt.state[w]) == ["exp_avg", "exp_avg_sq", "step"] and int(opt.state[w]["step"]) == 2
    assert w.data.dtype == np.float32 and np.all(w.data < 1)


def test_adam_takes_betas_that_do_not_hash():
    w = tg.tensor(np.ones(2), requires_grad=True)
    v = tg.tensor(np.ones(2), requires_grad=True)
    opts = [tg.optim.Adam([w], lr=0.1, betas=(np.asarray(0.9), np.asarray(0.999))),
            tg.optim.Adam([v], lr=0.1)]
    for t, opt in zip((w, v), opts):
        for _ in range(2):
            opt.zero_grad()
            (t * t).sum().backward()
            opt.step()
    np.testing.assert_array_equal(w.data, v.data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_sums_of_large_arrays_equal_numpy(dtype):
    """The engine sums two cotangents of a large array natively: numpy's `+` bit for bit."""
    from tracegrad.tracer.autograd import _NATIVE_SUM_MIN, _sum
    rng = np.random.default_rng(3)
    a, b = (rng.normal(size=_NATIVE_SUM_MIN + 5).astype(dtype) for _ in range(2))
    got = _sum(a, b)
    assert got is not a and got is not b and got.dtype == dtype
    np.testing.assert_array_equal(got, a + b)
    mixed = _sum(a, b.astype(np.float64))  # other dtypes keep numpy's promotion
    assert mixed.dtype == np.result_type(a, np.float64)


def test_a_large_input_used_twice_gets_the_summed_gradient():
    x = tg.tensor(np.linspace(-2, 2, 1 << 17), requires_grad=True)
    (x.tanh() + x.exp()).sum().backward()
    v = np.linspace(-2, 2, 1 << 17)
    np.testing.assert_allclose(x.grad.numpy() if hasattr(x.grad, "numpy") else x.grad,
                               (1 - np.tanh(v) ** 2) + np.exp(v), rtol=1e-14)


def test_sum_backward_view_never_leaks_into_a_leaf_gradient():
    """The sum's backward is a read-only broadcast view: a leaf's .grad is its own
    writable copy, and accumulating into it works."""
    from tracegrad.tracer.fast_ops import SUM_VIEW_MIN
    shape = (4, SUM_VIEW_MIN // 4)
    x = tg.tensor(np.ones(shape), requires_grad=True)
    x.sum().backward()
    g = x.grad.numpy()
    assert g.flags.writeable and 0 not in g.strides
    np.testing.assert_array_equal(g, np.ones(shape))
    x.sum(axis=0).sum().backward()  # accumulates into the same .grad
    np.testing.assert_array_equal(x.grad.numpy(), np.full(shape, 2.0))
    y = tg.tensor(np.ones(shape), requires_grad=True)
    ((y * 3.0).sum() + y.sum()).backward()  # two cotangents of y summed: one a view
    np.testing.assert_array_equal(y.grad.numpy(), np.full(shape, 4.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_product_under_a_sum_shares_no_buffer_with_the_leaves(dtype):
    """Under a sum's seed of 1 the product's cotangents are its operands themselves
    (fast_ops._all_ones): the leaves still get gradients of their own."""
    x, y = (tg.tensor(RNG.standard_normal(70000).astype(dtype), requires_grad=True) for _ in range(2))
    (x * y).sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)
    np.testing.assert_array_equal(y.grad.data, x.data)
    assert not np.shares_memory(x.grad.data, y.data) and not np.shares_memory(y.grad.data, x.data)
    before = y.data.copy()
    x.grad.data[...] = 0.0
    np.testing.assert_array_equal(y.data, before)
    (x * x).sum().backward()  # accumulates 2x into x.grad, in place
    np.testing.assert_array_equal(x.grad.data, x.data + x.data)
    z = tg.tensor(RNG.standard_normal(5).astype(dtype), requires_grad=True)
    (z * 3.0 * z).sum().backward()
    np.testing.assert_allclose(z.grad.data, 6.0 * z.data, rtol=1e-6)


def test_product_gradients_are_owned_by_their_leaves():
    """A product's cotangents are fresh arrays (autograd.Fresh): kept without a copy, and
    accumulation into them leaves the operands alone."""
    x = tg.tensor(RNG.standard_normal((40, 30)), requires_grad=True)
    w = tg.tensor(RNG.standard_normal((30, 20)), requires_grad=True)
    ((x @ w).tanh().sum() + (x @ w).sum()).backward()
    h = np.tanh(x.data @ w.data)
    g = (1 - h * h) + 1.0
    np.testing.assert_allclose(w.grad.data, x.data.T @ g, rtol=1e-12)
    np.testing.assert_allclose(x.grad.data, g @ w.data.T, rtol=1e-12)
    for grad in (x.grad.data, w.grad.data):
        assert grad.flags.owndata and not np.shares_memory(grad, x.data) and not np.shares_memory(grad, w.data)


def test_retained_gradients_are_their_own_arrays():
    """Cotangents may be shared read-only (an operand passed through under a seed of 1, add's
    one g for both operands): a retained gradient is a copy, so writing into it changes
    nothing else."""
    x = tg.tensor(np.arange(1.0, 5.0), requires_grad=True)
    y = tg.tensor(np.arange(2.0, 6.0), requires_grad=True)
    u = x + 0.0
    u.retain_grad()
    (u * y).sum().backward()
    np.testing.assert_array_equal(u.grad.data, y.data)
    u.grad.data[...] = 0.0
    np.testing.assert_array_equal(y.data, np.arange(2.0, 6.0))
    v, w = x * 1.0, x * 1.0
    v.retain_grad()
    w.retain_grad()
    (v + w).sum().backward()
    v.grad.data[...] = 5.0
    np.testing.assert_array_equal(w.grad.data, np.ones(4))
