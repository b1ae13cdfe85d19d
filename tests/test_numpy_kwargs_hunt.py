"""NumPy call patterns of hunt N2: splits at non-increasing indices, `x == None`, the ufunc
`out=`/`where=` idiom (values and gradients), traced scalar keywords of nan_to_num and
isclose, `x.item(index)` and `v in x` at any rank."""
import numpy as np
import pytest

import tracegrad as tg


@pytest.mark.parametrize("split, indices", [(np.split, [3, 1]), (np.split, [8, 3]),
                                            (np.array_split, [4, 2, 5]), (np.hsplit, [-1, 2])])
def test_splits_at_non_increasing_indices(split, indices):
    v = np.arange(6.)
    want = split(v, indices)
    got = tg.jit(lambda a: split(a, indices))(v)
    assert [p.tolist() for p in got] == [p.tolist() for p in want]
    g = tg.grad(lambda a: split(a, indices)[-1].sum() + 2 * split(a, indices)[0].sum())(v)
    expected = np.zeros(6)
    for i, piece in ((len(want) - 1, want[-1]), (0, want[0])):
        expected[piece.astype(int)] += 1 if i else 2
    np.testing.assert_array_equal(g, expected)


def test_vsplit_at_non_increasing_indices():
    a = np.arange(12.).reshape(6, 2)
    want = np.vsplit(a, [4, 1])
    assert [p.tolist() for p in tg.jit(lambda x: np.vsplit(x, [4, 1]))(a)] == \
        [p.tolist() for p in want]


def test_comparison_with_none_is_elementwise_on_traced_arrays():
    x = np.array([1., 0., 2.])
    assert tg.jit(lambda a: a == None)(x).tolist() == [False] * 3  # noqa: E711
    assert tg.jit(lambda a: a != None)(x).tolist() == [True] * 3  # noqa: E711
    assert (tg.tensor(x) == None) is False  # noqa: E711  (torch's Python bool)


def _safe_divide(a, b):
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def test_ufunc_out_and_where_give_numpys_values_and_finite_gradients():
    a, b = np.array([1., 3.]), np.array([0., 2.])
    np.testing.assert_array_equal(tg.jit(_safe_divide)(a, b), _safe_divide(a, b))
    ga, gb = tg.grad(lambda a, b: _safe_divide(a, b).sum(), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(ga, [0., 0.5])
    np.testing.assert_array_equal(gb, [0., -0.75])

    def log_or(x):
        out = np.full_like(x, -1.0)
        np.log(x, out=out, where=x > 0)  # written into `out`, a traced array
        return out
    x = np.array([0., 4., -2.])
    np.testing.assert_allclose(tg.jit(log_or)(x), log_or(x))
    np.testing.assert_array_equal(tg.grad(lambda x: log_or(x).sum())(x), [0., 0.25, 0.])
    t = tg.tensor(np.array([1., 4.]), requires_grad=True)
    o = np.divide(t, np.array([0., 2.]), out=tg.tensor(np.zeros(2)), where=np.array([False, True]))
    o.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [0., 0.5])


def test_ufunc_where_without_out_and_out_into_numpy_arrays_are_refused():
    with pytest.raises(TypeError, match="without out="):
        tg.jit(lambda a: np.sqrt(a, where=a > 0))(np.array([-1., 4.]))
    with pytest.raises(TypeError, match="into a NumPy array"):
        tg.jit(lambda a: np.sqrt(a, out=np.zeros(2)))(np.array([1., 4.]))


def test_traced_numbers_as_nan_to_num_and_isclose_keywords():
    c, x = np.array([5., 6.]), np.array([1., np.nan, np.inf, -np.inf])
    got = tg.jit(lambda x, c: np.nan_to_num(x, nan=c[0], posinf=c[1], neginf=-c[1]))(x, c)
    np.testing.assert_array_equal(got, [1., 5., 6., -6.])
    close = tg.jit(lambda a, b, t: np.isclose(a, b, atol=t[0]))(
        np.array([1., 2.]), np.array([1.05, 2.5]), np.array([0.1]))
    assert close.tolist() == [True, False]


def test_item_with_an_index_and_membership_at_any_rank():
    x = np.arange(6.).reshape(2, 3)
    got = tg.jit(lambda a: a.item(4) + a.item((1, 2)) + a.item(0, 1))(x)
    assert float(got) == x.item(4) + x.item((1, 2)) + x.item(0, 1)
    assert float(tg.jit(lambda a: np.float64(3.0 in a) + np.float64(9.0 in a))(x)) == 1.0
    assert 3.0 in tg.tensor(x) and 9.0 not in tg.tensor(x)
