"""tracegrad.static: the TF1 names most TF1 programs use (v1 softmax cross entropy, bias_add,
Momentum and Adam, variable_scope/get_variable, name_scope, initializers, Saver, the
assign functions), each against TF1's behaviour; and the submodules' docstring examples."""
import doctest
import importlib
import pkgutil

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


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# -- tf.nn -------------------------------------------------------------------------------------

def test_softmax_cross_entropy_v1_has_v2s_value_and_no_label_gradient():
    z, y = tf.placeholder(tf.float64, [2, 3]), tf.placeholder(tf.float64, [2, 3])
    v1 = tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=z)
    v2 = tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=z)
    assert tf.gradients(v1, y) == [None]
    assert tf.gradients(v2, y)[0] is not None
    (gz,) = tf.gradients(tf.reduce_sum(v1), z)
    zv, yv = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]), np.array([[0, 1, 0], [0.2, 0.3, 0.5]])
    a, b, g = _run([v1, v2, gz], {z: zv, y: yv})
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(g, _softmax(zv) - yv, rtol=1e-12)
    with pytest.raises(ValueError, match="by name"):
        tf.nn.softmax_cross_entropy_with_logits(y, z)


def test_bias_add_last_axis_and_nchw_with_gradient():
    x, b = tf.placeholder(tf.float64, [2, 3, 4]), tf.placeholder(tf.float64, [4])
    c = tf.placeholder(tf.float64, [3])
    y, y_nchw = tf.nn.bias_add(x, b), tf.nn.bias_add(x, c, data_format="NCHW")
    (gb,) = tf.gradients(tf.reduce_sum(y), b)
    xv = np.arange(24.0).reshape(2, 3, 4)
    out = _run([y, y_nchw, gb], {x: xv, b: [1.0, 2, 3, 4], c: [10.0, 20, 30]})
    np.testing.assert_array_equal(out[0], xv + [1, 2, 3, 4])
    np.testing.assert_array_equal(out[1], xv + np.array([10, 20, 30])[:, None])
    np.testing.assert_array_equal(out[2], [6, 6, 6, 6])
    with pytest.raises(ValueError, match="rank 1"):
        tf.nn.bias_add(x, tf.zeros([2, 4]))
    with pytest.raises(ValueError, match="at least rank 2"):
        tf.nn.bias_add(b, b)


def test_new_activations_forward_values():
    x = tf.placeholder(tf.float64, [5])
    xv = np.array([-2.0, -0.0, 0.5, 6.0, 9.0])
    r6, lr, el = _run([tf.nn.relu6(x), tf.nn.leaky_relu(x), tf.nn.elu(x)], {x: xv})
    np.testing.assert_array_equal(r6, np.minimum(np.maximum(xv, 0), 6))
    np.testing.assert_array_equal(lr, np.where(xv > 0, xv, 0.2 * xv))
    np.testing.assert_allclose(el, np.where(xv < 0, np.expm1(xv), xv), rtol=1e-15)


# -- optimizers --------------------------------------------------------------------------------

def _train(opt, steps=3, dtype=tf.float64):
    w0 = np.array([1.0, -2.0, 0.5])
    w = tf.Variable(w0.astype(dtype), name="w")
    loss = tf.reduce_sum(w * w * w)  # gradient 3 w^2
    step = opt.minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(steps):
            sess.run(step)
        return w0, sess.run(w)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_optimizer_follows_apply_momentum(nesterov):
    opt = tf.train.MomentumOptimizer(0.01, 0.9, use_nesterov=nesterov)
    w, got = _train(opt)
    accum = np.zeros(3)
    for _ in range(3):
        g = 3 * w * w
        accum = accum * 0.9 + g
        w = w - (g * 0.01 + accum * 0.9 * 0.01 if nesterov else accum * 0.01)
    np.testing.assert_allclose(got, w, rtol=1e-14)
    assert opt.get_slot_names() == ["momentum"]
    assert opt.get_slot(tf.trainable_variables()[0], "momentum").name == "w/Momentum:0"


@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
def test_adam_optimizer_follows_apply_adam_with_beta_powers(dtype):
    opt = tf.train.AdamOptimizer(0.1)
    w, got = _train(opt, steps=4, dtype=dtype)
    w = w.astype(dtype)
    m, v = np.zeros(3, dtype), np.zeros(3, dtype)
    b1p, b2p = np.float32(0.9), np.float32(0.999)  # TF1's beta powers are float32
    for _ in range(4):
        g = 3 * w * w
        lr_t = 0.1 * np.sqrt(1 - b2p.astype(dtype)) / (1 - b1p.astype(dtype))
        m = m + (g - m) * (1 - 0.9)
        v = v + (g * g - v) * (1 - 0.999)
        w = w - lr_t * m / (np.sqrt(v) + 1e-8)
        b1p, b2p = b1p * np.float32(0.9), b2p * np.float32(0.999)
    np.testing.assert_allclose(got, w, rtol=1e-13 if dtype == tf.float64 else 1e-5)
    names = sorted(v.op.name for v in tf.global_variables())
    assert names == ["beta1_power", "beta2_power", "w", "w/Adam", "w/Adam_1"]
    assert tf.trainable_variables()[0].op.name == "w"


def test_adam_beta_powers_advance_once_per_step():
    w = tf.Variable([1.0, 2.0])
    opt = tf.train.AdamOptimizer()
    step = opt.minimize(tf.reduce_sum(w * w))
    b1p = next(v for v in tf.global_variables() if v.op.name == "beta1_power")
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(step)
        sess.run(step)
        np.testing.assert_allclose(sess.run(b1p), np.float32(0.9) ** 3, rtol=1e-6)


