"""torch.Tensor's method names on tracegrad's arrays (tracer/torch_methods.py), second
round: the cases a comparison with torch found.  Each case runs against torch when it is
importable (value, dtype, shape and gradient, float32 and float64); the torch-free tests
below check the same fixes against NumPy, so CI without torch still covers them."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.tracer import GRAD_MODE, tensor
from tracegrad.tracer import numpy as tnp

NAN = float("nan")


@pytest.fixture(autouse=True)
def _grad_mode():
    GRAD_MODE.reset()
    yield
    GRAD_MODE.reset()


class Lib:
    """What a case needs from a library besides its tensors' methods: dtypes."""

    def __init__(self, mod, is_torch):
        self.is_torch = is_torch
        self.mod = mod
        names = ("float32", "float64", "int32", "int64", "bool")
        for name in names:
            setattr(self, name, getattr(mod, name) if is_torch else np.dtype(name))

    def tensor(self, data, dtype=None):
        if self.is_torch:
            return self.mod.tensor(np.asarray(data), dtype=dtype)
        return tensor(np.asarray(data), dtype=dtype)


def _outputs(out):
    if isinstance(out, (tuple, list)):
        return [o for item in out for o in _outputs(item)]
    return [out]


def _numpy(t):
    return np.asarray(t.detach().numpy() if hasattr(t, "grad_fn") else t)


def _run(lib, fn, arrays, grad):
    leaves = [lib.tensor(a) for a in arrays]
    for t in leaves:
        t.requires_grad_(grad and t.dtype in (lib.float32, lib.float64))
    outs = _outputs(fn(lib, *leaves))
    loss = None
    for k, o in enumerate(outs):
        if getattr(o, "requires_grad", False):
            w = np.random.default_rng(k).standard_normal(tuple(o.shape))
            term = (o * lib.tensor(w.astype(_numpy(o).dtype))).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    return outs, [None if t.grad is None else _numpy(t.grad) for t in leaves]


def compare(torch, fn, *arrays, grad=True, dtypes=(np.float32, np.float64)):
    """fn(lib, *tensors) on torch and on tracegrad: values, dtypes, shapes, gradients."""
    for dt in dtypes:
        cast = [np.asarray(a).astype(dt) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
                for a in arrays]
        want, want_g = _run(Lib(torch, True), fn, cast, grad)
        got, got_g = _run(Lib(tg, False), fn, cast, grad)
        assert len(want) == len(got)
        for w, g in zip(want, got):
            w, g = _numpy(w), _numpy(g)
            assert w.shape == g.shape and w.dtype == g.dtype, (w, g)
            rtol = 1e-5 if np.float32 in (dt, w.dtype) else 1e-12
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)
        for w, g in zip(want_g, got_g):
            if w is None or g is None:
                assert (w is None or not w.any()) and (g is None or not g.any())
            else:
                assert w.dtype == g.dtype
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


RNG = np.random.default_rng(0)
A23 = RNG.standard_normal((2, 3))
A234 = RNG.standard_normal((2, 3, 4))
A3141 = RNG.standard_normal((3, 1, 4, 1))
IDX = np.array([[0, 2, 1], [1, 0, 0]])

