"""NumPy spellings and conventions found by comparing user programs with JAX: fmax/fmin's
derivative at ties, `order=` in reshape and copy methods, and what the conversion error
says about indexing NumPy arrays with traced indices."""
import numpy as np
import pytest

import tracegrad as tg


@pytest.mark.parametrize("name, wins_second", [("fmax", [1, 0, 1, 0]), ("fmin", [1, 1, 1, 0])])
def test_fmax_fmin_derivatives_go_to_the_second_operand_at_ties_as_jax(name, wins_second):
    """jax.numpy: x1 where it wins or x2 is NaN, else x2 (ties included)."""
    x, y = np.array([1.0, 2.0, np.nan, 3.0]), np.array([1.0, 0.0, 5.0, np.nan])
    fn = getattr(np, name)
    gx, gy = tg.grad(lambda a, b: np.sum(fn(a, b)), argnums=(0, 1))(x, y)
    assert gy.tolist() == wins_second and (gx + gy).tolist() == [1, 1, 1, 1]
    np.testing.assert_array_equal(tg.jit(fn)(x, y), fn(x, y))
    _, grads = tg.compile_grad(lambda a, b: np.sum(fn(a, b)), argnums=(0, 1))(x, y)
    assert grads[1].tolist() == wins_second


def test_reshape_and_copy_methods_take_numpy_order():
    a = np.arange(6.0)
    want = a.reshape(2, 3, order="F")
    np.testing.assert_array_equal(tg.jit(lambda v: v.reshape(2, 3, order="F"))(a), want)
    np.testing.assert_array_equal(tg.jit(lambda v: v.reshape((2, 3), order="C"))(a), a.reshape(2, 3))
    g = tg.grad(lambda v: np.sum(v.reshape(2, 3, order="F")[0] ** 2))(a)
    assert g.tolist() == [0, 0, 4, 0, 8, 0]
    t = tg.tensor(a, requires_grad=True)
    (t.reshape(2, 3, order="F")[0] ** 2).sum().backward()
    assert t.grad.tolist() == [0, 0, 4, 0, 8, 0]
    np.testing.assert_array_equal(tg.jit(lambda v: v.copy(order="F") * 2)(a), a * 2)
    with pytest.raises(ValueError, match="order"):
        tg.jit(lambda v: v.copy(order="X"))(a)


def test_indexing_a_numpy_table_with_a_traced_index_says_what_to_write():
    z, y = np.ones((3, 4)), np.array([0, 3, 1])
    with pytest.raises(TypeError, match=r"np.eye\(k\)\[y\].*tracegrad.numpy.take"):
        tg.jit(lambda z, y: np.eye(4)[y] * z)(z, y)
    one_hot = tg.jit(lambda z, y: tg.numpy.take(np.eye(4), y, axis=0) * z)(z, y)
    np.testing.assert_array_equal(one_hot, np.eye(4)[y])
    with pytest.raises(TypeError, match=r"np.stack"):
        tg.jit(lambda x: np.array([x[0], x[1]]))(np.ones(2))
