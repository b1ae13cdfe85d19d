"""torch.Tensor's further method names (tracer/torch_more.py): references from NumPy (so CI
without torch covers them), gradients by the dot-product test, eager against compiled,
and, where torch is importable, the same calls on torch tensors."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.testing import check_vjp

RNG = np.random.default_rng(7)
X = RNG.normal(size=(3, 5))
SPD = (lambda a: a @ a.T + 4 * np.eye(4))(RNG.normal(size=(4, 4)))
XN = X.copy()
XN[0, 1] = np.nan
XN[2, :] = np.nan
M = np.array([[1.0, 2, 2, 3, 3], [5, 5, 4, 4, 1], [0, 0, 0, 7, 7]])
IDX = np.array([[0, 1, 2, 0, 1], [2, 2, 0, 1, 1]])


def t(a):
    return tg.tensor(np.array(a))


def close(a, b):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-10,
                               atol=1e-12, equal_nan=True)


ALIASES = [
    ("tan", lambda x: x.tan(), np.tan(X)),
    ("asin", lambda x: (x * 0.3).asin(), np.arcsin(X * 0.3)),
    ("arccosh", lambda x: (x.abs() + 1).arccosh(), np.arccosh(abs(X) + 1)),
    ("atanh", lambda x: (x * 0.3).atanh(), np.arctanh(X * 0.3)),
    ("sgn", lambda x: x.sgn(), np.sign(X)),
    ("fix", lambda x: (x * 3).fix(), np.trunc(X * 3)),
    ("deg2rad", lambda x: x.deg2rad(), np.deg2rad(X)),
    ("sinc", lambda x: x.sinc(), np.sinc(X)),
    ("i0", lambda x: x.i0(), np.i0(X)),
    ("greater", lambda x: x.greater(0.1), X > 0.1),
    ("less_equal", lambda x: x.less_equal(0.0), X <= 0),
    ("not_equal", lambda x: x.not_equal(x.abs()), X != abs(X)),
    ("logical_xor", lambda x: x.logical_xor(x > 0.5), np.logical_xor(X, X > 0.5)),
    ("copysign", lambda x: x.abs().copysign(-x), np.copysign(abs(X), -X)),
    ("heaviside", lambda x: x.heaviside(x * 0 + 0.5), np.heaviside(X, 0.5)),
    ("float_power", lambda x: x.abs().float_power(1.5), abs(X) ** 1.5),
    ("ldexp", lambda x: x.ldexp(t(np.arange(5))), X * 2.0 ** np.arange(5)),
    ("logaddexp2", lambda x: x.logaddexp2(x * 2), np.logaddexp2(X, 2 * X)),
    ("exp2", lambda x: x.exp2(), np.exp2(X)),
    ("divide", lambda x: x.divide(x + 10, rounding_mode="floor"), np.floor(X / (X + 10))),
    ("subtract", lambda x: x.subtract(x * 3, alpha=2), X - 6 * X),
    ("multiply", lambda x: x.multiply(x), X * X),
    ("isclose", lambda x: x.isclose(x + 1e-9), np.ones(X.shape, bool)),
    ("logit", lambda x: x.sigmoid().logit(), X),
    ("logit_eps", lambda x: x.abs().clamp(max=1).logit(eps=0.1),
     (lambda p: np.log(p / (1 - p)))(np.clip(np.minimum(abs(X), 1), 0.1, 0.9))),
    ("xlogy", lambda x: x.xlogy(x.abs() + 1), X * np.log(abs(X) + 1)),
    ("inner", lambda x: x.inner(x), X @ X.T),
    ("kron", lambda x: x[:2, :2].kron(x[:2, :2]), np.kron(X[:2, :2], X[:2, :2])),
    ("diag", lambda x: x.diag(1), np.diag(X, 1)),
    ("diagflat", lambda x: x[0].diagflat(-1), np.diagflat(X[0], -1)),
    ("cov", lambda x: x.cov(), np.cov(X)),
    ("cov0", lambda x: x.cov(correction=0), np.cov(X, ddof=0)),
    ("corrcoef", lambda x: x.corrcoef(), np.corrcoef(X)),
    ("dist", lambda x: x.dist(x * 0.5), np.linalg.norm((X * 0.5).ravel())),
    ("dist1", lambda x: x.dist(x * 0.5, 1), np.abs(X * 0.5).sum()),
    ("dist_inf", lambda x: x.dist(x * 0.5, float("inf")), np.abs(X * 0.5).max()),
    ("quantile", lambda x: x.quantile(0.3, dim=1), np.quantile(X, 0.3, axis=1)),
    ("nanquantile", lambda x: x.nanquantile(0.5), np.nanquantile(X, 0.5)),
    ("histc", lambda x: x.histc(4, -1, 1), np.histogram(X, 4, (-1, 1))[0]),
    ("msort", lambda x: x.msort(), np.sort(X, axis=0)),
    ("broadcast_to", lambda x: x.broadcast_to((2, 3, 5)), np.broadcast_to(X, (2, 3, 5))),
    ("moveaxis", lambda x: x[None].moveaxis(0, 2), np.moveaxis(X[None], 0, 2)),
    ("narrow_copy", lambda x: x.narrow_copy(1, 1, 2), X[:, 1:3]),
    ("unfold", lambda x: x.unfold(1, 2, 2),
     np.lib.stride_tricks.sliding_window_view(X, 2, axis=1)[:, ::2]),
    ("unfold0", lambda x: x.unfold(0, 2, 1),
     np.moveaxis(np.lib.stride_tricks.sliding_window_view(X, 2, axis=0), -1, -1)),
    ("sum_to_size", lambda x: x.sum_to_size(1, 5), X.sum(0, keepdims=True)),
    ("sum_to_size_tail", lambda x: x[None].sum_to_size(3, 1), X.sum(1, keepdims=True)),
    ("renorm", lambda x: x.renorm(2, 0, 1.0),
     X * np.where((n := np.linalg.norm(X, axis=1, keepdims=True)) > 1, 1 / (n + 1e-7), 1)),
    ("diag_embed", lambda x: x.diag_embed(), np.stack([np.diag(r) for r in X])),
    ("diag_embed_up", lambda x: x.diag_embed(1), np.stack([np.diag(r, 1) for r in X])),
    ("diag_embed_down", lambda x: x.diag_embed(-2), np.stack([np.diag(r, -2) for r in X])),
    ("addmv", lambda x: x[0, :3].addmv(x[:, :3].T, x[:, 0], beta=0.5, alpha=2),
     0.5 * X[0, :3] + 2 * (X[:, :3].T @ X[:, 0])),
    ("addr", lambda x: x.addr(x[:, 0], x[0], alpha=3), X + 3 * np.outer(X[:, 0], X[0])),
    ("slice_scatter", lambda x: x.slice_scatter(x[:, :2] * 0 + 9, 1, 0, 4, 2),
     np.where(np.isin(np.arange(5), [0, 2]), 9.0, X)),
    ("select_scatter", lambda x: x.select_scatter(x[0] * 0 + 7, 0, 1),
     np.where(np.arange(3)[:, None] == 1, 7.0, X)),
    ("diagonal_scatter", lambda x: x.diagonal_scatter(x.diagonal(1) * 0 + 5, 1),
     np.where(np.arange(5)[None, :] - np.arange(3)[:, None] == 1, 5.0, X)),
    ("index_copy", lambda x: x.index_copy(1, t([4, 0]), x[:, :2] * 10),
     np.concatenate([X[:, 1:2] * 10, X[:, 1:4], X[:, :1] * 10], axis=1)),
]


@pytest.mark.parametrize("name,call,want", ALIASES, ids=[a[0] for a in ALIASES])
def test_aliases_match_numpy(name, call, want):
    close(call(t(X)), want)


@pytest.mark.parametrize("name,call,want", ALIASES, ids=[a[0] for a in ALIASES])
def test_compiled_matches_eager(name, call, want):
    if name in ("histc",):
        pytest.skip("histc's counts are integers in a float array: compared above")
    close(tg.jit(call)(X), call(t(X)))


def test_linear_algebra_matches_numpy():
    a = t(SPD)
    close(a.det(), np.linalg.det(SPD))
    close(a.logdet(), np.log(np.linalg.det(SPD)))
    assert np.isnan(float(t(-SPD[:3, :3]).logdet()))
    close(a.slogdet().logabsdet, np.linalg.slogdet(SPD)[1])
    close(a.inverse(), np.linalg.inv(SPD))
    close(a.pinverse(), np.linalg.pinv(SPD))
    close(a.matrix_power(3), np.linalg.matrix_power(SPD, 3))
    close(a.cholesky(), np.linalg.cholesky(SPD))
    close(a.cholesky(upper=True), np.linalg.cholesky(SPD).T)
    q, r = a.qr()
    close(np.asarray(q) @ np.asarray(r), SPD)
    u, s, v = t(X).svd()
    assert np.asarray(v).shape == (5, 3)  # V, not V^T, and `some` by default
    close(np.asarray(u) * np.asarray(s) @ np.asarray(v).T, X)
    close(a.mv(a[0]), SPD @ SPD[0])
    close(t(X[:, :3]).cross(t(X[:, 1:4])), np.cross(X[:, :3], X[:, 1:4], axis=0))
    close(t(X[0]).vdot(t(X[1])), X[0] @ X[1])
    with pytest.raises(RuntimeError, match="mv: a matrix and a vector"):
        a.mv(a)


def _lower_nanmedian(row):
    """torch's rule, by hand: the lower median of the non-NaN values and the index of that
    value (NaN at the lane's middle when all are NaN)."""
    keep = np.flatnonzero(~np.isnan(row))
    if not len(keep):
        return np.nan, (len(row) - 1) // 2
    order = keep[np.argsort(row[keep], kind="stable")]
    i = order[(len(keep) - 1) // 2]
    return row[i], i


def test_nanmedian_is_the_lower_median_of_the_numbers():
    values, indices = t(XN).nanmedian(dim=1)
    want = [_lower_nanmedian(r) for r in XN]
    close(values, [v for v, _ in want])
    assert np.asarray(indices).tolist() == [i for _, i in want]
    close(t(XN).nanmedian(), _lower_nanmedian(XN.ravel())[0])
    assert t(XN).nanmedian(0, True).values.shape == (1, 5)


def test_mode_takes_the_smallest_most_frequent_value_at_its_last_index():
    values, indices = t(M).mode(1)
    assert np.asarray(values).tolist() == [2.0, 4.0, 0.0]
    assert np.asarray(indices).tolist() == [2, 3, 2]
    assert t(M).mode(0, True).values.shape == (1, 5)
    close(tg.jit(lambda m: m.mode(1)[0])(M), values)


def test_scatters_into_copies():
    x = t(X)
    out = x.index_put((t([0, 2, 0]), t([1, 1, 1])), t([1.0, 2.0, 3.0]), accumulate=True)
    want = X.copy()
    np.add.at(want, ([0, 2, 0], [1, 1, 1]), [1.0, 2.0, 3.0])
    close(out, want)
    mask = X > 0
    want = X.copy()
    want[mask] = np.arange(15.0)[:mask.sum()]
    close(x.masked_scatter(t(mask), t(np.arange(15.0))), want)
    with pytest.raises(RuntimeError, match="selects 7 elements, the source has 2"):
        x.masked_scatter(t(mask), t(np.ones(2)))


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_scatter_reduce_sums_and_means(reduce, include_self):
    src = X[:2] * 3
    want, count = X.copy() if include_self else X.copy(), np.ones(X.shape)
    hit = np.zeros(X.shape, bool)
    for (i, j), k in np.ndenumerate(IDX):
        if not hit[k, j] and not include_self:
            want[k, j], count[k, j] = 0.0, 0
        hit[k, j] = True
        want[k, j] += src[i, j]
        count[k, j] += 1
    if reduce == "mean":
        want = np.where(hit, want / np.maximum(count, 1), X)
    close(t(X).scatter_reduce(0, t(IDX), t(src), reduce, include_self=include_self), want)


def test_in_place_forms_keep_the_dtype():
    x = t(X)
    x.gt_(0.0)
    assert x.dtype == np.float64 and np.asarray(x).tolist() == (X > 0).astype(float).tolist()
    y = t(X)
    y.tan_().cumsum_(1)
    close(y, np.cumsum(np.tan(X), 1))
    z = t(np.zeros((7, 3)))
    z.fill_diagonal_(2.0, wrap=True)
    want = np.zeros((7, 3))
    np.fill_diagonal(want, 2.0, wrap=True)
    close(z, want)
    p = t(X)
    p.put_(t([0, 0, 14]), t([1.0, 2.0, 3.0]), accumulate=True)
    want = X.copy().ravel()
    want[0] += 3.0
    want[14] += 3.0
    close(p, want.reshape(X.shape))


DIFFERENTIABLE = {
    "nanmedian": (XN, lambda x: tg.numpy.nansum(x.nanmedian(dim=1)[0])),
    "renorm": (X, lambda x: x.renorm(2, 0, 1.0)),
    "unfold": (X, lambda x: x.unfold(1, 3, 1)),
    "diag_embed": (X, lambda x: x.diag_embed(1)),
    "cov": (X, lambda x: x.cov()),
    "logdet": (SPD, lambda x: x.logdet()),
    "dist": (X, lambda x: x.dist(x[::-1] * 0.3)),
    "index_put": (X, lambda x: x.index_put((np.array([0, 2, 0]), np.array([1, 1, 1])),
                                           x[1, :3] * 5, accumulate=True)),
    "masked_scatter": (X, lambda x: x.masked_scatter(X > 0, x[:, ::-1] * 2)),
    "scatter_reduce": (X, lambda x: x.scatter_reduce(0, IDX, x[:2] * 3, "mean",
                                                     include_self=False)),
    "diagonal_scatter": (X, lambda x: x.diagonal_scatter(x.diagonal(1) * 3, 1)),
}


@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE))
def test_gradients_pass_the_dot_product_test(name):
    data, f = DIFFERENTIABLE[name]

    def g(x):  # the finite differences call it on numpy arrays: as eager tensors
        return np.asarray(f(t(x))) if isinstance(x, np.ndarray) else f(x)
    check_vjp(g, (data,))


