"""Sums a halo short of their neighbours' domain share their kernel (passes/halo.py)."""
import numpy as np
import pytest

import tracegrad
import tracegrad.numpy as tnp
from tracegrad.ir import GraphBuilder, ShapedArray, eval_graph, ops
from tracegrad.passes.fusion import fuse
from tracegrad.passes.halo import HALO, pad_sums
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import LoopKernel


def _rosenbrock(x):
    return tnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _loops(kp):
    return [k for k in kp.kernels if isinstance(k, LoopKernel)]


def test_a_stencil_loss_and_its_gradient_take_one_pass():
    f = tracegrad.compile_grad(_rosenbrock, disk_cache=False)
    x = np.random.default_rng(0).uniform(-2, 2, 1001)
    value, (grad,) = f(x)
    ref_value, ref_grad = tracegrad.value_and_grad(_rosenbrock)(x)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-12, atol=1e-12)
    assert len(_loops(f._last.native.kernel_program())) == 1


def _graph(shape, slicer, axes, other_shape, dtype=np.float64):
    b = GraphBuilder()
    x = b.new_input(ShapedArray(shape, dtype))
    y = b.new_input(ShapedArray(other_shape, dtype))
    part = slicer(x)
    return b.build([ops.reduce_sum(ops.mul(part, part), axes), ops.add(y, y)])


def _sliced_rows(x):
    return ops.slice(x, (1, 0), (1, 1), (x.aval.shape[0] - 1, x.aval.shape[1]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_padded_sums_compute_what_the_graph_does(dtype):
    g = _graph((9, 5), _sliced_rows, (0,), (9, 5), dtype)
    padded = pad_sums(g)
    assert padded is not g and [e.prim.name for e in padded.eqns].count("pad") == 1
    rng = np.random.default_rng(1)
    args = [(10 * rng.standard_normal((9, 5))).astype(dtype) for _ in range(2)]
    want = eval_graph(g, *args)
    for got in (eval_graph(padded, *args), run_program(fuse(g), *args)):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_kept_axes_are_never_padded():
    g = _graph((9, 5), _sliced_rows, (1,), (9, 5))  # sums along axis 1: rows stay 8
    assert pad_sums(g) is g


def test_only_a_halo_is_padded():
    b = GraphBuilder()
    x = b.new_input(ShapedArray((100,), np.float64))
    part = ops.slice(x, (0,), (1,), (100 - HALO - 1,))
    g = b.build([ops.reduce_sum(part, (0,)), ops.mul(x, x)])
    assert pad_sums(g) is g


def test_bool_sums_are_left_alone():
    b = GraphBuilder()
    x = b.new_input(ShapedArray((10,), np.bool_))
    g = b.build([ops.reduce_sum(ops.slice(x, (1,), (1,), (9,)), (0,)), ops.logical_not(x)])
    assert pad_sums(g) is g


def test_a_two_dim_stencil_compiles_to_the_eager_values():
    def loss(u):
        lap = u[1:-1, 2:] + u[1:-1, :-2] + u[2:, 1:-1] + u[:-2, 1:-1] - 4 * u[1:-1, 1:-1]
        return tnp.sum(lap ** 2) + tnp.sum(tnp.tanh(u))
    u = np.random.default_rng(2).standard_normal((40, 33))
    value, (grad,) = tracegrad.compile_grad(loss, disk_cache=False)(u)
    ref_value, ref_grad = tracegrad.value_and_grad(loss)(u)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-11, atol=1e-12)


def test_a_short_sum_is_not_padded_to_a_much_longer_neighbour():
    """6 -> 10 is within HALO elements but not an eighth of the axis: unrelated values."""
    b = GraphBuilder()
    x = b.new_input(ShapedArray((6,), np.float64))
    y = b.new_input(ShapedArray((10,), np.float64))
    g = b.build([ops.reduce_sum(ops.mul(x, x), (0,)), ops.mul(y, y)])
    assert pad_sums(g) is g
