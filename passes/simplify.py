"""Algebraic simplification and constant folding.

Every simplification is exact in IEEE arithmetic, checked against the numpy
reference (`ir.eval_graph`) bit for bit, signed zeros and NaN included.  The
identities that return an operand (`x * 1`, `x + (-0.0)`, ...) come from the
one table in `passes/identities.py`, which also lists the familiar ones that
are deliberately absent (`x * 0 -> 0`, `x + 0.0 -> x`, ...).  Likewise:

* `reduce_sum` over no axes adds the +0.0 identity (numpy's and codegen's
  `sum` semantics), so for floats it becomes `x + 0.0`, not `x`;
* `convert(convert(x))` collapses only where the middle type holds every
  value of the source exactly, and never ends in float -> int (undefined for
  out-of-range values, so the two paths may disagree).

Rules are data: `RULES` is an ordered table of named rules; a rule looks at
one equation (and the producers of its inputs) and either redirects its uses
to an existing atom, or replaces it by one new equation with the same output
var, or by an `Expansion`: new equations (fresh vars) followed by that
replacement.  A rule may never change a value's shape or dtype (`RewriteError`).

A sum over axes a broadcast added or stretched is a product: `reduce_sum` of
`broadcast(x)` becomes the sum of the un-broadcast x times the number of
copies, so no loop runs over the copies.  That is exact in real arithmetic,
and exact for integers (the product wraps around as the sum would).  In floats
the two differ by rounding: the product rounds once where the sum rounds at
every addition (so it is usually the more accurate), and the count itself
rounds to the dtype above 2**24 resp. 2**53 copies.  So for floats the rule
waits for MIN_FLOAT_COPIES copies: below that the sum is cheap, and stays bit
for bit the reference's.

A sum over the joined axis of a concatenation (`np.stack(views).sum(0)`) is the
sum of its pieces' sums, so each piece is read where it lies instead of copied
into the concatenation first.  That is exact for integers and a regrouping of
the same additions for floats: the one rule here whose float result may differ
from the reference's by rounding (kernels' sums regroup as well).  Maxima and
minima are left alone: a combining `max` splits a tie's derivative in halves
where `reduce_max` shares it among all tied elements, which a second derivative
of the cleaned gradient graph would see.

>>> import numpy as np
>>> from tracegrad.ir import GraphBuilder, ShapedArray, ops
>>> b = GraphBuilder()
>>> x = b.new_input(ShapedArray((3,), np.float32))
>>> g, fired = simplify_counted(b.build([ops.neg(ops.neg(ops.mul(x, 1.0)))]))
>>> g.outvars[0] is g.invars[0], dict(fired)
(True, {'mul_one_right': 1, 'neg_neg': 1})
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from tracegrad.ir import PRIMITIVES, Eqn, Graph, Literal, ShapeError, Var, aval_of
from tracegrad.ir.core import is_float

from .cse import Redirects, literal_key
from .identities import NEUTRAL_OPERANDS, NeutralOperand, applies

MAX_SWEEPS = 4                # simplify: forward sweeps until no rule fires
MAX_REWRITES_PER_EQN = 8      # rules chained on one equation within a sweep
MAX_FOLDED_ELEMENTS = 1 << 16  # fold_constants: larger results stay computed
MIN_FLOAT_COPIES = 1 << 16    # reduce_sum_of_broadcast: fewer float copies stay a sum

# src dtype -> middle dtypes that represent every src value exactly.
LOSSLESS_WIDENING = {
    np.dtype(np.bool_): {np.dtype(t) for t in (np.int32, np.int64, np.float32, np.float64)},
    np.dtype(np.int32): {np.dtype(np.int64), np.dtype(np.float64)},
    np.dtype(np.float32): {np.dtype(np.float64)},
}


class RewriteError(AssertionError):
    """A rule produced a rewrite that changes a value's type: a bug in the rule."""


@dataclass(frozen=True)
class Rule:
    name: str
    prim: str
    # (eqn, ctx) -> None (no match) | atom to redirect to | replacement Eqn
    rewrite: Callable
    doc: str


class Expansion(NamedTuple):
    """A rewrite that needs new values: `helpers` define fresh vars, in order,
    and `eqn` then defines the rewritten equation's output from them."""

    helpers: tuple
    eqn: Eqn


