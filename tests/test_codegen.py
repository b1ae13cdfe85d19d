"""codegen: kernel programs compiled to native code vs the kernel interpreter (numpy).

One table drives the primitive tests (op, operand domain, dtypes, tolerance);
each (op, dtype) compiles ONE program holding a kernel per size, so the
sizes that exercise vector remainders (1, 7, 33, 1023) cost one compile.
"""
import threading

import numpy as np
import pytest

from tracegrad.codegen import LOWERINGS, SignatureMismatch, compile_program, outline, simd
from tracegrad.codegen import lower_program
from tracegrad.codegen.lower import KernelEmitter, plan_arena, simplify_domain, Access
from tracegrad.codegen.scalar_ops import ELEMENTWISE_KINDS
from tracegrad.ir import PRIMITIVES, GraphBuilder, ShapedArray, ops
from tracegrad.passes.autodiff import grad_graph
from tracegrad.passes.fusion import fuse
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


@pytest.fixture(params=BODY_MODES)
def body_mode(request, monkeypatch):
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
]
OUT_BOOL = {"lt", "le", "gt", "ge", "eq", "ne", "and", "or", "not"}


def _tolerance(kind, dtype):
    if kind == "math" and dtype in FLOATS:
        return MATH_TOL[dtype]
    if kind == "rounding" and dtype in FLOATS:
        return ROUNDING[dtype]
    return EXACT


@pytest.mark.parametrize("prim,domains,dtypes,params,tol", OPS,
                         ids=[f"{op[0]}{op[3] or ''}" for op in OPS])
def test_primitive_vs_interpreter(prim, domains, dtypes, params, tol, body_mode):
    """Every dtype and size of one table row in one program."""
    rng = np.random.default_rng(len(prim) * 7919 + len(domains))
    sigs = [([dt] * len(domains), BOOL if prim in OUT_BOOL else dt) for dt in dtypes]
    kp = multi_elementwise_program(prim, sigs, params)
    inputs = [_sample(rng, d, dt, n) for dt in dtypes for n in SIZES for d in domains]
    assert_matches_interp(kp, inputs, tol_of=lambda out_dt: _tolerance(tol, out_dt))


def test_where_and_convert(body_mode):
    """where over every dtype, and convert between every pair of dtypes: two programs."""
    rng = np.random.default_rng(1)
    n = 33
    dtypes = FLOATS + INTS + (BOOL,)
    kp = multi_elementwise_program("where", [([BOOL, dt, dt], dt) for dt in FLOATS + INTS], {},
                                   sizes=(n,))
    inputs = []
    for dt in FLOATS + INTS:
        inputs += [rng.random(n) < 0.5, _sample(rng, "any", dt, n), _sample(rng, "any", dt, n)]
    assert_matches_interp(kp, inputs)
    pairs = [(src, dst) for src in dtypes for dst in dtypes]
    pb = ProgramBuilder()
    for src, dst in pairs:
        x, out, idx = pb.input((n,), src), pb.output((n,), dst), IndexMap(0, (1,))
        pb.loop((n,), [Load(x, idx, src), Op("convert", (0,), {"dtype": dst}, dst)],
                [Store(out, 1, idx)])
    inputs = []
    for src, _ in pairs:
        x = _sample(rng, "any", src, n)
        if src in FLOATS:
            x[:3] = [0.0, -0.0, 2.5]
        inputs.append(x)
    assert_matches_interp(pb.build(), inputs)


def test_every_elementwise_primitive_has_a_lowering():
    needed = {name for name, p in PRIMITIVES.items() if p.kind in ELEMENTWISE_KINDS}
    assert "exp" in needed and "where" in needed and "convert" in needed
    missing = needed - set(LOWERINGS)
    assert not missing, f"primitives without a codegen lowering: {sorted(missing)}"


