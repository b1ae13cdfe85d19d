"""Eager tensors against PyTorch: in-place operators and methods, views, var/std's
keywords, hooks, create_graph gradients and torch's method names (values and gradients)."""
import numpy as np
import pytest

import tracegrad as tg
from tracegrad.tracer.autograd import inference_mode

torch = pytest.importorskip("torch")

LIBS = (torch, tg)


def _np(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


def _both(fn):
    """fn(L) for torch and tracegrad, the results as numpy arrays (nested tuples kept)."""
    def conv(r):
        return tuple(conv(x) for x in r) if isinstance(r, (tuple, list)) else _np(r)
    return [conv(fn(L)) for L in LIBS]


def _close(a, b):
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _close(x, y)
    else:
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-6,
                                   atol=1e-9)


def _same(fn):
    _close(*_both(fn))


def _x(L):
    return L.tensor(np.arange(1., 7.).reshape(2, 3), requires_grad=True)


# ---- 1. in-place operators and methods through views -----------------------------------

@pytest.mark.parametrize("op", ["**=", "%="])
def test_float_inplace_operators_write_through_views(op):
    def run(L):
        x = _x(L)
        b = x * 1
        v = b[0]
        exec(f"v {op} 2", {}, {"v": v})
        (b * b).sum().backward()
        return b, x.grad
    _same(run)


def test_floor_divide_in_place_writes_through_views():
    def run(L):  # torch has no derivative for floor_divide_: values only
        b = L.tensor(np.arange(1., 7.).reshape(2, 3))
        v = b.t()[1]
        v //= 2
        return b
    _same(run)


@pytest.mark.parametrize("op", ["&=", "|=", "^=", "<<=", ">>="])
def test_integer_inplace_operators_write_through_views(op):
    def run(L):
        b = L.tensor(np.arange(6).reshape(2, 3))
        v = b[1]
        exec(f"v {op} 3", {}, {"v": v})
        return b
    _same(run)


def test_inplace_operator_bumps_version_and_refuses_leaf():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        x **= 2
    with tg.no_grad():
        x **= 2
    assert x.tolist() == [1.0, 4.0] and x._version.value == 1


@pytest.mark.parametrize("name, args", [
    ("abs_", ()), ("neg_", ()), ("clip_", (-2.0, 3.0)), ("sin_", ()), ("floor_", ()),
    ("frac_", ()), ("reciprocal_", ()), ("square_", ()), ("fmod_", (1.5,)),
    ("remainder_", (1.5,)), ("sign_", ()), ("trunc_", ()),
])
def test_unary_inplace_methods(name, args):
    def run(L):
        x = L.tensor([[-2.5, 1.25, 3.5], [0.75, -1.5, 4.0]], dtype=L.float64 if L is torch
                     else None, requires_grad=True)
        b = x * 1
        getattr(b[1], name)(*args)
        (b * b).sum().backward()
        return b, x.grad
    _same(run)


def test_masked_fill_and_binary_inplace_methods_with_grad():
    def run(L):
        x, y = _x(L), L.tensor(np.full((2, 3), 0.5), requires_grad=True)
        b = x * 1
        b.masked_fill_(b > 4, 0.0)
        b.lerp_(y, 0.25)
        b.addcmul_(y, y, value=2.0)
        b.addcdiv_(x, y)
        b.index_fill_(1, L.tensor([0]), -1.0)
        (b * b).sum().backward()
        return b, x.grad, y.grad
    _same(run)


# ---- 2. view methods share storage ----------------------------------------------------

