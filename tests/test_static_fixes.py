"""tracegrad.static: regressions of TF1 semantics (gradients at kinks and through feeds,
back_prop=False, where, dtypes, sessions, optimizer) and the classifier-port API."""
import numpy as np
import pytest

import tracegrad.static as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


def _run(fetches, feed=None):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(fetches, feed)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# -- gradients ---------------------------------------------------------------------------------

def test_sigmoid_cross_entropy_gradient_is_sigmoid_minus_labels_at_zero():
    x, z = tf.placeholder(tf.float64, [4]), tf.placeholder(tf.float64, [4])
    loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x)
    (g,) = tf.gradients(tf.reduce_sum(loss), [x])
    xv, zv = np.array([0.0, 0.0, 1.5, -2.0]), np.array([0.0, 1.0, 1.0, 0.25])
    lv, gv = _run([loss, g], {x: xv, z: zv})
    np.testing.assert_allclose(gv, _sigmoid(xv) - zv, rtol=1e-12)
    np.testing.assert_allclose(lv, np.logaddexp(0, xv) - xv * zv, rtol=1e-12)


def test_while_back_prop_false_passes_no_gradient_even_to_what_the_body_reads():
    x = tf.placeholder(tf.float64, [], name="x")
    v = tf.while_loop(lambda v: v < 100.0, lambda v: v * x, [x], back_prop=False)
    assert tf.gradients(v, x) == [None]  # TF1: the loop is a constant for tf.gradients
    (g,) = tf.gradients(v * x, x)        # only the direct path: d(v * x)/dx = v
    assert _run([v, g], {x: 3.0}) == [243.0, 243.0]
    w = tf.while_loop(lambda v: v < 100.0, lambda v: v * x, [x])  # back_prop=True: 5 x**4
    assert _run(tf.gradients(w, x), {x: 3.0}) == [405.0]


def test_stop_gradient_alone_gives_none_as_tf1():
    x = tf.placeholder(tf.float32, [3])
    assert tf.gradients(tf.stop_gradient(x) * 2.0, x) == [None]
    m = x * 2.0
    assert tf.gradients(tf.reduce_sum(m), x, stop_gradients=[m]) == [None]


def test_gradient_through_a_fed_intermediate_uses_the_fed_value():
    x = tf.placeholder(tf.float64, [], name="x")
    k = tf.constant(3.0, tf.float64, name="k")
    h = x * k
    (g,) = tf.gradients(h * h, x)
    assert _run(g, {x: 1.0}) == 18.0
    assert _run(g, {x: 1.0, h: 7.0}) == 42.0  # 2 * h_fed * k


def test_gradient_through_a_fed_cond_output():
    x = tf.placeholder(tf.float64, [], name="x")
    k = tf.constant(3.0, tf.float64, name="k")
    c = tf.cond(x > 0, lambda: x * k, lambda: x * 2.0)
    (g,) = tf.gradients(c * c, x)
    assert _run(g, {x: 1.0, c: 7.0}) == 42.0
    assert _run(g, {x: -1.0, c: 7.0}) == 28.0


# -- ops -----------------------------------------------------------------------------------------

