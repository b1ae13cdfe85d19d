"""Fixes from a hunt of indexing, views and math: NumPy's view functions (flip, split,
rot90, meshgrid(copy=False), ...) write through, reshapes of views are views where NumPy's are, `x.at[...]`'s
modes, concrete out-of-range indices of `.at[].add` and `index_add`, sinc's derivative."""
import numpy as np
import pytest

import tracegrad as tg

X = np.arange(1.0, 25.0).reshape(4, 6)


def _three_ways(f):
    """f's result in NumPy, compiled and on an eager tensor (f copies its argument first)."""
    return f(X.copy()), np.asarray(tg.jit(f)(X)), f(tg.tensor(X)).numpy()


VIEW_WRITES = {
    "flip": lambda y: np.flip(y, 1).__setitem__((0, 0), -1.0),
    "flip_all": lambda y: np.flip(y).__setitem__((0, 0), -1.0),
    "flipud": lambda y: np.flipud(y).__setitem__((0, 1), -1.0),
    "fliplr": lambda y: np.fliplr(y).__setitem__((1, 0), -1.0),
    "rot90": lambda y: np.rot90(y).__setitem__((0, 1), -1.0),
    "rot90_k3": lambda y: np.rot90(y, 3).__setitem__((2, 1), -1.0),
    "split": lambda y: np.split(y, 2)[1].__imul__(0.0),
    "split_at": lambda y: np.split(y, [1, 3], axis=1)[1].__imul__(0.0),
    "array_split": lambda y: np.array_split(y, 4, axis=1)[3].__imul__(0.0),
    "hsplit": lambda y: np.hsplit(y, 3)[2].__imul__(0.0),
    "vsplit": lambda y: np.vsplit(y, 2)[0].__setitem__((1, 2), -1.0),
    "unstack": lambda y: np.unstack(y, axis=1)[4].__imul__(0.0),
    "matrix_transpose": lambda y: np.matrix_transpose(y).__setitem__((5, 0), -1.0),
    "rollaxis": lambda y: np.rollaxis(y, 1).__setitem__((2, 3), -1.0),
    "atleast_3d": lambda y: np.atleast_3d(y).__setitem__((3, 5, 0), -1.0),
    "meshgrid_sparse": lambda y: np.meshgrid(y[0], y[2], sparse=True, copy=False)[1].__imul__(0.0),
    "meshgrid_sparse_ij": lambda y: np.meshgrid(y[0], y[2], sparse=True, copy=False,
                                                indexing="ij")[0].__setitem__((1, 0), -1.0),
}


@pytest.mark.parametrize("name", sorted(VIEW_WRITES))
def test_numpy_view_functions_write_through_to_their_argument(name):
    def f(y):
        y = y * 1.0
        VIEW_WRITES[name](y)
        return y
    want, compiled, eager = _three_ways(f)
    assert not np.array_equal(want, X)  # NumPy's is a view
    np.testing.assert_array_equal(compiled, want)
    np.testing.assert_array_equal(eager, want)


def test_dense_meshgrid_without_copy_is_a_broadcast_view_of_its_inputs():
    """NumPy's meshgrid(copy=False) broadcasts views of its inputs: a later write to an
    input shows in the grid; a write into the grid itself refuses (torch's expanded
    tensors; NumPy deprecates it and is to make these views read-only); copy=True copies."""
    x, y = tg.tensor(X[0]), tg.tensor(X[1, :4])
    gx, gy = np.meshgrid(x, y, copy=False)
    cx, _ = np.meshgrid(x, y)
    want = np.meshgrid(X[0], X[1, :4])
    np.testing.assert_array_equal(gx.numpy(), want[0])
    np.testing.assert_array_equal(gy.numpy(), want[1])
    x[2] = -7.0
    assert np.all(gx.numpy()[:, 2] == -7.0) and cx.numpy()[0, 2] == X[0, 2]
    with pytest.raises(RuntimeError, match="single memory location"):
        gy[0, 0] = 1.0


