"""Bad and unusual input (hunt E): negative row indices of `.at[].add` wrapped once, foreign
arrays as dynamic arguments, `take(mode="fill")` with negative indices, traced quantiles
outside [0, 1], traced `ravel_multi_index` coordinates (as traced indices), non-integer
sizes in IR text, the line of control-flow type errors, and a Saver reading a file it did
not write."""
import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp


def _row_added(k, n=4):
    return tg.jit(lambda x, i: tnp.asarray(x).at[i].add(1.))(np.zeros((n, 2)), np.array([k]))


@pytest.mark.parametrize("k, row", [(-1, 3), (-4, 0), (-5, 0), (-7, 0), (-9, 0), (5, 3)])
def test_at_add_of_rows_wraps_negatives_once_then_clamps(k, row):
    out = _row_added(k)
    assert np.argmax(out[:, 0]) == row and out.sum() == 2.0


def test_at_add_gradient_follows_the_clamped_row():
    f = tg.compile_grad(lambda v, x, i: tnp.sum(tnp.asarray(x).at[i].add(v)
                                                * np.arange(8.).reshape(4, 2)), argnums=0)
    np.testing.assert_array_equal(f(np.ones(2), np.zeros((4, 2)), np.array([-5]))[1], [0., 1.])


def test_at_add_with_an_eager_tensor_index_out_of_range_raises():
    x = tnp.asarray(tg.tensor(np.zeros((4, 2))))
    with pytest.raises(IndexError):
        x.at[tg.tensor(np.array([-5]))].add(1.)
    out = x.at[tg.tensor(np.array([-1]))].add(1.)
    assert np.asarray(out)[3].tolist() == [1., 1.]


class _Foreign:
    """Another library's array: only `__array__`."""

    def __init__(self, values):
        self.values = np.asarray(values, np.float64)

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)


def test_a_foreign_array_is_a_dynamic_argument():
    data = _Foreign([1., 1., 1.])
    f = tg.jit(lambda x, y: y * x.sum())
    assert f(data, np.ones(1)).tolist() == [3.]
    data.values *= 5
    assert f(data, np.ones(1)).tolist() == [15.]  # read again, not frozen as static
    value, grads = tg.compile_grad(lambda x, y: np.sum(y * x))(_Foreign([1., 2.]), np.ones(2))
    assert len(grads) == 2 and grads[0].tolist() == [1., 1.]


@pytest.mark.parametrize("axis", [0, 1])
def test_take_fill_counts_in_range_negatives_from_the_end(axis):
    x = np.arange(12.).reshape(3, 4) if axis else np.arange(10.)
    i = np.array([-1, -3, 2, 10, -11])
    n = x.shape[axis]
    want = np.stack([np.take(x, k, axis=axis) if -n <= k < n else np.full(x.shape[1 - axis] if axis
                                                                      else (), np.nan)
                     for k in i], axis=axis)
    got = tg.jit(lambda a, k: tnp.take(a, k, axis=axis, mode="fill"))(x, i)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(tnp.take(x, i, axis=axis, mode="fill"), want)


def test_traced_quantiles_outside_the_unit_interval_are_clamped():
    q = np.array([1.5, -0.5, -0.1, 1.1, 0.3])
    a = np.arange(5.)
    np.testing.assert_allclose(tg.jit(lambda a, q: np.quantile(a, q))(a, q), [4., 0., 0., 4., 1.2])
    np.testing.assert_allclose(tg.jit(lambda a, q: np.percentile(a, q))(a, 100 * q),
                               [4., 0., 0., 4., 1.2])
    with pytest.raises(ValueError, match="range"):
        tnp.quantile(a, 1.5)


def test_traced_ravel_multi_index_follows_the_traced_index_rule():
    i, j = np.array([5, -1]), np.array([9, 2])
    got = tg.jit(lambda i, j: np.ravel_multi_index((i, j), (3, 4)))(i, j)
    x = np.arange(12.).reshape(3, 4)
    assert got.tolist() == [11, 10]
    assert x.ravel()[got].tolist() == tg.jit(lambda x, i, j: x[i, j])(x, i, j).tolist()


@pytest.mark.parametrize("bad", ["nan", "inf", "1.5"])
def test_non_integer_sizes_in_ir_text_are_syntax_errors(tmp_path, bad):
    from tracegrad.ir.parser import IRSyntaxError
    path = tmp_path / "p.tgir"
    tg.trace(lambda x: (x.reshape(3, 1) * 2.0).sum())(np.ones(3)).save(str(path))
    text = path.read_text()
    assert "shape=(3,1)" in text
    path.write_text(text.replace("shape=(3,1)", f"shape=(3,{bad})"))
    with pytest.raises(IRSyntaxError, match="shape must hold integers"):
        tg.load(str(path))


def test_control_flow_type_errors_name_the_users_line():
    with pytest.raises(TypeError, match=r"identical types[\s\S]*\n  at .*test_bad_input_hunt"):
        tg.jit(lambda x: tg.cond(x.sum() > 0, lambda: x, lambda: x[:1]))(np.ones(2))
    with pytest.raises(TypeError, match=r"equal types[\s\S]*\n  at .*test_bad_input_hunt"):
        tg.scan(lambda c, x: (c.astype(np.float32), x), np.zeros(2), np.ones(3))


def test_saver_restore_of_a_foreign_file_says_so(tmp_path):
    import tracegrad.static as tf
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an archive" * 10)
    with tf.Graph().as_default():
        tf.Variable([1., 2.], name="w")
        with tf.Session() as s, pytest.raises(ValueError, match="not a file Saver.save wrote"):
            tf.train.Saver().restore(s, str(garbage))
