"""custom_vjp, custom_jvp and autograd.Function: one mechanism (a custom_call equation),
used by eager backward, grad, traced programs and compiled code."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg


@tg.custom_vjp
def scaled_sin(x, y):
    return np.sin(x) * y


def _fwd(x, y):
    return scaled_sin(x, y), (np.cos(x), np.sin(x), y)


def _bwd(res, g):
    cos_x, sin_x, y = res
    return (cos_x * y * g, sin_x * g)


scaled_sin.defvjp(_fwd, _bwd)

X, Y = np.array([0.1, 0.5, -0.7]), np.array([2.0, 3.0, -1.0])


def _loss(x, y):
    return np.sum(scaled_sin(x, y) ** 2)


def _want_grads(x, y):
    s, c = np.sin(x), np.cos(x)
    return 2 * s * y * c * y, 2 * s * y * s


@tg.custom_vjp
def clipped(x):
    return x


clipped.defvjp(lambda x: (x, None), lambda _, g: (np.clip(g, -1.0, 1.0),))


def test_custom_vjp_rule_is_used_everywhere():
    want = _want_grads(X, Y)
    for got in (tg.grad(_loss, argnums=(0, 1))(X, Y), tg.compile_grad(_loss)(X, Y)[1]):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12)
    x, y = tg.tensor(X, requires_grad=True), tg.tensor(Y, requires_grad=True)
    _loss(x, y).backward()
    np.testing.assert_allclose(x.grad.numpy(), want[0], rtol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), want[1], rtol=1e-12)
    assert scaled_sin(x, y).grad_fn.name() == "scaled_sinBackward"


def test_the_rule_really_replaces_the_derivative():
    g = lambda x: np.sum(clipped(x) * 5.0)  # noqa: E731  the true derivative is 5
    assert tg.grad(g)(np.ones(2)).tolist() == [1.0, 1.0]
    assert tg.compile_grad(g)(np.ones(2))[1][0].tolist() == [1.0, 1.0]
    x = tg.tensor(np.ones(2), requires_grad=True)
    g(x).backward()
    assert x.grad.tolist() == [1.0, 1.0]


def test_traced_program_prints_the_call_with_its_rules_and_compiles_inlined():
    text = str(tg.trace(_loss)(X, Y))
    assert "custom_call[fn_name=scaled_sin" in text and "bwd={" in text and "fwd={" in text
    f = tg.compile_grad(_loss)
    f(X, Y)
    assert "custom_call" in f.ir("traced") and "custom_call" not in f.ir("optimized")


def test_closures_over_constants_work_and_over_differentiated_values_raise():
    k = np.array([1.0, 2.0, 3.0])

    @tg.custom_vjp
    def f(x):
        return x * k
    f.defvjp(lambda x: (x * k, None), lambda _, g: (g * k,))
    np.testing.assert_allclose(tg.grad(lambda x: np.sum(f(x)))(X), k)

    def outer(w):
        @tg.custom_vjp
        def h(x):
            return x * w
        h.defvjp(lambda x: (x * w, None), lambda _, g: (g * w,))
        return np.sum(h(X))
    with pytest.raises(TypeError, match="closes over a value that is being differentiated"):
        tg.grad(outer)(np.ones(3))


def test_custom_vjp_has_no_forward_mode_as_in_jax():
    with pytest.raises(TypeError, match="forward-mode .* custom_vjp"):
        tg.jvp(lambda x: scaled_sin(x, Y), (X,), (np.ones(3),))


@tg.custom_jvp
def softplus(x):
    return np.log1p(np.exp(x))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), t / (1 + np.exp(-x))


def test_custom_jvp_forward_reverse_and_second_order():
    sig = 1 / (1 + np.exp(-X))
    out, tangent = tg.jvp(softplus, (X,), (np.ones(3),))
    np.testing.assert_allclose(tangent, sig, rtol=1e-12)
    np.testing.assert_allclose(tg.grad(lambda x: np.sum(softplus(x)))(X), sig, rtol=1e-12)
    np.testing.assert_allclose(tg.compile_grad(lambda x: np.sum(softplus(x)))(X)[1][0], sig,
                               rtol=1e-12)
    second = tg.grad(lambda x: np.sum(tg.grad(lambda z: np.sum(softplus(z)))(x)))(X)
    np.testing.assert_allclose(second, sig * (1 - sig), rtol=1e-10)
    x = tg.tensor(X, requires_grad=True)
    softplus(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), sig, rtol=1e-12)


class MulAdd(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, k):
        ctx.k = k
        ctx.save_for_backward(x, y)
        return x * y + k, x - y

    @staticmethod
    def backward(ctx, g_prod, g_diff):
        x, y = ctx.saved_tensors
        return g_prod * y + g_diff, g_prod * x - g_diff, None


def _function_loss(x, y):
    p, d = MulAdd.apply(x, y, 2.0)
    return np.sum(p * 3.0 + d * d)


def test_autograd_function_eager_traced_and_compiled():
    want_x = 3.0 * Y + 2 * (X - Y)
    want_y = 3.0 * X - 2 * (X - Y)
    x, y = tg.tensor(X, requires_grad=True), tg.tensor(Y, requires_grad=True)
    _function_loss(x, y).backward()
    np.testing.assert_allclose(x.grad.numpy(), want_x, rtol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), want_y, rtol=1e-12)
    assert MulAdd.apply(x, y, 2.0)[0].grad_fn.name() == "MulAddBackward"
    for gx, gy in (tg.grad(_function_loss, argnums=(0, 1))(X, Y),
                   tg.compile_grad(_function_loss)(X, Y)[1]):
        np.testing.assert_allclose(gx, want_x, rtol=1e-12)
        np.testing.assert_allclose(gy, want_y, rtol=1e-12)


def test_a_saved_program_with_a_custom_call_round_trips(tmp_path):
    prog = tg.trace(_loss)(X, Y)
    prog.save(tmp_path / "p.tgir")
    loaded = tg.load(tmp_path / "p.tgir")
    assert str(loaded) == str(prog)
    np.testing.assert_allclose(tg.grad(lambda x, y: loaded(x, y), argnums=0)(X, Y),
                               _want_grads(X, Y)[0], rtol=1e-12)


def test_rule_errors_are_clear():
    bad = tg.custom_vjp(lambda x: x * 2.0)
    with pytest.raises(TypeError, match="call defvjp"):
        bad(X)
    bad.defvjp(lambda x: (x * 2.0, None), lambda _, g: g * 2.0)
    with pytest.raises(TypeError, match="tuple of 1 cotangents"):
        tg.grad(lambda x: np.sum(bad(x)))(X)


# ---- checkpoint -------------------------------------------------------------------------

def _chain(ws, x, remat):
    def segment(h, ws):
        for i in range(ws.shape[0]):
            h = np.tanh(h @ ws[i])
        return h
    seg = tg.checkpoint(segment) if remat else segment
    h = x
    for s in range(0, ws.shape[0], 4):
        h = seg(h, ws[s:s + 4])
    return np.sum(h * h)


def test_checkpoint_gives_the_same_gradients_and_a_smaller_arena():
    from tracegrad.codegen.lower import plan_arena

    rng = np.random.default_rng(1)
    ws, x = rng.standard_normal((16, 32, 32)) * 0.2, rng.standard_normal((128, 32))
    results, arenas = [], []
    for remat in (False, True):
        f = tg.compile_grad(lambda ws, x, remat=remat: _chain(ws, x, remat), argnums=0,
                            disk_cache=False)
        results.append(f(ws, x))
        arenas.append(plan_arena(f._spec().native.kernel_program())[1])
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-12, atol=1e-14)
    assert arenas[1] < 0.7 * arenas[0], arenas  # 16 layers' activations -> a 4-layer segment
    eager = tg.grad(lambda ws: _chain(ws, x, True))(ws)
    np.testing.assert_allclose(eager, results[0][1], rtol=1e-12, atol=1e-14)


def test_checkpoint_forward_mode_tensors_and_vmap():
    f = tg.checkpoint(lambda x: np.sin(x) * x)
    x = np.array([0.2, -0.4])
    _, t = tg.jvp(f, (x,), (np.ones(2),))
    np.testing.assert_allclose(t, np.cos(x) * x + np.sin(x), rtol=1e-12)
    xt = tg.tensor(x, requires_grad=True)
    f(xt).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), t, rtol=1e-12)
    per_row = tg.vmap(tg.grad(lambda r: np.sum(f(r))))(np.stack([x, 2 * x]))
    np.testing.assert_allclose(per_row[0], t, rtol=1e-12)
    assert "optimization_barrier" in str(tg.trace(tg.grad(lambda r: np.sum(f(r))))(x))


def test_against_jax_custom_rules_and_checkpoint():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    @jax.custom_vjp
    def j_scaled_sin(x, y):
        return jnp.sin(x) * y
    j_scaled_sin.defvjp(lambda x, y: (jnp.sin(x) * y, (jnp.cos(x), jnp.sin(x), y)),
                        lambda r, g: (r[0] * r[2] * g, r[1] * g))
    want = jax.grad(lambda x, y: jnp.sum(j_scaled_sin(x, y) ** 2), argnums=(0, 1))(X, Y)
    for g, w in zip(tg.grad(_loss, argnums=(0, 1))(X, Y), want):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-12)

    @jax.custom_jvp
    def j_softplus(x):
        return jnp.log1p(jnp.exp(x))
    j_softplus.defjvp(lambda p, t: (j_softplus(p[0]), t[0] / (1 + jnp.exp(-p[0]))))
    for ours, theirs in ((lambda x: np.sum(softplus(x) ** 2), lambda x: jnp.sum(j_softplus(x) ** 2)),
                         (lambda x: np.sum(tg.checkpoint(np.sin)(x) * x),
                          lambda x: jnp.sum(jax.checkpoint(jnp.sin)(x) * x))):
        np.testing.assert_allclose(tg.grad(ours)(X), np.asarray(jax.grad(theirs)(X)), rtol=1e-12)
        np.testing.assert_allclose(tg.hessian(ours)(X), np.asarray(jax.hessian(theirs)(X)),
                                   rtol=1e-10, atol=1e-12)


def test_checkpoint_differentiates_values_it_closes_over():
    w = np.array([0.3, -0.2])

    def loss(w, x):
        return np.sum(tg.checkpoint(lambda a: np.sin(a * w))(x) ** 2)
    x = np.array([1.0, 2.0])
    want = tg.grad(lambda w, x: np.sum(np.sin(x * w) ** 2), argnums=(0, 1))(w, x)
    for got in (tg.grad(loss, argnums=(0, 1))(w, x), tg.compile_grad(loss)(w, x)[1]):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_checkpoint_takes_python_scalars_and_traced_floats():
    f = tg.checkpoint(lambda a, s: np.sin(a) * s)
    x = np.array([0.5, 1.0])
    np.testing.assert_allclose(tg.jit(lambda x: f(x, 2.0))(x), 2 * np.sin(x), rtol=1e-12)

    def g(x):
        return np.sum(f(x, np.sum(x).item()))  # a detached traced float
    np.testing.assert_allclose(tg.compile_grad(g)(x)[1][0], np.cos(x) * np.sum(x), rtol=1e-12)


def _rule_of_twice_cos(custom):
    """sin with the (deliberately wrong) derivative 2 cos: every order must use it."""
    if custom is tg.custom_jvp:
        @tg.custom_jvp
        def f(x):
            return np.sin(x)

        @f.defjvp
        def f_jvp(primals, tangents):
            (x,), (dx,) = primals, tangents
            return f(x), 2 * np.cos(x) * dx
        return f

    @tg.custom_vjp
    def h(x):
        return np.sin(x)
    h.defvjp(lambda x: (h(x), x), lambda x, g: (2 * np.cos(x) * g,))
    return h


@pytest.mark.parametrize("custom", [tg.custom_jvp, tg.custom_vjp])
def test_second_order_uses_the_custom_rule(custom):
    """d2/dx2 f(x)**2 with f' := 2cos (f'' := -2 sin): 8 cos**2 - 4 sin**2, as JAX; the
    inner gradient keeps the call, so the outer one differentiates through the rule."""
    f = _rule_of_twice_cos(custom)
    x = 0.1
    want = 8 * np.cos(x) ** 2 - 4 * np.sin(x) ** 2
    np.testing.assert_allclose(tg.grad(tg.grad(lambda v: f(v) ** 2))(x), want, rtol=1e-13)
    np.testing.assert_allclose(tg.jit(tg.grad(tg.grad(lambda v: f(v) ** 2)))(x), want, rtol=1e-13)
    if custom is tg.custom_jvp:  # forward mode needs a jvp rule (as in JAX)
        np.testing.assert_allclose(tg.hessian(lambda v: f(v) ** 2)(x), want, rtol=1e-13)
        np.testing.assert_allclose(tg.jvp(tg.grad(lambda v: f(v) ** 2), (x,), (1.0,))[1],
                                   want, rtol=1e-13)
        np.testing.assert_allclose(tg.jacfwd(tg.jacfwd(lambda v: f(v) ** 2))(x), want,
                                   rtol=1e-13)


def test_autograd_function_double_backward_through_saved_inputs():
    """As torch.autograd.Function: forward saves the input tensor itself, so a
    create_graph backward's gradient has a graph (d2/dx2 x**3 = 6x)."""
    class Cube(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 3 * x ** 2 * g

    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    gx, = tg.autograd.grad([Cube.apply(x).sum()], [x], create_graph=True)
    assert gx.requires_grad and gx.grad_fn is not None
    np.testing.assert_allclose(gx.detach().numpy(), [3.0, 12.0])
    gx.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 12.0])
    y = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    Cube.apply(y).sum().backward()  # a plain backward: plain gradients
    assert y.grad.grad_fn is None
    np.testing.assert_allclose(y.grad.numpy(), [3.0, 12.0])


