"""The kernel interpreter on hand-written programs, and the kernel-program printer."""
import numpy as np
import pytest

from tracegrad.ir import ops
from tracegrad.passes.fusion import fuse
from tracegrad.passes.kernel_interp import KernelIndexError, run_program
from tracegrad.passes.kernels import (Buffer, Const, DotKernel, IndexMap, KernelProgram, Load,
                                      LoopKernel, Op, Store)
from fusion_cases import F32, F64, build, sample


# ---- the interpreter on hand-written programs -----------------------------------------------

def _program(domain, body, stores, inputs, outputs, temps=()):
    return KernelProgram(inputs, outputs, [], list(temps), [LoopKernel("k0", domain, body, stores)])


def test_interp_bounds_negative_strides_and_steps():
    x = Buffer("x", (6,), F64, "input", index=0)
    out = Buffer("out", (4, 3), F64, "output", index=0)
    body = [Load(x, IndexMap(5, (0, -2), ((1, 4, 2), (0, 3, 1))), F64),
            Op("mul", (0, Const(2.0, F64)), {}, F64)]
    kp = _program((4, 3), body, [Store(out, 1, IndexMap(0, (3, 1)))], [x], [out])
    (got,) = run_program(kp, np.arange(6.0))
    want = np.zeros((4, 3))
    want[1, :] = want[3, :] = 2 * np.array([5.0, 3.0, 1.0])
    np.testing.assert_array_equal(got, want)


def test_interp_refuses_out_of_bounds():
    x = Buffer("x", (4,), F64, "input", index=0)
    out = Buffer("out", (4,), F64, "output", index=0)
    body = [Load(x, IndexMap(1, (1,)), F64)]
    kp = _program((4,), body, [Store(out, 0, IndexMap(0, (1,)))], [x], [out])
    with pytest.raises(KernelIndexError):
        run_program(kp, np.arange(4.0))


def test_interp_reduce_identities_on_empty_domain():
    x = Buffer("x", (0, 2), F64, "input", index=0)
    outs = [Buffer(f"o{i}", (2,), F64, "output", index=i) for i in range(3)]
    body = [Load(x, IndexMap(0, (2, 1)), F64)]
    stores = [Store(o, 0, IndexMap(0, (0, 1)), r) for o, r in zip(outs, ["sum", "max", "min"])]
    kp = _program((0, 2), body, stores, [x], outs)
    got = run_program(kp, np.zeros((0, 2)))
    assert [g.tolist() for g in got] == [[0, 0], [-np.inf, -np.inf], [np.inf, np.inf]]


def test_interp_dot_transposes():
    a = Buffer("a", (3, 2), F64, "input", index=0)
    b = Buffer("b", (4, 3), F64, "input", index=1)
    out = Buffer("o", (2, 4), F64, "output", index=0)
    kp = KernelProgram([a, b], [out], [], [], [DotKernel("k0", a, b, out, 1, 2, 3, 4, True, True)])
    A, B = sample((3, 2), F64), sample((4, 3), F64)
    np.testing.assert_allclose(run_program(kp, A, B)[0], A.T @ B.T)


# ---- the printer ------------------------------------------------------------------------

GOLDEN = """\
program (in0:f32[10]) -> (out0:f32[], out1:f32[11])
  input  in0:f32[10] (arg 0)
  const  mask:bool[]
  output out0:f32[] (result 0)
  output out1:f32[11] (result 1)
kernel k0 domain=(11,)
  %0 = load in0[-1+[1] if [(1, 11, 1)]]
  %1 = tanh %0
  %2 = mul %1 2.0:f32
  %3 = load mask[0+[0] if [(1, 11, 1)]]
  %4 = where %3 %2 0.0:f32
  %5 = load in0[0+[1] if [(0, 10, 1)]]
  %6 = add %4 %5
  %7 = tanh %5
  %8 = load mask[0+[0] if [(0, 10, 1)]]
  %9 = where %8 %7 0.0:f32
  store out1[0+[1]] = %6
  store out0[0+[0]] += %9"""


def test_printer_golden():
    def f(x):
        t = ops.tanh(x)
        grad = ops.add(ops.pad(ops.mul(t, 2.0), (1,), (1,), (11,)), ops.pad(x, (0,), (1,), (11,)))
        return ops.reduce_sum(t, (0,)), grad

    kp = fuse(build(f, ((10,), F32)))
    assert str(kp) == GOLDEN
    assert str(fuse(build(f, ((10,), F32)))) == GOLDEN  # stable across runs


def test_printer_dot_line():
    kp = fuse(build(lambda a, b: ops.dot(a, ops.transpose(b, (1, 0))),
                    ((2, 3), F32), ((4, 3), F32)))
    assert str(kp).splitlines()[-1] == "dot k0: out0 = in0 @ in1.T [b=1 m=2 k=3 n=4]"
