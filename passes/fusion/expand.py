"""Expansion: evaluating (value, view) pairs into a kernel body, down to loads.

A stored value is loaded where it is needed; any other value is computed from
its equation at the view its consumer needs it at (`STEP_RULES`, one per
primitive kind): elementwise ops become body ops, structural primitives only
change the view of their operand.  Expansion is iterative (an explicit stack),
so long chains of equations do not meet Python's recursion limit.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from tracegrad.ir.core import Literal, Var
from tracegrad.ir.primitives import ELEMENTWISE_KINDS
from tracegrad.passes.identities import VALUE_IDENTITY_PRIMS, is_pos_zero
from tracegrad.passes.kernels import Const, IndexMap, Load

from .body import const
from .views import (ZERO, View, address_bounds, broadcast_view, flat_map, identity_view,
                    intersect_bounds, pad_view, reshape_view, slice_view, transpose_view)


class NeedBuffer(Exception):
    """Planning met values that must be stored; the planner stores them and re-plans.
    `vars` holds every one an expansion met (each beneath no other), `var` the first."""

    def __init__(self, var, more=()):
        super().__init__(var)
        self.var, self.vars = var, [var, *more]


def _first(data, args):
    return args[0]


class Pending(NamedTuple):
    """A step waiting for its operands: `finish(data, values of children)` is its value.

    `children` are the (atom, view) pairs of the operands.  A finished step is
    a body value instead: a position (int) or a Const.
    """

    children: list
    finish: Callable = _first
    data: object = None


class Read(NamedTuple):
    """A buffer read: holding `var`, at `view` (None: a flat or whole read)."""

    buffer: object
    var: object
    view: View | None


class Expander:
    """Evaluates (atom, view) pairs into one kernel body over `domain`.

    A stored value is loaded unless it is in `inline` (the values this kernel
    computes itself); anything else is expanded from its equation.  Records
    the buffers read (with the view read at) and the (var, view) instances.
    """

    def __init__(self, plan, domain, body, inline, fragment=None, recomputed=frozenset()):
        self.plan, self.domain, self.body = plan, tuple(domain), body
        self.buffers, self.producer, self.stop = plan.buffers, plan.producer, plan.stop
        self.inline = set(inline)
        # fragment(var): the kept expansion of a temp in `recomputed` (computed here, not
        # stored here) alone, to replay (`_splice`)
        self.fragment, self.recomputed = fragment, recomputed
        self.identity = identity_view(self.domain)
        self.consulted = set()  # vars whose status the replayed fragments depend on
        self.memo = {}  # (atom, view) -> body position or Const
        self.reads = []  # Reads
        self.instances = set()
        self.children = {}  # computed (atom, view) -> its operands' pairs
        self.frontier = []  # the (atom, view) pairs of `plan.stop` met, not expanded
        self.sourced = []  # vars `stored_source` asked about (beyond the memo's atoms)
        self._scalar_views = {}
        self.needs = []  # vars met that must be stored: each a zero here, raised by `_expand`

    def value(self, atom, view):
        """The body value (position or Const) of `atom` at `view`; iterative, no recursion.

        While its operands are evaluated, a pair's memo entry is its `Pending`
        step (a DAG never meets a pending pair again before it is finished).
        """
        memo, stack = self.memo, [(atom, view)]
        while stack:
            key = stack[-1]
            step = memo.get(key)
            if step is None:
                step = memo[key] = self._step(key)
                if not isinstance(step, Pending):
                    stack.pop()
                    continue
                self.children[key] = step.children
                todo = [c for c in step.children if c not in memo]
                if todo:
                    stack += todo[::-1]
                    continue
            elif not isinstance(step, Pending):  # a second entry for a finished pair
                stack.pop()
                continue
            memo[key] = step.finish(step.data, [memo[c] for c in step.children])
            stack.pop()
        return memo[(atom, view)]

    def _step(self, key):
        """The value of `key = (atom, view)` if it needs no operands, else its pending step."""
        atom, view = key
        if isinstance(atom, Literal):
            return const(atom.value, atom.aval.dtype)
        buf = self.buffers.get(atom)
        if buf is not None and atom not in self.inline:
            return self.load(atom, buf, view)
        eqn = self.producer.get(atom)
        if eqn is None:
            raise ValueError(f"value {atom!r} is neither an input, a constant nor computed")
        if atom in self.recomputed and view == self.identity:
            return self._splice(atom)
        self.instances.add(key)
        if atom in self.stop and atom not in self.inline:
            # loaded from the buffer it gets if stored (no task writes it this round)
            self.frontier.append(key)
            return self.load(atom, self.plan.frontier_buffer(atom), view)
        rule = STEP_RULES.get(eqn.prim.name) or STEP_RULES[eqn.prim.kind]
        try:
            return rule(self, eqn, view)
        except NeedBuffer as nb:  # go on, so that one round finds every value to store
            self.needs.append(nb.var)
            return const(0, atom.aval.dtype)

    def _splice(self, atom):
        """A recomputed temp at the identity view: the expansion kept for it alone (the
        same for every task of its writer's kernel that recomputes it, as a group's
        joining reductions do) replayed into this body, not expanded again."""
        try:
            known = self.fragment(atom)
        except NeedBuffer as nb:
            self.needs += nb.vars
            return const(0, atom.aval.dtype)
        values, _, reads, instances, body, children, frontier = known.fields
        remap = {}
        self.body.replay(body, 0, len(body.instrs), remap)
        self.reads += reads
        self.instances |= instances
        self.children.update(children)
        self.frontier += frontier
        self.sourced += known.sourced
        self.consulted |= known.consulted
        return values[0] if isinstance(values[0], Const) else remap[values[0]]

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
        self.reads.append(Read(buf, var, None if shape is not None else view))
        key = (view, shape if shape is not None else var.aval.shape, self.domain, buf.shape)
        index = self.plan.index_maps.get(key)
        if index is None:
            index = self.plan.index_maps[key] = _index_map(*key)
        return self.body.load(buf, index, buf.dtype)

    def stored_source(self, atom):
        """The stored var `atom` is a chain of reshapes of, or None."""
        while isinstance(atom, Var):
            self.sourced.append(atom)
            if atom in self.plan.buffers and atom not in self.inline:
                return atom
            eqn = self.plan.producer.get(atom)
            if eqn is None or eqn.prim.name != "reshape":
                return None
            atom = eqn.inputs[0]
        return None

    def masked(self, value, box, dtype):
        """`value` where i is in `box`, 0 elsewhere (the result of a pad)."""
        zero = const(0, dtype)
        if isinstance(value, Const):
            if is_pos_zero(value.array):
                return value
        elif (isinstance(self.body.instrs[value], Load)
              and not self.plan.is_mask(self.body.instrs[value].buffer)):
            ins = self.body.instrs[value]
            bounds = intersect_bounds(ins.index.bounds, box, self.domain)
            return self.body.load(ins.buffer, IndexMap(ins.index.offset, ins.index.strides, bounds),
                                  ins.dtype)
        mask = self.body.load(self.plan.mask_buffer(),
                              IndexMap(0, (0,) * len(self.domain),
                                       tuple((lo, hi, 1) for lo, hi in box)), np.bool_)
        return self.body.op("where", (mask, value, zero), {}, dtype)


def _index_map(view, shape, domain, buffer_shape) -> IndexMap:
    """Where a load of `shape`'s row-major layout at `view` reads, kept in bounds."""
    offset, strides = flat_map(view, shape)
    bounds = address_bounds(view.box, domain, offset, strides, math.prod(buffer_shape))
    return IndexMap(offset, strides, bounds)


