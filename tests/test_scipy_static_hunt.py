"""Fixes from hunts of tracegrad.scipy and the TF1-style static graph: xlogy/xlog1py at
x = 0 as scipy's, logsumexp of nothing, tf.gradients' None through integer and bool ops."""
import numpy as np
import pytest

import tracegrad as tg
import tracegrad.scipy.special as tsp
import tracegrad.static as tf


@pytest.mark.parametrize("y", [-1.0, -2.0, 0.0, np.inf, -np.inf, 3.0])
def test_xlogy_and_xlog1py_are_zero_where_x_is_zero(y):
    for f in (tsp.xlogy, tsp.xlog1py):
        got = tg.jit(f)(np.array([0.0, 0.0]), np.array([y, np.nan]))
        assert got[0] == 0.0 and np.isnan(got[1])
    gx, gy = tg.grad(lambda x, y: tsp.xlogy(x, y), argnums=(0, 1))(0.0, 3.0)
    assert float(gx) == pytest.approx(np.log(3.0)) and float(gy) == 0.0


@pytest.mark.parametrize("shape,axis", [((0,), None), ((0, 3), 0), ((2, 0), 1)])
def test_logsumexp_of_nothing_is_minus_inf(shape, axis):
    got = tg.jit(lambda a: tsp.logsumexp(a, axis=axis))(np.zeros(shape))
    assert np.all(np.isneginf(got))


def test_gradients_through_integer_or_bool_ops_are_none_as_tf1():
    m = tf.constant([1.0, 3.0, 3.0])
    assert tf.gradients(tf.cast(tf.argmax(m), tf.float32), m) == [None]
    assert tf.gradients(tf.cast(tf.cast(m, tf.int32), tf.float32), m) == [None]
    assert tf.gradients(tf.cast(m > 2.0, tf.float32), m) == [None]
    assert tf.gradients(tf.cast(m > 2.0, tf.float32) * m, m)[0] is not None
    w = tf.Variable(1.0)
    with pytest.raises(ValueError, match="No gradients provided"):
        tf.train.GradientDescentOptimizer(0.1).minimize(tf.cast(w > 0.5, tf.float32))


def test_scipys_logsumexp_reads_a_third_positional_bool_as_b():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert np.all(np.isneginf(tg.jit(lambda a: tsp.logsumexp(a, 0, False))(a)))
    np.testing.assert_allclose(tg.jit(lambda a: tsp.logsumexp(a, 0, True))(a),
                               np.log(np.exp(a).sum(0)))


def test_tf1_older_keyword_spellings():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = tf.constant(a)
    s = tf.Session()
    lse = s.run(tf.reduce_logsumexp(x, reduction_indices=[1], keep_dims=True))
    np.testing.assert_allclose(lse, np.log(np.exp(a).sum(1, keepdims=True)))
    np.testing.assert_allclose(s.run(tf.nn.softmax(x, dim=0)), np.exp(a) / np.exp(a).sum(0))
    np.testing.assert_allclose(s.run(tf.nn.log_softmax(x)),
                               a - np.log(np.exp(a).sum(1, keepdims=True)))
    assert s.run(tf.squeeze(tf.constant(np.ones((1, 2, 1))), squeeze_dims=[0])).shape == (2, 1)
    np.testing.assert_allclose(s.run(tf.matmul(x, x, adjoint_b=True)), a @ a.T)


def test_tensor_to_takes_torch_dtypes_by_name():
    torch = pytest.importorskip("torch")
    t = tg.tensor(np.ones(2))
    assert t.to(torch.float32).dtype == np.float32 and t.to(dtype=torch.int64).dtype == np.int64


def test_tf1_reductions_of_nothing_and_torch_unique_of_nothing():
    s = tf.Session()
    assert s.run(tf.reduce_max(tf.zeros([0]))) == -np.inf
    assert s.run(tf.reduce_min(tf.zeros([0, 2]), axis=0)).tolist() == [np.inf, np.inf]
    assert s.run(tf.reduce_max(tf.constant(np.zeros(0, np.int32)))) == np.iinfo(np.int32).min
    assert s.run(tf.reduce_max(tf.constant([[1.0, 5.0], [3.0, 2.0]]), axis=1)).tolist() == [5, 3]
    values, inverse, counts = tg.tensor(np.zeros((0, 2))).unique(return_inverse=True,
                                                                 return_counts=True)
    assert values.shape == (0,) and inverse.shape == (0, 2) and counts.shape == (0,)


def test_torch_split_keyword_and_tf1_variable_options():
    t = tg.tensor(np.arange(5.0))
    assert [p.tolist() for p in t.split(split_size_or_sections=[2, 3])] == [[0.0, 1.0],
                                                                             [2.0, 3.0, 4.0]]
    v = tf.Variable(1.0, collections=["c"], validate_shape=False, caching_device=None)
    s = tf.Session()
    s.run(tf.global_variables_initializer())
    assert s.run(v) == 1.0
