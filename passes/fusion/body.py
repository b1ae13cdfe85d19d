"""Kernel bodies under construction: SSA instructions, shared by CSE, constants folded.

A body value is either a position (an `int`, the instruction computing it) or
a `Const`.  Equal instructions get one position: a load is named by its
buffer and index map, an op by its primitive, operands, params and dtype.

>>> import numpy as np
>>> body = Body()
>>> x = body.op("sin", (Const(1.0, np.dtype(np.float64)),), {}, np.float64)  # folded
>>> isinstance(x, Const)
True
>>> body.emit("neg", (x,), {}, np.float64) == body.emit("neg", (x,), {}, np.float64)
True
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tracegrad.ir.primitives import PRIMITIVES
from tracegrad.passes.identities import NEUTRAL_BY_PRIM, neutral_operand
from tracegrad.passes.kernels import Const, Load, Op


class LoadKey(NamedTuple):
    """What makes two loads one: the buffer (by identity) and the index map."""

    buffer_id: int
    index: object


class OpKey(NamedTuple):
    """What makes two ops one; `params` is the sorted items of the op's params."""

    prim: str
    args: tuple
    params: tuple
    dtype: np.dtype


def const(value, dtype) -> Const:
    return Const(np.asarray(value, dtype).item(), np.dtype(dtype))


def _constant_values(args) -> list:
    """Per operand, the constant's value as a 0-d array, or None for a body position."""
    return [a.array if isinstance(a, Const) else None for a in args]


def _params_key(params) -> tuple:
    return tuple(sorted(params.items())) if params else ()


class Body:
    """A kernel body under construction: SSA instructions, CSE'd, constants folded."""

    def __init__(self):
        self.instrs = []
        self.keys = []  # each instruction's CSE key (LoadKey or OpKey), by position
        self._cse = {}

    def _add(self, key, make, *fields) -> int:
        """The position of the instruction `key` names; `make(*fields)` builds it if new."""
        pos = self._cse.get(key)
        if pos is None:
            pos = self._cse[key] = len(self.instrs)
            self.instrs.append(make(*fields))
            self.keys.append(key)
        return pos

    def load(self, buffer, index, dtype) -> int:
        return self._add(LoadKey(id(buffer), index), Load, buffer, index, np.dtype(dtype))

    def op(self, prim, args, params, dtype):
        """An Op, or a Const when every operand is constant, or an operand when the
        other is neutral (`passes/identities.py`)."""
        args = tuple(args)
        consts = [isinstance(a, Const) for a in args]
        if all(consts):
            vals = [np.asarray(a.value, a.dtype) for a in args]
            return const(PRIMITIVES[prim].impl(*vals, **params), dtype)
        if prim in NEUTRAL_BY_PRIM and any(consts):  # only a constant can be neutral
            kept = neutral_operand(prim, _constant_values(args), dtype)
            if kept is not None:
                return args[kept]
        return self.emit(prim, args, params, dtype)

    def emit(self, prim, args, params, dtype) -> int:
        args = tuple(args)
        if not isinstance(dtype, np.dtype):
            dtype = np.dtype(dtype)
        key = OpKey(prim, args, _params_key(params), dtype)
        return self._add(key, Op, prim, args, dict(params), dtype)

    def replay(self, other, start, end, remap):
        """Add `other.instrs[start:end]` (`other`'s positions before `start` mapped
        to ours by `remap`, which grows).  Their operands stay positions, so
        nothing folds that had not folded there: only CSE can differ."""
        instrs, keys = other.instrs, other.keys
        if not self.instrs and start == 0 and end == len(instrs):  # all into nothing: a copy
            self.instrs, self.keys, self._cse = list(instrs), list(keys), dict(other._cse)
            remap.update(zip(range(end), range(end)))
            return
        for pos in range(start, end):
            ins, key = instrs[pos], keys[pos]
            if isinstance(ins, Op):  # a load's key holds no position; an op's operands move
                args = tuple([a if isinstance(a, Const) else remap[a] for a in ins.args])
                remap[pos] = self._add(OpKey(ins.prim, args, key.params, ins.dtype),
                                       Op, ins.prim, args, ins.params, ins.dtype)
            else:
                remap[pos] = self._add(key, _same, ins)


def _same(instr):
    return instr


def compact(instrs, stores) -> list:
    """Drop instructions no store needs; renumber the rest (the stores' values too)."""
    used = {s.value for s in stores}
    for pos in range(len(instrs) - 1, -1, -1):
        if pos in used and isinstance(instrs[pos], Op):
            used.update([a for a in instrs[pos].args if not isinstance(a, Const)])
    new_pos, body = {}, []
    for pos, ins in enumerate(instrs):
        if pos in used:
            if isinstance(ins, Op) and len(body) != pos:  # positions moved
                args = tuple([a if isinstance(a, Const) else new_pos[a] for a in ins.args])
                ins = Op(ins.prim, args, ins.params, ins.dtype)
            new_pos[pos] = len(body)
            body.append(ins)
    for s in stores:
        s.value = new_pos[s.value]
    return body
