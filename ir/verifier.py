"""The IR verifier: every value bound before use, bound once, and typed by its rule.

Bodies of control-flow equations are verified as graphs of their own: a body
that reads a value of the enclosing graph uses an unbound value.
"""
from __future__ import annotations

from .core import Graph, Literal, Var, subgraphs
from .primitives import PRIMITIVES, ShapeError


class VerifyError(ValueError):
    pass


def _check_atom(atom, bound, where):
    if isinstance(atom, Literal):
        return
    if not isinstance(atom, Var):
        raise VerifyError(f"{where}: {atom!r} is not a Var or Literal")
    if atom not in bound:
        raise VerifyError(f"{where}: uses unbound value {atom!r}")


def _bind(var, bound, where):
    if var in bound:
        raise VerifyError(f"{where}: value {var!r} is assigned twice")
    bound.add(var)


def _check_eqn(i, eqn, bound):
    where = f"equation {i} ({eqn.prim.name}{' at ' + eqn.src if eqn.src else ''})"
    if PRIMITIVES.get(eqn.prim.name) is not eqn.prim:
        raise VerifyError(f"{where}: unknown primitive {eqn.prim!r}")
    for a in eqn.inputs:
        _check_atom(a, bound, where)
    for body in subgraphs(eqn):  # closed: a body sees only its own inputs and constants
        try:
            verify(body)
        except VerifyError as e:
            raise VerifyError(f"{where}, in a body: {e}") from None
    try:
        expected = eqn.prim.shape_rule(*[a.aval for a in eqn.inputs], **eqn.params)
    except (ShapeError, TypeError, ValueError, OverflowError) as e:  # (params such as nan sizes)
        raise VerifyError(f"{where}: {e}") from None
    expected = list(expected) if eqn.prim.multiple_results else [expected]
    got = [v.aval for v in eqn.outs]
    if expected != got:
        shown = got[0] if len(got) == 1 else got
        raise VerifyError(f"{where}: output is {shown} but the rule gives "
                          f"{expected[0] if len(expected) == 1 else expected}")
    for v in eqn.outs:
        _bind(v, bound, where)


def verify(graph: Graph) -> Graph:
    """Raise VerifyError on a malformed graph; return the graph unchanged otherwise."""
    bound = set()
    if len(graph.constvars) != len(graph.constvals):
        raise VerifyError("constvars and constvals differ in length")
    for v, val in zip(graph.constvars, graph.constvals):
        _bind(v, bound, "constants")
        if tuple(val.shape) != v.aval.shape or val.dtype != v.aval.dtype:
            raise VerifyError(f"constant {v!r} holds a {val.dtype}{list(val.shape)} array")
    for v in graph.invars:
        _bind(v, bound, "inputs")
    for i, eqn in enumerate(graph.eqns):
        _check_eqn(i, eqn, bound)
    for v in graph.outvars:
        _check_atom(v, bound, "outputs")
    for g in graph.guards:
        _check_atom(g.var, bound, "guards")
    return graph
