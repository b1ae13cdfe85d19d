"""Bad inputs to compiled functions (issue 10, item 6): converted as numpy would,
or rejected with a TypeError naming the argument and the signature."""
import numpy as np
import pytest

import tracegrad
from tracegrad import compile_grad, jit


def scaled(x, s):
    return np.sum(x * 2.0)


def _unaligned(n):
    buf = np.zeros(8 * n + 1, np.uint8)
    a = buf[1:].view(np.float64)
    a[:] = np.arange(n)
    assert not a.flags.aligned
    return a


def test_an_unaligned_array_is_copied_as_numpy_would():
    x = _unaligned(10)
    f = compile_grad(lambda x: np.sum(x * x))
    value, (g,) = f(x)
    assert float(value) == float(np.sum(x * x))
    np.testing.assert_array_equal(g, 2 * x)
    np.testing.assert_array_equal(jit(lambda x: x + 1.0)(x), x + 1.0)
    f(np.arange(10.0))  # the same signature as an aligned array
    assert len(f.cache_info()) == 1


def test_a_string_is_rejected_naming_the_argument_and_static_argnums():
    f = jit(scaled)
    with pytest.raises(TypeError) as info:
        f(np.ones(2), "abc")
    message = str(info.value)
    assert "argument 1 ('s') is a str" in message
    assert "static_argnums=(1,)" in message and "scaled(x, s)" in message
    assert float(jit(scaled, static_argnums=1)(np.ones(2), "abc")) == 4.0  # static: fine


@pytest.mark.parametrize("arg, what", [
    ({"a": "s"}, r"argument 1 \('s'\) \(a leaf of PyTreeDef\(\{'a': \*\}\)\) is a str"),
    ({"a": np.ones(2), "b": object()}, r"argument 1 \('s'\) \(a leaf of .*\) is a object"),
    ([None, 1.0], r"argument 1 \('s'\) is a list that numpy converts to an array of dtype object"),
    ([1.0, "a"], r"argument 1 \('s'\) is a list that numpy converts to an array of dtype <U"),
    ({1, 2}, r"argument 1 \('s'\) is a set, which is not hashable"),
    (np.array([1 + 2j]), r"argument 1 \('s'\) has dtype complex128"),
    (np.array(["a"]), r"argument 1 \('s'\) has dtype <U1"),
])
def test_non_array_arguments_name_the_argument_and_the_signature(arg, what):
    with pytest.raises(TypeError, match=what) as info:
        compile_grad(scaled)(np.ones(2), arg)
    assert "scaled" in str(info.value)


def test_none_and_hashables_are_static_and_dicts_of_none_are_empty_trees():
    f = jit(lambda x, opt: x * 2.0 if opt is None else x)
    np.testing.assert_array_equal(f(np.ones(2), None), [2.0, 2.0])
    np.testing.assert_array_equal(f(np.ones(2), ()), [1.0, 1.0])
    g = jit(lambda x, p: x * 3.0)
    np.testing.assert_array_equal(g(np.ones(2), {"a": None}), [3.0, 3.0])


def test_float16_is_rejected_the_same_way_compiled_and_eagerly():
    x = np.arange(3, dtype=np.float16)
    with pytest.raises(TypeError, match=r"argument 0 \('x'\) has dtype float16.*astype"):
        compile_grad(lambda x: np.sum(x * x))(x)
    with pytest.raises(TypeError, match="float16.*astype"):
        tracegrad.tensor(x)
    with pytest.raises(TypeError, match="float16"):
        tracegrad.grad(lambda x: np.sum(x * x))(x)


@pytest.mark.parametrize("data", [None, "abc", {"a": 1.0}, [None]])
def test_a_tensor_from_a_non_numeric_value_says_what_it_got(data):
    with pytest.raises(TypeError, match=rf"tensor\(\): cannot make a tensor from a "
                                        rf"{type(data).__name__}"):
        tracegrad.tensor(data)


@pytest.mark.parametrize("dtype", [">f8", ">f4", ">i8", ">i4"])
def test_arrays_in_the_other_byte_order_are_computed_in_the_hosts(dtype):
    """A big-endian array ('>f8' on x86) is a copy in the host's byte order, as numpy
    computes it: in arguments of every transform, eager tensors and captured constants."""
    x = np.arange(1, 4).astype(dtype)
    native = x.astype(x.dtype.newbyteorder("="))
    np.testing.assert_array_equal(jit(lambda v: v * 2)(x), native * 2)
    np.testing.assert_array_equal(tracegrad.tensor(x).numpy(), native)
    np.testing.assert_array_equal(jit(lambda v: v + x)(native), native * 2)
    np.testing.assert_array_equal(tracegrad.vmap(lambda v: v * 2)(x), native * 2)
    if native.dtype.kind == "f":
        np.testing.assert_array_equal(tracegrad.grad(lambda v: np.sum(v * v))(x), 2 * native)
        np.testing.assert_array_equal(compile_grad(lambda v: np.sum(v * v))(x)[1][0], 2 * native)


@pytest.mark.parametrize("make", [
    lambda: jit(lambda b: np.tanh(b))(True),  # numpy's float16 from a static bool
    lambda: jit(lambda v: (v.sum(), np.array([1, 2], np.float16)))(np.ones(3)),
])
def test_a_float16_constant_is_refused_naming_its_dtype(make):
    with pytest.raises(TypeError, match="float16.*astype"):
        make()


def test_a_narrow_integer_constant_is_widened_as_arguments_are():
    out = jit(lambda v: (v.sum(), np.arange(3, dtype=np.uint8)))(np.ones(3))
    np.testing.assert_array_equal(out[1], [0, 1, 2])
    assert out[1].dtype == np.int64


def test_a_narrow_integer_constant_combines_with_traced_values():
    """A uint8 table held as a constant computes as int64, as a uint8 argument does."""
    c = np.arange(3, dtype=np.uint8)
    np.testing.assert_array_equal(jit(lambda v: v + c)(np.ones(3)), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(jit(lambda v: v * c[2])(np.ones(3)), [2.0, 2.0, 2.0])
    value, (g,) = compile_grad(lambda v: np.sum(v * c))(np.ones(3))
    np.testing.assert_array_equal(g, [0.0, 1.0, 2.0])


def test_static_graph_constants_in_the_other_byte_order():
    import tracegrad.static as tf
    tf.reset_default_graph()
    c = tf.constant(np.arange(3.0).astype(">f8"))
    with tf.Session() as s:
        np.testing.assert_array_equal(s.run(c * 2.0), [0.0, 2.0, 4.0])


@pytest.mark.parametrize("call", [
    lambda f, m: tracegrad.jit(f)(m),
    lambda f, m: tracegrad.compile_grad(f)(m),
    lambda f, m: tracegrad.jit(f)({"a": m}["a"]),
    lambda f, m: tracegrad.grad(f)(m),
    lambda f, m: tracegrad.vmap(lambda x: x * 2)(m),
    lambda f, m: tracegrad.numpy.sum(m),
])
def test_a_masked_array_is_refused_not_computed_without_its_mask(call):
    """A numpy masked array would lose its mask (np.sum would count the masked entries):
    refused with a message that says what to pass, as JAX refuses it."""
    m = np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0])
    with pytest.raises(TypeError, match="masked array.*filled"):
        call(lambda x: np.sum(x * x), m)