# ---- NaN / inf / edge values ----------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_nan_inf_propagation(dtype, body_mode):
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 3.0], dtype)
    other = np.array([1.0, np.nan, 2.0, -0.0, 0.0, np.inf, -np.inf, np.nan], dtype)
    with np.errstate(all="ignore"):
        for prim in ("max", "min", "div", "add", "mul"):
            kp = elementwise_program(prim, [dtype, dtype], dtype, {}, sizes=(8,))
            assert_matches_interp(kp, [special, other])
        for prim in ("exp", "log", "sqrt", "tanh", "sign", "abs", "expm1", "log1p"):
            kp = elementwise_program(prim, [dtype], dtype, {}, sizes=(8,))
            got = compile_(kp)(special)[0]
            want = run_program(kp, special)[0]
            assert np.array_equal(np.isnan(got), np.isnan(want)), prim
            finite = np.isfinite(want)
            assert np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)]), prim
            np.testing.assert_allclose(got[finite], want[finite], **MATH_TOL[dtype])


def test_integer_division_by_zero_does_not_trap():
    x = np.array([7, -7, 0, np.iinfo(np.int64).min], np.int64)
    y = np.array([0, 2, 0, -1], np.int64)
    got = compile_(elementwise_program("div", [I64, I64], I64, {}, sizes=(4,)))(x, y)[0]
    assert got[1] == -3 and got[0] == np.iinfo(np.int64).min


# ---- index maps: broadcast, negative strides, pad bounds, constants ----------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_broadcast_negative_stride_and_offsets(dtype, body_mode):
    rng = np.random.default_rng(2)
    pb = ProgramBuilder()
    m, n = 5, 33
    x = pb.input((m, n), dtype)
    row = pb.input((n,), dtype)
    col = pb.input((m,), dtype)
    out = pb.output((m, n), dtype)
    body = [Load(x, IndexMap(m * n - 1, (-n, -1)), dtype),  # x reversed in both axes
            Load(row, IndexMap(0, (0, 1)), dtype),  # broadcast along dim 0
            Load(col, IndexMap(0, (1, 0)), dtype),  # broadcast along dim 1 (splat)
            Op("add", (0, 1), {}, dtype), Op("mul", (3, 2), {}, dtype)]
    pb.loop((m, n), body, [Store(out, 4, IndexMap(0, (n, 1)))])
    inputs = [rng.standard_normal((m, n)).astype(dtype), rng.standard_normal(n).astype(dtype),
              rng.standard_normal(m).astype(dtype)]
    got = assert_matches_interp(pb.build(), inputs)[0]
    np.testing.assert_array_equal(got, (inputs[0][::-1, ::-1] + inputs[1]) * inputs[2][:, None])


@pytest.mark.parametrize("n", [1, 7, 1023])
def test_pad_bounds_never_read_outside(n, body_mode):
    """out[i] = x[i-2] + 1 for 2 <= i < n+2, else 1; out2 interleaves x with zeros."""
    rng = np.random.default_rng(3)
    pb = ProgramBuilder()
    x = pb.input((n,), F64)
    out = pb.output((n + 4,), F64)
    out2 = pb.output((2 * n,), F64)
    body = [Load(x, IndexMap(-2, (1,), ((2, n + 2, 1),)), F64), Op("add", (0, Const(1.0, F64)), {}, F64)]
    pb.loop((n + 4,), body, [Store(out, 1, IndexMap(0, (1,)))])
    body2 = [Load(x, IndexMap(0, (1, 0), ((0, n, 1), (1, 2, 1))), F64)]
    pb.loop((n, 2), body2, [Store(out2, 0, IndexMap(0, (2, 1)))])
    xv = rng.standard_normal(n)
    got = assert_matches_interp(pb.build(), [xv])
    np.testing.assert_array_equal(got[0], np.concatenate([[1, 1], xv + 1, [1, 1]]))
    np.testing.assert_array_equal(got[1][::2], 0)