def test_where_with_rank1_condition_selects_rows():
    cond = tf.constant([True, False])
    a, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[10.0, 20.0], [30.0, 40.0]])
    rows = tf.where(cond, tf.constant(a), tf.constant(b))
    wide = tf.where(cond, tf.zeros([2, 3]), tf.ones([2, 3]))
    assert wide.shape == (2, 3)
    x = tf.placeholder(tf.float64, [2, 2])
    (g,) = tf.gradients(tf.reduce_sum(tf.where(cond, x, b)), x)
    same = tf.where(tf.constant(a > 2), a, b)
    scalar = tf.where(tf.constant(False), a, b)
    rv, wv, gv, sv, scv = _run([rows, wide, g, same, scalar], {x: a})
    np.testing.assert_array_equal(rv, [[1.0, 2.0], [30.0, 40.0]])
    np.testing.assert_array_equal(wv, [[0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(gv, [[1, 1], [0, 0]])
    np.testing.assert_array_equal(sv, np.where(a > 2, a, b))
    np.testing.assert_array_equal(scv, b)
    with pytest.raises(ValueError, match="length 3"):
        tf.where(tf.constant([True, False, True]), a, b)


def test_python_ints_outside_int32_are_int64():
    c, d = tf.constant(2 ** 40), tf.constant([1, 3_000_000_000])
    v, f = tf.Variable(-2 ** 33), tf.fill([2], 2 ** 35)
    assert [t.dtype for t in (c, d, v, f)] == [tf.int64] * 4
    assert tf.constant([1, -5]).dtype == tf.int32
    cv, dv, vv, fv = _run([c, d, v, f])
    assert cv == 2 ** 40 and vv == -2 ** 33
    np.testing.assert_array_equal(dv, [1, 3_000_000_000])
    np.testing.assert_array_equal(fv, [2 ** 35] * 2)


def test_indexing_a_constant_with_a_tensor():
    data = tf.constant(np.array([1.0, 2.0, 3.0, 4.0]))
    i = tf.placeholder(tf.int32, [])
    total = tf.while_loop(lambda k, acc: k < 4, lambda k, acc: (k + 1, acc + data[k]),
                          (tf.constant(0), tf.constant(0.0, tf.float64)))[1]
    m = tf.constant(np.arange(6.0).reshape(2, 3))
    assert _run([data[i], (data * 2.0)[i], total, m[i, 1:]], {i: 2})[:3] == [3.0, 6.0, 10.0]
    np.testing.assert_array_equal(_run(m[i, 1:], {i: 1}), [4.0, 5.0])


# -- sessions ------------------------------------------------------------------------------------

def test_session_block_makes_its_graph_the_default():
    g, outer = tf.Graph(), tf.get_default_graph()
    with g.as_default():
        w = tf.Variable(np.ones(2), name="w")
        y = w * 2.0
    with tf.Session(graph=g) as sess:
        assert tf.get_default_graph() is g
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(y), [2.0, 2.0])
    assert tf.get_default_graph() is outer


def test_interactive_session_makes_its_graph_the_default_until_closed():
    g, outer = tf.Graph(), tf.get_default_graph()
    with g.as_default():
        c = tf.constant(2.0)
    with tf.Graph().as_default():
        sess = tf.InteractiveSession(graph=g)
    try:
        assert tf.get_default_graph() is g  # leaving the `with` took its own graph off
        assert float((c * tf.constant(3.0)).eval()) == 6.0
    finally:
        sess.close()
    assert tf.get_default_graph() is outer


# -- training ------------------------------------------------------------------------------------

def test_float64_learning_rate_with_float32_variables():
    r = tf.placeholder(tf.float64, [])
    for rate, feed in ((0.25, None), (np.float64(0.25), None), (r, {r: 0.25})):
        w = tf.Variable(np.array([1.0, -2.0], np.float32))
        train = tf.train.GradientDescentOptimizer(rate).minimize(tf.reduce_sum(tf.square(w)),
                                                                 var_list=[w])
        with tf.Session() as sess:
            sess.run(w.initializer)
            sess.run(train, feed)
            out = sess.run(w)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, [0.5, -1.0])  # w - 0.25 * 2w


def test_minimize_without_gradients_raises():
    w = tf.Variable(1.0)
    loss = tf.constant(1.0) * 2.0
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    del w


def test_global_step():
    assert tf.train.get_global_step() is None
    step = tf.train.get_or_create_global_step()
    assert tf.train.get_or_create_global_step() is step and tf.train.get_global_step() is step
    assert step.dtype == tf.int64 and step.shape == () and step not in tf.trainable_variables()
    w = tf.Variable(np.float32(1.0))
    train = tf.train.GradientDescentOptimizer(0.5).minimize(w * w, global_step=step)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train)
        sess.run(train)
        assert sess.run([step, w]) == [2, 0.0]


# -- errors --------------------------------------------------------------------------------------

