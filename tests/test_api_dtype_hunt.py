"""Fixes from a hunt of the transform API against JAX and of dtypes against NumPy 2:
np.array of float arguments warns, Jacobians of integer inputs, tangent dtypes, misspelt
static names, dict subclasses, narrow-int constants, `mean(dtype=int)`, powers of bools,
`cumsum(dtype=bool)`, `positive(bool)`, `astype(copy=, casting=)`."""
import collections

import numpy as np
import pytest

import tracegrad as tg


# ---- lists of numbers are arrays (numpy's reading); float arguments in np.array -----------

def test_a_list_of_floats_is_an_array_and_its_gradient_flows():
    value, (grad,) = tg.compile_grad(lambda l: l[0] * l[1] + np.sum(l))([2.0, 3.0])
    assert float(value) == 11.0 and grad.tolist() == [4.0, 3.0]
    assert tg.jit(lambda x, idx: x[idx])(np.arange(5.0), [0, 3]).tolist() == [0.0, 3.0]
    assert tg.jit(lambda shape: np.zeros(shape))((2, 3)).shape == (2, 3)  # tuples static


def test_plain_numpys_array_of_float_arguments_warns_that_the_derivative_is_cut():
    with pytest.warns(UserWarning, match="np.stack"):
        value, grads = tg.compile_grad(lambda a, b: np.sum(np.array([a, b])))(2.0, 3.0)
    assert float(value) == 5.0
    value, grads = tg.compile_grad(lambda a, b: np.sum(np.stack([a, b])))(2.0, 3.0)
    assert [float(g) for g in grads] == [1.0, 1.0]


# ---- Jacobians, tangents, static names, non-functions ---------------------------------------

@pytest.mark.parametrize("jac", [tg.jacfwd, tg.jacrev, tg.hessian])
def test_jacobians_of_integer_arguments_raise_as_grad_does(jac):
    with pytest.raises(TypeError, match="int64; derivatives need float32 or float64"):
        jac(lambda a: np.sum(a ** 3.0))(np.arange(3))


def test_jacrev_of_an_integer_output_raises():
    with pytest.raises(TypeError, match="an output has dtype int64"):
        tg.jacrev(lambda a: (a > 0).astype(np.int64))(np.ones(3))


def test_a_tangent_of_another_dtype_is_refused_as_jax_does():
    x = np.array([0.1, 0.2])
    with pytest.raises(TypeError, match="tangent 0 has dtype float32, expected float64"):
        tg.jvp(np.sin, (x,), (np.ones(2, np.float32),))
    with pytest.raises(TypeError, match="integer or bool input has no tangent"):
        tg.jvp(lambda i: i * 2.5, (np.arange(2),), (np.ones(2),))
    _, pullback = tg.vjp(np.sin, x)
    with pytest.raises(TypeError, match="cotangent 0 has dtype float32"):
        pullback(np.ones(2, np.float32))
    out, tangent = tg.jvp(np.sin, (np.float32(1.0),), (1.0,))  # a Python number is weak
    assert tangent.dtype == np.float32


def test_a_misspelt_static_name_or_a_position_past_the_parameters_raises():
    def f(a, *, act_fn=np.tanh):
        return act_fn(a)
    with pytest.raises(ValueError, match=r"static_argnames names \['actfn'\]"):
        tg.jit(f, static_argnames="actfn")
    with pytest.raises(ValueError, match="takes 1 positional arguments"):
        tg.jit(lambda a: a, static_argnums=3)
    tg.jit(lambda *a, **k: a, static_argnums=3, static_argnames="anything")  # may be passed


@pytest.mark.parametrize("transform", [tg.jit, tg.compile_grad, tg.grad, tg.vmap, tg.jacfwd])
def test_a_transform_of_a_non_function_raises_at_once(transform):
    with pytest.raises(TypeError, match="expected a function"):
        transform(3)


# ---- dict subclasses keep their type ----------------------------------------------------------

def test_ordered_dicts_and_defaultdicts_come_back_as_their_own_type():
    od = collections.OrderedDict([("b", np.ones(3)), ("a", 2.0)])
    assert type(tg.grad(lambda p: np.sum(p["a"] * p["b"]))(od)) is collections.OrderedDict
    assert type(tg.jit(lambda p: p)(od)) is collections.OrderedDict
    dd = collections.defaultdict(list, {"w": np.ones(2)})
    out = tg.jit(lambda p: p)(dd)
    assert type(out) is collections.defaultdict and out.default_factory is list


