"""TF1's control_dependencies: ops made inside run after the given ops and read variables
as those leave them; variables made inside take no dependencies (TF1's init_scope)."""
import numpy as np
import pytest

import tracegrad.static as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


def test_reads_after_a_training_step_see_the_updated_variable():
    w = tf.Variable(1.0, dtype=tf.float64, name="w")
    x = tf.placeholder(tf.float64, [])
    loss = (w * x - 3.0) ** 2
    train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    with tf.control_dependencies([train]):
        w_after, loss_seen, doubled = tf.identity(w), tf.identity(loss), w * 2
    assert train in w_after.op.control_inputs
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        got = sess.run([w_after, loss_seen, doubled], {x: 2.0})
        # loss (w*2 - 3)^2 = 1 at w = 1, gradient -4: w becomes 1.4; the loss tensor is the
        # step's own (computed before the update)
        np.testing.assert_allclose(got, [1.4, 1.0, 2.8])
        assert sess.run(w) == pytest.approx(1.4)


def test_a_counter_and_nested_contexts():
    c = tf.Variable(0, name="c")
    inc = c.assign_add(1)
    with tf.control_dependencies([inc]):
        seen = tf.identity(c)
        with tf.control_dependencies(None):  # cleared, as TF1
            plain = tf.identity(c)
        v = tf.Variable(5, name="made_inside")
    assert plain.op.control_inputs == [] and v.op.control_inputs == []
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert [sess.run(seen), sess.run(seen), sess.run(plain), sess.run(v)] == [1, 2, 2, 5]
