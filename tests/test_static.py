"""tracegrad.static: the seed's TF1 example, symbolic tensors, sessions and the IR."""
import collections

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
import tracegrad.static as tf

FEED = (1.0, 2.0, 3.0, 4.0)


@pytest.fixture(autouse=True)
def fresh_graph():
    with tf.Graph().as_default() as g:
        yield g


def seed_graph():
    a, b, c, d = (tf.placeholder(tf.float32) for _ in range(4))
    x = a + b
    y = c * d
    z = x + y
    return (a, b, c, d), (x, y, z)


def test_seed_forward_values():
    (a, b, c, d), (x, y, z) = seed_graph()
    with tf.Session() as sess:
        out = sess.run([x, y, z], feed_dict=dict(zip((a, b, c, d), FEED)))
    assert [float(v) for v in out] == [3.0, 12.0, 15.0]
    assert all(v.dtype == np.float32 and np.ndim(v) == 0 for v in out)


def test_seed_gradients_match_eager():
    (a, b, c, d), (x, y, z) = seed_graph()
    grads = tf.gradients(z, [a, b, c, d])
    with tf.Session() as sess:
        static = sess.run(grads, feed_dict=dict(zip((a, b, c, d), FEED)))
    ea, eb, ec, ed = (tg.tensor(v, requires_grad=True) for v in FEED)
    ((ea + eb) + ec * ed).backward()
    assert [float(g) for g in static] == [1.0, 1.0, 4.0, 3.0]
    assert [float(g) for g in static] == [float(t.grad.item()) for t in (ea, eb, ec, ed)]


@pytest.mark.parametrize("a_value, grads", [(1.0, (2.0, 2.0)), (-1.0, (2.0, -2.0))])
def test_seed_cond(a_value, grads):
    a, b = tf.placeholder(tf.float32), tf.placeholder(tf.float32)
    x = tf.cond(a > 0, lambda: a + b, lambda: a - b)
    y = x * 2
    ga, gb = tf.gradients(y, [a, b])
    with tf.Session() as sess:
        yv, gav, gbv = sess.run([y, ga, gb], feed_dict={a: a_value, b: 2.0})
        assert float(yv) == 2 * (a_value + 2.0 if a_value > 0 else a_value - 2.0)
        assert (float(gav), float(gbv)) == grads
        assert len(sess.cache_info()) == 1  # both branches live in one native program


def test_repr_and_static_shapes():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    w = tf.constant(np.ones((3, 2), np.float32))
    h = tf.matmul(x, w)
    assert repr(tf.constant([1.0, 2.0, 3.0]) + 1.0) == "<tf.Tensor 'add:0' shape=(3,) dtype=float32>"
    assert repr(h) == "<tf.Tensor 'MatMul:0' shape=(?, 2) dtype=float32>"
    assert str(h) == 'Tensor("MatMul:0", shape=(?, 2), dtype=float32)'
    assert h.shape.as_list() == [None, 2] and h.dtype == tf.float32
    assert tf.reduce_sum(h, axis=0).shape == (2,)
    assert tf.reshape(x, [-1]).shape == (None,)
    assert tf.reshape(x, [-1, 6]).shape == (None, 6)
    assert (x + tf.constant(np.ones(3, np.float32))).shape == (None, 3)
    assert repr(tf.placeholder(tf.float64) * 2) == "<tf.Tensor 'mul:0' shape=<unknown> dtype=float64>"
    v = tf.Variable(np.zeros(3), name="w")
    assert repr(v) == "<tf.Variable 'w:0' shape=(3,) dtype=float64_ref>"


def test_unique_names_and_lookup():
    a = tf.placeholder(tf.float32, name="a")
    s1, s2 = a + 1.0, a + 2.0
    assert (s1.name, s2.name) == ("add:0", "add_1:0")
    g = tf.get_default_graph()
    assert g.get_tensor_by_name("add_1:0") is s2
    assert g.get_operation_by_name("a") is a.op
    with tf.Session() as sess:
        assert float(sess.run("add_1:0", {"a:0": 1.0})) == 3.0


@pytest.mark.parametrize("value", ["float", "bool", "int", "numpy", "array", "item", "iter"])
def test_symbolic_tensors_have_no_value(value):
    t = tf.placeholder(tf.float32, [3]) * 2.0
    ask = {"float": float, "bool": bool, "int": int, "numpy": lambda t: t.numpy(),
           "array": np.asarray, "item": lambda t: t.item(), "iter": list}[value]
    with pytest.raises(TypeError, match="Session|not iterable"):
        ask(t)


