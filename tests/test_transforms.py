"""The public transforms (tracegrad.transforms): grad, value_and_grad, jvp, vjp.
"""
from __future__ import annotations

import numpy as np
import pytest

from tracegrad.ir import (eval_graph,
                          verify)
import tracegrad.transforms as t
import tracegrad
import tracegrad.numpy as tnp

from autodiff_cases import (_smooth_d2, F64, vdot)


# ---- the public transforms (tracegrad.transforms) ----------------------------------

def _fd_grad(f, x, h=1e-6):
    x = np.asarray(x, F64)
    out = np.zeros_like(x)
    for k in range(x.size):
        step = np.zeros(x.size)
        step[k] = h
        step = step.reshape(x.shape)
        out.flat[k] = (float(f(x + step)) - float(f(x - step))) / (2 * h)
    return out


def _loss(x):
    return np.sum(np.sin(x) * x ** 3) + np.log(np.sum(np.exp(x)))


X = np.array([0.3, -1.2, 0.8])
V = np.array([1.0, 0.5, -2.0])


def test_grad_and_value_and_grad():
    g = t.grad(_loss)(X)
    assert isinstance(g, np.ndarray) and g.shape == X.shape and g.dtype == F64
    np.testing.assert_allclose(g, _fd_grad(_loss, X), rtol=1e-7, atol=1e-9)
    value, g2 = t.value_and_grad(_loss)(X)
    assert float(value) == pytest.approx(float(_loss(X)))
    np.testing.assert_array_equal(g, g2)


def test_argnums_statics_and_python_numbers():

    def f(x, scale, mode, y):
        assert mode == "sum" and scale == 2.0  # static: reaches f as given
        return np.sum(x * y) * scale
    x, y = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    np.testing.assert_allclose(t.grad(f)(x, 2.0, "sum", y), 2 * y)
    gx, gy = t.grad(f, argnums=(0, -1))(x, 2.0, "sum", y)
    np.testing.assert_allclose(gx, 2 * y)
    np.testing.assert_allclose(gy, 2 * x)
    gs = t.grad(f, argnums=1)(x, 2.0, "sum", y)  # a Python float being differentiated
    assert gs.dtype == F64 and float(gs) == pytest.approx(np.sum(x * y))


def test_gradient_of_a_pytree_argument():

    def loss(params, x):
        h = np.tanh(x @ params["w"] + params["b"])
        return np.mean((h - params["target"][0]) ** 2)
    rng = np.random.default_rng(7)
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2),
              "target": [rng.standard_normal((4, 2))]}
    x = rng.standard_normal((4, 3))
    g = t.grad(loss)(params, x)
    assert sorted(g) == ["b", "target", "w"] and isinstance(g["target"], list)
    for name in ("w", "b"):
        def along(p, name=name):
            return loss({**params, name: p}, x)
        np.testing.assert_allclose(g[name], _fd_grad(along, params[name]), rtol=1e-6, atol=1e-9)


def test_grad_errors_name_the_problem():
    with pytest.raises(TypeError, match=r"\(2,\)"):
        t.grad(lambda x: x * 2.0)(np.ones(2))
    with pytest.raises(TypeError, match="int64"):
        t.grad(lambda n: n * 2)(np.array(3))
    with pytest.raises(TypeError, match="argument 2"):
        t.grad(lambda x: np.sum(x), argnums=2)(np.ones(2))
    with pytest.raises(TypeError, match="str"):
        t.grad(lambda x, s: np.sum(x), argnums=1)(np.ones(2), "static")


def test_jvp_and_vjp_against_differences():
    f = lambda x, y: (np.sin(x) * y, np.sum(x * x))  # noqa: E731
    y = np.array([2.0, -1.0, 0.5])
    (out, total), (t_out, t_total) = t.jvp(f, (X, y), (V, np.zeros(3)))
    h = 1e-6
    plus, minus = f(X + h * V, y), f(X - h * V, y)
    np.testing.assert_allclose(t_out, (plus[0] - minus[0]) / (2 * h), rtol=1e-7)
    assert float(t_total) == pytest.approx((plus[1] - minus[1]) / (2 * h), rel=1e-7)
    (o1, o2), pullback = t.vjp(f, X, y)
    np.testing.assert_array_equal(o1, out)
    c = (np.array([1.0, 2.0, 3.0]), 0.5)
    gx, gy = pullback(c)
    # dot-product test: <V, vjp_x(c)> == <d f . V, c>
    lhs = vdot(V, gx)
    rhs = vdot(c[0], (plus[0] - minus[0]) / (2 * h)) + c[1] * (plus[1] - minus[1]) / (2 * h)
    assert lhs == pytest.approx(rhs, rel=1e-7)
    np.testing.assert_allclose(gy, c[0] * np.sin(X))
    again = pullback((np.zeros(3), 1.0))  # the pullback can be applied again
    np.testing.assert_allclose(again[0], 2 * X)


