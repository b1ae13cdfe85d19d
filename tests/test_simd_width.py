"""Full-width float32: kernels summing float32 in float64 run the f32 work at the host's
widest vector width (8 lanes on AVX2, 16 on AVX-512), the f64 accumulator as a pair of
registers (codegen/simd.py, `widened_sum`)."""
import re

import numpy as np
import pytest

import tracegrad
from tracegrad.codegen import llvm_util, simd
from tracegrad.codegen.lower import KernelEmitter
from tracegrad.passes.kernels import Buffer, IndexMap, Load, LoopKernel, Op, Store

F32 = np.dtype(np.float32)
WIDEST = {512: "zmm", 256: "ymm"}


def _register_uses(asm: str) -> dict:
    return {r: len(re.findall(rf"%{r}\d+", asm)) for r in ("xmm", "ymm", "zmm")}


def _softplus_sum(x):
    return np.sum(np.tanh(x) * np.exp(-0.5 * x * x) + np.log(1 + np.exp(x)))


def _row_sum_kernel(rows, cols, dtype=F32):
    """out[r] = sum_c x[r, c] * x[r, c]: a float32 sum over the innermost dim."""
    x = Buffer("x", (rows, cols), dtype, "input", index=0)
    out = Buffer("out", (rows,), dtype, "output", index=0)
    body = [Load(x, IndexMap(0, (cols, 1)), dtype), Op("mul", (0, 0), {}, dtype)]
    return LoopKernel("rowsq", (rows, cols), body, [Store(out, 1, IndexMap(0, (1, 0)), "sum")])


def test_f32_sum_kernel_takes_full_width_lanes():
    lanes = KernelEmitter(None, _row_sum_kernel(4, 100), "k", math=object()).lanes
    assert lanes == llvm_util.vector_bits() // 32  # the f64 accumulator does not halve it


def test_f64_sum_kernel_keeps_its_path():
    """Only the f32-in-f64 sum is widened: a short f64 kernel stays with LLVM's vectorizer."""
    kernel = _row_sum_kernel(4, 100, np.dtype(np.float64))
    assert KernelEmitter(None, kernel, "k", math=object()).lanes is None


def _compiled_asm(fn, *args):
    f = tracegrad.compile_grad(fn, disk_cache=False)
    value, (grad,) = f(*args)
    return f, value, grad, _register_uses(f.asm())


@pytest.mark.parametrize("bits", [512, 256])
def test_f32_kernel_asm_uses_the_widest_registers(bits, monkeypatch):
    """An f32 sum of transcendentals (benchmark W2) runs in ymm/zmm wherever the CPU has
    them: at the host's width, and at 256 bits on an AVX-512 host told to use 256."""
    host = llvm_util.vector_bits()
    if host < bits:
        pytest.skip(f"the host's widest float vector is {host} bits")
    if bits < host:
        monkeypatch.setattr(llvm_util, "vector_bits", lambda: bits)
    x = np.random.default_rng(0).standard_normal(4099).astype(np.float32)
    _, value, grad, uses = _compiled_asm(_softplus_sum, x)
    wide = uses[WIDEST[bits]]
    assert wide > 4 * uses["xmm"], uses
    if bits == 256:
        assert uses["zmm"] == 0, uses
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(value, _softplus_sum(x64), rtol=1e-5)
    t, e = np.tanh(x64), np.exp(-0.5 * x64 * x64)
    want = e * (1 - t * t - x64 * t) + 1 / (1 + np.exp(-x64))
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(1,), (3,), (17,), (1000,), (4099,), (5, 37), (64, 16), (3, 1029)])
def test_f32_sums_accumulate_in_f64(shape):
    """Masked remainders, exact multiples of the lanes and short rows: each sum is the
    float64 sum of the float32 terms, rounded once (float32 accumulation is further off)."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3, shape)).astype(np.float32)
    rows = tracegrad.jit(lambda x: np.sum(x * x, axis=-1), disk_cache=False)(x)
    sq = (x * x).astype(np.float64)  # the f32 products, summed in f64
    np.testing.assert_array_equal(np.asarray(rows), np.sum(sq, axis=-1).astype(np.float32))


def test_widened_sum_is_the_trigger():
    """The rule itself: float32 sum over the innermost dim -> explicit loop; a sum over an
    outer dim (the innermost dim is not reduced) accumulates in memory, not widened."""
    em = KernelEmitter(None, _row_sum_kernel(4, 100), "k", math=object())
    assert simd.widened_sum(em)
    x = Buffer("x", (4, 100), F32, "input", index=0)
    out = Buffer("out", (100,), F32, "output", index=0)
    col = LoopKernel("colsum", (4, 100), [Load(x, IndexMap(0, (100, 1)), F32)],
                     [Store(out, 0, IndexMap(0, (0, 1)), "sum")])
    assert not simd.widened_sum(KernelEmitter(None, col, "k", math=object()))


_ISA_PROBE = """
import json, sys
import numpy as np
import tracegrad
from tracegrad.codegen import fingerprint, llvm_util
x = np.linspace(-3, 3, 4099).astype(np.float32)
f = tracegrad.compile_grad(lambda x: np.sum(np.tanh(x) * np.exp(-0.5 * x * x)), disk_cache=False)
value, (grad,) = f(x)
asm = f.asm()
print(json.dumps({"bits": llvm_util.vector_bits(), "zmm": asm.count("%zmm"), "ymm": asm.count("%ymm"),
                  "value": float(value), "grad": grad.tolist(),
                  "features": fingerprint.target()["features"]}))
"""


def _probe(isa):
    import json
    import os
    import subprocess
    import sys
    env = {**os.environ, "TRACEGRAD_ISA": isa}
    out = subprocess.run([sys.executable, "-c", _ISA_PROBE], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_isa_cap_avx2_generates_256_bit_code():
    """TRACEGRAD_ISA=avx2 makes AVX2 code on any AVX2 host (AVX-512 ones included): ymm
    registers, no zmm, the same values within float32 rounding, its own cache key."""
    if llvm_util.vector_bits() < 256:
        pytest.skip("the host has no AVX")
    capped, native = _probe("avx2"), _probe("native")
    assert capped["bits"] == 256 and capped["zmm"] == 0 and capped["ymm"] > 0, capped
    assert native["bits"] == llvm_util.vector_bits()
    assert (capped["features"] != native["features"]) == (native["bits"] == 512)
    np.testing.assert_allclose(capped["value"], native["value"], rtol=1e-5)
    np.testing.assert_allclose(capped["grad"], native["grad"], rtol=1e-5, atol=1e-6)


def test_unknown_isa_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TRACEGRAD_ISA", "avx9000")
    with pytest.raises(ValueError, match="TRACEGRAD_ISA='avx9000'.*native, avx2"):
        llvm_util.isa_cap()
