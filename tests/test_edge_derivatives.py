"""Derivatives at edge points follow JAX's conventions (docs/derivatives.md),
the same in eager backward, `grad` (traced) and compiled code."""
import numpy as np
import pytest

import tracegrad as tg

NAN = float("nan")
INF = float("inf")

# (name, function, point, JAX's derivative there)
CASES = [
    ("power x**0.0 at 0", lambda x: np.power(x, 0.0), 0.0, 0.0),
    ("power x**1.0 at 0", lambda x: np.power(x, 1.0), 0.0, 1.0),
    ("power x**2.0 at 0", lambda x: np.power(x, 2.0), 0.0, 0.0),
    ("power 0**y in y", lambda y: np.power(0.0, y + 2.0), 1.0, 0.0),
    ("integer power x**0 at 0", lambda x: x ** 0, 0.0, 0.0),
    ("integer power x**1 at 0", lambda x: x ** 1, 0.0, 1.0),
    ("sqrt at 0", np.sqrt, 0.0, INF),
    ("abs at 0", np.abs, 0.0, 1.0),
    ("abs at -0.0", np.abs, -0.0, 1.0),
    ("maximum at a tie", lambda x: np.maximum(x, 0.0), 0.0, 0.5),
    ("minimum at a tie", lambda x: np.minimum(x, 0.0), 0.0, 0.5),
    ("max over ties", lambda x: np.max(x * np.ones(4)), 2.0, 1.0),
    ("std of a constant", lambda x: np.std(x * np.ones(3)), 1.0, NAN),
    ("var of a constant", lambda x: np.var(x * np.ones(3)), 1.0, 0.0),
    ("where with an unselected inf", lambda x: np.where(x > 0, x, np.inf), 2.0, 1.0),
    ("where with an unselected nan branch", lambda x: np.where(x > 0, np.sqrt(x), 0.0), -1.0,
     NAN),
    ("sign is flat", lambda x: np.sign(x) * 3.0 + x, 0.5, 1.0),
]


def _same(got, want):
    got = float(got)
    return np.isnan(want) and np.isnan(got) or got == want


@pytest.mark.parametrize("name,f,x,want", CASES, ids=[c[0] for c in CASES])
def test_traced_grad(name, f, x, want):
    assert _same(tg.grad(f)(x), want)


@pytest.mark.parametrize("name,f,x,want", CASES, ids=[c[0] for c in CASES])
def test_eager_backward(name, f, x, want):
    t = tg.tensor(x, requires_grad=True)
    f(t).backward()
    assert _same(t.grad.item(), want)


@pytest.mark.parametrize("name,f,x,want", CASES, ids=[c[0] for c in CASES])
def test_compiled(name, f, x, want):
    _, (g,) = tg.compile_grad(f)(np.asarray(x))
    assert _same(g, want)


def test_sign_is_not_differentiable_in_the_table():
    from tracegrad.ir import PRIMITIVES
    assert not PRIMITIVES["sign"].differentiable
    assert all(not PRIMITIVES[n].differentiable for n in ("lt", "eq", "and", "not", "stop_gradient"))


def test_sign_keeps_pytorchs_backward_node_eagerly():
    t = tg.tensor([1.0, -2.0], requires_grad=True)
    y = np.sign(t)
    assert type(y.grad_fn).__name__ == "SignBackward0"
    y.sum().backward()
    assert t.grad.tolist() == [0.0, 0.0]
