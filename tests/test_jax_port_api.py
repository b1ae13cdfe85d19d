"""The JAX names ported code reaches for (`tracegrad.nn` activations, `tracegrad.lax`,
`tracegrad.tree_util` key paths and `Partial`, `tracegrad.tree`, `ravel_pytree`,
`tracegrad.config`): values and gradients against JAX's own (skipped where jax is not
installed), eager, under `jit` and under `grad`, plus checks that need no jax."""
import collections
import dataclasses
import functools
import warnings

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad import lax, nn, tree_util
from tracegrad.flatten_util import ravel_pytree

try:
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
except ImportError:  # the jax-free checks still run
    jax = jnp = None

needs_jax = pytest.mark.skipif(jax is None, reason="jax is not installed")

ELEMENTWISE = [n for n in nn.activations.__all__
               if n not in ("glu", "softmax", "log_softmax", "logsumexp", "standardize",
                            "one_hot")]
# Kinks (0, +-1, +-3, 6), extremes, infinities and NaN.
EDGES = [-1e3, -6, -3, -1, -0.5, 0, 0.5, 1, 3, 6, 7, 1e3, np.inf, -np.inf, np.nan]


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)


def _close(a, b, dtype=np.float64):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, equal_nan=True, **_tol(dtype))


# ---- jax.nn ----------------------------------------------------------------------------

def _jax_refs(cases):
    """{name: (jax_fn, args)} evaluated in one `jax.jit` call (JAX's op-by-op dispatch
    compiles every primitive on first use: one program is much faster); the numpy
    arguments are passed, not folded into the program as constants."""
    keys = list(cases)  # (a list: JAX sorts dict keys, and these mix types)
    fns = [cases[k][0] for k in keys]
    args = [tuple(map(jnp.asarray, cases[k][1])) for k in keys]
    out = jax.jit(lambda a: [f(*x) for f, x in zip(fns, a)])(args)
    return dict(zip(keys, jax.tree_util.tree_map(np.asarray, out)))


def _value_and_grad_of_sum(jf):
    return lambda v: (jf(v), jax.grad(lambda u: jnp.sum(jf(u)))(v))


@needs_jax
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activations_match_jax_values_grads_and_dtype(dtype):
    x = np.array(EDGES, dtype)
    ref = _jax_refs({n: (_value_and_grad_of_sum(getattr(jax.nn, n)), (x,)) for n in ELEMENTWISE})
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ELEMENTWISE:
            f = getattr(nn, name)
            y = f(x)
            g = tg.grad(lambda v, f=f: tnp.sum(f(v)))(x)  # elementwise: f' at each x
            assert y.dtype == ref[name][0].dtype == g.dtype == dtype, name
            _close(y, ref[name][0], dtype)
            _close(g, ref[name][1], dtype)


def test_activation_kinks_and_nan_without_jax():
    d = tg.grad(lambda v: tnp.sum(nn.relu(v)))
    assert float(d(0.0)) == 0.0 and float(d(2.0)) == 1.0
    assert np.isnan(nn.relu(np.array([np.nan, -1.0])))[0]
    assert float(tg.grad(lambda v: tnp.sum(nn.relu6(v)))(6.0)) == 0.0
    assert float(tg.grad(lambda v: tnp.sum(nn.leaky_relu(v)))(0.0)) == 1.0
    assert float(tg.grad(lambda v: tnp.sum(nn.hard_tanh(v)))(1.0)) == 1.0
    assert nn.sigmoid(np.float32([1e3, -1e3])).dtype == np.float32
    np.testing.assert_array_equal(nn.sigmoid(np.array([np.inf, -np.inf])), [1.0, 0.0])
    np.testing.assert_array_equal(nn.softplus(np.array([np.inf, -np.inf, -1e3])), [np.inf, 0, 0])
    np.testing.assert_array_equal(nn.log_sigmoid(np.array([np.inf, -1e3])), [0.0, -1e3])
    assert nn.swish is nn.silu and nn.hard_swish is nn.hard_silu
    assert abs(float(nn.gelu(1.0)) - 0.8411919906082768) < 1e-15  # tanh form by default
    assert abs(float(nn.gelu(1.0, approximate=False)) - 0.8413447460685429) < 1e-15