def test_bounds_with_step(body_mode):
    """Valid where 1 <= i < 8 and (i-1) % 2 == 0; the clamped address stays inside x."""
    pb = ProgramBuilder()
    x = pb.input((8,), F64)
    out = pb.output((11,), F64)
    body = [Load(x, IndexMap(0, (1,), ((1, 8, 2),)), F64)]
    pb.loop((11,), body, [Store(out, 0, IndexMap(0, (1,)))])
    got = assert_matches_interp(pb.build(), [np.arange(1.0, 9.0)])[0]
    assert got.tolist() == [0, 2, 0, 4, 0, 6, 0, 8, 0, 0, 0]


def test_constants_small_and_large(body_mode):
    rng = np.random.default_rng(4)
    pb = ProgramBuilder()
    small = pb.const(np.arange(4.0))
    big = pb.const(rng.standard_normal(1000))
    x = pb.input((1000,), F64)
    out = pb.output((1000,), F64)
    body = [Load(x, IndexMap(0, (1,)), F64), Load(big, IndexMap(0, (1,)), F64),
            Load(small, IndexMap(0, (0,)), F64), Op("mul", (0, 1), {}, F64), Op("add", (3, 2), {}, F64)]
    pb.loop((1000,), body, [Store(out, 4, IndexMap(0, (1,)))])
    assert_matches_interp(pb.build(), [rng.standard_normal(1000)])


# ---- reductions ---------------------------------------------------------------------------

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


# ---- dot ---------------------------------------------------------------------------------------

def add_dot(pb, batch, m, k, n, dtype, trans_a=False, trans_b=False):
    a = pb.input((batch, k, m) if trans_a else (batch, m, k), dtype)
    b = pb.input((batch, n, k) if trans_b else (batch, k, n), dtype)
    out = pb.output((batch, m, n), dtype)
    pb.kernels.append(DotKernel(f"dot{len(pb.kernels)}", a, b, out, batch, m, k, n, trans_a, trans_b))


def dot_program(batch, m, k, n, dtype, trans_a=False, trans_b=False):
    pb = ProgramBuilder()
    add_dot(pb, batch, m, k, n, dtype, trans_a, trans_b)
    return pb.build()


DOT_DIMS = [(1, 3, 4, 5), (2, 64, 48, 40), (1, 1, 1, 1), (3, 7, 33, 9), (1, 70, 80, 90)]


@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)])
def test_dot(trans):
    """Inline loops (small) and BLAS calls (large), batched, with transposed operands."""
    rng = np.random.default_rng(7)
    pb = ProgramBuilder()
    for dt in FLOATS:
        for dims in DOT_DIMS:
            add_dot(pb, *dims, dt, *trans)
    kp = pb.build()
    inputs = [rng.standard_normal(buf.shape).astype(buf.dtype) for buf in kp.inputs]
    tol = {F32: dict(rtol=1e-4, atol=1e-4), F64: dict(rtol=1e-11, atol=1e-11)}
    assert_matches_interp(kp, inputs, tol_of=tol.get)


def test_dot_with_zero_dims():
    pb = ProgramBuilder()
    for dims in [(1, 0, 4, 5), (1, 3, 0, 5), (2, 3, 4, 0), (0, 3, 4, 5), (1, 300, 0, 300)]:
        add_dot(pb, *dims, F64)
    kp = pb.build()
    assert_matches_interp(kp, [np.ones(buf.shape) for buf in kp.inputs])


# (batch, m, k, n) above INLINE_FLOPS: matrix-vector products (?gemv) and vector dots (?dot)
GEMV_DIMS = [(1, 300, 200, 1), (1, 1, 200, 300), (3, 130, 300, 1), (2, 1, 300, 130),
             (1, 1, 40000, 1), (2, 1, 20000, 1), (1, 40000, 1, 1), (1, 1, 1, 40000)]


def _operand(x, trans):
    return np.swapaxes(x, 1, 2) if trans else x