def test_mode_and_nanmedian_send_the_gradient_to_the_index_they_return():
    x = tg.tensor(M, requires_grad=True)
    values, indices = x.mode(1)
    values.sum().backward()
    want = np.zeros(M.shape)
    want[np.arange(3), np.asarray(indices)] = 1.0
    close(x.grad, want)


def test_random_fills_draw_from_numpys_seeded_generator():
    np.random.seed(3)
    a = t(np.zeros(500)).uniform_(-2.0, 3.0)
    np.random.seed(3)
    b = t(np.zeros(500)).uniform_(-2.0, 3.0)
    close(a, b)
    assert -2.0 <= float(a.min()) and float(a.max()) < 3.0
    n = t(np.zeros(4000)).normal_(1.0, 2.0)
    assert abs(float(n.mean()) - 1.0) < 0.2 and abs(float(n.std()) - 2.0) < 0.2
    r = t(np.zeros(1000)).random_(5)
    assert set(np.unique(np.asarray(r))) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    draws = t(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])).multinomial(1)
    assert np.asarray(draws).tolist() == [[2], [0]]
    w = tg.tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w.normal_()
    with tg.no_grad():
        w.normal_()
    assert w.requires_grad


def test_data_dependent_and_unsupported_calls_say_why():
    with pytest.raises(TypeError, match="needs an eager tensor"):
        tg.jit(lambda x: x.unique_consecutive())(X)
    with pytest.raises(TypeError, match="needs an eager tensor"):
        tg.jit(lambda x: x.uniform_())(X)
    with pytest.raises(TypeError, match="float16"):
        t(X).half()
    with pytest.raises(RuntimeError, match="unfold: size 9"):
        t(X).unfold(1, 9, 1)
    with pytest.raises(NotImplementedError, match="'sum' and 'mean'"):
        t(X).scatter_reduce(0, t(IDX), t(X), "amax")


