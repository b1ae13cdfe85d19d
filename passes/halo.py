"""Sums over a halo: a reduction padded to the domain of the work beside it.

A stencil's loss and its gradient have domains that differ by a few elements: the
Rosenbrock sum runs over `x[1:]` and `x[:-1]` (n - 1 terms) while its gradient has n
elements.  Fusion shares a kernel between tasks of equal domains only (fusion/merge.py),
so the two took one pass over memory each.  Summing `pad(x, to n)` instead of `x` adds
exact zeros (the pad's elements outside x), so the sum is the same sum; its task then has
the gradient's domain and joins its kernel: one pass, and the shared subexpressions
(`x[i]**2`) computed once.

Only reduce_sum of a float or integer operand is padded (a zero is its identity), and
only along summed axes, so the sum's shape is unchanged; only to a shape that another
equation of the graph produces, at most HALO elements (and an eighth) longer along each
padded axis.
The kept axes and the other shape must agree exactly.

Invariant: the rewritten graph computes the same sums up to the order of their terms:
each `+0.0` added changes nothing (every kernel sum starts from `+0.0`), but the longer
domain groups the terms differently (vector lanes, blocks, threads), so a float64 sum
may differ in its last bits, as kernel sums may (docs/codegen.md, "Reassociation
policy"); integer sums are unchanged.
"""
from __future__ import annotations

from collections import Counter

from tracegrad.ir import Eqn, Graph, Var
from tracegrad.ir.core import ShapedArray
from tracegrad.ir.primitives import PRIMITIVES

HALO = 8  # the most elements a padded axis grows by


def pad_sums(graph: Graph) -> Graph:
    """`graph` with each reduce_sum whose operand is a halo short of another equation's
    result shape summing that operand padded with zeros (module docstring); the same
    graph when there is none."""
    shapes = Counter(o.aval.shape for e in graph.eqns for o in e.outs if isinstance(o, Var))
    eqns, changed = [], False
    for eqn in graph.eqns:
        target = _target(eqn, shapes)
        if target is None:
            eqns.append(eqn)
            continue
        x = eqn.inputs[0]
        padded = Var(ShapedArray(target, x.aval.dtype))
        params = dict(starts=(0,) * len(target), steps=(1,) * len(target), shape=target)
        eqns.append(Eqn(PRIMITIVES["pad"], [x], params, padded, eqn.src))
        eqns.append(Eqn(eqn.prim, [padded], eqn.params, eqn.outs, eqn.src))
        changed = True
    return graph.replace(eqns=eqns) if changed else graph


def _target(eqn, shapes: Counter):
    """The shape to pad a reduce_sum's operand to, or None: the most frequent result
    shape within the halo (ties: the smaller)."""
    if eqn.prim.name != "reduce_sum" or not isinstance(eqn.inputs[0], Var):
        return None
    shape, axes = eqn.inputs[0].aval.shape, set(eqn.params["axes"])
    if eqn.inputs[0].aval.dtype.kind == "b" or not axes:
        return None
    fits = [s for s in shapes if s != shape and _within(shape, s, axes)]
    if not fits:
        return None
    return min(fits, key=lambda s: (-shapes[s], s))


def _within(shape, other, axes) -> bool:
    """Whether `other` is `shape` grown along summed axes only, by at most HALO elements
    and an eighth of the axis (a 6-vector's sum is not padded to a 10-vector's domain)."""
    return len(other) == len(shape) and all(
        0 <= b - a <= min(HALO, a // 8) if i in axes else a == b
        for i, (a, b) in enumerate(zip(shape, other)))