@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)])
def test_matrix_vector_products_call_gemv_and_dot(trans):
    """n == 1 or m == 1 go to ?gemv and m == n == 1 to ?dot, as numpy does; every layout,
    batched, checked against numpy's product in float64."""
    rng = np.random.default_rng(11)
    pb = ProgramBuilder()
    for dt in FLOATS:
        for dims in GEMV_DIMS:
            add_dot(pb, *dims, dt, *trans)
    kp = pb.build()
    cp = compile_(kp)
    text = cp.llvm_ir()
    for call in ("void @tg_sgemv(", "void @tg_dgemv(", "float @tg_sdot(", "double @tg_ddot("):
        assert "call " + call in text
    assert "gemm" not in text
    inputs = [rng.standard_normal(buf.shape).astype(buf.dtype) for buf in kp.inputs]
    got = cp(*inputs)
    for j, out in enumerate(got):
        a, b = (_operand(x.astype(F64), t) for x, t in zip(inputs[2 * j:2 * j + 2], trans))
        eps = np.finfo(out.dtype).eps
        assert out.shape == (a.shape[0], a.shape[1], b.shape[2]) and out.dtype == inputs[2 * j].dtype
        bound = 64 * eps * (np.abs(a) @ np.abs(b))  # far below the O(1) error of a wrong layout
        assert np.all(np.abs(out - a @ b) <= bound), f"product {j}"


@pytest.mark.parametrize("m, n", [(300, 1), (1, 300)])
def test_gemv_ignores_what_its_output_held(m, n):
    """beta = 0: the arena bytes a gemv writes held NaN from a dead temp, and must not leak."""
    pb = ProgramBuilder()
    junk, a, b = pb.input((m * n,), F64), pb.input((1, m, 200), F64), pb.input((1, 200, n), F64)
    t0, t1 = pb.temp((m * n,), F64), pb.temp((1, m, n), F64)
    out0, out1 = pb.output((m * n,), F64), pb.output((1, m, n), F64)
    flat, grid = IndexMap(0, (1,)), IndexMap(0, contiguous((1, m, n)))
    pb.loop((m * n,), [Load(junk, flat, F64)], [Store(t0, 0, flat)])
    pb.loop((m * n,), [Load(t0, flat, F64)], [Store(out0, 0, flat)])
    pb.kernels.append(DotKernel("dot", a, b, t1, 1, m, 200, n))
    pb.loop((1, m, n), [Load(t1, grid, F64)], [Store(out1, 0, grid)])
    kp = pb.build()
    offsets, _ = plan_arena(kp)
    assert offsets[t0] == offsets[t1]  # the product's output reuses the NaN temp's bytes
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(a.shape), rng.standard_normal(b.shape)
    got = compile_(kp)(np.full(m * n, np.nan), x, y)
    assert np.isnan(got[0]).all()
    np.testing.assert_allclose(got[1], x @ y, rtol=1e-12, atol=1e-12)


# ---- programs with temps: arena planning and reuse ----------------------------------------------

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


# ---- threads ---------------------------------------------------------------------------------

@pytest.fixture
def tiny_thread_threshold(monkeypatch):
    from tracegrad.codegen import threads
    monkeypatch.setattr(threads, "PARALLEL_MIN_COST", 64)


def test_threaded_kernels_match_interpreter(tiny_thread_threshold, body_mode):
    """Row-owned stores, a full reduction and a reduction over dim 0 (private partials)."""
    rng = np.random.default_rng(9)
    pb = ProgramBuilder()
    x = pb.input((37, 129), F64)
    full = pb.output((), F64)
    rows = pb.output((37,), F64)
    cols = pb.output((129,), F32)
    ew = pb.output((37, 129), F64)
    idx = IndexMap(0, (129, 1))
    body = [Load(x, idx, F64), Op("exp", (0,), {}, F64), Op("convert", (1,), {"dtype": F32}, F32)]
    pb.loop((37, 129), body, [Store(full, 1, IndexMap(0, (0, 0)), "sum"),
                              Store(rows, 1, IndexMap(0, (1, 0)), "max"),
                              Store(cols, 2, IndexMap(0, (0, 1)), "sum"),
                              Store(ew, 1, idx)])
    kp = pb.build()
    cp = compile_program(kp, disk_cache=False, n_threads=3)
    assert "tg_sys_pthread_create" in cp.llvm_ir()
    xv = rng.standard_normal((37, 129))
    got, want = cp(xv), run_program(kp, xv)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], **MATH_TOL[F64])
    np.testing.assert_allclose(got[2], want[2], rtol=1e-5)
    np.testing.assert_allclose(got[3], want[3], **MATH_TOL[F64])