class _Context:
    """What rules may read: constant values and producers in the new graph."""

    def __init__(self, graph: Graph):
        self.consts = dict(zip(graph.constvars, graph.constvals))
        self.producers: dict[Var, Eqn] = {}

    def value(self, atom):
        if isinstance(atom, Literal):
            return atom.value
        return self.consts.get(atom)

    def producer(self, atom, prim_name: str):
        eqn = self.producers.get(atom) if isinstance(atom, Var) else None
        return eqn if eqn is not None and eqn.prim.name == prim_name else None


def _same_aval(atom, out: Var) -> bool:
    return atom.aval == out.aval


def _same_atom(a, b) -> bool:
    if isinstance(a, Literal) and isinstance(b, Literal):
        return literal_key(a) == literal_key(b)
    return a is b


def _rebind(eqn: Eqn, prim: str, inputs: list, **params) -> Eqn:
    """A replacement equation defining the same output var."""
    return Eqn(PRIMITIVES[prim], inputs, params, eqn.out, eqn.src)


# ---- the rules ------------------------------------------------------------------

def _neutral_rule(n: NeutralOperand):
    """Rule body: the operand `n` keeps, when the other operand is a constant passing its test."""
    def rewrite(eqn, ctx):
        value = ctx.value(eqn.inputs[n.const])
        if not applies(n, value, eqn.out.aval.dtype):
            return None
        x = eqn.inputs[n.keep]
        return x if _same_aval(x, eqn.out) else None
    return rewrite


def _neg_neg(eqn, ctx):
    inner = ctx.producer(eqn.inputs[0], "neg")
    return inner.inputs[0] if inner is not None else None


def _transpose_identity(eqn, ctx):
    perm = eqn.params["perm"]
    return eqn.inputs[0] if tuple(perm) == tuple(range(len(perm))) else None


def _transpose_transpose(eqn, ctx):
    # transpose(transpose(x, p1), p2) == transpose(x, p1[p2]); identity perms
    # are left to `transpose_identity` on the next round.
    inner = ctx.producer(eqn.inputs[0], "transpose")
    if inner is None:
        return None
    p1, p2 = inner.params["perm"], eqn.params["perm"]
    return _rebind(eqn, "transpose", [inner.inputs[0]], perm=tuple(p1[p] for p in p2))


def _same_shape(eqn, ctx):
    x = eqn.inputs[0]
    return x if x.aval.shape == tuple(eqn.params["shape"]) else None


def _compose_structural(prim: str):
    """`prim(prim(x, s1), s2) -> prim(x, s2)`: row-major reshape and numpy
    broadcasting both compose (a dim of x broadcastable to s1 is 1 or s1's,
    and s1's is 1 or s2's)."""
    def rewrite(eqn, ctx):
        inner = ctx.producer(eqn.inputs[0], prim)
        if inner is None:
            return None
        return _rebind(eqn, prim, [inner.inputs[0]], shape=eqn.params["shape"])
    return rewrite


def _convert_same(eqn, ctx):
    x = eqn.inputs[0]
    return x if x.aval.dtype == np.dtype(eqn.params["dtype"]) else None


def _convert_convert(eqn, ctx):
    inner = ctx.producer(eqn.inputs[0], "convert")
    if inner is None:
        return None
    x = inner.inputs[0]
    src, mid, dst = x.aval.dtype, np.dtype(inner.params["dtype"]), np.dtype(eqn.params["dtype"])
    if mid not in LOSSLESS_WIDENING.get(src, ()):
        return None
    if dst == src:
        return x
    if is_float(src) and not is_float(dst) and dst != np.bool_:
        return None
    return _rebind(eqn, "convert", [x], dtype=dst)


def _integer_pow_one(eqn, ctx):
    y = eqn.params["y"]
    return eqn.inputs[0] if y == 1 and not isinstance(y, bool) else None


def _slice_whole(eqn, ctx):
    x, p = eqn.inputs[0], eqn.params
    whole = (all(s == 0 for s in p["starts"]) and all(s == 1 for s in p["steps"])
             and tuple(p["sizes"]) == x.aval.shape)
    return x if whole else None


def _slice_slice(eqn, ctx):
    # slice(slice(x, a1, s1, n1), a2, s2, n2) reads x at a1 + (a2 + j s2) s1 for j < n2:
    # one slice at a1 + a2 s1 with step s1 s2 (a reversal of a reversal is then whole)
    inner = ctx.producer(eqn.inputs[0], "slice")
    if inner is None:
        return None
    p1, p2 = inner.params, eqn.params
    starts = tuple(a1 + a2 * s1 for a1, a2, s1 in zip(p1["starts"], p2["starts"], p1["steps"]))
    steps = tuple(s1 * s2 for s1, s2 in zip(p1["steps"], p2["steps"]))
    return _rebind(eqn, "slice", [inner.inputs[0]], starts=starts, steps=steps,
                   sizes=tuple(p2["sizes"]))