def test_layout_and_type_queries():
    x = t(X)
    assert x.nelement() == 15 and x.ndimension() == 2 and x.element_size() == 8
    assert x.stride() == (5, 1) and x.T.stride() == (1, 5) and not x.T.is_contiguous()
    assert x.type() == "torch.DoubleTensor" and x.type("torch.FloatTensor").dtype == np.float32
    assert x.is_signed() and not x.is_complex() and x.is_cpu and not x.is_cuda
    assert x.get_device() == -1 and x.equal(x * 1.0) and not x.equal(x[:2])
    assert x.allclose(x + 1e-9) and t([2.0]).is_nonzero()
    values, inverse, counts = t([1, 1, 2, 2, 3, 1]).unique_consecutive(True, True)
    assert np.asarray(values).tolist() == [1, 2, 3, 1]
    assert np.asarray(inverse).tolist() == [0, 0, 1, 1, 2, 3]
    assert np.asarray(counts).tolist() == [2, 2, 1, 1]
    assert [p.shape for p in x.tensor_split([1, 4], dim=1)] == [(3, 1), (3, 3), (3, 1)]


def test_the_same_calls_on_torch_tensors():
    torch = pytest.importorskip("torch")
    for name, call, _ in ALIASES:
        if name in ("ldexp", "index_copy"):
            continue  # (their arguments are tracegrad tensors above)
        want = call(torch.tensor(X))
        close(call(t(X)), want.numpy() if hasattr(want, "numpy") else want)
    close(t(XN).nanmedian(dim=1).indices, torch.tensor(XN).nanmedian(dim=1).indices)
    close(t(M).mode(1).indices, torch.tensor(M).mode(1).indices)


