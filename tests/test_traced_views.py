"""Traced views keep NumPy's aliasing (tracer/traced_views.py): writes through a slice or
a transpose reach the base, and views see later writes to the base, in jit, grad and
compile_grad alike, with the gradients of eager tensors (which share storage)."""
import numpy as np
import pytest

import tracegrad as tg

W = np.arange(12.0).reshape(3, 4)


def _write_through_slice(x):
    y = x * 1.0
    r = y[::2]
    r *= 3
    return np.sum(y * W)


def _zero_a_row(x):
    y = x * 1.0
    row = y[1]
    row[:] = 0
    return np.sum(y * W)


def _add_through_transpose(x):
    y = x * 1.0
    y.T[1] += 5.0
    return np.sum(y * W)


def _view_sees_base_write(x):
    y = x * 1.0
    r = y[1:]
    y[2] = 100.0
    return np.sum(r * W[1:])


def _row_swap(x):  # NumPy copies row 2 into both rows: the right side holds views
    y = x * 1.0
    y[0], y[2] = y[2], y[0]
    return np.sum(y * W)


def _view_of_view(x):
    y = x * 1.0
    inner = y[:, 1:][1:]
    inner[0, 0] = -1.0
    inner *= 2.0
    return np.sum(y * y)


def _scalar_is_a_copy(x):  # a full integer index gives a scalar, which `+=` rebinds
    y = x * 1.0
    s = y[1, 2]
    s += 1.0
    return np.sum(y) + s


CASES = [_write_through_slice, _zero_a_row, _add_through_transpose, _view_sees_base_write,
         _row_swap, _view_of_view, _scalar_is_a_copy]


def _numeric_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("f", CASES, ids=[f.__name__ for f in CASES])
def test_traced_views_match_numpy_and_finite_differences(f):
    x = np.random.default_rng(0).standard_normal((3, 4))
    want = f(x.copy())
    np.testing.assert_allclose(tg.jit(f)(x), want, rtol=1e-13)
    value, (grad,) = tg.compile_grad(f)(x)
    np.testing.assert_allclose(value, want, rtol=1e-13)
    np.testing.assert_allclose(grad, _numeric_grad(f, x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tg.grad(f)(x), grad, rtol=1e-12)


@pytest.mark.parametrize("f", CASES[:-1], ids=[f.__name__ for f in CASES[:-1]])
def test_traced_views_give_the_eager_gradients(f):
    """Eager tensors alias as torch does (a 0-d index is a view there), so the last case
    is left out."""
    x = np.random.default_rng(1).standard_normal((3, 4))
    t = tg.tensor(x, requires_grad=True)
    f(t).backward()
    np.testing.assert_allclose(tg.compile_grad(f)(x)[1][0], t.grad.numpy(), rtol=1e-12)


def test_advanced_indexing_still_copies():
    def f(x):
        y = x * 1.0
        c = y[[0, 2]]
        c *= 10.0
        return np.sum(y) + np.sum(c)
    x = np.ones((3, 4))
    np.testing.assert_allclose(tg.jit(f)(x), f(x))


def test_writing_through_a_view_of_an_outer_value_inside_a_loop_body_raises():
    def f(x):
        y = x * 1.0
        r = y[1:]

        def body(i, c):
            r[0] = c  # r's base belongs to the enclosing trace
            return c + 1.0
        return tg.fori_loop(0, 2, body, np.float64(0.0)) + np.sum(y)
    with pytest.raises(TypeError, match="enclosing"):
        tg.jit(f)(np.ones(3))


def _write_through_reshape(x):
    y = x * 1.0
    v = y.reshape(-1)
    v[0] = 100.0
    return np.sum(y * W)


def _write_through_np_ravel(x):
    y = x * 1.0
    v = np.ravel(y)
    v[1:3] *= 2.0
    return np.sum(y * W)


def _np_transpose_sees_base_write(x):
    y = x * 1.0
    v = np.transpose(y)
    y[0, 0] = 100.0
    return np.sum(v * W.T)


def _write_through_moveaxis_and_expand_dims(x):
    y = x * 1.0
    v = np.moveaxis(np.expand_dims(y, 0), 0, -1)
    v[1, 2, 0] *= 3.0
    np.squeeze(v, -1)[2, 0] = -1.0
    return np.sum(y * y)


def _reshape_of_a_transpose_copies(x):  # NumPy copies: the transpose is not contiguous
    y = x * 1.0
    v = y.T.reshape(-1)
    v[0] = 100.0
    return np.sum(y * W)


FUNCTION_CASES = [_write_through_reshape, _write_through_np_ravel, _np_transpose_sees_base_write,
                  _write_through_moveaxis_and_expand_dims, _reshape_of_a_transpose_copies]


@pytest.mark.parametrize("f", FUNCTION_CASES, ids=[f.__name__ for f in FUNCTION_CASES])
def test_reshapes_and_numpy_view_functions_alias_as_numpy(f):
    x = np.random.default_rng(2).standard_normal((3, 4))
    want = f(x.copy())
    value, (grad,) = tg.compile_grad(f)(x)
    np.testing.assert_allclose([tg.jit(f)(x), value], [want, want], rtol=1e-13)
    np.testing.assert_allclose(grad, _numeric_grad(f, x), rtol=1e-6, atol=1e-6)
    t = tg.tensor(x, requires_grad=True)
    out = f(t)
    out.backward()
    np.testing.assert_allclose(float(out), want, rtol=1e-13)
    np.testing.assert_allclose(t.grad.numpy(), grad, rtol=1e-12)


def test_view_without_arguments_is_numpys_same_shape_view():
    def f(a):
        b = a * 1.0
        v = b.view()
        v[0, 0] = 5.0
        return np.sum(b)
    a = np.ones((2, 3))
    assert tg.jit(f)(a) == f(a.copy()) == float(f(tg.tensor(a))) == 10.0