class Elementwise(NamedTuple):
    """What expanding an elementwise equation needs, worked out once per plan."""

    atoms: list  # the operands that are not literals
    scalar: tuple  # per atom: whether it is rank 0 (it broadcasts)
    consts: tuple | None  # per operand: the literal's Const, None for an atom
    name: str
    params: dict
    dtype: object
    identity: bool  # the value is its operand's (VALUE_IDENTITY_PRIMS, a same-dtype convert)


def _elementwise(plan, eqn) -> Elementwise:
    inputs, consts = eqn.inputs, None
    if any(isinstance(a, Literal) for a in inputs):  # literal operands are Consts already
        consts = tuple(plan.literal(b) if isinstance(b, Literal) else None for b in inputs)
        inputs = [b for b in inputs if not isinstance(b, Literal)]
    name, dtype = eqn.prim.name, eqn.out.aval.dtype
    identity = name in VALUE_IDENTITY_PRIMS or (name == "convert"
                                                 and eqn.inputs[0].aval.dtype == dtype)
    return Elementwise(inputs, tuple(not a.aval.shape for a in inputs), consts, name,
                       eqn.params, dtype, identity)


def _step_elementwise(ex, eqn, view):
    info = ex.plan.elementwise.get(eqn)
    if info is None:
        info = ex.plan.elementwise[eqn] = _elementwise(ex.plan, eqn)
    if any(info.scalar):
        scalar = ex.scalar_view(view)
        children = [(a, scalar if s else view) for a, s in zip(info.atoms, info.scalar)]
    else:
        children = [(a, view) for a in info.atoms]
    return Pending(children, _finish_elementwise, (ex.body, info))