# (name, fn(lib, *tensors), arrays) compared with torch, float32 and float64
CASES = [
    ("transpose 2d", lambda L, x: x.transpose(0, 1), [A23]),
    ("transpose 3d", lambda L, x: x.transpose(1, 2), [A234]),
    ("transpose neg", lambda L, x: x.transpose(-1, 0), [A234]),
    ("permute 2d", lambda L, x: x.permute(0, 1), [A23]),
    ("permute 3d", lambda L, x: x.permute(2, 0, 1), [A234]),
    ("repeat tile", lambda L, x: x.repeat(2, 3), [A23]),
    ("repeat new dim", lambda L, x: x.repeat(2, 1, 1), [A23]),
    ("repeat_interleave", lambda L, x: x.repeat_interleave(2, dim=1), [A23]),
    ("repeat_interleave flat", lambda L, x: x.repeat_interleave(3), [A23]),
    ("clamp tensor bounds", lambda L, x, lo, hi: x.clamp(lo, hi),
     [[0.0, 2.0, 3.0, 9.0, 1.5, 0.5], [1.0, 1.0, 3.0, 4.0, 1.5, 2.0],
      [1.0, 1.0, 3.0, 4.0, 2.5, 1.0]]),
    ("clamp min tensor", lambda L, x, lo: x.clamp(min=lo), [[0.0, 1.0, 5.0], [2.0, 1.0, 2.0]]),
    ("clamp max tensor", lambda L, x, hi: x.clamp(max=hi), [[0.0, 1.0, 5.0], [2.0, 1.0, 2.0]]),
    ("clamp bound only", lambda L, lo: L.tensor([0.0, 1.0, 5.0]).to(lo.dtype).clamp(min=lo),
     [[2.0, 1.0, 2.0]]),
    ("clamp scalar at bounds", lambda L, x: x.clamp(0.0, 1.0), [[-1.0, 0.0, 0.5, 1.0, 2.0]]),
    ("sort desc nan", lambda L, x: x.sort(dim=1, descending=True),
     [[[1.0, NAN, 3.0, NAN, 3.0], [2.0, 2.0, -1.0, NAN, 5.0]]]),
    ("sort asc nan", lambda L, x: x.sort(dim=1), [[[1.0, NAN, 3.0, 3.0], [NAN, 2.0, 2.0, -1]]]),
    ("sort positional desc", lambda L, x: x.sort(0, True), [[3.0, 1.0, 3.0, 2.0]]),
    ("topk nan", lambda L, x: x.topk(2), [[[1.0, NAN, 3.0], [0.0, 5.0, 5.0]]]),
    ("topk smallest", lambda L, x: x.topk(2, largest=False), [[[1.0, NAN, 3.0], [0.0, 5.0, 5.0]]]),
    ("to device dtype", lambda L, x: x.to("cpu", L.float64), [A23]),
    ("to device dtype kw", lambda L, x: x.to("cpu", dtype=L.float32), [A23]),
    ("to other", lambda L, x, y: x.to(y), [A23, np.array([1.0], np.float32)]),
    ("masked_fill keeps dtype", lambda L, x: x.masked_fill(x > 0, L.tensor(2.5, L.float64)),
     [A23]),
    ("masked_fill tensor value", lambda L, x, v: x.masked_fill(x > 0, v), [A23, 1.5]),
    ("split sizes", lambda L, x: x.split([1, 2], dim=1), [A23]),
    ("chunk", lambda L, x: x.chunk(2, dim=2), [A234]),
    ("squeeze non-one", lambda L, x: x.squeeze(0), [A3141]),
    ("squeeze dim kw", lambda L, x: x.squeeze(dim=1), [A3141]),
    ("squeeze 0-d", lambda L, x: x.sum().squeeze(0), [A23]),
    ("squeeze tuple", lambda L, x: x.squeeze((0, 1, 3)), [A3141]),
    ("flatten start", lambda L, x: x.flatten(1), [A234]),
    ("flatten range", lambda L, x: x.flatten(start_dim=0, end_dim=1), [A234]),
    ("flatten all", lambda L, x: x.flatten(), [A234]),
    ("cumprod dim", lambda L, x: x.cumprod(dim=1), [A23]),
    ("argsort desc", lambda L, x: x.argsort(dim=1, descending=True), [A234]),
    ("sum keepdim positional", lambda L, x: x.sum(1, True), [A234]),
    ("mean keepdim positional", lambda L, x: x.mean(-1, True), [A234]),
    ("prod keepdim positional", lambda L, x: x.prod(1, True), [A234]),
    ("max keepdim positional", lambda L, x: x.max(1, True), [A234]),
    ("min keepdim positional", lambda L, x: x.min(1, False), [A234]),
    ("std unbiased positional", lambda L, x: x.std(1, True, True), [A234]),
    ("amax", lambda L, x: x.amax(dim=(0, 2), keepdim=True), [A234]),
    ("amin all", lambda L, x: x.amin(), [A234]),
    ("logsumexp", lambda L, x: x.logsumexp(1, True), [A234]),
    ("diagonal kw", lambda L, x: x.diagonal(offset=1, dim1=1, dim2=2), [A234]),
    ("div floor", lambda L, x: x.div(0.7, rounding_mode="floor"), [A23 * 3]),
    ("div trunc", lambda L, x: x.div(0.7, rounding_mode="trunc"), [A23 * 3]),
    ("div plain", lambda L, x, y: x.div(y), [A23, A23 + 3]),
    ("softmax dtype", lambda L, x: x.softmax(1, dtype=L.float64), [A234]),
    ("log_softmax dtype", lambda L, x: x.log_softmax(-1, dtype=L.float32), [A234]),
    ("max other", lambda L, x, y: x.max(y), [[1.0, 5.0, 2.0], [3.0, 2.0, 2.0]]),
    ("min other", lambda L, x, y: x.min(y), [[1.0, 5.0, 2.0], [3.0, 2.0, 2.0]]),
    ("norm fro", lambda L, x: x.norm(), [A234]),
    ("norm p dim", lambda L, x: x.norm(p=1, dim=1, keepdim=True), [A234]),
    ("norm dims", lambda L, x: x.norm(dim=(0, 2)), [A234]),
    ("norm inf", lambda L, x: x.norm(p=float("inf"), dim=-1), [A234]),
    ("expand_as", lambda L, x, y: x.expand_as(y), [A23[:1], A23]),
    ("view_as", lambda L, x, y: x.view_as(y), [A23, A23.T]),
    ("reshape_as", lambda L, x, y: x.reshape_as(y), [A23, A23.T]),
    ("type_as", lambda L, x, y: x.type_as(y), [A23, np.array([1.0], np.float32)]),
    ("where", lambda L, x, y: x.where(x > 0, y), [A23, A23 * 2]),
    ("flip", lambda L, x: x.flip(0, 2), [A234]),
    ("flip tuple", lambda L, x: x.flip((1,)), [A234]),
    ("roll", lambda L, x: x.roll(1, 2), [A234]),
    ("roll multi", lambda L, x: x.roll((1, -1), (0, 2)), [A234]),
    ("gather", lambda L, x, i: x.gather(1, i), [A23, IDX]),
    ("gather small index", lambda L, x, i: x.gather(0, i), [A234[:, :, 0], IDX[:, :2] % 2]),
    ("scatter", lambda L, x, i, s: x.scatter(1, i[:, :1], s[:, :1]), [A23, IDX, A23 * 5]),
    ("scatter value", lambda L, x, i: x.scatter(1, i[:, :2], value=7.0), [A23, IDX]),
    ("scatter_add", lambda L, x, i, s: x.scatter_add(1, i, s), [A23, IDX, A23 * 5]),
    ("index_select", lambda L, x, i: x.index_select(1, i[0]), [A23, IDX]),
    ("masked_select", lambda L, x: x.masked_select(x > 0), [A23]),
    ("bmm", lambda L, x, y: x.bmm(y), [A234, A234.transpose(0, 2, 1)]),
    ("outer", lambda L, x, y: x.outer(y), [A23[0], A23[1]]),
    ("addmm", lambda L, b, x, y: b.addmm(x, y, beta=0.5, alpha=2.0), [A23[:, :2], A23, A23.T]),
    ("unbind", lambda L, x: x.unbind(1), [A234]),
    ("narrow", lambda L, x: x.narrow(2, 1, 2), [A234]),
    ("narrow neg", lambda L, x: x.narrow(-1, -3, 2), [A234]),
    ("select", lambda L, x: x.select(1, -1), [A234]),
    ("sign square", lambda L, x: (x.sign(), x.square()), [A23]),
    ("rsqrt reciprocal", lambda L, x: (x.abs().rsqrt(), x.reciprocal()), [A23]),
    ("floor ceil trunc", lambda L, x: (x.floor(), x.ceil(), x.trunc()), [A23 * 3]),
    ("isnan isinf isfinite", lambda L, x: (x.log().isnan(), (1 / x).isinf(), x.isfinite()),
     [[1.0, -1.0, 0.0]]),
    ("comparisons", lambda L, x, y: (x.eq(y), x.ne(y), x.gt(y), x.lt(y), x.ge(y), x.le(y)),
     [[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]]),
    ("int bool", lambda L, x: (x.int(), x.bool(), x.long(), x.float(), x.double()),
     [[0.0, 2.7, -1.5]]),
    ("new_zeros ones full", lambda L, x: (x.new_zeros(2, 3), x.new_ones((2,), dtype=L.int64),
                                          x.new_full((3,), 2.5)), [A23]),
    ("tril triu", lambda L, x: (x.tril(), x.triu(1), x.tril(-1)), [A234]),
    ("tile", lambda L, x: x.tile((2, 1)), [A23]),
    ("tile fewer", lambda L, x: x.tile(2), [A23]),
    ("unflatten", lambda L, x: x.unflatten(2, (2, 2)), [A234]),
    ("unflatten infer", lambda L, x: x.unflatten(-1, (-1, 2)), [A234]),
    ("movedim", lambda L, x: x.movedim(0, -1), [A234]),
    ("movedim multi", lambda L, x: x.movedim((0, 1), (2, 0)), [A234]),
    ("any all dim", lambda L, x: ((x > 0).any(dim=1), (x > 0).all(dim=0, keepdim=True),
                                  (x > 0).any(1, True)), [A234]),
    ("put concrete index", lambda L, x: x.detach().clone().put(L.tensor([0, 2]), L.tensor(
        [9.0, 8.0]).to(x.dtype)) if L.is_torch else _put(x, L), [[1.0, 2.0, 3.0]]),
]


