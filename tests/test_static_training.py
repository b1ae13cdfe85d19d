"""tracegrad.static variables: a TF1 training loop against numpy, and the semantics
of variables in sessions (initialization, assign ops, one update per run)."""
import numpy as np
import pytest

import tracegrad.static as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    Y = (X @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=n) > 0).astype(np.float64)
    return X, Y


def _numpy_logistic_regression(X, Y, lr, steps):
    w, b = np.zeros(3), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(X @ w + b)))
        w, b = w - lr * (X.T @ (p - Y)) / len(Y), b - lr * np.mean(p - Y)
    return w, b


def test_logistic_regression_200_steps_matches_numpy():
    X_data, Y_data = _data()
    X = tf.placeholder(tf.float64, [None, 3], name="X")
    Y = tf.placeholder(tf.float64, [None], name="Y")
    w = tf.Variable(np.zeros(3), name="w")
    b = tf.Variable(0.0, dtype=tf.float64, name="b")
    p = tf.sigmoid(tf.matmul(X, tf.reshape(w, [3, 1]))[:, 0] + b)
    loss = tf.reduce_mean(-(Y * tf.log(p) + (1 - Y) * tf.log(1 - p)))
    gw, gb = tf.gradients(loss, [w, b])
    lr = 0.5
    train = tf.group(w.assign_sub(lr * gw), b.assign_sub(lr * gb))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        first = sess.run(loss, {X: X_data, Y: Y_data})
        for _ in range(200):
            sess.run(train, {X: X_data, Y: Y_data})
        w_value, b_value, last = sess.run([w, b, loss], {X: X_data, Y: Y_data})
        assert len(sess.cache_info()) == 4  # init, loss, train, [w, b, loss]
    w_ref, b_ref = _numpy_logistic_regression(X_data, Y_data, lr, 200)
    np.testing.assert_allclose(w_value, w_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b_value, b_ref, rtol=1e-10, atol=1e-12)
    assert first == pytest.approx(np.log(2.0)) and last < 0.4


def test_training_with_none_batch_sizes():
    X = tf.placeholder(tf.float32, [None, 3])
    Y = tf.placeholder(tf.float32, [None])
    w = tf.Variable(np.zeros(3, np.float32))
    loss = tf.reduce_mean(tf.square(tf.reduce_sum(X * w, axis=1) - Y))
    (gw,) = tf.gradients(loss, [w])
    step = w.assign_sub(0.1 * gw)
    X_data, Y_data = _data(40)
    w_ref = np.zeros(3, np.float32)
    with tf.Session() as sess:
        sess.run(w.initializer)
        for n in (40, 7, 1, 40, 7):
            x, y = X_data[:n].astype(np.float32), Y_data[:n].astype(np.float32)
            new = sess.run(step, {X: x, Y: y})
            w_ref = w_ref - 0.1 * (2 * x.T @ (x @ w_ref - y) / n)
            np.testing.assert_allclose(new, w_ref, rtol=1e-5, atol=1e-6)
        assert len(sess.cache_info()) == 1 + 3  # the initializer, then one per batch size


def test_uninitialized_variable_is_tf1s_error():
    v = tf.Variable(np.ones(2), name="v")
    with tf.Session() as sess:
        with pytest.raises(tf.errors.FailedPreconditionError,
                           match="Attempting to use uninitialized value v"):
            sess.run(v * 2.0)
        with pytest.raises(tf.errors.FailedPreconditionError):
            sess.run(v.assign_add(np.ones(2)))
        np.testing.assert_array_equal(sess.run(v.assign(np.zeros(2))), np.zeros(2))  # no read
        np.testing.assert_array_equal(sess.run(v), np.zeros(2))


def test_each_session_starts_from_the_initial_values():
    v = tf.Variable(1.0, name="v")
    inc = v.assign_add(1.0)
    init = tf.global_variables_initializer()
    with tf.Session() as first:
        first.run(init)
        assert [float(first.run(inc)) for _ in range(3)] == [2.0, 3.0, 4.0]
        with tf.Session() as second:
            second.run(init)
            assert float(second.run(v)) == 1.0
            assert float(second.run(inc)) == 2.0
        assert float(first.run(v)) == 4.0
        first.run(init)
        assert float(first.run(v)) == 1.0


