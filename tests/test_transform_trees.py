"""Pytrees where transforms meet them: dicts matched by key wherever two trees meet,
pytree arguments of custom rules, non-differentiated arguments left as they are, and
what `jit`, `fori_loop` and `grad` accept (compared with jax 0.10 where it is installed)."""
import numpy as np
import pytest

import tracegrad as tg
from tracegrad.tracer.tree import conform, flatten_like, tree_structure


def _jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def _close(got, want):
    """Equal dicts (by key), tuples and arrays."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want)
        for k in want:
            _close(got[k], want[k])
    elif isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _close(g, w)
    else:
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12)


D = {"a": np.array(2.0), "b": np.array(3.0)}


# ---- tree.flatten_like ----------------------------------------------------------------------

def test_flatten_like_matches_dicts_by_key_and_names_differences():
    tree = tree_structure({"a": (0,), "b": {"x": 0, "y": 0}})
    assert flatten_like({"b": {"y": 2, "x": 1}, "a": (3,)}, tree) == [3, 1, 2]
    assert list(conform({"b": 1, "a": 2}, tree_structure({"a": 0, "b": 0}))) == ["a", "b"]
    with pytest.raises(ValueError, match=r"dict keys \[\"'a'\", \"'c'\"\]"):
        flatten_like({"a": 1, "c": 2}, tree_structure({"a": 0, "b": 0}))
    with pytest.raises(ValueError, match=r"at \['a'\]: expected \*"):  # exact: no prefix
        flatten_like({"a": (1,), "b": 2}, tree_structure({"a": 0, "b": 0}))


# ---- 1. custom_vjp: a dict cotangent in another key order -------------------------------------

def _vjp_swapped(custom_vjp):
    @custom_vjp
    def f(d):
        return d["a"] * d["b"]
    f.defvjp(lambda d: (f(d), d), lambda d, g: ({"b": g * d["a"], "a": g * d["b"]},))
    return f


def test_custom_vjp_dict_cotangent_is_matched_by_key():
    f = _vjp_swapped(tg.custom_vjp)
    want = {"a": 3.0, "b": 2.0}
    _close(tg.grad(f)(D), want)
    _close(tg.jit(tg.grad(f))(D), want)
    t = {k: tg.tensor(float(v), requires_grad=True) for k, v in D.items()}
    f(t).backward()
    _close({k: v.grad.numpy() for k, v in t.items()}, want)


def test_custom_vjp_dict_cotangent_as_jax():
    jax = _jax()
    _close(tg.grad(_vjp_swapped(tg.custom_vjp))(D), jax.grad(_vjp_swapped(jax.custom_vjp))(D))


def test_custom_vjp_cotangent_with_other_keys_raises_naming_them():
    @tg.custom_vjp
    def f(d):
        return d["a"] * d["b"]
    f.defvjp(lambda d: (f(d), d), lambda d, g: ({"a": g, "c": g},))
    with pytest.raises(TypeError, match="cotangent for argument 0"):
        tg.grad(f)(D)


# ---- 2. custom_jvp of pytree arguments ------------------------------------------------------

def _jvp_dict(custom_jvp):
    @custom_jvp
    def g(d):
        return d["a"] * d["b"]

    @g.defjvp
    def rule(p, t):
        (d,), (td,) = p, t
        return g(d), td["a"] * 100.0 + td["b"]
    return g


def _jvp_tuple(custom_jvp):
    @custom_jvp
    def g(d):
        return d[0] * d[1]

    @g.defjvp
    def rule(p, t):
        (d,), (td,) = p, t
        return g(d), td[0] * d[1] + d[0] * td[1]
    return g


def test_custom_jvp_dict_argument_in_reverse_mode():
    g = _jvp_dict(tg.custom_jvp)
    for d in (D, {"b": D["b"], "a": D["a"]}):
        _close(tg.grad(g)(d), {"a": 100.0, "b": 1.0})
        _close(tg.jit(tg.grad(g))(d), {"a": 100.0, "b": 1.0})
    out, tangent = tg.jvp(g, (D,), ({"a": np.array(1.0), "b": np.array(0.0)},))
    _close((out, tangent), (6.0, 100.0))


def test_custom_jvp_tuple_argument_in_reverse_mode():
    x = (np.array(3.0), np.array(2.0))
    _close(tg.grad(_jvp_tuple(tg.custom_jvp))(x), (2.0, 3.0))
    _close(tg.jit(tg.grad(_jvp_tuple(tg.custom_jvp)))(x), (2.0, 3.0))


def test_custom_jvp_pytree_arguments_as_jax():
    jax = _jax()
    x = (np.array(3.0), np.array(2.0))
    _close(tg.grad(_jvp_dict(tg.custom_jvp))(D), jax.grad(_jvp_dict(jax.custom_jvp))(D))
    _close(tg.grad(_jvp_tuple(tg.custom_jvp))(x), jax.grad(_jvp_tuple(jax.custom_jvp))(x))


# ---- 3. dicts in another key order where two trees meet -------------------------------------

def _branches():
    return (lambda c: {"b": c["b"] + 1, "a": c["a"] * 2},
            lambda c: {"a": c["a"] * 3, "b": c["b"] - 1})


def test_cond_and_switch_branches_with_dicts_in_other_orders():
    d = {"a": np.array(1.0), "b": np.array(0.0)}
    t, f = _branches()
    for p, want in ((True, {"a": 2.0, "b": 1.0}), (False, {"a": 3.0, "b": -1.0})):
        _close(tg.jit(lambda p, c: tg.cond(p, t, f, c))(np.array(p), d), want)
        _close(tg.jit(lambda i, c: tg.switch(i, [f, t], c))(np.array(int(p)), d), want)
    loss = lambda a, p: sum(tg.cond(p, t, f, {"a": a, "b": a}).values())
    _close(tg.grad(loss)(np.array(1.0), np.array(True)), 3.0)  # (a + 1) + 2a
    _close(tg.jit(tg.grad(loss))(np.array(1.0), np.array(False)), 4.0)  # 3a + (a - 1)


def test_cond_with_dicts_in_other_orders_as_jax():
    jax = _jax()
    d = {"a": np.array(1.0), "b": np.array(0.0)}
    t, f = _branches()
    for p in (True, False):
        _close(tg.jit(lambda p, c: tg.cond(p, t, f, c))(np.array(p), d),
               jax.jit(lambda p, c: jax.lax.cond(p, t, f, c))(np.array(p), d))


def test_cond_branches_with_other_keys_still_raise():
    with pytest.raises(TypeError, match="same pytree structure"):
        tg.jit(lambda p, x: tg.cond(p, lambda x: {"a": x}, lambda x: {"c": x}, x))(
            np.array(True), np.array(1.0))


def test_vjp_cotangent_and_jvp_tangent_in_other_key_orders():
    _, pullback = tg.vjp(lambda x: {"u": x * 2, "v": x * 3}, np.array(1.0))
    _close(pullback({"v": np.array(1.0), "u": np.array(0.0)}), (3.0,))
    _, tangent = tg.jvp(lambda d: d["a"] * 2 + d["b"] * 3, ({"a": np.array(1.0), "b": np.array(1.0)},),
                        ({"b": np.array(1.0), "a": np.array(0.0)},))
    _close(tangent, 3.0)
    with pytest.raises(ValueError, match="dict keys"):
        pullback({"v": np.array(1.0), "w": np.array(0.0)})


def test_vjp_and_jvp_with_other_key_orders_as_jax():
    jax = _jax()
    f = lambda x: {"u": x * 2, "v": x * 3}
    ct = {"v": np.array(1.0), "u": np.array(0.5)}
    _close(tg.vjp(f, np.array(1.0))[1](ct), jax.vjp(f, np.array(1.0))[1](ct))
    h = lambda d: d["a"] * 2 + d["b"] * 3
    p, t = ({"a": np.array(1.0), "b": np.array(1.0)},), ({"b": np.array(1.0), "a": np.array(0.5)},)
    _close(tg.jvp(h, p, t), jax.jvp(h, p, t))


def _jvp_out_dict(custom_jvp):
    @custom_jvp
    def f(x):
        return {"s": np.sin(x), "d": x * 2}

    @f.defjvp
    def rule(p, t):
        (x,), (tx,) = p, t
        return f(x), {"d": tx * 2, "s": tx * 10}  # another order than the output
    return f


def test_custom_jvp_tangent_output_in_another_key_order():
    f = _jvp_out_dict(tg.custom_jvp)
    out, tangent = tg.jvp(f, (np.array(0.5),), (np.array(1.0),))
    _close(tangent, {"s": 10.0, "d": 2.0})
    _close(tg.grad(lambda x: f(x)["s"] + f(x)["d"])(np.array(0.5)), 12.0)


def test_custom_vjp_forward_output_in_another_key_order():
    @tg.custom_vjp
    def f(x):
        return {"p": x * 2, "q": x * 3}
    f.defvjp(lambda x: ({"q": x * 3, "p": x * 2}, None),
             lambda _, g: (g["p"] * 20 + g["q"] * 300,))
    _close(tg.grad(lambda x: f(x)["p"])(np.array(1.0)), 20.0)
    _close(tg.jit(tg.grad(lambda x: f(x)["q"]))(np.array(1.0)), 300.0)


# ---- 4. grad leaves non-differentiated arguments as they are ----------------------------

def _h(w, c, np=np):
    if c.sum() > 0:
        return (w ** 2 * c).sum()
    return (np.sin(w) * c).sum()


W, C = np.array([[0.5, 1.5], [0.5, 1.5]]), np.array([1.0, 2.0])


def test_vmap_of_grad_with_a_python_if_on_an_unmapped_argument():
    _close(tg.vmap(tg.grad(_h), in_axes=(0, None))(W, C), [[1.0, 6.0], [1.0, 6.0]])
    _close(tg.vmap(tg.grad(_h), in_axes=(0, None))(W, -C), -np.cos(W) * C)


def test_vmap_of_grad_with_an_unmapped_argument_as_jax():
    jax = _jax()
    want = jax.vmap(jax.grad(lambda w, c: _h(w, c, jax.numpy)), in_axes=(0, None))(W, C)
    _close(tg.vmap(tg.grad(_h), in_axes=(0, None))(W, C), want)


def test_grad_non_differentiated_arguments_traced_or_tensors_still_work():
    f = lambda x, c: (x * x * c).sum()
    _close(tg.jit(tg.grad(f))(np.ones(2), C), 2 * C)
    _close(tg.grad(f, argnums=1)(np.ones(2), C), [1.0, 1.0])
    t = tg.tensor(C, requires_grad=True)
    g = tg.grad(f)(np.ones(2), t)  # autograd records through the closed-over tensor
    g.sum().backward()
    _close(t.grad.numpy(), [2.0, 2.0])
    with pytest.raises(TypeError, match="argument 1 has dtype int64"):
        tg.grad(f, argnums=1)(np.ones(2), np.array([1, 2]))


# ---- 5, 6. jit: objects that hash by identity, messages for keyword arguments ------------

class _Cfg:
    def __init__(self):
        self.k = 2.0


def test_jit_rejects_an_object_that_hashes_by_identity_unless_static():
    c = _Cfg()
    with pytest.raises(TypeError, match=r"_Cfg object, which hashes by identity.*"
                                        r"static_argnums=\(1,\).*must not change"):
        tg.jit(lambda x, cfg: x * cfg.k)(np.ones(2), c)
    _close(tg.jit(lambda x, cfg: x * cfg.k, static_argnums=1)(np.ones(2), c), [2.0, 2.0])
    _close(tg.jit(lambda x, cfg: x * cfg.k, static_argnames="cfg")(np.ones(2), c), [2.0, 2.0])
    _close(tg.jit(lambda x, f: f(x))(np.zeros(2), np.cos), [1.0, 1.0])  # callables stay static
    _close(tg.jit(lambda x, n: x if n is None else -x)(np.ones(2), None), [1.0, 1.0])


def test_jit_object_argument_raises_as_jax():
    jax = _jax()
    with pytest.raises(TypeError):
        jax.jit(lambda x, cfg: x * cfg.k)(np.ones(2), _Cfg())


def test_jit_keyword_argument_message_suggests_static_argnames():
    def f(x, mode=None, n=1):
        return x ** 2 if mode == "sq" else x
    with pytest.raises(TypeError, match="keyword argument 'mode' is a str") as e:
        tg.jit(f)(np.ones(2), mode="sq")
    assert 'static_argnames="mode"' in str(e.value) and "static_argnums" not in str(e.value)
    assert "f(x, mode=None, n=1)" in str(e.value)
    _close(tg.jit(f, static_argnames="mode")(np.ones(2) * 3, mode="sq"), [9.0, 9.0])
    with pytest.raises(TypeError, match="keyword argument 'cfg' is a _Cfg"):
        tg.jit(lambda x, cfg=None: x)(np.ones(2), cfg=_Cfg())
    with pytest.raises(TypeError, match="keyword argument 'n' is a list, which is not hashable"):
        tg.jit(f, static_argnames="n")(np.ones(2), n=[1])


# ---- 7. fori_loop with float bounds ----------------------------------------------------------

def test_fori_loop_float_bounds():
    body = lambda i, c: c + i
    assert float(tg.fori_loop(0.5, 3.0, body, 0.0)) == 3.0  # concrete: int(0.5), int(3.0)
    assert float(tg.fori_loop(0.0, 2.7, body, 0.0)) == 1.0
    assert float(tg.jit(lambda a: tg.fori_loop(a, 3.0, body, 0.0))(0.5)) == 4.5  # traced
    assert float(tg.grad(lambda x: tg.fori_loop(0.0, 3.0, lambda i, c: c * x, x))(1.5)) == 13.5
    with pytest.raises(TypeError, match="both be integers or both floats"):
        tg.fori_loop(0, 3.0, body, 0.0)


def test_fori_loop_float_bounds_as_jax():
    jax = _jax()
    body = lambda i, c: c + i
    for lo, hi in ((0.5, 3.0), (0.0, 2.7), (np.float64(1), np.float64(4))):
        _close(tg.fori_loop(lo, hi, body, 0.0), jax.lax.fori_loop(lo, hi, body, 0.0))
    _close(tg.jit(lambda a: tg.fori_loop(a, 3.0, body, 0.0))(0.5),
           jax.jit(lambda a: jax.lax.fori_loop(a, 3.0, body, 0.0))(0.5))
    with pytest.raises(TypeError):
        jax.lax.fori_loop(0, 3.0, body, 0.0)


# ---- 8. grad(holomorphic=...) ----------------------------------------------------------------

def test_grad_accepts_holomorphic_false_and_explains_true():
    assert float(tg.grad(lambda x: x * x, holomorphic=False)(3.0)) == 6.0
    assert float(tg.value_and_grad(lambda x: x * x, holomorphic=False)(3.0)[1]) == 6.0
    with pytest.raises(TypeError, match="holomorphic=True.*no complex"):
        tg.grad(lambda x: x * x, holomorphic=True)
    with pytest.raises(TypeError, match="holomorphic=True"):
        tg.value_and_grad(lambda x: x * x, holomorphic=True)
