"""Fusion of elementwise primitives (one table), chains and constants."""
import numpy as np
import pytest

from tracegrad.ir import ops
from fusion_cases import F32, F64, I32, I64, BOOL, check


# ---- elementwise primitives: one table -------------------------------------------------

# (name, arity, operand domain, dtypes, params)
ELEMENTWISE = [
    ("neg", 1, "real", (F32, F64, I32, I64), {}),
    ("exp", 1, "real", (F32, F64), {}),
    ("log", 1, "positive", (F32, F64), {}),
    ("log1p", 1, "positive", (F32, F64), {}),
    ("expm1", 1, "real", (F32, F64), {}),
    ("sqrt", 1, "positive", (F32, F64), {}),
    ("sin", 1, "real", (F32, F64), {}),
    ("cos", 1, "real", (F32, F64), {}),
    ("tanh", 1, "real", (F32, F64), {}),
    ("abs", 1, "real", (F32, F64, I32), {}),
    ("sign", 1, "real", (F32, F64, I64), {}),
    ("stop_gradient", 1, "real", (F32, F64), {}),
    ("optimization_barrier", 2, "real", (F32, F64, I32), {}),
    ("integer_pow", 1, "positive", (F32, F64), {"y": 3}),
    ("integer_pow", 1, "positive", (F64,), {"y": -2}),
    ("convert", 1, "real", (F32, F64, I32), {"dtype": F64}),
    ("convert", 1, "real", (F64, BOOL), {"dtype": I32}),
    ("not", 1, "real", (BOOL,), {}),
    ("add", 2, "real", (F32, F64, I32, I64), {}),
    ("sub", 2, "real", (F32, F64, I64), {}),
    ("mul", 2, "real", (F32, F64, I32), {}),
    ("div", 2, "positive", (F32, F64), {}),
    ("pow", 2, "positive", (F32, F64), {}),
    ("max", 2, "real", (F32, F64, I32), {}),
    ("min", 2, "real", (F32, F64, I64), {}),
    ("lt", 2, "real", (F32, I32), {}),
    ("le", 2, "real", (F64,), {}),
    ("gt", 2, "real", (F64, I64), {}),
    ("ge", 2, "real", (F32,), {}),
    ("eq", 2, "real", (F64, I32, BOOL), {}),
    ("ne", 2, "real", (F32, BOOL), {}),
    ("and", 2, "real", (BOOL,), {}),
    ("or", 2, "real", (BOOL,), {}),
    ("where", 3, "real", (F32, F64, I32), {}),
    *[(f, 1, "real", (F32, F64), {}) for f in ("floor", "ceil", "round", "trunc", "signbit",
                                               "atan", "exp2", "erf", "erfc")],
    *[(f, 1, "positive", (F32, F64), {}) for f in ("log2", "log10", "lgamma", "digamma")],
    *[(f, 2, "real", (F32, F64), {}) for f in ("atan2", "copysign")],
    ("rem", 2, "positive", (F64, I32), {}),
    *[(f, 2, "real", (I32, I64, BOOL), {}) for f in ("bitwise_and", "bitwise_or", "bitwise_xor")],
    ("bitwise_not", 1, "real", (I64, BOOL), {}),
    *[(f, 2, "real", (I32, I64), {}) for f in ("shift_left", "shift_right")],
]
ELEMENTWISE_CASES = [pytest.param(name, arity, dom, dt, params, id=f"{name}-{dt}-{i}")
                     for i, (name, arity, dom, dts, params) in enumerate(ELEMENTWISE)
                     for dt in dts]


def _operand_dtypes(name, arity, dtype):
    return (BOOL, dtype, dtype) if name == "where" else (dtype,) * arity


@pytest.mark.parametrize("name,arity,domain,dtype,params", ELEMENTWISE_CASES)
def test_elementwise_primitive(name, arity, domain, dtype, params):
    """Applied directly, to transposed operands, and with a rank-0 operand."""
    from tracegrad.ir.ops import bind
    dts = _operand_dtypes(name, arity, dtype)

    def f(*xs):
        direct = bind(name, *xs, **params)
        swapped = bind(name, *[ops.transpose(x, (1, 0)) for x in xs], **params)
        return direct, swapped

    check(f, *[((3, 4), d) for d in dts], domain=domain)
    if arity > 1:  # the last operand rank 0: it broadcasts implicitly
        check(lambda *xs: bind(name, *xs, **params),
              *[((3, 4), d) for d in dts[:-1]], ((), dts[-1]), domain=domain)


def test_every_primitive_has_a_fusion_rule_and_a_test():
    from tracegrad.ir import PRIMITIVES
    from tracegrad.ir.primitives import ELEMENTWISE_KINDS
    from tracegrad.passes.fusion import STEP_RULES
    tested = {name for name, *_ in ELEMENTWISE}
    for name, prim in PRIMITIVES.items():
        if prim.kind == "control":  # fusion of loops: pending (issue 9)
            continue
        assert name in STEP_RULES or prim.kind in STEP_RULES, name
        assert prim.kind not in ELEMENTWISE_KINDS or name in tested, name


def test_elementwise_chain_is_one_kernel():
    kp = check(lambda x, y: ops.add(ops.mul(ops.sin(x), y), ops.exp(ops.neg(y))),
               ((5, 6), F32), ((5, 6), F32))
    assert len(kp.kernels) == 1 and not kp.temps


def test_constants_and_literals():
    c = np.arange(12.0).reshape(3, 4)
    u = np.full((3, 4), 2.5)  # uniform: becomes a literal in the body

    def f(x):
        return ops.add(ops.mul(x, c), ops.mul(u, 3.0))

    kp = check(f, ((3, 4), F64))
    assert [b.shape for b in kp.consts] == [(3, 4)]
