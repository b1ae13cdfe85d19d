"""Fixes from hunts on compiled-call staleness and edge inputs: callable objects holding
arrays in containers are not static, pytree static parts are keyed by type, other
libraries' arrays inside tuples are dynamic, traced scalars hash by value, logsumexp with
zero weights, cond of a singular matrix, torch's 0-d dims."""
import numpy as np
import pytest

import tracegrad as tg


class Model:
    def __init__(self):
        self.params = {"W": np.eye(3) * 0.5, "layers": [np.ones(3)]}

    def __call__(self, x):
        return self.params["W"] @ x + self.params["layers"][0]

    def predict(self, x):
        return self(x)


@pytest.mark.parametrize("call", [lambda m, x: m(x), lambda m, x: m.predict(x)])
def test_a_model_holding_weights_in_a_dict_is_not_a_silent_static(call):
    m = Model()
    with pytest.raises(TypeError, match="hashes by identity"):
        tg.jit(lambda model, x: call(model, x))(m, np.ones(3))


def test_bound_method_of_a_model_with_nested_weights_is_refused():
    m = Model()
    with pytest.raises(TypeError, match="hashes by identity"):
        tg.jit(lambda fn, x: fn(x))(m.predict, np.ones(3))


def test_compiled_functions_and_plain_callables_stay_static():
    g = tg.jit(lambda x: x * 2)
    g(np.ones(3))  # its caches now hold arrays: still a pure function of its arguments
    apply = tg.jit(lambda fn, x: fn(x))
    np.testing.assert_array_equal(apply(g, np.ones(3)), 2 * np.ones(3))
    assert apply(np.sum, np.ones(3)) == 3.0


class Scaled:
    def __init__(self, w, scale):
        self.w, self.scale = w, scale


tg.tree_util.register_pytree_node(Scaled, lambda s: ((s.w,), s.scale),
                                  lambda aux, children: Scaled(children[0], aux))


def test_pytree_static_parts_are_keyed_by_type_and_sign():
    f = tg.jit(lambda p, x: x // p.scale + p.w)
    x = np.arange(3)
    assert f(Scaled(np.zeros(3, np.int64), 2), x).dtype == np.int64
    out = f(Scaled(np.zeros(3, np.int64), 2.0), x)
    assert out.dtype == np.float64 and out.tolist() == [0.0, 0.0, 1.0]
    g = tg.jit(lambda p, x: x / p.scale + p.w)
    with np.errstate(divide="ignore"):
        assert g(Scaled(np.zeros(1), 0.0), np.ones(1))[0] == np.inf
        assert g(Scaled(np.zeros(1), -0.0), np.ones(1))[0] == -np.inf
    h = tg.jit(lambda d: [v * (5.0 if isinstance(k, float) else 1.0) for k, v in d.items()][0])
    assert h({1: np.ones(2)}).tolist() == [1.0, 1.0]
    assert h({1.0: np.ones(2)}).tolist() == [5.0, 5.0]


def test_a_torch_tensor_inside_a_tuple_is_a_dynamic_array():
    torch = pytest.importorskip("torch")
    f = tg.jit(lambda x, ws: x * ws[0])
    w = torch.ones(3, dtype=torch.float64)
    np.testing.assert_array_equal(f(np.ones(3), (w,)), np.ones(3))
    w.mul_(5)
    np.testing.assert_array_equal(f(np.ones(3), (w,)), 5 * np.ones(3))


RATES = {0: 0.5, 1: 2.0, 2: 4.0}


def rated(x, mode):
    k = mode[0]
    return x * RATES.get(k, 1.0) + (10.0 if k in {1, 2} else 0.0)


def test_dict_and_set_lookups_by_a_traced_element_use_its_value():
    f, x = tg.jit(rated), np.ones(2)
    for m in [1, 2, 0, 5, 1, 2]:
        np.testing.assert_array_equal(f(x, np.array([m])), rated(x, np.array([m])))
    # arrays of several elements key dicts by identity, as tensors (torch's `{w: "weight"}`)
    assert tg.jit(lambda x: {x: 1}[x] * x)(np.ones(2)).tolist() == [1.0, 1.0]


def test_a_cache_keyed_by_a_traced_scalar_misses_across_traces():
    import functools

    @functools.lru_cache(maxsize=None)
    def scale(k):
        return k * 2.0

    f = tg.jit(lambda x, k: x * scale(k[0]))
    k = np.array([1.5])
    np.testing.assert_array_equal(f(np.ones(2), k), [3.0, 3.0])
    np.testing.assert_array_equal(f(np.ones(3), k), [3.0, 3.0, 3.0])  # a new trace, same value


def test_logsumexp_ignores_terms_of_zero_weight_in_its_shift():
    a, b = np.array([1.0, 1000.0, 2.0]), np.array([1.0, 0.0, 2.0])
    expected = np.log(np.exp(1.0) + 2 * np.exp(2.0))
    value, grad = tg.value_and_grad(lambda a: tg.numpy.logsumexp(a, b=b))(a)
    np.testing.assert_allclose(value, expected, rtol=1e-15)
    weights = np.array([np.exp(1.0), 0.0, 2 * np.exp(2.0)])
    np.testing.assert_allclose(grad, weights / weights.sum(), rtol=1e-14)
    rows = np.stack([a, a + 1.0])
    out, sign = tg.jit(lambda r: tg.numpy.logsumexp(r, axis=1, b=b, return_sign=True))(rows)
    np.testing.assert_allclose(out, [expected, expected + 1.0], rtol=1e-15)
    assert sign.tolist() == [1.0, 1.0]
    gb = tg.grad(lambda w: tg.numpy.logsumexp(a, b=w))(b)  # d/db_i = exp(a_i - lse)
    np.testing.assert_allclose(gb[[0, 2]], np.exp(a[[0, 2]] - expected), rtol=1e-14)


@pytest.mark.parametrize("p", [None, 2, -2, "fro", 1, np.inf])
def test_cond_of_the_zero_matrix_is_inf_as_numpy(p):
    z = np.zeros((2, 2))
    with np.errstate(all="ignore"):
        expected = np.linalg.cond(z, p)
        assert tg.jit(lambda x: np.linalg.cond(x, p))(z) == expected
    assert np.isnan(tg.jit(lambda x: np.linalg.cond(x, p))(np.full((2, 2), np.nan)))


def test_torch_dims_of_a_0d_tensor():
    t = tg.tensor(3.0, requires_grad=True)
    values, indices = t.max(dim=0)
    assert float(values) == 3.0 and int(indices) == 0 and values.shape == ()
    values.backward()
    assert float(t.grad) == 1.0
    assert float(t.min(dim=-1).values) == 3.0 and float(t.mean(dim=0)) == 3.0
    assert float(t.logsumexp(0)) == 3.0
    with pytest.raises(IndexError, match="Dimension out of range"):
        t.max(dim=1)


def test_vmap_unmapped_tensor_is_readable_and_records_gradients():
    X, w0 = np.ones((4, 3)), np.array([1.0, 2.0, 3.0])

    def f(x, w):
        if float(np.sum(w)) > 0:  # a decision on the unmapped argument
            return x * w
        return x - w
    w = tg.tensor(w0, requires_grad=True)
    out = tg.vmap(f, in_axes=(0, None))(X, w)
    np.testing.assert_array_equal(out.detach().numpy(), X * w0)
    out.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), X.sum(0))
    neg = tg.tensor(-w0, requires_grad=True)
    np.testing.assert_array_equal(tg.vmap(f, in_axes=(0, None))(X, neg).detach().numpy(), X + w0)