def test_activations_under_jit_and_eager_tensors():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0, 7.0])
    eager = {n: getattr(nn, n)(x) for n in ELEMENTWISE}
    jitted = tg.jit(lambda v: {n: getattr(nn, n)(v) for n in ELEMENTWISE})(x)
    for n in ELEMENTWISE:
        _close(jitted[n], eager[n])
    loss = lambda v: sum(tnp.sum(getattr(nn, n)(v)) for n in ELEMENTWISE)  # noqa: E731
    g = tg.grad(loss)(x)
    _close(tg.jit(tg.grad(loss))(x), g)
    t = tg.tensor(x, requires_grad=True)
    loss(t).backward()
    _close(t.grad.numpy(), g)


@needs_jax
def test_softmax_family_match_jax():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5)) * 4
    mask = rng.random((3, 5)) > 0.4
    mask[1] = False  # a row with nothing selected
    w = rng.standard_normal((3, 5))
    cases = [
        ("softmax", dict(axis=-1)), ("softmax", dict(axis=0)), ("softmax", dict(where=mask)),
        ("log_softmax", dict(axis=1)), ("log_softmax", dict(axis=0, where=mask.T.T)),
        ("logsumexp", dict(axis=1)), ("logsumexp", dict(axis=None, b=np.abs(w))),
        ("logsumexp", dict(axis=0, keepdims=True)), ("standardize", dict(axis=-1)),
        ("standardize", dict(axis=0, epsilon=1e-3)), ("glu", dict(axis=1 - 1)),
    ]
    xs = {"glu": rng.standard_normal((4, 5))}

    def loss(np_, f, kw):  # the gradient of a sum of sines of the finite outputs
        return lambda v: np_.sum(np_.sin(np_.where(np_.isfinite(y := f(v, **kw)), y, 0.0)))

    def jax_case(name, kw):
        jf = getattr(jax.nn, name)
        jkw = {k: (jnp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        return (lambda v: (jf(v, **jkw), jax.grad(loss(jnp, jf, jkw))(v))), (xs.get(name, x),)

    ref = _jax_refs({i: jax_case(name, kw) for i, (name, kw) in enumerate(cases)})
    for i, (name, kw) in enumerate(cases):
        a, f = xs.get(name, x), getattr(nn, name)
        _close(f(a, **kw), ref[i][0])
        _close(tg.grad(loss(tnp, f, kw))(a), ref[i][1])
    _close(tg.jit(lambda v, m: nn.softmax(v, where=m))(x, mask), ref[2][0])
    assert nn.softmax(np.float32(x)).dtype == np.float32


def test_one_hot_and_glu_without_jax():
    oh = nn.one_hot(np.array([0, 2, 5, -1]), 3)
    assert oh.dtype == np.float64
    np.testing.assert_array_equal(oh, [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    assert nn.one_hot(np.array([[1, 0]]), 2, axis=0, dtype=np.float32).shape == (2, 1, 2)
    assert nn.one_hot(np.array([1]), 2, dtype=np.int32).dtype == np.int32
    with pytest.raises(ValueError, match="even"):
        nn.glu(np.ones(3))
    assert tg.jit(lambda i: nn.one_hot(i, 4))(np.array([3, 1])).tolist() == [[0, 0, 0, 1],
                                                                          [0, 1, 0, 0]]


@needs_jax
def test_one_hot_matches_jax():
    i = np.array([[0, 3], [2, 9]])
    ref = _jax_refs({axis: (lambda v, axis=axis: jax.nn.one_hot(v, 4, axis=axis, dtype=jnp.float64),
                            (i,)) for axis in (-1, 0, 1)})
    for axis in (-1, 0, 1):
        _close(nn.one_hot(i, 4, axis=axis), ref[axis])


# ---- jax.lax ---------------------------------------------------------------------------

BINARY = ["add", "sub", "mul", "div", "rem", "max", "min", "pow", "atan2",
          "eq", "ne", "lt", "le", "gt", "ge"]
UNARY = ["neg", "exp", "expm1", "log", "log1p", "sin", "cos", "tan", "tanh", "abs", "sqrt",
         "rsqrt", "square", "sign", "floor", "ceil", "round", "logistic", "erf", "erfc",
         "lgamma", "digamma"]


def _grad_of_sum(jf):
    return jax.grad(lambda *a: jnp.sum(jf(*a)))


@needs_jax
def test_lax_elementwise_match_jax():
    x = np.array([0.5, 1.5, 2.5, 3.0, 0.25, 7.0, 0.49999999999999994])
    y = np.array([2.0, -1.5, 0.5, 3.0, 4.0, 2.5, 1.0])
    a, b = np.array([-7, 7, -7, 7, 6]), np.array([2, 2, -2, -2, 3])
    p = np.array([0.0, 1.5, -2.0])
    cases = {n: (getattr(jax.lax, n), (x,)) for n in UNARY}
    cases.update({("b", n): (getattr(jax.lax, n), (x, y)) for n in BINARY})
    cases.update({("i", n): (getattr(jax.lax, n), (a, b)) for n in ("div", "rem")})
    cases["round-"] = (jax.lax.round, (-x,))
    cases["even"] = (lambda v: jax.lax.round(v, jax.lax.RoundingMethod.TO_NEAREST_EVEN), (x,))
    for n in (0, 1, 2, 3, -2):
        f = lambda v, n=n: jax.lax.integer_pow(v, n)  # noqa: E731
        cases[("pow", n)] = (lambda v, f=f: (f(v), _grad_of_sum(f)(v)), (p[n < 0:],))
    ref = _jax_refs(cases)
    for n in UNARY:
        _close(getattr(lax, n)(x), ref[n])
    for n in BINARY:
        _close(getattr(lax, n)(x, y), ref[("b", n)])
    for n in ("div", "rem"):  # toward zero, as C's
        assert getattr(lax, n)(a, b).tolist() == ref[("i", n)].tolist()
    _close(lax.round(-x), ref["round-"])
    _close(lax.round(x, lax.RoundingMethod.TO_NEAREST_EVEN), ref["even"])
    for n in (0, 1, 2, 3, -2):
        _close(lax.integer_pow(p[n < 0:], n), ref[("pow", n)][0])
        d = tg.grad(lambda v, n=n: tnp.sum(lax.integer_pow(v, n)))
        _close(d(p[n < 0:]), ref[("pow", n)][1])


@needs_jax
def test_lax_select_clamp_and_shapes_match_jax():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, np.nan])
    o, m = np.arange(3.0), np.arange(6.0).reshape(1, 2, 3)
    clamp = lambda v: jax.lax.clamp(-1.0, v, 1.0)  # noqa: E731
    bcasts = [((2, 3), (1,)), ((3, 2), (0,)), ((3, 4, 2), (0,))]
    cases = {
        "select": (lambda v: jax.lax.select(v > 0, v, -v), (x,)),
        "clamp": (clamp, (x,)), "clamp'": (_grad_of_sum(clamp), (x[:5],)),
        "bcast": (lambda v: jax.lax.broadcast_in_dim(v, (4, 2, 5, 3), (0, 1, 3)), (m,)),
        "reshape": (lambda v: jax.lax.reshape(v, (3, 2), (0, 2, 1)), (m,)),
        "slice": (lambda v: jax.lax.slice(v, (0, 1, 0), (1, 2, 3), (1, 1, 2)), (m,)),
        "index": (lambda v: jax.lax.index_in_dim(v, -1, 2, False), (m,)),
        **{s: (lambda v, s=s, d=d: jax.lax.broadcast_in_dim(v, s, d), (o,)) for s, d in bcasts},
    }
    ref = _jax_refs(cases)
    _close(lax.select(x > 0, x, -x), ref["select"])
    _close(lax.clamp(-1.0, x, 1.0), ref["clamp"])
    _close(tg.grad(lambda v: tnp.sum(lax.clamp(-1.0, v, 1.0)))(x[:5]), ref["clamp'"])  # 0 at bounds
    assert lax.iota(np.int32, 4).tolist() == [0, 1, 2, 3] and lax.iota(np.int32, 4).dtype == np.int32
    for s, d in bcasts:
        _close(lax.broadcast_in_dim(o, s, d), ref[s])
    _close(lax.broadcast_in_dim(m, (4, 2, 5, 3), (0, 1, 3)), ref["bcast"])
    _close(lax.reshape(m, (3, 2), (0, 2, 1)), ref["reshape"])
    _close(lax.slice(m, (0, 1, 0), (1, 2, 3), (1, 1, 2)), ref["slice"])
    _close(lax.index_in_dim(m, -1, 2, False), ref["index"])


def _dynamic_cases(lx, np_, x, u, w):
    """{key: fn} of dynamic slicing calls, written against a lax-like module `lx` and a
    numpy-like `np_`: the same code builds tracegrad's and JAX's."""
    cases = {}
    for s in [(0, 0), (3, 4), (-1, 1), (-9, 7), (2, -2)]:
        cases[("slice", s)] = lambda v, s=s: lx.dynamic_slice(v, s, (2, 3))
        cases[("update", s)] = lambda v, s=s: lx.dynamic_update_slice(v, u, s)
        cases[("slice'", s)] = lambda v, s=s: np_.sum(lx.dynamic_slice(v, s, (2, 3)) * w)
        cases[("upd'", s)] = lambda v, s=s: np_.sum(lx.dynamic_update_slice(x, v, s) * x)
        cases[("upd'x", s)] = lambda v, s=s: np_.sum(lx.dynamic_update_slice(v, u * 2, s) * x)
    for i in (-1, 0, 3, 7):
        cases[("index", i)] = lambda v, i=i: lx.dynamic_index_in_dim(v, i, 1, keepdims=False)
        cases[("in_dim", i)] = lambda v, i=i: lx.dynamic_slice_in_dim(v, i, 2, axis=0)
        cases[("upd_in_dim", i)] = lambda v, i=i: lx.dynamic_update_slice_in_dim(v, u[:1], i, axis=0)
        cases[("upd_index", i)] = lambda v, i=i: lx.dynamic_update_index_in_dim(v, x[:, 1] + 100, i, 1)
    return cases


@needs_jax
def test_dynamic_slices_clamp_like_jax_eager_jit_and_grad():
    x = np.arange(20.0).reshape(4, 5)
    u, w = -np.ones((2, 3)), np.arange(6.0).reshape(2, 3)
    ours = _dynamic_cases(lax, tnp, x, u, w)
    theirs = _dynamic_cases(jax.lax, jnp, jnp.asarray(x), jnp.asarray(u), jnp.asarray(w))
    ref = _jax_refs({k: ((jax.grad(f) if "'" in k[0] else f), (u if k[0] == "upd'" else x,))
                     for k, f in theirs.items()})
    for k, f in ours.items():
        arg = u if k[0] == "upd'" else x
        _close((tg.grad(f) if "'" in k[0] else f)(arg), ref[k])
    jitted = tg.jit(lambda v, i, j: lax.dynamic_slice(v, (i, j), (2, 3)))  # traced starts
    for s in [(0, 0), (3, 4), (-1, 1), (-9, 7), (2, -2)]:
        _close(jitted(x, np.array(s[0]), np.array(s[1])), ref[("slice", s)])
    _close(lax.dynamic_slice(x, np.array([1, 1]), (2, 2)), x[1:3, 1:3])  # a start array
    rows = tg.fori_loop(0, 4, lambda i, c: c + lax.dynamic_index_in_dim(x, i, 0, False), np.zeros(5))
    _close(rows, x.sum(0))


DOT_CASES = [((3, 4), (4, 5), (((1,), (0,)), ((), ()))),
             ((2, 3, 4), (2, 4, 5), (((2,), (1,)), ((0,), (0,)))),
             ((2, 3, 4), (4, 2, 6), (((2,), (0,)), ((0,), (1,)))),
             ((5, 2, 3), (3, 5, 2), (((1, 2), (2, 0)), ((), ()))),
             ((3,), (3,), (((0,), (0,)), ((), ())))]


@needs_jax
def test_dot_general_matches_jax():
    rng = np.random.default_rng(1)
    args = [(rng.standard_normal(ls), rng.standard_normal(rs)) for ls, rs, _ in DOT_CASES]

    def case(dn):
        f = lambda p, q: jax.lax.dot_general(p, q, dn)  # noqa: E731
        loss = lambda p, q: jnp.sum(jnp.sin(f(p, q)))  # noqa: E731
        return lambda p, q: (f(p, q), jax.grad(loss, argnums=(0, 1))(p, q))

    ref = _jax_refs({i: (case(dn), a) for i, ((_, _, dn), a) in enumerate(zip(DOT_CASES, args))})
    for i, ((_, _, dn), (a, b)) in enumerate(zip(DOT_CASES, args)):
        _close(lax.dot_general(a, b, dn), ref[i][0])
        _close(tg.jit(lambda p, q, dn=dn: lax.dot_general(p, q, dn))(a, b), ref[i][0])
        loss = lambda p, q, dn=dn: tnp.sum(tnp.sin(lax.dot_general(p, q, dn)))  # noqa: E731
        g = tg.grad(loss, argnums=(0, 1))(a, b)
        _close(g[0], ref[i][1][0])
        _close(g[1], ref[i][1][1])


def _affine(a, b):
    """The composition of elementwise affine maps (a, b): x -> a x + b, an associative op."""
    return a[0] * b[0], b[0] * a[1] + b[1]


def _scans(lx, np_, reverse):
    """associative_scan cases (fn of the arrays p, q), for tracegrad's lax or JAX's."""
    return {
        "add": lambda p, q: lx.associative_scan(lx.add, p, reverse=reverse),
        "max": lambda p, q: lx.associative_scan(lx.max, p, reverse=reverse),
        "mul1": lambda p, q: lx.associative_scan(lx.mul, p.T, reverse=reverse, axis=1),
        "affine": lambda p, q: lx.associative_scan(_affine, (p, q), reverse=reverse),
        "grad": lambda p, q: np_.sum(np_.sin(lx.associative_scan(_affine, (p, q),
                                                                 reverse=reverse)[1])),
    }


@needs_jax
def test_associative_scan_matches_jax():
    rng = np.random.default_rng(3)
    data = {n: (rng.standard_normal((n, 3)), rng.standard_normal((n, 3))) for n in (1, 2, 5, 8)}
    cases = {}
    for n, pq in data.items():
        for reverse in (False, True):
            for k, f in _scans(jax.lax, jnp, reverse).items():
                cases[(n, reverse, k)] = ((jax.grad(f, argnums=(0, 1)) if k == "grad" else f), pq)
    ref = _jax_refs(cases)
    for n, pq in data.items():
        for reverse in (False, True):
            for k, f in _scans(lax, tnp, reverse).items():
                d = tg.grad(f, argnums=(0, 1))
                got = (tg.jit(d) if n == 8 else d)(*pq) if k == "grad" else f(*pq)
                for a, b in zip(tree_util.tree_leaves(got),
                                tree_util.tree_leaves(ref[(n, reverse, k)])):
                    _close(a, b)


@needs_jax
def test_cumulative_top_k_sort_reduce_match_jax():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    y = np.array([[1.0, np.nan, 3.0, 3.0, -1.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    cum = [(n, axis, rev) for n in ("cumsum", "cumprod", "cummax", "cummin")
           for axis, rev in [(0, False), (1, True), (-1, False)]]
    reducers = [("add", 0.0), ("max", -np.inf), ("min", np.inf), ("mul", 1.0)]
    cases = {}
    for n, axis, rev in cum:  # (JAX takes no negative axis here; tracegrad does)
        f = lambda v, n=n, axis=axis, rev=rev: getattr(jax.lax, n)(v, axis % 2, rev)  # noqa: E731
        cases[(n, axis, rev)] = (lambda v, f=f: (f(v), jax.grad(lambda u: jnp.sum(f(u) * w))(v)), (x,))
    top2 = lambda v: jnp.sum(jax.lax.top_k(v, 2)[0] * jnp.array([1.0, 2.0]))  # noqa: E731
    cases["top_k"] = (lambda v: jax.lax.top_k(v, 3), (y,))
    cases["top_k'"] = (jax.grad(top2), (x,))
    cases["sort"] = (lambda v: jax.lax.sort(v, 0), (x,))
    cases["sort2"] = (lambda v, u: jax.lax.sort((v, u), num_keys=1), (x[0], w[0]))
    for name, init in reducers:
        for dims in [(0,), (1,), (0, 1)]:
            c = getattr(jax.lax, name)
            cases[(name, dims)] = (lambda v, c=c, i=init, d=dims: jax.lax.reduce(v, i, c, d), (x,))
    ref = _jax_refs(cases)
    for n, axis, rev in cum:
        f = getattr(lax, n)
        _close(f(x, axis, rev), ref[(n, axis, rev)][0])
        loss = lambda v, f=f, axis=axis, rev=rev: tnp.sum(f(v, axis=axis, reverse=rev) * w)  # noqa: E731
        _close(tg.grad(loss)(x), ref[(n, axis, rev)][1])
    v, i = lax.top_k(y, 3)
    _close(v, ref["top_k"][0])
    assert i.dtype == ref["top_k"][1].dtype and i.tolist() == ref["top_k"][1].tolist()
    _close(tg.jit(tg.grad(lambda v: tnp.sum(lax.top_k(v, 2)[0] * np.array([1.0, 2.0]))))(x),
           ref["top_k'"])
    _close(lax.sort(x, 0), ref["sort"])
    _close(lax.sort((x[0], w[0]))[1], ref["sort2"][1])
    for name, init in reducers:
        for dims in [(0,), (1,), (0, 1)]:
            _close(lax.reduce(x, init, getattr(lax, name), dims), ref[(name, dims)])

    def argmax_op(a, b):  # any associative computation, on a pytree of operands
        take = (a[0] > b[0]) | ((a[0] == b[0]) & (a[1] < b[1]))
        return tnp.where(take, a[0], b[0]), tnp.where(take, a[1], b[1])
    idx = np.broadcast_to(np.arange(6), x.shape)
    m, am = lax.reduce((x, idx), (-np.inf, 0), argmax_op, (1,))
    _close(m, x.max(1))
    assert am.tolist() == x.argmax(1).tolist()
    _close(lax.reduce(x, 0.0, lambda a, b: a + b, (1,)), x.sum(1))
    _close(tg.grad(lambda v: tnp.sum(lax.reduce(v, 0.0, lambda a, b: a + b, (0,))))(x),
           np.ones_like(x))


def test_lax_map_and_control_flow_without_jax():
    xs = {"a": np.arange(5.0), "b": np.ones((5, 2))}
    f = lambda d: d["a"] * tnp.sum(d["b"])  # noqa: E731
    want = np.arange(5.0) * 2
    _close(lax.map(f, xs), want)
    _close(lax.map(f, xs, batch_size=2), want)
    _close(tg.jit(lambda d: lax.map(f, d))(xs), want)
    g = tg.grad(lambda a: tnp.sum(lax.map(lambda v: tnp.sin(v) * v, a)))(np.arange(3.0))
    _close(g, np.cos(np.arange(3.0)) * np.arange(3.0) + np.sin(np.arange(3.0)))
    assert lax.scan is tg.scan and lax.cond is tg.cond and lax.fori_loop is tg.fori_loop
    assert lax.stop_gradient is tg.stop_gradient
    assert float(tg.grad(lambda v: lax.stop_gradient(v) * v)(3.0)) == 3.0
    assert lax.dynamic_slice(np.arange(5.0), (4,), (2,)).tolist() == [3.0, 4.0]


# ---- tree_util, tree -------------------------------------------------------------------

Point = collections.namedtuple("Point", "x y")


@dataclasses.dataclass
class Layer:
    w: np.ndarray
    b: np.ndarray
    name: str = dataclasses.field(default="dense", metadata={"static": True})


tree_util.register_dataclass(Layer)


@tree_util.register_static
class Mode(str):
    pass


@needs_jax
def test_key_paths_match_jax():
    tree = {"a": [1, (2, Point(3, 4))], "b": None, "c": {"d": 5, "e": [6]}}
    ours = [(tree_util.keystr(p), x) for p, x in tree_util.tree_leaves_with_path(tree)]
    theirs = [(jax.tree_util.keystr(p), x) for p, x in jax.tree_util.tree_leaves_with_path(tree)]
    assert ours == theirs
    simple = [tree_util.keystr(p, simple=True, separator="/")
              for p, _ in tree_util.tree_flatten_with_path(tree)[0]]
    assert simple == [jax.tree_util.keystr(p, simple=True, separator="/")
                      for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    for ours_key, jax_key in [(tree_util.DictKey("a"), jax.tree_util.DictKey("a")),
                              (tree_util.SequenceKey(2), jax.tree_util.SequenceKey(2)),
                              (tree_util.GetAttrKey("w"), jax.tree_util.GetAttrKey("w")),
                              (tree_util.FlattenedIndexKey(1), jax.tree_util.FlattenedIndexKey(1))]:
        assert (str(ours_key), repr(ours_key)) == (str(jax_key), repr(jax_key))
    f = lambda p, x, y: f"{jax.tree_util.keystr(p)}={x + y}"  # noqa: E731
    g = lambda p, x, y: f"{tree_util.keystr(p)}={x + y}"  # noqa: E731
    assert (tree_util.tree_map_with_path(g, tree, tree)
            == jax.tree_util.tree_map_with_path(f, tree, tree))
    part = tree_util.Partial(np.add, 1.0, k=2.0)
    jpart = jax.tree_util.Partial(np.add, 1.0, k=2.0)
    assert ([tree_util.keystr(p) for p, _ in tree_util.tree_leaves_with_path(part)]
            == [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(jpart)])


def test_tree_util_additions_without_jax():
    layer = Layer(np.ones(2), np.zeros(1), "out")
    paths = [tree_util.keystr(p) for p, _ in tree_util.tree_leaves_with_path({"l": layer})]
    assert paths == ["['l'].w", "['l'].b"]
    doubled = tree_util.tree_map(lambda v: v * 2, layer)
    assert isinstance(doubled, Layer) and doubled.name == "out" and doubled.w.tolist() == [2, 2]
    g = tg.grad(lambda l: tnp.sum(l.w ** 2) + tnp.sum(l.b))(layer)
    assert isinstance(g, Layer) and g.w.tolist() == [2.0, 2.0] and g.name == "out"
    out = tg.jit(lambda l: l.w * (2.0 if l.name == "out" else 3.0))(layer)
    assert out.tolist() == [2.0, 2.0]
    # register_static: part of the structure, so jit specializes on it (no static_argnums)
    f = tg.jit(lambda x, m: x + 1 if m == "add" else x - 1)
    assert float(f(1.0, Mode("add"))) == 2.0 and float(f(1.0, Mode("sub"))) == 0.0
    assert tree_util.tree_leaves([Mode("x"), 1]) == [1]
    # tree_all, tree_transpose, is_leaf with paths
    assert tree_util.tree_all({"a": [True, 1]}) and not tree_util.tree_all([1, 0])
    assert tree_util.tree_all([]) is True
    outer, inner = tree_util.tree_structure([0, 0, 0]), tree_util.tree_structure({"p": 0, "q": 0})
    t = tree_util.tree_transpose(outer, inner, [{"p": i, "q": -i} for i in range(3)])
    assert t == {"p": [0, 1, 2], "q": [0, -1, -2]}
    assert tree_util.tree_transpose(outer, None, [(1, 2)] * 3) == ([1, 1, 1], [2, 2, 2])
    pairs = tree_util.tree_leaves_with_path(
        {"a": [1, 2], "b": [3]}, is_leaf=lambda p, x: p == (tree_util.DictKey("a"),),
        is_leaf_takes_path=True)
    assert [x for _, x in pairs] == [[1, 2], 3]
    assert tree_util.tree_reduce(lambda a, b: a + b, [1, (2, 3)], 10) == 16
    assert tree_util.tree_structure([[1], 2], is_leaf=lambda x: isinstance(x, list)).num_leaves == 1


def test_partial_is_a_pytree_through_jit_and_grad():
    w = np.array([1.0, 2.0])
    p = tree_util.Partial(lambda w, x, scale=1.0: scale * tnp.sum(w * x), w, scale=3.0)
    assert [type(v) for v in tree_util.tree_leaves(p)] == [np.ndarray, float]
    assert float(p(np.ones(2))) == 9.0
    doubled = tree_util.tree_map(lambda v: v * 2, p)
    assert isinstance(doubled, tree_util.Partial) and float(doubled(np.ones(2))) == 36.0
    run = tg.jit(lambda f, x: f(x))
    assert float(run(p, np.ones(2))) == 9.0
    assert float(run(tree_util.Partial(p.func, w * 0, scale=3.0), np.ones(2))) == 0.0
    g = tg.grad(lambda f: f(np.array([1.0, -1.0])))(p)
    assert isinstance(g, tree_util.Partial)
    assert g.args[0].tolist() == [3.0, -3.0] and float(g.keywords["scale"]) == -1.0
    # a partial as the function stays whole: its arguments are not leaves (JAX's)
    outer = tree_util.Partial(tree_util.Partial(np.multiply, 2.0), 3.0)
    assert tree_util.tree_leaves(outer) == [3.0] and float(outer()) == 6.0
    assert outer.func.args == (2.0,)
    kept = tree_util.Partial(functools.partial(np.multiply, 5.0))
    assert tree_util.tree_leaves(kept) == [] and float(kept(2.0)) == 10.0


def test_tree_namespace():
    t = {"a": 1, "b": (2, [3])}
    assert tg.tree.map(lambda x: x + 1, t) == {"a": 2, "b": (3, [4])}
    assert tg.tree.leaves(t) == [1, 2, 3] and tg.tree.reduce(lambda a, b: a * b, t) == 6
    leaves, treedef = tg.tree.flatten(t)
    assert tg.tree.unflatten(treedef, leaves) == t and tg.tree.structure(t) == treedef
    assert tg.tree.all(t) and tg.tree.reduce(lambda a, b: a + b, [], 0) == 0
    assert [tree_util.keystr(p) for p, _ in tg.tree.leaves_with_path(t)][1] == "['b'][0]"
    assert tg.tree.map_with_path(lambda p, x: len(p), t) == {"a": 1, "b": (2, [3])}


# ---- flatten_util, config --------------------------------------------------------------

@needs_jax
def test_ravel_pytree_matches_jax():
    from jax.flatten_util import ravel_pytree as jravel
    # (dicts with sorted keys: JAX sorts them, tracegrad keeps their insertion order)
    trees = [{"b": np.ones(2), "w": np.arange(6.0).reshape(2, 3)},
             [np.float32([1, 2]), np.array(3.0)],
             (np.arange(3), {"k": np.int32(4)}),
             {"a": np.ones((2, 0)), "b": (np.float32(1.5),)}]
    for tree in trees:
        flat, unravel = ravel_pytree(tree)
        jflat, junravel = jravel(jax.tree_util.tree_map(jnp.asarray, tree))
        assert flat.dtype == jflat.dtype
        _close(flat, jflat)
        back, jback = unravel(flat + 1), junravel(jflat + 1)
        for a, b in zip(tree_util.tree_leaves(back), jax.tree_util.tree_leaves(jback)):
            assert a.dtype == b.dtype and a.shape == b.shape
            _close(a, b)


def test_ravel_pytree_under_jit_and_grad():
    params = {"w": np.arange(6.0).reshape(2, 3), "b": np.float32([1.0, -1.0])}
    flat, unravel = ravel_pytree(params)
    assert flat.dtype == np.float64 and flat.shape == (8,)
    back = unravel(flat)
    assert back["b"].dtype == np.float32 and back["w"].shape == (2, 3)
    loss = lambda p: tnp.sum(p["w"] ** 2) + tnp.sum(tnp.sin(p["b"]))  # noqa: E731
    g_flat = tg.grad(lambda v: loss(unravel(v)))(flat)
    _close(g_flat, np.concatenate([2 * params["w"].ravel(), np.cos(params["b"].astype(np.float64))]),
           np.float32)
    _close(tg.jit(tg.grad(lambda v: loss(unravel(v))))(flat), g_flat)
    _close(tg.jit(lambda p: ravel_pytree(p)[0])(params), flat)
    g_tree = tg.grad(lambda p: tnp.sum(ravel_pytree(p)[0] ** 2))(params)
    _close(g_tree["w"], 2 * params["w"])
    empty, unravel_empty = ravel_pytree({})
    assert empty.shape == (0,) and unravel_empty(empty) == {}
    with pytest.raises(ValueError, match="8 elements"):
        unravel(np.zeros(3))


def test_config():
    tg.config.update("jax_enable_x64", True)
    assert tg.config.jax_enable_x64 is True and tg.config.read("jax_enable_x64") is True
    with pytest.raises(ValueError, match="float64"):
        tg.config.update("jax_enable_x64", False)
    assert tg.config.jax_enable_x64 is True
    tg.config.update("jax_platform_name", "cpu")
    tg.config.update("jax_platforms", "cpu")
    with pytest.raises(ValueError, match="CPU only"):
        tg.config.update("jax_platform_name", "gpu")
    with pytest.raises(AttributeError, match="Unrecognized config option"):
        tg.config.update("jax_no_such_option", 1)