def test_kernels_whose_rows_overlap_stay_on_one_thread(tiny_thread_threshold):
    pb = ProgramBuilder()
    x = pb.input((40, 40), F64)
    out = pb.output((79,), F64)  # out[i + j] += x[i, j]: rows of different i overlap
    pb.loop((40, 40), [Load(x, IndexMap(0, (40, 1)), F64)], [Store(out, 0, IndexMap(0, (1, 1)), "sum")])
    kp = pb.build()
    cp = compile_program(kp, disk_cache=False, n_threads=4)
    assert "pthread_create" not in cp.llvm_ir()
    xv = np.random.default_rng(10).standard_normal((40, 40))
    np.testing.assert_allclose(cp(xv)[0], run_program(kp, xv)[0], rtol=1e-12)


@pytest.mark.parametrize("blas_threads, cpus, want", [(1, 4, 3), (2, 2, 1), (2, 4, 3), (4, 4, 1),
                                                      (8, 4, 1), (3, 16, 3)])
def test_threads_beside_blas_leave_its_workers_their_cores(blas_threads, cpus, want):
    from tracegrad.codegen import threads
    assert threads.beside_blas(3, blas_threads, cpus) == want


@pytest.mark.parametrize("blas_threads, threaded", [(1, True), (2, False)])
def test_program_calling_threaded_blas_runs_its_kernels_on_one_thread(
        blas_threads, threaded, tiny_thread_threshold, monkeypatch):
    """OpenBLAS's workers spin between calls: a program that calls BLAS with 2 threads on
    2 cores starts no threads of its own; with BLAS on 1 thread it does."""
    import os
    from tracegrad.codegen import blas
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(blas, "thread_count", lambda: blas_threads)
    pb = ProgramBuilder()
    add_dot(pb, 1, 64, 64, 64, F64)
    x = pb.input((64, 64), F64)
    out = pb.output((64, 64), F64)
    idx = IndexMap(0, (64, 1))
    pb.loop((64, 64), [Load(x, idx, F64), Op("tanh", (0,), {}, F64)], [Store(out, 1, idx)])
    kp = pb.build()
    cp = compile_program(kp, disk_cache=False, n_threads=2)
    assert "call void @tg_dgemm(" in cp.llvm_ir()
    assert ("tg_sys_pthread_create" in cp.llvm_ir()) == threaded
    rng = np.random.default_rng(12)
    inputs = [rng.standard_normal(buf.shape) for buf in kp.inputs]
    for g, w in zip(cp(*inputs), run_program(kp, *inputs)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


# ---- programs made by fusion ------------------------------------------------------------------

def _w2_like(b, x):
    t = ops.add(ops.mul(ops.tanh(x), ops.exp(ops.mul(ops.mul(x, x), -0.5))),
                ops.log(ops.add(ops.exp(x), 1.0)))
    return [ops.reduce_sum(t, (0,))]


def _rosenbrock(b, x):
    n = x.shape[0]
    head, tail = ops.slice(x, (0,), (1,), (n - 1,)), ops.slice(x, (1,), (1,), (n - 1,))
    d = ops.sub(tail, ops.integer_pow(head, 2))
    return [ops.reduce_sum(ops.add(ops.mul(100.0, ops.integer_pow(d, 2)),
                                   ops.integer_pow(ops.sub(1.0, head), 2)), (0,))]


def _softmax_rows(b, x):
    m = ops.reduce_max(x, (1,))
    e = ops.exp(ops.sub(x, ops.broadcast(ops.reshape(m, (x.shape[0], 1)), x.shape)))
    s = ops.reduce_sum(e, (1,))
    return [ops.div(e, ops.broadcast(ops.reshape(s, (x.shape[0], 1)), x.shape))]


def _mlp(b, x):
    w = np.linspace(-1, 1, x.shape[1] * 40).reshape(x.shape[1], 40).astype(x.dtype)
    h = ops.tanh(ops.dot(x, w))
    return [ops.reduce_sum(ops.mul(h, h), (0, 1))]


def _pads(b, x):
    p = ops.pad(x, (2,), (1,), (x.shape[0] + 5,))
    return [ops.mul(p, p), ops.concatenate([x, ops.neg(x)], 0)]


FUSED = [("w2", _w2_like, (1023,), F32), ("rosenbrock", _rosenbrock, (1023,), F64),
         ("softmax", _softmax_rows, (7, 33), F64), ("mlp", _mlp, (33, 50), F32),
         ("pads", _pads, (33,), F64)]


@pytest.mark.parametrize("name,fn,shape,dtype", FUSED, ids=[f[0] for f in FUSED])
def test_fused_programs_with_gradients(name, fn, shape, dtype, body_mode):
    """fuse(graph [+ its gradient]) compiled == the kernel interpreter on the same program."""
    b = GraphBuilder()
    x = b.new_input(ShapedArray(shape, dtype))
    graph = b.build(fn(b, x))
    if len(graph.outvars) == 1 and graph.outvars[0].aval.shape == ():
        graph = grad_graph(graph)
    kp = fuse(graph)
    xv = np.random.default_rng(11).uniform(-1.5, 1.5, shape).astype(dtype)
    got, want = compile_(kp)(xv), run_program(kp, xv)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == F32 else dict(rtol=1e-11, atol=1e-11)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **tol)