def test_cond_branches_of_different_shapes_fail_at_build_time():
    x = tf.placeholder(tf.float64, [])
    with pytest.raises(ValueError, match=r"different shapes \(\(2,\) and \(3,\)\)"):
        tf.cond(x > 0, lambda: tf.zeros([2]), lambda: tf.zeros([3]))
    with pytest.raises(ValueError, match="different shapes"):
        tf.cond(x > 0, lambda: tf.zeros([2]), lambda: tf.zeros([2, 1]))


def test_cond_predicate_must_be_bool():
    with pytest.raises(TypeError, match="bool"):
        tf.cond(tf.constant(2), lambda: tf.constant(1.0), lambda: tf.constant(2.0))


def test_maximum_iterations_of_int64():
    limit = tf.constant(np.int64(4))
    out = tf.while_loop(lambda a: a < 100, lambda a: a + 1, [0], maximum_iterations=limit)
    assert _run(out) == 4
    with pytest.raises(TypeError, match="maximum_iterations"):
        tf.while_loop(lambda a: a < 100, lambda a: a + 1, [0], maximum_iterations=2.5)


def test_fetching_a_tensor_made_in_a_branch_is_a_clear_error():
    x = tf.placeholder(tf.float64, [])
    inner = []
    tf.cond(x > 0, lambda: inner.append(x * 5) or inner[0] + 1, lambda: x)
    with pytest.raises(ValueError, match="inside a tf.cond branch"):
        _run(inner[0], {x: 1.0})


def test_ir_feed_shapes_are_checked():
    p = tf.placeholder(tf.float32, [None, 3], name="p")
    q = p * 2.0
    assert "f32[2,3]" in tf.get_default_graph().ir(feed_shapes={"p": np.array([2, 3])})
    for bad in ("abc", (2, 4), (2,)):
        with pytest.raises(ValueError, match="feed_shapes"):
            tf.get_default_graph().ir(feed_shapes={"p": bad})
    with pytest.raises(ValueError, match="not a placeholder"):
        tf.get_default_graph().ir(feed_shapes={q: (2, 3)})


# -- classifier-port API ---------------------------------------------------------------------------

X_DATA = np.array([[1.0, 5.0, 2.0], [3.0, -1.0, 0.0], [0.5, 0.5, 9.0]])
LABELS = np.array([1, 0, 2], np.int32)


def test_argmax_argmin_one_hot():
    X = tf.placeholder(tf.float64, [None, 3])
    L = tf.placeholder(tf.int32, [None])
    am, an = tf.argmax(X, 1), tf.argmin(X)
    assert am.dtype == tf.int64 and an.shape == (3,)
    oh, oh0 = tf.one_hot(L, 4), tf.one_hot(L, 4, on_value=5, off_value=-1, axis=0)
    assert oh.dtype == tf.float32 and oh.shape == (None, 4) and oh0.dtype == tf.int32
    out = _run([am, an, oh, oh0, tf.argmax(X, output_type=tf.int32)],
               {X: X_DATA, L: [1, 0, 7]})
    np.testing.assert_array_equal(out[0], X_DATA.argmax(1))
    np.testing.assert_array_equal(out[1], X_DATA.argmin(0))
    np.testing.assert_array_equal(out[2], np.eye(4)[[1, 0]].tolist() + [[0, 0, 0, 0]])
    np.testing.assert_array_equal(out[3], np.where(np.eye(4)[:, [1, 0, 3]] * [1, 1, 0], 5, -1))
    assert out[4].dtype == np.int32


def test_sparse_softmax_cross_entropy():
    X = tf.placeholder(tf.float64, [None, 3])
    L = tf.placeholder(tf.int32, [None])
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=L, logits=X)
    (g,) = tf.gradients(tf.reduce_sum(xent), X)
    xv, gv = _run([xent, g], {X: X_DATA, L: LABELS})
    soft = np.exp(X_DATA) / np.exp(X_DATA).sum(1, keepdims=True)
    np.testing.assert_allclose(xv, -np.log(soft[np.arange(3), LABELS]), rtol=1e-12)
    np.testing.assert_allclose(gv, soft - np.eye(3)[LABELS], rtol=1e-12, atol=1e-15)
    with pytest.raises(TypeError, match="labels"):
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=X, logits=X)