def test_nondiff_argnums_as_jax():
    """custom_jvp's rule and custom_vjp's bwd get the nondiff arguments first (a
    function, a static factor); the others are differentiated through the rules."""
    from functools import partial

    @partial(tg.custom_jvp, nondiff_argnums=(0,))
    def apply(f, x):
        return f(x)

    @apply.defjvp
    def apply_jvp(f, primals, tangents):
        (x,), (t,) = primals, tangents
        return apply(f, x), 3.0 * t  # deliberately not f'

    @partial(tg.custom_vjp, nondiff_argnums=(1,))
    def scale(x, k):
        return x * k
    scale.defvjp(lambda x, k: (scale(x, k), x), lambda k, res, g: (g * k * 10.0,))

    loss = lambda x: np.sum(apply(np.sin, x) * scale(x, 2.0))  # noqa: E731
    x = np.array([0.3, 0.7])
    want = 3.0 * 2.0 * x + np.sin(x) * 20.0
    np.testing.assert_allclose(tg.grad(loss)(x), want, rtol=1e-14)
    np.testing.assert_allclose(tg.compile_grad(loss)(x)[1][0], want, rtol=1e-14)


def test_checkpoint_static_argnums_and_keywords_as_jax():
    def layer(h, w, act, scale=1.0):
        return act(h @ w) * scale
    ck = tg.checkpoint(layer, static_argnums=(2,))
    w = np.eye(2) * 0.5
    got = tg.grad(lambda v: np.sum(ck(ck(np.ones(2), v, np.tanh), v, np.sin, scale=2.0)))(w)
    want = tg.grad(lambda v: np.sum(layer(layer(np.ones(2), v, np.tanh), v, np.sin, 2.0)))(w)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    cube = tg.checkpoint(static_argnums=(1,))(lambda x, n: x ** n)
    assert float(tg.grad(lambda x: cube(x, 3))(2.0)) == 12.0


