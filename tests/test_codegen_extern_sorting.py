"""Native lowerings of argmax, argmin and searchsorted (codegen/extern_sorting.py) against
numpy, and the same programs through the host callback (TRACEGRAD_EXTERN_NATIVE=0):
first occurrences, NaNs, ties, every supported dtype, empty lanes; sort and argsort
always call back."""
from __future__ import annotations

import numpy as np
import pytest

from tracegrad.codegen import compile_program, extern
from tracegrad.ir import GraphBuilder, ShapedArray, ops
from tracegrad.passes.fusion import fuse

DTYPES = [np.float32, np.float64, np.int32, np.int64]


@pytest.fixture(params=["native", "callback"])
def route(request, monkeypatch):
    if request.param == "callback":
        monkeypatch.setenv("TRACEGRAD_EXTERN_NATIVE", "0")
    else:
        monkeypatch.delenv("TRACEGRAD_EXTERN_NATIVE", raising=False)
    return request.param


def compiled(fn, *args):
    """fn (written with ir.ops) traced on avals of `args`, fused, compiled and run;
    also whether the program calls back into Python."""
    b = GraphBuilder()
    xs = [b.new_input(ShapedArray(np.shape(a), np.asarray(a).dtype)) for a in args]
    graph = b.build([fn(*xs)])
    cp = compile_program(fuse(graph), disk_cache=False)
    return cp(*args)[0], extern.HOST_SYMBOL in cp.llvm_ir()


def data(shape, dtype, rng, nans=False):
    if np.dtype(dtype).kind != "f":
        return rng.integers(-3, 4, shape).astype(dtype)  # many ties
    x = rng.integers(-3, 4, shape).astype(dtype) + rng.choice([0.0, 0.5], shape).astype(dtype)
    if nans and x.size:
        x.ravel()[rng.choice(x.size, max(1, x.size // 4), replace=False)] = np.nan
    return x


SHAPES_AXES = [((7,), 0), ((3, 5), 0), ((3, 5), 1), ((2, 3, 4), 1), ((2, 3, 4), 2),
               ((1, 9), 1), ((4, 0, 2), 2), ((0, 3), 1)]


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype,nans", [(d, False) for d in DTYPES]
                         + [(np.float32, True), (np.float64, True)])
@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_arg_extrema_compiled_equal_numpy(route, name, dtype, shape, axis, nans):
    x = data(shape, dtype, np.random.default_rng(hash((shape, axis)) % 2**32), nans)
    out, host = compiled(lambda v: getattr(ops, name)(v, axis), x)
    want = getattr(np, name)(x, axis=axis)
    assert out.dtype == np.int64 and out.shape == want.shape
    np.testing.assert_array_equal(out, want)
    assert host == (route == "callback")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 13])
@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_compiled_equals_numpy(route, dtype, m, side):
    rng = np.random.default_rng(m)
    a = np.sort(data((m,), dtype, rng, nans=True))
    v = np.concatenate([a, data((3, 4), dtype, rng, nans=True).ravel()]).reshape(-1, 1)
    out, host = compiled(lambda s, t: ops.searchsorted(s, t, side), a, v)
    np.testing.assert_array_equal(out, np.searchsorted(a, v, side=side))
    assert host == (route == "callback")


def test_searchsorted_into_nothing_calls_back():
    v = np.arange(3.0)
    out, host = compiled(lambda s, t: ops.searchsorted(s, t, "left"), np.zeros(0), v)
    np.testing.assert_array_equal(out, [0, 0, 0])
    assert host


def test_sort_and_argsort_call_back():
    x = data((3, 4), np.float64, np.random.default_rng(0), nans=True)
    out, host = compiled(lambda v: ops.sort(v, 1), x)
    np.testing.assert_array_equal(out, np.sort(x, 1))
    assert host
    out, _ = compiled(lambda v: ops.argsort(v, 0), x)
    np.testing.assert_array_equal(out, np.argsort(x, 0, kind="stable"))
