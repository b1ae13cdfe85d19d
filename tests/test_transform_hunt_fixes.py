"""Fixes from a hunt on higher-order differentiation: a custom_vjp's second derivative in
every mode (JAX's), has_aux with pytree values, no spurious CutDerivativeWarning for Python
float arguments of nested Jacobians, grad of a function returning None; and JAX's
eval_shape, ShapeDtypeStruct, make_jaxpr, remat and checkpoint_policies."""
import warnings

import numpy as np
import pytest

import tracegrad as tg


def scaled_tanh_squared():
    @tg.custom_vjp
    def scale_grad(x):  # tanh whose gradient is scaled by 3: not the true derivative
        return np.tanh(x)
    scale_grad.defvjp(lambda x: (np.tanh(x), x), lambda x, g: (3.0 * g * (1 - np.tanh(x) ** 2),))
    return lambda x: scale_grad(x) ** 2


def test_custom_vjp_second_derivative_is_the_same_in_every_mode():
    """JAX differentiates fwd's code (d tanh = sech^2) and bwd's code: for y = t^2 with
    dy/dx := 3 * 2t * (1 - t^2), the second derivative is 6 (1 - t^2)(1 - 3t^2)."""
    f, x = scaled_tanh_squared(), 0.7
    t = np.tanh(x)
    want = 6 * (1 - t * t) * (1 - 3 * t * t)
    np.testing.assert_allclose(tg.grad(tg.grad(f))(x), want, rtol=1e-13)
    np.testing.assert_allclose(tg.jvp(tg.grad(f), (x,), (1.0,))[1], want, rtol=1e-13)
    np.testing.assert_allclose(tg.hessian(f)(np.array(x)), want, rtol=1e-13)
    np.testing.assert_allclose(tg.jit(tg.grad(tg.grad(f)))(x), want, rtol=1e-13)


def test_custom_vjp_fwd_that_calls_the_function_keeps_the_rule_in_second_order():
    @tg.custom_vjp
    def h(x):
        return np.sin(x)
    h.defvjp(lambda x: (h(x), x), lambda x, g: (2 * np.cos(x) * g,))
    x = 0.1
    want = 8 * np.cos(x) ** 2 - 4 * np.sin(x) ** 2  # h' := 2 cos used at both orders
    np.testing.assert_allclose(tg.grad(tg.grad(lambda v: h(v) ** 2))(x), want, rtol=1e-13)


def test_fwd_calls_survive_saving(tmp_path):
    f = scaled_tanh_squared()
    prog = tg.trace(f)(np.array(0.7))
    path = tmp_path / "p.tg"
    prog.save(str(path))
    calls = [e.params["fwd_calls"] for e in tg.load(str(path)).graph.eqns
             if e.prim.name == "custom_call"]
    assert calls == [(False,)]


def pair_valued(x):
    return {"a": np.sin(x), "b": x * x}, np.sum(x)


@pytest.mark.parametrize("transform", ["vjp", "jvp", "linearize", "jacrev", "jacfwd"])
def test_has_aux_with_a_pytree_value(transform):
    x = np.array([0.3, -0.2])
    if transform == "vjp":
        out, pullback, aux = tg.vjp(pair_valued, x, has_aux=True)
        (g,) = pullback({"a": np.ones(2), "b": np.ones(2)})
        np.testing.assert_allclose(g, np.cos(x) + 2 * x)
    elif transform == "jvp":
        out, tangent, aux = tg.jvp(pair_valued, (x,), (np.ones(2),), has_aux=True)
        np.testing.assert_allclose(tangent["b"], 2 * x)
    elif transform == "linearize":
        out, f_jvp, aux = tg.linearize(pair_valued, x, has_aux=True)
        np.testing.assert_allclose(f_jvp(np.ones(2))["a"], np.cos(x))
    else:
        jac, aux = getattr(tg, transform)(pair_valued, has_aux=True)(x)
        np.testing.assert_allclose(jac["b"], np.diag(2 * x))
    assert float(aux) == pytest.approx(0.1)


def test_grad_with_has_aux_still_needs_one_scalar_value():
    with pytest.raises(TypeError, match="one scalar value"):
        tg.grad(lambda x: ((np.sum(x),), 1.0), has_aux=True)(np.ones(2))


def test_nested_jacobians_of_a_python_float_do_not_warn():
    f = lambda x: np.tanh(x) ** 2  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = tg.hessian(f)(0.7)
        tg.jvp(tg.jacrev(f), (0.7,), (1.0,))
    t = np.tanh(0.7)
    np.testing.assert_allclose(h, 2 * (1 - t * t) * (1 - 3 * t * t), rtol=1e-13)


def test_grad_of_a_function_returning_none_says_so():
    def loss(x):
        np.sum(x ** 2)
    with pytest.raises(TypeError, match="returned None"):
        tg.grad(loss)(np.ones(3))
    with pytest.raises(TypeError, match="returned None"):
        tg.compile_grad(loss)(np.ones(3))


def test_eval_shape_and_make_jaxpr():
    out = tg.eval_shape(lambda x, w: (np.tanh(x @ w), {"s": x.sum()}),
                        tg.ShapeDtypeStruct((8, 3), np.float32), np.ones((3, 5), np.float32))
    assert out[0] == tg.ShapeDtypeStruct((8, 5), np.float32)
    assert out[1]["s"].shape == () and out[1]["s"].dtype == np.float32
    text = str(tg.make_jaxpr(lambda x: np.sin(x) * 2)(np.ones(3)))
    assert "sin" in text and "f64[3]" in text
    with pytest.raises(tg.ir.ConcretizationError):
        tg.make_jaxpr(lambda x: x if x.sum() > 0 else -x)(np.ones(2))


@pytest.mark.parametrize("policy", ["nothing_saveable", "everything_saveable", "dots_saveable"])
def test_remat_with_jax_policies_gives_the_same_gradients(policy):
    layer = tg.remat(lambda h, w: np.tanh(h @ w), policy=getattr(tg.checkpoint_policies, policy))
    loss = lambda w: np.sum(layer(layer(np.ones(2), w), w))  # noqa: E731
    w = np.eye(2) * 0.5 + 0.1
    plain = tg.grad(lambda w: np.sum(np.tanh(np.tanh(np.ones(2) @ w) @ w)))(w)
    np.testing.assert_allclose(tg.grad(loss)(w), plain, rtol=1e-14)


def test_checkpoint_around_a_custom_vjp_function():
    @tg.custom_vjp
    def cube(x):
        return x ** 3
    cube.defvjp(lambda x: (x ** 3, x), lambda x, g: (3 * x * x * g,))
    x = np.array([0.5, 1.3])
    loss = lambda x: np.sum(tg.checkpoint(lambda x: cube(x) ** 2)(x))  # noqa: E731
    np.testing.assert_allclose(tg.grad(loss)(x), 6 * x ** 5, rtol=1e-14)
    np.testing.assert_allclose(tg.compile_grad(loss)(x)[1][0], 6 * x ** 5, rtol=1e-14)