def test_gather_tile_split_l2_loss():
    X = tf.placeholder(tf.float64, [3, 3])
    rows, cols = tf.gather(X, tf.constant([2, 0, 2])), tf.gather(X, [2, 0], axis=1)
    tiled, l2 = tf.tile(X, [2, 1]), tf.nn.l2_loss(X)
    parts, sized = tf.split(X, 3, axis=1), tf.split(X, [1, -1], axis=1)
    assert [p.shape for p in sized] == [(3, 1), (3, 2)]
    grads = tf.gradients([tf.reduce_sum(rows), tf.reduce_sum(tiled), l2], X)
    out = _run([rows, cols, tiled, l2, parts, sized, grads[0]], {X: X_DATA})
    np.testing.assert_array_equal(out[0], X_DATA[[2, 0, 2]])
    np.testing.assert_array_equal(out[1], X_DATA[:, [2, 0]])
    np.testing.assert_array_equal(out[2], np.tile(X_DATA, (2, 1)))
    assert out[3] == np.sum(X_DATA ** 2) / 2
    for got, want in zip(out[4] + out[5], np.split(X_DATA, 3, 1) + np.split(X_DATA, [1], 1)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(out[6], np.array([[1], [0], [2]]) + 2 + X_DATA)


def test_placeholder_with_default():
    p = tf.placeholder_with_default(tf.constant([1.0, 2.0]), [None])
    y = p * 2.0
    (g,) = tf.gradients(tf.reduce_sum(y * p), p)
    assert p.shape == (None,) and p.dtype == tf.float32
    np.testing.assert_array_equal(_run(y), [2.0, 4.0])
    np.testing.assert_array_equal(_run([y, g], {p: [3.0, 4.0, 5.0]})[0], [6.0, 8.0, 10.0])
    np.testing.assert_array_equal(_run(g), [4.0, 8.0])
    with pytest.raises(ValueError, match="does not fit"):
        tf.placeholder_with_default(tf.constant([1.0, 2.0]), [3])


# -- TF1's registered gradients at kinks and ties (tf1_rules.py) -------------------------------
# op, inputs at and around the kink, TF1's gradient of sum(op(x)) there, points away from kinks
KINKS = [
    ("clip_by_value", lambda x: tf.clip_by_value(x, 0.0, 2.0), [2.0, 2.0, 0.0, -1.0, 3.0],
     [1, 1, 1, 0, 0], [-0.5, 0.3, 1.7, 2.4]),
    ("maximum", lambda x: tf.maximum(x, 1.0), [1.0, 0.0, 2.0], [1, 0, 1], [0.2, 1.6]),
    ("maximum_flipped", lambda x: tf.maximum(1.0, x), [1.0, 0.0, 2.0], [0, 0, 1], [0.2, 1.6]),
    ("minimum", lambda x: tf.minimum(x, 1.0), [1.0, 0.0, 2.0], [1, 1, 0], [0.2, 1.6]),
    ("abs", tf.abs, [0.0, -1.0, 2.0], [0, -1, 1], [-0.7, 0.4]),
    ("abs_operator", lambda x: abs(x), [0.0, -1.0, 2.0], [0, -1, 1], [-0.7, 0.4]),
    ("relu", tf.nn.relu, [0.0, -1.0, 2.0], [0, 0, 1], [-0.7, 0.4]),
    ("relu6", tf.nn.relu6, [0.0, 6.0, 3.0, 7.0, -1.0], [0, 0, 1, 0, 0], [-0.7, 0.4, 5.5, 6.5]),
    ("leaky_relu", lambda x: tf.nn.leaky_relu(x, 0.1), [0.0, -1.0, 2.0], [0.1, 0.1, 1],
     [-0.7, 0.4]),
    ("elu", tf.nn.elu, [0.0, -1.0, 2.0], [1, np.exp(-1.0), 1], [-0.7, 0.4, 800.0]),
    ("reduce_max", tf.reduce_max, [1.0, 3.0, 3.0], [0, 0.5, 0.5], [1.0, 2.5, 3.0]),
    ("sqrt", tf.sqrt, [0.0, 4.0], [np.inf, 0.25], [0.3, 2.0]),
]


@pytest.mark.parametrize("name,fn,at,tf1_grad,away", KINKS, ids=[k[0] for k in KINKS])
def test_gradient_at_kink_is_tf1s(name, fn, at, tf1_grad, away):
    x = tf.placeholder(tf.float64, [None])
    (g,) = tf.gradients(tf.reduce_sum(fn(x)), x)
    np.testing.assert_allclose(_run(g, {x: at}), tf1_grad, rtol=1e-12)


@pytest.mark.parametrize("name,fn,at,tf1_grad,away", KINKS, ids=[k[0] for k in KINKS])
def test_gradient_away_from_kink_matches_central_differences(name, fn, at, tf1_grad, away):
    x = tf.placeholder(tf.float64, [None])
    c = np.random.default_rng(0).normal(size=len(away))
    y = tf.reduce_sum(fn(x) * c)
    (g,) = tf.gradients(y, x)
    with tf.Session() as sess:
        gv = sess.run(g, {x: away})
        h, fd = 1e-6, []
        for i in range(len(away)):
            e = np.eye(len(away))[i] * h
            fd.append((sess.run(y, {x: away + e}) - sess.run(y, {x: away - e})) / (2 * h))
    np.testing.assert_allclose(gv, fd, rtol=1e-6, atol=1e-8)


def test_reviewer_reproducer_clip_by_value_gradient_is_inclusive():
    x = tf.placeholder(tf.float64, [4])
    (g,) = tf.gradients(tf.reduce_sum(tf.clip_by_value(x, 0.0, 2.0)), x)
    np.testing.assert_array_equal(_run(g, {x: [2.0, 2.0, 0.0, -1.0]}), [1, 1, 1, 0])


def test_clip_by_value_bounds_get_the_gradient_where_crossed():
    x, lo, hi = (tf.placeholder(tf.float64, s) for s in ([5], [], [5]))
    gx, glo, ghi = tf.gradients(tf.reduce_sum(tf.clip_by_value(x, lo, hi)), [x, lo, hi])
    feed = {x: [2.0, 2.0, 0.0, -1.0, 3.0], lo: 0.0, hi: [2.0] * 5}
    out = _run([gx, glo, ghi], feed)
    np.testing.assert_array_equal(out[0], [1, 1, 1, 0, 0])
    assert out[1] == 1.0  # the one x below lo, summed to lo's shape ()
    np.testing.assert_array_equal(out[2], [0, 0, 0, 0, 1])


@pytest.mark.parametrize("op,x_gets", [("maximum", [1, 1, 0]), ("minimum", [1, 0, 1])])
def test_maximum_minimum_ties_go_to_x(op, x_gets):
    x, y = tf.placeholder(tf.float64, [3]), tf.placeholder(tf.float64, [3])
    gx, gy = tf.gradients(tf.reduce_sum(getattr(tf, op)(x, y)), [x, y])
    gxv, gyv = _run([gx, gy], {x: [1.0, 2.0, 3.0], y: [1.0, 1.0, 4.0]})
    np.testing.assert_array_equal(gxv, x_gets)
    np.testing.assert_array_equal(gyv, 1 - np.array(x_gets))


SPECIAL = np.array([np.nan, 1.0, -0.0, 0.0, np.inf, -np.inf, 2.0, -0.0])
OTHER = np.array([1.0, np.nan, 0.0, -0.0, 1.0, 1.0, 2.0, -0.0])


@pytest.mark.parametrize("name,fn,ref", [
    ("maximum", lambda x, y: tf.maximum(x, y), np.maximum),
    ("minimum", lambda x, y: tf.minimum(x, y), np.minimum),
    ("abs", lambda x, y: tf.abs(x), lambda x, y: np.abs(x)),
    ("clip", lambda x, y: tf.clip_by_value(x, 0.0, 1.0), lambda x, y: np.clip(x, 0.0, 1.0)),
    ("clip_tensors", lambda x, y: tf.clip_by_value(x, y, 5.0), lambda x, y: np.clip(x, y, 5.0)),
])
def test_forward_values_keep_numpys_bits_at_nan_zeros_and_inf(name, fn, ref):
    x, y = tf.placeholder(tf.float64, [8]), tf.placeholder(tf.float64, [8])
    out = _run(fn(x, y), {x: SPECIAL, y: OTHER})
    expected = ref(SPECIAL, OTHER)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(expected))


