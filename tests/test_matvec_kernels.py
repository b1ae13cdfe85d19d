"""Matrix-vector products as loop kernels (passes/matvec.py), alone and row-blocked."""
import numpy as np
import pytest

import tracegrad
from tracegrad.codegen.compiler import compile_program
from tracegrad.passes import matvec
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import Buffer, DotKernel, KernelProgram, LoopKernel, LoopStep

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}

# (m, k, n, trans_a, trans_b): every narrow shape and storage order
NARROW = [(97, 83, 1, False, False), (97, 83, 1, True, False),
          (1, 83, 97, False, False), (1, 83, 97, False, True),
          (1, 5003, 1, False, False)]
# a narrow side of 2..SMALL_N: X @ W, X.T @ G (both operands stream the rows), W.T @ X.T, ...
SMALL = [(97, 83, 4, False, False), (97, 83, 3, False, True), (83, 501, 4, True, False),
         (83, 501, 2, True, True), (4, 83, 97, False, False), (3, 83, 97, True, True),
         (2, 1001, 4, False, False), (4, 1001, 3, True, False)]


def dot_program(m, k, n, trans_a, trans_b, dtype):
    """in0 @ in1 as one DotKernel, the operands stored as the flags say."""
    a_shape = (k, m) if trans_a else (m, k)
    b_shape = (n, k) if trans_b else (k, n)
    a = Buffer("in0", a_shape, np.dtype(dtype), "input", index=0)
    b = Buffer("in1", b_shape, np.dtype(dtype), "input", index=1)
    out = Buffer("out0", (m, n), np.dtype(dtype), "output", index=0)
    kernel = DotKernel("k0", a, b, out, 1, m, k, n, trans_a, trans_b)
    return KernelProgram([a, b], [out], [], [], [kernel])


def operands(m, k, n, trans_a, trans_b, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    want = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)
    return a, b, want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", NARROW + SMALL)
def test_narrow_product_becomes_a_loop_with_the_same_result(shape, dtype):
    kp = dot_program(*shape, dtype)
    loops = matvec.matvec_loops(kp)
    kernel, = loops.kernels
    assert isinstance(kernel, LoopKernel)
    # the loop walks the matrix as stored (its rows are dim 0), the inner dim contiguously
    if len(kernel.domain) > 1:
        assert kernel.body[0].buffer.shape[0] == kernel.domain[0]
    indexes = [ins.index for ins in kernel.body[:2]] + [kernel.stores[0].index]
    assert any(index.strides[-1] == 1 for index in indexes)
    a, b, want = operands(*shape, dtype)
    got, = run_program(loops, a, b)
    np.testing.assert_allclose(got, want, **TOL[dtype])
    native, = compile_program(loops, disk_cache=False)(a, b)
    np.testing.assert_allclose(native, want, **TOL[dtype])


@pytest.mark.parametrize("shape", [(64, 64, 64, False, False), (97, 83, 5, False, False),
                                   (3, 5, 1, False, False)])
def test_products_that_are_not_narrow_or_are_small_stay(shape):
    kp = dot_program(*shape, np.float64)
    assert not matvec.narrow(kp.kernels[0])
    assert matvec.matvec_loops(kp) is kp


def test_a_batched_product_stays():
    a = Buffer("in0", (4, 97, 83), np.dtype(np.float64), "input", index=0)
    b = Buffer("in1", (4, 83), np.dtype(np.float64), "input", index=1)
    out = Buffer("out0", (4, 97), np.dtype(np.float64), "output", index=0)
    assert not matvec.narrow(DotKernel("k0", a, b, out, 4, 97, 83, 1))


def logistic_loss(w, X, y):
    return np.mean(np.log(1 + np.exp(-y * (X @ w))))


def logistic_grad(w, X, y):
    X, y, w = (v.astype(np.float64) for v in (X, y, w))
    e = np.exp(-y * (X @ w))
    return np.mean(np.log(1 + e)), X.T @ (-y * e / (1 + e)) / X.shape[0]


def logistic_inputs(rows, cols, dtype, seed=4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, cols)).astype(dtype)
    y = np.where(rng.standard_normal(rows) > 0, 1.0, -1.0).astype(dtype)
    return (0.1 * rng.standard_normal(cols)).astype(dtype), X, y


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [6000, 6007])
def test_logistic_regression_reads_X_in_one_row_blocked_pass(monkeypatch, rows, dtype, threads):
    monkeypatch.setenv("TRACEGRAD_NUM_THREADS", threads)
    args = logistic_inputs(rows, 60, dtype)
    f = tracegrad.compile_grad(logistic_loss, argnums=0, disk_cache=False)
    value, grad = f(*args)
    kp = f._spec().native.kernel_program()
    assert not any(isinstance(k, DotKernel) for k in kp.kernels)
    step, = [k for k in kp.kernels if isinstance(k, LoopStep)]
    # X is a row slice of the one step: the forward product and the gradient share a pass
    assert any(x is kp.inputs[1] for x in step.xs)
    assert sum(kp.inputs[1] in k.reads() for k in kp.kernels) == 1
    want_value, want_grad = logistic_grad(*args)
    np.testing.assert_allclose(value, want_value, **TOL[dtype])
    np.testing.assert_allclose(grad, want_grad, **TOL[dtype])
    for got, ref in zip(run_program(kp, *args), (want_value, want_grad)):
        np.testing.assert_allclose(got, ref, **TOL[dtype])


def softmax_regression(W, X, Y):
    z = X @ W
    z = z - np.max(z, axis=1, keepdims=True)
    return -np.mean(np.sum(Y * (z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))), axis=1))


def softmax_regression_grad(W, X, Y):
    W, X, Y = (v.astype(np.float64) for v in (W, X, Y))
    z = X @ W
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    value = -np.mean(np.sum(Y * np.log(p), axis=1))
    return value, X.T @ (p * Y.sum(axis=1, keepdims=True) - Y) / X.shape[0]


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_regression_with_three_classes_is_one_pass(monkeypatch, dtype, threads):
    monkeypatch.setenv("TRACEGRAD_NUM_THREADS", threads)
    rng = np.random.default_rng(9)
    X = rng.standard_normal((4001, 50)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 4001)]
    W = (0.1 * rng.standard_normal((50, 3))).astype(dtype)
    f = tracegrad.compile_grad(softmax_regression, argnums=0, disk_cache=False)
    value, grad = f(W, X, Y)
    kp = f._spec().native.kernel_program()
    assert not any(isinstance(k, DotKernel) for k in kp.kernels)
    assert sum(kp.inputs[1] in k.reads() for k in kp.kernels) == 1
    want_value, want_grad = softmax_regression_grad(W, X, Y)
    np.testing.assert_allclose(value, want_value, **TOL[dtype])
    np.testing.assert_allclose(grad, want_grad, **TOL[dtype])
