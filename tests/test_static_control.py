"""tracegrad.static control flow and gradients: tf.cond and tf.while_loop build one
control-flow equation each, and tf.gradients goes through both."""
import numpy as np
import pytest

import tracegrad.static as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


def _run(fetches, feeds):
    with tf.Session() as sess:
        return sess.run(fetches, feeds), sess.cache_info()


def test_cond_is_one_equation_choosing_natively():
    x = tf.placeholder(tf.float64, [3], name="x")
    y = tf.cond(tf.reduce_sum(x) > 0, lambda: tf.exp(x), lambda: tf.sin(x) * 2.0)
    with tf.Session() as sess:
        for data in (np.array([1.0, 2.0, -0.5]), np.array([-1.0, 0.1, -0.5])):
            ref = np.exp(data) if data.sum() > 0 else np.sin(data) * 2.0
            np.testing.assert_allclose(sess.run(y, {x: data}), ref, rtol=1e-12)
        (entry,) = sess.cache_info()
        assert entry["ir"].count("cond[") == 1


def test_cond_structures_and_python_pred():
    x = tf.placeholder(tf.float32, [], name="x")
    pair = tf.cond(x < 1.0, lambda: (x + 1.0, [x * 2.0]), lambda: (x - 1.0, [x * 3.0]))
    fixed = tf.cond(True, lambda: x, lambda: -x)
    (p0, (p1,)), f = _run([pair, fixed], {x: 2.0})[0]
    assert (float(p0), float(p1), float(f)) == (1.0, 6.0, 2.0)


def test_cond_errors():
    x = tf.placeholder(tf.float32, [2])
    with pytest.raises(ValueError, match="pred must be a scalar"):
        tf.cond(x > 0, lambda: x, lambda: x)
    with pytest.raises(ValueError, match="different dtypes"):
        tf.cond(x[0] > 0, lambda: x, lambda: tf.cast(x, tf.int32))
    with pytest.raises(ValueError, match="same structure"):
        tf.cond(x[0] > 0, lambda: (x, x), lambda: x)
    inside = []
    tf.cond(x[0] > 0, lambda: inside.append(x * 2.0) or x, lambda: x)
    with pytest.raises(ValueError, match="inside a tf.cond branch"):
        inside[0] + 1.0


def test_while_loop_tf1_signature_and_values():
    x = tf.placeholder(tf.float64, [], name="x")
    i, y = tf.while_loop(lambda i, y: i < 5, lambda i, y: (i + 1, y * x),
                         [tf.constant(0), tf.constant(1.0, tf.float64)])
    single = tf.while_loop(lambda v: v < 100.0, lambda v: v * 2.0, [x])
    assert isinstance(single, tf.Tensor) and i.dtype == tf.int32
    (iv, yv, sv), info = _run([i, y, single], {x: 3.0})
    assert (int(iv), float(yv), float(sv)) == (5, 243.0, 192.0)
    assert info[0]["ir"].count("while[") == 2


def test_while_loop_maximum_iterations():
    x = tf.placeholder(tf.float64, [], name="x")
    out = tf.while_loop(lambda v: v < 1e9, lambda v: v + 1.0, [x], maximum_iterations=7)
    assert float(_run(out, {x: 0.5})[0]) == 7.5


def test_while_loop_errors():
    x = tf.placeholder(tf.float64, [2], name="x")
    with pytest.raises(TypeError, match="after one iteration"):
        tf.while_loop(lambda v: v[0] < 3.0, lambda v: tf.cast(v, tf.float32), [x])
    with pytest.raises(ValueError, match="after one iteration"):
        tf.while_loop(lambda v: v[0] < 3.0, lambda v: tf.concat([v, v], 0), [x])
    with pytest.raises(TypeError, match="boolean scalar"):
        tf.while_loop(lambda v: v, lambda v: v, [x])


def test_gradients_through_while_loop():
    x = tf.placeholder(tf.float64, [], name="x")
    _, y = tf.while_loop(lambda i, y: i < 4, lambda i, y: (i + 1, tf.sin(y) * x),
                         [tf.constant(0), x])
    (g,) = tf.gradients(y, [x])

    def f(v):
        y = v
        for _ in range(4):
            y = np.sin(y) * v
        return y
    (yv, gv), info = _run([y, g], {x: 0.7})
    eps = 1e-6
    assert float(yv) == pytest.approx(f(0.7), rel=1e-12)
    assert float(gv) == pytest.approx((f(0.7 + eps) - f(0.7 - eps)) / (2 * eps), rel=1e-7)
    assert "while_vjp" in info[0]["ir"]


def test_gradients_tf1_semantics():
    x = tf.placeholder(tf.float32, [3], name="x")
    z = tf.placeholder(tf.float32, [3], name="z")
    n = tf.placeholder(tf.int32, [], name="n")
    y1, y2 = tf.reduce_sum(x * x), tf.reduce_sum(tf.exp(x))
    gx, gz, gn = tf.gradients([y1, y2], [x, z, n])
    assert gz is None and gn is None  # unconnected / integer: None, as in TF1
    weighted = tf.gradients(x * 3.0, x, grad_ys=tf.constant(np.array([1.0, 2.0, 3.0], np.float32)))
    second = tf.gradients(tf.gradients(tf.reduce_sum(x ** 3), x)[0], x)
    stopped = tf.gradients(x * tf.stop_gradient(x), x)
    data = np.array([0.5, -1.0, 2.0], np.float32)
    (gxv, wv, sv, stv), _ = _run([gx, weighted, second, stopped], {x: data})
    np.testing.assert_allclose(gxv, 2 * data + np.exp(data), rtol=1e-6)
    np.testing.assert_allclose(wv[0], [3.0, 6.0, 9.0])
    np.testing.assert_allclose(sv[0], 6 * data, rtol=1e-6)
    np.testing.assert_allclose(stv[0], data)


def test_gradient_with_respect_to_an_intermediate():
    x = tf.placeholder(tf.float64, [], name="x")
    h = x * 3.0
    y = tf.square(h) + x
    gh, gx = tf.gradients(y, [h, x])
    (ghv, gxv), _ = _run([gh, gx], {x: 2.0})
    assert (float(ghv), float(gxv)) == (12.0, 1.0 + 12.0 * 3.0)
