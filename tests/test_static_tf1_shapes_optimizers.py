"""TF1's tf.shape/size/rank (values fixed by the fed shapes, static shapes inferred from
them), shape tensors in zeros/ones/fill/reshape, AdagradOptimizer and RMSPropOptimizer
(TF1's update formulas and slot names), nn.embedding_lookup and nn.moments."""
import numpy as np
import pytest

import tracegrad.static as tf

RNG = np.random.default_rng(0)
X = RNG.normal(size=(20, 3))
Y = RNG.normal(size=20)


@pytest.fixture(autouse=True)
def fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


def test_shape_follows_the_feeds_and_shapes_the_static_inference():
    x = tf.placeholder(tf.float32, [None, 3])
    y = tf.placeholder(tf.float32, [None])
    s = tf.shape(x)
    batch = s[0]
    assert s.shape.as_list() == [2] and s.dtype == np.int32
    assert tf.reshape(x, [batch, -1, 1]).shape.as_list() == [None, 3, 1]
    assert tf.zeros(s).shape.as_list() == [None, 3]
    assert tf.ones([batch, 2], tf.int32).shape.as_list() == [None, 2]
    mean = tf.reduce_sum(x) / tf.cast(batch, tf.float32)
    reshaped = tf.reshape(y, tf.shape(x))
    assert reshaped.dtype == np.float32
    with tf.Session() as sess:
        for rows in (2, 5):
            xs = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
            got = sess.run([s, tf.size(x), tf.rank(x), mean, tf.zeros(s), tf.fill(s, 2.5),
                            reshaped, tf.fill([batch], tf.reduce_sum(x))],
                           {x: xs, y: xs.reshape(-1) + 1})
            assert got[0].tolist() == [rows, 3] and got[0].dtype == np.int32
            assert got[1] == rows * 3 and got[2] == 2
            np.testing.assert_allclose(got[3], xs.sum() / rows)
            assert got[4].shape == (rows, 3) and not got[4].any() and got[4].dtype == np.float32
            assert (got[5] == 2.5).all() and got[5].shape == (rows, 3)
            np.testing.assert_array_equal(got[6], xs + 1)
            np.testing.assert_allclose(got[7], np.full(rows, xs.sum()))


def test_shape_of_int64_out_type_and_plain_shapes_stay_constants():
    x = tf.placeholder(tf.float64, [4, None])
    assert tf.shape(x, out_type=tf.int64).dtype == np.int64
    assert tf.zeros([2, 3]).op.type == "Const" and tf.zeros(4).shape.as_list() == [4]
    with tf.Session() as sess:
        assert sess.run(tf.shape(x, out_type=tf.int64), {x: np.ones((4, 7))}).tolist() == [4, 7]


def _train(make, steps=5):
    w = tf.Variable(np.array([0.1, -0.2, 0.3]), name="w")
    loss = tf.reduce_mean((tf.matmul(tf.constant(X), tf.reshape(w, [3, 1]))[:, 0] - Y) ** 2)
    step = make().minimize(loss)
    names = sorted(v.op.name for v in tf.global_variables())
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(steps):
            sess.run(step)
        return sess.run(w), names


def _grad(w):
    return 2 * X.T @ (X @ w - Y) / len(Y)


def _rmsprop(lr, rho, mu, eps, centered, steps=5):
    w, ms, mom, mg = np.array([0.1, -0.2, 0.3]), np.ones(3), np.zeros(3), np.zeros(3)
    for _ in range(steps):
        g = _grad(w)
        ms += (g * g - ms) * (1 - rho)
        denominator = ms + eps
        if centered:
            mg += (g - mg) * (1 - rho)
            denominator = ms - mg * mg + eps
        mom = mom * mu + g * lr / np.sqrt(denominator)
        w = w - mom
    return w


@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_follows_tf1s_formulas_and_slot_names(centered):
    w, names = _train(lambda: tf.train.RMSPropOptimizer(0.01, momentum=0.9, centered=centered))
    np.testing.assert_allclose(w, _rmsprop(0.01, 0.9, 0.9, 1e-10, centered), rtol=1e-13)
    assert names == ["w", "w/RMSProp", "w/RMSProp_1"] + (["w/RMSProp_2"] if centered else [])


def test_adagrad_follows_tf1s_formula():
    w, names = _train(lambda: tf.train.AdagradOptimizer(0.1, initial_accumulator_value=0.2))
    ref, accum = np.array([0.1, -0.2, 0.3]), np.full(3, 0.2)
    for _ in range(5):
        g = _grad(ref)
        accum += g * g
        ref = ref - g * 0.1 / np.sqrt(accum)
    np.testing.assert_allclose(w, ref, rtol=1e-13)
    assert names == ["w", "w/Adagrad"]
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        tf.train.AdagradOptimizer(0.1, initial_accumulator_value=0.0)


def test_embedding_lookup_single_sharded_and_clipped_with_gradients():
    table = RNG.normal(size=(7, 3))
    ids = np.array([[0, 3, 3], [6, 1, 0]])
    t = tf.Variable(table)
    plain = tf.nn.embedding_lookup(t, tf.constant(ids))
    clipped = tf.nn.embedding_lookup(t, ids, max_norm=0.5)
    mod = tf.nn.embedding_lookup([tf.constant(table[0::2]), tf.constant(table[1::2])], ids)
    div = tf.nn.embedding_lookup([tf.constant(table[:4]), tf.constant(table[4:])], ids,
                                 partition_strategy="div")
    grad, = tf.gradients(tf.reduce_sum(plain * plain), [t])
    assert plain.shape.as_list() == [2, 3, 3]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got = sess.run([plain, clipped, mod, div, grad])
    rows = table[ids]
    for g in (got[0], got[2], got[3]):
        np.testing.assert_allclose(g, rows, rtol=1e-15)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    np.testing.assert_allclose(got[1], rows * 0.5 / np.maximum(norms, 0.5), rtol=1e-14)
    expected = np.zeros_like(table)
    np.add.at(expected, ids, 2 * rows)
    np.testing.assert_allclose(got[4], expected, rtol=1e-14)


def test_moments_and_their_gradient():
    x = tf.placeholder(tf.float64, [None, 3])
    mean, var = tf.nn.moments(x, axes=[0])
    mean_all, var_all = tf.nn.moments(x, [0, 1], keep_dims=True)
    gx, = tf.gradients(tf.reduce_sum(var), [x])
    assert mean.shape.as_list() == [3] and mean_all.shape.as_list() == [1, 1]
    with tf.Session() as sess:
        got = sess.run([mean, var, mean_all, var_all, gx], {x: X[:5]})
    xs = X[:5]
    np.testing.assert_allclose(got[0], xs.mean(0), rtol=1e-14)
    np.testing.assert_allclose(got[1], xs.var(0), rtol=1e-13)
    np.testing.assert_allclose(got[3], [[xs.var()]], rtol=1e-13)
    np.testing.assert_allclose(got[4], 2 * (xs - xs.mean(0)) / 5, rtol=1e-12, atol=1e-15)
