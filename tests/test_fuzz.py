"""Fuzzing: random programs over the whole primitive table, every way tracegrad runs them.

Each seed gives one program (tests/fuzz_gen.py, operation kinds in
tests/fuzz_ops.py and tests/fuzz_control.py) of float32 or float64, with
size-0/1 dims, broadcasting, structural ops, reductions, products,
comparisons, casts, guards, loops and branches and direct primitive calls, and
two input sets.  tests/fuzz_check.py checks it eager, traced + interpreted,
with jit and compile_grad, values and gradients (second order for some),
against a numpy reference and float64 finite differences.  Programs run in
child processes (tests/fuzz_runner.py), so a crash in native code fails its
seed instead of killing the suite.

The normal suite runs N_NORMAL programs.  The slow mode, deselected by
default, runs TRACEGRAD_FUZZ_N (default 3000) others:
    python -m pytest -m slow tests/test_fuzz.py
`python -m benchmarks.fuzz --n 5000` does the same from the command line and
`python -m benchmarks.fuzz --show SEED` prints a reproducer script.

Open bugs the fuzzer found are listed in fuzz_ops.KNOWN_BUGS (the generator
steers around them) with a minimal reproducer here, as a strict xfail.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

import fuzz_check
import fuzz_gen
import fuzz_runner
import tracegrad
import tracegrad.numpy as tnp
from fuzz_ops import KNOWN_BUGS
from tracegrad.ir import PRIMITIVES, ops

N_NORMAL = 300
N_SLOW = int(os.environ.get("TRACEGRAD_FUZZ_N", "3000"))
SLOW_FIRST_SEED = 100_000   # slow seeds are disjoint from the normal ones
SLOW_BATCH = 250
JOBS = min(4, os.cpu_count() or 1)


def report(result) -> str:
    lines = [f"seed {result['seed']} ({result['dtype']}); reproduce with "
             f"`python -m benchmarks.fuzz --show {result['seed']}`"]
    lines += [f"  {check}: {msg}" for check, msg in result["failures"]]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def normal_results():
    return fuzz_runner.run_seeds(range(N_NORMAL), jobs=JOBS)


@pytest.mark.parametrize("seed", range(N_NORMAL))
def test_random_program(seed, normal_results):
    result = normal_results[seed]
    assert not result["failures"], report(result)


def test_every_primitive_is_generated(normal_results):
    seen = set().union(*(r["primitives"] for r in normal_results.values()))
    assert set(PRIMITIVES) <= seen, f"never generated: {sorted(set(PRIMITIVES) - seen)}"


def test_both_dtypes_are_generated(normal_results):
    counts = {d: sum(r["dtype"] == d for r in normal_results.values())
              for d in ("float32", "float64")}
    assert min(counts.values()) >= N_NORMAL // 4, counts


@pytest.mark.slow
@pytest.mark.parametrize("batch", range(math.ceil(N_SLOW / SLOW_BATCH)))
def test_random_programs_slow(batch):
    start = SLOW_FIRST_SEED + batch * SLOW_BATCH
    seeds = range(start, SLOW_FIRST_SEED + min(N_SLOW, (batch + 1) * SLOW_BATCH))
    results = fuzz_runner.run_seeds(seeds, jobs=JOBS)
    failed = [r for r in results.values() if r["failures"]]
    assert not failed, f"{len(failed)} of {len(seeds)} failed:\n" + "\n".join(map(report, failed))


# ---- the generator and the oracle themselves ----------------------------------------------

def test_generation_is_deterministic():
    for seed in (0, 1, 12345):
        a, b = fuzz_gen.generate(seed), fuzz_gen.generate(seed)
        assert a.source() == b.source() and a.dtype == b.dtype
        assert all(np.array_equal(x, y) for x, y in zip(a.inputs, b.inputs))


def test_restrict_keeps_only_what_an_output_needs():
    prog = fuzz_gen.generate(3)
    last = prog.lines[-1].split(" = ")[0]
    small = prog.restrict([last])
    assert small.lines[-1] == prog.lines[-1] and len(small.lines) <= len(prog.lines)
    assert set(small.params) <= set(prog.params)


def _sin_program(dtype="float64"):
    x = np.linspace(-1.0, 1.0, 5)
    return fuzz_gen.Program(seed=0, dtype=dtype, params=["v0"], inputs=[x], inputs2=[x / 2],
                            consts={},
                            lines=["v1 = np.sin(v0)"], outputs=["v1"], out_syms=["F"],
                            cotangents=[np.ones(5)], strided=[True],
                            nodes={"v0": ((5,), "F"), "v1": ((5,), "F")})


def test_oracle_passes_a_correct_program():
    assert fuzz_check.check_program(_sin_program())[0] == []


def test_oracle_catches_a_wrong_gradient_rule(monkeypatch):
    vjp = PRIMITIVES["sin"].vjp

    def wrong(*args, **params):
        return tuple(ops.mul(c, 1.001) for c in vjp(*args, **params))

    monkeypatch.setattr(PRIMITIVES["sin"], "vjp", wrong)
    failures, _ = fuzz_check.check_program(_sin_program())
    assert any(check.startswith("dot-product test") for check, _ in failures), failures


def test_oracle_catches_a_wrong_value(monkeypatch):
    impl = PRIMITIVES["sin"].impl
    monkeypatch.setattr(PRIMITIVES["sin"], "impl", lambda x: impl(x) * (1 + 1e-9))
    monkeypatch.setattr(PRIMITIVES["sin"], "native", None)  # eager on the impl (docs/eager.md)
    failures, _ = fuzz_check.check_program(_sin_program())
    checks = {check.split("[")[0] for check, _ in failures}
    assert {"eager outputs vs numpy", "jit vs eager"} <= checks, failures


def test_a_crashing_child_fails_its_seed(monkeypatch, tmp_path):
    """A child killed by a signal is reported against the seed it was running, and the
    next child goes on with the next seed."""
    (tmp_path / "sitecustomize.py").write_text(
        "import os, signal, sys, types\n"
        "def check_program(prog):\n"
        "    if prog.seed == 7:\n"
        "        os.kill(os.getpid(), signal.SIGSEGV)\n"
        "    return [], []\n"
        "if '--child' in sys.argv:  # stands in for the oracle: seed 7 crashes\n"
        "    sys.modules['fuzz_check'] = types.SimpleNamespace(check_program=check_program)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    results = fuzz_runner.run_seeds([6, 7, 8], jobs=1)
    assert results[7]["failures"][0][0] == "crash", results[7]
    assert "-11" in results[7]["failures"][0][1] or "SIGSEGV" in results[7]["failures"][0][1]
    assert results[6]["failures"] == results[8]["failures"] == [], results


# ---- open bugs found by the fuzzer: minimal reproducers --------------------------------------

def test_known_bugs_each_have_a_reproducer():
    names = {n[len("test_known_bug_"):] for n in globals() if n.startswith("test_known_bug_")}
    assert names == set(KNOWN_BUGS)


def test_fixed_traced_var_method():
    x = np.arange(4.0)
    assert tracegrad.jit(lambda x: x.var())(x) == pytest.approx(np.var(x))


def test_fixed_where_jvp_rank0():
    _, tangent = tracegrad.jvp(lambda x: tnp.where(x > 0, x, np.zeros(2)),
                               (np.float64(1.0),), (np.float64(1.0),))
    assert np.asarray(tangent).tolist() == [1.0, 1.0]


def test_fixed_item_gradient_is_a_constant_in_every_mode():
    f = lambda x: tnp.sum(x * x.sum().item())  # noqa: E731
    x = np.array([1.0, 2.0])
    t = tracegrad.tensor(x, requires_grad=True)
    f(t).backward()
    np.testing.assert_array_equal(tracegrad.compile_grad(f)(x)[1][0], t.grad.data)


def test_fixed_sum_negative_zero():
    f = lambda x: tnp.sum(x * -1.5)  # noqa: E731
    got, want = tracegrad.jit(f)(np.zeros(1)), f(np.zeros(1))
    assert np.signbit(got) == np.signbit(want)


def test_fixed_extremum_signed_zero():
    a, b = np.array([-0.0, 0.0]), np.array([0.0, -0.0])
    assert np.signbit(tracegrad.jit(tnp.maximum)(a, b)).tolist() == np.signbit(
        np.maximum(a, b)).tolist()


def test_fixed_weak_float_ops():
    assert tracegrad.compile_grad(lambda x: +x)(1.5)[1] == (1.0,)
    assert tracegrad.compile_grad(lambda x: ops.mul(x, np.float64(2.0)))(1.5)[1] == (2.0,)
    assert tracegrad.jit(lambda x: ops.broadcast(x + 1.0, (2,)))(1.5).tolist() == [2.5, 2.5]


def test_fixed_weak_float_compare():
    f = lambda x: ~(x < np.float64(0.74))  # noqa: E731
    assert tracegrad.jit(f)(1.5).dtype == np.bool_


def test_fixed_float_guard_widened():
    f = tracegrad.jit(lambda x: x * 2.0 if float(tnp.astype(tnp.exp(x), np.float64)) > 0.1
                      else x)
    assert f(np.float32(-1.0)) == np.float32(-2.0)