def test_tf1_rules_keep_weak_python_numbers_ints_and_second_order():
    xf, xi = tf.placeholder(tf.float32, [3]), tf.placeholder(tf.int32, [3])
    assert tf.maximum(xf, 2.0).dtype == tf.float32
    assert tf.clip_by_value(xi, 0, 2).dtype == tf.int32
    x = tf.placeholder(tf.float64, [3])
    (g,) = tf.gradients(tf.reduce_sum(tf.square(tf.maximum(x, 0.0))), x)
    (h,) = tf.gradients(tf.reduce_sum(g), x)  # d2/dx2 of max(x, 0)^2 is 2 where x >= 0
    out = _run([tf.clip_by_value(xi, 0, 2), g, h], {xi: [-1, 1, 5], x: [-1.0, 0.0, 3.0]})
    np.testing.assert_array_equal(out[0], [0, 1, 2])
    np.testing.assert_array_equal(out[1], [0, 0, 6])
    np.testing.assert_array_equal(out[2], [0, 2, 2])


def test_split_of_an_unknown_rank_tensor_gives_every_piece():
    """The number of pieces is static even where the rank is not (one piece came back and
    the rest of the data was dropped)."""
    u = tf.placeholder(tf.float32)
    parts = tf.split(u, 3)
    sized = tf.split(u, [1, 2, 3])
    a, b = tf.split(u, 2)
    with tf.Session() as s:
        got = s.run([parts, sized, a, b], {u: np.arange(6.0)})
    assert [p.tolist() for p in got[0]] == [[0, 1], [2, 3], [4, 5]]
    assert [p.tolist() for p in got[1]] == [[0], [1, 2], [3, 4, 5]]
    assert got[2].tolist() == [0, 1, 2] and got[3].tolist() == [3, 4, 5]


