"""The codegen test helpers shared by the test_codegen_* files: a builder of kernel
programs, the primitive table (op, operand domain, dtypes, tolerance), the body-mode and
thread-threshold fixtures, and the programs several files compile.

One table drives the primitive tests; each (op, dtype) compiles ONE program holding a
kernel per size, so the sizes that exercise vector remainders (1, 7, 33, 1023) cost one
compile.
"""

import numpy as np
import pytest

from tracegrad.codegen import compile_program, outline, simd
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import (Buffer, Const, DotKernel, IndexMap, KernelProgram, Load,
                                      LoopKernel, Op, Store)


F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
I32, I64, BOOL = np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.bool_)
SIZES = (1, 7, 33, 1023)
FLOATS = (F32, F64)
INTS = (I32, I64)


def compile_(kp):
    return compile_program(kp, name="test", disk_cache=False)


# How kernel bodies are emitted (docs/codegen.md, "Compile time"): "default" leaves the choice
# to the emitter (small kernels: scalar body for LLVM's loop vectorizer, inline math);
# "vector" gives every eligible kernel an explicit vector loop (simd.py); "outline" also calls
# every transcendental out of line (outline.py); "vfabi" calls them out of line from the
# scalar body, widened by LLVM through the vector-function-abi-variant attribute.
BODY_MODES = ("default", "vector", "outline", "vfabi")


def set_body_mode(monkeypatch, mode):
    if mode in ("vector", "outline"):
        monkeypatch.setattr(simd, "LONG_BODY", 0)
    if mode in ("outline", "vfabi"):
        monkeypatch.setattr(outline, "OUTLINE_MIN_CALLS", 0)
    if mode == "vfabi":
        monkeypatch.setattr(simd, "vector_lanes", lambda em, vector_bits=None: None)


@pytest.fixture(params=BODY_MODES, name="body_mode")
def body_mode_fixture(request, monkeypatch):
    set_body_mode(monkeypatch, request.param)
    return request.param


def contiguous(shape):
    return tuple(int(np.prod(shape[d + 1:], dtype=np.int64)) for d in range(len(shape)))


# ---- program builders -------------------------------------------------------------

class ProgramBuilder:
    def __init__(self):
        self.inputs, self.outputs, self.consts, self.temps, self.kernels = [], [], [], [], []

    def input(self, shape, dtype):
        buf = Buffer(f"in{len(self.inputs)}", tuple(shape), np.dtype(dtype), "input",
                     index=len(self.inputs))
        self.inputs.append(buf)
        return buf

    def output(self, shape, dtype):
        buf = Buffer(f"out{len(self.outputs)}", tuple(shape), np.dtype(dtype), "output",
                     index=len(self.outputs))
        self.outputs.append(buf)
        return buf

    def temp(self, shape, dtype):
        buf = Buffer(f"t{len(self.temps)}", tuple(shape), np.dtype(dtype), "temp")
        self.temps.append(buf)
        return buf

    def const(self, value):
        value = np.asarray(value)
        buf = Buffer(f"c{len(self.consts)}", value.shape, value.dtype, "const", value=value)
        self.consts.append(buf)
        return buf

    def loop(self, domain, body, stores):
        self.kernels.append(LoopKernel(f"k{len(self.kernels)}", tuple(domain), body, stores))

    def build(self):
        return KernelProgram(self.inputs, self.outputs, self.consts, self.temps, self.kernels)


def elementwise_program(prim, in_dtypes, out_dtype, params, sizes=SIZES):
    return multi_elementwise_program(prim, [(in_dtypes, out_dtype)], params, sizes)


def multi_elementwise_program(prim, signatures, params, sizes=SIZES):
    """One kernel per (signature, size): many cases, one compile."""
    pb = ProgramBuilder()
    for in_dtypes, out_dtype in signatures:
        for n in sizes:
            ins = [pb.input((n,), dt) for dt in in_dtypes]
            out = pb.output((n,), out_dtype)
            idx = IndexMap(0, (1,))
            body = [Load(b, idx, b.dtype) for b in ins]
            body.append(Op(prim, tuple(range(len(ins))), dict(params), np.dtype(out_dtype)))
            pb.loop((n,), body, [Store(out, len(ins), idx)])
    return pb.build()


def assert_matches_interp(kp, inputs, rtol=0.0, atol=0.0, tol_of=None):
    """Compiled == interpreted; `tol_of(dtype)` may give per-dtype tolerances."""
    got = compile_(kp)(*inputs)
    want = run_program(kp, *inputs)
    assert len(got) == len(want)
    for j, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape
        tol = tol_of(w.dtype) if tol_of else dict(rtol=rtol, atol=atol)
        if np.issubdtype(w.dtype, np.floating):
            np.testing.assert_allclose(g, w, equal_nan=True, err_msg=f"output {j}", **tol)
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"output {j}")
    return got


