"""codegen/unrolled.py: a short static innermost dim of a vector kernel written out step by
step, with several accumulators for sums along it and register rows for sums into one row."""

import re

import numpy as np
import pytest

from tracegrad.codegen import simd, unrolled
from tracegrad.codegen.lower import KernelEmitter, lower_program
from tracegrad.passes.kernels import IndexMap, Load, Op, Store
from codegen_cases import F32, F64, FLOATS, ProgramBuilder, compile_, tiny_thread_threshold_fixture  # noqa: F401


def _row_program(m, n, dtype, kind="sum"):
    """col[j] = kind over i of x[i, j] * v[i] + x[i, j] (X.T @ v + column sums), and
    row[i] = sum over j of the same values: one kernel, a row reduction and an inner one."""
    pb = ProgramBuilder()
    x, v = pb.input((m, n), dtype), pb.input((m,), dtype)
    col, row = pb.output((n,), dtype), pb.output((m,), dtype)
    body = [Load(x, IndexMap(0, (n, 1)), dtype), Load(v, IndexMap(0, (1, 0)), dtype),
            Op("mul", (0, 1), {}, dtype), Op("add", (2, 0), {}, dtype)]
    pb.loop((m, n), body, [Store(col, 3, IndexMap(0, (0, 1)), kind),
                           Store(row, 3, IndexMap(0, (1, 0)), "sum")])
    return pb.build()


def _inputs(m, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, n)).astype(dtype), rng.standard_normal(m).astype(dtype)


def _emitter(kp):
    return KernelEmitter(None, kp.kernels[0], "k", math=object())


@pytest.fixture(name="vector_form")
def vector_form_fixture(monkeypatch):
    monkeypatch.setattr(simd, "LONG_BODY", 0)  # every eligible kernel takes the vector form


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [1, 5, 8, 16, 37, 100, 128])
@pytest.mark.parametrize("kind", ["sum", "max"])
def test_row_reductions_are_the_row_by_row_values(vector_form, dtype, n, kind):
    """Each column's register slot adds (or maxes) the rows in order, starting from the
    identity, as the memory version does: numpy's column reduction of the same terms, bit
    for bit (its reduction over the outer axis also goes row by row)."""
    m = 23
    kp = _row_program(m, n, dtype, kind)
    em = _emitter(kp)
    lanes = simd.vector_lanes(em)
    steps = -(-n // lanes)
    text = lower_program(kp, environment="").units[0].build_module().__str__()
    assert ('%"row' in text) == (1 < n and steps <= simd.row_vectors()), (n, lanes)  # n = 1: one dim
    x, v = _inputs(m, n, dtype)
    col, row = compile_(kp)(x, v)
    terms = x * v[:, None] + x
    want = np.sum(terms, axis=0) if kind == "sum" else np.max(terms, axis=0)
    # (23 rows: under shadow.MIN_TERMS, a float32 sum adds in float32, row by row, as numpy's)
    tol = 1e-5 if dtype == F32 else 1e-13
    if n == 1:  # a one-dim kernel: a float32 sum over it accumulates in float64
        np.testing.assert_allclose(col, want, rtol=tol)
    else:
        np.testing.assert_array_equal(col, want)
    np.testing.assert_allclose(row, np.sum(terms.astype(np.float64), axis=1), rtol=tol, atol=tol)


def test_row_max_propagates_nan(vector_form):
    kp = _row_program(9, 21, F64, "max")
    x, v = _inputs(9, 21, F64)
    x[4, 3] = np.nan
    col, _ = compile_(kp)(x, v)
    assert np.isnan(col[3]) and not np.isnan(np.delete(col, 3)).any()


def test_inner_sums_cycle_through_several_accumulators(vector_form):
    """A row of 100 f64 (13 vector steps on AVX-512, 25 on AVX2 where it stays a loop)
    sums into INNER_ACCUMULATORS slots, written out or interleaved in the loop, and gets
    numpy's sums."""
    kp = _row_program(7, 100, F64)
    text = lower_program(kp, environment="").units[0].build_module().__str__()
    allocas = len(re.findall(r'%"acc(?:\.\d+)?" = alloca', text))
    # ... besides the column reduction's one scalar slot (unused when its row is in registers)
    assert allocas - 1 == unrolled.INNER_ACCUMULATORS
    x, v = _inputs(7, 100, F64)
    _, row = compile_(kp)(x, v)
    np.testing.assert_allclose(row, np.sum(x * v[:, None] + x, axis=1), rtol=1e-13)


def test_a_long_body_keeps_the_loop(vector_form, monkeypatch):
    monkeypatch.setattr(unrolled, "UNROLL_BUDGET", 4)
    kp = _row_program(7, 40, F64)
    text = lower_program(kp, environment="").units[0].build_module().__str__()
    assert '%"row' not in text
    x, v = _inputs(7, 40, F64)
    np.testing.assert_array_equal(compile_(kp)(x, v)[0], np.sum(x * v[:, None] + x, axis=0))


@pytest.mark.parametrize("dtype", FLOATS)
def test_rows_split_over_threads(vector_form, tiny_thread_threshold, dtype):
    """Split over threads, each thread keeps its own row (thread 0 in the output, the
    others in private copies the entry adds)."""
    m, n = 4000, 100
    kp = _row_program(m, n, dtype)
    x, v = _inputs(m, n, dtype, seed=3)
    cp = compile_program_threads(kp)
    assert "tg_pool_run" in cp.llvm_ir()  # really split
    col, row = cp(x, v)
    terms = (x * v[:, None] + x).astype(np.float64)
    tol = 1e-4 if dtype == F32 else 1e-12
    np.testing.assert_allclose(col, terms.sum(axis=0), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(row, terms.sum(axis=1), rtol=tol, atol=tol)


def compile_program_threads(kp):
    from tracegrad.codegen import compile_program
    return compile_program(kp, name="test", disk_cache=False, n_threads=2)


def test_a_costly_body_takes_the_vector_form():
    """Two transcendentals (threads.COSTLY_BODY) are enough for the vector form."""
    pb = ProgramBuilder()
    x = pb.input((6, 50), F32)
    col = pb.output((50,), F32)
    body = [Load(x, IndexMap(0, (50, 1)), F32), Op("tanh", (0,), {}, F32), Op("exp", (1,), {}, F32)]
    pb.loop((6, 50), body, [Store(col, 2, IndexMap(0, (0, 1)), "sum")])
    kp = pb.build()
    assert _emitter(kp).lanes is not None
    xs = np.random.default_rng(2).standard_normal((6, 50)).astype(F32)
    np.testing.assert_allclose(compile_(kp)(xs)[0], np.exp(np.tanh(xs)).sum(axis=0), rtol=1e-5)