def _put(x, L):
    y = x.detach().clone()
    y.put(L.tensor([0, 2]), L.tensor([9.0, 8.0]).to(x.dtype))  # NumPy's: in place
    return y


@pytest.mark.parametrize("name,fn,arrays", CASES, ids=[c[0] for c in CASES])
def test_matches_torch(torch, name, fn, arrays):
    compare(torch, fn, *arrays)


INT_CASES = [
    ("masked_fill int", lambda L, x: x.masked_fill(x > 1, 2.7), [[1, 2, 3]]),
    ("div trunc int", lambda L, x: x.div(2, rounding_mode="trunc"), [[5, -5, 4, -4, 0]]),
    ("div floor int", lambda L, x: x.div(-2, rounding_mode="floor"), [[5, -5, 4, -4, 0]]),
    ("div trunc int tensor", lambda L, x, y: x.div(y, rounding_mode="trunc"),
     [[7, -7, 7, -7], [2, 2, -2, -2]]),
    ("sort int desc", lambda L, x: x.sort(dim=0, descending=True), [[1, 5, 3, 5]]),
    ("sort bool desc", lambda L, x: (x > 2).sort(dim=0, descending=True), [[1, 5, 3, 5]]),
    ("topk int", lambda L, x: x.topk(2), [[1, 5, 3, 5]]),
    ("chunk empty", lambda L, x: x.chunk(3), [np.zeros((0, 2), np.int64)]),
    ("split empty", lambda L, x: x.split(2), [np.zeros((0, 2), np.int64)]),
    ("split zero empty", lambda L, x: x.split(0), [np.zeros((0, 2), np.int64)]),
    ("view dtype", lambda L, x: (x.float().view(L.int32), x.view(L.float64)), [[1, -2, 3]]),
    ("unique", lambda L, x: x.unique(return_inverse=True, return_counts=True),
     [[[3, 1, 3], [2, 1, 1]]]),
    ("is_floating_point", lambda L, x: (x.is_floating_point(), x.double().is_floating_point()),
     [[1, 2]]),
]


