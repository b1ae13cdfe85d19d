"""codegen: reductions over every axis, NaN and empty domains, zero-size arrays."""

import numpy as np
import pytest

from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import IndexMap, Load, Store
from codegen_cases import (F64, I64, FLOATS, compile_, ProgramBuilder, elementwise_program,
                           assert_matches_interp, MATH_TOL, AXES, add_reduction, reduction_program)
from codegen_cases import body_mode_fixture  # noqa: F401 (a pytest fixture)


# ---- reductions ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["sum", "max", "min"])
def test_reduction_over_each_axis(kind, body_mode):
    """Over every axis set of a 3-D domain, f32 and f64; sums are reassociated (vectorized),
    so they are compared within the documented bound: 8 eps * sum|x| (docs/codegen.md)."""
    shape = (5, 7, 33)
    rng = np.random.default_rng(5)
    pb = ProgramBuilder()
    cases = [(axes, dt) for dt in FLOATS for axes in AXES]
    for axes, dt in cases:
        add_reduction(pb, shape, axes, kind, dt)
    kp = pb.build()
    xs = [rng.standard_normal(shape).astype(dt) for _, dt in cases]
    got, want = compile_(kp)(*xs), run_program(kp, *xs)
    for (axes, dt), x, g, w in zip(cases, xs, got, want):
        if kind == "sum":
            scale = np.sum(np.abs(np.sin(x.astype(np.float64))), axis=axes)
            assert np.all(np.abs(g - w) <= 8 * np.finfo(dt).eps * (scale + 1)), (axes, dt)
        else:
            np.testing.assert_allclose(g, w, err_msg=str((axes, dt)), **MATH_TOL[dt])


@pytest.mark.parametrize("kind", ["sum", "max", "min"])
def test_reduction_propagates_nan_and_empty_domain(kind, body_mode):
    x = np.arange(1023.0)
    x[500] = np.nan
    kp = reduction_program((1023,), (0,), kind, F64)
    assert np.isnan(compile_(kp)(x)[0])
    empty = reduction_program((3, 0), (1,), kind, F64)
    got = compile_(empty)(np.zeros((3, 0)))[0]
    np.testing.assert_array_equal(got, run_program(empty, np.zeros((3, 0)))[0])


def test_integer_reduction_is_exact():
    x = np.random.default_rng(6).integers(-1000, 1000, (7, 1023))
    pb = ProgramBuilder()
    for kind in ("sum", "max", "min"):
        xb = pb.input(x.shape, I64)
        out = pb.output((7,), I64)
        pb.loop(x.shape, [Load(xb, IndexMap(0, (1023, 1)), I64)],
                [Store(out, 0, IndexMap(0, (1, 0)), reduce=kind)])
    assert_matches_interp(pb.build(), [x, x, x])


def test_zero_size_arrays(body_mode):
    kp = elementwise_program("exp", [F64], F64, {}, sizes=(0,))
    got = compile_(kp)(np.zeros(0))[0]
    assert got.shape == (0,)


# ---- two-level float sums (kernel.CHUNK) ------------------------------------------------------

def _plain_sum_program(shape, axes):
    """out = sum of x over `axes` (no op between the load and the sum)."""
    from codegen_cases import contiguous
    pb = ProgramBuilder()
    x = pb.input(shape, F64)
    out_shape = tuple(n for d, n in enumerate(shape) if d not in axes)
    out = pb.output(out_shape, F64)
    out_strides = iter(contiguous(out_shape))
    strides = tuple(0 if d in axes else next(out_strides) for d in range(len(shape)))
    pb.loop(shape, [Load(x, IndexMap(0, contiguous(shape)), F64)],
            [Store(out, 0, IndexMap(0, strides), reduce="sum")])
    return pb.build()


def _fsum(x, axes):
    import math
    moved = np.moveaxis(np.asarray(x, np.float64), axes, list(range(-len(axes), 0)))
    flat = moved.reshape(moved.shape[:moved.ndim - len(axes)] + (-1,))
    return np.array([math.fsum(r) for r in flat.reshape(-1, flat.shape[-1])]).reshape(flat.shape[:-1])


@pytest.mark.parametrize("shape, axes", [((1_000_003,), (0,)), ((700, 1500), (1,)),
                                          ((30_000, 33), (0, 1)), ((3, 50_001), (0, 1))])
def test_long_float64_sums_keep_their_error_small(shape, axes, body_mode):
    """Sums add chunks of about kernel.CHUNK elements into a running total, and GROUP of
    those into a grand total, so that a long sum's rounding error grows with CHUNK / lanes
    + GROUP + n / (CHUNK GROUP) roundings instead of n / lanes."""
    x = np.full(shape, 0.1)  # every add's rounding errs the same way: nothing cancels
    kp = _plain_sum_program(shape, axes)
    (got,) = compile_(kp)(x)
    exact = _fsum(x, axes)
    assert np.max(np.abs(got - exact) / np.abs(exact)) <= 1e-14  # one level: 5.6e-13


@pytest.mark.parametrize("chunk, group", [(64, 2), (100, 3), (4096, 64)])
@pytest.mark.parametrize("n", [1, 63, 64, 65, 1000, 1001, 40_000])
def test_chunk_edges_sum_every_element_once(monkeypatch, chunk, group, n, body_mode):
    """Every chunk and group size and remainder (and thread split) sums every element once:
    integers in float64 sum exactly."""
    from tracegrad.codegen import kernel
    monkeypatch.setattr(kernel, "CHUNK", chunk)
    monkeypatch.setattr(kernel, "GROUP", group)
    for shape, axes in (((n,), (0,)), ((n, 3), (0, 1)), ((3, n), (1,))):
        kp = _plain_sum_program(shape, axes)
        xs = (np.arange(3 * n, dtype=np.float64)[:np.prod(shape)] % 97).reshape(shape)
        (got,) = compile_(kp)(xs)
        np.testing.assert_array_equal(got, np.sum(xs, axis=axes))