# ---- dtypes against NumPy 2 -------------------------------------------------------------------

@pytest.mark.parametrize("f", [lambda x: x * np.int8(2), lambda x: x * np.uint8(2),
                               lambda x: x + np.zeros(3, np.int16),
                               lambda x: np.where(x > 0, x, np.int8(1))])
def test_narrow_int_constants_promote_by_their_own_dtype(f):
    x = np.array([1.5, -2.25, 3.0], np.float32)
    expected = f(x)
    assert tg.jit(f)(x).dtype == expected.dtype == np.float32
    assert f(tg.tensor(x)).dtype == np.float32
    i = np.array([1, 2, 3], np.int32)
    assert tg.jit(lambda a: a * np.int8(2))(i).dtype == np.int32


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_])
def test_mean_with_an_integer_dtype_sums_in_it_and_truncates(dtype):
    x = (np.arange(12).reshape(3, 4) * 400_000_000).astype(np.int32)
    for f in (lambda a: np.mean(a, dtype=dtype), lambda a: np.mean(a, dtype=dtype, axis=1),
              lambda a: np.mean(a, dtype=dtype, axis=0, where=a > 1)):
        expected, got = f(x), tg.jit(f)(x)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("f", [np.square, lambda b: b ** b, lambda b: np.power(b, b),
                               lambda b: b ** 2])
def test_powers_of_bools_are_refused_as_numpy_computes_them_in_int8(f):
    b = np.array([True, False])
    assert f(b).dtype == np.int8
    with pytest.raises(TypeError, match="int8"):
        tg.jit(f)(b)
    assert tg.jit(lambda b: b ** 2.0)(b).dtype == np.float64  # a float exponent is fine


def test_an_integer_exponent_out_of_the_dtype_bounds_raises_as_in_numpy():
    with pytest.raises(OverflowError, match="out of bounds for int32"):
        tg.jit(lambda a: a ** 2 ** 40)(np.array([1, 0], np.int32))


@pytest.mark.parametrize("f", [lambda a: np.cumsum(a, dtype=bool, axis=1),
                               lambda a: np.cumprod(a, dtype=bool, axis=1)])
def test_bool_cumulative_sums_and_products_are_or_and_and(f):
    x = np.array([[0.0, 2, 0, 1], [1, 1, 0, 3]])
    np.testing.assert_array_equal(tg.jit(f)(x), f(x))


def test_positive_of_bools_is_refused_and_astype_takes_numpys_keywords():
    with pytest.raises(TypeError, match="positive"):
        tg.jit(np.positive)(np.array([True]))
    x = np.array([1, 2], np.int64)
    assert tg.jit(lambda a: a.astype(np.float64, copy=False))(x).tolist() == [1.0, 2.0]
    with pytest.raises(TypeError, match="according to the rule 'safe'"):
        tg.jit(lambda a: a.astype(np.int32, casting="safe"))(x)


def test_an_integer_leaf_is_named_by_its_path():
    with pytest.raises(TypeError, match=r"argument 0\['i'\] has dtype int64"):
        tg.grad(lambda d: np.sum(d["w"]) * 2.0)({"w": np.ones(2), "i": np.arange(2)})


def test_a_call_with_a_pytree_writes_no_tree_text(monkeypatch):
    """The message text naming a leaf's tree is written only for a message (it was written
    per leaf on every call, so a call's cost grew with the leaves squared)."""
    from tracegrad.tracer.tree import PyTreeDef
    xs = [np.ones(3) for _ in range(50)]
    f = tg.jit(lambda xs: xs[0] + xs[-1])
    f(xs)
    written = []
    real = PyTreeDef._str
    monkeypatch.setattr(PyTreeDef, "_str", lambda self, *a: written.append(1) or real(self, *a))
    f(xs)
    assert not written


def test_deeply_nested_lists_are_pytrees_or_a_clear_recursion_error():
    t = np.ones(2)
    for _ in range(400):
        t = [t]

    def f(t):
        while isinstance(t, list):
            t = t[0]
        return (t * t).sum()
    assert float(tg.jit(f)(t)) == 2.0
    for _ in range(3000):
        t = [t]
    with pytest.raises(RecursionError, match="sys.setrecursionlimit"):
        tg.jit(f)(t)
