"""TF1 programs of hunt G3: initial values that read other variables, Python lists as
operands, feeds of assign outputs and of updated variables, strict integer constants, a
Saver's default variables, callable initial values, and the clipping and array functions
(values from TF1's documented formulas, written out in numpy)."""
import numpy as np
import pytest

import tracegrad.static as tf


@pytest.fixture(autouse=True)
def _fresh_graph():
    with tf.Graph().as_default():
        yield


def test_an_initial_value_may_read_another_variable():
    w = tf.Variable([1., 2.], name="w")
    zeros, double = tf.Variable(tf.zeros_like(w)), tf.Variable(w * 2)
    plus = tf.get_variable("plus", initializer=w + 1)
    copy = tf.Variable(w.initialized_value())
    with tf.Session() as s:
        s.run(tf.global_variables_initializer())
        values = s.run([zeros, double, plus, copy])
        s.run(w.assign([5., 5.]))
        s.run(double.initializer)  # w is initialized now: its current value
        again = s.run(double)
    np.testing.assert_array_equal(values[0], [0., 0.])
    np.testing.assert_array_equal(values[1], [2., 4.])
    np.testing.assert_array_equal(values[2], [2., 3.])
    np.testing.assert_array_equal(values[3], [1., 2.])
    np.testing.assert_array_equal(again, [10., 10.])


def test_python_lists_convert_to_the_other_operands_dtype_or_tf1s_defaults():
    x = tf.placeholder(tf.float32, [None, 2])
    i = tf.placeholder(tf.int32, [2])
    assert (x + [1., 2.]).dtype == np.float32
    assert tf.matmul(x, [[1.], [2.]]).dtype == np.float32
    assert (i + [1, 2]).dtype == np.int32
    assert tf.stack([1.0, tf.constant(2.0)]).dtype == np.float32
    assert tf.nn.softmax([[1., 2.]]).dtype == np.float32
    assert tf.reduce_sum([1., 2.]).dtype == np.float32
    v = tf.Variable([1., 2.])
    step = v.assign(v * [0.5, 0.5])
    with tf.Session() as s:
        s.run(v.initializer)
        np.testing.assert_array_equal(s.run(step), [0.5, 1.])
        assert s.run(tf.reduce_mean([1, 2])) == 1  # int32, truncating as TF1
    with pytest.raises(TypeError, match="Expected int32"):
        i + [1.5, 2.]


def test_feeding_an_assign_output_prunes_the_assign():
    v = tf.Variable(1.0)
    up = v.assign(5.0)
    with tf.Session() as s:
        s.run(v.initializer)
        assert s.run(up * 3, {up: 10.0}) == 30.0
        assert s.run(v) == 1.0


def test_a_fed_variable_starts_its_updates_from_the_fed_value():
    w = tf.Variable(1.0)
    train = tf.train.GradientDescentOptimizer(0.1).minimize(w * w)
    inc = w.assign_add(1.0)
    with tf.Session() as s:
        s.run(w.initializer)
        s.run(train, {w: 3.0})
        assert s.run(w) == pytest.approx(3.0 - 0.1 * 2 * 3.0)
        assert s.run(inc, {w: 100.0}) == 101.0


def test_python_floats_never_truncate_into_integer_constants():
    with pytest.raises(TypeError, match="Expected int32"):
        tf.constant(1.5, dtype=tf.int32)
    with pytest.raises(TypeError, match="Expected int32"):
        tf.Variable(2.7, dtype=tf.int32)
    with pytest.raises(TypeError, match="not exactly"):
        tf.get_variable("c", [2], tf.int32, initializer=tf.constant_initializer(2.7))
    assert tf.constant(np.array([1.5]), dtype=tf.int32).dtype == np.int32  # numpy's astype


def test_a_default_saver_keeps_the_variables_of_its_making(tmp_path):
    path = str(tmp_path / "model.npz")
    with tf.Graph().as_default():
        w = tf.Variable([1., 2.], name="w")
        saver = tf.train.Saver()
        with tf.Session() as s:
            s.run(w.initializer)
            saver.save(s, path)
    with tf.Graph().as_default():
        w = tf.Variable([0., 0.], name="w")
        saver = tf.train.Saver()  # before the optimizer's slots exist
        tf.train.AdamOptimizer().minimize(tf.reduce_sum(w * w))
        with tf.Session() as s:
            s.run(tf.global_variables_initializer())
            saver.restore(s, path)
            np.testing.assert_array_equal(s.run(w), [1., 2.])