@pytest.mark.parametrize("name,fn,arrays", INT_CASES, ids=[c[0] for c in INT_CASES])
def test_matches_torch_integers(torch, name, fn, arrays):
    compare(torch, fn, *arrays, grad=False, dtypes=(np.float64,))


ERRORS = [
    ("split sizes short", lambda L, x: x.split([1, 2])),
    ("split sizes long", lambda L, x: x.split([3, 3])),
    ("split zero", lambda L, x: x.split(0)),
    ("chunk zero", lambda L, x: x.chunk(0)),
    ("expand -1 leading", lambda L, x: x.expand(-1, 5)),
    ("t 3d", lambda L, x: x.reshape(1, 5, 1).t()),
    ("clamp nothing", lambda L, x: x.clamp()),
    ("repeat fewer dims", lambda L, x: x.reshape(1, 1, 5).repeat(2, 3)),
    ("div mode", lambda L, x: x.div(2, rounding_mode="round")),
    ("squeeze out of range", lambda L, x: x.squeeze(1)),
]


@pytest.mark.parametrize("name,fn", ERRORS, ids=[e[0] for e in ERRORS])
def test_raises_where_torch_raises(torch, name, fn):
    x = np.arange(5.0)
    with pytest.raises((RuntimeError, IndexError)):
        fn(Lib(torch, True), torch.tensor(x))
    with pytest.raises((ValueError, IndexError)):
        fn(Lib(tg, False), tensor(x))


