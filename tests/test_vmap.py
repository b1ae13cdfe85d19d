"""vmap, jacfwd, jacrev, hessian: against per-example numpy loops, finite differences and
JAX (when installed); batched programs compile as one fused program."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.ir import PRIMITIVES
from tracegrad.passes.batching import uses_fallback

RNG = np.random.default_rng(0)
HAS_JAX = importlib.util.find_spec("jax") is not None


def _loop(f, in_axes, args, out_axis=0):
    """The reference: f applied to each example, stacked along `out_axis`."""
    n = next(np.shape(a)[ax] for a, ax in zip(args, in_axes) if ax is not None)
    outs = [f(*[np.take(a, i, ax) if ax is not None else a for a, ax in zip(args, in_axes)])
            for i in range(n)]
    return np.stack([np.asarray(o) for o in outs], out_axis)


def _mlp(w, x):
    return np.sum(np.tanh(x @ w[:3] + w[3]) ** 2)


FUNCTIONS = [
    ("elementwise", lambda x, y: np.exp(-x) * y + np.maximum(x, 0.3), [(4, 3), (4, 3)], (0, 0)),
    ("scalar_broadcast", lambda x, y: x * 2.0 + np.sum(y), [(5,), (5, 2)], (0, 0)),
    ("unbatched_operand", lambda x, y: np.where(x > 0, x, y), [(3, 4), (4,)], (0, None)),
    ("axis_1", lambda x, y: x @ y, [(3, 6, 2), (2, 4)], (1, None)),
    ("matmul_both", lambda x, y: x @ y, [(5, 3, 2), (5, 2, 4)], (0, 0)),
    ("left_unbatched", lambda x, y: x @ y, [(3, 2), (6, 2, 4)], (None, 0)),
    ("reductions", lambda x: np.max(x, axis=0) + np.mean(x) - np.min(x, axis=0), [(4, 3, 5)], (-1,)),
    ("structure", lambda x: np.concatenate([x.T, x[::-1, 1:]], axis=1).reshape(-1)[::2],
     [(6, 3, 3)], (0,)),
    ("pad_and_stack", lambda x, y: np.stack([np.pad(x, 1), np.pad(y, (2, 0))[:4]]),
     [(3, 2), (3, 2)], (0, 0)),
    ("mlp", _mlp, [(4,), (5, 2, 3)], (None, 0)),
    ("cumsum_sort", lambda x: np.sort(np.cumsum(x, axis=-1), axis=0), [(3, 4, 5)], (2,)),
    ("linalg", lambda a, b: np.linalg.solve(a @ a.T + 3 * np.eye(3), b), [(4, 3, 3), (3,)], (0, None)),
]


@pytest.mark.parametrize("name, f, shapes, in_axes", FUNCTIONS, ids=[c[0] for c in FUNCTIONS])
def test_vmap_matches_a_loop_eager_and_compiled(name, f, shapes, in_axes):
    args = [RNG.standard_normal(s) for s in shapes]
    want = _loop(f, in_axes, args)
    for got in (tg.vmap(f, in_axes)(*args), tg.jit(tg.vmap(f, in_axes))(*args)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_out_axes_pytrees_and_unbatched_outputs():
    f = tg.vmap(lambda p, x: {"a": p["w"] * x, "b": p["w"]}, in_axes=({"w": None}, 1),
                out_axes={"a": 1, "b": 0})
    x = RNG.standard_normal((3, 4))
    out = f({"w": np.float64(2.0)}, x)
    np.testing.assert_allclose(out["a"], 2 * x)
    assert out["b"].shape == (4,) and np.all(out["b"] == 2.0)


def test_nested_vmap_is_an_outer_product():
    f = tg.vmap(tg.vmap(lambda a, b: a * b, in_axes=(None, 0)), in_axes=(0, None))
    a, b = np.arange(3.0), np.arange(4.0)
    np.testing.assert_allclose(f(a, b), np.outer(a, b))


def _loss(w, x, y):
    return (np.tanh(x @ w[:3] + w[3]) - y) ** 2


def test_per_example_gradients_compile_to_one_program_without_a_loop():
    per_example = tg.jit(tg.vmap(tg.grad(_loss), in_axes=(None, 0, 0)))
    w = RNG.standard_normal(4)
    kernels = []
    for n in (4, 64):
        x, y = RNG.standard_normal((n, 3)), RNG.standard_normal(n)
        want = np.stack([tg.grad(_loss)(w, x[i], y[i]) for i in range(n)])
        np.testing.assert_allclose(per_example(w, x, y), want, rtol=1e-12, atol=1e-14)
        kernels.append(per_example.ir("kernels").count("\nkernel") +
                       per_example.ir("kernels").count("\ndot"))
    assert kernels[0] == kernels[1]  # the same program whatever the batch size: no unrolling


def test_grad_of_vmap_and_vmap_on_tensors():
    w = RNG.standard_normal(4)
    x = RNG.standard_normal((6, 3))
    g = tg.grad(lambda w: np.sum(tg.vmap(_mlp, in_axes=(None, 0))(w, x)))(w)
    fd = [(np.sum(_mlp(w + e, x)) - np.sum(_mlp(w - e, x))) / 2e-6 for e in np.eye(4) * 1e-6]
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    wt = tg.tensor(w, requires_grad=True)
    tg.vmap(_mlp, in_axes=(None, 0))(wt, x).sum().backward()
    np.testing.assert_allclose(wt.grad.numpy(), g, rtol=1e-12)


def test_fallback_primitives_are_batched_exactly():
    def f(x, i):
        y = tg.scan(lambda c, t: (c * 0.5 + t, c), x[0], x)[1]
        return tg.cond(np.sum(y) > 0, lambda v: v * 2.0, lambda v: -v, y) + x[i]
    x = RNG.standard_normal((5, 3, 2))
    want = _loop(lambda a: f(a, 1), [0], [x])
    np.testing.assert_allclose(tg.vmap(lambda a: f(a, 1))(x), want, rtol=1e-12)


def test_fallback_list_is_complete():
    """Every primitive is batched by a rule, or deliberately one example at a time."""
    expected = {"cond", "while", "while_vjp", "scan", "custom_call", "gather", "scatter",
                "scatter_add", "dynamic_slice", "dynamic_update_slice", "nonzero", "searchsorted"}
    assert {n for n, p in PRIMITIVES.items() if uses_fallback(p)} == expected


def test_errors():
    with pytest.raises(ValueError, match="inconsistent sizes"):
        tg.vmap(lambda a, b: a + b)(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="one entry per positional argument"):
        tg.vmap(lambda a, b: a + b, in_axes=(0,))(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="out_axes is None"):
        tg.vmap(lambda a: a * 2, out_axes=None)(np.ones(3))
    with pytest.raises(ValueError, match="out of range"):
        tg.vmap(lambda a: a, in_axes=2)(np.ones((2, 2)))
    with pytest.raises(Exception, match="traced|concrete|Concretization"):
        tg.vmap(lambda a: a if a > 0 else -a)(np.ones(3))


# ---- Jacobians ----------------------------------------------------------------------------

def _f(x, y):
    return {"u": np.sin(x) * y[0], "v": np.sum(x * x) * y}


X, Y = np.array([0.3, -0.5, 0.9]), np.array([1.5, -0.7])


def _fd_jacobian(f, args, argnum, leaf, eps=1e-6):
    x = args[argnum]
    cols = []
    for e in np.eye(x.size).reshape((x.size,) + x.shape) * eps:
        plus = list(args)
        minus = list(args)
        plus[argnum], minus[argnum] = x + e, x - e
        cols.append((np.asarray(f(*plus)[leaf]) - np.asarray(f(*minus)[leaf])) / (2 * eps))
    return np.moveaxis(np.array(cols), 0, -1).reshape(np.shape(f(*args)[leaf]) + x.shape)


@pytest.mark.parametrize("jac", [tg.jacfwd, tg.jacrev], ids=["jacfwd", "jacrev"])
def test_jacobians_of_pytree_outputs_and_several_argnums(jac):
    j = jac(_f, argnums=(0, 1))(X, Y)
    for leaf in ("u", "v"):
        for k in (0, 1):
            np.testing.assert_allclose(j[leaf][k], _fd_jacobian(_f, [X, Y], k, leaf),
                                       rtol=1e-6, atol=1e-8)
    single = jac(_f)(X, Y)
    np.testing.assert_allclose(single["u"], j["u"][0], rtol=1e-12)


def test_hessian_and_compiled_jacobians():
    f = lambda x: np.sum(np.sin(x) * x[0]) + np.prod(x[:2])  # noqa: E731
    h = tg.hessian(f)(X)
    g = tg.grad(f)
    fd = np.array([(g(X + e) - g(X - e)) / 2e-6 for e in np.eye(3) * 1e-6])
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(tg.jit(tg.hessian(f))(X), h, rtol=1e-12)
    np.testing.assert_allclose(h, h.T, rtol=1e-12)


@pytest.mark.skipif(not HAS_JAX, reason="jax not installed")
def test_against_jax():
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    jf = lambda x, y: {"u": jnp.sin(x) * y[0], "v": jnp.sum(x * x) * y}  # noqa: E731
    for ours, theirs in ((tg.jacfwd, jax.jacfwd), (tg.jacrev, jax.jacrev)):
        a, b = ours(_f, argnums=(0, 1))(X, Y), theirs(jf, argnums=(0, 1))(X, Y)
        for leaf in ("u", "v"):
            for k in (0, 1):
                np.testing.assert_allclose(a[leaf][k], np.asarray(b[leaf][k]), rtol=1e-12)
    x = RNG.standard_normal((4, 3))
    ours = tg.vmap(lambda a, w: np.tanh(a @ w), in_axes=(0, None))(x, np.ones((3, 2)))
    theirs = jax.vmap(lambda a, w: jnp.tanh(a @ w), in_axes=(0, None))(x, jnp.ones((3, 2)))
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-12)


def _fd_jacobian_of_one(f, x, eps=1e-6):
    """Central differences of an array function of one array, out.shape + x.shape."""
    cols = []
    for i in range(x.size):
        d = np.zeros(x.size)
        d[i] = eps
        d = d.reshape(x.shape)
        cols.append((np.asarray(f(x + d)) - np.asarray(f(x - d))) / (2 * eps))
    return np.moveaxis(np.array(cols), 0, -1).reshape(np.shape(f(x)) + x.shape)


@pytest.mark.parametrize("jac", [tg.jacrev, tg.jacfwd])
def test_jacobians_of_pytree_arguments_have_their_structure(jac):
    """As jax.jacrev/jacfwd: per output leaf, the argument's structure of blocks
    out.shape + leaf.shape (a tuple over a tuple argnums)."""
    w, b = np.array([0.1, 0.2, 0.3]), np.array([[1.0, 2, 3], [4, 5, 6]])

    def f(p, t):
        return {"u": np.sin(p["w"] * p["b"]), "v": np.sum(t[0] * t[1])}
    out = jac(f, argnums=(0, 1))({"w": w, "b": b}, (w, 2 * w))
    assert set(out) == {"u", "v"}
    (du_p, du_t), (dv_p, dv_t) = out["u"], out["v"]
    assert du_p["w"].shape == (2, 3, 3) and du_p["b"].shape == (2, 3, 2, 3)
    assert dv_t[0].shape == (3,) and isinstance(dv_t, tuple) and len(dv_t) == 2
    np.testing.assert_allclose(du_p["w"], _fd_jacobian_of_one(lambda v: np.sin(v * b), w), atol=1e-8)
    np.testing.assert_allclose(du_p["b"], _fd_jacobian_of_one(lambda v: np.sin(w * v), b), atol=1e-8)
    np.testing.assert_allclose(du_t[1], 0.0)
    np.testing.assert_allclose(dv_t[0], 2 * w)
    np.testing.assert_allclose(dv_t[1], w)
    np.testing.assert_allclose(dv_p["b"], 0.0)


def test_hessian_of_a_dict_argument_is_a_dict_of_dicts():
    p = {"a": np.array([0.3, -0.2]), "s": np.array(0.7)}
    h = tg.hessian(lambda q: np.sum(np.sin(q["a"] * q["s"])))(p)
    a, s = p["a"], p["s"]
    np.testing.assert_allclose(h["a"]["a"], np.diag(-np.sin(a * s) * s * s), atol=1e-12)
    np.testing.assert_allclose(h["s"]["s"], np.sum(-np.sin(a * s) * a * a), atol=1e-12)
    np.testing.assert_allclose(h["a"]["s"], np.cos(a * s) - np.sin(a * s) * a * s, atol=1e-12)
    np.testing.assert_allclose(h["s"]["a"], h["a"]["s"], atol=1e-12)


@pytest.mark.parametrize("jac", [tg.jacrev, tg.jacfwd])
def test_jacobians_with_aux(jac):
    f = lambda x: (np.sin(x) * x[0], {"s": np.sum(x)})  # noqa: E731
    x = np.array([0.5, -1.0])
    j, aux = jac(f, has_aux=True)(x)
    want = np.diag(np.cos(x) * x[0]) + np.outer(np.sin(x), [1.0, 0.0])
    np.testing.assert_allclose(j, want, rtol=1e-14)
    assert float(aux["s"]) == -0.5


def test_vjp_and_jvp_with_aux():
    f = lambda x: (np.sin(x) * 2, (np.sum(x > 0), np.cos(x)))  # noqa: E731
    x = np.array([0.5, -1.0])
    out, pullback, (n, c) = tg.vjp(f, x, has_aux=True)
    np.testing.assert_allclose(pullback(np.ones(2))[0], 2 * np.cos(x))
    assert int(n) == 1 and np.allclose(c, np.cos(x)) and np.allclose(out, 2 * np.sin(x))
    out, tangent, (n, _) = tg.jvp(f, (x,), (np.ones(2),), has_aux=True)
    np.testing.assert_allclose(tangent, 2 * np.cos(x))
    assert int(n) == 1


def test_dict_axes_are_matched_by_key_and_keywords_map_over_axis_0():
    """As jax.vmap: a dict in_axes/out_axes pairs its entries with the argument's keys
    whatever their order; keyword arguments are mapped over their axis 0."""
    x, y = np.arange(6.0).reshape(3, 2), np.array([10.0, 20.0])
    out = tg.vmap(lambda d: d["a"] * d["b"], in_axes=({"a": 0, "b": None},))({"b": y, "a": x})
    np.testing.assert_array_equal(out, x * y)
    out = tg.vmap(lambda v: {"b": v, "a": v.sum()}, out_axes={"a": 0, "b": 1})(x)
    assert out["a"].shape == (3,) and out["b"].shape == (2, 3)
    np.testing.assert_array_equal(tg.vmap(lambda u, w: u * w)(x, w=x), x * x)


def test_a_batch_of_no_examples():
    x0, i0 = np.zeros((0, 4)), np.zeros((0,), np.int64)
    assert tg.vmap(lambda v, i: v[i])(x0, i0).shape == (0,)
    out = tg.vmap(lambda v: tg.cond(v.sum() > 0, lambda u: u, lambda u: -u, v))(x0)
    assert out.shape == (0, 4)


def test_unmapped_arguments_pass_through_for_python_control_flow():
    # as jax.vmap: an in_axes=None argument is its value, so `if` and int() on it work,
    # under jit as a guard of the enclosing trace
    def f(x, w):
        return x * 2 if w[0] > 0 else x * int(w[1])
    X, w = np.arange(6.0).reshape(2, 3), np.array([1.0, 3.0])
    v = tg.vmap(f, in_axes=(0, None))
    np.testing.assert_array_equal(v(X, w), X * 2)
    np.testing.assert_array_equal(v(X, -w), X * -3)
    j = tg.jit(lambda a, b: tg.vmap(f, in_axes=(0, None))(a, b))
    for s in (1.0, -1.0, 1.0):
        np.testing.assert_array_equal(j(X, s * w), f(X, s * w))


def test_vmap_checks_axes_specs_and_takes_axis_size_as_jax():
    import tracegrad as tgr
    for spec in (1.0, "0", True, (0, 1.5)):
        with pytest.raises(TypeError, match="must be an int, None"):
            tgr.vmap(lambda x, y: x, in_axes=spec)
    with pytest.raises(TypeError, match="out_axes must be"):
        tgr.vmap(lambda x: x, out_axes=1.0)
    with pytest.raises(ValueError, match="argument 0 has size 2 .* argument 1 has size 5"):
        tgr.vmap(lambda x, y: x + y[:2])(np.ones(2), np.ones(5))
    out = tgr.vmap(lambda x: x * 2, in_axes=None, axis_size=3)(np.ones(2))
    np.testing.assert_array_equal(out, np.full((3, 2), 2.0))
    with pytest.raises(ValueError, match="axis_size is 4"):
        tgr.vmap(lambda x: x, axis_size=4)(np.ones(3))


def test_jacobians_check_argnums_and_hessian_has_aux():
    import tracegrad as tgr
    for jac in (tgr.jacrev, tgr.jacfwd, tgr.hessian):
        with pytest.raises(TypeError, match="argnums asks for argument 2"):
            jac(lambda x: np.sum(x * x), argnums=2)(np.ones(2))
    h, aux = tgr.hessian(lambda x: (np.sum(x ** 3), {"n": np.sum(x)}), has_aux=True)(np.array([1.0, 2.0]))
    np.testing.assert_allclose(h, np.diag([6.0, 12.0]))
    assert float(aux["n"]) == 3.0