# -- variable_scope, get_variable, name_scope --------------------------------------------------

def test_get_variable_names_reuse_and_ops_named_in_scope():
    with tf.variable_scope("layer"):
        w = tf.get_variable("w", [2, 3], initializer=tf.zeros_initializer())
        with tf.variable_scope("inner"):
            b = tf.get_variable("b", [3], dtype=tf.float64, initializer=tf.ones_initializer())
        y = tf.matmul(tf.ones([1, 2]), w)
    assert (w.name, b.name, b.dtype) == ("layer/w:0", "layer/inner/b:0", tf.float64)
    assert y.name == "layer/MatMul:0"
    with tf.variable_scope("layer", reuse=True):
        assert tf.get_variable("w") is w
        with tf.variable_scope("inner"):  # reuse is inherited
            assert tf.get_variable("b", [3]) is b
    np.testing.assert_array_equal(_run(y), [[0, 0, 0]])


def test_get_variable_errors_as_tf1():
    with tf.variable_scope("s"):
        tf.get_variable("w", [2])
        with pytest.raises(ValueError, match="Variable s/w already exists, disallowed"):
            tf.get_variable("w", [2])
        with pytest.raises(ValueError, match="must be fully defined"):
            tf.get_variable("v")
        with pytest.raises(ValueError, match="do not specify shape"):
            tf.get_variable("c", [2], initializer=np.zeros(2))
    with tf.variable_scope("s", reuse=True):
        with pytest.raises(ValueError, match="Variable s/x does not exist"):
            tf.get_variable("x", [2])
        with pytest.raises(ValueError, match="specified shape"):
            tf.get_variable("w", [3])
        with pytest.raises(ValueError, match="specified dtype"):
            tf.get_variable("w", [2], dtype=tf.float64)


def test_auto_reuse_and_reuse_variables_share():
    def layer():
        with tf.variable_scope("dense", reuse=tf.AUTO_REUSE):
            return tf.get_variable("k", [2], initializer=tf.constant_initializer([1.0, 2.0]))
    assert layer() is layer()
    with tf.variable_scope("g") as scope:
        a = tf.get_variable("a", initializer=tf.constant(3.0))
        scope.reuse_variables()
        assert tf.get_variable("a") is a
    assert len(tf.global_variables()) == 2
    np.testing.assert_array_equal(_run(layer()), [1.0, 2.0])


def test_default_initializer_is_glorot_uniform_and_default_scope_names_unique():
    with tf.variable_scope(None, default_name="dense"):
        k = tf.get_variable("kernel", [30, 20])
    with tf.variable_scope(None, default_name="dense"):
        k2 = tf.get_variable("kernel", [2])
    assert (k.name, k2.name) == ("dense/kernel:0", "dense_1/kernel:0")
    kv = _run(k)
    limit = np.sqrt(6 / 50)
    assert kv.dtype == np.float32 and np.abs(kv).max() <= limit and kv.std() > limit / 3


def test_name_scope_prefixes_ops_and_is_made_unique():
    with tf.name_scope("loss"):
        a = tf.constant(1.0) + 2.0
    with tf.name_scope("loss"):
        b = tf.constant(1.0) * 2.0
    v = tf.Variable(1.0, name="v")
    assert (a.name, b.name, v.name) == ("loss/add:0", "loss_1/mul:0", "v:0")
    assert v.initializer.name == "v/Assign"


def test_initializers_values():
    assert tf.constant_initializer(2.5)([2], tf.float64).tolist() == [2.5, 2.5]
    np.testing.assert_array_equal(tf.constant_initializer([1, 2, 3, 4])([2, 2]), [[1, 2], [3, 4]])
    a = tf.random_normal_initializer(seed=1)([1000])
    assert a.dtype == np.float32 and abs(a.mean()) < 0.1 and 0.9 < a.std() < 1.1
    np.testing.assert_array_equal(a, tf.random_normal_initializer(seed=1)([1000]))
    t = tf.truncated_normal_initializer(stddev=0.5, seed=0)([2000])
    assert np.abs(t).max() <= 1.0
    u = tf.random_uniform_initializer(-1, 1, seed=0)([1000])
    assert u.min() >= -1 and u.max() < 1


# -- Saver and the assign functions ------------------------------------------------------------

def test_saver_round_trip_and_global_step_suffix(tmp_path):
    w, step = tf.Variable([1.0, 2.0], name="w"), tf.train.get_or_create_global_step()
    saver = tf.train.Saver()
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run([tf.assign(w, [5.0, 6.0]), tf.assign_add(step, 7)])
        path = saver.save(sess, str(tmp_path / "ckpt"), global_step=step)
    assert path.endswith("ckpt-7")
    assert sorted(np.load(path).files) == ["global_step", "w"]
    with tf.Session() as sess:
        saver.restore(sess, path)
        np.testing.assert_array_equal(sess.run(w), [5.0, 6.0])
        assert sess.run(step) == 7


def test_assign_functions():
    v = tf.Variable(10.0)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(tf.assign_sub(v, 3.0)) == 7.0
        assert sess.run(tf.assign_add(v, 1.0)) == 8.0
        assert sess.run(tf.assign(v, 2.0)) == 2.0


# -- docstring examples ------------------------------------------------------------------------

def _static_modules():
    pkg = importlib.import_module("tracegrad.static")
    return ["tracegrad.static"] + [m.name for m in pkgutil.iter_modules(pkg.__path__,
                                                                        "tracegrad.static.")]


@pytest.mark.parametrize("name", _static_modules())
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