# ---- torch-free checks against NumPy (CI installs no torch) ---------------------------------

def leaf(a, dtype=np.float64):
    return tensor(np.asarray(a, dtype), requires_grad=True)


def values(t):
    return t.detach().numpy()


def test_transpose_two_ints_swaps_and_permutations_stay_numpys():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = tensor(a)
    assert np.array_equal(values(x.transpose(0, 2)), np.swapaxes(a, 0, 2))
    assert np.array_equal(values(x.transpose(2, 0, 1)), a.transpose(2, 0, 1))
    assert np.array_equal(values(x.transpose((2, 0, 1))), a.transpose((2, 0, 1)))
    assert np.array_equal(values(x.transpose()), a.transpose())
    m = tensor(a[0])
    assert np.array_equal(values(m.transpose(0, 1)), a[0].T)  # the swap, not NumPy's identity
    assert np.array_equal(values(m.permute(0, 1)), a[0])


def test_repeat_forms():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = leaf(a)
    assert np.array_equal(values(x.repeat(2)), a.repeat(2))
    assert np.array_equal(values(x.repeat(2, axis=1)), a.repeat(2, axis=1))
    assert np.array_equal(values(x.repeat(repeats=2, axis=0)), a.repeat(2, axis=0))
    assert np.array_equal(values(x.repeat([1, 2], axis=0)), a.repeat([1, 2], axis=0))
    assert np.array_equal(values(x.repeat(tensor([1, 2]), axis=0)), a.repeat([1, 2], axis=0))
    y = x.repeat(3, 1, 2)
    assert np.array_equal(values(y), np.tile(a, (3, 1, 2)))
    y.sum().backward()
    assert np.array_equal(x.grad.numpy(), np.full((2, 2), 6.0))
    assert np.array_equal(values(x.repeat_interleave(2, dim=0)), a.repeat(2, axis=0))
    with pytest.raises(ValueError):
        tensor(np.zeros((2, 2, 2))).repeat(2, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clamp_tensor_bounds_get_torchs_gradients(dtype):
    x = leaf([0.0, 2.0, 3.0, 9.0, 1.5, 0.5], dtype)
    lo = leaf([1.0, 1.0, 3.0, 4.0, 1.5, 2.0], dtype)
    hi = leaf([1.0, 1.0, 3.0, 4.0, 2.5, 1.0], dtype)
    y = x.clamp(lo, hi)
    assert y.dtype == dtype and values(y).tolist() == [1.0, 1.0, 3.0, 4.0, 1.5, 1.0]
    y.sum().backward()
    # x inside (bounds included); lo where x < lo < hi; hi where x > hi or hi < lo
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert lo.grad.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert hi.grad.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    b = leaf([2.0, 2.0, 2.0], dtype)
    y = tensor(np.array([0.0, 2.0, 5.0], dtype)).clamp(min=b)
    assert y.requires_grad
    y.sum().backward()
    assert b.grad.tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="min"):
        x.clamp()


def test_clamp_gradient_under_trace_and_in_place():
    def f(x, lo):
        return tnp.sum(x.clamp(min=lo) * np.array([1.0, 2.0, 3.0]))
    g = tg.grad(f, argnums=(0, 1))(np.array([0.0, 2.0, 5.0]), np.array([2.0, 2.0, 2.0]))
    assert [v.tolist() for v in g] == [[0.0, 2.0, 3.0], [1.0, 0.0, 0.0]]
    x = leaf([-1.0, 0.5, 2.0])
    y = x * 1
    y.clamp_(0.0, 1.0)
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0]


def test_descending_sorts_put_nan_first_and_keep_ties_in_order():
    x = tensor([1.0, NAN, 3.0, NAN, 3.0])
    v, i = x.sort(dim=0, descending=True)
    assert i.tolist() == [1, 3, 2, 4, 0] and np.isnan(values(v)[:2]).all()
    assert x.argsort(dim=0, descending=True).tolist() == [1, 3, 2, 4, 0]
    assert x.sort(dim=0).indices.tolist() == [0, 2, 4, 1, 3]
    assert x.topk(1).indices.tolist() == [1]
    assert x.topk(2, largest=False).indices.tolist() == [0, 2]
    b = tensor([False, True, False, True])
    assert b.sort(dim=0, descending=True).indices.tolist() == [1, 3, 0, 2]