def _pad_nothing(eqn, ctx):
    x, p = eqn.inputs[0], eqn.params
    nothing = (all(s == 0 for s in p["starts"]) and all(s == 1 for s in p["steps"])
               and tuple(p["shape"]) == x.aval.shape)
    return x if nothing else None


def _reduce_sum_no_axes(eqn, ctx):
    x = eqn.inputs[0]
    if eqn.params["axes"]:
        return None
    if not is_float(x.aval.dtype):
        return x
    # numpy's sum starts from +0.0, so a sum over nothing maps -0.0 to +0.0.
    return _rebind(eqn, "add", [x, Literal(0.0, x.aval.dtype)])


def _helper(prim: str, inputs: list, src, **params) -> Eqn:
    """A new equation with a fresh output var of the type its shape rule gives."""
    p = PRIMITIVES[prim]
    out = Var(p.shape_rule(*[a.aval for a in inputs], **params))
    return Eqn(p, inputs, params, out, src)


def _wrapped_count(count: int, dtype):
    """`count` as a scalar of `dtype`: rounded for floats, modulo 2**bits for integers."""
    if is_float(dtype):
        return float(count)
    bits = 8 * np.dtype(dtype).itemsize
    count %= 1 << bits
    return count - (1 << bits) if count >> (bits - 1) else count


def _copied_axes(eqn, b) -> list:
    """The reduced axes along which `b = broadcast(x)` only repeats x (added or stretched)."""
    shape, x_shape = b.params["shape"], b.inputs[0].aval.shape
    lead = len(shape) - len(x_shape)
    return [a for a in eqn.params["axes"]
            if shape[a] != 1 and (a < lead or x_shape[a - lead] == 1)]


def _reduce_sum_of_broadcast(eqn, ctx):
    b = ctx.producer(eqn.inputs[0], "broadcast")
    if b is None or eqn.out.aval.dtype == np.bool_:
        return None
    copied = _copied_axes(eqn, b)
    shape, x = tuple(b.params["shape"]), b.inputs[0]
    count = math.prod(shape[a] for a in copied)
    if not copied or count == 0 or (is_float(x.aval.dtype) and count < MIN_FLOAT_COPIES):
        return None
    lead, helpers = len(shape) - x.aval.ndim, []
    x_shape = tuple(d for e, d in enumerate(x.aval.shape) if e + lead not in copied)
    if x_shape != x.aval.shape:  # drop the stretched size-1 dims
        helpers.append(_helper("reshape", [x], eqn.src, shape=x_shape))
    kept = [a for a in range(len(shape)) if a not in copied]
    small = tuple(shape[a] for a in kept)
    if small != x_shape:
        helpers.append(_helper("broadcast", [helpers[-1].out if helpers else x], eqn.src,
                               shape=small))
    axes = tuple(kept.index(a) for a in eqn.params["axes"] if a not in copied)
    helpers.append(_helper("reduce_sum", [helpers[-1].out if helpers else x], eqn.src, axes=axes))
    total = Literal(_wrapped_count(count, eqn.out.aval.dtype), eqn.out.aval.dtype)
    return Expansion(tuple(helpers), _rebind(eqn, "mul", [helpers[-1].out, total]))


def _reduce_sum_of_concatenate(eqn, ctx):
    """reduce_sum(concatenate(xs, axis=a)) over axes that include a -> the sum of the
    pieces' sums (module docstring); empty pieces add nothing."""
    c = ctx.producer(eqn.inputs[0], "concatenate")
    if c is None or c.params["axis"] not in eqn.params["axes"] or not 2 <= len(c.inputs) <= 64:
        return None
    pieces = [x for x in c.inputs if x.aval.shape[c.params["axis"]] > 0]
    if not pieces:
        return None
    helpers = [_helper("reduce_sum", [x], eqn.src, **eqn.params) for x in pieces]
    if len(helpers) == 1:
        return _rebind(eqn, "reduce_sum", [pieces[0]], **eqn.params)
    total = helpers[0].out
    for h in helpers[1:-1]:
        helpers.append(_helper("add", [total, h.out], eqn.src))
        total = helpers[-1].out
    return Expansion(tuple(helpers), _rebind(eqn, "add", [total, helpers[len(pieces) - 1].out]))


