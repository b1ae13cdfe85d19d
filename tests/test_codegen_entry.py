"""codegen: the entry: arena planning and reuse, domain simplification, the call path."""
import threading

import numpy as np
import pytest

from tracegrad.codegen import SignatureMismatch
from tracegrad.codegen.lower import plan_arena, simplify_domain, Access
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import IndexMap, Load, Store
from codegen_cases import (F32, F64, compile_, ProgramBuilder, elementwise_program,
                           assert_matches_interp, chain_program)


# ---- programs with temps: arena planning and reuse ----------------------------------------------

def test_arena_reuses_dead_temps_and_never_overlaps_live_ones():
    kp = chain_program(1000, 6)
    offsets, size = plan_arena(kp)
    assert size <= 2 * 8064  # two live temps at a time, 64-byte aligned
    for kernel in kp.kernels:
        live = [b for b in kernel.reads() + kernel.writes() if b.kind == "temp"]
        spans = sorted((offsets[b], offsets[b] + b.size * 8) for b in live)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    x = np.random.default_rng(8).standard_normal(1000)
    assert_matches_interp(kp, [x], rtol=1e-15)


def test_concurrent_calls_from_two_threads():
    """Large enough that the builtin releases the GIL: the arena mutex alone protects the temps."""
    n = 1 << 15
    kp = chain_program(n, 4)
    cp = compile_(kp)
    assert cp.fast is None or cp.releases_gil
    xs = [np.full(n, float(i)) for i in range(8)]
    want = [run_program(kp, x)[0] for x in xs]
    errors = []

    def worker(t):
        for rep in range(100):
            i = (t + rep) % len(xs)
            if not np.array_equal(cp(xs[i])[0], want[i]):
                errors.append((t, rep))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_outputs_are_fresh_and_duplicates_share():
    pb = ProgramBuilder()
    x = pb.input((3,), F64)
    out = pb.output((3,), F64)
    pb.loop((3,), [Load(x, IndexMap(0, (1,)), F64)], [Store(out, 0, IndexMap(0, (1,)))])
    kp = pb.build()
    kp.outputs.append(out)  # the same buffer returned twice
    kp.outputs.append(x)  # and an input returned: must be a copy
    cp = compile_(kp)
    xv = np.arange(3.0)
    a, b, c = cp(xv)
    assert a is b and not np.shares_memory(c, xv)
    np.testing.assert_array_equal(c, xv)
    a2, _, _ = cp(xv)
    assert not np.shares_memory(a, a2)


# ---- domain simplification ---------------------------------------------------------------

def test_contiguous_dims_collapse_to_one_loop():
    accesses = [Access(0, [6, 1], [None, None]), Access(0, [0, 0], [None, None])]
    domain, accesses = simplify_domain((4, 6), accesses)
    assert domain == [24] and accesses[0].strides == [1] and accesses[1].strides == [0]
    domain, accesses = simplify_domain((4, 1, 6), [Access(0, [6, 99, 1], [None] * 3)])
    assert domain == [24]


# ---- the call path ---------------------------------------------------------------------------

def test_call_path_rejects_everything_else():
    kp = elementwise_program("add", [F64, F64], F64, {}, sizes=(4,))
    cp = compile_(kp)
    good = np.arange(4.0)
    assert cp(good, good)[0].tolist() == [0, 2, 4, 6]
    bad_args = [
        (good.astype(np.float32), good), (good, np.arange(5.0)), (good, np.arange(8.0)[::2]),
        (good, [0.0, 1.0, 2.0, 3.0]), (good, None), (good,), (good, good, good),
        (good, np.arange(4.0).reshape(2, 2)), (good, good.astype(">f8")), (good, 3.0),
        (good, np.frombuffer(b"\0" + good.tobytes(), np.float64, 4, 1)),
    ]
    for args in bad_args:
        with pytest.raises(SignatureMismatch):
            cp(*args)
        if cp.fast is not None:
            assert cp.fast(*args) is cp.MISMATCH
    # equal but not identical dtype objects and subclasses are accepted by the checked path
    sub = good.view(type("Sub", (np.ndarray,), {}))
    assert cp(sub, good)[0].tolist() == [0, 2, 4, 6]
    ro = good.copy()
    ro.flags.writeable = False  # inputs are only read
    assert cp(ro, good)[0].tolist() == [0, 2, 4, 6]


def test_checked_and_ctypes_paths_match_fast_path():
    kp = elementwise_program("mul", [F32, F32], F32, {}, sizes=(33,))
    cp = compile_(kp)
    x = np.linspace(0, 1, 33, dtype=np.float32)
    want = cp(x, x)[0]
    np.testing.assert_array_equal(cp.call_checked((x, x))[0], want)
    np.testing.assert_array_equal(cp.call_ctypes((x, x))[0], want)


def test_introspection():
    cp = compile_(elementwise_program("exp", [F32], F32, {}, sizes=(4096,)))
    assert "define" in cp.llvm_ir() and cp.compile_seconds > 0
    assert cp.signature[0].shape == (4096,)
    asm = cp.asm()
    assert "ymm" in asm or "zmm" in asm, "the exp loop was not vectorized"


def test_exp_kernel_uses_no_libm_calls():
    ir_text = compile_(elementwise_program("exp", [F64], F64, {}, sizes=(1023,))).llvm_ir()
    assert "@llvm.exp." not in ir_text and "@exp(" not in ir_text