def _finish_elementwise(data, args):
    body, info = data
    if info.consts is not None:  # all operands: the literals' Consts, `args` for the others
        rest = iter(args)
        args = [c if c is not None else next(rest) for c in info.consts]
    if info.identity:
        return args[0]
    return body.op(info.name, args, info.params, info.dtype)


def _step_broadcast(ex, eqn, view):
    x = eqn.inputs[0]
    return Pending([(x, broadcast_view(view, x.aval.shape))])


def _step_transpose(ex, eqn, view):
    return Pending([(eqn.inputs[0], transpose_view(view, eqn.params["perm"]))])


def _step_slice(ex, eqn, view):
    p = eqn.params
    return Pending([(eqn.inputs[0], slice_view(view, p["starts"], p["steps"]))])


def _step_reshape(ex, eqn, view):
    x, shape = eqn.inputs[0], eqn.out.aval.shape
    src = ex.stored_source(x)
    if src is not None:  # a buffer's memory read with this shape's strides
        return ex.load(src, ex.plan.buffers[src], view, shape)
    x_view = reshape_view(view, shape, x.aval.shape)
    if x_view is None:
        raise NeedBuffer(x)
    return Pending([(x, x_view)])


def _step_pad(ex, eqn, view):
    x, p, out = eqn.inputs[0], eqn.params, eqn.out.aval
    x_view = pad_view(view, p["starts"], p["steps"], x.aval.shape, out.shape)
    if x_view is None:
        raise NeedBuffer(eqn.out)
    if x_view is ZERO:
        return const(0, out.dtype)
    if x_view.box == view.box:
        return Pending([(x, x_view)])
    return Pending([(x, x_view)], _finish_masked, (ex, x_view.box, out.dtype))


def _finish_masked(data, args):
    ex, box, dtype = data
    return ex.masked(args[0], box, dtype)


def _step_stored_only(ex, eqn, view):
    # reductions, dots, concatenations, control flow, externs: always stored (every output)
    raise NeedBuffer(eqn.outs[0])


STEP_RULES = {
    **{kind: _step_elementwise for kind in ELEMENTWISE_KINDS},
    "broadcast": _step_broadcast, "transpose": _step_transpose, "slice": _step_slice,
    "reshape": _step_reshape, "pad": _step_pad,
    "reduce": _step_stored_only, "dot": _step_stored_only, "concatenate": _step_stored_only,
    "control": _step_stored_only, "extern": _step_stored_only,
}