# ---- autograd.Function: PyTorch's semantics for eager tensors ------------------------------

def _function(forward, backward):
    return type("F", (tg.autograd.Function,), {"forward": staticmethod(forward),
                                               "backward": staticmethod(backward)})


def test_function_with_several_outputs_runs_backward_once_with_all_cotangents():
    calls = []

    def backward(ctx, g1, g2):
        calls.append(1)
        return 2 * g1 + 3 * g2 + 1  # not linear: a per-output split would be wrong
    F = _function(lambda ctx, x: (x * 2, x * 3), backward)
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    a, b = F.apply(x)
    (a + b + a).sum().backward()
    assert x.grad.tolist() == [8.0, 8.0] and len(calls) == 1


def test_function_saved_tensor_changed_in_place_raises():
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x
    F = _function(forward, lambda ctx, g: 2 * ctx.saved_tensors[0] * g)
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    x = a * 1
    y = F.apply(x)
    x.add_(10)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_function_backward_sees_tensors_and_forward_runs_without_grad():
    seen = []

    def forward(ctx, x):
        seen.append((tg.is_grad_enabled(), ctx.needs_input_grad))
        return x * 2

    def backward(ctx, g):
        seen.append(type(g))
        return g.clone() * 2
    F = _function(forward, backward)
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    F.apply(x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]
    assert seen == [(False, (True,)), tg.Tensor]
    out = F.apply(tg.tensor([1.0]), )
    assert not out.requires_grad and seen[-1] == (False, (False,))