def test_a_callable_initial_value_and_tf1_spellings():
    v = tf.Variable(lambda: tf.zeros([2]))
    with tf.Session() as s:
        s.run(tf.initialize_all_variables())
        np.testing.assert_array_equal(s.run(v), [0., 0.])
        s.run(tf.assign(v, [1., 2.], validate_shape=True, use_locking=False))
        np.testing.assert_array_equal(s.run(v), [1., 2.])
    loss = tf.nn.softmax_cross_entropy_with_logits_v2(labels=[[1., 0.]], logits=[[0., 0.]], dim=-1)
    assert tf.Session().run(loss) == pytest.approx([np.log(2)])


def test_clipping_follows_tf1s_formulas():
    a, b = np.array([3., 4.], np.float32), np.array([[12.]], np.float32)
    ta, tb = tf.constant(a), tf.constant(b)
    clipped, norm = tf.clip_by_global_norm([ta, None, tb], 6.5)
    by_norm = tf.clip_by_norm(ta, 1.0)
    rows = tf.clip_by_norm(tf.constant([[3., 4.], [0., 0.]]), 2.0, axes=[1])
    with tf.Session() as s:
        got_a, got_b, got_norm, got_one, got_rows = s.run(
            [clipped[0], clipped[2], norm, by_norm, rows])
    assert clipped[1] is None
    assert got_norm == pytest.approx(13.0)
    np.testing.assert_allclose(got_a, a * 6.5 / 13.0, rtol=1e-6)
    np.testing.assert_allclose(got_b, b * 6.5 / 13.0, rtol=1e-6)
    np.testing.assert_allclose(got_one, a / 5.0, rtol=1e-6)
    np.testing.assert_allclose(got_rows, [[1.2, 1.6], [0., 0.]], rtol=1e-6)
    x = tf.Variable([3., 4.])
    (g,) = tf.gradients(tf.reduce_sum(tf.clip_by_norm(x, 1.0)), x)
    with tf.Session() as s:
        s.run(x.initializer)
        want = (np.ones(2) - np.array([3., 4.]) * 7 / 25) / 5  # d/dx sum(x / |x|)
        np.testing.assert_allclose(s.run(g), want, rtol=1e-6)


def test_unstack_range_tensordot():
    pieces = tf.unstack(tf.constant([[1., 2.], [3., 4.]]), axis=1)
    r, rf = tf.range(5), tf.range(0., 1., 0.25)
    a, b = np.arange(24.).reshape(2, 3, 4), np.arange(12.).reshape(4, 3)
    dot = tf.tensordot(tf.constant(a), tf.constant(b), axes=[[1, 2], [1, 0]])
    with tf.Session() as s:
        first, second, ri, rfl, d = s.run(pieces + [r, rf, dot])
    np.testing.assert_array_equal(first, [1., 3.])
    np.testing.assert_array_equal(second, [2., 4.])
    assert ri.dtype == np.int32 and ri.tolist() == [0, 1, 2, 3, 4]
    assert rfl.dtype == np.float32 and rfl.tolist() == [0., 0.25, 0.5, 0.75]
    np.testing.assert_allclose(d, np.tensordot(a.astype(np.float32), b.astype(np.float32),
                                               axes=[[1, 2], [1, 0]]), rtol=1e-6)
    assert tf.newaxis is None


def test_initializers_grouped_and_fed_targets():
    w = tf.Variable([1., 2.])
    d = tf.Variable(w * 2)
    v = tf.Variable(1.0)
    a = v.assign(5.0)
    with tf.Session() as s:
        s.run(tf.group(w.initializer, d.initializer, v.initializer))
        np.testing.assert_array_equal(s.run(d), [2., 4.])
        out = s.run([a.op, a * 2], {a: 10.0})  # a target runs; its fed output stays fed
        assert out[1] == 20.0 and s.run(v) == 5.0