VIEWS = {
    "view": lambda b: b.view(6),
    "view_tuple": lambda b: b.view((3, 2)),
    "reshape": lambda b: b.reshape(3, 2),
    "unsqueeze": lambda b: b.unsqueeze(0),
    "squeeze": lambda b: b.unsqueeze(1).squeeze(1),
    "flatten": lambda b: b.flatten(),
    "permute": lambda b: b.permute(1, 0),
    "t": lambda b: b.t(),
    "T": lambda b: b.T,
    "transpose": lambda b: b.transpose(0, 1),
    "narrow": lambda b: b.narrow(1, 1, 2),
    "select": lambda b: b.select(1, 2),
    "movedim": lambda b: b.movedim(0, 1),
    "view_as": lambda b: b.view_as(b.new_zeros(3, 2) if hasattr(b, "new_zeros") else b),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_views_write_through_to_base_with_gradient(name):
    def run(L):
        x = _x(L)
        b = x * 1
        v = VIEWS[name](b)
        v.mul_(10)
        (b * b).sum().backward()
        return b, x.grad
    _same(run)


def test_split_and_unbind_pieces_see_base_changes():
    def run(L):  # values only: torch refuses a backward through them after the change
        b = L.tensor(np.arange(1., 7.).reshape(2, 3))
        pieces = b.split(1, 0) + b.unbind(1) + b.chunk(2, 1)
        b.mul_(3)
        return pieces
    _same(run)


def test_chain_of_views_and_setitem():
    def run(L):
        x = _x(L)
        b = x * 1
        b.view(6).mul_(10)
        b.unsqueeze(0)[0, 0, 0] = -1
        b.t()[2].add_(x[:, 0])
        (b ** 2).sum().backward()
        return b, x.grad
    _same(run)


def test_base_changes_show_in_views_and_their_graphs():
    def run(L):
        x = _x(L)
        b = x * 1
        v = b.T
        b[0, 0] = 100.0
        (v * x.T).sum().backward()
        return v, x.grad
    _same(run)


def test_view_of_noncontiguous_raises_and_reshape_copies():
    for L in LIBS:
        b = L.tensor(np.arange(6.0).reshape(2, 3)).t()
        with pytest.raises(RuntimeError, match="view size is not compatible"):
            b.view(6)
        r = b.reshape(6)
        r.mul_(0)
        assert b.sum().item() == 15.0  # the copy, not b
    x = tg.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError):
        x.view(4)


def test_expand_is_a_read_only_view():
    def run(L):
        x = _x(L)
        b = x * 1
        e = b[:1].expand(3, 3)
        b[0, 1] = 7.0
        (e * e).sum().backward()
        return e, x.grad
    _same(run)
    for L in LIBS:
        e = L.tensor([1.0, 2.0]).expand(2, 2)
        with pytest.raises(RuntimeError):
            e.add_(1)


def test_view_node_names_match_torch():
    for f in ("view", "unsqueeze", "squeeze", "t", "transpose", "permute", "flatten"):
        names = [VIEWS[f](_x(L) * 1).grad_fn.name() for L in LIBS]
        assert names[0] == names[1], f


def test_view_of_leaf_refuses_inplace_and_no_grad_views():
    x = _x(tg)
    with pytest.raises(RuntimeError, match="view of a leaf"):
        x.view(6).mul_(2)
    with tg.no_grad():
        x.view(6).mul_(2)
    assert x[1, 2].item() == 12.0


# ---- 3. var/std ------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda x: x.var(1, keepdim=True), lambda x: x.std(1, keepdim=True),
    lambda x: x.var(unbiased=True), lambda x: x.std(correction=0), lambda x: x.var(dim=0),
    lambda x: x.std(0, True), lambda x: x.var(correction=2, dim=1),
])
def test_var_std_torch_keywords(call):
    def run(L):
        x = L.tensor([[1.0, 5.0, 2.0], [7.0, 3.0, 4.0]], requires_grad=True)
        y = call(x)
        y.sum().backward()
        return y, x.grad
    _same(run)


def test_var_std_without_torch_keywords_stay_numpy():
    x = tg.tensor([[1.0, 5.0], [7.0, 3.0]])
    assert x.var().item() == pytest.approx(np.var(x.data))
    np.testing.assert_allclose(x.std(0).data, np.std(x.data, 0))


# ---- 4-6. hooks and create_graph --------------------------------------------------------

def test_hook_changing_dtype_raises():
    for L in LIBS:
        f64 = torch.float64 if L is torch else np.float64
        x = L.tensor([1.0, 2.0], dtype=f64, requires_grad=True)
        x.register_hook(lambda g: g.float())
        with pytest.raises(RuntimeError, match="changed the type of value"):
            (x * x).sum().backward()
        y = L.tensor([1.0, 2.0], dtype=f64, requires_grad=True)
        z = y * 2
        z.retain_grad()
        z.register_hook(lambda g: g.float())
        with pytest.raises(RuntimeError, match="changed the type of value"):
            (z * z).sum().backward()


