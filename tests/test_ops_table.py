"""Table-driven tests of every front-end operation (PyTorch OpInfo / JAX check_grads style).

ONE table (`OPS`): operation, arity, input shapes (broadcasting cases), input
domain, dtypes, tolerance, whether it is differentiable, expected failures.
Each row is checked for
  * forward: eager tensors == numpy, in float32 and float64 (dtype and values);
  * gradient (float64): eager backward == central differences, and the
    dot-product test <t, vjp(c)> == <jvp_fd(t), c> for random t, c;
  * interpreter == eager: the traced graph run by `ir.eval_graph` gives the
    eager result bit for bit.
Every function of tracegrad.numpy has its own entry in the larger OpInfo table
(tests/opinfo.py, run by tests/test_opinfo.py), which also checks that every
primitive is reached from the front end.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

from tracegrad import ir
from tracegrad.tracer import numpy as tnp
from tracegrad.tracer import tensor, trace

FLOATS = ("float32", "float64")
U = (((),), ((3,),), ((2, 3),))                                   # unary shapes
B = (((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((4,), ()))  # binary


def away_from(points, margin=0.1):
    """Domain predicate: every input element at least `margin` from the kink `points`."""
    return lambda *xs: all(np.all(np.abs(x - p) > margin) for x in xs for p in points)


def no_ties(x, y):
    return bool(np.all(np.abs(np.subtract(x, y)) > 0.1))


@dataclass(frozen=True)
class Op:
    name: str
    fn: Callable                 # tracegrad: called on tensors and traced values
    ref: Callable                # numpy reference on ndarrays
    arity: int
    shapes: tuple
    low: float = -2.0            # inputs are drawn uniformly from [low, high] ...
    high: float = 2.0
    valid: Callable | None = None  # ... and redrawn until `valid(*inputs)` (kinks, ties)
    dtypes: tuple = FLOATS
    rtol: float = 1e-6           # float32 tolerance (float64 uses rtol ** 2)
    grad: bool = True
    xfail: dict = field(default_factory=dict)  # test kind -> reason (strict xfail)


def sigmoid_ref(x):
    return 1 / (1 + np.exp(-x))


def logsumexp_ref(x, axis, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def pad_ref(x):
    """Zeros of (7, 3) holding x's rows at 1, 3, 5: ir.ops.pad(x, (1, 0), (2, 1), (7, 3))."""
    out = np.zeros((7, 3), x.dtype)
    out[1:7:2] = x
    return out