def _reduce_of_ones(eqn, ctx):
    """A reduction over axes of size 1 only: a reshape (a sum adds 0.0 to floats, as the
    reduction's +0.0 start does to -0.0)."""
    x, axes = eqn.inputs[0], eqn.params["axes"]
    if not axes or any(x.aval.shape[a] != 1 for a in axes):
        return None
    shape = eqn.out.aval.shape
    if eqn.prim.name != "reduce_sum" or not is_float(x.aval.dtype):
        return _rebind(eqn, "reshape", [x], shape=shape)
    flat = _helper("reshape", [x], eqn.src, shape=shape)
    return Expansion((flat,), _rebind(eqn, "add", [flat.out, Literal(0.0, x.aval.dtype)]))


def _reduce_no_axes(eqn, ctx):
    return eqn.inputs[0] if not eqn.params["axes"] else None


def _where_same(eqn, ctx):
    _, x, y = eqn.inputs
    return x if _same_atom(x, y) and _same_aval(x, eqn.out) else None


def _stop_gradient_twice(eqn, ctx):
    inner = ctx.producer(eqn.inputs[0], "stop_gradient")
    return eqn.inputs[0] if inner is not None else None


def _broadcast_literal(atom, ctx):
    """The literal `atom` is a broadcast of (same dtype), or None."""
    inner = ctx.producer(atom, "broadcast")
    lit = inner.inputs[0] if inner is not None else None
    return lit if isinstance(lit, Literal) and lit.aval.dtype == atom.aval.dtype else None


def _scalar_operand(eqn, ctx):
    """op(x, broadcast(c)) -> op(x, c) for a literal c, when another operand
    already has the output's shape: rank-0 operands broadcast implicitly, so the
    value is the same, and `x * broadcast(1.0)` then meets `mul_one`."""
    literals = [_broadcast_literal(a, ctx) for a in eqn.inputs]
    if not any(literals):
        return None
    new = [lit or a for lit, a in zip(literals, eqn.inputs)]
    full = eqn.out.aval.shape
    if not any(not isinstance(n, Literal) and n.aval.shape == full for n in new):
        return None
    return _rebind(eqn, eqn.prim.name, new, **eqn.params)


SCALAR_OPERAND_PRIMS = ("add", "sub", "mul", "div", "pow", "max", "min", "where")

