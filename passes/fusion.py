"""Fusion planning: which values become buffers, and which loop nests compute them.

`fuse(graph)` turns a graph into a `KernelProgram`, whose exact semantics
`passes/kernels.py` defines.  Fusion is a decision about which values are
stored in memory; everything between stored values is computed inside the
loop nests that need it.

>>> import numpy as np
>>> from tracegrad.ir import GraphBuilder, ShapedArray, ops
>>> b = GraphBuilder()
>>> x = b.new_input(ShapedArray((8,), np.float32))
>>> y = ops.sin(x)
>>> kp = fuse(b.build([ops.reduce_sum(y, (0,)), ops.slice(y, (1,), (1,), (7,))]))
>>> print(kp)  # doctest: +NORMALIZE_WHITESPACE
program (in0:f32[8]) -> (out0:f32[], out1:f32[7])
  input  in0:f32[8] (arg 0)
  output out0:f32[] (result 0)
  output out1:f32[7] (result 1)
kernel k0 domain=(8,)
  %0 = load in0[0+[1]]
  %1 = sin %0
  store out0[0+[0]] += %1
kernel k1 domain=(7,)
  %0 = load in0[1+[1]]
  %1 = sin %0
  store out1[0+[1]] = %1

Policy
------
Buffers.  Inputs, constants and outputs are buffers; so are the results of
reductions, dots and concatenations (always), dot operands a DotKernel cannot
read in place, operands of reshapes no affine index map expresses, strided
pads, and the values the recompute policy below decides to store.

Views.  A loop kernel iterates over a domain; inside it a value is needed at
an affine function of the domain index, a `View`: one row `c + sum_k a_k i_k`
per dim of the value, plus the `box` of domain indices where the value
matters.  Structural primitives only change the view of their operand:
broadcast zeroes rows, transpose permutes them, slice scales and shifts them,
reshape re-splits the flat index (refused where that is not exact: the
operand is then stored; a reshape of a buffer is always a flat load), pad
narrows the box.  Views push through elementwise ops down to the loads, so
`sin(x)[1:]` loads x at i+1 and computes sin there: a cheap elementwise
subtree is recomputed at every index where a consumer needs it.

Pad.  Loads under a pad carry the pad's bounds on the domain dims they move
along, so no address outside a buffer is ever formed.  A pad of a load is
that load with the pad's bounds (it yields 0 outside); a pad of a computed
value is `where(mask, value, 0)`, `mask` being a load of the constant bool
buffer `mask` (shape (), value True) with the pad's bounds.  A pad of step s
fuses only where the index moves in multiples of s (a strided slice of it);
otherwise it is stored: a zero fill, then a scatter of its operand.

Recompute vs store.  A kernel evaluates each (value, view) once, however many
of its stores need it.  A value evaluated in several (kernel, view) instances
is recomputed in each unless (instances - 1) * cost > RECOMPUTE_BUDGET, cost
being the weighted op count of its subtree down to buffers (OP_COST:
transcendentals weigh 8 simple ops); then it becomes a temp buffer.  The
outermost such values are stored first and planning re-runs until nothing
changes.  On this machine memory moves at 34 GB/s, so the write and re-read of
a temp (8-16 bytes per element) costs about as much as a dozen vectorized
arithmetic ops or two vectorized transcendentals: hence the budget.

Kernels.  Every stored value gets tasks: elementwise values a store over
their own shape; reductions a reducing store over their input's shape
(reduced dims stride 0; a reduction read only by a reduction of the same kind
folds into it: sum(sum(x, 1), 0) is one sum over both axes); concatenations
one task per operand writing its region; dots a DotKernel (an operand that is
a buffer, or a buffer transposed over its last two axes, is read in place
with trans_a/trans_b).  Tasks with equal domains and no path between them
merge into one LoopKernel (horizontal fusion): `sum(f(x))` and its gradient
`f'(x)` take one pass over x.  A task that reads an elementwise temp computed
by the kernel it could join, at that kernel's own index, recomputes the temp
instead (the kernel computes it once anyway) and joins.

Buffers seen from codegen: a constant whose elements are all equal (bit for
bit) is read as a literal; a DotKernel may read or write a buffer under
another shape of the same size (a reshape keeps the memory layout; a dot
whose result is only reshaped into an output writes the output directly); a
reducing store always targets a whole buffer; several kernels may write
disjoint parts of one buffer (concatenate regions, strided pad fill then
scatter), in kernel order.

Outputs are always fresh memory: an output that is an input, a constant, a
literal or a value already returned gets a copy (or fill) store.  Temps are
listed in the order of their first write; `liveness(program)` gives each
temp's first and last kernel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from tracegrad.ir.core import Literal, Var, is_float
from tracegrad.ir.primitives import PRIMITIVES
from tracegrad.passes.dce import live_eqns
from tracegrad.passes.kernels import (Buffer, Const, DotKernel, IndexMap, KernelProgram, Load,
                                      LoopKernel, Op, Store)

__all__ = ["fuse", "liveness", "View", "OP_COST", "RECOMPUTE_BUDGET"]

ELEMENTWISE_KINDS = frozenset({"unary", "binary", "compare", "logical", "select", "cast"})
# Per-element cost of one evaluation, in units of one simple vector op.
OP_COST = {"exp": 8, "log": 8, "log1p": 8, "expm1": 8, "sin": 8, "cos": 8, "tanh": 8,
           "pow": 16, "sqrt": 4, "div": 4, "pad": 2}
DEFAULT_OP_COST = 1
STRUCTURAL_COST = 0
RECOMPUTE_BUDGET = 16
REDUCE_STORE = {"reduce_sum": "sum", "reduce_max": "max", "reduce_min": "min"}


class NeedBuffer(Exception):
    """Planning met a value that must be stored; the planner stores it and re-plans."""

    def __init__(self, var):
        super().__init__(var)
        self.var = var


# ---- views: affine maps from the domain index to a value's index ----------------------

class View(NamedTuple):
    """Value index j[d] = rows[d][0] + sum_k rows[d][1][k] * i[k], needed for i in `box`.

    Invariant: every domain dim k occurs in at most one row, and for i in `box`
    the rows give an index inside the value's shape.  (A named tuple: views key
    the expander's memo, and tuples hash and compare without Python calls.)
    """

    rows: tuple  # per value dim: (const, coefs), coefs one int per domain dim
    box: tuple  # per domain dim: (lo, hi)


_ZERO = "zero"  # a pad view result: the value is statically 0 wherever it is needed


def _strides(shape) -> tuple:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def _unit(n, k) -> tuple:
    return tuple(1 if j == k else 0 for j in range(n))


def identity_view(shape) -> View:
    n = len(shape)
    return View(tuple((0, _unit(n, k)) for k in range(n)), tuple((0, d) for d in shape))


def broadcast_view(view: View, x_shape) -> View:
    lead = len(view.rows) - len(x_shape)
    zero = (0, (0,) * len(view.box))
    return View(tuple(zero if d == 1 else view.rows[lead + e] for e, d in enumerate(x_shape)),
                view.box)


def transpose_view(view: View, perm) -> View:
    rows = [None] * len(perm)
    for k, p in enumerate(perm):
        rows[p] = view.rows[k]
    return View(tuple(rows), view.box)


def slice_view(view: View, starts, steps) -> View:
    return View(tuple((s + p * c, tuple(p * a for a in coefs))
                      for (c, coefs), s, p in zip(view.rows, starts, steps)), view.box)


def flat_map(view: View, shape) -> tuple:
    """(offset, strides): the row-major flat index of `shape` as an affine map of i."""
    st = _strides(shape)
    offset = sum(s * c for s, (c, _) in zip(st, view.rows))
    strides = tuple(sum(s * coefs[k] for s, (_, coefs) in zip(st, view.rows))
                    for k in range(len(view.box)))
    return offset, strides


def _digit(a, sx, x_shape):
    """The x dim whose place value range [sx, sx * n) holds the flat step `a`."""
    for e, (s, n) in enumerate(zip(sx, x_shape)):
        if n > 1 and s <= a < s * n:
            return e
    return None


def reshape_view(view: View, v_shape, x_shape):
    """The view of reshape's operand, or None where it is not affine over the box.

    The flat index is base + sum f_k (i_k - lo_k).  Each domain dim must step
    by a multiple of one x dim's place value, and each x digit must stay in
    range over the whole box (no carries): then the digits are exact.
    """
    n = len(view.box)
    if any(hi <= lo for lo, hi in view.box) or math.prod(x_shape) == 0:
        return View(tuple((0, (0,) * n) for _ in x_shape), view.box)  # never evaluated
    f0, f = flat_map(view, v_shape)
    lo = [b[0] for b in view.box]
    ext = [b[1] - b[0] - 1 for b in view.box]
    base = f0 + sum(fk * lk for fk, lk in zip(f, lo))
    sx = _strides(x_shape)
    groups = [[] for _ in x_shape]
    for k, fk in enumerate(f):
        if fk == 0 or ext[k] == 0:
            continue
        e = _digit(abs(fk), sx, x_shape)
        if e is None or fk % sx[e]:
            return None
        groups[e].append((k, fk // sx[e]))
    if not 0 <= base < math.prod(x_shape):
        return None
    rows = []
    for e, group in enumerate(groups):
        row = _digit_row(base // sx[e] % x_shape[e], group, lo, ext, x_shape[e], n)
        if row is None:
            return None
        rows.append(row)
    return View(tuple(rows), view.box)


def _digit_row(c, group, lo, ext, size, n):
    low = c + sum(min(0, q * ext[k]) for k, q in group)
    high = c + sum(max(0, q * ext[k]) for k, q in group)
    if low < 0 or high >= size:
        return None
    coefs = [0] * n
    for k, q in group:
        coefs[k] = q
    return (c - sum(q * lo[k] for k, q in group), tuple(coefs))


def _ceil_div(a, b):
    return -((-a) // b)


def _solve(c, a, lo, hi):
    """The half-open range of integers i with lo <= c + a*i <= hi (a != 0)."""
    if a > 0:
        return _ceil_div(lo - c, a), (hi - c) // a + 1
    return _ceil_div(c - hi, -a), (c - lo) // (-a) + 1


def _pad_row(row, start, step, nx, box):
    """x's row under pad (narrowing `box` in place), _ZERO, or None (not affine)."""
    c, coefs = row
    if nx == 0:
        return _ZERO
    lo_j, hi_j = sorted((start, start + (nx - 1) * step))
    moving = [k for k, a in enumerate(coefs) if a]
    if not moving:
        inside = lo_j <= c <= hi_j and (c - start) % step == 0
        return ((c - start) // step, coefs) if inside else _ZERO
    if len(moving) > 1 or coefs[moving[0]] % step:
        return None
    if (c - start) % step:
        return _ZERO  # the index never lands on a stored element
    k = moving[0]
    lo_i, hi_i = _solve(c, coefs[k], lo_j, hi_j)
    lo_i, hi_i = max(lo_i, box[k][0]), min(hi_i, box[k][1])
    if lo_i >= hi_i:
        return _ZERO
    box[k] = (lo_i, hi_i)
    return ((c - start) // step, tuple(a // step for a in coefs))


def pad_view(view: View, starts, steps, x_shape, v_shape):
    """The view of pad's operand (with the box narrowed to where it is stored), _ZERO or None."""
    box, rows = list(view.box), []
    for row, s, p, nx, nv in zip(view.rows, starts, steps, x_shape, v_shape):
        if s == 0 and p == 1 and nx == nv:
            rows.append(row)  # this dim is not padded
            continue
        out = _pad_row(row, s, p, nx, box)
        if out is None or out is _ZERO:
            return out
        rows.append(out)
    return View(tuple(rows), tuple(box))


def _full_bounds(box, domain):
    if all(b == (0, d) for b, d in zip(box, domain)):
        return None
    return tuple((lo, hi, 1) for lo, hi in box)


def _address_bounds(box, domain, offset, strides, size):
    """Bounds enough to keep a load's address inside its buffer (its value outside the
    box does not matter): none if the whole domain stays inside, else the box's bounds
    on the dims the address moves along."""
    span = [(0, 0) if d == 0 else (min(0, s * (d - 1)), max(0, s * (d - 1)))
            for d, s in zip(domain, strides)]
    if 0 <= offset + sum(lo for lo, _ in span) and offset + sum(hi for _, hi in span) < size:
        return None
    if all(b == (0, d) or s == 0 for b, d, s in zip(box, domain, strides)):
        return None
    return tuple((lo, hi, 1) if s else (0, d, 1) for (lo, hi), d, s in zip(box, domain, strides))


def _intersect_bounds(bounds, box, domain):
    """Load bounds narrowed to `box` as well (a load that yields 0 outside both)."""
    old = bounds or tuple((0, d, 1) for d in domain)
    new = tuple((max(lo, b_lo), min(hi, b_hi), 1) for (lo, hi, _), (b_lo, b_hi) in zip(old, box))
    return _full_bounds([(lo, hi) for lo, hi, _ in new], domain)


# ---- kernel bodies -----------------------------------------------------------------

def _const(value, dtype) -> Const:
    return Const(np.asarray(value, dtype).item(), np.dtype(dtype))


def _is_value(arg, value) -> bool:
    return isinstance(arg, Const) and arg.value == value and not np.signbit(arg.value)


def _is_neg_zero(arg) -> bool:
    return isinstance(arg, Const) and arg.value == 0 and bool(np.signbit(arg.value))


# Ops that return one operand unchanged when another is this constant, exactly
# in IEEE arithmetic (signed zeros and NaN included; see passes/simplify.py):
# prim -> [(constant operand position, test, kept operand position, floats only)].
NEUTRAL_OPERANDS = {
    "mul": [(1, lambda a: _is_value(a, 1), 0, False), (0, lambda a: _is_value(a, 1), 1, False)],
    "div": [(1, lambda a: _is_value(a, 1), 0, True)],
    "sub": [(1, lambda a: _is_value(a, 0), 0, False)],
    "add": [(1, _is_neg_zero, 0, True), (0, _is_neg_zero, 1, True)],
}
IDENTITY_PRIMS = frozenset({"stop_gradient"})


def _neutral(prim, args, dtype):
    for pos, test, keep, floats_only in NEUTRAL_OPERANDS.get(prim, ()):
        if test(args[pos]) and (is_float(dtype) or not floats_only):
            return args[keep]
    return None


class _Body:
    """A kernel body under construction: SSA instructions, CSE'd, constants folded."""

    def __init__(self):
        self.instrs = []
        self.keys = []  # each instruction's CSE key, by position
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
        return self._add(("load", id(buffer), index), Load, buffer, index, np.dtype(dtype))

    def op(self, prim, args, params, dtype):
        """An Op, or a Const when every operand is constant, or an operand when neutral."""
        args = tuple(args)
        for a in args:
            if type(a) is int:  # a body position: not every operand is a Const
                break
        else:
            vals = [np.asarray(a.value, a.dtype) for a in args]
            return _const(PRIMITIVES[prim].impl(*vals, **params), dtype)
        kept = _neutral(prim, args, dtype) if prim in NEUTRAL_OPERANDS else None
        if kept is not None:
            return kept
        return self.emit(prim, args, params, dtype)

    def emit(self, prim, args, params, dtype) -> int:
        args = tuple(args)
        if not isinstance(dtype, np.dtype):
            dtype = np.dtype(dtype)
        key = ("op", prim, args, tuple(sorted(params.items())) if params else (), dtype)
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
                args = tuple([remap[a] if type(a) is int else a for a in ins.args])
                remap[pos] = self._add(("op", ins.prim, args, key[3], ins.dtype),
                                       Op, ins.prim, args, ins.params, ins.dtype)
            else:
                remap[pos] = self._add(key, _same, ins)


def _same(instr):
    return instr


def _first(data, args):
    return args[0]


def _pending(children, finish=_first, data=None) -> list:
    """A step waiting for its operands: `finish(data, values of the (atom, view) pairs
    in children)` will be its value."""
    return [children, finish, data]


class _Expander:
    """Evaluates (atom, view) pairs into one kernel body over `domain`.

    A stored value is loaded unless it is in `inline` (the values this kernel
    computes itself); anything else is expanded from its equation.  Records
    the buffers read (with the view read at) and the (var, view) instances.
    """

    def __init__(self, plan, domain, body, inline):
        self.plan, self.domain, self.body = plan, tuple(domain), body
        self.buffers, self.producer = plan.buffers, plan.producer
        self.inline = set(inline)
        self.memo = {}  # (atom, view) -> body position or Const
        self.reads = []  # (buffer, var, view or None for a flat load)
        self.instances = set()
        self._scalar_views = {}

    def value(self, atom, view):
        """The body value (position or Const) of `atom` at `view`; iterative, no recursion.

        While its operands are evaluated, a pair's memo entry is its pending step,
        a list `[operand pairs, finish, data]` (a DAG never meets a pending pair
        again before it is finished); `finish(data, operand values)` is its value.
        """
        memo, stack = self.memo, [(atom, view)]
        while stack:
            key = stack[-1]
            step = memo.get(key)
            if step is None:
                step = memo[key] = self._step(key)
                if step.__class__ is not list:
                    stack.pop()
                    continue
                todo = [c for c in step[0] if c not in memo]
                if todo:
                    stack += todo[::-1]
                    continue
            elif step.__class__ is not list:  # a second entry for a finished pair
                stack.pop()
                continue
            memo[key] = step[1](step[2], [memo[c] for c in step[0]])
            stack.pop()
        return memo[(atom, view)]

    def _step(self, key):
        """The value of `key = (atom, view)` if it needs no operands, else its pending step."""
        atom, view = key
        if isinstance(atom, Literal):
            return _const(atom.value, atom.aval.dtype)
        buf = self.buffers.get(atom)
        if buf is not None and atom not in self.inline:
            return self.load(atom, buf, view)
        eqn = self.producer.get(atom)
        if eqn is None:
            raise ValueError(f"value {atom!r} is neither an input, a constant nor computed")
        self.instances.add(key)
        rule = STEP_RULES.get(eqn.prim.name) or STEP_RULES[eqn.prim.kind]
        return rule(self, eqn, view)

    def scalar_view(self, view):
        """The view of a rank-0 elementwise operand (it broadcasts)."""
        scalar = self._scalar_views.get(view.box)
        if scalar is None:
            scalar = self._scalar_views[view.box] = View((), view.box)
        return scalar

    def load(self, var, buf, view, shape=None):
        """A load of `buf` holding `var` (or, flat, any reshape of it of `shape`)."""
        uniform = self.plan.uniform(buf)
        if uniform is not None:
            return uniform
        offset, strides = flat_map(view, shape if shape is not None else var.aval.shape)
        bounds = _address_bounds(view.box, self.domain, offset, strides, math.prod(buf.shape))
        self.reads.append((buf, var, None if shape is not None else view))
        return self.body.load(buf, IndexMap(offset, strides, bounds), buf.dtype)

    def stored_source(self, atom):
        """The stored var `atom` is a chain of reshapes of, or None."""
        while isinstance(atom, Var):
            if atom in self.plan.buffers and atom not in self.inline:
                return atom
            eqn = self.plan.producer.get(atom)
            if eqn is None or eqn.prim.name != "reshape":
                return None
            atom = eqn.inputs[0]
        return None

    def masked(self, value, box, dtype):
        """`value` where i is in `box`, 0 elsewhere (the result of a pad)."""
        zero = _const(0, dtype)
        if isinstance(value, Const):
            if _is_value(value, 0):
                return value
        elif (isinstance(self.body.instrs[value], Load)
              and not self.plan.is_mask(self.body.instrs[value].buffer)):
            ins = self.body.instrs[value]
            bounds = _intersect_bounds(ins.index.bounds, box, self.domain)
            return self.body.load(ins.buffer, IndexMap(ins.index.offset, ins.index.strides, bounds),
                                  ins.dtype)
        mask = self.body.load(self.plan.mask_buffer(),
                              IndexMap(0, (0,) * len(self.domain),
                                       tuple((lo, hi, 1) for lo, hi in box)), np.bool_)
        return self.body.op("where", (mask, value, zero), {}, dtype)


def _step_elementwise(ex, eqn, view):
    inputs = eqn.inputs
    consts = None
    for a in inputs:
        if isinstance(a, Literal):  # literal operands are Consts already: not evaluated
            consts = tuple(ex.plan.literal(b) if isinstance(b, Literal) else None for b in inputs)
            inputs = [b for b in inputs if not isinstance(b, Literal)]
            break
    return _pending([(a, view if a.aval.shape else ex.scalar_view(view)) for a in inputs],
                    _finish_elementwise, (ex.body, eqn, consts))


def _finish_elementwise(data, args):
    body, eqn, consts = data
    if consts is not None:  # all operands: the literals' Consts, `args` for the others
        rest = iter(args)
        args = [c if c is not None else next(rest) for c in consts]
    name, dtype = eqn.prim.name, eqn.out.aval.dtype
    if name in IDENTITY_PRIMS or (name == "convert" and eqn.inputs[0].aval.dtype == dtype):
        return args[0]
    return body.op(name, args, eqn.params, dtype)


def _step_broadcast(ex, eqn, view):
    x = eqn.inputs[0]
    return _pending([(x, broadcast_view(view, x.aval.shape))])


def _step_transpose(ex, eqn, view):
    return _pending([(eqn.inputs[0], transpose_view(view, eqn.params["perm"]))])


def _step_slice(ex, eqn, view):
    p = eqn.params
    return _pending([(eqn.inputs[0], slice_view(view, p["starts"], p["steps"]))])


def _step_reshape(ex, eqn, view):
    x, shape = eqn.inputs[0], eqn.out.aval.shape
    src = ex.stored_source(x)
    if src is not None:  # a buffer's memory read with this shape's strides
        return ex.load(src, ex.plan.buffers[src], view, shape)
    x_view = reshape_view(view, shape, x.aval.shape)
    if x_view is None:
        raise NeedBuffer(x)
    return _pending([(x, x_view)])


def _step_pad(ex, eqn, view):
    x, p, out = eqn.inputs[0], eqn.params, eqn.out.aval
    x_view = pad_view(view, p["starts"], p["steps"], x.aval.shape, out.shape)
    if x_view is None:
        raise NeedBuffer(eqn.out)
    if x_view is _ZERO:
        return _const(0, out.dtype)
    if x_view.box == view.box:
        return _pending([(x, x_view)])
    return _pending([(x, x_view)], _finish_masked, (ex, x_view.box, out.dtype))


def _finish_masked(data, args):
    ex, box, dtype = data
    return ex.masked(args[0], box, dtype)


def _step_stored_only(ex, eqn, view):
    raise NeedBuffer(eqn.out)  # reductions, dots, concatenations: always stored


STEP_RULES = {
    **{kind: _step_elementwise for kind in ELEMENTWISE_KINDS},
    "broadcast": _step_broadcast, "transpose": _step_transpose, "slice": _step_slice,
    "reshape": _step_reshape, "pad": _step_pad,
    "reduce": _step_stored_only, "dot": _step_stored_only, "concatenate": _step_stored_only,
}


def _compact(instrs, stores):
    """Drop instructions no store needs; renumber the rest."""
    used = {s.value for s in stores}
    for pos in range(len(instrs) - 1, -1, -1):
        if pos in used and isinstance(instrs[pos], Op):
            used.update([a for a in instrs[pos].args if type(a) is int])
    new_pos, body = {}, []
    for pos, ins in enumerate(instrs):
        if pos in used:
            if isinstance(ins, Op) and len(body) != pos:  # positions moved
                ins = Op(ins.prim, tuple([new_pos[a] if type(a) is int else a for a in ins.args]),
                         ins.params, ins.dtype)
            new_pos[pos] = len(body)
            body.append(ins)
    for s in stores:
        s.value = new_pos[s.value]
    return body


# ---- tasks: the stores that kernels make ---------------------------------------------

@dataclass(eq=False)
class _StoreSpec:
    buffer: Buffer
    atom: object  # the value stored, evaluated at `view` over the task's domain
    view: View
    index: IndexMap
    reduce: str | None = None


@dataclass(eq=False)
class _DotSpec:
    a: Buffer
    b: Buffer
    batch: int
    m: int
    k: int
    n: int
    trans_a: bool
    trans_b: bool


@dataclass(eq=False)
class _Task:
    domain: tuple
    stores: list
    roots: set = field(default_factory=set)  # stored vars this task computes itself
    after: list = field(default_factory=list)  # tasks that must run first (write order)
    dot: _DotSpec | None = None
    inline: set = field(default_factory=set)  # temps recomputed here instead of loaded
    reads: list = field(default_factory=list)
    instances: set = field(default_factory=set)
    # The latest expansion: its body, each store's value, the body's length after each store.
    body: object = None
    values: list = field(default_factory=list)
    marks: list = field(default_factory=list)

    def writes(self):
        return [s.buffer for s in self.stores]


def _identity_store(buf, atom, shape, reduce=None, index=None):
    view = identity_view(shape)
    return _StoreSpec(buf, atom, view, index or IndexMap(0, _strides(shape)), reduce)


def _reduce_index(x_shape, axes):
    kept = _strides([d for i, d in enumerate(x_shape) if i not in axes])
    it = iter(kept)
    return IndexMap(0, tuple(0 if i in axes else next(it) for i in range(len(x_shape))))


def _use_counts(eqns, outvars) -> dict:
    uses = {}
    for atom in [a for e in eqns for a in e.inputs] + list(outvars):
        if isinstance(atom, Var):
            uses[atom] = uses.get(atom, 0) + 1
    return uses


def _always_stored(eqn) -> bool:
    return eqn.prim.kind in ("reduce", "dot") or eqn.prim.name == "concatenate"


def _swaps_last_two(perm):
    n = len(perm)
    return n >= 2 and tuple(perm) == tuple(range(n - 2)) + (n - 1, n - 2)


class _Plan:
    """The planning state: which vars are stored, and in which buffers."""

    def __init__(self, graph):
        self.graph = graph
        self.eqns = live_eqns(graph)[0]
        self.producer = {e.out: e for e in self.eqns}
        self.uses = _use_counts(self.eqns, graph.outvars)
        self.buffers = {}  # Var -> Buffer
        self.inputs = [Buffer(f"in{i}", v.aval.shape, v.aval.dtype, "input", index=i)
                       for i, v in enumerate(graph.invars)]
        self.buffers.update(zip(graph.invars, self.inputs))
        for v, val in zip(graph.constvars, graph.constvals):
            self.buffers[v] = Buffer("c", v.aval.shape, v.aval.dtype, "const",
                                     value=np.asarray(val, v.aval.dtype))
        self.aliases = set()  # outputs that are reshapes of a stored value: no task of their own
        self.outputs, self.copies = self._output_buffers(graph.outvars)
        self.absorbed = self._absorbed_reductions()
        self._mask, self._uniform, self._literals = None, {}, {}
        for e in self.eqns:
            if e.out not in self.buffers and e.out not in self.absorbed and _always_stored(e):
                self.store(e.out)

    def _output_buffers(self, outvars):
        """One fresh buffer per output; the (buffer, atom) pairs that need a copy store."""
        outputs, copies = [], []
        for i, atom in enumerate(outvars):
            buf = Buffer(f"out{i}", atom.aval.shape, atom.aval.dtype, "output", index=i)
            outputs.append(buf)
            if isinstance(atom, Var) and atom in self.producer and atom not in self.buffers:
                self.buffers[atom] = buf
                src = self._reshaped_stored(atom)
                if src is not None:  # e.g. a dot writes straight into the output's memory
                    self.buffers[src] = buf
                    self.aliases.add(atom)
            else:
                copies.append((buf, atom))
        return outputs, copies

    def _reshaped_stored(self, var):
        """The not yet stored reduction, dot or concatenation that `var` only reshapes, if any."""
        if self.producer[var].prim.name != "reshape":
            return None
        while (isinstance(var, Var) and var in self.producer
               and self.producer[var].prim.name == "reshape"):
            var = self.producer[var].inputs[0]
        if (isinstance(var, Var) and var in self.producer and var not in self.buffers
                and _always_stored(self.producer[var])):
            return var
        return None

    def _absorbed_reductions(self) -> set:
        """Reductions read only by a reduction of the same kind (it then reduces both)."""
        absorbed = set()
        for e in self.eqns:
            x = e.inputs[0]
            inner = self.producer.get(x) if e.prim.kind == "reduce" else None
            if inner is not None and inner.prim is e.prim and self.uses[x] == 1 \
                    and x not in self.buffers:
                absorbed.add(x)
        return absorbed

    def store(self, var):
        if var in self.buffers:
            raise RuntimeError(f"fusion planning asked twice to store {var!r}")
        self.buffers[var] = Buffer("t", var.aval.shape, var.aval.dtype, "temp")

    def literal(self, lit) -> Const:
        """The Const a Literal operand is in kernel bodies."""
        const = self._literals.get(lit)
        if const is None:
            const = self._literals[lit] = _const(lit.value, lit.aval.dtype)
        return const

    def mask_buffer(self):
        if self._mask is None:
            self._mask = Buffer("mask", (), np.dtype(np.bool_), "const", value=np.array(True))
        return self._mask

    def is_mask(self, buf):
        return buf is self._mask

    def uniform(self, buf):
        """The Const every element of a constant buffer holds (bit for bit), or None."""
        if buf.kind != "const" or buf.size == 0 or buf is self._mask:
            return None
        if id(buf) not in self._uniform:
            raw = np.ascontiguousarray(buf.value).tobytes()
            size = np.dtype(buf.dtype).itemsize
            same = raw == raw[:size] * buf.size
            self._uniform[id(buf)] = _const(buf.value.reshape(-1)[0], buf.dtype) if same else None
        return self._uniform[id(buf)]

    # -- tasks ------------------------------------------------------------------
    def tasks(self, needs):
        """Every task, after those whose buffers it reads; vars to store first go to `needs`."""
        tasks = []
        for e in self.eqns:
            if e.out in self.buffers:
                try:
                    tasks.extend(self._tasks_for(e))
                except NeedBuffer as nb:
                    needs.append(nb.var)
        for buf, atom in self.copies:
            tasks.append(_Task(atom.aval.shape, [_identity_store(buf, atom, atom.aval.shape)]))
        return tasks

    def _tasks_for(self, eqn):
        v, buf, name = eqn.out, self.buffers[eqn.out], eqn.prim.name
        if v in self.aliases:
            return []  # the value beneath the reshapes writes this buffer
        if eqn.prim.kind == "reduce":
            return [self._reduce_task(eqn, buf)]
        if eqn.prim.kind == "dot":
            return [self._dot_task(eqn, buf)]
        if name == "concatenate":
            return self._concat_tasks(eqn, buf)
        if name == "pad" and any(abs(s) != 1 for s in eqn.params["steps"]):
            return self._scatter_tasks(eqn, buf)
        return [_Task(v.aval.shape, [_identity_store(buf, v, v.aval.shape)], roots={v})]

    def _reduce_task(self, eqn, buf):
        x, axes = eqn.inputs[0], eqn.params["axes"]
        while x in self.absorbed:  # reduce(reduce(y, a1), a2) = reduce(y, a1 + a2 mapped to y)
            inner = self.producer[x]
            kept = [i for i in range(inner.inputs[0].aval.ndim) if i not in inner.params["axes"]]
            axes = tuple(sorted(set(inner.params["axes"]) | {kept[a] for a in axes}))
            x = inner.inputs[0]
        index = _reduce_index(x.aval.shape, axes)
        store = _identity_store(buf, x, x.aval.shape, REDUCE_STORE[eqn.prim.name], index)
        return _Task(x.aval.shape, [store])

    def _concat_tasks(self, eqn, buf):
        """One task per operand, writing its region of the output."""
        axis, st = eqn.params["axis"], _strides(eqn.out.aval.shape)
        tasks, start = [], 0
        for x in eqn.inputs:
            index = IndexMap(start * st[axis], st)
            tasks.append(_Task(x.aval.shape, [_identity_store(buf, x, x.aval.shape, index=index)]))
            start += x.aval.shape[axis]
        return tasks

    def _scatter_tasks(self, eqn, buf):
        """A strided pad: fill with zeros, then write the operand at its positions."""
        x, p, out = eqn.inputs[0], eqn.params, eqn.out.aval
        st = _strides(out.shape)
        fill = _Task(out.shape, [_identity_store(buf, Literal(0, out.dtype), out.shape)])
        index = IndexMap(sum(s * t for s, t in zip(p["starts"], st)),
                         tuple(s * t for s, t in zip(p["steps"], st)))
        scatter = _Task(x.aval.shape, [_identity_store(buf, x, x.aval.shape, index=index)],
                        after=[fill])
        return [fill, scatter]

    def _dot_task(self, eqn, buf):
        (a, ta), (b, tb) = self._dot_operand(eqn.inputs[0]), self._dot_operand(eqn.inputs[1])
        xs, ys = eqn.inputs[0].aval.shape, eqn.inputs[1].aval.shape
        spec = _DotSpec(a, b, math.prod(xs[:-2]), xs[-2], xs[-1], ys[-1], ta, tb)
        store = _StoreSpec(buf, eqn.out, None, None)
        return _Task(eqn.out.aval.shape, [store], dot=spec)

    def _dot_operand(self, atom):
        """(buffer, transposed) a DotKernel reads in place for `atom`; else NeedBuffer."""
        trans, eqn = False, self.producer.get(atom)
        if (atom not in self.buffers and eqn is not None and eqn.prim.name == "transpose"
                and _swaps_last_two(eqn.params["perm"])):
            atom, trans = eqn.inputs[0], True
        src = atom  # a reshape keeps the memory layout: read the buffer beneath it
        while isinstance(src, Var) and src not in self.buffers:
            eqn = self.producer.get(src)
            if eqn is None or eqn.prim.name != "reshape":
                break
            src = eqn.inputs[0]
        if isinstance(src, Var) and src in self.buffers:
            return self.buffers[src], trans
        raise NeedBuffer(src if isinstance(src, Var) and src in self.producer else atom)

    def expand_task(self, task):
        """Evaluate a task once, alone, to learn what it reads and which values it computes."""
        if task.dot is not None:
            task.reads = [(task.dot.a, None, None), (task.dot.b, None, None)]
            return
        ex = _Expander(self, task.domain, _Body(), task.roots | task.inline)
        task.values, task.marks = [], []
        for s in task.stores:
            task.values.append(ex.value(s.atom, s.view))
            task.marks.append(len(ex.body.instrs))
        task.reads, task.instances, task.body = ex.reads, ex.instances, ex.body

    # -- the recompute policy ----------------------------------------------------
    def subtree(self, var) -> set:
        """The computed (unstored) vars evaluating `var` needs, `var` included."""
        seen, stack = set(), [var]
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            stack.extend(a for a in self.producer[v].inputs
                         if isinstance(a, Var) and a not in self.buffers and a not in seen)
        return seen

    def cost(self, var) -> int:
        return sum(_op_cost(self.producer[v]) for v in self.subtree(var))


def _op_cost(eqn) -> int:
    name = eqn.prim.name
    if name in IDENTITY_PRIMS:
        return 0
    if eqn.prim.kind in ELEMENTWISE_KINDS:
        return OP_COST.get(name, DEFAULT_OP_COST)
    return OP_COST.get(name, STRUCTURAL_COST)


def _to_store(plan, tasks, group_of) -> list:
    """Computed values to store: recomputing them costs more than the budget.

    Outermost first: storing a value also stops the recomputation of its subtree.
    """
    inst = {}
    for t in tasks:
        gid = group_of[t].id
        for var, view in t.instances:
            if var not in plan.buffers:
                inst.setdefault(var, set()).add((gid, view))
    heavy = {v for v, s in inst.items()
             if len(s) > 1 and (len(s) - 1) * plan.cost(v) > RECOMPUTE_BUDGET}
    chosen, covered = [], set()
    for eqn in reversed(plan.eqns):
        if eqn.out in heavy and eqn.out not in covered:
            chosen.append(eqn.out)
            covered |= plan.subtree(eqn.out)
    return chosen


# ---- horizontal fusion -------------------------------------------------------------

@dataclass(eq=False)
class _Group:
    id: int
    domain: tuple
    dot: bool
    tasks: list = field(default_factory=list)
    deps: set = field(default_factory=set)  # ids of the groups that must run first


def _task_deps(t, group_of, writers, skip=frozenset()) -> set:
    deps = {group_of[w].id for buf, _, _ in t.reads if buf not in skip
            for w in writers.get(buf, ())}
    return deps | {group_of[a].id for a in t.after}


def _ancestors(groups, ids) -> set:
    seen, stack = set(), list(ids)
    while stack:
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            stack.extend(groups[i].deps)
    return seen


def _inlinable(plan, t, g, writers) -> set:
    """Elementwise temps of group g that t reads only at g's own index: t may recompute them.

    With each comes what its writer recomputes itself, so that t evaluates the
    temp exactly as its writer does (and the kernel's CSE shares the work).
    """
    by_var = {}
    for buf, var, view in t.reads:
        by_var.setdefault(var, []).append((buf, view))
    out = set()
    for var, reads in by_var.items():
        ws = writers.get(reads[0][0], ())
        if (len(ws) == 1 and ws[0] in g.tasks and var in ws[0].roots
                and all(view is not None and view == identity_view(t.domain)
                        and var.aval.shape == t.domain for _, view in reads)):
            out |= {var} | ws[0].inline
    return out


def _joins(plan, t, g, groups, group_of, writers) -> bool:
    """Whether t can join g, recomputing g's temps it reads (t.inline grows if so)."""
    inline = _inlinable(plan, t, g, writers)
    identity = identity_view(t.domain)
    if any(var in inline and view != identity for _, var, view in t.reads):
        return False  # it would recompute a stored value at another index: not free
    deps = _task_deps(t, group_of, writers, skip={plan.buffers[v] for v in inline})
    if g.id in _ancestors(groups, deps):
        return False
    if inline - t.inline:
        old = set(t.inline)
        t.inline |= inline
        plan.expand_task(t)
        if g.id in _ancestors(groups, _task_deps(t, group_of, writers)):
            t.inline = old  # recomputing reads something g writes after all
            plan.expand_task(t)
            return False
    return True


def _merge(plan, tasks):
    """Tasks -> groups (one kernel each); tasks arrive after the tasks they read from.

    A task joins the first group of its domain it does not depend on (so no
    cycle arises); the groups' order is settled at emission.
    """
    groups, group_of, writers = [], {}, {}
    for t in tasks:
        g = None
        if t.dot is None:
            g = next((h for h in groups if not h.dot and h.domain == t.domain
                      and _joins(plan, t, h, groups, group_of, writers)), None)
        if g is None:
            g = _Group(len(groups), t.domain, t.dot is not None)
            groups.append(g)
        g.tasks.append(t)
        group_of[t] = g
        g.deps |= _task_deps(t, group_of, writers) - {g.id}
        for b in t.writes():
            writers.setdefault(b, []).append(t)
    return groups, group_of


# ---- planning ----------------------------------------------------------------------

def _build(plan):
    """All tasks, expanded; or the vars that must be stored before they can be."""
    needs = []
    tasks = plan.tasks(needs)
    for t in tasks:
        try:
            plan.expand_task(t)
        except NeedBuffer as nb:
            needs.append(nb.var)
    return tasks, list(dict.fromkeys(needs))


def _plan(graph):
    plan = _Plan(graph)
    for _ in range(len(plan.eqns) + 2):  # each round stores at least one more value
        tasks, needs = _build(plan)
        if not needs:
            groups, group_of = _merge(plan, tasks)
            needs = _to_store(plan, tasks, group_of)
            if not needs:
                return plan, groups
        for v in needs:
            plan.store(v)
    raise RuntimeError("fusion planning did not converge")


# ---- emission ----------------------------------------------------------------------

def _topo(groups):
    """Groups in dependency order, ties by creation."""
    done, order, pending = set(), [], list(groups)
    while pending:
        ready = next(g for g in pending if g.deps <= done)
        pending.remove(ready)
        done.add(ready.id)
        order.append(ready)
    return order


def _emit_loop(plan, g, name):
    """The group's tasks in one body, which CSEs them.

    Each task's last expansion during planning (with the final buffers and its
    own inline set) is replayed into the body rather than expanded again: the
    expansion adds the same instructions in the same order either way.
    """
    body, stores = _Body(), []
    for t in g.tasks:
        remap, start = {}, 0
        for s, value, end in zip(t.stores, t.values, t.marks):
            body.replay(t.body, start, end, remap)
            start = end
            val = remap[value] if isinstance(value, int) else value
            if isinstance(val, Const):
                val = body.emit("convert", (val,), {"dtype": val.dtype}, val.dtype)
            stores.append(Store(s.buffer, val, s.index, s.reduce))
    return LoopKernel(name, g.domain, _compact(body.instrs, stores), stores)


def _emit_group(plan, g, name):
    if not g.dot:
        return _emit_loop(plan, g, name)
    (t,) = g.tasks
    d = t.dot
    return DotKernel(name, d.a, d.b, t.stores[0].buffer, d.batch, d.m, d.k, d.n,
                     d.trans_a, d.trans_b)


def _buffers_used(kernels):
    seen = {}
    for k in kernels:
        for b in k.reads() + k.writes():
            seen.setdefault(id(b), b)
    return list(seen.values())


def _emit(plan, groups) -> KernelProgram:
    kernels = [_emit_group(plan, g, f"k{i}") for i, g in enumerate(_topo(groups))]
    used = _buffers_used(kernels)
    temps = [b for b in used if b.kind == "temp"]
    for i, b in enumerate(temps):
        b.name = f"t{i}"
    const_order = [plan.buffers[v] for v in plan.graph.constvars] + [plan.mask_buffer()]
    used_ids = {id(b) for b in used}
    consts = [b for b in const_order if id(b) in used_ids]
    for i, b in enumerate(consts):
        b.name = "mask" if plan.is_mask(b) else f"c{i}"
    return KernelProgram(list(plan.inputs), list(plan.outputs), consts, temps, kernels)


def fuse(graph) -> KernelProgram:
    """Plan the buffers and loop kernels computing `graph` (see the module docstring)."""
    plan, groups = _plan(graph)
    return _emit(plan, groups)


def liveness(program: KernelProgram) -> dict:
    """Temp name -> (first, last) index of the kernels that touch it.

    A temp's memory is free before its first kernel and after its last one, so
    temps whose ranges do not overlap may share memory.
    """
    spans = {}
    for i, k in enumerate(program.kernels):
        for b in k.reads() + k.writes():
            if b.kind == "temp":
                first, _ = spans.get(b.name, (i, i))
                spans[b.name] = (first, i)
    return spans