def test_jvp_vjp_argument_checks():
    f = lambda x: (x, np.sum(x))  # noqa: E731
    with pytest.raises(ValueError, match="shape"):
        t.jvp(f, (np.ones(3),), (np.ones(2),))
    with pytest.raises(ValueError, match="1 primals but 2"):
        t.jvp(f, (np.ones(3),), (np.ones(3), np.ones(3)))
    _, pullback = t.vjp(f, np.ones(3))
    with pytest.raises(ValueError, match="structure"):
        pullback(np.ones(3))
    pullback32 = t.vjp(lambda x: x * 2.0, np.ones(2, np.float32))[1]
    with pytest.raises(TypeError, match="float64, expected float32"):  # as JAX: no silent cast
        pullback32(np.ones(2))
    g32, = pullback32(np.ones(2, np.float32))
    assert g32.dtype == np.float32


def test_second_order_transforms():
    d2 = t.grad(t.grad(lambda x: np.sin(x) * x ** 3))
    for x in (-1.3, 0.4, 2.0):
        assert float(d2(x)) == pytest.approx(_smooth_d2(x), rel=1e-12)
    assert float(t.grad(t.grad(t.grad(lambda x: x ** 4)))(2.0)) == pytest.approx(48.0)


def test_hessian_vector_products_compose():
    h = 1e-5
    fd = (t.grad(_loss)(X + h * V) - t.grad(_loss)(X - h * V)) / (2 * h)
    forward_over_reverse = t.jvp(t.grad(_loss), (X,), (V,))[1]
    reverse_over_forward = t.grad(lambda x: t.jvp(_loss, (x,), (V,))[1])(X)
    reverse_over_reverse = t.vjp(t.grad(_loss), X)[1](V)[0]
    for hvp in (forward_over_reverse, reverse_over_forward, reverse_over_reverse):
        np.testing.assert_allclose(hvp, fd, rtol=1e-7, atol=1e-8)


def test_trace_of_grad_records_the_gradient_ir():
    from tracegrad.tracer import trace

    prog = trace(t.grad(lambda x, y: np.sum(np.sin(x) * y)))(np.zeros(3, np.float32),
                                                              np.ones(3, np.float32))
    verify(prog.graph)
    assert str(prog) == GOLDEN_GRAD_IR
    x, y = np.array([0.1, 0.2, 0.3], np.float32), np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_allclose(prog(x, y), np.cos(x) * y, rtol=1e-6)


# Gradient of sum(sin(x) * y) w.r.t. x, inlined into the outer trace after the
# cleanup pipeline: no forward value, no seed broadcast, only the gradient's work.
GOLDEN_GRAD_IR = """\
{ lambda a:f32[3] b:f32[3] . let
    c:f32[3] = cos a
    d:f32[3] = mul b c
  in (d) }"""


def _branchy(x):
    if np.sum(x) > 0:  # a Python decision: a guard in the traced program
        return np.sum(x * x)
    return np.sum(np.sin(x))


def test_inner_guards_bind_the_outer_trace():
    from tracegrad.tracer import trace

    prog = trace(t.grad(_branchy))(X + 1.0)
    assert len(prog.guards) == 1
    assert prog.check_guards(X + 2.0) and not prog.check_guards(X - 5.0)
    np.testing.assert_allclose(t.grad(_branchy)(X - 5.0), np.cos(X - 5.0))
    nested = trace(t.grad(lambda x: np.sum(t.grad(_branchy)(x) ** 2)))(X + 1.0)
    assert len(nested.guards) == 1 and not nested.check_guards(X - 5.0)


def test_vjp_inside_a_trace():
    from tracegrad.tracer import trace

    f = lambda x: (np.sin(x), np.sum(x * x))  # noqa: E731
    prog = trace(lambda x: t.vjp(f, x)[1]((np.ones(3), 2.0))[0])(X)
    verify(prog.graph)
    np.testing.assert_allclose(prog(X + 1.0), np.cos(X + 1.0) + 4 * (X + 1.0))


def test_abstract_outer_trace():
    from tracegrad.ir import ConcretizationError
    from tracegrad.tracer import make_graph

    prog = make_graph(t.grad(_loss), [X], concrete=False)
    verify(prog.graph)
    np.testing.assert_allclose(eval_graph(prog.graph, X)[0], t.grad(_loss)(X), rtol=1e-14)
    with pytest.raises(ConcretizationError):
        make_graph(t.grad(_branchy), [X], concrete=False)