def test_to_honours_dtype_in_every_form():
    x = leaf([1.0, 2.0])
    assert x.to("cpu", np.float32).dtype == np.float32
    assert x.to("cpu", dtype=np.float32).dtype == np.float32
    assert x.to(device="cpu").dtype == np.float64
    assert x.to(tensor(np.array([1], np.int32))).dtype == np.int32
    assert x.to(np.float64) is x and x.type_as(tensor([1])).dtype == np.int64
    y = x.to(np.float32)
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64 and x.grad.tolist() == [2.0, 2.0]
    assert x.cpu() is x and x.device == "cpu" and x.is_floating_point()


def test_masked_fill_keeps_dtype():
    x = tensor([1, 2, 3])
    y = x.masked_fill(tensor([True, False, True]), 2.7)
    assert y.dtype == np.int64 and y.tolist() == [2, 2, 2]
    f = tensor(np.array([1.0, 2.0], np.float32)).masked_fill(tensor([True, False]),
                                                             tensor(np.float64(2.5)))
    assert f.dtype == np.float32 and f.tolist() == [2.5, 2.0]


def test_split_and_chunk_sizes():
    x = tensor(np.arange(5.0))
    assert [p.tolist() for p in x.split([2, 3])] == [[0.0, 1.0], [2.0, 3.0, 4.0]]
    assert [p.shape for p in x.split(2)] == [(2,), (2,), (1,)]
    for bad in ([1, 2], [3, 3], 0):
        with pytest.raises(ValueError):
            x.split(bad)
    with pytest.raises(ValueError, match="greater than 0"):
        x.chunk(0)
    e = tensor(np.zeros((0, 2)))
    assert [p.shape for p in e.chunk(3)] == [(0, 2)] * 3
    assert [p.shape for p in e.split(0)] == [(0, 2)]


def test_expand_and_t_raise_as_torch():
    x = tensor([1.0, 2.0])
    assert x.expand(3, -1).shape == (3, 2)
    with pytest.raises(ValueError, match="leading"):
        x.expand(-1, 2)
    with pytest.raises(ValueError, match="dimensions"):
        tensor(np.zeros((2, 3, 4))).t()
    assert x.t().shape == (2,)


def test_squeeze_and_flatten_forms():
    a = np.zeros((3, 1, 4, 1))
    x = tensor(a)
    assert x.squeeze(0).shape == a.shape and x.squeeze(dim=1).shape == (3, 4, 1)
    assert x.squeeze((1, 3)).shape == (3, 4) and x.squeeze().shape == (3, 4)
    assert tensor(2.0).squeeze(0).shape == () and tensor(2.0).squeeze(-1).shape == ()
    with pytest.raises(IndexError):
        x.squeeze(4)
    b = np.arange(24.0).reshape(2, 3, 4)
    y = tensor(b)
    assert y.flatten(1).shape == (2, 12) and y.flatten(0, 1).shape == (6, 4)
    assert y.flatten(start_dim=-2).shape == (2, 12) and tensor(2.0).flatten().shape == (1,)
    assert tensor(np.zeros((0, 3, 4))).flatten(1).shape == (0, 12)
    assert np.array_equal(values(y.flatten("F")), b.flatten("F"))
    assert np.array_equal(values(y.flatten(order="F")), b.flatten("F"))
    assert np.array_equal(values(y.ravel()), b.ravel())