def test_function_saving_nothing_runs_backward_twice_and_none_leaves_no_grad():
    F = _function(lambda ctx, x, y: x * 2 + y, lambda ctx, g: (2 * g, None))
    x, y = (tg.tensor([1.0], requires_grad=True) for _ in range(2))
    out = F.apply(x, y).sum()
    out.backward()
    out.backward()
    assert x.grad.tolist() == [4.0] and y.grad is None


def test_function_gradient_checks_as_torch():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        _function(lambda ctx, x: x * 2, lambda ctx, g: (g, g)).apply(x).sum().backward()
    with pytest.raises(RuntimeError, match="invalid gradient at index 0"):
        _function(lambda ctx, x: x * 2, lambda ctx, g: g[:1]).apply(x).sum().backward()
    with pytest.raises(RuntimeError, match="not a Variable"):
        _function(lambda ctx, x, k: x * k, lambda ctx, g: (g, g)).apply(x, 2.0).sum().backward()
    # a gradient that broadcasts to the input is summed down to it
    _function(lambda ctx, x: x * 2, lambda ctx, g: g * np.ones((3, 2))).apply(x).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_function_mark_non_differentiable():
    def forward(ctx, x):
        order = np.argsort(x) * 1.0
        ctx.mark_non_differentiable(order)
        return x * 1.0, order
    F = _function(forward, lambda ctx, g, gi: g)
    v, i = F.apply(tg.tensor([2.0, 1.0], requires_grad=True))
    assert v.requires_grad and not i.requires_grad