# ---- the primitive table ------------------------------------------------------------

def _sample(rng, domain, dtype, n):
    dtype = np.dtype(dtype)
    if dtype == BOOL:
        return rng.random(n) < 0.5
    if dtype.kind == "i" or domain == "small":  # small integers: compares see equal values
        lo, hi = {"small": (-3, 4), "nonzero": (1, 6)}.get(domain, (-50, 51))
        return rng.integers(lo, hi, n).astype(dtype)
    lo, hi = {"any": (-6, 6), "pos": (1e-3, 20), "gt-1": (-0.99, 10), "exp": (-30, 30),
              "trig": (-40, 40), "base": (0.05, 4), "expo": (-3, 3)}[domain]
    return rng.uniform(lo, hi, n).astype(dtype)


# math ops get the approximation tolerance of mathlib; the others are exact
MATH_TOL = {F32: dict(rtol=5e-6, atol=1e-6), F64: dict(rtol=1e-13, atol=1e-14)}
EXACT = dict(rtol=0, atol=0)
ROUNDING = {F32: dict(rtol=2e-7, atol=0), F64: dict(rtol=1e-15, atol=0)}

#        prim, operand domains, dtypes, params, tolerance kind
OPS = [
    ("neg", ("any",), FLOATS + INTS, {}, "exact"),
    ("exp", ("exp",), FLOATS, {}, "math"),
    ("log", ("pos",), FLOATS, {}, "math"),
    ("log1p", ("gt-1",), FLOATS, {}, "math"),
    ("expm1", ("any",), FLOATS, {}, "math"),
    ("sqrt", ("pos",), FLOATS, {}, "math"),
    ("sin", ("trig",), FLOATS, {}, "math"),
    ("cos", ("trig",), FLOATS, {}, "math"),
    ("tanh", ("any",), FLOATS, {}, "math"),
    ("abs", ("any",), FLOATS + INTS, {}, "exact"),
    ("sign", ("any",), FLOATS + INTS, {}, "exact"),
    ("integer_pow", ("any",), FLOATS + INTS, {"y": 3}, "rounding"),
    ("integer_pow", ("pos",), FLOATS, {"y": -2}, "rounding"),
    ("integer_pow", ("any",), FLOATS, {"y": 0}, "exact"),
    ("integer_pow", ("nonzero",), INTS, {"y": -1}, "exact"),
    ("stop_gradient", ("any",), FLOATS + INTS, {}, "exact"),
    ("add", ("any", "any"), FLOATS + INTS, {}, "exact"),
    ("sub", ("any", "any"), FLOATS + INTS, {}, "exact"),
    ("mul", ("any", "any"), FLOATS + INTS, {}, "exact"),
    ("div", ("any", "pos"), FLOATS, {}, "exact"),
    ("div", ("any", "nonzero"), INTS, {}, "exact"),
    ("pow", ("base", "expo"), FLOATS, {}, "math"),
    ("pow", ("small", "nonzero"), INTS, {}, "exact"),
    ("max", ("any", "any"), FLOATS + INTS, {}, "exact"),
    ("min", ("any", "any"), FLOATS + INTS, {}, "exact"),
    *[(c, ("small", "small"), FLOATS + INTS, {}, "exact")
      for c in ("lt", "le", "gt", "ge", "eq", "ne")],
    *[(c, ("any", "any"), (BOOL,), {}, "exact") for c in ("eq", "ne", "lt")],
    ("and", ("any", "any"), (BOOL,), {}, "exact"),
    ("or", ("any", "any"), (BOOL,), {}, "exact"),
    ("not", ("any",), (BOOL,), {}, "exact"),
    *[(f, ("any",), FLOATS, {}, "math") for f in ("atan", "exp2")],
    *[(f, ("pos",), FLOATS, {}, "math") for f in ("log2", "log10")],
    ("atan2", ("any", "any"), FLOATS, {}, "math"),
    *[(f, ("any",), FLOATS, {}, "exact") for f in ("floor", "ceil", "round", "trunc", "signbit")],
    ("copysign", ("any", "any"), FLOATS, {}, "exact"),
    ("rem", ("any", "pos"), FLOATS, {}, "exact"),
    ("rem", ("small", "small"), INTS, {}, "exact"),
    *[(f, ("any", "any"), INTS + (BOOL,), {}, "exact")
      for f in ("bitwise_and", "bitwise_or", "bitwise_xor")],
    ("bitwise_not", ("any",), INTS + (BOOL,), {}, "exact"),
    *[(f, ("any", "any"), INTS, {}, "exact") for f in ("shift_left", "shift_right")],
]
OUT_BOOL = {"lt", "le", "gt", "ge", "eq", "ne", "and", "or", "not", "signbit"}