def test_post_accumulate_hook_not_run_by_autograd_grad():
    for L in LIBS:
        x = L.tensor([1.0, 2.0], requires_grad=True)
        seen = []
        x.register_post_accumulate_grad_hook(lambda t, seen=seen: seen.append(t.grad))
        L.autograd.grad((x * x).sum(), x)
        assert seen == []
        (x * x).sum().backward()
        assert len(seen) == 1


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_create_graph_constant_gradient_does_not_require_grad():
    def run(L):
        a = L.tensor([1.0, 2.0], requires_grad=True)
        (a * 2).sum().backward(create_graph=True)
        g = a.grad
        flag = g.requires_grad
        (a * 3).sum().backward()
        return g, a.grad, np.array(flag)
    _same(run)
    b = tg.tensor([1.0, 2.0], requires_grad=True)
    (b * b).sum().backward(create_graph=True)
    assert b.grad.requires_grad  # depends on b


# ---- 7. torch's method names -------------------------------------------------------------

X = [[3.0, 1.0, 2.0, 0.5], [5.0, 4.0, 6.0, -1.0], [0.25, 2.5, -3.0, 7.0]]

METHODS = {
    "median_dim": lambda x, L: x.median(1),
    "median_keep": lambda x, L: x.median(dim=0, keepdim=True),
    "median_all": lambda x, L: x.median(),
    "cummax": lambda x, L: x.cummax(1),
    "cummin": lambda x, L: x.cummin(0),
    "logcumsumexp": lambda x, L: x.logcumsumexp(1),
    "diff": lambda x, L: x.diff(dim=0),
    "diff_n": lambda x, L: x.diff(n=2, dim=1),
    "nansum": lambda x, L: x.nansum(1, keepdim=True),
    "count_nonzero": lambda x, L: (x > 1).count_nonzero(1),
    "maximum": lambda x, L: x.maximum(x.flip(1)),
    "minimum": lambda x, L: x.minimum(x.flip(0)),
    "fmax": lambda x, L: x.fmax(x * -1),
    "fmin": lambda x, L: x.fmin(x * -1),
    "atan2": lambda x, L: x.atan2(x.flip(1)),
    "arctan2": lambda x, L: x.arctan2(x.flip(0)),
    "hypot": lambda x, L: x.hypot(x.flip(1)),
    "sinh": lambda x, L: x.sinh(),
    "cosh": lambda x, L: x.cosh(),
    "frac": lambda x, L: (x * 1.3).frac(),
    "fmod": lambda x, L: x.fmod(1.5),
    "remainder": lambda x, L: x.remainder(1.5),
    "lerp": lambda x, L: x.lerp(x.flip(1), 0.3),
    "addcmul": lambda x, L: x.addcmul(x, x.flip(0), value=0.5),
    "addcdiv": lambda x, L: x.addcdiv(x, x.flip(0) + 10, value=2.0),
    "index_add": lambda x, L: x.index_add(0, L.tensor([2, 0]), x[:2] * 2),
    "index_add_alpha": lambda x, L: x.index_add(1, L.tensor([1, 1]), x[:, :2], alpha=3),
    "index_fill": lambda x, L: x.index_fill(1, L.tensor([0, 3]), -2.0),
    "take_along_dim": lambda x, L: x.take_along_dim(L.tensor([[0], [3], [1]]), 1),
    "take_along_dim_flat": lambda x, L: x.take_along_dim(L.tensor([5, 0, 11])),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_torch_methods_values_and_gradients(name):
    def run(L):
        x = L.tensor(np.array(X), requires_grad=True)
        out = METHODS[name](x, L)
        values = out[0] if isinstance(out, tuple) else out
        if values.dtype.is_floating_point if L is torch else values.dtype.kind == "f":
            (values * values).sum().backward()
            return out, x.grad
        return out
    _same(run)


def test_inference_mode():
    x = tg.tensor([1.0], requires_grad=True)
    with inference_mode():
        assert not (x * 2).requires_grad
    with inference_mode(False):
        assert (x * 2).requires_grad

    @inference_mode
    def f():
        return (x * 2).requires_grad
    assert not f() and tg.is_grad_enabled()


# ---- 8. torch's results where they once differed (values and gradients) -----------------

NAN = float("nan")


def _t(L, a, grad=False):
    return L.tensor(np.array(a, float), requires_grad=grad)


def test_contiguous_copies_a_strided_tensor_and_keeps_a_contiguous_one():
    def run(L):
        x = _t(L, np.arange(6.).reshape(2, 3), True)
        b = x * 1
        y = b.t().contiguous()
        y.mul_(100)  # leaves b alone
        v = b[1:]  # a contiguous view
        same = b.contiguous() is b and v.contiguous() is v
        (b.sum() + (y * y).sum()).backward()
        return b, y, x.grad, np.array(same)
    _same(run)
    assert [(_t(L, np.ones((2, 2)), True) * 1).t().contiguous().grad_fn.name()
            for L in LIBS] == ["CloneBackward0"] * 2


@pytest.mark.parametrize("method, dtype", [("double", "float64"), ("float", "float32"),
                                           ("long", "int64"), ("int", "int32"),
                                           ("bool", "bool")])
def test_dtype_conversion_to_own_dtype_returns_self(method, dtype):
    for L in LIBS:
        x = L.tensor(np.zeros(2, dtype))
        assert getattr(x, method)() is x
    x = tg.tensor(np.zeros(2))
    assert x.float() is not x and x.float().dtype == np.float32


@pytest.mark.parametrize("lo, hi", [(1.0, 2.0), (2.0, 2.0), (None, 1.0), (2.0, None)])
def test_clip_method_is_clamp(lo, hi):
    def run(L):
        x = _t(L, [0., 1., 1.5, 2., 3.], True)
        y = x.clip(lo, hi)
        (y * y).sum().backward()
        return y, x.grad
    _same(run)


def test_np_clip_keeps_numpy_rule_at_a_bound():
    x = tg.tensor([0., 1., 2.], requires_grad=True)
    np.clip(x, 1., 2.).sum().backward()
    assert x.grad.tolist() == [0.0, 0.5, 0.5]


@pytest.mark.parametrize("name", ["fmax", "fmin"])
def test_fmax_fmin_ties_and_nan(name):
    def run(L):
        x = _t(L, [1., 2., NAN, NAN, 3., 0.], True)
        o = _t(L, [1., 3., 2., NAN, NAN, -1.], True)
        y = getattr(x, name)(o)
        (y * 2).nansum().backward()
        return y, x.grad, o.grad
    _same(run)


@pytest.mark.parametrize("call", [lambda x: x.median(1), lambda x: x.median(0, True),
                                  lambda x: x.median(), lambda x: x[1].median()])
def test_median_propagates_nan(call):
    def run(L):
        x = _t(L, [[3., NAN, 1., NAN, 2.], [2., 1., 5., 4., 0.]], True)
        out = call(x)
        values = out[0] if isinstance(out, tuple) else out
        (values * 3).nansum().backward()
        return out, x.grad
    _same(run)


@pytest.mark.parametrize("data", [[3., 1., 2., 2.], [[0.1, 7., 0.1], [0.1, -2., 5.]], [4.]])
def test_median_of_all_elements_shares_its_gradient_among_ties(data):
    def run(L):
        x = _t(L, data, True)
        m = x.median()
        (m * 3).backward()
        return m, x.grad
    _same(run)


@pytest.mark.parametrize("name", ["cummax", "cummin"])
@pytest.mark.parametrize("lane", [[4., 2., 5., NAN, 9., NAN, 1.], [NAN, 1., 2.],
                                  [1., 2., 2., 1.]])
def test_cummax_cummin_propagate_nan(name, lane):
    def run(L):
        x = _t(L, [lane, lane[::-1]], True)
        out = getattr(x, name)(1)
        (out[0] * _t(L, np.arange(2. * len(lane)).reshape(2, -1))).nansum().backward()
        return out, x.grad
    _same(run)


@pytest.mark.parametrize("call", [
    lambda x: x.var(dim=None), lambda x: x.std(dim=None, keepdim=True),
    lambda x: x.var(True), lambda x: x.std(False), lambda x: x.var(keepdim=False),
    lambda x: x.std(correction=1.5), lambda x: x.var(1, correction=0.5),
    lambda x: x.var(1, False), lambda x: x.std(dim=0, unbiased=False),
])
def test_var_std_torch_spellings(call):
    def run(L):
        x = _t(L, [[1.0, 5.0, 2.0], [7.0, 3.0, 4.0]], True)
        y = call(x)
        y.sum().backward()
        return y, x.grad
    _same(run)


def test_var_std_numpy_spellings_unchanged():
    x = tg.tensor([[1.0, 5.0, 2.0], [7.0, 3.0, 4.0]])
    assert x.var().item() == pytest.approx(np.var(x.data))
    np.testing.assert_allclose(x.var(1).data, np.var(x.data, 1))
    np.testing.assert_allclose(x.std(0, ddof=1).data, np.std(x.data, 0, ddof=1))


@pytest.mark.parametrize("args", [(), (1,), (-1,), (0, 1, 2), (1, 2, 0), (-2, 0, 2)])
def test_diagonal_is_a_writable_view(args):
    def run(L):
        x = _t(L, np.arange(24.).reshape(2, 3, 4) if len(args) == 3 else
               np.arange(12.).reshape(3, 4), True)
        b = x * 1
        d = b.diagonal(*args)
        d.mul_(10)
        b.add_(1)  # seen by d
        (d * d).sum().backward(retain_graph=True)
        g1 = x.grad.clone()
        (b * b).sum().backward()
        return b, d, g1, x.grad
    _same(run)
    assert [(_t(L, np.ones((2, 2)), True) * 1).diagonal().grad_fn.name()
            for L in LIBS] == ["DiagonalBackward0"] * 2


def test_diagonal_second_order():
    def run(L):
        x = _t(L, np.arange(9.).reshape(3, 3), True)
        g, = L.autograd.grad((x.diagonal(1) ** 3).sum(), x, create_graph=True)
        gg, = L.autograd.grad((g * g).sum(), x)
        return g, gg
    _same(run)


# ---- 9. spellings from the breadth sweep ------------------------------------------------------

def test_max_min_with_a_keepdim_keyword_return_values_and_indices():
    x = np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    for name in ("max", "min"):
        v, i = getattr(tg.tensor(x), name)(1, keepdim=True)
        tv, ti = getattr(torch.tensor(x), name)(1, keepdim=True)
        np.testing.assert_array_equal(v.numpy(), tv.numpy())
        np.testing.assert_array_equal(i.numpy(), ti.numpy())
    np.testing.assert_array_equal(tg.tensor(x).max(1).numpy(), [5.0, 7.0])  # NumPy's, documented


def test_reciprocal_of_integers_div_rounding_in_place_and_flip_dims():
    np.testing.assert_allclose(tg.tensor(np.array([1, 2, 4])).reciprocal().numpy(),
                               torch.tensor([1, 2, 4]).reciprocal().numpy())
    for mode in ("floor", "trunc"):
        a, ta = tg.tensor(np.array([7.0, -7.0])), torch.tensor([7.0, -7.0], dtype=torch.float64)
        a.div_(2, rounding_mode=mode)
        ta.div_(2, rounding_mode=mode)
        np.testing.assert_array_equal(a.numpy(), ta.numpy())
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(tg.tensor(x).flip(dims=(0,)).numpy(),
                                  torch.tensor(x).flip(dims=(0,)).numpy())


def test_retained_gradients_follow_in_place_changes_through_views():
    """retain_grad() on a base, then an in-place op through a view: the base's .grad is the
    gradient of its new value (it was the old one's); on a view rebuilt after its base
    changed, or changed in place itself, the retained gradient is kept, as torch's."""
    w = np.array([[1.0, 2.0], [3.0, 4.0]])

    def base_then_view(L):
        x = L.tensor(np.ones((2, 2)), requires_grad=True)
        b = x * 2
        b.retain_grad()
        b[0].mul_(3)
        (b * L.tensor(w)).sum().backward()
        return b.grad

    def view_then_base(L, change_view):
        x = L.tensor(np.ones((2, 4)), requires_grad=True)
        b = x * 2
        v = b[1]
        v.retain_grad()
        (v if change_view else b).mul_(2)
        (v.sum() * 3 + b.sum()).backward()
        return v.grad

    for run in (base_then_view, lambda L: view_then_base(L, False),
                lambda L: view_then_base(L, True)):
        got, want = run(tg), run(torch)
        assert got is not None
        np.testing.assert_allclose(got.numpy(), want.detach().numpy())


# ---- 10. order-0 norms, 0-d tensors along a dim, logcumsumexp at infinities ------------------

def test_order_zero_norm_stays_in_the_graph_with_zero_gradient():
    """torch's vector_norm(x, 0) has a grad_fn and the (undefined, so zero) gradient; a
    converted comparison once cut it off the graph."""
    data = np.array([1.5, 0.0, -2.0, np.nan, np.inf, -0.0])
    t = torch.tensor(data, requires_grad=True)
    want = torch.autograd.grad(torch.linalg.vector_norm(t, 0), t, materialize_grads=True)[0]
    for call in (lambda x: x.norm(0), lambda x: np.linalg.norm(x, 0),
                 lambda x: tg.numpy.linalg.vector_norm(x, ord=0)):
        x = tg.tensor(data, requires_grad=True)
        y = call(x)
        assert y.grad_fn is not None and y.item() == np.linalg.norm(data, 0) == 4.0
        y.backward()
        np.testing.assert_array_equal(x.grad.numpy(), want.numpy())
    g = tg.grad(lambda a: np.linalg.norm(a, 0, axis=1).sum())(data.reshape(2, 3))
    np.testing.assert_array_equal(g, np.zeros((2, 3)))


ZERO_D = {
    "cumsum": lambda x, d: x.cumsum(dim=d), "cumprod": lambda x, d: x.cumprod(dim=d),
    "flip": lambda x, d: x.flip(d), "flip_dims": lambda x, d: x.flip(dims=(d,)),
    "softmax": lambda x, d: x.softmax(d), "log_softmax": lambda x, d: x.log_softmax(dim=d),
    "std": lambda x, d: x.std(dim=d), "var_correction": lambda x, d: x.var(dim=(d,), correction=0),
    "std_unbiased": lambda x, d: x.std(d, True), "var_keepdim": lambda x, d: x.var(d, False, True),
    "norm": lambda x, d: x.norm(dim=d), "norm_1": lambda x, d: x.norm(1, (d,), True),
    "logcumsumexp": lambda x, d: x.logcumsumexp(d), "argmax": lambda x, d: x.argmax(dim=d),
    "argsort": lambda x, d: x.argsort(dim=d), "argsort_desc": lambda x, d: x.argsort(d, True),
    "sum": lambda x, d: x.sum(dim=(d,)), "mean": lambda x, d: x.mean(dim=(d,)),
    "prod": lambda x, d: x.prod(dim=d), "amax": lambda x, d: x.amax((d,)),
    "index_select": lambda x, d: x.index_select(d, (x * 0).long().reshape(1)),
    "gather": lambda x, d: x.gather(d, (x * 0).long()),
    "movedim": lambda x, d: x.movedim(d, -1 - d),
}


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch: std() of one element
@pytest.mark.parametrize("d", [0, -1])
@pytest.mark.parametrize("name", sorted(ZERO_D))
def test_0d_tensors_take_dim_0_and_minus_1_as_torch(name, d):
    def run(L):
        x = _t(L, 1.5, True)
        out = ZERO_D[name](x, d)
        if out.dtype.is_floating_point if L is torch else out.dtype.kind == "f":
            (out * 3).sum().backward()
            return out, x.grad, np.array(out.shape)
        return out, np.array(out.shape)
    _same(run)
    with pytest.raises(IndexError):  # (torch's message, or NumPy's AxisError)
        ZERO_D[name](tg.tensor(1.5), 1)


@pytest.mark.parametrize("lane", [[1., np.inf, 2.], [np.inf, 1., 2.], [1., 2., np.inf],
                                  [-np.inf, 1., 2.], [np.inf, np.inf, 1.], [-np.inf, -np.inf, 0.]])
def test_logcumsumexp_gradient_at_infinities_is_the_limit_of_large_values(lane):
    """At an infinite entry torch's gradient is NaN (exp(inf - inf) in its formula) and JAX's
    cumlogsumexp gives finite entries wrong nonzero gradients (14.6 for the 1 in
    [1, inf, 2]); ours is the limit: torch's gradient with +-1000 for +-inf (one +inf
    takes all of its prefix sums' gradient; tied infinities share it, as logaddexp's ties)."""
    w = np.array([1.0, 2.0, 3.0])

    def run(L, data):
        x = _t(L, data, True)
        y = x.logcumsumexp(0)
        (y * _t(L, w)).sum().backward()
        return y, x.grad
    values, grad = (_np(r) for r in run(tg, lane))
    want_values, torch_grad = (_np(r) for r in run(torch, lane))
    np.testing.assert_array_equal(values, want_values)
    finite = np.isfinite(torch_grad)
    np.testing.assert_allclose(grad[finite], torch_grad[finite])
    limit = _np(run(torch, np.clip(lane, -1000.0, 1000.0))[1])
    np.testing.assert_allclose(grad, limit, atol=1e-12)
    compiled = tg.compile_grad(lambda a: (a.logcumsumexp(0) * w).sum())(np.array(lane))
    np.testing.assert_allclose(compiled[1][0], limit, atol=1e-12)