def test_assigns_in_one_run_apply_in_creation_order():
    v = tf.Variable(np.float64(10.0), name="v")
    read = v * 1.0
    double = v.assign(v * 2.0)
    plus = v.assign_add(np.float64(1.0))
    with tf.Session() as sess:
        sess.run(v.initializer)
        # reads see the value at the start of the run; assigns chain in creation order
        r, d, p = sess.run([read, double, plus])
        assert (float(r), float(d), float(p)) == (10.0, 20.0, 21.0)
        assert float(sess.run(v)) == 21.0


def test_variables_and_initializers():
    a = tf.Variable(np.arange(3.0), name="a")
    b = tf.Variable(tf.constant(np.ones((2, 2), np.float32)), name="b", trainable=False)
    assert tf.global_variables() == [a, b] and tf.trainable_variables() == [a]
    with tf.Session() as sess:
        sess.run(tf.variables_initializer([a]))
        np.testing.assert_array_equal(sess.run(a), np.arange(3.0))
        with pytest.raises(tf.errors.FailedPreconditionError, match="value b"):
            sess.run(b)
        a.load(np.full(3, 7.0), sess)
        np.testing.assert_array_equal(sess.run(a + 1.0), np.full(3, 8.0))


def test_feeding_a_variable_overrides_its_value_for_one_run():
    v = tf.Variable(np.float32(2.0), name="v")
    y = v * 3.0
    with tf.Session() as sess:
        assert float(sess.run(y, {v: 5.0})) == 15.0  # fed: no initialization needed
        sess.run(v.initializer)
        assert float(sess.run(y)) == 6.0


def test_gradient_descent_optimizer_minimize_is_the_same_step():
    X_data, Y_data = _data(32, seed=1)
    X = tf.placeholder(tf.float64, [None, 3])
    Y = tf.placeholder(tf.float64, [None])
    w = tf.Variable(np.zeros(3))
    b = tf.Variable(np.float64(0.0))
    p = tf.sigmoid(tf.reduce_sum(X * w, axis=1) + b)
    loss = tf.reduce_mean(-(Y * tf.log(p) + (1 - Y) * tf.log(1 - p)))
    step = tf.Variable(0, name="global_step", trainable=False)
    train = tf.train.GradientDescentOptimizer(0.5).minimize(loss, global_step=step)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(20):
            sess.run(train, {X: X_data, Y: Y_data})
        w_value, b_value, steps = sess.run([w, b, step])
    w_ref, b_ref = _numpy_logistic_regression(X_data, Y_data, 0.5, 20)
    np.testing.assert_allclose(w_value, w_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b_value, b_ref, rtol=1e-10, atol=1e-12)
    assert int(steps) == 20


def test_sessions_of_a_graph_share_compiled_programs():
    v = tf.Variable(np.float32(3.0))
    y = v * 2.0
    for expected in (6.0, 6.0):
        with tf.Session() as sess:
            sess.run(v.initializer)
            assert float(sess.run(y)) == expected
            assert len(sess.cache_info()) == 2


def test_interactive_session_is_the_default():
    v = tf.Variable(np.float32(3.0))
    sess = tf.InteractiveSession()
    try:
        v.initializer.run()
        assert float((v + 1.0).eval()) == 4.0
    finally:
        sess.close()
    with pytest.raises(ValueError, match="no default session"):
        v.eval()


def test_graph_ir_shows_the_training_step_with_variables_as_inputs():
    X = tf.placeholder(tf.float64, [None, 2], name="X")
    w = tf.Variable(np.ones(2), name="w")
    loss = tf.reduce_sum(tf.square(tf.reduce_sum(X * w, axis=1)))
    (gw,) = tf.gradients(loss, [w])
    train = w.assign_sub(0.1 * gw)
    init = tf.global_variables_initializer()
    with tf.Session() as sess:
        sess.run(init)
        sess.run(train, {X: np.ones((5, 2))})
        text = str(sess.graph)
    # inputs: the last fed X, then w's value; initializers are not part of it
    assert text.startswith("{ lambda a:f64[5,2] b:f64[2] . let")
    assert text.count("reduce_sum") >= 2 and "sub" in text  # loss, its gradient, the step