def test_a_written_view_functions_gradient_is_zero_where_it_overwrote():
    def loss(x):
        y = x * 1.0
        np.flip(y, 0)[0] = 0.0  # the last row of y
        return np.sum(y * y)
    _, (g,) = tg.compile_grad(loss)(X)
    np.testing.assert_array_equal(g, np.vstack([2 * X[:3], np.zeros((1, 6))]))


def test_a_split_that_numpy_refuses_raises_numpys_error():
    with pytest.raises(ValueError, match="equal division"):
        tg.jit(lambda y: np.split(y, 5)[0])(X)


def test_reshapes_of_views_are_views_exactly_where_numpys_are():
    def f(y):
        y = y * 1.0
        y[1:3].reshape(-1)[0] = 100.0            # a view in NumPy
        y[:, 0].reshape(2, 2)[1, 1] = -5.0       # strided, still a view
        y[:, :4:2].reshape(-1)[1] = 7.0          # NumPy copies: no effect
        y.T.ravel()[1] = 8.0                     # NumPy copies: no effect
        y[:, 1][::2].reshape(1, 2)[0, 1] = 9.0   # a view of a view
        return y
    want, compiled, eager = _three_ways(f)
    np.testing.assert_array_equal(compiled, want)
    np.testing.assert_array_equal(eager, want)
    _, (g,) = tg.compile_grad(lambda x: np.sum(f(x)))(X)
    expected = np.ones_like(X)
    expected[1, 0] = expected[3, 0] = expected[2, 1] = 0.0
    np.testing.assert_array_equal(g, expected)


# ---- x.at[...] modes ------------------------------------------------------------------------

I = np.array([1, 7, -2])


@pytest.mark.parametrize("run", [lambda f, x: np.asarray(tg.jit(f)(x)),
                                 lambda f, x: f(tg.tensor(x)).numpy()], ids=["jit", "eager"])
def test_at_modes_follow_jax(run):
    x = np.arange(12.0).reshape(4, 3)
    got = run(lambda x: x.at[I].get(mode="fill", fill_value=-99.0), x)
    np.testing.assert_array_equal(got, [x[1], [-99.0] * 3, x[2]])
    got = run(lambda x: x.at[I].get(mode="clip"), x)
    np.testing.assert_array_equal(got, [x[1], x[3], x[2]])
    got = run(lambda x: x.at[I].set(-1.0, mode="drop"), x)
    np.testing.assert_array_equal(got, np.where(np.isin(np.arange(4), [1, 2])[:, None], -1.0, x))
    got = run(lambda x: x.at[I, 0].add(10.0, mode="drop"), x)
    np.testing.assert_array_equal(got[:, 0], [0.0, 13.0, 16.0, 9.0])
    got = run(lambda x: x.at[I].multiply(2.0, mode="clip"), x)
    np.testing.assert_array_equal(got, x * np.array([1, 2, 2, 2])[:, None])
    assert np.isnan(run(lambda x: x.at[np.array([5])].get(mode="fill"), x)).all()


def test_at_mode_gradients_and_errors():
    x = np.arange(12.0).reshape(4, 3)
    _, (g,) = tg.compile_grad(lambda x: np.sum(x.at[I].get(mode="fill", fill_value=0.0)))(x)
    np.testing.assert_array_equal(g, np.isin(np.arange(4), [1, 2])[:, None] * np.ones(3))
    with pytest.raises(ValueError, match="mode='fill'"):
        tg.jit(lambda x: x.at[I].set(0.0, mode="fill"))(x)


def test_concrete_out_of_range_rows_raise_in_add_and_index_add():
    x = np.zeros((4, 3))
    with pytest.raises(IndexError, match="index 7 is out of bounds"):
        tg.tensor(x).at[np.array([7])].add(1.0)
    with pytest.raises(IndexError, match="out of bounds"):
        tg.jit(lambda x: x.at[np.array([-9])].add(1.0))(x)
    with pytest.raises(IndexError, match="index 9 is out of bounds"):
        tg.tensor(x).index_add(0, np.array([9]), tg.tensor(np.ones((1, 3))))


# ---- sinc's derivative ----------------------------------------------------------------------