def test_tensor_arguments_match_eager_backward_and_record_when_they_require_grad():
    from tracegrad.tracer import Tensor, no_grad, tensor

    x = tensor(X, requires_grad=True)
    loss = _loss(x)
    loss.backward()
    g = t.grad(_loss)(x)   # a Tensor autograd recorded, as torch.func.grad's result
    assert isinstance(g, Tensor) and g.grad_fn is not None
    np.testing.assert_allclose(g.data, x.grad.detach().data, rtol=1e-12)
    assert type(t.grad(_loss)(tensor(X))) is np.ndarray     # nothing to record
    with no_grad():
        assert type(t.grad(_loss)(x)) is np.ndarray


def test_gradient_penalty_and_closures_over_tensors_reach_backward():
    from tracegrad.tracer import tensor

    f = lambda w: tnp.sum(tnp.sin(w) * w * w)          # noqa: E731
    w = tensor(np.array([0.3, -1.2, 2.0]), requires_grad=True)
    (f(w) + tnp.sum(t.grad(f)(w) ** 2)).backward()
    dfdw = np.cos(w.data) * w.data ** 2 + 2 * w.data * np.sin(w.data)
    d2 = -np.sin(w.data) * w.data ** 2 + 4 * w.data * np.cos(w.data) + 2 * np.sin(w.data)
    np.testing.assert_allclose(w.grad.data, dfdw + 2 * dfdw * d2, rtol=1e-12)
    W = tensor(np.array([[0.5, -1.0], [2.0, 0.1]]), requires_grad=True)
    rows = np.array([[1.0, 2.0], [-0.5, 0.3], [0.0, 1.0]])
    per_row = tracegrad.vmap(lambda r: tnp.sum(tnp.tanh(r @ W) ** 2))(rows)   # W closed over
    tnp.sum(per_row).backward()
    h = np.tanh(rows @ W.data)
    np.testing.assert_allclose(W.grad.data, rows.T @ (2 * h * (1 - h * h)), rtol=1e-12)


def test_nested_transforms_close_over_outer_traced_values():
    # The inner function reads the outer argument x: x is captured as an extra input
    # of the inner graph, so the outer derivative flows through the inner gradient.
    d = t.grad(lambda x: t.grad(lambda y: x * y * y)(np.float64(1.0)))
    assert float(d(np.float64(2.0))) == 2.0  # d/dx (2 x y) at y = 1
    x = np.array([0.3, 0.7])
    g = t.grad(lambda x: np.sum(t.jvp(lambda y: np.sin(x * y), (np.ones(2),), (np.ones(2),))[1]))
    np.testing.assert_allclose(g(x), np.cos(x) - x * np.sin(x), rtol=1e-12)
    h = t.grad(lambda x: np.sum(t.vjp(lambda y: x * y * y, np.ones(2))[1](np.ones(2))[0]))
    np.testing.assert_allclose(h(x), 2 * np.ones(2))


@pytest.mark.parametrize("transform", ["grad", "value_and_grad", "jacfwd", "jacrev", "hessian",
                                       "compile_grad"])
def test_empty_argnums_is_an_error(transform):
    with pytest.raises(ValueError, match=r"argnums=\(\) selects no argument"):
        getattr(tracegrad, transform)(lambda x: (x * x).sum(), argnums=())(np.ones(2))


def test_linearize_matches_jvp_with_pytrees_and_aux():
    f = lambda x, y: {"a": np.sin(x) * y, "b": (x * x).sum()}  # noqa: E731
    x, y = np.array([0.3, 1.2]), np.array([2., -1.])
    out, f_jvp = tracegrad.linearize(f, x, y)
    for tangents in [(np.array([1., 0.5]), np.array([0.1, 0.2])), (np.ones(2), np.zeros(2))]:
        _, want = tracegrad.jvp(f, (x, y), tangents)
        got = f_jvp(*tangents)
        np.testing.assert_allclose(got["a"], want["a"], rtol=1e-14)
        np.testing.assert_allclose(got["b"], want["b"], rtol=1e-14)
    np.testing.assert_allclose(out["a"], np.sin(x) * y)
    np.testing.assert_allclose(f_jvp(np.array([1., 0.]), np.zeros(2))["a"], [np.cos(0.3) * 2, 0.])
    out, f_jvp, aux = tracegrad.linearize(lambda v: (np.exp(v), v.sum()), x, has_aux=True)
    np.testing.assert_allclose(f_jvp(np.ones(2)), np.exp(x))
    assert float(aux) == pytest.approx(1.5)
    with pytest.raises(TypeError, match="tangents"):
        f_jvp(np.ones(2), np.ones(2))