# ---- compile-time paths: explicit vector loops and out-of-line math -----------------------------

def test_body_modes_take_their_path(monkeypatch):
    """Each body mode really emits what it names (else the mode-parametrized tests prove nothing)."""
    kp = elementwise_program("exp", [F64], F64, {}, sizes=(33,))
    int_kp = elementwise_program("add", [I64, I64], I64, {}, sizes=(33,))
    expect = {"default": (False, False, False), "vector": (True, False, False),
              "outline": (True, True, False), "vfabi": (False, True, True)}
    for mode, (masked, called, abi) in expect.items():
        with monkeypatch.context() as m:
            set_body_mode(m, mode)
            text = lower_program(kp).text()
            assert ("llvm.masked.load" in text) == masked, mode
            assert ("call double @\"tg_m_exp_f64\"" in text or "@\"tg_m_exp_v" in text) == called, mode
            assert ("vector-function-abi-variant" in text) == abi, mode
            assert "masked" not in lower_program(int_kp).text(), "int kernels stay scalar"


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


@pytest.mark.parametrize("dtype", FLOATS)
def test_out_of_line_math_matches_inline_bit_for_bit(dtype, monkeypatch):
    """The same mathlib code inline (LLVM's vectorizer), out of line in an explicit vector
    loop (with sin/cos shared) and out of line widened through the vector ABI attribute:
    elementwise results are identical; sums differ only by summation order."""
    sizes = (1, 7, 16, 33, 1023, 4099)  # remainders, an exact multiple, the split loop
    kp = many_transcendentals_program(dtype, sizes)
    assert all(outline.wants_outline(k) for k in kp.kernels)  # 10 transcendentals > 8
    inputs = _transcendental_inputs(kp)
    results, texts = {}, {}
    for mode in ("inline", "default", "vfabi"):
        with monkeypatch.context() as m:
            if mode == "inline":  # the path every small kernel takes
                m.setattr(outline, "OUTLINE_MIN_CALLS", 10 ** 9)
                m.setattr(simd, "LONG_BODY", 10 ** 9)
            set_body_mode(m, mode if mode == "vfabi" else "default")
            cp = compile_(kp)
            results[mode], texts[mode] = cp(*inputs), cp.llvm_ir()
    lanes = simd.vector_lanes(KernelEmitter(None, kp.kernels[-1], "k", math=object()))
    tag = "f32" if dtype == F32 else "f64"
    assert "@tg_m_" not in texts["inline"]
    assert f"@tg_m_sincos_v{lanes}{tag}" in texts["default"]
    assert f"<{lanes} x {'float' if dtype == F32 else 'double'}> @tg_m_exp_v{lanes}{tag}(" in texts["default"]
    assert f"@tg_m_exp_v{lanes}{tag}" in texts["vfabi"], "the loop vectorizer did not widen the calls"
    want = run_program(kp, *inputs)
    for mode in ("default", "vfabi"):
        for j, (g, ref, w) in enumerate(zip(results[mode], results["inline"], want)):
            if g.shape:
                np.testing.assert_array_equal(g, ref, err_msg=f"{mode} output {j}")
                np.testing.assert_allclose(g, w, err_msg=f"{mode} output {j}", **MATH_TOL[dtype])
            else:
                scale = np.sum(np.abs(results["inline"][j - 1].astype(np.float64))) + 1
                assert abs(float(g) - float(ref)) <= 8 * np.finfo(dtype).eps * scale, (mode, j)