def test_numpy_protocols_and_tracegrad_numpy():
    x = tf.placeholder(tf.float64, [None, 2])
    fetches = {"np_exp": np.exp(x), "tnp_exp": tnp.exp(x), "tf_exp": tf.exp(x),
               "np_sum": np.sum(x, axis=1), "tnp_tanh": tnp.tanh(x) @ tnp.ones(2),
               "mixed": np.maximum(x, 0.5) - tnp.log1p(x)}
    data = np.array([[0.1, 0.9], [1.5, -0.3], [2.0, 0.0]])
    with tf.Session() as sess:
        out = sess.run(fetches, {x: data})
    np.testing.assert_allclose(out["np_exp"], np.exp(data), rtol=1e-12)
    np.testing.assert_allclose(out["tnp_exp"], np.exp(data), rtol=1e-12)
    np.testing.assert_allclose(out["tf_exp"], np.exp(data), rtol=1e-12)
    np.testing.assert_allclose(out["np_sum"], data.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(out["tnp_tanh"], np.tanh(data).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(out["mixed"], np.maximum(data, 0.5) - np.log1p(data), rtol=1e-12)


def test_tf1_math_names():
    x = tf.placeholder(tf.float64, [4])
    y = tf.constant(np.array([0.5, 1.0, 2.0, 3.0]))
    ops = {
        "add": (tf.add(x, y), lambda a, b: a + b), "multiply": (tf.multiply(x, y), np.multiply),
        "subtract": (tf.subtract(x, y), np.subtract), "divide": (tf.divide(x, y), np.divide),
        "maximum": (tf.maximum(x, y), np.maximum), "minimum": (tf.minimum(x, y), np.minimum),
        "square": (tf.square(x), lambda a, b: a * a), "sigmoid": (tf.sigmoid(x),
                                                                 lambda a, b: 1 / (1 + np.exp(-a))),
        "tanh": (tf.tanh(x), lambda a, b: np.tanh(a)), "log": (tf.log(y), lambda a, b: np.log(b)),
        "reduce_mean": (tf.reduce_mean(x), lambda a, b: a.mean()),
        "reduce_max": (tf.reduce_max(x * y), lambda a, b: (a * b).max()),
        "relu": (tf.nn.relu(x), lambda a, b: np.maximum(a, 0)),
        "where": (tf.where(x > y, x, y), np.maximum),
        "cast": (tf.cast(x > 0, tf.float64), lambda a, b: (a > 0).astype(np.float64)),
        "concat": (tf.concat([x, y], 0), lambda a, b: np.concatenate([a, b])),
        "stack": (tf.stack([x, y], axis=1), lambda a, b: np.stack([a, b], axis=1)),
    }
    data = np.array([-1.0, 0.25, 2.5, 4.0])
    with tf.Session() as sess:
        out = sess.run({k: t for k, (t, _) in ops.items()}, {x: data})
    for k, (_, ref) in ops.items():
        np.testing.assert_allclose(out[k], ref(data, np.array([0.5, 1.0, 2.0, 3.0])),
                                   rtol=1e-12, err_msg=k)


def test_fetch_structures_and_operations():
    a = tf.placeholder(tf.float32, [], name="a")
    b = a * 3.0
    Pair = collections.namedtuple("Pair", "first second")
    noop = tf.no_op()
    with tf.Session() as sess:
        out = sess.run({"p": Pair(a, [b, (b,)]), "op": noop, "t": b.op}, {a: 2.0})
        assert out["op"] is None and out["t"] is None
        assert isinstance(out["p"], Pair)
        assert float(out["p"].first) == 2.0 and float(out["p"].second[1][0]) == 6.0
        assert float(b.eval({a: 1.0})) == 3.0  # the default session


def test_dce_keeps_only_what_fetches_need():
    a = tf.placeholder(tf.float32, [2], name="a")
    unfed = tf.placeholder(tf.float32, [2], name="unfed")
    wanted = tf.exp(a)
    _unused = tf.sin(unfed) + wanted
    with tf.Session() as sess:
        np.testing.assert_allclose(sess.run(wanted, {a: np.zeros(2)}), np.ones(2))
        (entry,) = sess.cache_info()
        assert "exp" in entry["ir"] and "sin" not in entry["ir"]
        assert entry["ir"].count("f32[2]") >= 1 and "lambda a:f32[2] ." in entry["ir"]


def test_none_batch_dims_specialize_per_size():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    w_value = np.arange(6, dtype=np.float32).reshape(3, 2) / 6
    y = tf.reduce_sum(tf.tanh(tf.matmul(x, tf.constant(w_value))), axis=1)
    rng = np.random.default_rng(0)
    with tf.Session() as sess:
        for n in (1, 5, 64, 5, 1):
            data = rng.normal(size=(n, 3)).astype(np.float32)
            out = sess.run(y, {x: data})
            assert out.shape == (n,)
            np.testing.assert_allclose(out, np.tanh(data @ w_value).sum(1),
                                       rtol=1e-5)
        assert sorted(e["feeds"]["x:0"] for e in sess.cache_info()) == [
            "f32[1,3]", "f32[5,3]", "f32[64,3]"]


def test_sess_graph_prints_tracegrad_ir():
    (a, b, c, d), (x, y, z) = seed_graph()
    tf.gradients(z, [a, b, c, d])
    with tf.Session() as sess:
        sess.run(z, feed_dict=dict(zip((a, b, c, d), FEED)))
        text = str(sess.graph)
    assert text == ("{ lambda a:f32[] b:f32[] c:f32[] d:f32[] . let\n"
                    "    e:f32[] = add a b\n"
                    "    f:f32[] = mul c d\n"
                    "    g:f32[] = add e f\n"
                    "  in (g, 1.0:f32[], 1.0:f32[], d, c) }")


def test_graph_ir_needs_placeholder_shapes():
    x = tf.placeholder(tf.float32, [None], name="x")
    y = x * 2.0
    assert "needs the shapes of placeholders 'x'" in str(tf.get_default_graph())
    assert "f32[7]" in tf.get_default_graph().ir(feed_shapes={"x": (7,)})
    assert "mul" in tf.get_default_graph().ir(feed_shapes={x: (7,)}, optimized=False)
    del y


def test_graphs_and_default_graph():
    g = tf.Graph()
    with g.as_default():
        assert tf.get_default_graph() is g
        c = tf.constant(2.0)
    assert tf.get_default_graph() is not g
    with tf.Session(graph=g) as sess:
        assert sess.graph is g and float(sess.run(c * 3.0)) == 6.0
    with pytest.raises(AssertionError):
        tf.reset_default_graph()  # inside the fixture's as_default


def test_closed_session():
    c = tf.constant(1.0)
    sess = tf.Session()
    sess.close()
    with pytest.raises(RuntimeError, match="closed Session"):
        sess.run(c)


def test_tracegrad_numpy_functions_taking_lists_defer():
    a, b = tf.placeholder(tf.float32, [2]), tf.placeholder(tf.float32, [2])
    s = tnp.stack([a, b * 2.0], axis=0)
    c = tnp.concatenate((a, tnp.ones(2, np.float32)))
    assert s.shape == (2, 2) and c.shape == (4,)
    with tf.Session() as sess:
        sv, cv = sess.run([s, c], {a: [1.0, 2.0], b: [3.0, 4.0]})
    assert sv.tolist() == [[1.0, 2.0], [6.0, 8.0]] and cv.tolist() == [1.0, 2.0, 1.0, 1.0]
    assert tnp.exp(np.zeros(1)).tolist() == [1.0]  # plain arrays still compute eagerly


def test_gradients_keep_a_fed_intermediate_and_do_not_rerun_assigns():
    # TF1: a fed tensor keeps its fed value in the gradient, its derivative that of the op
    # that makes it; AssignAdd is not run again (not differentiable)
    x = tf.placeholder(tf.float64, [3])
    a = x * x
    b = tf.reduce_sum(a * x)
    g = tf.gradients(b, x)[0]
    with tf.Session() as s:
        value, grad = s.run([b, g], {x: [1.0, 2.0, 3.0], a: np.ones(3)})
    assert value == 6.0 and grad.tolist() == [3.0, 9.0, 19.0]
    v = tf.Variable(np.array([1.0, 2.0]))
    p = tf.placeholder(tf.float64, [2])
    added = v.assign_add(p)
    gp = tf.gradients(tf.reduce_sum(added * p), p)[0]
    with tf.Session() as s:
        s.run(v.initializer)
        assert s.run(gp, {p: [1.0, 1.0]}).tolist() == [2.0, 3.0]
        assert s.run(v).tolist() == [2.0, 3.0]


def test_tf1_dtypes_of_integer_reductions_fill_and_short_constants():
    with tf.Graph().as_default():
        outs = [tf.reduce_mean(tf.constant([1, 2])), tf.reduce_sum(tf.constant([1, 2])),
                tf.reduce_mean(tf.constant([[-3, 2], [5, 6]]), axis=1), tf.fill([2], 3),
                tf.constant([1.0, 2.0], shape=[2, 2])]
        with tf.Session() as s:
            mean, total, rows, filled, padded = s.run(outs)
    assert mean.dtype == total.dtype == rows.dtype == filled.dtype == np.int32
    assert (int(mean), int(total), rows.tolist(), filled.tolist()) == (1, 3, [0, 5], [3, 3])
    assert padded.tolist() == [[1.0, 2.0], [2.0, 2.0]]
