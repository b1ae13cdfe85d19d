"""has_aux for grad / value_and_grad / compile_grad, and tracegrad.tree_util."""
from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import tree_util


def _loss_with_aux(w, x):
    y = np.tanh(x @ w)
    return np.sum(y * y), {"pred": y, "mean": np.mean(y)}


W, X = np.array([0.3, -0.2, 0.5]), np.arange(6.0).reshape(2, 3) / 6


def _want():
    y = np.tanh(X @ W)
    grad_w = X.T @ (2 * y * (1 - y * y))
    return np.sum(y * y), y, grad_w


def test_value_and_grad_has_aux():
    (value, aux), g = tg.value_and_grad(_loss_with_aux, has_aux=True)(W, X)
    want_value, want_y, want_g = _want()
    np.testing.assert_allclose(value, want_value)
    np.testing.assert_allclose(aux["pred"], want_y)
    np.testing.assert_allclose(g, want_g)


def test_grad_has_aux_and_higher_order():
    g, aux = tg.grad(_loss_with_aux, has_aux=True)(W, X)
    np.testing.assert_allclose(g, _want()[2])
    assert sorted(aux) == ["mean", "pred"]
    hvp = tg.grad(lambda w: np.sum(tg.grad(_loss_with_aux, has_aux=True)(w, X)[0]))(W)
    eps = 1e-6
    fd = [(np.sum(tg.grad(_loss_with_aux, has_aux=True)(W + eps * e, X)[0])
           - np.sum(tg.grad(_loss_with_aux, has_aux=True)(W - eps * e, X)[0])) / (2 * eps)
          for e in np.eye(3)]
    np.testing.assert_allclose(hvp, fd, rtol=1e-6)


def test_compile_grad_has_aux_matches_eager():
    f = tg.compile_grad(_loss_with_aux, argnums=0, has_aux=True)
    (value, aux), g = f(W, X)
    (ev, eaux), eg = tg.value_and_grad(_loss_with_aux, has_aux=True)(W, X)
    np.testing.assert_allclose(value, ev, rtol=1e-12)
    np.testing.assert_allclose(aux["pred"], eaux["pred"], rtol=1e-12)
    np.testing.assert_allclose(aux["mean"], eaux["mean"], rtol=1e-12)
    np.testing.assert_allclose(g, eg, rtol=1e-12)


def test_has_aux_needs_a_pair():
    with pytest.raises(TypeError, match=r"must return a pair \(value, aux\)"):
        tg.grad(lambda w: np.sum(w), has_aux=True)(W)
    with pytest.raises(TypeError, match="pair"):
        tg.compile_grad(lambda w: (np.sum(w), 1.0, 2.0), has_aux=True)(W)


class Linear:
    def __init__(self, w, b):
        self.w, self.b = w, b


tree_util.register_pytree_node(Linear, lambda m: ((m.w, m.b), None), lambda _, c: Linear(*c))


def test_registered_nodes_flatten_map_and_compile():
    model = Linear(np.ones((3, 2)), np.zeros(2))
    leaves, tree = tree_util.tree_flatten(model)
    assert len(leaves) == 2 and str(tree) == "PyTreeDef(Linear(*, *))"
    halved = tree_util.tree_map(lambda a: a / 2, model)
    assert isinstance(halved, Linear) and halved.w[0, 0] == 0.5

    def loss(m, x):
        return np.sum(np.tanh(x @ m.w + m.b))
    value, (g, _) = tg.compile_grad(loss)(model, np.ones((4, 3)))
    assert isinstance(g, Linear) and g.w.shape == (3, 2)
    eager = tg.grad(loss)(model, np.ones((4, 3)))
    np.testing.assert_allclose(g.w, eager.w, rtol=1e-12)
    assert tree_util.tree_reduce(lambda a, b: a + b, [1, (2, 3)]) == 6


def test_register_class_decorator_and_namedtuples():
    @tree_util.register_pytree_node_class
    class Scaled:
        def __init__(self, x, k):
            self.x, self.k = x, k

        def tree_flatten(self):
            return (self.x,), self.k

        @classmethod
        def tree_unflatten(cls, k, children):
            return cls(children[0], k)
    s = tree_util.tree_map(lambda a: a + 1, Scaled(np.zeros(2), 3))
    assert s.k == 3 and s.x.tolist() == [1.0, 1.0]
    P = namedtuple("P", "a b")
    assert tree_util.tree_leaves(P(1, [2, 3])) == [1, 2, 3]
    with pytest.raises(ValueError, match="already a pytree"):
        tree_util.register_pytree_node(dict, None, None)


def test_tree_map_matches_dict_entries_by_key_and_checks_structure():
    from tracegrad.tree_util import tree_map
    assert tree_map(lambda x, y: x - y, {"w": 1.0, "b": 10.0}, {"b": 2.0, "w": 3.0}) == \
        {"w": -2.0, "b": 8.0}
    assert tree_map(lambda x, y: (x, y), [1, 2], [[1, 2], 3]) == [(1, [1, 2]), (2, 3)]  # a prefix
    for a, b in [({"a": 1}, {"x": 1}), ((1, 2), [1, 2]), ([1, None], [2, 3]), ([1, 2], [1])]:
        with pytest.raises(ValueError, match="structure mismatch"):
            tree_map(lambda x, y: x, a, b)
    assert tree_map(lambda x: x * 2, {"a": (1, 2)}, is_leaf=lambda x: isinstance(x, tuple)) == \
        {"a": (1, 2, 1, 2)}


