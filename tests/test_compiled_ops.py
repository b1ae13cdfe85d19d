"""Every op of the op table compiled: native forward == eager, native gradients ==
eager gradients, in float32 and float64, with the table's broadcasting shapes,
plus odd sizes (vector remainders) and 0-size arrays for the elementwise ones.

The table and its input domains live in test_ops_table.py (one table for all).
"""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad
from tracegrad.tracer import tensor

from test_ops_table import OPS, _cases, _eager_grads, draw

# Native transcendentals are polynomial approximations within a few ULP of numpy
# (docs/mathlib.md) and sums are reassociated (docs/codegen.md): compare with
# tolerances, not bit for bit.
RTOL = {"float32": 2e-5, "float64": 1e-12}
ODD_SIZES = ((1,), (7,), (33,), (1023,), (0,))


def _close(got, want, dtype):
    want = np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    tol = RTOL.get(dtype, 0)
    if want.dtype == np.bool_ or np.issubdtype(want.dtype, np.integer):
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("op,shapes,dtype", _cases("compiled"))
def test_compiled_forward_equals_eager(op, shapes, dtype):
    xs = draw(op, shapes, dtype)
    want = op.fn(*[tensor(x) for x in xs]).data
    got = tracegrad.jit(op.fn)(*xs)
    _close(got, want, dtype)


@pytest.mark.parametrize("op,shapes,dtype", _cases("compiled_grad", need_grad=True))
def test_compiled_grad_equals_eager(op, shapes, dtype):
    xs = draw(op, shapes, dtype)
    c = np.random.default_rng(1).standard_normal(np.shape(op.ref(*xs))).astype(dtype)
    want = _eager_grads(op, xs, c)
    value, grads = tracegrad.compile_grad(lambda *a: (op.fn(*a) * c).sum())(*xs)
    for g, w in zip(grads, want):
        _close(g, w, dtype)


ELEMENTWISE = [op for op in OPS if op.arity == 1 and op.shapes[0] == ((),) and op.grad
               and np.shape(op.ref(np.full(3, 0.5))) == (3,)]


@pytest.mark.parametrize("shape", ODD_SIZES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_odd_and_zero_sizes_every_elementwise_op(shape, dtype):
    """All unary ops in one compiled function per size: remainders and empty loops."""
    # Drawn at 33 elements (domain predicates such as "away from 0" hold there) and
    # tiled to the size under test: every element stays in the op's domain.
    draws = [np.resize(draw(op, ((33,),), dtype, seed=3)[0], shape) for op in ELEMENTWISE]

    def many(*xs):
        return tuple(op.fn(x) for op, x in zip(ELEMENTWISE, xs))

    got = tracegrad.jit(many)(*draws)
    for op, x, g in zip(ELEMENTWISE, draws, got):
        _close(g, op.fn(tensor(x)).data, dtype)

    def loss(*xs):
        return sum((op.fn(x) * (i + 1.0)).sum() for i, (op, x) in enumerate(zip(ELEMENTWISE, xs)))

    _, grads = tracegrad.compile_grad(loss)(*draws)
    for i, (op, x, g) in enumerate(zip(ELEMENTWISE, draws, grads)):
        t = tensor(x, requires_grad=True)
        (op.fn(t) * (i + 1.0)).sum().backward()
        want = t.grad.data if t.grad is not None else np.zeros_like(x)  # sign: no cotangent
        _close(g, want, dtype)


@pytest.mark.parametrize("axis", [0, 1, 2, (0, 2), None])
@pytest.mark.parametrize("reduce", ["sum", "max", "min", "mean"])
def test_reductions_over_each_axis(reduce, axis):
    x = np.random.default_rng(4).standard_normal((5, 7, 9)).astype(np.float32)
    f = tracegrad.jit(lambda x: getattr(x, reduce)(axis=axis))
    np.testing.assert_allclose(f(x), getattr(x, reduce)(axis=axis), rtol=1e-5, atol=1e-6)