def _sinc_derivative(x):
    """sinc'(x): its Taylor polynomial near 0, else the quotient rule in long double."""
    x = np.asarray(x, np.float64)
    tiny = -(np.pi ** 2 / 3) * x * (1 - (np.pi * x) ** 2 / 10)
    xl = np.maximum(x.astype(np.longdouble), 1e-4)
    pil = np.longdouble(np.pi)
    quotient = (np.cos(pil * xl) * pil * xl - np.sin(pil * xl)) / (pil * xl * xl)
    return np.where(x < 1e-4, tiny, quotient.astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sinc_derivative_is_finite_and_accurate_near_zero_and_far_out(dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    xs = np.array([tiny, 1e-30, 1e-8, 1e-3, 0.1, 0.2, 3.7, 1e5, 1e30], dtype)
    _, (g,) = tg.compile_grad(lambda x: np.sum(np.sinc(x)))(xs)
    assert np.isfinite(g).all()
    near = xs < 1e4  # beyond, pi x in the dtype is far from the exact product
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    atol = 4 * float(tiny)  # a subnormal derivative is rounded to a few of its units
    np.testing.assert_allclose(g[near], _sinc_derivative(xs[near]), rtol=rtol, atol=atol)
    eager = tg.grad(lambda x: np.sinc(x))(dtype(1e-8))
    np.testing.assert_allclose(float(eager), -(np.pi ** 2 / 3) * 1e-8, rtol=1e-6)


# ---- logit near 1/2, float32 hypot --------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logit_keeps_its_digits_near_one_half(dtype):
    import scipy.special as sc

    import tracegrad.scipy.special as tsp
    p = np.concatenate([np.linspace(0.45, 0.55, 1001), [0.0, 1e-300, 0.1, 0.25, 0.75, 0.9, 1.0]])
    p = p.astype(dtype)
    got = tg.jit(lambda p: tsp.logit(p))(p)
    want = sc.logit(p.astype(np.float64))
    ulps = np.abs(got - want) / np.spacing(np.abs(want).astype(dtype))
    assert got.dtype == dtype and np.nanmax(ulps[np.isfinite(want)]) <= 2
    assert np.isneginf(got[-7]) and np.isposinf(got[-1])


def test_float32_hypot_is_rounded_once():
    rng = np.random.default_rng(3)
    x = (10 ** rng.uniform(-3, 3, 20000) * rng.choice([-1, 1], 20000)).astype(np.float32)
    y = (10 ** rng.uniform(-3, 3, 20000)).astype(np.float32)
    ref = np.hypot(x.astype(np.float64), y.astype(np.float64))
    got = tg.jit(np.hypot)(x, y)
    assert got.dtype == np.float32
    assert (np.abs(got - ref) / np.spacing(ref.astype(np.float32))).max() <= 0.51
    special = tg.jit(np.hypot)(np.float32([np.inf, 3.0, 0.0]), np.float32([np.nan, 4.0, 0.0]))
    np.testing.assert_array_equal(special, [np.inf, 5.0, 0.0])


# ---- a whole-array write of an enclosing trace's value (hunt V2) ----------------------------------

def test_a_whole_array_write_of_an_outer_value_inside_nested_transforms():
    def f(x, y):
        z = np.zeros_like(x)
        z[:] = y
        return z + x
    x, y = np.arange(6.0).reshape(3, 2), np.array([10.0, 20.0])
    want = [[10.0, 21.0], [12.0, 23.0], [14.0, 25.0]]
    assert tg.jit(tg.vmap(f, in_axes=(0, None)))(x, y).tolist() == want
    assert tg.vmap(tg.vmap(f, in_axes=(0, None)))(x[None], y[None]).tolist() == [want]
    assert tg.grad(lambda y: tg.vmap(f, in_axes=(0, None))(x, y).sum())(y).tolist() == [3.0, 3.0]

    def writes_outward(y):
        def inner(row):
            y[:] = row  # into the enclosing trace's value: refused
            return row
        return tg.vmap(inner)(np.ones((3, 2)))
    with pytest.raises(TypeError, match="enclosing trace"):
        tg.jit(writes_outward)(y)