def test_forward_over_reverse_of_a_custom_vjp_function_as_jax():
    # jvp(grad(f)), hessian and jacfwd(jacrev(f)) differentiate the forward rule, as JAX;
    # a plain jvp of the function still raises
    @tg.custom_vjp
    def s(x):
        return np.sin(x)
    s.defvjp(lambda x: (np.sin(x), x), lambda x, g: (np.cos(x) * g,))
    x = np.array([0.3, -1.2])

    def f(v):
        return np.sum(s(v) ** 2)
    want = np.diag(2 * np.cos(2 * x))  # d2/dx2 sin(x)^2 = 2 cos(2x)
    for h in (tg.hessian(f)(x), tg.jacfwd(tg.jacrev(f))(x), tg.jit(tg.hessian(f))(x)):
        np.testing.assert_allclose(h, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(tg.jvp(tg.grad(f), (x,), (np.ones(2),))[1], np.diag(want))
    with pytest.raises(TypeError, match="forward-mode"):
        tg.jvp(s, (x,), (np.ones(2),))


def test_two_checkpoints_under_vmap_of_grad_of_an_unmapped_argument():
    """Per-example gradients through two checkpointed calls: the second one's trace reads
    a value of the abstract vmap trace, which has no example value (it raised KeyError)."""
    c = tg.checkpoint(lambda h, w: np.sin(h * w))

    def f(w, x):
        return c(c(x, w), w).sum()

    x, w = np.array([[0.1, 0.2], [0.3, 0.4]]), np.array([1.5, 2.0])
    got = tg.vmap(tg.grad(f), in_axes=(None, 0))(w, x)
    want = np.stack([tg.grad(f)(w, xi) for xi in x])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    h = np.sin(x * w)  # d/dw sum(sin(sin(x w) w)) = cos(h w) (h + w cos(x w) x)
    np.testing.assert_allclose(got, np.cos(h * w) * (h + w * np.cos(x * w) * x), rtol=1e-12)