def test_functional_optimizer_with_a_parameter_named_step():
    params = {"step": np.ones(2), "w": np.ones(3)}
    opt = tg.optim.Adam(lr=0.1)
    new, state = opt.update({"step": np.ones(2), "w": np.ones(3)}, opt.init(params), params)
    new, state = opt.update({"step": np.ones(2), "w": np.ones(3)}, state, new)
    np.testing.assert_allclose(new["step"], 0.8)
    np.testing.assert_allclose(new["w"], 0.8)


def test_stop_gradient_takes_pytrees_and_lives_at_the_top_level():
    g = tg.grad(lambda p: np.sum(p["a"] * tg.stop_gradient(p)["b"]))(
        {"a": np.ones(2), "b": np.full(2, 3.0)})
    assert g["a"].tolist() == [3.0, 3.0] and g["b"].tolist() == [0.0, 0.0]


def test_logsumexp_takes_scipys_b_and_return_sign():
    a = np.random.default_rng(0).normal(size=(3, 4))
    b = np.random.default_rng(1).normal(size=(3, 4))
    s = np.sum(b * np.exp(a), axis=1)
    value, sign = tg.numpy.logsumexp(a, axis=1, b=b, return_sign=True)
    np.testing.assert_allclose(value, np.log(np.abs(s)), rtol=1e-12)
    np.testing.assert_array_equal(sign, np.sign(s))
    g = tg.grad(lambda x: np.sum(tg.numpy.logsumexp(x, axis=0, b=np.abs(b))))(a)
    w = np.abs(b) * np.exp(a)
    np.testing.assert_allclose(g, w / w.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(tg.numpy.logsumexp(a, 1, True), np.log(np.exp(a).sum(1, keepdims=True)))


def test_loop_bodies_may_build_their_dict_carry_in_another_key_order():
    init = {"c": np.zeros(2), "h": np.ones(2)}

    def body(i, s):
        return {"h": s["h"] * 2, "c": s["c"] + s["h"]}  # keys in another order, as JAX allows

    for run in (lambda s: tg.fori_loop(0, 3, body, s), tg.jit(lambda s: tg.fori_loop(0, 3, body, s))):
        out = run(init)
        assert list(out) == ["c", "h"] and out["c"].tolist() == [7, 7] and out["h"].tolist() == [8, 8]
    scanned = tg.jit(lambda s, xs: tg.scan(lambda s, x: ({"h": s["h"] + x, "c": s["c"]}, x), s, xs))
    assert scanned(init, np.ones((3, 2)))[0]["h"].tolist() == [4, 4]
    g = tg.grad(lambda s: tg.fori_loop(0, 3, body, s)["c"].sum())(init)
    assert g["c"].tolist() == [1, 1] and g["h"].tolist() == [7, 7]


def test_reduction_methods_take_numpys_where_initial_and_positions():
    x = np.arange(6.0).reshape(2, 3)
    for a in (x, tg.tensor(x)):
        assert float(a.sum(where=a > 1) if not isinstance(a, np.ndarray) else
                     tg.jit(lambda v: v.sum(where=v > 1))(a)) == 14.0
    got = tg.jit(lambda v: (v.max(initial=10.0), v.min(axis=1, where=v > 0, initial=99.0),
                            v.mean(where=v > 0), v.sum(0, None, None, True)))(x)
    assert float(got[0]) == 10.0 and got[1].tolist() == [1.0, 3.0] and float(got[2]) == 3.0
    assert got[3].tolist() == [[3.0, 5.0, 7.0]]


def test_round_nbytes_and_itemsize_on_tracegrad_arrays():
    got = tg.jit(lambda x: round(x * 1.0, 1))(np.array([1.26, 2.54]))
    np.testing.assert_allclose(got, [1.3, 2.5])
    t = tg.tensor(np.ones((2, 3), np.float32))
    assert (t.nbytes, t.itemsize) == (24, 4)


@pytest.mark.parametrize("mode", ["valid", "same", "full"])
def test_short_filters_correlate_as_shifted_slices(mode):
    rng = np.random.default_rng(0)
    s, k = rng.normal(size=5000), rng.normal(size=31)
    for fn in (np.convolve, np.correlate):
        got = tg.jit(lambda a, b, fn=fn: fn(a, b, mode))(s, k)
        np.testing.assert_allclose(got, fn(s, k, mode), rtol=1e-12, atol=1e-12)
    program = tg.trace(lambda a, b: np.convolve(a, b, mode))(s, k)
    assert "dot" not in str(program)  # no windows product for a short filter


def test_jit_returns_namedtuples_as_themselves():
    """A two-field namedtuple output took the flat-pair fast path and came back as a
    plain tuple (np.linalg.slogdet's SlogdetResult lost .sign and .logabsdet)."""
    Pair = namedtuple("Pair", "a b")
    out = tg.jit(lambda x: Pair(x, x * 2))(np.ones(2))
    assert type(out) is Pair and out.b.tolist() == [2.0, 2.0]
    res = tg.jit(np.linalg.slogdet)(np.eye(2) * 3)
    assert res.sign == 1.0 and np.isclose(res.logabsdet, 2 * np.log(3))