def softmax_ref(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


MATMUL_SHAPES = (((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                 ((5, 2, 3), (3, 4)), ((5, 2, 3), (1, 3, 4)))
R3 = (((2, 3, 4),),)

OPS = [
    # -- unary elementwise
    Op("exp", tnp.exp, np.exp, 1, U),
    Op("log", tnp.log, np.log, 1, U, low=0.3),
    Op("log1p", tnp.log1p, np.log1p, 1, U, low=-0.5),
    Op("expm1", tnp.expm1, np.expm1, 1, U),
    Op("sqrt", tnp.sqrt, np.sqrt, 1, U, low=0.3),
    Op("sin", tnp.sin, np.sin, 1, U),
    Op("cos", tnp.cos, np.cos, 1, U),
    Op("tanh", tnp.tanh, np.tanh, 1, U),
    Op("abs", tnp.abs, np.abs, 1, U, valid=away_from([0])),
    Op("sign", tnp.sign, np.sign, 1, U, valid=away_from([0])),
    Op("negative", lambda x: -x, np.negative, 1, U),
    Op("square", tnp.square, np.square, 1, U),
    Op("reciprocal", tnp.reciprocal, np.reciprocal, 1, U, valid=away_from([0], 0.3)),
    Op("pow_int", lambda x: x ** 3, lambda x: x ** 3, 1, U),
    Op("pow_neg_int", lambda x: x ** -2, lambda x: x ** -2.0, 1, U, valid=away_from([0], 0.3)),
    Op("pow_float", lambda x: x ** 2.5, lambda x: x ** 2.5, 1, U, low=0.3),
    Op("rpow", lambda x: 2.0 ** x, lambda x: 2.0 ** x, 1, U),
    Op("sigmoid", tnp.sigmoid, sigmoid_ref, 1, U, low=-8, high=8),
    Op("softplus", tnp.softplus, lambda x: np.log1p(np.exp(x)), 1, U, low=-8, high=8),
    Op("relu", tnp.relu, lambda x: np.maximum(x, 0), 1, U, valid=away_from([0])),
    Op("clip", lambda x: tnp.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), 1, U,
       valid=away_from([-0.5, 0.5])),
    Op("scalar_arith", lambda x: 3 - x / 2 + 1.5 * x, lambda x: 3 - x / 2 + 1.5 * x, 1, U),
    # -- binary elementwise (with broadcasting)
    Op("add", lambda x, y: x + y, np.add, 2, B),
    Op("subtract", lambda x, y: x - y, np.subtract, 2, B),
    Op("multiply", lambda x, y: x * y, np.multiply, 2, B),
    Op("divide", lambda x, y: x / y, np.divide, 2, B, valid=lambda x, y: away_from([0], 0.3)(y)),
    Op("power", lambda x, y: x ** y, np.power, 2, B, low=0.3),
    Op("maximum", tnp.maximum, np.maximum, 2, B, valid=no_ties),
    Op("minimum", tnp.minimum, np.minimum, 2, B, valid=no_ties),
    Op("where", lambda x, y: tnp.where(x > 0, x, y), lambda x, y: np.where(x > 0, x, y), 2, B,
       valid=lambda x, y: away_from([0])(x)),
    Op("int_add", lambda x, y: x + y, np.add, 2, B, dtypes=("int32", "int64"), grad=False),
    Op("int_mul_scalar", lambda x: x * 3, lambda x: x * 3, 1, U, dtypes=("int32", "int64"),
       grad=False),
    Op("int_true_divide", lambda x, y: x / y, np.divide, 2, B, dtypes=("int64",), grad=False,
       valid=lambda x, y: away_from([0], 0.5)(y)),
    Op("less", lambda x, y: x < y, np.less, 2, B, grad=False, valid=no_ties),
    Op("greater_equal", lambda x, y: x >= y, np.greater_equal, 2, B, grad=False, valid=no_ties),
    Op("not_equal", lambda x, y: x != y, np.not_equal, 2, B, grad=False),
    Op("less_equal", tnp.less_equal, np.less_equal, 2, B, grad=False, valid=no_ties),
    Op("equal_int", lambda x, y: x == y, np.equal, 2, B, grad=False, dtypes=("int32", "int64")),
    Op("logical_or", lambda x, y: (x > 0) | (y < 0), lambda x, y: (x > 0) | (y < 0), 2, B,
       grad=False),
    Op("logical_and", lambda x, y: (x > 0) & (y < 0), lambda x, y: (x > 0) & (y < 0), 2, B,
       grad=False),
    Op("logical_not", lambda x: ~(x > 0), lambda x: ~(x > 0), 1, U, grad=False),
    # -- more elementwise math (tracer/numpy/math.py; tests/test_numpy_math.py has the rest)
    Op("arctan", tnp.arctan, np.arctan, 1, U),
    Op("arctan2", tnp.arctan2, np.arctan2, 2, B, valid=lambda x, y: away_from([0], 0.3)(y)),
    Op("log2", tnp.log2, np.log2, 1, U, low=0.3),
    Op("log10", tnp.log10, np.log10, 1, U, low=0.3),
    Op("exp2", tnp.exp2, np.exp2, 1, U),
    *[Op(f, getattr(tnp, f), getattr(np, f), 1, U, grad=False)
      for f in ("floor", "ceil", "rint", "trunc", "signbit")],
    Op("copysign", tnp.copysign, np.copysign, 2, B, valid=away_from([0])),
    Op("fmod", tnp.fmod, np.fmod, 2, B, valid=lambda x, y: away_from([0], 0.3)(y) and bool(
        np.all(np.abs(x / y - np.round(x / y)) > 0.1))),
    Op("int_bitwise", lambda x, y: (x & y) | (x ^ ~y), lambda x, y: (x & y) | (x ^ ~y), 2, B,
       dtypes=("int32", "int64"), grad=False),
    Op("int_shifts", lambda x, y: (x << 3) >> y, lambda x, y: (x << 3) >> y, 2, B,
       dtypes=("int32", "int64"), grad=False),
    # -- products
    Op("matmul", lambda x, y: x @ y, np.matmul, 2, MATMUL_SHAPES),
    Op("dot", tnp.dot, np.dot, 2, MATMUL_SHAPES[:4] + (((2, 3), (4, 3, 2)),)),
    Op("int_matmul", lambda x, y: x @ y, np.matmul, 2, MATMUL_SHAPES, dtypes=("int64",),
       grad=False),
    # -- reductions
    Op("sum", tnp.sum, np.sum, 1, U + R3),
    Op("sum_axis", lambda x: tnp.sum(x, axis=-1), lambda x: np.sum(x, axis=-1), 1, U[1:] + R3),
    Op("sum_axes_keep", lambda x: x.sum(axis=(0, 2), keepdims=True),
       lambda x: x.sum(axis=(0, 2), keepdims=True), 1, R3),
    Op("mean", lambda x: tnp.mean(x, axis=1), lambda x: np.mean(x, axis=1), 1, ((((2, 3),),) + R3)),
    Op("var", lambda x: tnp.var(x, axis=0, ddof=1), lambda x: np.var(x, axis=0, ddof=1), 1,
       ((((4, 3),),) + R3)),
    Op("std", tnp.std, np.std, 1, U[1:] + R3),
    Op("max", lambda x: tnp.max(x, axis=1), lambda x: np.max(x, axis=1), 1, ((((2, 3),),) + R3)),
    Op("min_keep", lambda x: x.min(axis=-1, keepdims=True),
       lambda x: x.min(axis=-1, keepdims=True), 1, U[1:] + R3),
    Op("amax_all", tnp.amax, np.amax, 1, U + R3),
    Op("logsumexp", lambda x: tnp.logsumexp(x, axis=1, keepdims=True),
       lambda x: logsumexp_ref(x, 1, True), 1, ((((2, 3),),) + R3)),
    Op("logsumexp_all", tnp.logsumexp, lambda x: logsumexp_ref(x, None), 1, U + R3),
    Op("softmax", tnp.softmax, lambda x: softmax_ref(x, -1), 1, U[1:] + R3),
    # -- pad, the primitive behind slice gradients (no NumPy-level function yet)
    Op("pad", lambda x: ir.ops.pad(x, (1, 0), (2, 1), (7, 3)), pad_ref, 1, (((3, 3),),)),
    Op("log_softmax", lambda x: tnp.log_softmax(x, axis=0),
       lambda x: np.log(softmax_ref(x, 0)), 1, U[1:] + R3),
    # -- structural
    Op("reshape", lambda x: x.reshape(-1, 2), lambda x: x.reshape(-1, 2), 1, ((((2, 3),),) + R3)),
    Op("transpose", lambda x: x.transpose(1, 0, 2), lambda x: x.transpose(1, 0, 2), 1, R3),
    Op("T", lambda x: x.T, lambda x: x.T, 1, U + R3),
    Op("swapaxes", lambda x: tnp.swapaxes(x, 0, -1), lambda x: np.swapaxes(x, 0, -1), 1, R3),
    Op("broadcast_to", lambda x: tnp.broadcast_to(x, (2, 2, 3)),
       lambda x: np.broadcast_to(x, (2, 2, 3)), 1, U),
    Op("concatenate", lambda x, y: tnp.concatenate([x, y, x], axis=1),
       lambda x, y: np.concatenate([x, y, x], axis=1), 2, (((2, 3), (2, 1)),)),
    Op("stack", lambda x, y: tnp.stack([x, y], axis=-1), lambda x, y: np.stack([x, y], axis=-1),
       2, (((2, 3), (2, 3)),)),
    Op("squeeze", tnp.squeeze, np.squeeze, 1, ((((1, 3, 1),),))),
    Op("expand_dims", lambda x: tnp.expand_dims(x, (0, -1)),
       lambda x: np.expand_dims(x, (0, -1)), 1, U),
    Op("flatten", lambda x: x.flatten(), lambda x: x.flatten(), 1, U + R3),
    Op("index_int", lambda x: x[1], lambda x: x[1], 1, R3),
    Op("index_neg_step", lambda x: x[-1, ::-2], lambda x: x[-1, ::-2], 1, R3),
    Op("index_mixed", lambda x: x[::-1, None, 1:3, ...], lambda x: x[::-1, None, 1:3, ...], 1,
       R3),
    Op("index_ellipsis", lambda x: x[..., 0], lambda x: x[..., 0], 1, U[1:] + R3),
    Op("astype", lambda x: x.astype(np.float32), lambda x: x.astype(np.float32), 1, U,
       grad=False),
    Op("exp_of_bool", lambda x: tnp.exp(x > 0), lambda x: np.exp(x > 0), 1, U, grad=False,
       dtypes=("float64",),
       xfail={"forward": "numpy computes float16 for bool inputs; tracegrad float64 by design"}),
]


def _cases(kind, dtypes=None, need_grad=False):
    out = []
    for op in OPS:
        if need_grad and not op.grad:
            continue
        for dt in (dtypes or op.dtypes):
            if dt not in op.dtypes:
                continue
            for k, shapes in enumerate(op.shapes):
                marks = ([pytest.mark.xfail(strict=True, reason=op.xfail[kind])]
                         if kind in op.xfail else [])
                out.append(pytest.param(op, shapes, dt, marks=marks, id=f"{op.name}-{dt}-{k}"))
    return out


def draw(op: Op, shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        xs = [rng.uniform(op.low, op.high, s) for s in shapes]
        if np.dtype(dtype).kind == "i":
            xs = [np.round(x * 3) for x in xs]
        xs = [np.asarray(x, dtype) for x in xs]
        if op.valid is None or op.valid(*xs):
            return xs
    raise AssertionError(f"could not draw valid inputs for {op.name}")


def assert_matches(got, want, dtype, rtol):
    want = np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape
    tol = rtol if np.dtype(dtype) == np.float32 else rtol ** 2
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("op,shapes,dtype", _cases("forward"))
def test_forward_matches_numpy(op, shapes, dtype):
    xs = draw(op, shapes, dtype)
    out = op.fn(*[tensor(x) for x in xs])
    assert_matches(out.data, op.ref(*xs), dtype, op.rtol)


def _loss_ref(op, xs, c):
    return float(np.sum(op.ref(*xs) * c))


def _eager_grads(op, xs, c):
    ts = [tensor(x, requires_grad=True) for x in xs]
    (op.fn(*ts) * c).sum().backward()
    return [t.grad.data if t.grad is not None else np.zeros_like(t.data) for t in ts]


@pytest.mark.parametrize("op,shapes,dtype", _cases("grad", ["float64"], need_grad=True))
def test_grad_central_differences(op, shapes, dtype):
    xs = draw(op, shapes, dtype)
    c = np.random.default_rng(1).standard_normal(np.shape(op.ref(*xs)))
    grads = _eager_grads(op, xs, c)
    eps = 1e-6
    for i, x in enumerate(xs):
        fd = np.zeros_like(x)
        for j in np.ndindex(x.shape):
            plus = [v.copy() for v in xs]
            minus = [v.copy() for v in xs]
            plus[i][j] += eps
            minus[i][j] -= eps
            fd[j] = (_loss_ref(op, plus, c) - _loss_ref(op, minus, c)) / (2 * eps)
        assert grads[i].shape == x.shape and grads[i].dtype == x.dtype
        np.testing.assert_allclose(grads[i], fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op,shapes,dtype", _cases("dot", ["float64"], need_grad=True))
def test_grad_dot_product(op, shapes, dtype):
    """<t, vjp(c)> == <jvp_fd(t), c>: the VJP is the transpose of the derivative."""
    xs = draw(op, shapes, dtype)
    rng = np.random.default_rng(2)
    c = rng.standard_normal(np.shape(op.ref(*xs)))
    ts = [rng.standard_normal(x.shape) for x in xs]
    lhs = sum(float(np.sum(t * g)) for t, g in zip(ts, _eager_grads(op, xs, c)))
    eps = 1e-6
    plus = op.ref(*[x + eps * t for x, t in zip(xs, ts)])
    minus = op.ref(*[x - eps * t for x, t in zip(xs, ts)])
    rhs = float(np.sum((plus - minus) / (2 * eps) * c))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("op,shapes,dtype", _cases("interpreter"))
def test_interpreter_equals_eager(op, shapes, dtype):
    xs = draw(op, shapes, dtype)
    prog = trace(op.fn)(*xs)
    got, = ir.eval_graph(prog.graph, *xs)
    want = op.fn(*[tensor(x) for x in xs]).data
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