def _tolerance(kind, dtype):
    if kind == "math" and dtype in FLOATS:
        return MATH_TOL[dtype]
    if kind == "rounding" and dtype in FLOATS:
        return ROUNDING[dtype]
    return EXACT


AXES = [(0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2)]


def add_reduction(pb, shape, axes, kind, dtype):
    x = pb.input(shape, dtype)
    out_shape = tuple(n for d, n in enumerate(shape) if d not in axes)
    out = pb.output(out_shape, dtype)
    out_strides = iter(contiguous(out_shape))
    strides = tuple(0 if d in axes else next(out_strides) for d in range(len(shape)))
    body = [Load(x, IndexMap(0, contiguous(shape)), dtype), Op("sin", (0,), {}, dtype)]
    pb.loop(shape, body, [Store(out, 1, IndexMap(0, strides), reduce=kind)])


def reduction_program(shape, axes, kind, dtype):
    pb = ProgramBuilder()
    add_reduction(pb, shape, axes, kind, dtype)
    return pb.build()


def add_dot(pb, batch, m, k, n, dtype, trans_a=False, trans_b=False):
    a = pb.input((batch, k, m) if trans_a else (batch, m, k), dtype)
    b = pb.input((batch, n, k) if trans_b else (batch, k, n), dtype)
    out = pb.output((batch, m, n), dtype)
    pb.kernels.append(DotKernel(f"dot{len(pb.kernels)}", a, b, out, batch, m, k, n, trans_a, trans_b))


def dot_program(batch, m, k, n, dtype, trans_a=False, trans_b=False):
    pb = ProgramBuilder()
    add_dot(pb, batch, m, k, n, dtype, trans_a, trans_b)
    return pb.build()


def chain_program(n, length, dtype=F64):
    """x -> t0 = x+1 -> t1 = 2*t0 ... -> out; every temp is dead after the next kernel."""
    pb = ProgramBuilder()
    src = pb.input((n,), dtype)
    idx = IndexMap(0, (1,))
    for j in range(length):
        dst = pb.temp((n,), dtype) if j < length - 1 else pb.output((n,), dtype)
        body = [Load(src, idx, dtype), Op("mul", (0, Const(1.5, dtype)), {}, dtype),
                Op("add", (1, Const(1.0, dtype)), {}, dtype)]
        pb.loop((n,), body, [Store(dst, 2, idx)])
        src = dst
    return pb.build()


@pytest.fixture(name="tiny_thread_threshold")
def tiny_thread_threshold_fixture(monkeypatch):
    from tracegrad.codegen import threads
    monkeypatch.setattr(threads, "PARALLEL_MIN_COST", 64)


def many_transcendentals_program(dtype, sizes, reduce=None):
    """One kernel per size: every out-of-line function, sin and cos of one value, a chain."""
    pb = ProgramBuilder()
    for n in sizes:
        x, y = pb.input((n,), dtype), pb.input((n,), dtype)
        out = pb.output((n,), dtype)
        total = pb.output((), dtype)
        idx = IndexMap(0, (1,))
        c = lambda v: Const(v, dtype)
        body = [Load(x, idx, dtype), Load(y, idx, dtype),                     # 0 x in (-3, 3), 1 y > 0
                Op("sin", (0,), {}, dtype), Op("cos", (0,), {}, dtype),        # 2, 3: one sincos
                Op("exp", (0,), {}, dtype), Op("log", (1,), {}, dtype),        # 4, 5
                Op("log1p", (1,), {}, dtype), Op("expm1", (0,), {}, dtype),    # 6, 7
                Op("tanh", (0,), {}, dtype), Op("pow", (1, 0), {}, dtype),     # 8, 9
                Op("mul", (2, 3), {}, dtype), Op("sin", (10,), {}, dtype),     # 10, 11
                Op("add", (4, 5), {}, dtype), Op("add", (12, 6), {}, dtype),   # 12, 13
                Op("add", (13, 7), {}, dtype), Op("add", (14, 8), {}, dtype),  # 14, 15
                Op("mul", (15, c(0.25)), {}, dtype), Op("cos", (16,), {}, dtype),  # 16, 17
                Op("add", (17, 11), {}, dtype), Op("add", (18, 9), {}, dtype)]  # 18, 19
        pb.loop((n,), body, [Store(out, 19, idx), Store(total, 19, IndexMap(0, (0,)), "sum")])
    return pb.build()


def _transcendental_inputs(kp, seed=12):
    rng = np.random.default_rng(seed)
    inputs = []
    for k, buf in enumerate(kp.inputs):
        lo, hi = (-3, 3) if k % 2 == 0 else (0.05, 4)
        inputs.append(rng.uniform(lo, hi, buf.shape).astype(buf.dtype))
    return inputs