def test_reductions_take_torchs_keywords_and_positional_keepdim():
    a = np.arange(24.0).reshape(2, 3, 4) - 10
    x = tensor(a)
    assert x.sum(1, True).shape == (2, 1, 4) and x.mean(-1, True).shape == (2, 3, 1)
    assert x.sum(1, np.float32).dtype == np.float32  # a dtype stays NumPy's
    assert x.prod(0, True).shape == (1, 3, 4)
    assert np.array_equal(values(x.cumprod(dim=2)), np.cumprod(a, axis=2))
    assert (x > 0).any(dim=1).tolist() == (a > 0).any(axis=1).tolist()
    assert (x > 0).all(0, True).shape == (1, 3, 4)
    v, i = x.max(1, True)
    assert v.shape == (2, 1, 4) and i.shape == (2, 1, 4)
    assert np.array_equal(values(x.max(1)), a.max(1))  # NumPy's value without a bool
    assert np.array_equal(values(x.max(axis=1, keepdims=True)), a.max(1, keepdims=True))
    np.testing.assert_allclose(values(x.std(1, True)), a.std(1, ddof=1))
    np.testing.assert_allclose(values(x.logsumexp(1)), np.log(np.exp(a).sum(1)))
    assert np.array_equal(values(x.amax(dim=(0, 2))), a.max((0, 2)))
    assert np.array_equal(values(x.argsort(dim=1)), a.argsort(1))


def test_max_min_of_another_array_are_elementwise():
    x, y = leaf([1.0, 5.0, 2.0]), leaf([3.0, 2.0, 2.0])
    z = x.max(y) + x.min(y) * 2
    assert z.tolist() == [5.0, 9.0, 6.0]
    z.sum().backward()
    assert x.grad.tolist() == [2.0, 1.0, 1.5] and y.grad.tolist() == [1.0, 2.0, 1.5]


def test_diagonal_div_softmax_view_dtype():
    a = np.arange(8.0).reshape(2, 2, 2)
    x = tensor(a)
    assert np.array_equal(values(x.diagonal(dim1=1, dim2=2)), a.diagonal(0, 1, 2))
    q = tensor([5.0, -5.0])
    assert q.div(2, rounding_mode="floor").tolist() == [2.0, -3.0]
    assert q.div(2, rounding_mode="trunc").tolist() == [2.0, -2.0]
    n = tensor([7, -7, 7, -7])
    assert n.div(tensor([2, 2, -2, -2]), rounding_mode="trunc").tolist() == [3, -3, -3, 3]
    s = tensor(np.array([1.0, 2.0], np.float32)).softmax(0, dtype=np.float64)
    assert s.dtype == np.float64
    f = tensor(np.array([1.0, -2.0], np.float32))
    assert np.array_equal(values(f.view(np.int32)), np.array([1.0, -2.0], np.float32)
                          .view(np.int32))
    with pytest.raises(ValueError, match="item size"):
        f.view(np.int64)


def test_put_takes_an_eager_index_tensor():
    x = tensor([1.0, 2.0, 3.0])
    assert x.put(tensor([0, 2]), tensor([9.0, 8.0])) is None  # NumPy's, in place
    assert x.tolist() == [9.0, 2.0, 8.0]


def test_new_aliases_match_numpy_and_carry_gradients():
    a = np.arange(12.0).reshape(3, 4) - 5.5
    x = leaf(a)
    idx = np.array([[0, 3], [1, 1], [2, 0]])
    parts = [x.gather(1, tensor(idx)), x.flip(0), x.roll(1, 1), x.index_select(0, tensor([2])),
             x.masked_select(x > 0), x.narrow(1, 1, 2), x.select(0, 1), x.tril(), x.triu(1),
             x.tile((2, 1)), x.unflatten(1, (2, 2)), x.movedim(0, 1), x.square(), x.abs().rsqrt(),
             x.norm(), x.norm(p=1, dim=0), x.where(x > 0, 0.0), x.logsumexp(0)]
    want = [np.take_along_axis(a, idx, 1), a[::-1], np.roll(a, 1, 1), a[[2]], a[a > 0],
            a[:, 1:3], a[1], np.tril(a), np.triu(a, 1), np.tile(a, (2, 1)), a.reshape(3, 2, 2),
            a.T, a ** 2, 1 / np.sqrt(np.abs(a)), np.linalg.norm(a), np.abs(a).sum(0),
            np.where(a > 0, a, 0.0), np.log(np.exp(a).sum(0))]
    for p, w in zip(parts, want):
        np.testing.assert_allclose(values(p), w, rtol=1e-12)
    sum(p.sum() for p in parts if np.isfinite(values(p)).all()).backward()
    assert x.grad is not None and x.grad.shape == a.shape


