"""Constants are told apart by dtype and bytes everywhere, and the IEEE identities
live in one table that simplify and fusion both apply.

-0.0 and 0.0 compare equal as numbers but are different constants (1/-0.0 is
-inf); a NaN constant is the same constant as itself although NaN != NaN.
"""
import numpy as np
import pytest

import tracegrad
from tracegrad.ir import PRIMITIVES, Eqn, GraphBuilder, ShapedArray, Var, ops, verify
from tracegrad.passes.cse import cse, eqn_key
from tracegrad.passes.fusion import fuse
from tracegrad.passes.identities import NEUTRAL_OPERANDS, neutral_operand
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import Const, LoopKernel, Op
from tracegrad.passes.simplify import simplify_counted

F32, F64, I32 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32)


def build(fn, *avals):
    b = GraphBuilder()
    xs = [b.new_input(ShapedArray(shape, dtype)) for shape, dtype in avals]
    out = fn(*xs)
    return verify(b.build(list(out) if isinstance(out, (tuple, list)) else [out]))


def body_ops(kp):
    return [ins for k in kp.kernels if isinstance(k, LoopKernel) for ins in k.body
            if isinstance(ins, Op)]


# ---- the -0.0 bug: 1/(x*0.0) and 1/(x*-0.0) ----------------------------------------

def signed_zero_reciprocals(x):
    return 1 / (x * 0.0), 1 / (x * -0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jit_keeps_the_sign_of_a_zero_literal(dtype):
    x = np.ones(4, dtype)
    got = tracegrad.jit(signed_zero_reciprocals)(x)
    with np.errstate(divide="ignore"):
        want = signed_zero_reciprocals(x)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert np.all(got[0] == np.inf) and np.all(got[1] == -np.inf)


def test_grad_keeps_the_sign_of_a_zero_literal():
    def loss(x, c):  # tanh(1/(c*0.0)) = 1, tanh(1/(c*-0.0)) = -1
        return np.sum(x * np.tanh(1 / (c * 0.0)) + 2.0 * x * np.tanh(1 / (c * -0.0)))
    x, c = np.arange(1.0, 4.0), np.ones(3)
    value, (gx, gc) = tracegrad.compile_grad(loss)(x, c)
    assert value == pytest.approx(-np.sum(x))
    np.testing.assert_array_equal(gx, -np.ones(3))


def test_fused_kernel_keeps_both_signed_zeros():
    kp = fuse(build(lambda x: (ops.div(1.0, ops.mul(x, 0.0)), ops.div(1.0, ops.mul(x, -0.0))),
                    ((4,), F64)))
    muls = [ins for ins in body_ops(kp) if ins.prim == "mul"]
    assert sorted(bool(np.signbit(ins.args[1].value)) for ins in muls) == [False, True]
    with np.errstate(divide="ignore"):
        got = run_program(kp, np.ones(4))
    np.testing.assert_array_equal(got[0], np.full(4, np.inf))
    np.testing.assert_array_equal(got[1], np.full(4, -np.inf))


# ---- NaN literals are one constant --------------------------------------------------

def nan_twice(x):
    return ops.add(ops.mul(x, np.nan), ops.mul(x, np.nan))


def test_nan_literals_cse_with_themselves_in_the_graph():
    g = build(nan_twice, ((3,), F64))
    assert len(g.eqns) == 3 and len(cse(g).eqns) == 2


def test_nan_literals_cse_with_themselves_in_a_kernel_body():
    kp = fuse(build(nan_twice, ((3,), F64)))
    assert [ins.prim for ins in body_ops(kp)] == ["mul", "add"]
    assert np.all(np.isnan(run_program(kp, np.ones(3))[0]))


def test_jit_and_grad_with_a_nan_literal():
    f = tracegrad.jit(lambda x: x * np.nan + x * np.nan)
    assert np.all(np.isnan(f(np.ones(3))))
    def loss(x, c):
        return np.sum(x * x) + np.sum(c * np.nan) + np.sum(c * np.nan)
    value, (gx, gc) = tracegrad.compile_grad(loss)(np.arange(3.0), np.ones(3))
    assert np.isnan(value) and np.all(np.isnan(gc))
    np.testing.assert_array_equal(gx, 2 * np.arange(3.0))


def test_consts_compare_by_dtype_and_bytes():
    assert Const(0.0, F64) != Const(-0.0, F64)
    assert Const(np.nan, F64) == Const(float("nan"), F64)
    assert hash(Const(np.nan, F64)) == hash(Const(float("nan"), F64))
    assert Const(0, I32) != Const(0.0, F32)  # the same four zero bytes, another dtype
    assert Const(1.0, np.float64) == Const(1.0, F64)


def test_equation_keys_tell_signed_zero_params_apart():
    x = Var(ShapedArray((), F64))
    def key(v):
        return eqn_key(Eqn(PRIMITIVES["neg"], [x], {"p": v}, Var(x.aval)))
    assert key(0.0) != key(-0.0) and key(np.float32(0.0)) != key(np.float32(-0.0))
    assert key(float("nan")) == key(float("nan")) and key(np.float32(np.nan)) == key(
        np.float32(np.nan))


def test_literal_keys_in_cse():
    g = build(lambda x: (ops.mul(x, 0.0), ops.mul(x, -0.0), ops.mul(x, 0.0)), ((2,), F64))
    assert len(cse(g).eqns) == 2


# ---- one table of identities, applied by simplify and by fusion ---------------------

def _operands(n, x, const):
    return (const, x) if n.const == 0 else (x, const)


@pytest.mark.parametrize("n", NEUTRAL_OPERANDS, ids=lambda n: n.name)
def test_every_identity_fires_in_simplify_and_in_kernel_bodies(n):
    """x op c with c a neutral constant: simplify returns x, a kernel body computes nothing."""
    c = {"mul": 1.0, "div": 1.0, "sub": 0.0, "add": -0.0}[n.prim]
    def f(x):
        return getattr(ops, n.prim)(*_operands(n, x, c))
    g = build(f, ((3,), F64))
    simplified, fired = simplify_counted(g)
    assert fired[n.name] == 1 and simplified.outvars[0] is simplified.invars[0]
    assert body_ops(fuse(g)) == []


@pytest.mark.parametrize("prim, c, dtype", [("add", 0.0, F64), ("add", 0.0, F32),
                                             ("mul", 0.0, F64), ("sub", -0.0, F64),
                                             ("div", 1, I32)])
def test_inexact_identities_are_kept(prim, c, dtype):
    """x + 0.0 is not x (x = -0.0), x * 0 is not 0 (inf, NaN), x - (-0.0) is not x (x = 0.0),
    an integer x / 1 is a float division: none of these fold, in simplify or in a body."""
    g = build(lambda x: getattr(ops, prim)(x, c), ((3,), dtype))
    _, fired = simplify_counted(g)
    assert not fired
    assert [ins.prim for ins in body_ops(fuse(g))] == [prim]


def test_integer_add_zero_is_an_identity_in_both():
    g = build(lambda x: ops.add(x, 0), ((3,), I32))
    assert simplify_counted(g)[1]["add_neg_zero_right"] == 1
    assert body_ops(fuse(g)) == []


def test_neutral_operand_on_arrays():
    assert neutral_operand("mul", [np.ones((2, 2)), None], F64) == 1
    assert neutral_operand("add", [None, np.array([-0.0, 0.0])], F64) is None
    assert neutral_operand("div", [None, np.array(1, np.int32)], I32) is None