@pytest.mark.parametrize("dtype", FLOATS)
def test_explicit_vector_loops_in_two_dims(dtype, monkeypatch):
    """Rows and columns of a 2-D domain through the explicit vector loop: masked tails of an
    inner dim (static), splat loads, step-1 pad bounds split into segments, reductions
    along either axis (the one into memory needs a fill), bool values."""
    monkeypatch.setattr(simd, "LONG_BODY", 0)
    rng = np.random.default_rng(13)
    for m, n in [(5, 37), (3, 16), (37, 5), (2, 200)]:
        pb = ProgramBuilder()
        x, col = pb.input((m, n), dtype), pb.input((m,), dtype)
        ew, rows, cols, mx = (pb.output((m, n + 3), dtype), pb.output((m,), dtype),
                              pb.output((n,), dtype), pb.output((m,), dtype))
        body = [Load(x, IndexMap(0, (n, 1), ((0, m, 1), (0, n, 1))), dtype),  # 0 pad: x[i, j], j < n
                Load(col, IndexMap(0, (1, 0)), dtype),                    # 1 splat along dim 1
                Op("exp", (0,), {}, dtype), Op("mul", (2, 1), {}, dtype),  # 2, 3
                Op("gt", (0, Const(0.0, dtype)), {}, BOOL),               # 4
                Op("where", (4, 3, Const(-1.0, dtype)), {}, dtype)]        # 5
        stores = [Store(ew, 5, IndexMap(0, (n + 3, 1))),
                  Store(rows, 5, IndexMap(0, (1, 0)), "sum"), Store(mx, 3, IndexMap(0, (1, 0)), "max")]
        pb.loop((m, n + 3), body, stores)
        pb.loop((m, n), body[:1] + [Op("sin", (0,), {}, dtype)], [Store(cols, 1, IndexMap(0, (0, 1)), "sum")])
        kp = pb.build()
        assert all(KernelEmitter(None, k, "k", math=object()).lanes for k in kp.kernels)
        inputs = [rng.standard_normal((m, n)).astype(dtype), rng.standard_normal(m).astype(dtype)]
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == F32 else dict(rtol=1e-12, atol=1e-12)
        assert_matches_interp(kp, inputs, **tol)


def test_strided_inner_loads_keep_the_scalar_body():
    """Stride 2 or -1 in the innermost dim, or step-2 bounds: no explicit vector loop."""
    x = Buffer("x", (64,), F64, "input", index=0)
    out = Buffer("o", (32,), F64, "output", index=0)
    for index in [IndexMap(0, (1,)), IndexMap(0, (2,)), IndexMap(31, (-1,)),
                  IndexMap(0, (1,), ((0, 32, 2),))]:
        body = [Load(x, index, F64)] + [Op("sin", (k,), {}, F64) for k in range(10)]
        kernel = LoopKernel("k", (32,), body, [Store(out, 10, IndexMap(0, (1,)))])
        lanes = KernelEmitter(None, kernel, "k", math=object()).lanes
        assert (lanes is not None) == (index.strides == (1,) and index.bounds is None), index