def test_scatter_gather_and_unbind_gradients():
    x = leaf(np.zeros((2, 3)))
    src = leaf(np.arange(6.0).reshape(2, 3))
    idx = tensor(np.array([[2, 0, 2]]))
    y = x.scatter_add(1, idx, src) + x.scatter(1, idx[:, :2], src) * 10
    assert y.tolist() == [[11.0, 0.0, 2.0], [0.0, 0.0, 0.0]]
    y.sum().backward()
    assert src.grad.tolist() == [[11.0, 11.0, 1.0], [0.0, 0.0, 0.0]]
    # scatter overwrites: no gradient to the overwritten elements of x
    assert x.grad.tolist() == [[1.0, 11.0, 1.0], [11.0, 11.0, 11.0]]
    assert [t.shape for t in leaf(np.zeros((2, 3))).unbind(1)] == [(2,)] * 3


def test_new_constants_and_conversions():
    x = leaf(np.zeros((2, 2), np.float32), np.float32)
    z = x.new_zeros(3, 4)
    assert z.shape == (3, 4) and z.dtype == np.float32 and not z.requires_grad
    assert x.new_full((2,), 7, dtype=np.int64).tolist() == [7, 7]
    assert x.new_ones((1,)).tolist() == [1.0]
    assert tensor([0.0, 2.7]).int().tolist() == [0, 2] and tensor([0.0, 2.7]).bool().dtype == bool
    u = tensor([3, 1, 3]).unique(return_counts=True)
    assert [t.tolist() for t in u] == [[1, 3], [1, 2]]


def test_in_place_activations():
    a = leaf([-1.0, 0.5, 4.0])
    y = a * 1
    assert y.relu_() is y and y.tolist() == [0.0, 0.5, 4.0]
    y.add_(1.0).sqrt_().log_()
    y.sum().backward()
    # d/da log(sqrt(a + 1)) = 1 / (2 (a + 1)) where a > 0, 0 where relu cut it
    np.testing.assert_allclose(a.grad.numpy(), [0.0, 1 / 3, 0.1], rtol=1e-14)
    b = leaf([0.0, 1.0])
    z = b * 1
    z.tanh_().sigmoid_()
    z.sum().backward()
    t = np.tanh([0.0, 1.0])
    s = 1 / (1 + np.exp(-t))
    np.testing.assert_allclose(b.grad.numpy(), s * (1 - s) * (1 - t ** 2))


def test_torch_methods_under_trace():
    def f(x, lo):
        y = x.transpose(0, 1).repeat(2, 1).clamp(min=lo)
        v, _ = y.sort(dim=1, descending=True)
        return v.sum(1, True).flatten().sum() + y.gather(1, np.zeros((4, 1), np.int64)).sum()
    a = np.arange(6.0).reshape(2, 3)
    want = f(tensor(a), tensor(1.5)).item()
    assert float(tg.jit(f)(a, 1.5)) == pytest.approx(want)
    g = tg.grad(f)(a, 1.5)
    assert g.shape == (2, 3)


def test_split_chunk_topk_check_dim_and_k_as_torch():
    x = tg.tensor(np.arange(12.0).reshape(4, 3))
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.split(2, dim=3)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.chunk(2, dim=-3)
    with pytest.raises(RuntimeError, match="out of range"):
        x.topk(4)
    assert x.topk(3)[0].shape == (4, 3) and x.topk(0)[0].shape == (4, 0)


@pytest.mark.parametrize("values, dtype, want", [
    ([0.0, 1000.0, 3.0], np.float64, [0.0, 1000.0, 1000.0]),
    ([0.0, 100.0, 3.0], np.float32, [0.0, 100.0, 100.0]),
    ([-50.0, 50.0], np.float32, [-50.0, 50.0]),
    ([1000.0, np.inf], np.float64, [1000.0, np.inf]),
    ([-np.inf, -np.inf, 1.0], np.float64, [-np.inf, -np.inf, 1.0]),
])
def test_logcumsumexp_keeps_each_prefixs_scale(values, dtype, want):
    """An early small value beside a later large one (a shift by the lane's maximum
    underflowed it): torch's values, eagerly and traced."""
    x = np.array(values, dtype)
    np.testing.assert_allclose(tg.tensor(x).logcumsumexp(0).numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(tg.jit(lambda v: v.logcumsumexp(0))(x), want, rtol=1e-6)