# Fixed order: within one primitive, the first rule that matches wins, so the
# "already the identity" rules come before the composition rules.
RULES: tuple[Rule, ...] = (
    *(Rule(n.name, n.prim, _neutral_rule(n), n.doc) for n in NEUTRAL_OPERANDS),
    Rule("neg_neg", "neg", _neg_neg, "neg(neg x) -> x"),
    Rule("transpose_identity", "transpose", _transpose_identity, "transpose[perm=id] x -> x"),
    Rule("transpose_transpose", "transpose", _transpose_transpose,
         "transpose(transpose(x, p1), p2) -> transpose(x, p1[p2])"),
    Rule("reshape_same", "reshape", _same_shape, "reshape to x's own shape -> x"),
    Rule("reshape_reshape", "reshape", _compose_structural("reshape"),
         "reshape(reshape(x)) -> reshape(x)"),
    Rule("broadcast_same", "broadcast", _same_shape, "broadcast to x's own shape -> x"),
    Rule("broadcast_broadcast", "broadcast", _compose_structural("broadcast"),
         "broadcast(broadcast(x)) -> broadcast(x)"),
    Rule("convert_same", "convert", _convert_same, "convert to x's own dtype -> x"),
    Rule("convert_convert", "convert", _convert_convert,
         "convert(convert(x, mid), dst) -> convert(x, dst) or x, where exact"),
    Rule("integer_pow_one", "integer_pow", _integer_pow_one, "integer_pow[y=1] x -> x"),
    Rule("slice_whole", "slice", _slice_whole, "slice of the whole array, step 1 -> x"),
    Rule("slice_slice", "slice", _slice_slice, "slice(slice(x)) -> one slice of x"),
    Rule("pad_nothing", "pad", _pad_nothing, "pad to x's own shape, step 1 -> x"),
    Rule("reduce_sum_no_axes", "reduce_sum", _reduce_sum_no_axes,
         "reduce_sum[axes=()] x -> x (integers) / x + 0.0 (floats)"),
    Rule("reduce_sum_of_broadcast", "reduce_sum", _reduce_sum_of_broadcast,
         "reduce_sum(broadcast x) over copied axes -> reduce_sum(x) * copies"),
    *(Rule(f"{r}_of_ones", r, _reduce_of_ones, f"{r} over size-1 axes only -> reshape")
      for r in ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod")),
    Rule("reduce_sum_of_concatenate", "reduce_sum", _reduce_sum_of_concatenate,
         "reduce_sum(concatenate xs) over the joined axis -> the sum of each piece's sum"),
    Rule("reduce_prod_no_axes", "reduce_prod", _reduce_no_axes, "reduce_prod[axes=()] x -> x"),
    Rule("reduce_max_no_axes", "reduce_max", _reduce_no_axes, "reduce_max[axes=()] x -> x"),
    Rule("reduce_min_no_axes", "reduce_min", _reduce_no_axes, "reduce_min[axes=()] x -> x"),
    Rule("where_same", "where", _where_same, "where(c, x, x) -> x"),
    *(Rule(f"scalar_operand_{p}", p, _scalar_operand, f"{p}(x, broadcast(c)) -> {p}(x, c)")
      for p in SCALAR_OPERAND_PRIMS),
    Rule("stop_gradient_twice", "stop_gradient", _stop_gradient_twice,
         "stop_gradient(stop_gradient x) -> stop_gradient x"),
)

RULES_BY_PRIM: dict[str, tuple[Rule, ...]] = {
    p: tuple(r for r in RULES if r.prim == p) for p in {r.prim for r in RULES}}


def rule_names() -> list[str]:
    return [r.name for r in RULES]


# ---- the simplification driver ----------------------------------------------------

def _check_helpers(rule: Rule, helpers):
    for h in helpers:
        if h.prim.shape_rule(*[a.aval for a in h.inputs], **h.params) != h.out.aval:
            raise RewriteError(f"rule {rule.name} built an ill-typed {h.prim.name}")


def _checked(rule: Rule, eqn: Eqn, result):
    """Refuse any rewrite that would change the type of `eqn.out`."""
    if isinstance(result, Expansion):
        _check_helpers(rule, result.helpers)
        _checked(rule, eqn, result.eqn)
        return result
    if isinstance(result, Eqn):
        try:
            aval = result.prim.shape_rule(*[a.aval for a in result.inputs], **result.params)
        except ShapeError as e:
            raise RewriteError(f"rule {rule.name} built an ill-typed {result.prim.name}: {e}") from e
        ok = result.out is eqn.out and aval == eqn.out.aval
    else:
        ok = isinstance(result, (Var, Literal)) and _same_aval(result, eqn.out)
    if not ok:
        raise RewriteError(f"rule {rule.name} would change {eqn.out.aval} into another type")
    return result


def _first_match(eqn: Eqn, ctx: _Context):
    for rule in RULES_BY_PRIM.get(eqn.prim.name, ()):
        result = rule.rewrite(eqn, ctx)
        if result is not None:
            return rule, _checked(rule, eqn, result)
    return None, None


def rewrite_eqn(eqn: Eqn, ctx, counts: Counter) -> tuple[object, bool]:
    """Apply rules to one equation until none matches, at most MAX_REWRITES_PER_EQN times.

    Returns (result, settled): the result is an Eqn, an Expansion or an atom;
    `settled` is False when the bound stopped the chain, so a rule may still
    match (the next sweep retries it; it first looks at an Expansion's new
    equations too).  `ctx`
    answers `value(atom)` and `producer(atom, prim_name)` about the equations
    before this one.
    """
    if eqn.prim.name not in RULES_BY_PRIM:
        return eqn, True
    for _ in range(MAX_REWRITES_PER_EQN):
        rule, result = _first_match(eqn, ctx)
        if rule is None:
            return eqn, True
        counts[rule.name] += 1
        if not isinstance(result, Eqn):
            return result, True
        eqn = result
    return eqn, False


def _sweep(graph: Graph, counts: Counter) -> Graph:
    ctx, redirects, eqns = _Context(graph), Redirects(), []
    for eqn in graph.eqns:
        eqn = redirects.eqn(eqn)
        result, _ = rewrite_eqn(eqn, ctx, counts)
        if isinstance(result, Expansion):
            for h in result.helpers:
                eqns.append(h)
                ctx.producers[h.out] = h
            result = result.eqn
        if isinstance(result, Eqn):
            eqns.append(result)
            ctx.producers[result.out] = result
        else:
            redirects.set(eqn.out, result)
    return redirects.finish(graph, eqns)


def simplify_counted(graph: Graph, max_sweeps: int = MAX_SWEEPS) -> tuple[Graph, Counter]:
    """Simplify and count how often each rule fired.

    Rewritten equations stay in place, so the equations they no longer feed
    are left for DCE.  Returns `graph` itself when no rule fires.
    """
    counts: Counter = Counter()
    for _ in range(max_sweeps):
        before = sum(counts.values())
        new = _sweep(graph, counts)
        if sum(counts.values()) == before:
            break
        graph = new
    return graph, counts


def simplify(graph: Graph) -> Graph:
    """The algebraic-simplification pass (see `RULES`)."""
    return simplify_counted(graph)[0]


# ---- constant folding -------------------------------------------------------------

def _known_args(eqn: Eqn, known: dict):
    args = []
    for a in eqn.inputs:
        if isinstance(a, Literal):
            args.append(a.value)
        elif a in known:
            args.append(known[a])
        else:
            return None
    return args


def _worth_folding(eqn: Eqn, max_elements: int) -> bool:
    out = eqn.out.aval
    if out.ndim and out.size > max_elements:
        return False
    # A broadcast scalar stays symbolic: fusion handles it for free, a folded
    # copy would only cost memory.
    return not (eqn.prim.name == "broadcast" and eqn.inputs[0].aval.ndim == 0 and out.ndim)


def fold_eqn(eqn: Eqn, known: dict, max_elements: int = MAX_FOLDED_ELEMENTS):
    """The equation's value as the interpreter computes it (`Primitive.run`), or None if not foldable."""
    args = _known_args(eqn, known)
    if args is None or not _worth_folding(eqn, max_elements):
        return None
    try:
        with np.errstate(all="ignore"):
            value = eqn.prim.run(*args, **eqn.params)  # as the interpreter and eager compute
    except Exception:  # noqa: BLE001 - an error stays a run-time error, never a compile-time one
        return None
    # A copy: some impls return their operand (stop_gradient), which must not alias a constant.
    value = np.array(value, copy=True)
    return value if aval_of(value) == eqn.out.aval else None


def _uniform(value: np.ndarray) -> bool:
    """All elements bitwise equal (so -0.0 and 0.0, or NaN payloads, are told apart)."""
    if value.size == 0:
        return False
    flat = value.reshape(-1)
    return bool(np.all(flat.view(np.uint8).reshape(flat.size, -1) == flat[:1].view(np.uint8)))


def folded_form(eqn: Eqn, value: np.ndarray):
    """What a folded equation becomes: a Literal (its uses are redirected to it),
    an Eqn defining the same var (a broadcast of the uniform value), or the
    array itself (a new constant bound to the equation's var)."""
    if value.ndim == 0:
        return Literal(value, value.dtype)
    if _uniform(value):
        # A uniform array stays a broadcast of a literal: fusion reads it as a
        # scalar instead of streaming a constant array from memory.
        return Eqn(PRIMITIVES["broadcast"], [Literal(value.flat[0], value.dtype)],
                   {"shape": value.shape}, eqn.out, eqn.src)
    return value


def fold_constants(graph: Graph, max_elements: int = MAX_FOLDED_ELEMENTS) -> Graph:
    """Evaluate equations whose inputs are all literals or constants.

    Rank-0 results become Literals (uses are redirected); bigger ones become
    constants bound to the equation's own output var.  Results with more than
    `max_elements` elements, and broadcasts of scalars, stay computed.
    Returns `graph` itself when nothing folds.
    """
    known = dict(zip(graph.constvars, graph.constvals))
    redirects, eqns, new_vars, new_vals = Redirects(), [], [], []
    changed = False
    for eqn in graph.eqns:
        eqn = redirects.eqn(eqn)
        value = fold_eqn(eqn, known, max_elements)
        changed = changed or value is not None
        form = eqn if value is None else folded_form(eqn, value)
        if isinstance(form, Eqn):
            eqns.append(form)
        elif isinstance(form, Literal):
            redirects.set(eqn.out, form)
        else:
            known[eqn.out] = value
            new_vars.append(eqn.out)
            new_vals.append(value)
    if not changed:
        return graph
    return redirects.finish(graph, eqns, constvars=list(graph.constvars) + new_vars,
                            constvals=list(graph.constvals) + new_vals)