@pytest.mark.parametrize("k", [4, 5, 7, 8, 16])
def test_reshape_of_a_none_axis_into_factors_never_guesses_a_static_size(k):
    """A static dim comes from worlds that agree; one composite world cannot tell the -1
    dim apart (reshape to [-1, 5] claimed a static (12, 5))."""
    x = tf.placeholder(tf.float32, [None])
    y = tf.reshape(x, [-1, k])
    assert y.shape.dims[0] is None and y.shape.dims[1] in (None, k)
    with tf.Session() as s:
        assert s.run(y, {x: np.arange(3.0 * k)}).shape == (3, k)


def test_sparse_softmax_cross_entropy_of_a_label_out_of_range_is_nan():
    logits = tf.constant(np.random.default_rng(0).normal(size=(3, 5)))
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.constant([7, 2, -1]),
                                                          logits=logits)
    with tf.Session() as s:
        got = s.run(loss)
    assert np.isnan(got[0]) and np.isfinite(got[1]) and np.isnan(got[2])


def test_an_empty_list_feeds_any_dtype_and_an_empty_constant_value_is_refused():
    i, b = tf.placeholder(tf.int32, [None]), tf.placeholder(tf.bool, [None])
    with tf.Session() as s:
        got_i, got_b = s.run([i, b], {i: [], b: []})
    assert got_i.dtype == np.int32 and got_b.dtype == np.bool_ and got_i.size == got_b.size == 0
    with pytest.raises(ValueError, match="empty value cannot fill"):
        tf.constant([], shape=[2])
