"""tracegrad.static: bad input gets a clear error naming what was wrong."""
import numpy as np
import pytest

import tracegrad.static as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


@pytest.fixture
def sess(fresh_graph):
    with tf.Session(graph=fresh_graph) as s:
        yield s


def test_unfed_placeholder_is_named(sess):
    x = tf.placeholder(tf.float32, [None, 3], name="images")
    y = tf.placeholder(tf.float32, name="labels")
    loss = tf.reduce_sum(x) + y
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"placeholder tensor 'labels' with dtype float32") as info:
        sess.run(loss, {x: np.ones((2, 3))})
    assert info.value.op is y.op
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"'images' .* shape \[\?,3\]"):
        sess.run(loss, {y: 1.0})
    assert float(sess.run(y * 2.0, {y: 1.5})) == 3.0  # `images` is not needed: no error


@pytest.mark.parametrize("value, pattern", [
    (np.ones((2, 4)), r"shape \(2, 4\) for Tensor 'x:0', which has shape '\(\?, 3\)'"),
    (np.ones(3), r"shape \(3,\) for Tensor 'x:0', which has shape '\(\?, 3\)'"),
    (1.0, r"shape \(\) for Tensor 'x:0'"),
])
def test_wrong_feed_shape(sess, value, pattern):
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    with pytest.raises(ValueError, match=pattern):
        sess.run(x * 2.0, {x: value})


@pytest.mark.parametrize("value, got", [(np.array([1.5, 2.0]), "float64"), ("ab", "str"),
                                        (np.array([True, False]), None)])
def test_wrong_feed_dtype(sess, value, got):
    n = tf.placeholder(tf.int32, [2], name="n")
    if got is None:  # bool -> int keeps its kind (numpy's same_kind casting): converted
        np.testing.assert_array_equal(sess.run(n + 1, {n: value}), [2, 1])
        return
    with pytest.raises(TypeError, match=f"dtype {got} for Tensor 'n:0', which has dtype int32"):
        sess.run(n + 1, {n: value})


def test_feeds_are_converted_as_tf1_converts_them(sess):
    x = tf.placeholder(tf.float32, [2], name="x")
    out = sess.run(x * 2.0, {x: [1, 2]})  # a list of ints for a float32 placeholder
    assert out.dtype == np.float32 and out.tolist() == [2.0, 4.0]


def test_fetch_from_another_graph(sess):
    other = tf.Graph()
    with other.as_default():
        c = tf.constant(1.0, name="elsewhere")
    with pytest.raises(ValueError, match="elsewhere:0.* is not an element of this graph"):
        sess.run(c)
    with pytest.raises(ValueError, match="is not an element of this graph"):
        sess.run([tf.constant(2.0), {"k": c}])


@pytest.mark.parametrize("key, pattern", [
    (3, "3 has invalid type int"),
    ("nope:0", "no operation named 'nope'"),
    ("x", "names an operation, not a tensor"),
    (None, "invalid type NoneType"),
])
def test_feed_key_not_a_tensor_of_this_graph(sess, key, pattern):
    x = tf.placeholder(tf.float32, [], name="x")
    with pytest.raises(TypeError, match="Cannot interpret feed_dict key as Tensor: .*" + pattern):
        sess.run(x * 2.0, {key: 1.0})


def test_feed_key_from_another_graph(sess):
    x = tf.placeholder(tf.float32, [], name="x")
    other = tf.Graph()
    with other.as_default():
        foreign = tf.placeholder(tf.float32, [], name="foreign")
    with pytest.raises(TypeError, match="foreign:0.* is not an element of this graph"):
        sess.run(x, {x: 1.0, foreign: 2.0})


def test_invalid_fetches(sess):
    with pytest.raises(TypeError, match="Fetch argument None has invalid type"):
        sess.run(None)
    with pytest.raises(TypeError, match="cannot be interpreted as a Tensor"):
        sess.run(np.ones(2))


def test_mixing_graphs_in_an_op():
    a = tf.constant(1.0)
    with tf.Graph().as_default():
        b = tf.constant(2.0)
    with pytest.raises(ValueError, match="must be from the same graph"):
        a + b


def test_static_shape_errors_at_construction():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    with pytest.raises(ValueError, match=r"MatMul: (.|\n)*x:0 \(\?, 3\)"):
        tf.matmul(x, tf.constant(np.ones((4, 2), np.float32)))
    with pytest.raises(ValueError, match="add"):
        tf.constant(np.ones(3)) + tf.constant(np.ones(4))


def test_run_time_shape_error_names_the_op(sess):
    a = tf.placeholder(tf.float32, [None], name="a")
    b = tf.placeholder(tf.float32, [None], name="b")
    total = tf.add(a, b, name="total")
    assert total.shape == (None,)  # the same size in every probe: known only at run time
    with pytest.raises(ValueError, match=r"broadcast(.|\n)*while running op 'total'"):
        sess.run(total, {a: np.ones(2), b: np.ones(3)})


def test_python_decisions_on_symbolic_values():
    x = tf.placeholder(tf.float32, [], name="x")
    with pytest.raises(TypeError, match="evaluated in a Session"):
        if x > 0:
            pass
    n = tf.placeholder(tf.int32, [], name="n")
    with pytest.raises(TypeError, match="evaluated in a Session"):
        range(n)


def test_eval_without_default_session():
    with pytest.raises(ValueError, match="no default session"):
        tf.constant(1.0).eval()


def test_variable_errors():
    v = tf.Variable(np.zeros(3), name="v")
    with pytest.raises(ValueError, match="cannot assign a value of shape"):
        v.assign(np.zeros(4))
    x = tf.placeholder(tf.float64, [None])
    with pytest.raises(ValueError, match="fully known shape"):
        tf.Variable(x)
    with pytest.raises(NotImplementedError, match="inside a tf.cond branch"):
        tf.cond(x[0] > 0, lambda: v.assign_add(np.ones(3)), lambda: v)


def test_unsupported_dtype():
    with pytest.raises(TypeError, match="not supported"):
        tf.placeholder(np.float16)


def test_assign_and_load_keep_the_variables_dtype_and_shape_as_tf1():
    """No silent truncation of a float into an int variable, no broadcast of a scalar into
    a vector variable (TF1's validate_shape); ints into a float variable are fine."""
    v = tf.Variable(0)
    with pytest.raises(TypeError, match="int32"):
        v.assign(2.5)
    with pytest.raises(TypeError, match="does not match type int32"):
        v.assign_add(tf.constant(1.7, tf.float64))
    with pytest.raises(ValueError, match="shape"):
        tf.Variable(np.zeros(2)).assign(5.0)
    x = tf.Variable(1.0)
    up = x.assign(3)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(up) == 3.0
        with pytest.raises(TypeError, match="cannot load"):
            v.load(3.9, sess)
