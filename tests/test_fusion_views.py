"""Fusion of structural primitives read as views: broadcast, slice, transpose, reshape,
concatenate.
"""
import pytest

from tracegrad.ir import ops
from tracegrad.passes.kernels import Load
from fusion_cases import F32, F64, check


# ---- structural primitives --------------------------------------------------------------

@pytest.mark.parametrize("src,dst", [((4,), (3, 4)), ((3, 1), (3, 4)), ((), (3, 4)),
                                     ((1, 4), (2, 3, 4)), ((2, 1, 4), (2, 3, 4))])
def test_broadcast(src, dst):
    kp = check(lambda x: ops.mul(ops.broadcast(ops.exp(x), dst), 2.0), (src, F64))
    assert len(kp.kernels) == 1


def test_broadcast_then_reduce_back():
    """Both directions: a row vector broadcast up, a matrix summed down to it."""
    def f(v, m):
        up = ops.add(m, ops.broadcast(v, (3, 4)))
        return ops.sum_to_shape(ops.mul(up, m), (4,)), ops.sum_to_shape(up, (3, 1))

    check(f, ((4,), F64), ((3, 4), F64))


@pytest.mark.parametrize("starts,steps,sizes", [
    ((1,), (1,), (9,)), ((0,), (2,), (5,)), ((9,), (-1,), (10,)), ((8,), (-3,), (3,)),
    ((4,), (1,), (0,)), ((3,), (-2,), (2,))])
def test_slice_1d(starts, steps, sizes):
    kp = check(lambda x: ops.slice(ops.sin(x), starts, steps, sizes), ((10,), F64))
    assert not kp.temps
    load = next(i for i in kp.kernels[0].body if isinstance(i, Load))
    assert load.index.strides == (steps[0],) and load.index.offset == starts[0]


def test_slice_2d_mixed_steps_and_of_slices():
    def f(x):
        a = ops.slice(x, (5, 0), (-2, 3), (3, 3))
        b = ops.slice(ops.tanh(x), (1, 7), (1, -1), (3, 8))
        return a, ops.slice(b, (2, 1), (-1, 2), (3, 4))

    check(f, ((6, 9), F32))


def test_transpose_3d():
    def f(x):
        y = ops.transpose(ops.exp(x), (2, 0, 1))
        return ops.add(y, ops.transpose(x, (2, 0, 1))), ops.transpose(y, (1, 2, 0))

    kp = check(f, ((2, 3, 4), F64))
    assert not kp.temps


@pytest.mark.parametrize("src,dst", [((12,), (3, 4)), ((3, 4), (12,)), ((2, 3, 4), (6, 4)),
                                     ((2, 3, 4), (2, 12)), ((3, 4), (3, 1, 4, 1)),
                                     ((3, 1, 4), (3, 4)), ((6, 4), (2, 3, 2, 2))])
def test_reshape_of_expression(src, dst):
    check(lambda x: ops.mul(ops.reshape(ops.sin(x), dst), 3.0), (src, F64))


def test_reshape_of_transposed_value_stores_the_operand():
    def f(x):
        t = ops.transpose(ops.sin(x), (1, 0))
        return ops.exp(ops.reshape(t, (12,)))

    kp = check(f, ((3, 4), F64))
    assert len(kp.temps) == 1


def test_split_reshape_of_a_pad_stores_the_pad():
    """A padded dim split in two: its bounds would span two domain dims, so the pad is stored."""
    kp = check(lambda x: ops.exp(ops.reshape(ops.pad(ops.sin(x), (1,), (1,), (12,)), (3, 4))),
               ((10,), F64))
    assert len(kp.temps) == 1


def test_reshape_of_buffer_is_a_flat_load():
    kp = check(lambda x: ops.exp(ops.reshape(x, (2, 6))), ((3, 4), F64))
    assert len(kp.kernels) == 1
    (load,) = [i for i in kp.kernels[0].body if isinstance(i, Load)]
    assert load.index.strides == (6, 1)


def test_reshape_of_sliced_value():
    """A merge of dims that a slice keeps contiguous is affine; one it breaks is not."""
    def f(x):
        a = ops.reshape(ops.slice(ops.sin(x), (1, 0), (1, 1), (2, 4)), (8,))
        b = ops.reshape(ops.slice(ops.cos(x), (0, 1), (1, 1), (3, 2)), (6,))
        return a, b

    check(f, ((3, 4), F64))


@pytest.mark.parametrize("axis", [0, 1])
def test_concatenate(axis):
    def f(x, y):
        c = ops.concatenate([ops.sin(x), y, ops.exp(x)], axis)
        return ops.mul(c, 2.0), ops.reduce_sum(c, (axis,))

    shape_y = (2, 4) if axis == 0 else (3, 2)
    check(f, ((3, 4), F64), (shape_y, F64))
