"""The IEEE identities: where an operation returns one of its operands unchanged.

One table serves graph simplification (`simplify.RULES`) and kernel bodies
(`fusion.body`).  Every entry is exact in IEEE arithmetic, signed zeros and
NaN included, so some familiar identities are deliberately absent:

* `x * 0 -> 0` (inf * 0 and NaN * 0 are NaN), `x - x -> 0` (inf - inf is NaN);
* `x + 0.0 -> x` (-0.0 + 0.0 is +0.0); only `x + (-0.0)` and `x - 0.0` are
  identities for floats (integers and bools also have `x + 0`);
* `x / 1 -> x` for integers (`div` is a true division through float64, which
  rounds int64 values above 2**53).

A test looks at the constant operand's value as a numpy array of any rank
(every element must pass) and compares bits, not values, where the sign of
zero matters.

>>> import numpy as np
>>> [n.name for n in NEUTRAL_BY_PRIM["add"]]
['add_neg_zero_right', 'add_neg_zero_left']
>>> neutral_operand("add", [None, np.array(0.0)], np.float64) is None  # x + 0.0 is not x
True
>>> neutral_operand("add", [None, np.array(-0.0)], np.float64)
0
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tracegrad.ir.core import is_float

# Primitives whose value is their operand's (autodiff alone tells them apart).
VALUE_IDENTITY_PRIMS = frozenset({"stop_gradient"})


def _bits(v) -> np.ndarray:
    return np.ascontiguousarray(v).reshape(-1).view(np.uint8)


# Rank-0 values (literals, mostly) take a plain-Python path: simplify tests one
# per equation and fusion one per body op, and numpy's reductions cost
# microseconds each.

def is_one(v) -> bool:
    return v.item() == 1 if v.ndim == 0 else bool(np.all(v == 1))


def is_pos_zero(v) -> bool:
    """All bits zero: +0.0 for floats, 0 for integers, False for bools."""
    return v.tobytes() == bytes(v.itemsize) if v.ndim == 0 else not np.any(_bits(v))


def is_add_identity(v) -> bool:
    """-0.0 is the additive identity of IEEE floats; +0.0 is not (for x = -0.0)."""
    if not is_float(v.dtype):
        return is_pos_zero(v)
    if v.ndim == 0:
        x = v.item()
        return x == 0 and math.copysign(1.0, x) < 0
    return bool(np.all((v == 0) & np.signbit(v)))


@dataclass(frozen=True)
class NeutralOperand:
    """`prim` returns operand `keep` when operand `const` is a constant passing `test`."""

    name: str
    prim: str
    const: int
    test: Callable
    floats_only: bool
    doc: str

    @property
    def keep(self) -> int:
        return 1 - self.const


# Fixed order: within one primitive, the first entry that matches wins.
NEUTRAL_OPERANDS: tuple[NeutralOperand, ...] = (
    NeutralOperand("mul_one_right", "mul", 1, is_one, False, "x * 1 -> x"),
    NeutralOperand("mul_one_left", "mul", 0, is_one, False, "1 * x -> x"),
    NeutralOperand("div_one", "div", 1, is_one, True, "x / 1 -> x (floats)"),
    NeutralOperand("sub_zero", "sub", 1, is_pos_zero, False, "x - (+0) -> x"),
    NeutralOperand("add_neg_zero_right", "add", 1, is_add_identity, False,
                   "x + (-0.0) -> x (x + 0 for integers/bools)"),
    NeutralOperand("add_neg_zero_left", "add", 0, is_add_identity, False,
                   "(-0.0) + x -> x (0 + x for integers/bools)"),
)

NEUTRAL_BY_PRIM: dict[str, tuple[NeutralOperand, ...]] = {}
for _n in NEUTRAL_OPERANDS:
    NEUTRAL_BY_PRIM.setdefault(_n.prim, ())
    NEUTRAL_BY_PRIM[_n.prim] += (_n,)


def applies(n: NeutralOperand, value, dtype) -> bool:
    """Whether `n` holds for the constant `value` (None: not a constant) in an op of `dtype`."""
    return value is not None and (is_float(dtype) or not n.floats_only) and n.test(value)


def neutral_operand(prim: str, values, dtype) -> int | None:
    """The position of the operand `prim` returns unchanged, given the constant operands'
    values (`values[i]` is None where operand i is not a constant); None if there is none."""
    for n in NEUTRAL_BY_PRIM.get(prim, ()):
        if applies(n, values[n.const], dtype):
            return n.keep
    return None
