"""The IR verifier: every value bound before use, bound once, and typed by its rule."""
from __future__ import annotations

from .core import Graph, Literal, Var
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
    try:
        expected = eqn.prim.shape_rule(*[a.aval for a in eqn.inputs], **eqn.params)
    except (ShapeError, TypeError) as e:
        raise VerifyError(f"{where}: {e}") from None
    if expected != eqn.out.aval:
        raise VerifyError(f"{where}: output is {eqn.out.aval} but the rule gives {expected}")
    _bind(eqn.out, bound, where)


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