def test_outlined_threaded_kernel_with_odd_chunks(tiny_thread_threshold):
    kp = many_transcendentals_program(F64, (1001,))
    cp = compile_program(kp, disk_cache=False, n_threads=3)
    assert "tg_sys_pthread_create" in cp.llvm_ir() and "@tg_m_sincos" in cp.llvm_ir()
    inputs = _transcendental_inputs(kp)
    got, want = cp(*inputs), run_program(kp, *inputs)
    np.testing.assert_allclose(got[0], want[0], **MATH_TOL[F64])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


def _w7_like(b, x, steps=30):
    for _ in range(steps):
        x = ops.add(ops.mul(ops.sin(x), 0.9), ops.mul(ops.mul(x, x), 0.1))
    return [ops.reduce_sum(x, (0,))]


def test_w7_like_gradient_shares_sincos():
    """Forward sin and backward cos of each step become one out-of-line sincos call."""
    b = GraphBuilder()
    x = b.new_input(ShapedArray((16,), F64))
    kp = fuse(grad_graph(b.build(_w7_like(b, x))))
    [kernel] = [k for k in kp.kernels if outline.wants_outline(k)]
    lanes = KernelEmitter(None, kernel, "k", math=object()).lanes
    text = lower_program(kp).text()
    pair = f"<{lanes} x double>"
    assert text.count(f'call {{{pair}, {pair}}} @"tg_m_sincos_v{lanes}f64"') == 30
    assert "tg_m_sin_" not in text and "tg_m_cos_" not in text
    xv = np.random.default_rng(14).uniform(-1, 1, 16)
    got, want = compile_(kp)(xv), run_program(kp, xv)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_string_attributes_print_on_functions():
    from llvmlite import ir
    from tracegrad.codegen import llvm_util
    from tracegrad.codegen.irutil import Function
    m = ir.Module()
    fn = Function(m, ir.FunctionType(ir.VoidType(), []), "f")
    fn.attributes.add("noinline")
    fn.string_attributes["prefer-vector-width"] = 512
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.call(fn, [])
    b.ret_void()
    text = str(m)
    assert 'noinline "prefer-vector-width"="512"' in text
    llvm_util.parse(text)  # LLVM reads it (and verifies VFABI names: see the outline tests)


@pytest.mark.parametrize("n", [301, 2001, 4096])
def test_threaded_split_vector_loop_with_segments(n, tiny_thread_threshold, monkeypatch):
    """Dim 0 split into pad segments and into thread slices: a slice that misses a segment
    runs nothing there (a long segment runs full vectors plus one masked step)."""
    monkeypatch.setattr(simd, "LONG_BODY", 0)
    pb = ProgramBuilder()
    x = pb.input((n,), F64)
    out = pb.output((n,), F64)
    total = pb.output((), F64)
    half = n // 2  # two long segments: the last slice misses the first one
    body = [Load(x, IndexMap(1, (1,), ((0, n - 1, 1),)), F64),  # x[i + 1] for i < n - 1, else 0
            Load(x, IndexMap(0, (1,), ((0, half, 1),)), F64),   # x[i] for i < half, else 0
            Op("sub", (0, 1), {}, F64), Op("exp", (2,), {}, F64)]
    pb.loop((n,), body, [Store(out, 3, IndexMap(0, (1,))), Store(total, 3, IndexMap(0, (0,)), "sum")])
    kp = pb.build()
    cp = compile_program(kp, disk_cache=False, n_threads=3)
    assert "tg_sys_pthread_create" in cp.llvm_ir()
    xv = np.random.default_rng(15).uniform(-1, 1, n)
    got, want = cp(xv), run_program(kp, xv)
    np.testing.assert_allclose(got[0], want[0], **MATH_TOL[F64])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
