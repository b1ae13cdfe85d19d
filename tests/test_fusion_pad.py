"""Fusion of pads: bounds on the index map, not memory, nested and sliced."""
import numpy as np
import pytest

from tracegrad.ir import ops
from tracegrad.passes.kernels import Load
from fusion_cases import F64, check


PADS = [((1,), (1,), (11,)), ((0,), (1,), (12,)), ((2,), (2,), (21,)), ((9,), (-1,), (10,)),
        ((19,), (-2,), (20,))]


@pytest.mark.parametrize("starts,steps,shape", PADS)
def test_pad_of_input_and_of_expression(starts, steps, shape):
    def f(x):
        return (ops.pad(x, starts, steps, shape),
                ops.pad(ops.add(ops.exp(x), 1.0), starts, steps, shape))

    check(f, ((10,), F64))


def test_unit_step_pad_is_bounds_not_memory():
    kp = check(lambda x: ops.add(ops.pad(ops.cos(x), (1,), (1,), (12,)),
                                 ops.pad(x, (0,), (1,), (12,))), ((10,), F64))
    assert len(kp.kernels) == 1 and not kp.temps
    assert any(isinstance(i, Load) and i.index.bounds for i in kp.kernels[0].body)


def test_pad_2d_nested_and_sliced():
    def f(x):
        p = ops.pad(ops.sin(x), (1, 6), (1, -1), (6, 8))
        q = ops.pad(p, (0, 1), (1, 1), (7, 9))
        inner = ops.slice(q, (1, 1), (1, 1), (5, 5))
        return q, ops.slice(q, (6, 0), (-2, 3), (4, 3)), ops.pad(inner, (0, 0), (1, 1), (5, 6))

    check(f, ((4, 6), F64))


def test_pad_of_broadcast_literal_and_of_zero_size():
    def f(x, e):
        ones = ops.broadcast(np.float64(1.5), (4,))
        return ops.add(x, ops.pad(ones, (2,), (1,), (7,))), ops.pad(e, (0,), (1,), (7,))

    check(f, ((7,), F64), ((0,), F64))
