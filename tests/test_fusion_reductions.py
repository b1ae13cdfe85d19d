"""Fusion of reductions: every axis, keepdims broadcasts, reductions of reductions."""
import pytest

from tracegrad.ir import ops
from fusion_cases import F32, F64, I32, BOOL, check


# ---- reductions -------------------------------------------------------------------------

AXES = [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]


@pytest.mark.parametrize("prim", ["reduce_sum", "reduce_max", "reduce_min"])
@pytest.mark.parametrize("axes", AXES)
def test_reduction_each_axis(prim, axes):
    kp = check(lambda x: ops.bind(prim, ops.sin(x), axes=axes), ((3, 4, 5), F64))
    assert len(kp.kernels) == 1
    (store,) = kp.kernels[0].stores
    assert store.reduce == {"reduce_sum": "sum", "reduce_max": "max", "reduce_min": "min"}[prim]
    assert all(store.index.strides[a] == 0 for a in axes)


@pytest.mark.parametrize("prim", ["reduce_sum", "reduce_max", "reduce_min"])
@pytest.mark.parametrize("axes", AXES)
def test_reduction_keepdims_broadcast_back(prim, axes):
    def f(x):
        shape = x.shape
        keep = tuple(1 if i in axes else d for i, d in enumerate(shape))
        r = ops.reshape(ops.bind(prim, x, axes=axes), keep)
        return ops.sub(x, ops.broadcast(r, shape))

    check(f, ((3, 4, 5), F32))


@pytest.mark.parametrize("dtype", [I32, BOOL])
def test_integer_and_bool_reductions(dtype):
    check(lambda x: (ops.reduce_max(x, (1,)), ops.reduce_min(x, (0,)), ops.reduce_sum(x, (0, 1))),
          ((4, 5), dtype))


def test_reduction_of_reduction_is_one_kernel():
    kp = check(lambda x: ops.reduce_sum(ops.reduce_sum(ops.exp(x), (1,)), (0,)), ((6, 7), F64))
    assert len(kp.kernels) == 1 and not kp.temps


def test_reduction_read_twice_stays_stored():
    def f(x):
        r = ops.reduce_sum(x, (1,))
        return ops.reduce_max(r, (0,)), ops.mul(r, 2.0)

    kp = check(f, ((6, 7), F64))
    assert len(kp.kernels) == 2