ZERO_D = {"topk": lambda x: x.topk(1, 0), "median": lambda x: x.median(0),
          "cummax": lambda x: x.cummax(-1), "cummin": lambda x: x.cummin(0),
          "sort": lambda x: x.sort(dim=0), "kthvalue": lambda x: x.kthvalue(1, 0, True),
          "mode": lambda x: x.mode(0), "nanmedian": lambda x: x.nanmedian(0),
          "logcumsumexp": lambda x: x.logcumsumexp(0)}


@pytest.mark.parametrize("name", sorted(ZERO_D))
def test_a_0d_tensor_is_one_lane_of_one_element(name):
    """torch takes dim 0 (or -1) of a 0-d tensor and answers with 0-d results."""
    for out in (ZERO_D[name](t(3.0)), tg.jit(ZERO_D[name])(np.array(3.0))):
        parts = out if isinstance(out, tuple) else (out,)
        assert [np.shape(p) for p in parts] == [()] * len(parts)
        assert float(parts[0]) == 3.0 and all(int(p) == 0 for p in parts[1:])


def test_second_round_against_torchs_rules():
    """The cases a comparison with torch found (values from torch's rules by hand)."""
    x = t([[1.0, -3.0], [0.5, 2.0]])
    close(x.renorm(float("inf"), 0, 1.0), np.array([[1.0, -3.0], [0.5, 2.0]]) / (
        np.array([[3.0], [2.0]]) + 1e-7))  # p = inf: torch's factor maxnorm / (norm + 1e-7)
    assert t(np.array([3, 2, 1], np.float32)).median().dtype == np.float32
    assert t(np.array([3, 2, 1])).median().dtype == np.int64
    close(t([1.0, 2.0, 1.0, 4.0, 2.5, 3.0]).histc(2, 2, 2), [3.0, 3.0])  # min == max: data
    with pytest.raises(RuntimeError, match="not finite"):
        t([1.0, np.inf]).histc(2)
    v = tg.tensor(np.array([1.0, 2.0, 2.0, 3.0, np.nan]), requires_grad=True)
    v.nanmedian().backward()
    close(v.grad, [0.0, 0.5, 0.5, 0.0, 0.0])  # shared among ties, as median()
    f32 = t(np.arange(6, dtype=np.float32))
    assert f32.quantile(t(np.array([0.5], np.float32))).dtype == np.float32
    assert float(t(2.0).quantile(0.5, dim=0)) == 2.0
    assert f32.reshape(2, 3).cov().dtype == np.float32
    u, s, v3 = t(RNG.normal(size=(4, 3))).svd(compute_uv=False)
    assert (u.shape, s.shape, v3.shape) == ((4, 4), (3,), (3, 3))
    a = tg.tensor(RNG.normal(size=(4, 3)), requires_grad=True)
    a.svd(some=False).S.sum().backward()  # S's gradient, with full U and V
    assert np.isfinite(np.asarray(a.grad)).all()
    assert [p.shape for p in t(np.arange(7.0)).tensor_split(t(2))] == [(4,), (3,)]
    assert float(t(1.0).index_copy(0, t([0]), t(5.0))) == 5.0
    assert t(np.ones((3, 1))).broadcast_to((2, -1, 4)).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="CPU tensor types"):
        x.type("torch.cuda.FloatTensor")
    with pytest.raises(TypeError, match="not implemented for int64"):
        t(np.zeros(3, np.int64)).uniform_()
    with pytest.raises(RuntimeError, match=r"p to be in \[0, 1\]"):
        t(np.zeros(3)).bernoulli_(1.5)
    np.random.seed(0)
    r = t(np.zeros(2000, np.float32)).random_(5, None)
    assert float(r.min()) >= 5 and float(r.max()) > 2 ** 20
    draws = np.asarray(t([0.0, 1.0, 0.0, 2.0]).multinomial(4))
    assert sorted(draws[:2]) == [1, 3] and sorted(draws) == [0, 1, 2, 3]
    with pytest.raises(np.linalg.LinAlgError, match="not positive-definite"):
        t([[1.0, 2.0], [2.0, 1.0]]).cholesky()
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        t(np.zeros((2, 2))).inverse()
