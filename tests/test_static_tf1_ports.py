"""TF1 ports: op types independent of names, Saver's dtype and folder checks, fetching a fed
placeholder's op, tf.size/tf.rank as shapes, None dims contracted with known ones, TensorShape
and Dimension, set_shape, more array ops and the learning-rate schedules."""
import numpy as np
import pytest

import tracegrad.static as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


def test_op_types_do_not_follow_names():
    x = tf.placeholder(tf.float32, [None, 3])
    named = [tf.matmul(x, tf.ones([3, 2]), name="logits"), tf.identity(x, name="out"),
             tf.reduce_sum(x, name="s"), x + x, x[0], tf.nn.relu(x, name="r")]
    assert [t.op.type for t in named] == ["MatMul", "Identity", "Sum", "Add", "StridedSlice",
                                          "Relu"]
    assert [t.op.name for t in named[:3]] == ["logits", "out", "s"]


def test_saver_refuses_other_dtypes_and_missing_folders(tmp_path):
    tf.Variable(np.zeros(2, np.float32), name="w")
    path = str(tmp_path / "m.npz")
    with open(path, "wb") as f:
        np.savez(f, w=np.ones(2))  # float64 where the variable is float32
    with tf.Session() as sess:
        with pytest.raises(tf.errors.InvalidArgumentError, match="float32 of shape"):
            tf.train.Saver().restore(sess, path)
        sess.run(tf.global_variables_initializer())
        with pytest.raises(ValueError, match="Parent directory"):
            tf.train.Saver().save(sess, str(tmp_path / "missing" / "m"))


def test_fetching_a_fed_placeholders_op_runs_nothing():
    x = tf.placeholder(tf.float32, [None, 3], name="X")
    with tf.Session() as sess:
        assert sess.run(x.op, {x: np.ones((1, 3))}) is None
        assert sess.run("X", {x: np.ones((1, 3))}) is None
        with pytest.raises(tf.errors.InvalidArgumentError, match="must feed"):
            sess.run(x.op)


def test_size_and_rank_build_shapes():
    x = tf.placeholder(tf.float32, [None, 3])
    flat, rank_zeros = tf.reshape(x, [tf.size(x)]), tf.zeros([tf.rank(x)])
    tiled = tf.tile(x, [1, tf.size(x)])
    assert flat.shape.as_list() == [None] and rank_zeros.shape.as_list() == [2]
    with tf.Session() as sess:
        got = sess.run([flat, rank_zeros, tiled], {x: np.ones((2, 3))})
    assert got[0].shape == (6,) and got[1].shape == (2,) and got[2].shape == (2, 18)


def test_unknown_dims_contracted_with_known_ones():
    x = tf.placeholder(tf.float32, [None, None])
    y = tf.matmul(x, tf.ones([4, 2]))
    assert y.shape.as_list() == [None, 2]
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, {x: np.ones((3, 4))}), np.full((3, 2), 4.0))
    with pytest.raises(ValueError, match="contracted dimensions differ"):
        tf.matmul(tf.placeholder(tf.float32, [None, 3]), tf.ones([4, 2]))


def test_tensorshape_dimension_and_set_shape():
    x = tf.placeholder(tf.float32, [None, 3])
    assert x.shape[1].value == 3 and x.shape[1] == 3 and x.shape[0] is None
    assert x.shape[1:].as_list() == [3] and x.shape.num_elements() is None
    assert x.shape.merge_with([5, None]).as_list() == [5, 3]
    u = tf.placeholder(tf.float32, None)
    u.set_shape([None, 4])
    assert (u * 2).shape.as_list() == [None, 4]
    with pytest.raises(ValueError, match="not compatible"):
        x.set_shape([2, 4])


def test_more_array_ops_against_numpy():
    x = tf.placeholder(tf.float32, [None, 3])
    lengths = tf.placeholder(tf.int32, [None])
    idx = tf.placeholder(tf.int64, [None, 2])
    X = np.arange(6, dtype=np.float32).reshape(2, 3)
    fetches = [tf.to_float(lengths), tf.pad(x, [[1, 0], [0, 2]]),
               tf.pad(x, [[0, 0], [1, 1]], "REFLECT"), tf.reverse(x, [1]),
               tf.slice(x, [0, 1], [-1, 2]), tf.cumsum(x, 1, exclusive=True, reverse=True),
               tf.gather_nd(x, idx), tf.sequence_mask(lengths, 4)]
    with tf.Session() as sess:
        got = sess.run(fetches, {x: X, lengths: [1, 3], idx: [[1, 2], [0, 0]]})
    expected = [np.array([1.0, 3.0]), np.pad(X, [[1, 0], [0, 2]]),
                np.pad(X, [[0, 0], [1, 1]], "reflect"), X[:, ::-1], X[:, 1:],
                np.cumsum(X[:, ::-1], 1)[:, ::-1] - X, np.array([5.0, 0.0]),
                np.arange(4) < np.array([[1], [3]])]
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    assert got[0].dtype == np.float32


def test_learning_rate_schedules_follow_tf1s_formulas():
    step = tf.Variable(0, dtype=tf.int64, name="global_step", trainable=False)
    rates = [tf.train.exponential_decay(0.1, step, 10, 0.5),
             tf.train.exponential_decay(0.1, step, 10, 0.5, staircase=True),
             tf.train.piecewise_constant(step, [5, 15], [1.0, 0.5, 0.1]),
             tf.train.inverse_time_decay(0.1, step, 10, 0.5),
             tf.train.polynomial_decay(0.1, step, 20, 0.01, power=2.0)]
    assert all(r.dtype == np.float32 for r in rates)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(step.assign(12))
        got = sess.run(rates)
    expected = [0.1 * 0.5 ** 1.2, 0.05, 0.5, 0.1 / 1.6, 0.09 * 0.4 ** 2 + 0.01]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert tf.get_default_session() is None


def test_default_session_inside_with():
    with tf.Session() as sess:
        assert tf.get_default_session() is sess


def test_range_of_shape_bounds():
    x = tf.placeholder(tf.float32, [None, 3])
    rows = tf.range(tf.shape(x)[0])
    first_column = tf.gather_nd(x, tf.stack([rows, tf.zeros([tf.shape(x)[0]], tf.int32)], axis=1))
    assert rows.shape.as_list() == [None] and rows.dtype == np.int32
    assert tf.range(1, tf.shape(x)[1] * 2, 2).shape.as_list() == [3]
    with tf.Session() as sess:
        got = sess.run([rows, first_column], {x: np.arange(12.0).reshape(4, 3)})
        assert got[0].tolist() == [0, 1, 2, 3] and got[1].tolist() == [0.0, 3.0, 6.0, 9.0]
        n = tf.placeholder(tf.int32, [])
        with pytest.raises(TypeError, match="depend on data"):
            sess.run(tf.range(n), {n: 3})
